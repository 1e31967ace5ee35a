"""Optimizers from PyPI end to end: pytorch-optimizer's classes swept by ``bench run`` as a new
user would name them, each admitted to populations (or not) by the member check, each admitted
one's members equal to their standalone runs, and each misuse a one-line error before any run."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from test_runner import run

import ogan
from bench import store
from bench.cli import main

pytest.importorskip("pytorch_optimizer")

PO = "pytorch_optimizer"
TINY = """
[sweep]
name = "pypi"
seeds = [0, 1]
steps = 6
eval_every = 3

[[workload]]
name = "mog-ring"
hidden = 8
batch_size = 16
"""
ADMITTED = {"Lion": 1e-4, "AdaBelief": 1e-3, "Adan": 1e-3}  # element-wise: populations
REFUSED = {"SOAP": 3e-3, "Prodigy": 1.0}  # a preconditioner per tensor; one global step size
KW = {"steps": 6, "eval_every": 3, "device": "cpu", "hidden": 8, "batch_size": 16, "threads": 1}
TIMING = ["wall_time", "step_time"]


def _optimizers(entries: dict[str, float]) -> str:
    return "".join(f'\n[[optimizer]]\nname = "{PO}:{n}"\nlr = {lr}\n' for n, lr in entries.items())


def test_a_sweep_of_pypi_optimizers_trains_the_admitted_ones_as_populations(
    tmp_path, sweep_file
):
    config = sweep_file(TINY + _optimizers({**ADMITTED, **REFUSED}))
    report = run(config, tmp_path / "out", jobs=1, population=2)
    assert (report.ran, report.failed) == (10, 0)
    said = [line for line in report.lines if "one seed at a time" in line]
    assert [line.split(":", 2)[:2] for line in said] == [
        [f"{PO}", f"{n}"] for n in REFUSED
    ]  # one line per refused optimizer, before the runs
    for line in said:
        assert "(the per-member check: at lr=" in line
        assert "update differs from the same optimizer's on it alone by" in line

    records = store.load_records(tmp_path / "out")
    assert len(records) == 10
    for r in records:
        name = r["spec"]["optimizer"]["name"].split(":")[1]
        admission = r["summary"]["admission"]
        assert admission["admitted"] is (name in ADMITTED), name
        if name in ADMITTED:
            assert r["summary"]["population"]["size"] == 2
            assert admission["max_difference"] <= 1e-6
        else:
            assert "population" not in r["summary"]
            assert admission["max_difference"] > 1e-6
        assert math.isfinite(r["summary"]["time_per_step_alone"])  # costs on equal terms


@pytest.mark.parametrize("name", list(ADMITTED))
def test_an_admitted_pypi_optimizers_members_equal_their_standalone_runs(name):
    spec = {"name": f"{PO}:{name}", "lr": ADMITTED[name]}
    together = ogan.train_population("mog-ring", spec, seeds=[0, 1], **KW)
    for seed, member in enumerate(together):
        alone = ogan.train("mog-ring", spec, seed=seed, **KW)
        pd.testing.assert_frame_equal(
            member.history.drop(columns=TIMING, errors="ignore"),
            alone.history.drop(columns=TIMING, errors="ignore"),
            rtol=1e-4,
            check_dtype=False,
        )


@pytest.mark.parametrize("name", list(REFUSED))
def test_a_refused_pypi_optimizer_cannot_train_a_population(name):
    spec = {"name": f"{PO}:{name}", "lr": REFUSED[name]}
    with pytest.raises(ogan.ConfigError, match=r"cannot train a population: at lr=\S+, member "
                       r"\d's update differs"):  # fmt: skip
        ogan.train_population("mog-ring", spec, seeds=[0, 1], **KW)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (  # step() needs a closure: refused before any run, not at run time with a retry advice
            f'name = "{PO}:AliG"\nlr = 0.1',
            f"optimizer '{PO}:AliG' needs a closure in step() (it re-evaluates the loss: "
            "NoClosureError: ",
        ),
        (  # a key its **kwargs would swallow
            f'name = "{PO}:Lion"\nlr = 1e-4\nmomentum = 0.9',
            f"Unknown hyperparameter(s) momentum for optimizer '{PO}:Lion'; valid: lr, betas, "
            "weight_decay, weight_decouple, fixed_decay, maximize, foreach, ortho, "
            "ortho_renorm (if it reads 'momentum' from **kwargs, opt in: extra_keys = "
            "['momentum'])",
        ),
        (  # a required argument
            f'name = "{PO}:Ranger21"\nlr = 1e-3',
            "missing 1 required positional argument: 'num_iterations'",
        ),
        (  # a number as a string: another run id for the same experiment
            f'name = "{PO}:Lion"\nlr = "1e-4"',
            f"mog-ring × {PO}:Lion: lr = '1e-4' is a string; write the number without quotes "
            "(lr = 1e-4)",
        ),
        (
            f'name = "{PO}:Lion"\nlr = 1e-4\nbetas = ["0.9", 0.99]',
            f"optimizer '{PO}:Lion': betas = ['0.9', 0.99] holds a string where a number is "
            "expected; write the number without quotes",
        ),
        (  # opting in a key that the class names is a mistake too
            f'name = "{PO}:Lion"\nlr = 1e-4\nextra_keys = ["betas"]',
            f"extra_keys: 'betas' is a named parameter of optimizer '{PO}:Lion'; remove it "
            "from extra_keys",
        ),
    ],
)
def test_misuse_of_a_pypi_optimizer_is_one_line_before_any_run(
    table, message, tmp_path, sweep_file, capsys
):
    config = sweep_file(TINY + "\n[[optimizer]]\n" + table + "\n")
    assert main(["run", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists()  # nothing written


def test_a_key_opted_in_with_extra_keys_reaches_the_optimizer(tmp_path, sweep_file):
    # Lion reads nothing from **kwargs, but it takes them: the spec says it knows
    spec = {"name": f"{PO}:Lion", "lr": 1e-4, "extra_keys": ["foo"], "foo": 1}
    result = ogan.train("mog-ring", spec, seed=0, **KW)
    assert result.config["optimizer"]["extra_keys"] == ["foo"]
    assert result.config["optimizer"]["foo"] == 1


def test_dry_run_finds_a_misspelled_class_of_an_installed_package_without_importing_it(
    tmp_path, sweep_file, capsys
):
    config = sweep_file(TINY + f'\n[[optimizer]]\nname = "{PO}:Lino"\nlr = 1e-4\n')
    assert main(["run", str(config), "--dry-run", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"bench run: error: optimizer '{PO}:Lino': module '{PO}' has no attribute 'Lino'; "
        "check the name after the colon"
    )
    config = sweep_file(TINY + f'\n[[optimizer]]\nname = "{PO}:Lion"\nlr = 1e-4\n')
    assert main(["run", str(config), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    assert f"  {PO}:Lion: module '{PO}' found, 'Lion' defined in its source" in (
        capsys.readouterr().out
    )
    assert not (tmp_path / "out").exists()


def test_bench_list_shows_a_pypi_optimizers_keys_and_functions_by_name(capsys):
    assert main(["list", f"{PO}:ADOPT"]) == 0
    out = capsys.readouterr().out
    assert f"clip_lambda=<{PO}.optimizer.adopt.ADOPT.<lambda>>" in out and " at 0x" not in out
    assert "  implementation (not part of the run id): foreach\n" in out
    assert "a key it reads from **kwargs: extra_keys = [...]" in out
