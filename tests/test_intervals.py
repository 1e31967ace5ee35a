"""Intervals that stay in the metric's range, with their coverage checked by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.report import intervals, stats

T975_2 = 4.302652729749464


def test_log_t_interval_is_the_t_interval_of_the_logs_mapped_back():
    ci = intervals.log_t_interval([1.0, math.e, math.e**2])  # logs 0, 1, 2: mean 1, sd 1
    half = T975_2 / math.sqrt(3)
    assert ci.center == pytest.approx(math.e)  # the geometric mean
    assert (ci.lo, ci.hi) == pytest.approx((math.exp(1 - half), math.exp(1 + half)))
    assert ci.method == intervals.LOG_T and ci.n == 3
    with pytest.raises(ValueError, match="> 0"):
        intervals.log_t_interval([1.0, 0.0])


def test_a_log_scale_metric_never_gets_an_interval_below_zero():
    rng = np.random.default_rng(0)
    below = 0
    for _ in range(200):
        x = rng.lognormal(0, 2.0, int(rng.integers(2, 8)))  # spans decades
        ci = intervals.metric_ci(x, bounds=(0, None), log_scale=True)
        assert 0 < ci.lo <= ci.center <= ci.hi
        below += stats.mean_ci(x).lo < 0
    assert below > 100  # where the plain t-interval mostly would go below zero


def test_a_zero_falls_back_to_the_t_interval_cut_at_the_bound():
    x = np.array([0.0, 0.1, 5.0])
    ci = intervals.metric_ci(x, bounds=(0, None), log_scale=True)
    assert ci.method == intervals.T_CUT and ci.lo == 0.0
    assert ci.center == pytest.approx(x.mean()) and ci.hi == pytest.approx(stats.mean_ci(x).hi)


def test_bounded_metrics_are_cut_to_their_range_and_unbounded_ones_are_not():
    fractions = np.array([0.99, 0.97, 1.0])
    ci = intervals.metric_ci(fractions, bounds=(0, 1))
    assert ci.hi == 1.0 and ci.method == intervals.T_CUT
    plain = intervals.metric_ci(np.array([-1.0, 0.5, 2.0]))
    assert plain.method == intervals.T
    assert (plain.lo, plain.hi) == (
        stats.mean_ci([-1.0, 0.5, 2.0]).lo,
        stats.mean_ci([-1, 0.5, 2]).hi,
    )


def test_log_t_coverage_of_the_geometric_mean_is_nominal_for_log_normal_data():
    rng = np.random.default_rng(1)
    sims, n, mu = 2000, 5, 1.0
    x = rng.lognormal(mu, 1.5, (sims, n))
    hits = 0
    for row in x:
        ci = intervals.log_t_interval(row)
        hits += ci.lo < math.exp(mu) < ci.hi
    assert hits / sims == pytest.approx(0.95, abs=3 * math.sqrt(0.95 * 0.05 / sims))


def test_cutting_to_the_range_keeps_the_t_intervals_coverage_exactly():
    rng = np.random.default_rng(2)
    true_mean = 0.9  # Beta(9, 1): fractions piled up against 1
    x = rng.beta(9, 1, (1000, 4))
    cut = [intervals.metric_ci(r, bounds=(0, 1)) for r in x]
    plain = [stats.mean_ci(r) for r in x]
    assert all(0 <= c.lo <= c.hi <= 1 for c in cut)
    assert any(p.hi > 1 for p in plain)  # the uncut intervals do leave the range
    covered_cut = [c.lo < true_mean < c.hi for c in cut]
    assert covered_cut == [p.lo < true_mean < p.hi for p in plain]


def test_bca_bootstrap_stays_in_the_datas_range_for_non_negative_data():
    rng = np.random.default_rng(3)
    for _ in range(30):
        x = rng.exponential(1.0, int(rng.integers(3, 10))) * (rng.random() < 0.5)
        x[0] = 0.0
        lo, hi = stats.bootstrap_ci(x, n_resamples=2000)
        assert x.min() <= lo <= hi <= x.max()


def test_bca_bootstrap_coverage_is_close_to_nominal_at_thirty_values():
    rng = np.random.default_rng(4)
    sims = 300
    hits = sum(
        lo < 1.0 < hi
        for lo, hi in (
            stats.bootstrap_ci(rng.exponential(1.0, 30), n_resamples=2000, seed=i)
            for i in range(sims)
        )
    )
    assert hits / sims == pytest.approx(0.95, abs=0.035)  # BCa corrects most of the skew


def test_the_seaborn_helpers_give_what_metric_ci_gives():
    x = np.array([1.0, 4.0, 16.0])
    ci = intervals.metric_ci(x, bounds=(0, None), log_scale=True)
    assert intervals.errorbar((0, None), log_scale=True)(x) == (ci.lo, ci.hi)
    assert intervals.estimator(log_scale=True)(x) == pytest.approx(4.0)
    assert intervals.estimator()(x) == pytest.approx(7.0)


def test_a_figure_band_is_the_metric_interval_cut_to_the_panel_s_runs():
    import pandas as pd

    from bench.report.figures.canvas import clipped_interval
    from bench.report.intervals import metric_ci

    values = pd.Series([0.01, 0.02, 5.0])  # a t-interval of these reaches far below 0
    lo, hi = clipped_interval(values, True, (0, None), True)(values.to_numpy())
    ci = metric_ci(values, bounds=(0, None), log_scale=True)
    assert (lo, hi) == (max(ci.lo, 0.01), min(ci.hi, 5.0))
    assert 0 < lo < hi
    lo, hi = clipped_interval(values, False, (0, None), False)(values.to_numpy())
    assert lo == 0.01  # the t-interval, cut to the bound 0, then to the runs


def test_no_interval_of_n_equal_values_has_zero_width():
    from bench.report.intervals import EXACT_AT_BOUND, NO_SPREAD, clopper_pearson, metric_ci

    at_top = metric_ci([8.0] * 10, bounds=(0, 8))  # Extra-Adam: 8 of 8 modes in 10 of 10 runs
    lo, hi = clopper_pearson(10, 10)
    assert (at_top.lo, at_top.hi) == pytest.approx((8 * lo, 8.0)) and hi == 1.0
    assert lo == pytest.approx(0.6915, abs=1e-4) and at_top.method == EXACT_AT_BOUND
    at_zero = metric_ci([0.0] * 10, bounds=(0, 1))
    assert (at_zero.lo, at_zero.hi) == pytest.approx((0.0, 1 - lo))
    inside = metric_ci([3.0] * 4, bounds=(0, 8))
    assert math.isnan(inside.lo) and math.isnan(inside.hi) and inside.method == NO_SPREAD
    log = metric_ci([2.5] * 5, bounds=(0, None), log_scale=True)
    assert math.isnan(log.lo) and log.center == 2.5


def test_a_difference_interval_stays_within_the_metrics_span():
    from bench.report import decisions
    from bench.report import verdicts as v

    wide = v.decide([-8.0, 8.0, 0.0], higher_is_better=True, margin=0.5)  # modes, 3 pairs
    assert wide.ci_lo < -8 and wide.ci_hi > 8  # the t-interval knows nothing of the bounds
    cols = decisions.verdict_columns(wide, decisions.FIXED, span=8.0)
    assert (cols["estimate_ci_lo"], cols["estimate_ci_hi"]) == (-8.0, 8.0)
