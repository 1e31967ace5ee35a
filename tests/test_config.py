"""Sweep TOML → grid of RunSpecs: axes, sequence-valued keys, labels, every kind of bad input."""

from __future__ import annotations

import math
import os
import pickle
import textwrap
from pathlib import Path

import pytest

import ogan
from bench.config import embedded_sweeps, load_sweep, parse_sweep, validate
from bench.errors import BenchError
from bench.spec import RunSpec
from ogan import optim
from ogan.errors import ConfigError
from ogan.registry import resolve_name

ROOT = Path(__file__).resolve().parents[1]

BASE = """
[sweep]
name = "t"
seeds = [0, 1]
steps = 20
eval_every = 10

[[workload]]
name = "bilinear"
"""


def parse(text: str, base: str = BASE):
    return parse_sweep(textwrap.dedent(base) + textwrap.dedent(text), device="cpu")


def test_a_list_is_a_grid_axis_and_the_grid_is_workloads_x_optimizers_x_lrs_x_seeds():
    sweep = parse(
        """
        [[workload]]
        name = "dirac"

        [[optimizer]]
        name = "adam"
        lr = [1e-3, 1e-2, 0.1]

        [[optimizer]]
        name = "sgd"
        lr = 0.05
        """
    )
    assert len(sweep.specs) == 2 * (3 + 1) * 2
    cells = {(s.workload, s.label, s.lr, s.seed) for s in sweep.specs}
    assert ("dirac", "adam", 0.01, 1) in cells
    assert ("bilinear", "sgd", 0.05, 0) in cells
    assert len(cells) == len(sweep.specs)


def test_betas_as_a_flat_list_is_one_value_and_a_list_of_lists_is_an_axis():
    one = parse('[[optimizer]]\nname = "adam"\nlr = 0.01\nbetas = [0.5, 0.999]\n')
    assert len(one.specs) == 2
    assert dict(one.specs[0].optimizer)["betas"] == (0.5, 0.999)

    grid = parse('[[optimizer]]\nname = "adam"\nlr = 0.01\nbetas = [[0.5, 0.9], [0.0, 0.99]]\n')
    assert sorted({dict(s.optimizer)["betas"] for s in grid.specs}) == [(0.0, 0.99), (0.5, 0.9)]
    assert {s.label for s in grid.specs} == {"adam[betas=0.5,0.9]", "adam[betas=0,0.99]"}


def test_a_mixed_list_for_a_sequence_key_is_an_error_naming_the_key():
    with pytest.raises(BenchError, match="betas takes a sequence"):
        parse('[[optimizer]]\nname = "adam"\nlr = 0.01\nbetas = [0.5, [0.9, 0.99]]\n')


def test_bilinear_singular_values_flat_list_is_one_value_and_list_of_lists_an_axis():
    base = '[sweep]\nseeds = [0]\n[[optimizer]]\nname = "sgd"\nlr = 0.1\n'
    one = parse('[[workload]]\nname = "bilinear"\ndim = 2\nsingular_values = [1.0, 2.0]\n', base)
    assert [dict(s.workload_options)["singular_values"] for s in one.specs] == [(1.0, 2.0)]
    axis = parse('[[workload]]\nname = "bilinear"\nsingular_values = [[1.0], [3.0]]\n', base)
    assert [dict(s.workload_options)["singular_values"] for s in axis.specs] == [(1.0,), (3.0,)]


def test_sequence_keys_are_found_by_introspection():
    assert "betas" in optim.sequence_keys("adam")
    assert "betas" in optim.sequence_keys("lookahead", {"base": "adam"})  # through the base
    assert "momentum" not in optim.sequence_keys("lookahead", {"base": "sgd"})
    assert "lr" not in optim.sequence_keys("adam")
    # lr: float | Tensor is not a sequence; betas: tuple[float, float] is
    assert optim.sequence_keys("torch.optim:RAdam") == {"betas", "extra_keys"}
    assert resolve_name("workload", "bilinear").sequence_keys == {"singular_values"}
    assert resolve_name("workload", "mog-ring").sequence_keys == frozenset()


def test_a_workload_option_list_is_an_axis_and_workload_steps_override_the_sweeps():
    sweep = parse(
        """
        [[workload]]
        name = "mog-ring"
        hidden = [8, 16]
        steps = 7
        eval_every = 7

        [[optimizer]]
        name = "adam"
        lr = 1e-3
        """
    )
    ring = [s for s in sweep.specs if s.workload == "mog-ring"]
    assert sorted({dict(s.workload_options)["hidden"] for s in ring}) == [8, 16]
    assert {(s.steps, s.eval_every) for s in ring} == {(7, 7)}
    assert {(s.steps, s.eval_every) for s in sweep.specs if s.workload == "bilinear"} == {(20, 10)}


def test_labels_are_derived_from_name_base_and_modifiers():
    sweep = parse(
        """
        [[workload]]
        name = "mog-ring"

        [[optimizer]]
        name = "adam"
        lr = 1e-3
        [[optimizer]]
        name = "adam"
        lr = 1e-3
        ortho = "weights"
        [[optimizer]]
        name = "adam"
        lr = 1e-3
        surgery = true
        workloads = ["mog-ring"]
        [[optimizer]]
        name = "lookahead"
        lr = 1e-3
        [[optimizer]]
        name = "lookahead"
        base = "sgd"
        lr = 1e-3
        [[optimizer]]
        name = "ttur"
        lr = 1e-3
        [[optimizer]]
        name = "adam"
        lr = 1e-3
        betas = [0.5, 0.999]
        label = "adam-gan"
        """
    )
    labels = list(dict.fromkeys(s.label for s in sweep.specs))
    assert labels == [
        "adam",
        "adam+ortho",
        "lookahead(adam)",
        "lookahead(sgd)",
        "ttur",
        "adam-gan",
        "adam+surgery",
    ]
    # surgery needs real data: restricted to mog-ring by `workloads`
    assert {s.workload for s in sweep.specs if s.label == "adam+surgery"} == {"mog-ring"}


def test_two_entries_with_the_same_label_are_an_error_telling_to_set_label():
    with pytest.raises(BenchError, match=r"label 'adam' .* set label"):
        parse(
            """
            [[optimizer]]
            name = "adam"
            lr = 1e-3
            [[optimizer]]
            name = "adam"
            lr = 1e-3
            lr_ratio = 2
            """
        )


def test_two_entries_giving_identical_runs_are_an_error():
    with pytest.raises(BenchError, match="same run"):
        parse(
            """
            [[optimizer]]
            name = "adam"
            lr = 1e-3
            [[optimizer]]
            name = "adam"
            lr = 1e-3
            label = "again"
            """
        )


@pytest.mark.parametrize(
    ("text", "key", "valid"),
    [
        ("[other]\nx = 1\n", "other", "sweep, workload, optimizer"),
        ("[sweep]\nseed = [0]\n", "seed", "seeds"),
        ('[[workload]]\nname = "bilinear"\ndims = 3\n', "dims", "singular_values"),
        ('[[workload]]\nname = "mog-ring"\nbatchsize = 3\n', "batchsize", "batch_size"),
        ('[[optimizer]]\nname = "adam"\nbeta = [0.5, 0.9]\n', "beta", "betas"),
        (
            '[[optimizer]]\nname = "lookahead"\nbase = "sgd"\nbetas = [0.5, 0.9]\n',
            "betas",
            "momentum",
        ),
    ],
)
def test_an_unknown_key_anywhere_is_an_error_naming_it_and_the_valid_keys(text, key, valid):
    doc = '[[workload]]\nname = "dirac"\n[[optimizer]]\nname = "sgd"\nlr = 0.1\n'
    with pytest.raises(BenchError, match=rf"unknown key '{key}'.*valid keys: .*{valid}"):
        # the tested table comes first, so that [sweep] / top-level tables parse
        parse_sweep(text + doc if not text.startswith("[[") else doc + text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[workload]]\nname = "nope"\n[[optimizer]]\nname = "sgd"\nlr = 0.1\n',
            "Unknown workload 'nope'",
        ),
        (
            '[[workload]]\nname = "dirac"\n[[optimizer]]\nname = "adamw"\n',
            "Unknown optimizer 'adamw'",
        ),
        ('[[workload]]\nname = "dirac"\n', "empty grid: the sweep has no \\[\\[optimizer\\]\\]"),
        (
            '[[optimizer]]\nname = "sgd"\nlr = 0.1\n',
            "empty grid: the sweep has no \\[\\[workload\\]\\]",
        ),
        (
            '[sweep]\nseeds = []\n[[workload]]\nname = "dirac"\n'
            '[[optimizer]]\nname = "sgd"\nlr = 1\n',
            "empty grid: \\[sweep\\] seeds",
        ),
        (
            '[[workload]]\nname = "dirac"\n[[optimizer]]\nname = "sgd"\nlr = []\n',
            "empty grid: lr = \\[\\]",
        ),
        (
            '[[workload]]\nname = "dirac"\n[[optimizer]]\nname = "sgd"\nlr = 0.1\n'
            'workloads = ["mog-ring"]\n',
            "empty grid: optimizer 'sgd' is restricted",
        ),
        ('[[workload]]\nname = "dirac"\n[[optimizer]]\nname = "sgd"\n', "needs lr = "),
        ("[sweep\n", "malformed TOML"),
        ('[sweep]\nname = "a/b"\n', "directory name"),
        ('[sweep]\nsteps = [10, 20]\n[[workload]]\nname = "dirac"\n', "steps must be an integer"),
        ('[sweep]\ndevice = "tpu"\n', "device must be one of cpu, cuda"),
        ('[workload]\nname = "dirac"\n', "array of tables"),
    ],
)
def test_bad_sweeps_are_errors_with_a_message_that_says_what_is_wrong(text, message):
    with pytest.raises((BenchError, ConfigError), match=message):
        parse_sweep(text)


@pytest.mark.parametrize(
    ("optimizer", "message"),
    [
        ('name = "adam"\nlr = 0.0', "lr must be > 0"),
        ('name = "adam"\nlr = -1e-3', "lr must be > 0"),
        ('name = "adam"\nlr = nan', "lr must be > 0 and finite, got nan"),
        ('name = "adam"\nlr = 1e-3\nbetas = [1.5, 0.9]', "Invalid beta"),
        ('name = "adam"\nlr = 1e-3\nsurgery = true', "no real data"),
    ],
)
def test_validate_rejects_bad_values_naming_the_run(optimizer, message):
    sweep = parse(f"[[optimizer]]\n{optimizer}\n")
    with pytest.raises(ConfigError, match=rf"bilinear × adam.*{message}"):
        validate(sweep.specs)


def test_validate_reports_missing_data_from_ogan():
    sweep = parse_sweep(
        '[[workload]]\nname = "mnist"\ndata_dir = "/nonexistent/data"\n'
        '[[optimizer]]\nname = "adam"\nlr = 2e-4\n'
    )
    with pytest.raises(Exception, match="/nonexistent/data") as info:
        validate(sweep.specs)
    assert isinstance(info.value, FileNotFoundError)  # ogan.errors.MissingDataError


def test_run_specs_are_frozen_hashable_picklable_and_identified_by_content():
    a = parse('[[optimizer]]\nname = "adam"\nlr = [1e-3, 1e-2]\n').specs
    b = parse('[[optimizer]]\nname = "adam"\nlr = [1e-3, 1e-2]\nlabel = "other"\n').specs
    assert len({s.run_id for s in a}) == len(a) == 4
    assert [s.run_id for s in a] == [s.run_id for s in b]  # the label is not part of the run
    assert hash(a[0]) == int(a[0].run_id, 16)
    assert pickle.loads(pickle.dumps(a[0])) == a[0]
    assert RunSpec.from_dict(a[0].to_dict()) == a[0]
    with pytest.raises(AttributeError):
        a[0].seed = 3  # type: ignore[misc]


def test_an_integer_lr_and_the_same_float_are_the_same_run():
    a = parse('[[optimizer]]\nname = "sgd"\nlr = 1\n').specs
    b = parse('[[optimizer]]\nname = "sgd"\nlr = 1.0\n').specs
    assert [s.run_id for s in a] == [s.run_id for s in b]


@pytest.mark.parametrize(
    ("name", "switches"),
    [
        ("adam", 'foreach = false\nfused = false\ncapturable = false\ndifferentiable = false'),
        ("torch.optim:RAdam", "foreach = true"),
        ("lookahead", "foreach = false"),  # handed to its base, adam
    ],
)
def test_implementation_switches_are_accepted_recorded_and_not_part_of_the_run_id(
    name, switches
):
    plain = parse(f'[[optimizer]]\nname = "{name}"\nlr = 1e-3\n').specs
    switched = parse(f'[[optimizer]]\nname = "{name}"\nlr = 1e-3\n{switches}\n').specs
    validate(switched)
    assert [s.run_id for s in switched] == [s.run_id for s in plain]  # speed, not experiment
    keys = dict(line.split(" = ") for line in switches.splitlines())
    assert {k: dict(switched[0].optimizer)[k] for k in keys} == {
        k: v == "true" for k, v in keys.items()
    }  # recorded in the spec the run stores
    result = ogan.train("bilinear", switched[0].train_kwargs()["optimizer"], steps=2, seed=0)
    assert {k: result.config["optimizer"][k] for k in keys} == {
        k: v == "true" for k, v in keys.items()
    }


def test_an_implementation_switch_an_optimizer_does_not_name_is_an_error_listing_the_valid_keys():
    with pytest.raises(BenchError, match=r"^unknown key 'foreach' in \[\[optimizer\]\] #1 "
                       r"\(ogda\); valid keys: .*weight_decay, capturable, ortho, ortho_renorm"):
        parse('[[optimizer]]\nname = "ogda"\nlr = 1e-3\nforeach = true\n')


def test_an_lr_given_as_a_string_is_an_error_not_another_run():
    sweep = parse('[[optimizer]]\nname = "adam"\nlr = "1e-3"\n')
    with pytest.raises(BenchError, match=r"^bilinear × adam: lr = '1e-3' is a string; write the "
                       r"number without quotes \(lr = 1e-3\)$"):  # fmt: skip
        validate(sweep.specs)


def test_the_sweep_name_defaults_to_the_file_stem_and_files_win_over_embedded_names(tmp_path):
    path = tmp_path / "quick"  # a file named like an embedded sweep
    path.write_text('[[workload]]\nname = "dirac"\n[[optimizer]]\nname = "sgd"\nlr = 0.1\n')
    sweep = load_sweep(str(path), device="cpu")
    assert sweep.name == "quick" and sweep.origin == str(path)
    assert [s.seed for s in sweep.specs] == [0, 1, 2]  # the default seeds


def test_an_unknown_config_names_the_embedded_sweeps():
    with pytest.raises(BenchError) as error:
        load_sweep("no-such-sweep")
    listed = str(error.value).split("embedded: ")[1].split(", ")
    shipped = sorted(p.stem for p in (ROOT / "bench" / "sweeps").glob("*.toml"))
    assert "default" in shipped and "quick" in shipped
    assert listed == shipped  # every file under bench/sweeps, sorted, no other


def test_the_embedded_default_sweep_gives_every_paired_comparison_twelve_report_seeds():
    import pandas as pd

    from bench.report.tables import seed_splits

    sweep = load_sweep(None, device="cpu")
    assert sweep.name == "default"
    assert {s.workload for s in sweep.specs} == {"mog-ring", "digits", "bilinear"}
    labels = {(s.workload, s.label) for s in sweep.specs}
    for wl in ("mog-ring", "digits", "bilinear"):
        assert {(wl, "adam"), (wl, "adam+ortho")} <= labels  # the ⊥Grad comparison everywhere
    assert {("mog-ring", "adam+surgery"), ("digits", "adam+surgery")} <= labels
    runs = pd.DataFrame([{"workload": s.workload, "optimizer": s.label, "lr": s.lr,
                          "seed": s.seed} for s in sweep.specs])  # fmt: skip
    splits = seed_splits(runs)  # as the report splits them: one lr, nothing to select
    for wl, label in labels:
        seeds = set(runs.loc[(runs["workload"] == wl) & (runs["optimizer"] == label), "seed"])
        assert set(splits[wl].report) == seeds and len(seeds) >= 12, (wl, label)
    assert min(s.seed for s in sweep.specs) >= 32  # not the seeds of the pilots
    assert len(sweep.specs) == 132  # the run time in the README was measured for 132 runs
    validate(sweep.specs)


@pytest.mark.parametrize("name", ["quick", "default"])
def test_embedded_sweeps_validate(name):
    assert name in embedded_sweeps()
    sweep = load_sweep(name, device="cpu")
    assert sweep.name == name and sweep.specs
    validate(sweep.specs)
    assert all(math.isfinite(s.lr) and s.lr > 0 for s in sweep.specs)


def test_the_manifest_lists_every_spec_and_the_source():
    text = '[[optimizer]]\nname = "sgd"\nlr = [0.1, 0.2]\n'
    manifest = parse(text).manifest()
    assert manifest["source"] == textwrap.dedent(BASE) + text
    sweep = parse(text)
    assert [RunSpec.from_dict(d) for d in manifest["specs"]] == list(sweep.specs)


def test_sweeps_and_sources_are_read_as_utf8_whatever_the_locale(tmp_path):
    """TOML is UTF-8 by its spec and Python source by default; a process in the C locale with
    UTF-8 mode off (PYTHONUTF8=0) decodes text files as ASCII, and the committed sweeps'
    comments (π, ×, −) then failed to load ("'ascii' codec can't decode byte 0xcf")."""
    import subprocess
    import sys

    (tmp_path / "mod_utf8.py").write_text('"""⊥Grad: g − ⟨g, w⟩ w."""\nclass Opt:\n    pass\n',
                                          encoding="utf-8")  # fmt: skip
    code = textwrap.dedent("""
        import locale
        from bench.config import embedded_sweeps, load_sweep
        from bench.imports import _module_names
        assert locale.getpreferredencoding(False).lower() in ("ansi_x3.4-1968", "ascii")
        sweeps = [name for name in embedded_sweeps() if load_sweep(name).specs]
        assert "pacgan-ring" in sweeps, sweeps
        assert _module_names("mod_utf8", set()) == {"Opt"}
        print(len(sweeps))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_")}
    env.update(PYTHONUTF8="0", LC_ALL="C", LANG="C")
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")]).rstrip(":")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(embedded_sweeps())
    # and `python -m bench` prints what that terminal cannot show as escapes, not a traceback
    listed = subprocess.run([sys.executable, "-m", "bench", "list"], env=env, capture_output=True,
                            cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    assert listed.returncode == 0, listed.stderr.decode("ascii", "replace")
    assert b"x\\u1d40Ay" in listed.stdout and listed.stdout.isascii()
