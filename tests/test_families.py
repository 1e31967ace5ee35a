"""Multiplicity control of the report's verdict families, by simulation of the default design.

The default sweep (``bench/sweeps/default.toml``) reports 12 paired seeds per workload; its
confirmatory families are bilinear (2 comparisons against Adam), digits and mog-ring (3 each),
all sharing the workload's Adam runs (so the comparisons are positively correlated); its
exploratory family holds the claim's statistics of the 5 projection comparisons (10 tested
each). Every simulated report runs the report's own code on stacks of samples: the p-values of
:func:`bench.report.verdicts.p_values`, :func:`bench.report.families.holm` / ``bh`` and the
verdict rule :func:`bench.report.verdicts.verdict_from_p`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench.report import families as fam
from bench.report import verdicts as v

REPORTS = 4000
PAIRS = 12
FAMILIES = {"bilinear": 2, "digits": 3, "mog-ring": 3}
EXPLORATORY = 50


def _null_family(rng, size, draw):
    """(REPORTS, size, PAIRS) paired differences under no difference: one shared base."""
    base = draw(rng, (REPORTS, 1, PAIRS))
    return draw(rng, (REPORTS, size, PAIRS)) - base


def _normal(rng, shape):
    return rng.normal(0.0, 1.0, shape)


def _modes(rng, shape):
    # whole modes of 8 (a binomial count): discrete, bounded, ties
    return rng.binomial(8, 0.7, shape).astype(float)


def _lognormal(rng, shape):
    # a log-scale metric (FID, distance) compared by log ratio: log of a lognormal is normal,
    # so a skewed one on its own scale
    return np.log(rng.lognormal(3.0, 0.8, shape))


def _family_errors(p, mean, hib=True):
    adjusted = fam.holm(p)
    verdict = v.verdict_from_p(adjusted, np.nan, mean, higher_is_better=hib)
    return ((verdict == v.BETTER) | (verdict == v.WORSE)).any(axis=-1)


@pytest.mark.parametrize("draw", [_normal, _modes, _lognormal])
def test_the_confirmatory_familywise_error_is_at_most_five_percent(draw):
    rng = np.random.default_rng(0)
    for size in FAMILIES.values():
        d = _null_family(rng, size, draw)
        p, _ = v.p_values(d, np.nan)
        fwer = _family_errors(p, d.mean(-1)).mean()
        unadjusted = (p < v.ALPHA).any(-1).mean()
        # Monte Carlo s.e. ≈ 0.0035: 5% + 2 s.e.
        assert fwer <= v.ALPHA + 0.007, (draw.__name__, size, fwer)
        assert unadjusted > fwer  # without control the family errs more often


def test_holm_and_bh_match_worked_examples():
    # Holm (1979): p = .01, .04, .03, .005 -> adjusted .03, .06, .06, .02
    got = fam.holm(np.array([0.01, 0.04, 0.03, 0.005]))
    assert got == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert np.isnan(fam.holm(np.array([0.01, np.nan]))[1])
    assert fam.holm(np.array([0.01, 0.5]), extra=1)[0] == pytest.approx(0.03)
    assert fam.bh(np.array([0.01, 0.04, 0.03, 0.005])) == pytest.approx(
        sps.false_discovery_control([0.01, 0.04, 0.03, 0.005])
    )


def test_equivalence_at_a_true_difference_of_delta_is_controlled_in_the_family():
    # every comparison's true difference is exactly +δ: any "equivalent" is a false one
    rng = np.random.default_rng(1)
    margin = 0.5
    d = _null_family(rng, 3, _normal) + margin
    p, q = v.p_values(d, margin)
    verdict = v.verdict_from_p(fam.holm(p), fam.holm(q), d.mean(-1), higher_is_better=True)
    assert (verdict == v.EQUIVALENT).any(-1).mean() <= v.ALPHA + 0.007


def test_the_exploratory_false_discovery_rate_is_at_most_five_percent():
    # 50 statistics, 10 with a true effect of one s.d.; pairs of them (G and D) correlated 0.5
    rng = np.random.default_rng(2)
    shared = rng.normal(size=(REPORTS, EXPLORATORY // 2, 1, PAIRS))
    own = rng.normal(size=(REPORTS, EXPLORATORY // 2, 2, PAIRS))
    d = (np.sqrt(0.5) * shared + np.sqrt(0.5) * own).reshape(REPORTS, EXPLORATORY, PAIRS)
    effect = np.zeros(EXPLORATORY)
    effect[:10] = 1.0
    d = d + effect[:, None]
    p, _ = v.p_values(d, np.nan)
    verdict = v.verdict_from_p(fam.bh(p), np.nan, d.mean(-1), higher_is_better=True)
    found = (verdict == v.BETTER) | (verdict == v.WORSE)
    false = found[:, 10:].sum(-1)
    fdr = (false / np.maximum(found.sum(-1), 1)).mean()
    assert fdr <= v.ALPHA
    assert found[:, :10].mean() > 0.5  # and it still finds most of the true effects
    # under the complete null, FDR = FWER: at most 5% of reports hold any discovery
    null = d - effect[:, None]
    p0, _ = v.p_values(null, np.nan)
    any_found = (fam.bh(p0) < v.ALPHA).any(-1).mean()
    assert any_found <= v.ALPHA + 0.007


def test_confirmatory_adjusts_within_each_workload_and_keeps_the_unadjusted_verdict():
    paired = pd.DataFrame(
        {
            "workload": ["a", "a", "a", "b"],
            "higher_is_better": [True] * 4,
            "estimate": [1.0, -1.0, 1.0, 1.0],
            "p_value": [0.01, 0.04, 0.30, 0.04],
            "p_equivalence": [np.nan, np.nan, 0.01, np.nan],
            "n_pairs": [12] * 4,
            "verdict": [v.BETTER, v.WORSE, v.EQUIVALENT, v.BETTER],
            "design": ["fixed"] * 4,
        }
    )
    got = fam.confirmatory(paired)
    assert got["p_adjusted"].tolist() == pytest.approx([0.03, 0.08, 0.30, 0.04])
    assert got["verdict"].tolist() == [v.BETTER, v.UNDECIDED, v.EQUIVALENT, v.BETTER]
    assert got["verdict_unadjusted"].tolist() == paired["verdict"].tolist()
    assert (got["family"] == fam.CONFIRMATORY).all()
    # a sequential row keeps its own verdict (decided at α / m) and counts in m
    paired.loc[2, "design"] = fam.SEQUENTIAL
    seq = fam.confirmatory(paired)
    assert seq.loc[2, "verdict"] == v.EQUIVALENT
    assert seq["p_adjusted"].tolist()[:2] == pytest.approx([0.03, 0.08])


def test_secondary_adjusts_within_each_workload_apart_from_the_confirmatory_family():
    table = pd.DataFrame(
        {
            "workload": ["a", "a", "a", "b"],
            "higher_is_better": [True, False, True, True],
            "estimate": [1.0, 1.0, 1.0, 1.0],
            "p_value": [0.01, 0.04, 0.30, 0.04],
            "p_equivalence": [np.nan, np.nan, 0.01, np.nan],
            "n_pairs": [12] * 4,
            "verdict": [v.BETTER, v.WORSE, v.EQUIVALENT, v.BETTER],
        }
    )
    got = fam.secondary(table)
    assert got["p_adjusted"].tolist() == pytest.approx([0.03, 0.08, 0.30, 0.04])
    assert got["p_equivalence_adjusted"].tolist()[2] == pytest.approx(0.01)
    assert got["verdict"].tolist() == [v.BETTER, v.UNDECIDED, v.EQUIVALENT, v.BETTER]
    assert (got["family"] == fam.SECONDARY).all()
    assert fam.secondary(table.iloc[:0]).empty


@pytest.mark.parametrize("draw", [_normal, _modes, _lognormal])
def test_the_secondary_familywise_error_is_at_most_five_percent(draw):
    """The GPU study's secondary family (unrolled-ring-gpu.toml): 6 comparisons against one
    Adam (five optimizers, and Extra-Adam again at equal gradient evaluations, its runs read
    earlier) × 3 metrics of the same runs (high quality, reverse KL, Fréchet distance), so the 18
    are correlated twice over: through the shared base and through each run's metrics."""
    rng = np.random.default_rng(1)
    runs = draw(rng, (REPORTS, 7, PAIRS))  # one value per run: Adam, five others, Extra-Adam early
    same = rng.random((REPORTS, PAIRS)) < 0.7  # the same Extra-Adam runs read earlier: most
    runs[:, 6] = np.where(same, runs[:, 5], runs[:, 6])  # unchanged (whole modes stay whole)
    metrics = [runs + 0.5 * draw(rng, (REPORTS, 7, PAIRS)) for _ in range(3)]  # correlated
    d = np.concatenate([m[:, 1:] - m[:, :1] for m in metrics], axis=1)  # (REPORTS, 18, PAIRS)
    p, _ = v.p_values(d, np.nan)
    fwer = _family_errors(p, d.mean(-1)).mean()
    assert fwer <= v.ALPHA + 0.007, (draw.__name__, fwer)
    assert (p < v.ALPHA).any(-1).mean() > 2 * fwer  # 18 tests uncontrolled err far more often
