"""Group-sequential verdicts: the boundaries spend α as stated, and whole sequential studies,
simulated with the report's own rule, keep their error rates and save seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from bench.report import spending as sp
from bench.report import verdicts as v

LOOKS = (4, 8, 12, 16, 20)  # four seeds a round, at most 20 pairs
STUDIES = 20_000


def test_one_look_gives_the_fixed_designs_t_quantiles():
    b = sp.boundaries((10,), 10, final=True)
    assert b.difference == (pytest.approx(sps.t.ppf(1 - v.ALPHA / 2, 9)),)
    assert b.equivalence == (pytest.approx(sps.t.ppf(1 - v.ALPHA, 9)),)
    d = np.random.default_rng(0).normal(0.5, 1, 10)
    seq = sp.sequential_verdict(d, (10,), 10, higher_is_better=True, margin=0.3, final=True)
    assert seq == v.decide(d, higher_is_better=True, margin=0.3)


def test_obrien_fleming_spending_spends_alpha_by_the_end_and_almost_nothing_early():
    tau = np.array([0.1, 0.2, 0.5, 0.8, 1.0])
    spent = sp.obrien_fleming_spending(tau)
    assert spent[-1] == pytest.approx(v.ALPHA)
    assert (np.diff(spent) > 0).all() and spent[0] < 1e-8
    # its normal boundary at a first look is O'Brien & Fleming's z_{1-α/2} / √τ
    assert sps.norm.isf(spent / 2) == pytest.approx(sps.norm.isf(v.ALPHA / 2) / np.sqrt(tau))


def _t_at_looks(x: np.ndarray, looks: tuple[int, ...]) -> np.ndarray:
    n = np.array(looks)
    s, q = np.cumsum(x, 1)[:, n - 1], np.cumsum(x * x, 1)[:, n - 1]
    var = (q - s**2 / n) / (n - 1)
    return (s / n) / np.sqrt(var / n)


def test_the_boundaries_spend_the_stated_alpha_on_raw_normal_data():
    t = _t_at_looks(np.random.default_rng(1).standard_normal((200_000, 20)), LOOKS)
    b = sp.boundaries(LOOKS, 20, final=True)
    two = np.cumsum(np.abs(t) >= np.array(b.difference), 1).astype(bool).mean(0)
    one = np.cumsum(t >= np.array(b.equivalence), 1).astype(bool).mean(0)
    tol = 4 * np.sqrt(v.ALPHA / 200_000) + 5e-4
    assert two == pytest.approx(sp.obrien_fleming_spending(np.array(b.fractions)), abs=tol)
    assert one[-1] == pytest.approx(v.ALPHA, abs=tol)
    assert b.difference[0] > 20 and b.difference[-1] < 2.3  # strict early, near t at the end


def _studies(effect: float, margin: float, looks=LOOKS, seed: int = 2):
    """Sequential studies of N(effect, 1) differences, each stopping at its first verdict."""
    x = np.random.default_rng(seed).normal(effect, 1.0, (STUDIES, looks[-1]))
    return _sequential(x, margin, looks)


def _sequential(x: np.ndarray, margin: float, looks=LOOKS) -> tuple[np.ndarray, np.ndarray]:
    """Each row of ``x`` (paired differences) as a sequential study: its verdict and the number
    of pairs at which it stopped."""
    b = sp.boundaries(looks, looks[-1], final=True)
    verdict = np.full(len(x), v.UNDECIDED, dtype=object)
    stop = np.full(len(x), looks[-1])
    running = np.ones(len(x), bool)
    for k, n in enumerate(looks):
        d = x[:, :n]
        out = v.classify(
            d.mean(1),
            d.std(1, ddof=1) / math.sqrt(n),
            c=b.difference[k],
            b=b.equivalence[k],
            margin=margin,
            higher_is_better=True,
        )
        new = running & (out != v.UNDECIDED)
        verdict[new], stop[new] = out[new], n
        running &= ~new
    return verdict, stop


MC = 3 * math.sqrt(v.ALPHA * (1 - v.ALPHA) / STUDIES)  # three Monte Carlo standard errors


@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_with_no_true_difference_at_most_alpha_of_studies_end_better_or_worse(margin):
    verdict, _ = _studies(0.0, margin)
    different = np.isin(verdict, [v.BETTER, v.WORSE]).mean()
    assert different < v.ALPHA + MC
    assert different > v.ALPHA - 4 * MC  # the design spends its α: not needlessly strict


def test_looking_after_every_round_with_the_fixed_t_test_would_not_keep_alpha():
    t = _t_at_looks(np.random.default_rng(3).standard_normal((STUDIES, 20)), LOOKS)
    naive = (np.abs(t) >= sps.t.ppf(1 - v.ALPHA / 2, np.array(LOOKS) - 1)).any(1).mean()
    assert naive > 2 * v.ALPHA  # what the boundaries protect against


def test_equivalence_is_wrongly_declared_at_most_alpha_when_the_difference_is_delta():
    verdict, _ = _studies(0.5, margin=0.5)
    assert (verdict == v.EQUIVALENT).mean() < v.ALPHA + MC


@pytest.mark.parametrize("effect", [0.6, 0.8, 1.0])
def test_with_a_true_difference_it_uses_fewer_seeds_than_the_fixed_design_of_equal_power(
    effect,
):
    verdict, stop = _studies(effect, margin=0.3)
    power = (verdict == v.BETTER).mean()
    fixed = v.seeds_for_power(1.0, effect, power=power)  # the fixed design with that power
    assert (verdict == v.WORSE).mean() < 1e-3
    assert stop.mean() < fixed


def test_identical_variants_are_never_decided_at_a_look_without_the_test():
    for looks in (LOOKS, (2, 3), (3, 3, 9)):
        bounds = sp.boundaries(looks, looks[-1], final=True)
        for k, n in enumerate(looks):
            got = v.decide(
                np.zeros(n),
                higher_is_better=True,
                margin=0.5,
                c=bounds.difference[k],
                b=bounds.equivalence[k],
            )
            assert got.verdict == v.UNDECIDED and math.isnan(got.ci_lo)


def test_a_look_without_new_pairs_spends_the_rest_at_the_final_look():
    b = sp.boundaries((4, 8, 8), 12, final=True)
    assert b.fractions == pytest.approx((1 / 3, 2 / 3, 1.0))
    assert b.difference[2] < b.difference[1]  # the same statistic, judged with what is left


def test_bad_looks_are_refused():
    for looks in ((), (1, 4), (6, 4)):
        with pytest.raises(ValueError, match="looks"):
            sp.boundaries(looks, 10)
    with pytest.raises(ValueError, match="beyond"):
        sp.boundaries((4, 12), 10)
    with pytest.raises(ValueError, match="differences"):
        sp.sequential_verdict(np.zeros(3), (4,), 10, higher_is_better=True, margin=0.1)


FIRST_LOOKS = (5, 9, 13, 17, 20)  # bench.sequential: no look before 5 pairs, 4 seeds a round


def _null_studies(x: np.ndarray) -> np.ndarray:
    """Whether each row of ``x`` ended better/worse (no margin: better/worse only)."""
    verdict, _ = _sequential(x, math.nan, FIRST_LOOKS)
    return np.isin(verdict, [v.BETTER, v.WORSE])


def test_a_discrete_null_keeps_alpha_whole_modes_of_eight():
    rng = np.random.default_rng(5)
    modes = rng.binomial(8, 0.7, (2, STUDIES, 20)).astype(float)
    assert _null_studies(modes[1] - modes[0]).mean() < v.ALPHA + MC


def test_a_skewed_null_inflates_the_error_as_stated_and_log_ratios_remove_it():
    # a centred lognormal difference (σ = 1): mean 0, strongly right-skewed. The t statistic's
    # law is skewed too, and the design's false better/worse rate is ~20%, not 5%: the
    # limitation bench.sequential states. A log-scale metric compared by log ratio (the
    # difference of two normal logs) is symmetric, and keeps α.
    rng = np.random.default_rng(6)
    skewed = rng.lognormal(0.0, 1.0, (STUDIES, 20)) - math.exp(0.5)
    rate = _null_studies(skewed).mean()
    assert 0.15 < rate < 0.25
    logs = np.log(rng.lognormal(3.0, 1.0, (2, STUDIES, 20)))
    assert _null_studies(logs[1] - logs[0]).mean() < v.ALPHA + MC
