"""Verdicts of paired comparisons: hand-computed cases, scipy's t-tests, and the power formula."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench.report import verdicts as v

T975_4, T95_4 = 2.7764451051977987, 2.131846786326649  # t quantiles, 4 degrees of freedom
T975_5, T95_5 = 2.570581835636314, 2.0150483733330233  # 5 degrees of freedom
SE_A = math.sqrt(2.5) / math.sqrt(5)  # diffs 1..5: mean 3, sd √2.5
SE_B = math.sqrt(3.5) / math.sqrt(6)  # diffs 2..7: mean 4.5, sd √3.5

# diffs, higher_is_better, margin -> verdict, difference interval, equivalence interval
CASES = [
    ([1, 2, 3, 4, 5], True, 6.0, v.EQUIVALENT, 3 - T975_4 * SE_A, 3 - T95_4 * SE_A),
    ([1, 2, 3, 4, 5], True, 4.0, v.BETTER, 3 - T975_4 * SE_A, 3 - T95_4 * SE_A),
    ([1, 2, 3, 4, 5], True, math.nan, v.BETTER, 3 - T975_4 * SE_A, 3 - T95_4 * SE_A),
    ([2, 3, 4, 5, 6, 7], True, 1.0, v.BETTER, 4.5 - T975_5 * SE_B, 4.5 - T95_5 * SE_B),
    ([2, 3, 4, 5, 6, 7], False, 1.0, v.WORSE, 4.5 - T975_5 * SE_B, 4.5 - T95_5 * SE_B),
    # detectably different, yet shown to be within ±7: equivalence takes precedence
    ([2, 3, 4, 5, 6, 7], True, 7.0, v.EQUIVALENT, 4.5 - T975_5 * SE_B, 4.5 - T95_5 * SE_B),
    # fewer than MIN_EQUIVALENCE_PAIRS: never equivalent, whatever the margin
    ([1, 2, 3], True, 100.0, v.UNDECIDED, 2 - 4.302652729749464 / math.sqrt(3), math.nan),
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
    if math.isfinite(eq_lo):
        assert (got.eq_lo, got.eq_hi) == pytest.approx((eq_lo, 2 * mean - eq_lo), rel=1e-9)
    else:
        assert math.isnan(got.p_equivalence) and "needs ≥ 5 pairs" in got.reason


# a constant difference: the sign test, the same p for +c and −c; no interval (no spread)
SIGN_CASES = [
    ([1.0] * 2, 0.5, v.UNDECIDED, 0.5),
    ([1.0] * 6, 0.5, v.BETTER, 2 * 0.5**6),
    ([-1.0] * 6, 0.5, v.WORSE, 2 * 0.5**6),
    ([-2.0] * 5, 0.5, v.UNDECIDED, 2 * 0.5**5),
    ([1.0] * 5, 2.0, v.EQUIVALENT, 2 * 0.5**5),  # all 5 inside ±2: p_equivalence = 2⁻⁵
    ([0.0] * 5, 0.5, v.EQUIVALENT, 1.0),
    ([0.0] * 4, 0.5, v.UNDECIDED, 1.0),  # identical, but 4 pairs: no shortcut
    ([0.0] * 12, math.nan, v.UNDECIDED, 1.0),  # identical, no margin: no equivalence
]


@pytest.mark.parametrize("diffs, margin, verdict, p", SIGN_CASES)
def test_a_constant_difference_is_decided_by_the_exact_sign_test_both_ways(
    diffs, margin, verdict, p
):
    got = v.decide(np.array(diffs), higher_is_better=True, margin=margin)
    assert got.verdict == verdict and got.p_value == pytest.approx(p)
    assert math.isnan(got.ci_lo) and "no spread: no interval" in got.effect()
    flipped = v.decide(-np.array(diffs), higher_is_better=False, margin=margin)
    assert flipped.verdict == verdict and flipped.p_value == got.p_value
    if diffs[0] != 0:
        assert p == pytest.approx(sps.binomtest(len(diffs), len(diffs)).pvalue)


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


def test_classify_gives_one_verdict_each_and_no_shortcut_for_zero_spread():
    rng = np.random.default_rng(1)
    mean = np.concatenate([rng.normal(0, 1, 5000), np.zeros(100)])
    se = np.concatenate([rng.uniform(0, 1, 5000), np.zeros(100)])
    for hib in (True, False):
        out = v.classify(mean, se, c=2.3, b=1.9, margin=0.5, higher_is_better=hib)
        assert set(out) <= set(v.VERDICTS)
        assert (out[-100:] == v.UNDECIDED).all()  # identical: only the test may decide
        both = (np.abs(mean) - 2.3 * se > 0) & (np.abs(mean) + 1.9 * se < 0.5) & (se > 0)
        assert both.any() and (out[both] == v.EQUIVALENT).all()  # the precedence, not both
        few = v.classify(mean, se, c=2.3, b=1.9, margin=0.5, higher_is_better=hib, n=4)
        assert not (few == v.EQUIVALENT).any()
        none = v.classify(mean, se, c=2.3, b=1.9, margin=math.nan, higher_is_better=hib)
        assert not (none == v.EQUIVALENT).any()


def test_classify_elementwise_equals_decide():
    rng = np.random.default_rng(2)
    samples = [rng.normal(rng.uniform(-1, 1), 1, 6) for _ in range(200)]
    mean = np.array([s.mean() for s in samples])
    se = np.array([s.std(ddof=1) / math.sqrt(6) for s in samples])
    c, b = sps.t.ppf(1 - v.ALPHA / 2, 5), sps.t.ppf(1 - v.ALPHA, 5)
    out = v.classify(mean, se, c=c, b=b, margin=0.4, higher_is_better=True)
    assert list(out) == [v.decide(s, higher_is_better=True, margin=0.4).verdict for s in samples]


def test_a_log_scale_metric_is_compared_by_log_ratio_with_its_declared_margin():
    base = pd.Series([10.0, 20.0, 40.0, 80.0, 30.0], index=[2, 3, 4, 5, 6])
    variant = base * np.array([0.8, 0.82, 0.79, 0.81, 0.8])  # 20% better on every seed
    got = v.paired_verdict(base, variant, higher_is_better=False, log_scale=True, margin=0.1)
    ratios = np.log(variant / base)
    assert got.scale == v.LOG_RATIO
    assert got.estimate == pytest.approx(ratios.mean())
    assert got.margin == pytest.approx(math.log(1.1))
    assert got.verdict == v.BETTER
    assert got.p_value == pytest.approx(sps.ttest_1samp(ratios, 0).pvalue)
    assert "ratio 0.804" in got.describe() and "±10%" in got.describe()
    on_the_difference = v.paired_verdict(base, variant, higher_is_better=False)
    assert on_the_difference.scale == v.DIFFERENCE  # dominated by the seed at 80
    assert on_the_difference.p_value > 100 * got.p_value  # the same 20% is far less clear


def test_a_zero_value_falls_back_to_the_difference_scale_without_a_margin():
    base, variant = pd.Series([1.0, 2.0, 3.0]), pd.Series([0.0, 2.5, 3.5])
    got = v.paired_verdict(base, variant, higher_is_better=False, log_scale=True, margin=0.1)
    assert got.scale == v.DIFFERENCE
    assert math.isnan(got.margin)  # a relative margin has no meaning in the metric's units
    assert "δ = none declared" in got.describe()


def test_no_margin_is_taken_from_the_data():
    # the old rule, 10% of the base mean, gave δ = 0 here and "equivalent" from the zeros
    zeros = pd.Series([0.0] * 6)
    got = v.paired_verdict(zeros, zeros.copy(), higher_is_better=True)
    assert math.isnan(got.margin) and got.verdict == v.UNDECIDED


def test_paired_verdict_matches_seeds_and_takes_a_metric_specific_margin():
    base = pd.Series({0: 5.0, 1: 6.0, 2: 7.0, 3: math.nan})
    variant = pd.Series({1: 6.1, 2: 7.05, 3: 1.0, 4: 2.0, 0: 5.02})
    got = v.paired_verdict(base, variant, higher_is_better=True, margin=0.5)
    assert got.n == 3 and got.margin == 0.5
    assert got.estimate == pytest.approx(np.mean([0.02, 0.1, 0.05]))
    with pytest.raises(ValueError, match="margin"):
        v.paired_verdict(base, variant, higher_is_better=True, margin=-1.0)


def test_identical_variants_are_equivalent_only_through_the_test():
    base = pd.Series([3.0, 1.0, 4.0, 1.5, 2.0])
    for log_scale in (False, True):
        got = v.paired_verdict(
            base, base.copy(), higher_is_better=False, log_scale=log_scale, margin=0.1
        )
        assert got.verdict == v.EQUIVALENT and got.p_equivalence == pytest.approx(0.5**5)
        short = v.paired_verdict(
            base[:3], base[:3].copy(), higher_is_better=False, log_scale=log_scale, margin=0.1
        )
        assert short.verdict == v.UNDECIDED


@pytest.mark.parametrize("n", range(2, 21))
def test_a_true_difference_of_delta_on_whole_modes_is_rarely_called_equivalent(n):
    # pairs differing by 0 or 1 mode with probability ½ each: a true difference of exactly
    # δ = 0.5 (the old all-zero shortcut said "equivalent" 11% of the time at n = 3). The rate
    # is exact: the verdict depends only on how many pairs differ. Zero-spread samples (all 0,
    # all 1) are the sign test's, ≤ 2⁻ⁿ ≤ α; the t-based TOST on such two-valued differences
    # is not exact and reaches 9.0% at n = 9 (a limitation stated in bench.report.verdicts)
    rate = sum(
        sps.binom.pmf(k, n, 0.5)
        for k in range(n + 1)
        if v.decide(np.repeat([1.0, 0.0], [k, n - k]), higher_is_better=True, margin=0.5).verdict
        == v.EQUIVALENT
    )
    assert rate <= (0.0 if n < v.MIN_EQUIVALENCE_PAIRS else 0.09)
    if n < 9:
        assert rate <= 0.0625


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


# -- reaching a target --------------------------------------------------------------------------


def test_reaching_a_target_is_the_exact_mcnemar_test_on_discordant_pairs():
    # the case: 3/12 base vs 9/12 variant runs reached the target
    base = pd.Series([True] * 3 + [False] * 9)
    variant = pd.Series([True] * 9 + [False] * 3)
    got = v.reach_verdict(base, variant)
    assert got.p_value == pytest.approx(sps.binomtest(6, 6).pvalue)  # 6 vs 0 discordant
    assert got.verdict == v.BETTER and got.estimate == pytest.approx(0.5)
    assert "6 pair(s) where only the variant reached, 0 where only the base did" in got.reason
    same = v.reach_verdict(base, base.copy())
    assert same.verdict == v.UNDECIDED and same.p_value == 1.0
    worse = v.reach_verdict(variant, base)
    assert worse.verdict == v.WORSE and worse.p_value == got.p_value


def test_with_no_true_difference_reaching_is_rarely_called_different():
    # 12 pairs, each run reaching with probability ½ independently: exact over the counts of
    # pairs where only the variant (k) or only the base (l) reached (the verdict's only inputs)
    rate = 0.0
    for k in range(13):
        for j in range(13 - k):
            base = pd.Series([False] * k + [True] * j + [True] * (12 - k - j))
            variant = pd.Series([True] * k + [False] * j + [True] * (12 - k - j))
            if v.reach_verdict(base, variant).verdict != v.UNDECIDED:
                rate += sps.multinomial.pmf([k, j, 12 - k - j], 12, [0.25, 0.25, 0.5])
    assert 0.01 < rate <= v.ALPHA
