"""Verdicts of paired comparisons: hand-computed cases, scipy's t-tests, and the power formula."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench.report import verdicts as v

T975_2, T95_2 = 4.302652729749464, 2.919985580355516  # t quantiles, 2 and 3 degrees of freedom
T975_3, T95_3 = 3.182446305284263, 2.353363434801823
SE_123 = 1 / math.sqrt(3)  # diffs 1, 2, 3: mean 2, sd 1
SE_2345 = math.sqrt(5 / 3) / 2  # diffs 2, 3, 4, 5: mean 3.5, sd √(5/3)

# diffs, higher_is_better, margin -> verdict, difference interval, equivalence interval
CASES = [
    ([1, 2, 3], True, 5.0, v.EQUIVALENT, 2 - T975_2 * SE_123, 2 - T95_2 * SE_123),
    ([1, 2, 3], True, 3.0, v.UNDECIDED, 2 - T975_2 * SE_123, 2 - T95_2 * SE_123),
    ([2, 3, 4, 5], True, 1.0, v.BETTER, 3.5 - T975_3 * SE_2345, 3.5 - T95_3 * SE_2345),
    ([2, 3, 4, 5], False, 1.0, v.WORSE, 3.5 - T975_3 * SE_2345, 3.5 - T95_3 * SE_2345),
    # detectably different, yet shown to be within ±6: equivalence takes precedence
    ([2, 3, 4, 5], True, 6.0, v.EQUIVALENT, 3.5 - T975_3 * SE_2345, 3.5 - T95_3 * SE_2345),
    ([0, 0, 0], True, 0.0, v.EQUIVALENT, 0.0, 0.0),  # identical: equivalent even at δ = 0
    # a constant difference has no spread: the sign test decides, 2 · 2⁻ⁿ < α from n = 6
    ([1, 1, 1], True, 0.5, v.UNDECIDED, 1.0, 1.0),
    ([1] * 6, True, 0.5, v.BETTER, 1.0, 1.0),
    ([-2] * 6, True, 0.5, v.WORSE, -2.0, -2.0),
    ([1, 1, 1], False, 2.0, v.EQUIVALENT, 1.0, 1.0),
]


@pytest.mark.parametrize("diffs, hib, margin, verdict, ci_lo, eq_lo", CASES)
def test_decide_gives_the_hand_computed_verdict_and_intervals(
    diffs, hib, margin, verdict, ci_lo, eq_lo
):
    got = v.decide(np.array(diffs, float), higher_is_better=hib, margin=margin)
    mean = float(np.mean(diffs))
    assert got.verdict == verdict
    assert got.n == len(diffs) and got.estimate == pytest.approx(mean)
    assert (got.ci_lo, got.ci_hi) == pytest.approx((ci_lo, 2 * mean - ci_lo), rel=1e-9)
    assert (got.eq_lo, got.eq_hi) == pytest.approx((eq_lo, 2 * mean - eq_lo), rel=1e-9)


def test_a_constant_difference_is_decided_by_the_exact_sign_test():
    two = v.decide(np.array([-0.84, -0.84]), higher_is_better=False, margin=0.1)
    assert two.verdict == v.UNDECIDED and "sign test's p = 0.5 ≥ 0.05" in two.reason
    six = v.decide(np.full(6, -0.84), higher_is_better=False, margin=0.1)
    assert six.verdict == v.BETTER and "p = 0.031 < 0.05" in six.reason
    assert sps.binomtest(6, 6).pvalue == pytest.approx(2 * 0.5**6)  # the exact sign test


def test_fewer_than_two_pairs_are_undecided():
    for diffs in ([], [0.5], [math.nan, 2.0]):
        got = v.decide(np.array(diffs, float), higher_is_better=True, margin=1.0)
        assert got.verdict == v.UNDECIDED and "at least 2" in got.reason


@pytest.mark.parametrize("seed", range(40))
def test_the_fixed_rule_is_scipys_t_test_and_its_two_one_sided_tests(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 13))
    d = rng.normal(rng.uniform(-1.5, 1.5), rng.uniform(0.2, 2.0), n)
    margin = float(rng.uniform(0.1, 2.0))
    got = v.decide(d, higher_is_better=False, margin=margin)
    ttest = sps.ttest_1samp(d, 0.0)
    lo, hi = ttest.confidence_interval(1 - v.ALPHA)
    assert (got.ci_lo, got.ci_hi) == pytest.approx((lo, hi), rel=1e-9, abs=1e-12)
    different = ttest.pvalue < v.ALPHA
    tost = max(
        sps.ttest_1samp(d, -margin, alternative="greater").pvalue,
        sps.ttest_1samp(d, margin, alternative="less").pvalue,
    )
    if tost < v.ALPHA:
        assert got.verdict == v.EQUIVALENT
    elif different:
        assert got.verdict == (v.BETTER if d.mean() < 0 else v.WORSE)  # lower is better
    else:
        assert got.verdict == v.UNDECIDED


def test_classify_gives_one_verdict_each_and_calls_identical_variants_equivalent():
    rng = np.random.default_rng(1)
    mean = np.concatenate([rng.normal(0, 1, 5000), np.zeros(100)])
    se = np.concatenate([rng.uniform(0, 1, 5000), np.zeros(100)])
    for hib in (True, False):
        out = v.classify(mean, se, c=2.3, b=1.9, margin=0.5, higher_is_better=hib)
        assert set(out) <= set(v.VERDICTS)
        assert (out[-100:] == v.EQUIVALENT).all()
        both = (np.abs(mean) - 2.3 * se > 0) & (np.abs(mean) + 1.9 * se < 0.5)
        assert both.any() and (out[both] == v.EQUIVALENT).all()  # the precedence, not both


def test_classify_elementwise_equals_decide():
    rng = np.random.default_rng(2)
    samples = [rng.normal(rng.uniform(-1, 1), 1, 6) for _ in range(200)]
    mean = np.array([s.mean() for s in samples])
    se = np.array([s.std(ddof=1) / math.sqrt(6) for s in samples])
    c, b = sps.t.ppf(1 - v.ALPHA / 2, 5), sps.t.ppf(1 - v.ALPHA, 5)
    out = v.classify(mean, se, c=c, b=b, margin=0.4, higher_is_better=True)
    assert list(out) == [v.decide(s, higher_is_better=True, margin=0.4).verdict for s in samples]


def test_a_log_scale_metric_is_compared_by_log_ratio_with_a_ten_percent_margin():
    base = pd.Series([10.0, 20.0, 40.0, 80.0], index=[2, 3, 4, 5])
    variant = base * np.array([0.8, 0.82, 0.79, 0.81])  # 20% better on every seed
    got = v.paired_verdict(base, variant, higher_is_better=False, log_scale=True)
    ratios = np.log(variant / base)
    assert got.scale == v.LOG_RATIO
    assert got.estimate == pytest.approx(ratios.mean())
    assert got.margin == pytest.approx(math.log(1.1))
    assert got.verdict == v.BETTER
    assert "ratio 0.805" in got.describe() and "±10%" in got.describe()
    on_the_difference = v.paired_verdict(base, variant, higher_is_better=False)
    assert on_the_difference.scale == v.DIFFERENCE  # dominated by the seed at 80
    assert on_the_difference.verdict == v.UNDECIDED


def test_a_zero_value_falls_back_to_the_difference_scale():
    base, variant = pd.Series([1.0, 2.0, 3.0]), pd.Series([0.0, 2.5, 3.5])
    got = v.paired_verdict(base, variant, higher_is_better=False, log_scale=True)
    assert got.scale == v.DIFFERENCE
    assert got.margin == pytest.approx(0.1 * 2.0)  # 10% of the base mean over the pairs


def test_paired_verdict_matches_seeds_and_takes_a_metric_specific_margin():
    base = pd.Series({0: 5.0, 1: 6.0, 2: 7.0, 3: math.nan})
    variant = pd.Series({1: 6.1, 2: 7.05, 3: 1.0, 4: 2.0, 0: 5.02})
    got = v.paired_verdict(base, variant, higher_is_better=True, margin=0.5)
    assert got.n == 3 and got.margin == 0.5
    assert got.estimate == pytest.approx(np.mean([0.02, 0.1, 0.05]))
    with pytest.raises(ValueError, match="margin"):
        v.paired_verdict(base, variant, higher_is_better=True, margin=-1.0)


def test_identical_variants_are_equivalent_on_either_scale():
    base = pd.Series([3.0, 1.0, 4.0, 1.5])
    for log_scale in (False, True):
        got = v.paired_verdict(base, base.copy(), higher_is_better=False, log_scale=log_scale)
        assert got.verdict == v.EQUIVALENT and "identical" in got.reason


# G*Power 3.1, one-sample t test, two tails, α = 0.05, power 0.8: n for effect sizes d
@pytest.mark.parametrize("effect, n", [(0.2, 199), (0.5, 34), (0.8, 15), (1.0, 10)])
def test_seeds_for_power_are_the_published_sample_sizes(effect, n):
    assert v.seeds_for_power(2.0, 2.0 * effect) == n
    assert v.power_at(n, 1.0, effect) >= 0.8 > v.power_at(n - 1, 1.0, effect)


def test_power_at_matches_a_simulated_paired_t_test():
    rng = np.random.default_rng(3)
    d = rng.normal(0.7, 1.0, (40_000, 12))
    t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(12))
    simulated = (np.abs(t) > sps.t.ppf(0.975, 11)).mean()
    assert v.power_at(12, 1.0, 0.7) == pytest.approx(simulated, abs=0.01)


def test_seeds_for_power_without_an_effect_or_a_spread():
    assert v.seeds_for_power(1.0, 0.0) is None
    assert v.seeds_for_power(math.nan, 1.0) is None
    assert v.seeds_for_power(0.0, 1.0) == 2
    assert v.seeds_for_power(1e6, 1e-6) is None  # more than MAX_POWER_SEEDS


# -- costs to a target, some runs never reaching it --------------------------------------------


def _costs(costs, budget=1000.0):
    """A cost frame: NaN cost = not reached within ``budget`` (a scalar or one per seed)."""
    return pd.DataFrame({"cost": np.asarray(costs, float), "budget": budget})


def test_a_cost_without_a_censored_pair_is_the_log_ratio_t_rule():
    base = _costs([100, 200, 300, 400, 500])
    variant = _costs([110, 190, 330, 380, 560])
    got = v.censored_cost_verdict(base, variant)
    want = v.paired_verdict(base["cost"], variant["cost"], higher_is_better=False, log_scale=True)
    assert got == want and got.scale == v.LOG_RATIO


def test_a_pair_where_only_one_run_reached_counts_for_the_one_that_did():
    # 8 pairs where the variant is 1.5x dearer, 2 where it never reached: all 10 say "dearer"
    base = _costs(np.arange(1, 11) * 50.0)
    variant = _costs([np.nan, np.nan, *(np.arange(3, 11) * 75.0)])
    got = v.censored_cost_verdict(base, variant)
    assert got.verdict == v.WORSE and got.n == 10
    assert "2 pair(s) where only one run reached" in got.reason
    assert "p = 0.002 < 0.05" in got.reason  # 2 · 2⁻¹⁰
    assert got.estimate == pytest.approx(math.log(1.5))  # the median log ratio
    # n = 10: the order-statistic interval is [d_(2), d_(9)] (coverage 1 − 2·11/1024 ≈ 97.9%)
    assert got.ci_lo == pytest.approx(math.log(1.5)) and got.ci_hi == math.inf
    assert math.isnan(got.eq_lo) and got.seeds_for_power is None
    assert got.effect() == "median ratio 1.5 [1.5, ∞]"  # not exp's overflow
    # dropping the censored pairs, as a test on reached pairs only must, hides two of them:
    # 8 identical ratios are still "worse" (8 ≥ 6), but with 4 pairs it would be undecided
    short = v.censored_cost_verdict(base.iloc[:6], variant.iloc[:6])
    assert short.verdict == v.WORSE and short.n == 6  # 6 known orders: 2 · 2⁻⁶ < 0.05
    reached_only = v.paired_verdict(
        base["cost"].iloc[:6], variant["cost"].iloc[:6], higher_is_better=False, log_scale=True
    )
    assert reached_only.n == 4 and reached_only.verdict == v.UNDECIDED


def test_the_order_is_unknown_when_the_other_run_stopped_first_or_neither_reached():
    base = _costs([np.nan, 100, np.nan, 100, 100, 100], budget=[50, 1e3, 1e3, 1e3, 1e3, 1e3])
    variant = _costs([100, 120, np.nan, np.nan, 90, 80], budget=[1e3, 1e3, 1e3, 90, 1e3, 1e3])
    # seed 0: base stopped at 50 without reaching, the variant reached at 100: unknown
    # seed 2: neither reached: unknown; seed 3: the variant stopped at 90 < 100: unknown
    got = v.censored_cost_verdict(base, variant)
    assert got.n == 3 and got.verdict == v.UNDECIDED  # no censored pair with a known order
    variant.loc[3, "budget"] = 1e3  # now seed 3's variant ran past the base's 100: dearer
    got = v.censored_cost_verdict(base, variant)
    assert got.n == 4 and "1 pair(s) where only one run reached" in got.reason
    assert "(2 variant cheaper, 2 base cheaper, 0 ties): p = 1" in got.reason
    assert got.verdict == v.UNDECIDED


def test_identical_variants_are_never_different_however_many_never_reached():
    costs = [100, np.nan, 300, np.nan, 500, 600, np.nan, 800]
    got = v.censored_cost_verdict(_costs(costs), _costs(costs))
    assert got.verdict == v.EQUIVALENT and got.n == 5


def test_with_no_true_difference_a_censored_cost_is_rarely_called_different():
    # 1,000 studies of 10 pairs; both sides draw lognormal costs from one law and stop at the
    # same budget, so ~30% of runs never reach: "better" or "worse" in at most α of them
    rng = np.random.default_rng(0)
    called = 0
    for _ in range(1000):
        b, w = rng.lognormal(0, 1, (2, 10))
        b[b > 1.7], w[w > 1.7] = np.nan, np.nan
        got = v.censored_cost_verdict(_costs(b, 1.7), _costs(w, 1.7))
        called += got.verdict in (v.BETTER, v.WORSE)
    assert called / 1000 < 0.05


def test_the_median_interval_is_the_sign_tests_and_takes_infinite_ends():
    d = np.sort(np.array([-np.inf, -1, 0, 1, 2, 3, 4, 5, 6, np.inf]))
    assert v._median_interval(d, 0.05) == (-1.0, 6.0)  # j = 2 for n = 10
    assert v._median_interval(d[:5], 0.05) == (-math.inf, math.inf)  # n = 5: P(X = 0) > 2.5%
    assert v._median(d) == 2.5  # the mean of the two finite middles, 2 and 3
    assert math.isnan(v._median(np.array([-np.inf, np.inf])))
