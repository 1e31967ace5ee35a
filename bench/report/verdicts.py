"""Verdicts for seed-matched paired comparisons: *better*, *worse*, *equivalent within ±δ* or
*undecided*, and the seeds a fixed design would need to detect δ.

The comparison
--------------
Base and variant ran on the same seeds; d_i is variant − base on seed i. A metric with
``log_scale`` (FID, distances, KL: positive and multiplicative) is compared by log ratio,
d_i = log(variant_i / base_i): a constant relative effect is one number whatever the metric's
magnitude, the paired t-test on it tests the geometric-mean ratio, and skewed values become
closer to symmetric. If a value ≤ 0 is among the pairs the log is undefined and the comparison
is on the difference (``Verdict.scale`` says which).

The margin δ, the smallest difference that matters (Schuirmann 1987; Lakens 2017), is 10%
(:data:`RELATIVE_MARGIN`): on the difference scale δ = 0.1 · |base mean over the pairs|, on the
log scale δ = log 1.1 (the geometric-mean ratio within [1/1.1, 1.1]). A caller may pass a
metric-specific δ: in the metric's units on the difference scale, on the log scale as a
relative change (δ = log(1 + margin)).

The rule
--------
With n ≥ 2 pairs, mean m and standard error se of the d_i:

- the *difference interval* m ± c·se decides better/worse; c = t_{1−α/2, n−1} in a fixed
  design (the 95% interval: the two-sided paired t-test at α);
- the *equivalence interval* m ± b·se decides equivalence; b = t_{1−α, n−1} (the 90%
  interval: two one-sided tests at α each, TOST).

When seeds were added in rounds, c and b are the group-sequential boundaries of
:mod:`bench.report.spending` instead; the rule is the same (:func:`classify`).

    verdict = equivalent       if −δ < m − b·se and m + b·se < δ
              better / worse   else, if the difference interval excludes 0 (better when the
                               variant's mean is on the metric's good side)
              undecided        else

Equivalence comes first: a difference that is detectable yet shown to be smaller than δ is, by
the definition of δ, one that does not matter. So the verdicts exclude each other by
construction. Identical variants (every d_i exactly 0) are *equivalent* for any δ ≥ 0 (both
intervals are the point 0) and never better or worse. Fewer than two pairs are *undecided*.

Every d_i the same nonzero value (quantised measurements: steps to a target counted at
evaluation points, or members of one population sharing its step time) leaves the t-test
without a spread: se = 0 and its statistic is infinite for any n. There the verdict is the
exact two-sided sign test's instead: better or worse when 2 · 2⁻ⁿ < α (n ≥ 6 at α = 0.05),
else undecided (two pairs that agree are not evidence). Equivalence is decided as above.

Errors, for normal differences: P(better or worse | no difference) ≤ α and
P(equivalent | |true difference| ≥ δ) ≤ α. The signed-rank test of :mod:`bench.report.stats`
stays beside the verdict as a check that does not assume normality.

Power: the seeds a fixed design needs to detect δ with 80% power from the observed spread s:
the least n with P(|T| > t_{1−α/2, n−1}) ≥ 0.8, T noncentral t with n − 1 degrees of freedom
and noncentrality δ√n / s (``scipy.stats.nct``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

ALPHA = 0.05
POWER = 0.80
RELATIVE_MARGIN = 0.10
BETTER, WORSE, EQUIVALENT, UNDECIDED = "better", "worse", "equivalent", "undecided"
VERDICTS = (BETTER, WORSE, EQUIVALENT, UNDECIDED)
DIFFERENCE, LOG_RATIO = "difference", "log ratio"
MAX_POWER_SEEDS = 1_000_000
"""Above this, :func:`seeds_for_power` answers None (no practical number of seeds)."""


@dataclass(frozen=True)
class Verdict:
    """One paired comparison's verdict and the numbers it rests on (on ``scale``)."""

    verdict: str
    n: int
    scale: str  # DIFFERENCE or LOG_RATIO
    estimate: float  # ``center`` of variant − base (of log(variant / base) on the log scale)
    ci_lo: float  # the difference interval, which decides better / worse
    ci_hi: float
    eq_lo: float  # the equivalence interval, which decides equivalence
    eq_hi: float
    margin: float  # δ on ``scale``
    alpha: float
    seeds_for_power: int | None  # pairs a fixed design needs for 80% power at δ
    reason: str
    center: str = "mean"  # what ``estimate`` is: the mean difference, or (censored) the median

    @property
    def decided(self) -> bool:
        return self.verdict != UNDECIDED

    def effect(self) -> str:
        """The effect with its interval: ``ratio 0.81 [0.70, 0.93]`` on the log scale (a log
        ratio of ±∞, a pair where only one run reached a target, reads 0 or ∞), else
        ``difference -1.3 [-3.7, 1.1]``."""
        if self.scale == LOG_RATIO:
            lo, mid, hi = (_ratio(x) for x in (self.ci_lo, self.estimate, self.ci_hi))
            return f"{self._what('ratio')} {mid} [{lo}, {hi}]"
        return (
            f"{self._what('difference')} {self.estimate:.3g} [{self.ci_lo:.3g}, {self.ci_hi:.3g}]"
        )

    def _what(self, name: str) -> str:
        return name if self.center == "mean" else f"{self.center} {name}"

    def describe(self) -> str:
        """One line, e.g. ``better: ratio 0.81 [0.70, 0.93] (10 pairs, δ = ±10%)``."""
        if self.scale == LOG_RATIO:
            margin = f"±{math.expm1(self.margin):.0%}"
        else:
            margin = f"±{self.margin:.3g}"
        return f"{self.verdict}: {self.effect()} ({self.n} pairs, δ = {margin})"


def _ratio(log_ratio: float) -> str:
    """exp of a log ratio, as text: 0 and ∞ for −∞ and +∞ (not exp's underflow or overflow)."""
    if math.isinf(log_ratio):
        return "0" if log_ratio < 0 else "∞"
    return f"{math.exp(min(log_ratio, 709.0)):.3g}"


def paired_values(base: pd.Series, variant: pd.Series) -> pd.DataFrame:
    """Columns ``base``, ``variant`` on the seeds (index labels) both have, both finite."""
    joined = pd.concat({"base": base, "variant": variant}, axis=1, join="inner").astype(float)
    finite = np.isfinite(joined["base"]) & np.isfinite(joined["variant"])
    return joined[finite].sort_index()


def comparison_scale(pairs: pd.DataFrame, log_scale: bool) -> str:
    """LOG_RATIO for a log-scale metric whose paired values are all > 0, else DIFFERENCE."""
    positive = bool((pairs.to_numpy() > 0).all())
    return LOG_RATIO if log_scale and positive else DIFFERENCE


def paired_diffs(pairs: pd.DataFrame, scale: str) -> pd.Series:
    """variant − base per seed, or log(variant / base) on the log scale."""
    if scale == LOG_RATIO:
        return np.log(pairs["variant"]) - np.log(pairs["base"])
    return pairs["variant"] - pairs["base"]


def margin_for(scale: str, base: pd.Series, margin: float | None = None) -> float:
    """δ on ``scale``: the caller's ``margin``, else 10% of the base (module docstring)."""
    if margin is not None and not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"the equivalence margin must be finite and >= 0, got {margin}")
    if scale == LOG_RATIO:
        return math.log1p(RELATIVE_MARGIN if margin is None else margin)
    return RELATIVE_MARGIN * abs(float(np.mean(base))) if margin is None else margin


def classify(
    mean: np.ndarray,
    se: np.ndarray,
    *,
    c: np.ndarray | float,
    b: np.ndarray | float,
    margin: np.ndarray | float,
    higher_is_better: bool,
) -> np.ndarray:
    """The rule of the module docstring, elementwise: an array of verdict strings.

    ``se`` is NaN where there are fewer than 2 pairs (undecided). Vectorised so that the
    simulations of :mod:`bench.report.spending` run the very rule the report applies.
    """
    m, s = np.asarray(mean, dtype=float), np.asarray(se, dtype=float)
    identical = (m == 0) & (s == 0)
    with np.errstate(invalid="ignore"):  # 0 · inf when se = 0 and a boundary is infinite
        eq_lo, eq_hi = m - np.nan_to_num(b * s), m + np.nan_to_num(b * s)
        ci_lo, ci_hi = m - np.nan_to_num(c * s), m + np.nan_to_num(c * s)
    known = np.isfinite(s)
    equivalent = known & (identical | ((eq_lo > -margin) & (eq_hi < margin)))
    above, below = known & (ci_lo > 0), known & (ci_hi < 0)
    good, bad = (above, below) if higher_is_better else (below, above)
    out = np.full(m.shape, UNDECIDED, dtype=object)
    out[good] = BETTER
    out[bad] = WORSE
    out[equivalent] = EQUIVALENT  # last: equivalence takes precedence
    return out


def decide(
    diffs: np.ndarray | pd.Series,
    *,
    higher_is_better: bool,
    margin: float,
    scale: str = DIFFERENCE,
    alpha: float = ALPHA,
    c: float | None = None,
    b: float | None = None,
) -> Verdict:
    """The verdict on per-seed differences ``diffs`` (already on ``scale``) with margin δ.

    ``c`` and ``b`` are the difference and equivalence boundaries; None: the fixed design's
    t_{1−α/2, n−1} and t_{1−α, n−1}.
    """
    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d)]
    n = len(d)
    mean = float(d.mean()) if n else math.nan
    if n < 2:
        reason = f"{n} pair{'s' if n != 1 else ''}: a verdict needs at least 2"
        return Verdict(UNDECIDED, n, scale, mean, *[math.nan] * 4, margin, alpha, None, reason)
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    c = float(sps.t.ppf(1 - alpha / 2, n - 1)) if c is None else c
    b = float(sps.t.ppf(1 - alpha, n - 1)) if b is None else b
    verdict = classify(mean, se, c=c, b=b, margin=margin, higher_is_better=higher_is_better).item()
    constant = se == 0 and mean != 0  # no spread: the sign test decides (module docstring)
    if constant and verdict in (BETTER, WORSE) and 2 * 0.5**n >= alpha:
        verdict = UNDECIDED
    half_c, half_b = (0.0, 0.0) if se == 0 else (c * se, b * se)
    ci, eq = (mean - half_c, mean + half_c), (mean - half_b, mean + half_b)
    return Verdict(
        verdict,
        n,
        scale,
        mean,
        *ci,
        *eq,
        margin,
        alpha,
        seeds_for_power(sd, margin, alpha),
        _constant_reason(verdict, n, mean, alpha)
        if constant and verdict != EQUIVALENT
        else _reason(verdict, ci, eq, margin, identical=bool(se == 0 and mean == 0)),
    )


def _constant_reason(verdict: str, n: int, mean: float, alpha: float) -> str:
    p = 2 * 0.5**n
    same = f"all {n} differences are {mean:.3g}: no spread for the t-test; "
    same += f"the sign test's p = {p:.2g}"
    return same + (f" < {alpha:g}" if verdict != UNDECIDED else f" ≥ {alpha:g}")


def _reason(
    verdict: str,
    ci: tuple[float, float],
    eq: tuple[float, float],
    margin: float,
    identical: bool,
) -> str:
    if identical:
        return "identical on every seed: every difference is 0"
    ci_text = f"the difference interval [{ci[0]:.3g}, {ci[1]:.3g}]"
    eq_text = f"the equivalence interval [{eq[0]:.3g}, {eq[1]:.3g}]"
    if verdict == EQUIVALENT:
        detected = ci[0] > 0 or ci[1] < 0
        extra = f"; {ci_text} excludes 0: a difference smaller than δ" if detected else ""
        return f"{eq_text} lies within ±{margin:.3g}{extra}"
    if verdict in (BETTER, WORSE):
        return f"{ci_text} excludes 0 and {eq_text} reaches past ±{margin:.3g}"
    return f"{ci_text} includes 0 and {eq_text} reaches past ±{margin:.3g}"


def paired_verdict(
    base: pd.Series,
    variant: pd.Series,
    *,
    higher_is_better: bool,
    log_scale: bool = False,
    margin: float | None = None,
    alpha: float = ALPHA,
) -> Verdict:
    """The fixed-design verdict on two Series indexed by seed (the report's paired table).

    ``log_scale``: the metric's flag (a log-ratio comparison when every paired value is > 0);
    ``margin``: a metric-specific δ (module docstring), None for 10% of the base.
    """
    pairs = paired_values(base, variant)
    scale = comparison_scale(pairs, log_scale)
    delta = margin_for(scale, pairs["base"], margin) if len(pairs) else math.nan
    return decide(
        paired_diffs(pairs, scale),
        higher_is_better=higher_is_better,
        margin=delta,
        scale=scale,
        alpha=alpha,
    )


def power_at(n: int, sd: float, delta: float, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test at α with n pairs to detect a mean ``delta``."""
    if n < 2:
        return math.nan
    if sd == 0:
        return 1.0 if delta != 0 else alpha
    df, nc = n - 1, abs(delta) * math.sqrt(n) / sd
    crit = sps.t.ppf(1 - alpha / 2, df)
    return float(sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc))


def seeds_for_power(
    sd: float, delta: float, alpha: float = ALPHA, power: float = POWER
) -> int | None:
    """The least n ≥ 2 pairs at which :func:`power_at` reaches ``power``; None if δ = 0, the
    spread is unknown, or more than :data:`MAX_POWER_SEEDS` would be needed."""
    if not (math.isfinite(sd) and math.isfinite(delta)) or delta == 0:
        return None
    if power_at(2, sd, delta, alpha) >= power:
        return 2
    lo, hi = 2, 4  # power_at(lo) < power; double hi until it is enough, then bisect
    while power_at(hi, sd, delta, alpha) < power:
        lo, hi = hi, 2 * hi
        if hi > MAX_POWER_SEEDS:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if power_at(mid, sd, delta, alpha) >= power else (mid, hi)
    return hi


# -- costs to a target, with runs that never reached it -------------------------------------


def censored_cost_verdict(
    base: pd.DataFrame,
    variant: pd.DataFrame,
    *,
    margin: float | None = None,
    alpha: float = ALPHA,
) -> Verdict:
    """The verdict on a cost to reach a target (lower is better) when some runs never reached it.

    ``base`` and ``variant`` are indexed by seed with columns ``cost`` (time or gradient
    evaluations to the target; NaN: not reached) and ``budget`` (what the run spent in all;
    ``inf`` for a run that diverged, which never reaches the target). A run that did not reach
    the target is *right-censored* at its budget: its cost is known only to exceed it.

    Per seed pair:

    - both reached: d = log(variant cost / base cost), known;
    - one reached, and the other's budget is at least that cost: the one that reached is the
      cheaper, d = ∓∞ (the order is known, the ratio is not);
    - otherwise (neither reached, or the other stopped sooner): unknown, left out.

    Leaving out the pairs where only one run reached the target, as a plain paired test must,
    drops exactly the seeds where the two differ most, in a direction that favours the side that
    reaches it less often. So when the known pairs include such a pair, the verdict is the exact
    two-sided sign test on the order of every known pair (``scipy.stats.binomtest``; Conover
    1999, "Practical Nonparametric Statistics", ch. 3). The sign test needs no value, only which
    run of a pair was cheaper, so a censored pair counts as fully as any other; when both runs of
    a pair have the same budget (the same steps and gradient evaluations per step) and the two
    optimizers do not differ, either order is equally likely, which is all the test assumes.
    *better* or *worse* when p < α, else *undecided*. The estimate is the median of the d_i and
    its interval the distribution-free order-statistic interval for a median at ≥ 1 − α (the
    one the sign test inverts; its ends may be ±∞). Equivalence is not assessed there: a pair
    where one run reached the target and the other never did is no evidence that the costs are
    within ±δ.
    Without such a pair the rule is :func:`decide`'s on the log ratios (δ = log(1 + margin),
    10% by default), as for any other log-scale statistic.
    """
    joined = pd.concat({"base": base, "variant": variant}, axis=1, join="inner").astype(float)
    b_cost, v_cost = joined[("base", "cost")], joined[("variant", "cost")]
    both = b_cost.notna() & v_cost.notna()
    only_base = b_cost.notna() & v_cost.isna() & (joined[("variant", "budget")] >= b_cost)
    only_variant = v_cost.notna() & b_cost.isna() & (joined[("base", "budget")] >= v_cost)
    delta = math.log1p(RELATIVE_MARGIN if margin is None else margin)
    bb, vv = b_cost[both].to_numpy(), v_cost[both].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):  # a cost of 0: reached at step 0
        ratios = np.where((bb == 0) & (vv == 0), 0.0, np.log(vv) - np.log(bb))
    censored = int(only_base.sum() + only_variant.sum())
    if censored == 0 and np.isfinite(ratios).all():
        return decide(ratios, higher_is_better=False, margin=delta, scale=LOG_RATIO, alpha=alpha)
    d = np.sort(
        np.concatenate(
            [ratios, [np.inf] * int(only_base.sum()), [-np.inf] * int(only_variant.sum())]
        )
    )
    n = len(d)
    cheaper, dearer = int((d < 0).sum()), int((d > 0).sum())
    p = float(sps.binomtest(cheaper, cheaper + dearer, 0.5).pvalue) if cheaper + dearer else 1.0
    verdict = UNDECIDED
    if p < alpha:
        verdict = BETTER if cheaper > dearer else WORSE
    lo, hi = _median_interval(d, alpha)
    why = "a cost of 0 on one side"
    if censored:
        why = f"{censored} pair(s) where only one run reached the target"
    reason = (
        f"{why}: the exact sign test on the order of {n} pairs ({cheaper} variant cheaper, "
        f"{dearer} base cheaper, {n - cheaper - dearer} ties): p = {p:.2g} "
        + ("<" if p < alpha else "≥")
        + f" {alpha:g}"
    )
    nan = math.nan
    median = _median(d)
    return Verdict(
        verdict, n, LOG_RATIO, median, lo, hi, nan, nan, delta, alpha, None, reason, "median"
    )


def _median(sorted_values: np.ndarray) -> float:
    """The median of sorted extended reals (the midpoint of two infinite middles of opposite
    sign is undefined: NaN)."""
    n = len(sorted_values)
    lo, hi = sorted_values[(n - 1) // 2], sorted_values[n // 2]
    if lo == hi:
        return float(lo)
    return float((lo + hi) / 2) if np.isfinite(lo) and np.isfinite(hi) else math.nan


def _median_interval(sorted_values: np.ndarray, alpha: float) -> tuple[float, float]:
    """[d_(j), d_(n+1−j)] (1-based order statistics): the distribution-free interval for the
    median with coverage ≥ 1 − α, j the largest with P(Bin(n, ½) < j) ≤ α/2; (−∞, ∞) when no
    j ≥ 1 qualifies (too few pairs)."""
    n = len(sorted_values)
    j = 0
    while j < n and sps.binom.cdf(j, n, 0.5) <= alpha / 2:
        j += 1
    if j < 1:
        return -math.inf, math.inf
    return float(sorted_values[j - 1]), float(sorted_values[n - j])
