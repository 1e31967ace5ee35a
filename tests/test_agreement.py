"""``bench agree``: do two samples of one protocol (the CPU study, the same protocol on a GPU)
agree? The table's values, its error rate under discrete and skewed nulls (simulated), its
power, and the command."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench.cli import main
from bench.report import agreement as ag
from bench.report.families import holm


def _runs(values: dict[str, list[float]], **extra) -> pd.DataFrame:
    rows = []
    for optimizer, finals in values.items():
        for seed, v in enumerate(finals):
            rows.append({"workload": "mog-ring", "optimizer": optimizer, "lr": 1e-3,
                         "seed": seed, "final_modes": v, **extra})  # fmt: skip
    return pd.DataFrame(rows)


def test_the_table_gives_each_sides_sample_the_welch_interval_and_the_holm_family():
    a = _runs({"adam": [3, 4, 5, 6, 4, 5], "sgd": [1, 1, 2, 1, 2, 1], "only-a": [1, 2, 3]})
    b = _runs({"adam": [4, 6, 6, 7, 5, 8], "sgd": [1, 2, 1, math.nan, 2, 1], "only-b": [1, 2]})
    t = ag.agreement(a, b, resamples=999).set_index("optimizer")
    assert list(t.index) == ["adam", "sgd"]  # only what both sides ran
    adam = t.loc["adam"]
    assert (adam.n_a, adam.n_b, adam.nonfinite_a, adam.nonfinite_b) == (6, 6, 0, 0)
    assert adam.difference == pytest.approx(6.0 - 4.5)
    ci = sps.ttest_ind([4, 6, 6, 7, 5, 8], [3, 4, 5, 6, 4, 5], equal_var=False)
    assert (adam.ci_lo, adam.ci_hi) == pytest.approx(tuple(ci.confidence_interval(0.95)))
    se = math.sqrt(np.var([3, 4, 5, 6, 4, 5], ddof=1) / 6 + np.var([4, 6, 6, 7, 5, 8], ddof=1) / 6)
    assert adam.detectable_80 == pytest.approx((sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) * se)
    assert t.loc["sgd"].n_b == 5 and t.loc["sgd"].nonfinite_b == 1  # diverged: counted, left out
    np.testing.assert_allclose(t["p_adjusted"], holm(t["p_value"].to_numpy()))
    assert set(t["verdict"]) <= {ag.DIFFER, ag.NO_DIFFERENCE}


def test_an_arm_with_fewer_than_two_finite_runs_is_not_tested_and_leaves_the_family():
    a = _runs({"adam": [3, 4, 5], "sgd": [1, 2, 3]})
    b = _runs({"adam": [4, 6, 6], "sgd": [1, math.nan, math.nan]})
    t = ag.agreement(a, b, resamples=999).set_index("optimizer")
    assert t.loc["sgd"].verdict == ag.NOT_TESTED and math.isnan(t.loc["sgd"].p_adjusted)
    assert t.loc["adam"].p_adjusted == pytest.approx(t.loc["adam"].p_value)  # a family of one


def test_one_value_throughout_agrees_exactly():
    t = ag.agreement(_runs({"adam": [8] * 5}), _runs({"adam": [8] * 7}), resamples=999)
    assert t.loc[0, "p_value"] == 1.0 and t.loc[0, "verdict"] == ag.NO_DIFFERENCE
    assert (t.loc[0, "ci_lo"], t.loc[0, "ci_hi"], t.loc[0, "detectable_80"]) == (0, 0, 0)


NULLS = {
    # modes covered of 8, many ties (the unrolled ring's arms sit at 0-8)
    "discrete": lambda rng, n: rng.binomial(8, 0.45, n).astype(float),
    # reverse-KL-like: strongly right-skewed
    "skewed": lambda rng, n: rng.lognormal(0.0, 1.0, n),
    "normal": lambda rng, n: rng.normal(0.0, 1.0, n),
}


@pytest.mark.parametrize("null", list(NULLS))
def test_the_family_wise_error_under_the_null_is_at_most_5_percent(null):
    """4 optimizers × 10 runs a side drawn from one distribution, 300 simulated comparisons:
    the share with any *differ* after Holm stays within 5% (+ 3 simulation SEs), and each
    test's own rejection rate is near α (the permutation test is exact, not merely bounded)."""
    rng = np.random.default_rng(7)
    draw, reps, family = NULLS[null], 300, 4
    p = np.array([[ag.permutation_p(draw(rng, 10), draw(rng, 10), seed=k, resamples=999)
                   for k in range(family)] for _ in range(reps)])  # fmt: skip
    fwer = (holm(p) < 0.05).any(axis=1).mean()
    se = math.sqrt(0.05 * 0.95 / reps)
    assert fwer <= 0.05 + 3 * se, fwer
    size = (p < 0.05).mean()
    assert 0.05 - 3 * math.sqrt(0.05 * 0.95 / p.size) <= size <= 0.05 + 3 * math.sqrt(
        0.05 * 0.95 / p.size
    ), size


def test_it_detects_a_real_shift():
    """1.5 SD apart at 10 runs a side: a two-sample t test's power is about 0.9."""
    rng = np.random.default_rng(3)
    p = [ag.permutation_p(rng.normal(0, 1, 10), rng.normal(1.5, 1, 10), seed=k, resamples=999)
         for k in range(200)]  # fmt: skip
    assert np.mean(np.array(p) < 0.05) >= 0.8


def test_bench_agree_reads_two_reports_and_exits_1_when_any_differ(tmp_path, capsys):
    same, shifted = tmp_path / "a" / "report", tmp_path / "b" / "report"
    for d in (same, shifted):
        d.mkdir(parents=True)
    a = _runs({"adam": [3, 4, 5, 6, 4, 5, 4, 5, 3, 4], "sgd": [1, 1, 2, 1, 2, 1, 2, 1, 1, 2]})
    a.to_csv(same / "runs.csv", index=False)
    assert main(["agree", str(same), str(same), "--csv", str(tmp_path / "t.csv")]) == 0
    out = capsys.readouterr().out
    assert "family: the 2 tested, Holm-adjusted" in out and "0 differ" in out
    assert len(pd.read_csv(tmp_path / "t.csv")) == 2
    b = a.assign(final_modes=np.where(a["optimizer"] == "adam", a["final_modes"] + 4,
                                      a["final_modes"]))  # fmt: skip
    b.to_csv(shifted / "runs.csv", index=False)
    assert main(["agree", str(same), str(shifted)]) == 1
    out = capsys.readouterr().out
    assert "1 differ" in out and "adam lr=0.001 modes" in out and ": differ" in out


def test_bench_agree_on_a_missing_directory_is_a_one_line_error_with_exit_2(tmp_path, capsys):
    assert main(["agree", str(tmp_path / "nope"), str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "has no runs.csv and no runs/" in err and "\n" not in err
