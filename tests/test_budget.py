"""Comparisons at equal cost: a ``[[compare]]`` with ``budget = "grad_evals"``.

Extra-Adam spends two gradient evaluations a step, optimistic Adam one; the report compares
them at equal steps (the final values) and, where the sweep declares it, at equal gradient
evaluations: Extra-Adam's values at its evaluation after half the steps. These tests run a
tiny real sweep (ogan's ring, 40 steps, an evaluation every 10) and recompute the row from the
stored histories; they check that a run's state at a step does not depend on the run's length
(what makes the half-way evaluation "a run that long"), that divergence is counted at the
budget, and that the pair reads apart from its equal-steps twin everywhere it is named.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

import bench
import ogan
from bench.cli import main
from bench.config import Comparison, parse_sweep
from bench.report import build_report
from bench.report.families import holm
from bench.report.labels import EQUAL_EVALS, comparison_name
from bench.report.tables import at_equal_evals

SWEEP = """\
[sweep]
name = "budget"
seeds = [0, 1, 2, 3, 4]
steps = 40
eval_every = 10

[[workload]]
name = "mog-ring"
batch_size = 64
streams = "counter"

[[optimizer]]
name = "optimistic-adam"
lr = 5e-3

[[optimizer]]
name = "extra-adam"
lr = 5e-3

[[compare]]
arm = "extra-adam"
against = "optimistic-adam"

[[compare]]
arm = "extra-adam"
against = "optimistic-adam"
budget = "grad_evals"
"""


def test_the_budget_is_parsed_kept_in_sweep_json_only_where_not_the_default():
    sweep = parse_sweep(SWEEP)
    assert sweep.compare == (
        Comparison("extra-adam", "optimistic-adam", "steps"),
        Comparison("extra-adam", "optimistic-adam", "grad_evals"),
    )
    assert sweep.manifest()["compare"] == [
        {"arm": "extra-adam", "against": "optimistic-adam"},
        {"arm": "extra-adam", "against": "optimistic-adam", "budget": "grad_evals"},
    ]
    without = SWEEP[: SWEEP.index("[[compare]]")]
    assert [s.run_id for s in sweep.specs] == [s.run_id for s in parse_sweep(without).specs]


def test_a_run_at_a_step_is_the_run_that_ends_there():
    """Extra-Adam's values at step 20 of a 40-step run are those of a 20-step run, bit for bit,
    under the unrolled protocol's options (counter streams, flushed denormals): an evaluation
    draws no training numbers and nothing depends on the length. The equal-cost reading of a
    sweep's histories rests on it."""
    kw = dict(arch="unrolled", batch_size=64, streams="counter", flush_denormal=True,
              eval_every=10, threads=1)  # fmt: skip
    spec = {"name": "extra-adam", "lr": 1e-3, "lr_ratio": 0.1, "betas": (0.5, 0.999)}
    short = ogan.train("mog-ring", spec, steps=20, seed=3, **kw)
    long = ogan.train("mog-ring", spec, steps=40, seed=3, **kw)
    metrics = ["grad_evals", "modes", "high_quality", "reverse_kl", "fd", "loss_g", "loss_d"]
    at = long.history.set_index("step").loc[20, metrics]
    end = short.history.set_index("step").loc[20, metrics]
    assert at.to_numpy(float).tobytes() == end.to_numpy(float).tobytes()
    assert int(at["grad_evals"]) == 80  # two evaluations a step for each player


@pytest.fixture(scope="module")
def budget_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("budget")
    config = root / "budget.toml"
    config.write_text(SWEEP, encoding="utf-8")
    out = root / "results"
    assert main(["run", str(config), "--out", str(out), "--device", "cpu", "--jobs", "1"]) == 0
    sweep_dir = out / "budget"
    return sweep_dir, build_report(sweep_dir)


def _history_at(sweep_dir, label: str, step: int, metric: str) -> pd.Series:
    runs = bench.load_runs(sweep_dir)
    ids = runs.loc[runs["optimizer"] == label].set_index("run_id")["seed"]
    h = bench.load(sweep_dir)
    h = h[h["run_id"].isin(ids.index) & (h["step"] == step)]
    return h.set_index(h["run_id"].map(ids))[metric].astype(float).sort_index()


def test_both_pairs_are_made_and_holm_runs_over_the_two(budget_report):
    _, report = budget_report
    paired = pd.read_csv(report.parent / "paired.csv")
    assert sorted(paired["kind"]) == ["declared", EQUAL_EVALS]
    assert set(paired["base"]) == {"optimistic-adam"} and set(paired["projected"]) == {"extra-adam"}
    assert set(paired["family"]) == {"confirmatory"}
    assert paired["p_adjusted"].to_numpy() == pytest.approx(holm(paired["p_value"].to_numpy()))
    row = paired.set_index("kind").loc[EQUAL_EVALS]
    # optimistic Adam's 40 steps cost 80 evaluations; Extra-Adam has spent them at step 20
    assert (row["budget_grad_evals"], row["budget_step_base"], row["budget_step_projected"]) == (
        80, 40, 20)  # fmt: skip
    assert paired.set_index("kind").loc["declared", ["budget_grad_evals"]].isna().all()


def test_the_equal_cost_row_is_extra_adam_at_step_20_against_optimistic_adam_at_40(budget_report):
    sweep_dir, report = budget_report
    paired = pd.read_csv(report.parent / "paired.csv").set_index("kind")
    extra = _history_at(sweep_dir, "extra-adam", 20, "modes")
    optimistic = _history_at(sweep_dir, "optimistic-adam", 40, "modes")
    d = extra - optimistic
    row = paired.loc[EQUAL_EVALS]
    assert row["n_pairs"] == 5
    means = (row["projected_mean"], row["base_mean"])
    assert means == pytest.approx((extra.mean(), optimistic.mean()))
    assert row["mean_diff"] == pytest.approx(d.mean())
    assert d.std() > 0  # the fixture's pairs differ, so the p-value below is a real check
    assert row["p_value"] == pytest.approx(sps.ttest_1samp(d, 0.0).pvalue)
    # the equal-steps row is the finals: Extra-Adam at step 40
    final = _history_at(sweep_dir, "extra-adam", 40, "modes")
    assert paired.loc["declared", "projected_mean"] == pytest.approx(final.mean())
    # budget.csv holds what the row was computed from: each run's values at its budget step
    budget = pd.read_csv(report.parent / "budget.csv")
    by = {o: g.set_index("seed") for o, g in budget.groupby("optimizer")}
    arm, base = by["extra-adam"], by["optimistic-adam"]
    assert set(arm["budget_step"]) == {20} and set(base["budget_step"]) == {40}
    assert arm["final_modes"].sort_index().tolist() == extra.tolist()
    assert (arm["final"] - base["final"]).mean() == pytest.approx(d.mean())
    # a secondary metric is read at the budget too
    secondary = pd.read_csv(report.parent / "comparisons.csv")
    hq = secondary[(secondary["kind"] == EQUAL_EVALS) & (secondary["statistic"] == "high_quality")]
    expected = (_history_at(sweep_dir, "extra-adam", 20, "high_quality")
                - _history_at(sweep_dir, "optimistic-adam", 40, "high_quality"))  # fmt: skip
    assert hq["family"].tolist() == ["secondary"]
    assert hq["estimate"].iloc[0] == pytest.approx(expected.mean())


def test_whole_run_statistics_and_curves_stay_with_the_equal_steps_pair(budget_report):
    _, report = budget_report
    c = pd.read_csv(report.parent / "comparisons.csv")
    assert set(c.loc[c["kind"] == EQUAL_EVALS, "family"]) == {"confirmatory", "secondary"}
    assert (c.loc[c["family"] == "exploratory", "kind"] == "declared").all()
    curves = pd.read_csv(report.parent / "paired_curves.csv")
    assert set(curves["kind"]) == {"declared"}
    text = report.read_text(encoding="utf-8")
    assert "extra-adam vs optimistic-adam at equal gradient evaluations" in text


def test_a_run_diverged_by_the_budget_is_non_finite_there_and_one_diverged_later_is_not(
    budget_report,
):
    sweep_dir, _ = budget_report
    a = bench.analyse(sweep_dir)
    base = a.by_seed("mog-ring", "optimistic-adam")
    variant = a.by_seed("mog-ring", "extra-adam").copy()
    variant["diverged_at"] = variant["diverged_at"].astype(float)
    variant.loc[0, "diverged_at"] = 20.0  # by the budget step (20): out at the budget
    variant.loc[1, "diverged_at"] = 30.0  # after it: the budget's run would not have
    b, v = at_equal_evals(a.data, "mog-ring", base, variant)
    assert v.loc[0, "nonfinite"] and not v.loc[1, "nonfinite"]
    assert np.isfinite(v.loc[1, "final"]) and not b["nonfinite"].any()
    assert (v["budget_step"] == 20).all() and (b["budget_step"] == 40).all()


def test_the_names_read_apart():
    assert comparison_name("extra-adam", "optimistic-adam", "declared") == (
        "extra-adam vs optimistic-adam")  # fmt: skip
    assert comparison_name("extra-adam", "optimistic-adam", EQUAL_EVALS) == (
        "extra-adam vs optimistic-adam at equal gradient evaluations")  # fmt: skip
