"""Group-sequential boundaries for the paired t statistic: verdicts that stay valid when seeds
are added in rounds until a comparison is decided (``bench run --until-decided``).

Looking at a t-test after every round and stopping when it says "better" would find a
difference that is not there far more often than α. This module gives the boundaries that keep
every error at α however many rounds are looked at:

Method: alpha spending (Lan & DeMets 1983, Biometrika 70(3):659-663) with the
O'Brien–Fleming-type spending functions, two-sided at level α and one-sided at level α,

    α*(τ) = 2 − 2 Φ(z_{1−α/2} / √τ),   α₁*(τ) = 1 − Φ(z_{1−α} / √τ),   α*(1) = α₁*(1) = α

(with them the first look's normal boundary is O'Brien & Fleming's z/√τ), at information
fraction τ_k = n_k / N (pairs at look k over the most pairs the design allows; the final look
spends what is left: τ = 1). It spends almost nothing at the first, small
looks, so the last boundary is close to the fixed design's. The boundaries are for the paired
*t* statistic itself, not its normal approximation (which is far off at the few seeds here):

- under no difference the sequence (T_1, ..., T_K) does not depend on σ, so its law is that of
  N(0, 1) data, simulated exactly from sufficient statistics (the m pairs between two looks add
  a N(0, m) sum and an independent χ²_{m−1} sum of squares about their mean);
- c_1 = t_{1−α*(τ_1)/2, n_1−1} exactly, and for k ≥ 2 c_k is the quantile that makes
  P(|T_k| ≥ c_k, no earlier crossing) = α*(τ_k) − α*(τ_{k−1}) over :data:`PATHS` simulated
  paths with a fixed seed (the same looks always give the same boundaries; the Monte Carlo
  error of the total α is about √(α / PATHS) ≈ 2e-4).

The difference interval m ± c_k·se is then a repeated confidence interval (Jennison & Turnbull
2000, *Group Sequential Methods with Applications to Clinical Trials*, ch. 9): it covers the
true mean at every look at once with probability ≥ 1 − α. Equivalence uses the one-sided
boundaries b_k at level α: under a true difference of exactly ±δ, (m ∓ δ)/se is the same pivotal
t process, so the two one-sided tests (Jennison & Turnbull 2000, ch. 6) use the same
simulation. Stopping for one verdict only removes chances to cross the other boundaries, so
each error stays ≤ α (the boundaries are non-binding).

With a single look, c = t_{1−α/2, n−1} and b = t_{1−α, n−1}: the fixed design of
:mod:`bench.report.verdicts`, whose rule (:func:`~bench.report.verdicts.classify`) every look
applies.

Written here because no well-kept Python library computes spending-function boundaries (gsDesign
and rpact are R packages, and use the normal approximation for the t statistic).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from bench.report import verdicts
from bench.report.verdicts import ALPHA, DIFFERENCE, Verdict

PATHS = 1_000_000
SIMULATION_SEED = 0


@dataclass(frozen=True)
class Boundaries:
    """The boundaries at each look: two-sided ``difference`` (c_k) and one-sided
    ``equivalence`` (b_k), both on the t scale; ``inf`` where a look spends nothing."""

    looks: tuple[int, ...]
    fractions: tuple[float, ...]
    difference: tuple[float, ...]
    equivalence: tuple[float, ...]


def obrien_fleming_spending(fraction: np.ndarray | float, alpha: float = ALPHA) -> np.ndarray:
    """α*(τ) of the module docstring: the error spent by information fraction τ ∈ (0, 1]."""
    tau = np.clip(np.asarray(fraction, dtype=float), 1e-12, 1.0)
    return 2 - 2 * sps.norm.cdf(sps.norm.ppf(1 - alpha / 2) / np.sqrt(tau))


def information_fractions(looks: Sequence[int], max_pairs: int, final: bool) -> np.ndarray:
    """τ_k = n_k / N (at most 1); the final look's is 1, whatever its n."""
    tau = np.minimum(np.asarray(looks, dtype=float) / max_pairs, 1.0)
    if final:
        tau[-1] = 1.0
    return tau


def boundaries(
    looks: Sequence[int], max_pairs: int, alpha: float = ALPHA, final: bool = False
) -> Boundaries:
    """The boundaries for looks after n_1 ≤ n_2 ≤ ... pairs out of at most ``max_pairs``.

    ``final``: the last look is the last one (it spends all that is left). A look with no new
    pairs (runs that failed) repeats the previous statistic; it may still spend, which is valid
    because which looks happen does not depend on the differences.
    """
    looks = tuple(int(n) for n in looks)
    if not looks or looks[0] < 2 or any(b < a for a, b in itertools.pairwise(looks)):
        raise ValueError(f"looks must be a non-decreasing sequence of pair counts >= 2: {looks}")
    if max_pairs < looks[-1] and not final:
        raise ValueError(f"look at {looks[-1]} pairs beyond the design's {max_pairs}")
    return _boundaries(looks, int(max_pairs), float(alpha), bool(final))


@functools.lru_cache(maxsize=256)
def _boundaries(looks: tuple[int, ...], max_pairs: int, alpha: float, final: bool) -> Boundaries:
    tau = information_fractions(looks, max_pairs, final)
    two = np.diff(obrien_fleming_spending(tau, alpha), prepend=0.0)  # two-sided, level α
    one = np.diff(obrien_fleming_spending(tau, 2 * alpha) / 2, prepend=0.0)  # one-sided, α
    c = [float(sps.t.ppf(1 - two[0] / 2, looks[0] - 1))]
    b = [float(sps.t.ppf(1 - one[0], looks[0] - 1))]
    if len(looks) > 1:
        rng = np.random.default_rng(SIMULATION_SEED)
        s, q = np.zeros(PATHS), np.zeros(PATHS)  # running sum and sum of squares
        alive_c, alive_b = np.ones(PATHS, bool), np.ones(PATHS, bool)
        previous = 0
        for k, n in enumerate(looks):
            m = n - previous
            if m:
                block = rng.standard_normal(PATHS) * math.sqrt(m)
                s += block
                q += block**2 / m + (rng.chisquare(m - 1, PATHS) if m > 1 else 0.0)
            previous = n
            t = s / np.sqrt(n * np.maximum(q - s**2 / n, 1e-300) / (n - 1))  # mean / se
            if k:
                c.append(_crossing(np.abs(t), alive_c, two[k]))
                b.append(_crossing(t, alive_b, one[k]))  # the t process is symmetric
            alive_c &= np.abs(t) < c[k]
            alive_b &= t < b[k]
    return Boundaries(looks, tuple(float(x) for x in tau), tuple(c), tuple(b))


def _crossing(stat: np.ndarray, alive: np.ndarray, spend: float) -> float:
    """The value above which ``spend · PATHS`` of the paths still alive lie (inf: none)."""
    count = int(spend * PATHS)
    live = stat[alive]
    if count < 1 or not len(live):
        return math.inf
    count = min(count, len(live))
    return float(np.partition(live, len(live) - count)[len(live) - count])


def sequential_verdict(
    diffs: np.ndarray,
    looks: Sequence[int],
    max_pairs: int,
    *,
    higher_is_better: bool,
    margin: float,
    scale: str = DIFFERENCE,
    alpha: float = ALPHA,
    final: bool = False,
) -> Verdict:
    """The verdict at the last of ``looks`` on its differences ``diffs`` (len = looks[-1]).

    The earlier looks must be the ones actually taken (each undecided), on the first n_k of
    the same differences.
    """
    d = np.asarray(diffs, dtype=float)
    if len(d) != looks[-1]:
        raise ValueError(f"{len(d)} differences at a look of {looks[-1]} pairs")
    bounds = boundaries(looks, max_pairs, alpha, final)
    return verdicts.decide(
        d,
        higher_is_better=higher_is_better,
        margin=margin,
        scale=scale,
        alpha=alpha,
        c=bounds.difference[-1],
        b=bounds.equivalence[-1],
    )
