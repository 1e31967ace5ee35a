"""User code in sweeps and on the command line: entry points, --dry-run, bad input, one source
for the keys bench accepts."""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from bench.cli import main
from bench.config import parse_sweep
from ogan import optim
from ogan.errors import ConfigError
from ogan.game import GAME_OPTIONS, resolve
from ogan.registry import names, resolve_name

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

PACKAGE = '''
import torch
from moons import TwoMoons


class Moons(TwoMoons):
    """Two moons, as an installed package ships them."""


def make_sgd(params, lr=0.05, momentum=0.0):
    """SGD from an installed package."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum)
'''


def _dist(root: Path, name: str, version: str, entry_points: str) -> None:
    """A minimal installed distribution: what pip leaves in site-packages, nothing else."""
    info = root / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """``fakegan 1.2`` installed on sys.path, registering a workload and an optimizer."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    site = tmp_path / "site"
    site.mkdir()
    module = f"fakegan_{uuid.uuid4().hex[:8]}"
    (site / f"{module}.py").write_text(PACKAGE)
    _dist(site, "fakegan", "1.2", f"""
        [ogan.workloads]
        fake-moons = {module}:Moons
        [ogan.optimizers]
        fake-sgd = {module}:make_sgd
        """)  # fmt: skip
    monkeypatch.syspath_prepend(str(site))
    return site, module


def test_entry_point_names_resolve_and_record_the_distribution_that_registered_them(installed):
    _, module = installed
    workload = resolve_name("workload", "fake-moons")
    assert workload.obj.__name__ == "Moons" and workload.origin.via == "entry point"
    assert (workload.origin.distribution, workload.origin.version) == ("fakegan", "1.2")
    assert names("optimizer")["fake-sgd"] == f"fakegan 1.2 ({module}:make_sgd)"
    config = resolve("fake-moons", {"name": "fake-sgd", "momentum": 0.5}, device="cpu")
    assert config.optimizer["lr"] == 0.05  # the factory's default
    assert config.sources["optimizer"]["target"] == f"{module}:make_sgd"


def test_bench_list_shows_installed_names_with_their_package(installed, capsys):
    _, module = installed
    assert main(["list"]) == 0
    lines = {
        line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line[:2] == "  "
    }
    assert f"[entry point {module}:Moons (fakegan 1.2)]" in lines["fake-moons"]
    assert "SGD from an installed package" in lines["fake-sgd"]
    assert "Two moons, as an installed package ships them" in lines["fake-moons"]
    assert "fake-moons.swd" in lines


@pytest.mark.parametrize(
    ("entry_points", "sources"),
    [
        ("[ogan.optimizers]\nfake-sgd = torch.optim:SGD\n", ["fakegan 1.2", "othergan 0.1"]),
        ("[ogan.optimizers]\nadam = torch.optim:AdamW\n", ["ogan itself", "othergan 0.1"]),
    ],
)
def test_a_name_defined_twice_is_one_error_naming_both_sources(
    installed, entry_points, sources, capsys
):
    site, _ = installed
    _dist(site, "othergan", "0.1", entry_points)
    name = entry_points.split("\n")[1].split(" =")[0]
    with pytest.raises(ConfigError, match=f"'{name}' is defined twice: by {sources[0]}.* and by "
                                          f"{sources[1]}"):  # fmt: skip
        resolve_name("optimizer", name)
    assert main(["list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(s in err for s in sources)


def _sweep(tmp_path: Path, workload: str, optimizer: str) -> Path:
    path = tmp_path / "user.toml"
    path.write_text(
        "[sweep]\nseeds = [0]\nsteps = 2\neval_every = 2\n"
        f"[[workload]]\n{workload}\n[[optimizer]]\n{optimizer}\n"
    )
    return path


def test_dry_run_lists_every_import_path_and_entry_point_without_importing_any(
    installed, tmp_path, capsys
):
    marker = tmp_path / "imported"
    module = f"untrusted_{uuid.uuid4().hex[:8]}"
    (installed[0] / f"{module}.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n\nclass GAN:\n    pass\n"
    )
    config = _sweep(
        tmp_path,
        f'name = "{module}:GAN"\nhidden = [8, 16]',
        'name = "lookahead"\nbase = ["sgd", "torch.optim:RAdam"]\nlr = 1e-3\n'
        '[[optimizer]]\nname = "fake-sgd"\nlr = 1e-3',
    )
    out = tmp_path / "out"
    assert main(["run", str(config), "--dry-run", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"workload  {module}:GAN  (import path; [[workload]] #1)" in printed
    assert "optimizer torch.optim:RAdam  (import path; [[optimizer]] #1)" in printed
    assert "optimizer fake-sgd  (entry point of fakegan 1.2" in printed
    assert "run sweep files you trust" in printed
    assert f"  {module}:GAN: module {module!r} found, 'GAN' defined in its source" in printed
    assert "  torch.optim:RAdam: module 'torch.optim' found, 'RAdam' defined in its source" in (
        printed
    )
    assert not marker.exists() and module not in sys.modules and not out.exists()


@pytest.mark.parametrize(
    ("workload", "optimizer", "message"),
    [
        ('name = "no_such_mod_xyz:GAN"', 'name = "adam"\nlr = 1e-3', "cannot import module"),
        ('name = "moons:Nope"', 'name = "adam"\nlr = 1e-3', "has no attribute 'Nope'"),
        ('name = "moons:moons"', 'name = "adam"\nlr = 1e-3', "not a subclass of ogan.workloads"),
        ('name = "moons:TwoMoons"\nhiden = 8', 'name = "adam"\nlr = 1e-3', "valid keys: .*hidden"),
        (
            'name = "moons:TwoMoons"',
            'name = "torch.optim:RAdam"\nlr = 1e-3\nmomentum = 0.9',
            "unknown key 'momentum'.* valid keys: .*betas",
        ),
        ('name = "moons:TwoMoons"', 'name = "torch.nn:Linear"\nlr = 1e-3', "not a torch.optim"),
        (
            'name = "moons:TwoMoons"\nnoise = -1.0',
            'name = "adam"\nlr = 1e-3',
            "need hidden >= 1 and noise >= 0",
        ),
    ],
)
def test_bad_user_code_in_a_sweep_is_one_line_exit_2_and_writes_nothing(
    monkeypatch, tmp_path, capsys, workload, optimizer, message
):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    out = tmp_path / "out"
    config = _sweep(tmp_path, workload, optimizer)
    assert main(["run", str(config), "--out", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bench run: error: ")
    assert re.search(message, err), err
    assert not out.exists()


def test_a_user_sweep_grid_uses_the_keys_ogan_reports_for_user_objects(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    sweep = parse_sweep(
        '[[workload]]\nname = "moons:TwoMoons"\nhidden = [8, 16]\nscheme = "simultaneous"\n'
        '[[optimizer]]\nname = "torch.optim:RAdam"\nlr = 1e-3\nbetas = [0.5, 0.9]\n'
        '[[optimizer]]\nname = "lookahead"\nbase = "schedulefree:AdamWScheduleFree"\nlr = 1e-3\n'
        "betas = [[0.9, 0.999], [0.5, 0.999]]\nweight_decay = 0.01",
        device="cpu",
    )
    labels = sorted({s.label for s in sweep.specs})
    assert labels == [
        "lookahead(schedulefree:AdamWScheduleFree)[betas=0.5,0.999]",
        "lookahead(schedulefree:AdamWScheduleFree)[betas=0.9,0.999]",
        "torch.optim:RAdam",  # betas = [0.5, 0.9] is one value: RAdam's betas is a sequence
    ]
    assert len(sweep.specs) == 2 * 3 * 3  # hidden axis × variants × default seeds
    assert {s.workload for s in sweep.specs} == {"moons:TwoMoons"}


def test_game_options_are_the_keywords_of_resolve_that_neither_player_nor_run_owns():
    keyword_only = [
        p.name for p in inspect.signature(resolve).parameters.values() if p.kind is p.KEYWORD_ONLY
    ]
    run_level = {"steps", "eval_every", "seed", "device", "threads"}
    optimizer_level = {"lr", "lr_ratio", "surgery"}
    assert [k for k in keyword_only if k not in run_level | optimizer_level] == list(GAME_OPTIONS)


def test_what_an_entry_wraps_is_data_a_new_wrapper_gets_keys_labels_and_lr_from_it(monkeypatch):
    entry = optim.OptimizerEntry(optim.OPTIMIZERS["lookahead"].factory, "lookahead, inner SGD",
                                 wraps=("base", "sgd"))  # fmt: skip
    monkeypatch.setitem(optim.OPTIMIZERS, "slow-sgd", entry)
    assert "momentum" in optim.hyperparameters("slow-sgd")
    assert optim.default_lr("slow-sgd") == resolve_name("optimizer", "sgd").defaults["lr"]
    assert optim.sequence_keys("slow-sgd", {"base": "adam"}) == {"betas", "extra_keys"}
    sweep = parse_sweep(
        '[[workload]]\nname = "dirac"\n[[optimizer]]\nname = "slow-sgd"\nlr = 0.1\n'
        '[[optimizer]]\nname = "slow-sgd"\nbase = ["adam", "sgd"]\nlr = 0.1\nlabel = "x"',
        device="cpu",
    )
    assert sorted({s.label for s in sweep.specs}) == [
        "slow-sgd(sgd)",
        "x[base=adam]",
        "x[base=sgd]",
    ]
    with pytest.raises(ConfigError, match="slow-sgd cannot wrap lookahead"):
        optim.hyperparameters("slow-sgd", {"base": "lookahead"})
