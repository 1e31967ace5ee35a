"""The report's statistics on inputs whose answers are known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench.report import stats


def test_mean_ci_is_the_student_t_interval():
    ci = stats.mean_ci([1.0, 2.0, 3.0])
    half = 4.302652729749464 * 1.0 / math.sqrt(3)  # t_{0.975, 2} · s / √n with s = 1
    assert ci.mean == 2.0
    assert ci.n == 3
    assert ci.lo == pytest.approx(2.0 - half, rel=1e-9)
    assert ci.hi == pytest.approx(2.0 + half, rel=1e-9)
    assert ci.half_width == pytest.approx(half, rel=1e-9)


def test_mean_ci_ignores_non_finite_values_and_has_no_interval_for_one_value():
    ci = stats.mean_ci([5.0, math.nan, math.inf])
    assert (ci.mean, ci.n) == (5.0, 1)
    assert math.isnan(ci.lo) and math.isnan(ci.hi)
    empty = stats.mean_ci([])
    assert empty.n == 0 and math.isnan(empty.mean)


def test_t_interval_returns_the_bounds_seaborn_expects():
    lo, hi = stats.t_interval(np.array([1.0, 2.0, 3.0]))
    assert (lo, hi) == pytest.approx((stats.mean_ci([1, 2, 3]).lo, stats.mean_ci([1, 2, 3]).hi))


def test_bootstrap_ci_is_deterministic_and_degenerates_on_constant_data():
    x = np.random.default_rng(1).normal(size=20)
    assert stats.bootstrap_ci(x) == stats.bootstrap_ci(x)
    assert stats.bootstrap_ci(x, seed=1) != stats.bootstrap_ci(x, seed=2)
    assert stats.bootstrap_ci([3.0, 3.0, 3.0]) == (3.0, 3.0)
    assert all(math.isnan(v) for v in stats.bootstrap_ci([1.0]))


def test_bootstrap_ci_of_a_large_normal_sample_matches_the_t_interval():
    x = np.random.default_rng(0).normal(10.0, 2.0, size=400)
    lo, hi = stats.bootstrap_ci(x)
    t = stats.mean_ci(x)
    # the t half-width is ~0.2; a 90% interval would be ~0.03 off at each end
    assert lo == pytest.approx(t.lo, abs=0.01)
    assert hi == pytest.approx(t.hi, abs=0.01)


def test_bootstrap_ci_uses_the_given_statistic():
    x = np.arange(1.0, 12.0)
    lo, hi = stats.bootstrap_ci(x, statistic=np.median)
    # The resampled median is <= k exactly when 6 of the 11 draws are <= k: P = P(Bin(11, k/11)
    # >= 6). The 2.5% and 97.5% quantiles of that law are the interval's ends.
    cdf = {k: sps.binom.sf(5, 11, k / 11) for k in range(1, 12)}
    assert lo == min(k for k in cdf if cdf[k] >= 0.025)
    assert hi == min(k for k in cdf if cdf[k] >= 0.975)


def test_paired_differences_match_on_the_index_and_drop_non_finite_pairs():
    a = pd.Series({0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0})
    b = pd.Series({1: 5.0, 2: math.nan, 3: 3.0, 4: 9.0})
    d = stats.paired_differences(a, b)
    assert d.to_dict() == {1: 3.0, 3: -1.0}


def test_min_signed_rank_pvalue_is_two_over_two_to_the_n():
    assert stats.min_signed_rank_pvalue(5) == 0.0625
    assert stats.min_signed_rank_pvalue(6) == 0.03125
    assert stats.min_signed_rank_pvalue(1) == 1.0


def test_signed_rank_matches_scipy_and_flags_small_n():
    d = np.array([0.5, 1.2, -0.3, 2.0, 0.8, 1.5, 0.9, 1.1])
    statistic, p, note = stats.signed_rank(d)
    ref = sps.wilcoxon(d)
    assert (statistic, p) == (float(ref.statistic), float(ref.pvalue))
    assert note == ""
    _, p_small, note_small = stats.signed_rank([1.0, 2.0, 3.0])
    assert p_small == pytest.approx(0.25)  # all three positive: the exact p is 2/2³
    assert "n=3 is too small" in note_small and "0.25" in note_small


def test_signed_rank_of_all_positive_differences_reaches_its_exact_minimum():
    _, p, _ = stats.signed_rank(np.arange(1.0, 9.0))
    assert p == pytest.approx(2 / 2**8)


def test_signed_rank_of_identical_runs_is_one():
    statistic, p, note = stats.signed_rank([0.0, 0.0, 0.0])
    assert p == 1.0 and math.isnan(statistic) and "zero" in note


def test_compare_paired_counts_wins_in_the_metric_direction():
    a = pd.Series([3.0, 3.0, 3.0, 3.0], index=[0, 1, 2, 3])
    b = pd.Series([1.0, 2.0, 4.0, 1.0], index=[0, 1, 2, 3])
    lower = stats.compare_paired(a, b, higher_is_better=False)
    higher = stats.compare_paired(a, b, higher_is_better=True)
    assert lower.n == 4 and lower.mean_diff == pytest.approx(-1.0)
    assert (lower.b_better, higher.b_better) == (3, 1)
    # a percentile interval of the mean of [-2, -1, 1, -2] lies inside [min, max] and holds -1
    assert -2.0 <= lower.ci_lo < -1.0 < lower.ci_hi <= 1.0
    assert "too small" in lower.note


def test_compare_paired_with_one_pair_says_no_interval_is_possible():
    cmp = stats.compare_paired(pd.Series([1.0]), pd.Series([2.0]))
    assert cmp.n == 1 and math.isnan(cmp.ci_lo) and "1 pair" in cmp.note


@pytest.mark.parametrize(
    ("seeds", "selection", "report"),
    [
        ([0, 1, 2], [0], [1, 2]),
        ([3, 1, 2, 0], [0, 1], [2, 3]),
        ([0, 0, 1, 1], [0], [1]),
        ([7], [7], [7]),
        ([], [], []),
    ],
)
def test_split_seeds_selects_on_the_lowest_half_and_reports_on_the_rest(seeds, selection, report):
    assert stats.split_seeds(seeds) == (selection, report)


def _runs(rows):
    return pd.DataFrame(rows, columns=["wl", "lr", "value", "nonfinite"])


def test_select_best_prefers_fewer_nonfinite_runs_over_a_better_mean():
    runs = _runs(
        [
            ("a", 0.1, 0.1, False),
            ("a", 0.1, math.nan, True),  # best mean, one non-finite run
            ("a", 0.01, 5.0, False),
            ("a", 0.01, 6.0, False),  # worse mean, none non-finite
        ]
    )
    best = stats.select_best(runs, ["wl"], "value", "nonfinite")
    assert best.loc[0, "lr"] == 0.01
    assert best.loc[0, "nonfinite_rate"] == 0.0
    assert best.loc[0, "score"] == 5.5


def test_select_best_follows_the_metric_direction_and_breaks_ties_by_smaller_lr():
    runs = _runs([("a", 0.1, 2.0, False), ("a", 0.01, 1.0, False), ("a", 0.001, 2.0, False)])
    assert stats.select_best(runs, ["wl"], "value", "nonfinite").loc[0, "lr"] == 0.01
    high = stats.select_best(runs, ["wl"], "value", "nonfinite", higher_is_better=True)
    assert high.loc[0, "lr"] == 0.001  # 0.1 and 0.001 tie at 2.0: the smaller wins


def test_select_best_counts_a_non_finite_metric_as_a_nonfinite_run():
    runs = _runs([("a", 0.1, math.inf, False), ("a", 0.01, 9.0, False)])
    assert stats.select_best(runs, ["wl"], "value", "nonfinite").loc[0, "lr"] == 0.01


def test_performance_ratios_divide_by_the_best_and_keep_infinite_costs_and_absences():
    costs = pd.DataFrame(
        {
            "A": [1.0, 2.0, 0.0, math.inf],
            "B": [2.0, 1.0, 3.0, math.inf],
            "C": [math.inf, 4.0, math.nan, math.nan],
        },
        index=["w1", "w2", "w3", "w4"],
    )
    r = stats.performance_ratios(costs)
    assert r.loc["w1"].tolist() == [1.0, 2.0, math.inf]
    assert r.loc["w2"].tolist() == [2.0, 1.0, 4.0]
    assert r.loc["w3", "A"] == 1.0 and r.loc["w3", "B"] == math.inf and math.isnan(r.loc["w3", "C"])
    assert r.loc["w4", "A"] == math.inf and math.isnan(r.loc["w4", "C"])


def test_performance_profile_is_the_fraction_of_problems_within_tau():
    costs = pd.DataFrame(
        {"A": [1.0, 2.0], "B": [2.0, 1.0], "C": [math.inf, 4.0], "D": [3.0, math.nan]},
        index=["w1", "w2"],
    )
    prof = stats.performance_profile(costs, [1.0, 2.0, 3.0, 4.0])
    assert prof["A"].tolist() == [0.5, 1.0, 1.0, 1.0]
    assert prof["B"].tolist() == [0.5, 1.0, 1.0, 1.0]
    assert prof["C"].tolist() == [0.0, 0.0, 0.0, 0.5]
    assert prof["D"].tolist() == [0.0, 0.0, 1.0, 1.0]  # only w1 counts: D did not run on w2


def test_performance_profile_refuses_negative_costs():
    with pytest.raises(ValueError, match="costs >= 0"):
        stats.performance_profile(pd.DataFrame({"A": [-1.0]}), [1.0])


def test_rank_scores_put_nonfinite_runs_last_and_average_ties():
    nonfinite = pd.Series([0.0, 0.0, 0.5, 0.0, 0.0], index=list("abcde"))
    score = pd.Series([2.0, 1.0, 0.1, 2.0, math.nan], index=list("abcde"))
    ranks = stats.rank_scores(nonfinite, score)
    assert ranks.to_dict() == {"a": 2.5, "b": 1.0, "c": 5.0, "d": 2.5, "e": 4.0}
    high = stats.rank_scores(nonfinite, score, higher_is_better=True)
    assert high["a"] == 1.5 and high["b"] == 3.0


def test_a_workload_with_one_lr_per_optimizer_reports_every_seed():
    """Nothing to select: halving the seeds would throw away seed pairs for nothing."""
    from bench.report.tables import seed_splits

    one = pd.DataFrame({"workload": "w", "optimizer": ["a"] * 4 + ["b"] * 4,
                        "lr": 1e-3, "seed": [0, 1, 2, 3] * 2})  # fmt: skip
    split = seed_splits(one)["w"]
    assert (split.selection, split.report, split.selecting) == ([], [0, 1, 2, 3], [0, 1, 2, 3])
    assert not split.shared and "nothing is selected" in split.describe()
    two = one.assign(lr=[1e-3, 1e-3, 1e-3, 1e-3, 1e-3, 2e-3, 1e-3, 2e-3])
    split = seed_splits(two)["w"]
    assert (split.selection, split.report) == ([0, 1], [2, 3])
    fixed = seed_splits(one, {"w": [0]})["w"]  # a selection fixed by --until-decided stays
    assert (fixed.selection, fixed.report) == ([0], [1, 2, 3])
