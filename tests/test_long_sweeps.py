"""What a long sweep on a lent device needs: ``--part I/N`` (one command per part, the parts
disjoint and together the sweep), ``--seed-part I/N`` (the seeds in blocks, every configuration
in each, so that a lease that ends early leaves paired seeds) and ``trace_every`` (stored
traces thinned; every summary statistic, gradient-norm growth included, computed from every
step first)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from test_runner import run

import bench
from bench import population, store
from bench.cli import main
from bench.config import load_sweep
from bench.report import decisions
from ogan.game import stats

SWEEP = """
[sweep]
name = "long"
seeds = [0, 1]
steps = 30
eval_every = 10
{extra}

[[workload]]
name = "mog-ring"
hidden = 8
batch_size = 16

[[optimizer]]
name = "adam"
lr = [1e-3, 1e-2]

[[optimizer]]
name = "adam"
ortho = "weights"
lr = 1e-2

[[optimizer]]
name = "sgd"
lr = 1e-2
"""


def test_norm_growth_is_the_log_ratio_of_the_edge_medians():
    norms = np.r_[np.full(10, 2.0), np.linspace(3, 5, 80), np.full(10, 8.0)]
    assert stats.norm_growth(norms) == pytest.approx(math.log(4.0))
    assert stats.norm_growth(np.r_[norms, np.nan, np.inf]) == pytest.approx(math.log(4.0))
    assert math.isnan(stats.norm_growth(np.array([1.0])))  # fewer than two edge windows
    assert math.isnan(stats.norm_growth(np.r_[np.zeros(10), np.ones(10)]))  # zero median


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_the_parts_of_a_sweep_are_disjoint_and_make_the_sweep(sweep_file, n):
    specs = load_sweep(str(sweep_file(SWEEP.format(extra=""))), device="cpu").specs
    parts = [population.part(specs, i, n) for i in range(1, n + 1)]
    ids = [s.run_id for p in parts for s in p]
    assert sorted(ids) == sorted(s.run_id for s in specs) and len(set(ids)) == len(ids)
    sizes = [len({population.optimizer_key(s) for s in p}) for p in parts]
    assert max(sizes) - min(sizes) <= 1  # configurations spread evenly
    for p in parts:  # a configuration comes with all its seeds
        assert all(len([s for s in p if population.optimizer_key(s) == k]) == 2
                   for k in {population.optimizer_key(s) for s in p})  # fmt: skip


def test_a_part_runs_only_its_configurations_and_the_parts_complete_the_sweep(
    tmp_path, sweep_file, untimed
):
    config = sweep_file(SWEEP.format(extra=""))
    first = run(config, tmp_path / "parts", part=(2, 2))
    assert first.ran == 4 and first.total == 4
    assert "4 runs (part 2/2 of 8)" in "\n".join(first.lines)
    stored = bench.load(tmp_path / "parts" / "long")
    assert sorted(stored["optimizer"].unique()) == ["adam+ortho", "sgd"]
    second = run(config, tmp_path / "parts", part=(1, 2))
    assert second.ran == 4
    again = run(config, tmp_path / "parts", part=(1, 2))
    assert again.ran == 0 and again.skipped == 4
    run(config, tmp_path / "whole")
    by_parts = untimed(bench.load(tmp_path / "parts" / "long")).sort_values("run_id")
    whole = untimed(bench.load(tmp_path / "whole" / "long")).sort_values("run_id")
    pd.testing.assert_frame_equal(by_parts.reset_index(drop=True), whole.reset_index(drop=True))


SEEDS = SWEEP.replace("seeds = [0, 1]", "seeds = [5, 3, 9, 1, 7]")


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_the_seed_parts_of_a_sweep_are_consecutive_blocks_of_its_seeds(sweep_file, n):
    specs = load_sweep(str(sweep_file(SEEDS.format(extra=""))), device="cpu").specs
    blocks = [population.seed_part(specs, i, n) for i in range(1, n + 1)]
    ids = [s.run_id for b in blocks for s in b]
    assert sorted(ids) == sorted(s.run_id for s in specs) and len(set(ids)) == len(ids)
    seeds = [list(dict.fromkeys(s.seed for s in b)) for b in blocks]
    assert [x for b in seeds for x in b] == [5, 3, 9, 1, 7]  # the sweep's order, cut in blocks
    assert max(map(len, seeds)) - min(map(len, seeds)) <= 1
    keys = {population.optimizer_key(s) for s in specs}
    for b, block_seeds in zip(blocks, seeds):  # every configuration with every seed of its block
        assert {(population.optimizer_key(s), s.seed) for s in b} == {
            (k, x) for k in keys for x in block_seeds
        }


def test_a_seed_part_runs_its_seeds_for_every_configuration_and_goes_with_part(
    tmp_path, sweep_file
):
    config = sweep_file(SEEDS.format(extra=""))
    first = run(config, tmp_path / "out", seed_part=(1, 2))  # seeds 5 and 3, 4 configurations
    assert first.ran == 8 and first.total == 8
    assert "8 runs (seed part 1/2 of 20)" in "\n".join(first.lines)
    stored = bench.load(tmp_path / "out" / "long")
    assert set(stored["seed"]) == {5, 3}
    assert len(stored.drop_duplicates(["run_id"])) == 8  # 4 configurations × 2 seeds
    both = run(config, tmp_path / "out", part=(2, 2), seed_part=(2, 2))
    assert both.ran == 6 and "6 runs (part 2/2, seed part 2/2 of 20)" in "\n".join(both.lines)
    stored = bench.load(tmp_path / "out" / "long")
    assert set(stored.loc[stored["optimizer"] == "sgd", "seed"]) == {5, 3, 9, 1, 7}
    assert set(stored.loc[stored["optimizer"] == "adam", "seed"]) == {5, 3}
    assert len(bench.missing(tmp_path / "out" / "long")) == 6  # sweep.json is the whole sweep


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--seed-part", "3/2"], "expected I/N with 1 <= I <= N"),
        (["--seed-part", "1/3"], "the sweep has 2 seed(s); N can be at most 2"),
        (["--seed-part", "1/2", "--until-decided"], "--seed-part cannot go with --until-decided"),
        (["--part", "0/2"], "expected I/N with 1 <= I <= N"),
        (["--part", "3/2"], "expected I/N with 1 <= I <= N"),
        (["--part", "two"], "expected I/N with 1 <= I <= N"),
        (["--part", "1/5"], "the sweep has 4 configuration(s)"),
        (["--part", "1/2", "--until-decided"], "--part cannot go with --until-decided"),
    ],
)
def test_a_bad_part_is_a_one_line_error_with_exit_2(args, error, sweep_file, tmp_path, capsys):
    config = sweep_file(SWEEP.format(extra=""))
    with pytest.raises(SystemExit) as exit_or_code:  # argparse's errors exit; ours return 2
        raise SystemExit(main(["run", str(config), "--device", "cpu", "--out",
                               str(tmp_path / "out"), *args]))  # fmt: skip
    assert exit_or_code.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert error in err
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_trace_every_thins_the_stored_trace_and_changes_no_result(tmp_path, sweep_file):
    every = sweep_file(SWEEP.format(extra="trace_every = 7"), name="every.toml")
    full = sweep_file(SWEEP.format(extra=""), name="full.toml")
    thin, plain = load_sweep(str(every), device="cpu"), load_sweep(str(full), device="cpu")
    assert thin.trace_every == 7 and plain.trace_every == 1
    assert [s.run_id for s in thin.specs] == [s.run_id for s in plain.specs]

    run(every, tmp_path / "thin")
    run(full, tmp_path / "full")
    thin_traces = store.load_traces(tmp_path / "thin" / "long")
    full_traces = store.load_traces(tmp_path / "full" / "long")
    for run_id, tr in thin_traces.groupby("run_id"):
        assert list(tr["step"]) == [7, 14, 21, 28, 30]  # every 7th, and the last
        whole = full_traces[full_traces["run_id"] == run_id].set_index("step")
        pd.testing.assert_frame_equal(
            tr.set_index("step").drop(columns=["step_time"]),
            whole.loc[tr["step"]].drop(columns=["step_time"]),
        )
    records = store.load_records(tmp_path / "thin" / "long")
    assert {r["trace_every"] for r in records} == {7}

    thin_runs = store.load_runs(tmp_path / "thin" / "long").set_index("run_id").sort_index()
    full_runs = store.load_runs(tmp_path / "full" / "long").set_index("run_id").sort_index()
    for column in ("grad_norm_g_growth", "grad_norm_d_growth", "grad_norm_d_p99",
                   "grad_norm_g_median", "final_modes"):  # fmt: skip
        pd.testing.assert_series_equal(thin_runs[column], full_runs[column])
    # the report's growth: the summary's, from every step, whatever the stored trace keeps
    claims = decisions.claim_statistics(thin_runs.reset_index(), thin_traces)
    from_full = decisions.norm_growth(full_traces, "grad_norm_d")
    np.testing.assert_allclose(claims.set_index("run_id")["growth_d"].sort_index(),
                               from_full.sort_index(), rtol=0, atol=0)  # fmt: skip
    # runs stored before the summary had growth: computed from their traces, as before
    older = thin_runs.reset_index().drop(columns=["grad_norm_d_growth"])
    fallback = decisions.claim_statistics(older, full_traces).set_index("run_id")["growth_d"]
    np.testing.assert_allclose(fallback.sort_index(), from_full.sort_index(), rtol=0, atol=0)


def test_a_bad_trace_every_is_a_one_line_error_with_exit_2(sweep_file, capsys):
    config = sweep_file(SWEEP.format(extra="trace_every = 0"))
    assert main(["run", str(config), "--device", "cpu", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "trace_every must be an integer >= 1, got 0" in err and "\n" not in err
