"""bench run with populations: grouping, one stored run per member, resume per member, failures,
kill -9 in the middle of a population."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess

import pandas as pd
import pytest
from conftest import TIMING
from patience import patience
from test_runner import SLOW, bench_cmd, run, wait_for_runs

import bench
from bench import population, store
from bench.cli import main
from bench.config import load_sweep
from ogan.files import temporaries

SWEEP = """
[sweep]
name = "pop"
seeds = [0, 1, 2]

[[workload]]
name = "mog-ring"
hidden = 8
batch_size = 32
steps = 12
eval_every = 6

[[workload]]
name = "bilinear"
steps = 20
eval_every = 10

[[optimizer]]
name = "adam"
lr = [1e-3, 1e-2]

[[optimizer]]
name = "adam"
ortho = "weights"
lr = 1e-2
"""
RUNS = 2 * 3 * 3


def _strip(df: pd.DataFrame, keep_id: bool = False) -> pd.DataFrame:
    """Without timing, commits and how runs were grouped (and run ids, unless ``keep_id``)."""
    drop = {"git_commit", *TIMING, *(() if keep_id else ("run_id",))}
    return df.drop(columns=[c for c in df.columns if c in drop or c.startswith("population")])


def test_runs_that_differ_only_by_seed_form_populations_in_sweep_order(sweep_file):
    specs = load_sweep(str(sweep_file(SWEEP)), device="cpu").specs
    groups = population.populations(specs, 2)
    assert sorted(s.run_id for g in groups for s in g) == sorted(s.run_id for s in specs)
    for group in groups:
        assert len(group) <= 2
        assert len({dataclasses.replace(s, seed=0) for s in group}) == 1  # one config, many seeds
    assert [len(g) for g in groups] == [2, 1] * 6  # 3 seeds per config, in chunks of 2
    assert [s.seed for s in groups[0] + groups[1]] == [0, 1, 2]
    assert all(len(g) == 1 for g in population.populations(specs, 1))
    with pytest.raises(ValueError, match="population size"):
        population.populations(specs, 0)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pop")
    config = tmp / "sweep.toml"
    config.write_text(SWEEP)
    together = run(config, tmp / "together", jobs=2, population=3)
    alone = run(config, tmp / "alone", jobs=2, population=1)
    return tmp, together, alone


def test_every_member_is_stored_as_its_own_run_with_how_it_was_trained(swept):
    tmp, together, _ = swept
    assert (together.ran, together.failed) == (RUNS, 0)
    records = store.load_records(tmp / "together")
    assert len(records) == RUNS
    specs = {s.run_id: s for s in load_sweep(str(tmp / "sweep.toml"), device="cpu").specs}
    assert {r["run_id"] for r in records} == set(specs)  # today's run ids
    for r in records:
        pop = r["summary"]["population"]
        assert pop["size"] == 3 and pop["member"] == r["spec"]["seed"]  # seeds 0, 1, 2 in order
        assert r["summary"]["time_per_step"] == pytest.approx(pop["step_time"] / 3)
        assert r["config"]["seed"] == r["spec"]["seed"]


def test_population_results_load_like_one_run_per_process_results(swept):
    tmp, _, alone = swept
    assert alone.ran == RUNS
    for record in store.load_records(tmp / "alone"):
        assert "population" not in record["summary"]  # --population 1: exactly as before
    for load in (bench.load, bench.load_traces, bench.load_runs):
        a, b = _strip(load(tmp / "together")), _strip(load(tmp / "alone"))
        assert list(a.columns) == list(b.columns)
        key = [c for c in ("workload", "optimizer", "lr", "seed", "step") if c in a]
        a, b = (df.sort_values(key).reset_index(drop=True) for df in (a, b))
        pd.testing.assert_frame_equal(a, b, rtol=1e-4)  # float reordering only


def test_a_resumed_sweep_trains_only_the_missing_members_together(tmp_path, sweep_file):
    out = tmp_path / "out"
    first = sweep_file(SWEEP.replace("seeds = [0, 1, 2]", "seeds = [1]"), "first.toml")
    run(first, out, jobs=1, population=1)
    stored = {p.name: p.read_bytes() for p in (out / "pop" / "runs").glob("*.json")}
    report = run(sweep_file(SWEEP), out, jobs=1)
    assert (report.skipped, report.ran) == (6, RUNS - 6)
    for name, data in stored.items():  # the finished runs were not touched
        assert (out / "pop" / "runs" / name).read_bytes() == data
    for record in store.load_records(out):
        if record["spec"]["seed"] == 1:
            assert "population" not in record["summary"]
        else:  # seeds 0 and 2 of each config: one population of two
            assert record["summary"]["population"]["size"] == 2


def test_a_population_that_raises_trains_its_members_one_at_a_time(
    tmp_path, monkeypatch, sweep_file, capsys
):
    # e.g. a user's networks that torch.vmap cannot batch: the members still run, each alone
    import ogan

    real = ogan.train_population

    def flaky(workload, optimizer, **kw):
        if workload == "bilinear" and optimizer["lr"] == 1e-3:
            raise RuntimeError("cannot batch this")
        return real(workload, optimizer, **kw)

    config = sweep_file(SWEEP)
    monkeypatch.setattr(ogan, "train_population", flaky)  # jobs=1 trains in this process
    report = run(config, tmp_path / "out", jobs=1, population=2)  # seeds {0, 1}, {2}
    assert (report.ran, report.failed) == (RUNS, 0)
    said = [line for line in report.lines if "one seed at a time" in line]
    assert said == [  # once per optimizer, with the reason
        "bilinear adam: trained one seed at a time (the population of 2 failed (RuntimeError: "
        "cannot batch this))"
    ]
    alone = [r for r in store.load_records(tmp_path / "out") if "population" not in r["summary"]]
    seed_2 = [(w, lr, 2) for w in ("bilinear", "mog-ring") for lr in (1e-3, 1e-2, 1e-2)]
    assert sorted((r["spec"]["workload"], r["spec"]["optimizer"]["lr"], r["spec"]["seed"])
                  for r in alone) == sorted([("bilinear", 1e-3, 0), ("bilinear", 1e-3, 1),
                                             *seed_2])  # fmt: skip


def test_an_optimizer_that_fails_the_member_check_trains_one_seed_at_a_time(sweep_file):
    text = SWEEP.replace('"adam"\nlr = [1e-3, 1e-2]', '"torch.optim:Adafactor"\nlr = 1e-2')
    specs = load_sweep(str(sweep_file(text)), device="cpu").specs
    admitted = population.admissions(specs)
    assert len(admitted) == 2  # one check per optimizer spec, whatever the workloads and seeds
    groups = population.populations(specs, 8, admitted)
    sizes = sorted((g[0].workload, dict(g[0].optimizer)["name"], len(g)) for g in groups)
    assert sizes == sorted([*[(w, "torch.optim:Adafactor", 1) for w in ("mog-ring", "bilinear")
                              for _ in range(3)],
                            ("mog-ring", "adam", 3), ("bilinear", "adam", 3)])  # fmt: skip


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_a_bad_population_size_is_a_usage_error(value, capsys):
    assert main(["run", "--population", value, "--dry-run"]) == 2
    assert "--population" in capsys.readouterr().err


def test_the_default_population_size_follows_the_device():
    assert population.default_size("cpu") == population.DEFAULT_SIZE["cpu"]
    assert population.default_size("cuda:1") == population.DEFAULT_SIZE["cuda"]


def test_kill_9_mid_population_loses_only_members_in_flight_and_a_rerun_completes_it(
    tmp_path, sweep_file
):
    # Three populations of four seeds on two workers: the first two finish together, so when the
    # first run is stored the third has just started and a whole population's training stands
    # between it and the end (with two populations on two workers, both could be stored before
    # the kill landed: a fresh clone's CI failed so, 8 of 8 stored).
    three = SLOW.replace("lr = [1e-3, 2e-3]", "lr = [1e-3, 2e-3, 3e-3]")
    assert three != SLOW  # SLOW changed: give this test three populations again
    config = sweep_file(three)
    n_runs = len(load_sweep(str(config), device="cpu").specs)
    assert n_runs == 3 * 4
    killed = tmp_path / "killed"
    cmd = bench_cmd("run", str(config), "--out", str(killed), "--device", "cpu", "--jobs", "2")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    try:
        wait_for_runs(killed / "slow" / "runs", proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and its workers
        proc.wait()
    before = {r["run_id"]: r for r in store.load_records(killed)}  # every stored one is whole
    assert 1 <= len(before) < n_runs

    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=patience(300))
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(before)} already finished, {n_runs - len(before)} to run" in resumed.stdout
    assert not temporaries(killed / "slow" / "runs")
    after = {r["run_id"]: r for r in store.load_records(killed)}
    assert len(after) == n_runs
    assert all(after[k] == r for k, r in before.items())  # the stored members: untouched

    assert run(config, tmp_path / "whole", jobs=2).ran == n_runs
    for load in (bench.load, bench.load_runs):
        # Members trained again may form smaller populations than in the uninterrupted sweep:
        # the same runs up to float reordering, not bit for bit.
        a, b = _strip(load(killed), True), _strip(load(tmp_path / "whole"), True)
        key = [c for c in ("run_id", "step") if c in a]
        a, b = (df.sort_values(key).reset_index(drop=True) for df in (a, b))
        pd.testing.assert_frame_equal(a, b, rtol=1e-3)
