"""Verdicts for seed-matched paired comparisons: *better*, *worse*, *equivalent within ±δ* or
*undecided*, each with its p-values, and the seeds a fixed design would need to detect δ.

The comparison
--------------
Base and variant ran on the same seeds; d_i is variant − base on seed i. A metric with
``log_scale`` (FID, distances, KL: positive and multiplicative) is compared by log ratio,
d_i = log(variant_i / base_i): a constant relative effect is one number whatever the metric's
magnitude, the paired t-test on it tests the geometric-mean ratio, and skewed values become
closer to symmetric. If a value ≤ 0 is among the pairs the log is undefined and the comparison
is on the difference (``Verdict.scale`` says which).

The margin δ, the smallest difference that matters (Schuirmann 1987; Lakens 2017), is the
metric's own, declared with it before any run (``ogan.workloads.Metric.margin``): in the
metric's units on the difference scale, a relative change on the log scale (δ = log(1 + margin)).
It is never derived from the data: a margin of 10% of the base's mean moved with the results
(±0 when the base scored 0). A metric without a declared margin, or a log-scale metric that fell
back to the difference scale (its margin is relative, not in units), gets no *equivalent*
verdict: δ is NaN and only better / worse / undecided remain.

The rule
--------
With n ≥ 2 pairs, mean m and standard error se of the d_i:

- ``p_value``: the two-sided paired t-test of "no difference" (``scipy.stats.ttest_1samp``'s);
- ``p_equivalence``: two one-sided tests (TOST) of "|difference| ≥ δ": the larger of the two
  one-sided t-tests' p-values; NaN without a margin or with fewer than
  :data:`MIN_EQUIVALENCE_PAIRS` pairs.

    verdict = equivalent       if p_equivalence < α
              better / worse   else, if p_value < α (better when the variant's mean is on the
                               metric's good side)
              undecided        else

In a fixed design this is the interval rule: the 95% *difference interval* m ± t_{1−α/2}·se
excludes 0 exactly when p_value < α, and the 90% *equivalence interval* m ± t_{1−α}·se lies
within ±δ exactly when p_equivalence < α. The report adjusts both p-values for multiplicity
(:mod:`bench.report.families`) and applies the same rule (:func:`verdict_from_p`) to the
adjusted ones. When seeds were added in rounds, the boundaries c and b of
:mod:`bench.report.spending` replace the t quantiles (:func:`classify`).

Equivalence comes first: a difference that is detectable yet shown to be smaller than δ is, by
the definition of δ, one that does not matter. So the verdicts exclude each other by
construction. *Equivalent* needs at least :data:`MIN_EQUIVALENCE_PAIRS` pairs, and comes only
from the test: identical variants (every d_i exactly 0) are equivalent when the test says so at
that n, not by a shortcut (at n = 3, a true difference of exactly δ gave "equivalent" 11% of
the time through the old all-zero shortcut).

Every d_i the same value (quantised measurements: modes, steps to a target counted at
evaluation points) leaves the t-test without a spread: se = 0 and its statistic is infinite (or
undefined) for any n. There both p-values are the exact sign test's, decided the same way for a
positive and a negative constant: p_value = 2 · 2⁻ⁿ for a constant c ≠ 0 (n ≥ 6 at α = 0.05:
two pairs that agree are not evidence) and 1 for c = 0; p_equivalence = 2⁻ⁿ when |c| < δ (all n
pairs lie inside the margin, the sign test of each one-sided hypothesis), else 1. Such a
comparison has no interval (NaN): a zero-width interval would claim a precision the data do not
have.

Errors, for normal differences: P(better or worse | no difference) ≤ α and
P(equivalent | |true difference| ≥ δ) ≤ α. For two-valued differences (whole modes: 0 or 1
with probability ½ each, a true difference of exactly δ = 0.5) the t-based TOST is not exact:
P(equivalent) is 0 below 5 pairs, 3.1% at 5, and peaks at 9.0% at 9 pairs (exact, over 2-20
pairs, ``tests/test_verdicts.py``), a stated limitation of the t-test on coarse counts. In a
group-sequential look a sample without spread stays *undecided* (the sign test's level is not
spent across looks); the design adds seeds until the differences vary or it ends. The
signed-rank test of :mod:`bench.report.stats` stays beside the verdict as a check that does
not assume normality.

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
MIN_EQUIVALENCE_PAIRS = 5
"""No *equivalent* below this many pairs: TOST at n = 2-4 rests on a spread estimated from 1-3
degrees of freedom, and at n < 5 the sign test (the no-spread case) cannot reach 2⁻ⁿ < 0.05."""
BETTER, WORSE, EQUIVALENT, UNDECIDED = "better", "worse", "equivalent", "undecided"
NOT_OBSERVED = "not observed"
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
    ci_lo: float  # the difference interval, which decides better / worse (NaN: no spread)
    ci_hi: float
    eq_lo: float  # the equivalence interval, which decides equivalence
    eq_hi: float
    margin: float  # δ on ``scale`` (NaN: no declared margin, no equivalence verdict)
    alpha: float
    seeds_for_power: int | None  # pairs a fixed design needs for 80% power at δ
    reason: str
    center: str = "mean"  # what ``estimate`` is: the mean difference, or (censored) the median
    p_value: float = math.nan  # of "no difference" (two-sided)
    p_equivalence: float = math.nan  # of "|difference| ≥ δ" (TOST); NaN: not assessed

    @property
    def decided(self) -> bool:
        return self.verdict != UNDECIDED

    def effect(self) -> str:
        """The effect with its interval: ``ratio 0.81 [0.70, 0.93]`` on the log scale (a log
        ratio of ±∞, a pair where only one run reached a target, reads 0 or ∞), else
        ``difference -1.3 [-3.7, 1.1]``; ``(no spread)`` where every pair differed alike."""
        if self.scale == LOG_RATIO:
            lo, mid, hi = (_ratio(x) for x in (self.ci_lo, self.estimate, self.ci_hi))
            name = self._what("ratio")
        else:
            lo, mid, hi = (f"{x:.3g}" for x in (self.ci_lo, self.estimate, self.ci_hi))
            name = self._what("difference")
        if math.isnan(self.ci_lo) and math.isnan(self.ci_hi):
            return f"{name} {mid} (no spread: no interval)"
        return f"{name} {mid} [{lo}, {hi}]"

    def _what(self, name: str) -> str:
        return name if self.center == "mean" else f"{self.center} {name}"

    def describe(self) -> str:
        """One line, e.g. ``better: ratio 0.81 [0.70, 0.93] (10 pairs, δ = ±10%)``."""
        return f"{self.verdict}: {self.effect()} ({self.n} pairs, δ = {margin_text(self)})"


def margin_text(v: Verdict) -> str:
    """δ as a reader states it: ±10% on the log scale, ±0.5 on the difference, or none."""
    if not math.isfinite(v.margin):
        return "none declared"
    if v.scale == LOG_RATIO:
        return f"±{math.expm1(v.margin):.0%}"
    return f"±{v.margin:.3g}"


def _ratio(log_ratio: float) -> str:
    """exp of a log ratio, as text: 0 and ∞ for −∞ and +∞ (not exp's underflow or overflow)."""
    if math.isnan(log_ratio):
        return "nan"
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


def margin_for(scale: str, margin: float | None, log_scale: bool) -> float:
    """δ on ``scale`` from the metric's declared ``margin`` (module docstring); NaN (no
    equivalence verdict) without one, or for a log-scale metric compared by difference."""
    if margin is None or (isinstance(margin, float) and math.isnan(margin)):
        return math.nan
    if not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"the equivalence margin must be finite and > 0, got {margin}")
    if scale == LOG_RATIO:
        return math.log1p(margin)
    return math.nan if log_scale else float(margin)


def verdict_from_p(
    p_value: np.ndarray | float,
    p_equivalence: np.ndarray | float,
    mean: np.ndarray | float,
    *,
    higher_is_better: np.ndarray | bool,
    alpha: float = ALPHA,
) -> np.ndarray:
    """The rule of the module docstring on (possibly adjusted) p-values, elementwise.

    NaN p-values never decide. Vectorised: the simulations of the tests run this very rule.
    """
    p, q, m = (np.asarray(x, dtype=float) for x in (p_value, p_equivalence, mean))
    hib = np.asarray(higher_is_better, dtype=bool)
    p, q, m, hib = np.broadcast_arrays(p, q, m, hib)
    different = p < alpha
    good = different & ((m > 0) == hib) & (m != 0)
    bad = different & ((m < 0) == hib) & (m != 0)
    out = np.full(p.shape, UNDECIDED, dtype=object)
    out[good] = BETTER
    out[bad] = WORSE
    out[q < alpha] = EQUIVALENT  # last: equivalence takes precedence
    return out


def classify(
    mean: np.ndarray,
    se: np.ndarray,
    *,
    c: np.ndarray | float,
    b: np.ndarray | float,
    margin: np.ndarray | float,
    higher_is_better: bool,
    n: np.ndarray | int | None = None,
) -> np.ndarray:
    """The interval form of the rule, elementwise, with boundaries c and b (the group-sequential
    design's): an array of verdict strings.

    ``se`` is NaN where there are fewer than 2 pairs (undecided); se = 0 decides nothing here
    (:func:`decide` gives that case to the sign test). ``n``: the pairs behind each entry, for
    the :data:`MIN_EQUIVALENCE_PAIRS` rule (None: enough). A NaN margin never gives
    *equivalent*. Vectorised so that the simulations of :mod:`bench.report.spending` run the
    very rule the report applies.
    """
    m, s = np.asarray(mean, dtype=float), np.asarray(se, dtype=float)
    known = np.isfinite(s) & (s > 0)
    with np.errstate(invalid="ignore"):
        eq_lo, eq_hi = m - b * s, m + b * s
        ci_lo, ci_hi = m - c * s, m + c * s
        enough = np.ones(m.shape, bool) if n is None else np.asarray(n) >= MIN_EQUIVALENCE_PAIRS
        equivalent = known & enough & (eq_lo > -margin) & (eq_hi < margin)
    above, below = known & (ci_lo > 0), known & (ci_hi < 0)
    good, bad = (above, below) if higher_is_better else (below, above)
    out = np.full(m.shape, UNDECIDED, dtype=object)
    out[good] = BETTER
    out[bad] = WORSE
    out[equivalent] = EQUIVALENT  # last: equivalence takes precedence
    return out


def p_values(d: np.ndarray, margin: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p_value, p_equivalence) of the module docstring for differences ``d`` (finite), along
    the last axis: a float pair for one sample, arrays for a stack of them (the simulations of
    the tests call this very function on thousands of samples at once)."""
    d = np.asarray(d, dtype=float)
    n = d.shape[-1]
    if n < 2:
        nan = np.full(d.shape[:-1], np.nan)
        return _scalar(nan), _scalar(nan)
    mean, sd = d.mean(-1), d.std(-1, ddof=1)
    margin = np.broadcast_to(np.asarray(margin, dtype=float), mean.shape)
    flat = sd == 0  # the sign test: every pair on the same side, by the same amount
    with np.errstate(divide="ignore", invalid="ignore"):
        se = sd / math.sqrt(n)
        p = np.where(flat, np.where(mean != 0, min(1.0, 2 * 0.5**n), 1.0), 0.0)
        p = np.where(flat, p, 2 * sps.t.sf(np.abs(mean) / se, n - 1))
        lower = sps.t.sf((mean + margin) / se, n - 1)  # H0: difference ≤ −δ
        upper = sps.t.cdf((mean - margin) / se, n - 1)  # H0: difference ≥ +δ
        q = np.where(flat, np.where(np.abs(mean) < margin, 0.5**n, 1.0), np.maximum(lower, upper))
    q = np.where(np.isfinite(margin) & (n >= MIN_EQUIVALENCE_PAIRS), q, np.nan)
    return _scalar(p), _scalar(q)


def _scalar(x: np.ndarray) -> np.ndarray:
    return float(x) if np.ndim(x) == 0 else x


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
    """The verdict on per-seed differences ``diffs`` (already on ``scale``) with margin δ
    (NaN: none declared).

    ``c`` and ``b`` are the difference and equivalence boundaries of a group-sequential design;
    None: the fixed design, decided by its p-values (the same as its t intervals).
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
    p, q = p_values(d, margin)
    fixed = c is None and b is None
    c = float(sps.t.ppf(1 - alpha / 2, n - 1)) if c is None else c
    b = float(sps.t.ppf(1 - alpha, n - 1)) if b is None else b
    if fixed:
        verdict = verdict_from_p(p, q, mean, higher_is_better=higher_is_better, alpha=alpha)
    elif se == 0:  # the sign test's level is not spent across looks: a sequential design waits
        verdict = np.array(UNDECIDED, dtype=object)
    else:
        verdict = classify(
            mean, se, c=c, b=b, margin=margin, higher_is_better=higher_is_better, n=n
        )
    verdict = verdict.item()
    nan = math.nan
    ci = (nan, nan) if se == 0 else (mean - c * se, mean + c * se)
    eq = (nan, nan) if se == 0 else (mean - b * se, mean + b * se)
    reason = (
        _constant_reason(verdict, n, mean, p, q, margin, alpha)
        if se == 0
        else _reason(verdict, ci, eq, margin, n)
    )
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
        reason,
        p_value=p,
        p_equivalence=q,
    )


def _constant_reason(
    verdict: str, n: int, mean: float, p: float, q: float, margin: float, alpha: float
) -> str:
    why = f"all {n} differences are {mean:.3g}: no spread for the t-test, the sign test decides"
    if verdict == EQUIVALENT:
        return f"{why}: all {n} lie within ±{margin:.3g}, p = {q:.2g} < {alpha:g}"
    if verdict in (BETTER, WORSE):
        return f"{why}: p = {p:.2g} < {alpha:g}"
    extra = (
        ""
        if math.isfinite(q) or not math.isfinite(margin)
        else (f"; equivalence needs ≥ {MIN_EQUIVALENCE_PAIRS} pairs")
    )
    return f"{why}: p = {p:.2g} ≥ {alpha:g}{extra}"


def _reason(
    verdict: str,
    ci: tuple[float, float],
    eq: tuple[float, float],
    margin: float,
    n: int,
) -> str:
    ci_text = f"the difference interval [{ci[0]:.3g}, {ci[1]:.3g}]"
    if not math.isfinite(margin):
        eq_part = "no margin declared: equivalence not assessed"
    elif n < MIN_EQUIVALENCE_PAIRS:
        eq_part = f"equivalence needs ≥ {MIN_EQUIVALENCE_PAIRS} pairs"
    else:
        eq_part = f"the equivalence interval [{eq[0]:.3g}, {eq[1]:.3g}] reaches past ±{margin:.3g}"
    if verdict == EQUIVALENT:
        detected = ci[0] > 0 or ci[1] < 0
        extra = f"; {ci_text} excludes 0: a difference smaller than δ" if detected else ""
        eq_text = f"the equivalence interval [{eq[0]:.3g}, {eq[1]:.3g}]"
        return f"{eq_text} lies within ±{margin:.3g}{extra}"
    if verdict in (BETTER, WORSE):
        return f"{ci_text} excludes 0 and {eq_part}"
    return f"{ci_text} includes 0 and {eq_part}"


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
    ``margin``: the metric's declared margin (module docstring), None: no equivalence verdict.
    """
    pairs = paired_values(base, variant)
    scale = comparison_scale(pairs, log_scale)
    return decide(
        paired_diffs(pairs, scale),
        higher_is_better=higher_is_better,
        margin=margin_for(scale, margin, log_scale),
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


# -- reaching a target ------------------------------------------------------------------------


def reach_verdict(base: pd.Series, variant: pd.Series, alpha: float = ALPHA) -> Verdict:
    """Whether the variant reaches a target more often than the base: the exact McNemar test.

    ``base`` and ``variant`` are booleans indexed by seed (reached the target or not; a run that
    diverged did not). Reaching is one endpoint and how fast another: counting a run that never
    reached the target as "slower" mixed the two, and turned 3/12 vs 9/12 runs reaching it into
    a "median ratio 0" speed-up. Here only the discordant pairs carry information (McNemar
    1947): k pairs where only the variant reached, l where only the base did; under no
    difference k ~ Bin(k + l, ½), and the exact two-sided p is ``scipy.stats.binomtest``'s.
    Higher is better. The estimate is the difference of the proportions reached (variant −
    base) on the paired seeds; no interval is given (the test is conditional on k + l), and
    equivalence is not assessed (no margin for a proportion reached is declared).
    """
    joined = pd.concat({"base": base, "variant": variant}, axis=1, join="inner").dropna()
    b, v = joined["base"].astype(bool), joined["variant"].astype(bool)
    n = len(joined)
    only_v, only_b = int((v & ~b).sum()), int((b & ~v).sum())
    p = float(sps.binomtest(only_v, only_v + only_b, 0.5).pvalue) if only_v + only_b else 1.0
    estimate = float(v.mean() - b.mean()) if n else math.nan
    verdict = verdict_from_p(p, math.nan, estimate, higher_is_better=True, alpha=alpha).item()
    if n < 2:
        verdict = UNDECIDED
    reason = (
        f"reached by {int(b.sum())}/{n} base and {int(v.sum())}/{n} variant runs; "
        f"{only_v} pair(s) where only the variant reached, {only_b} where only the base did: "
        f"exact McNemar p = {p:.2g}"
    )
    nan = math.nan
    return Verdict(
        verdict,
        n,
        DIFFERENCE,
        estimate,
        nan,
        nan,
        nan,
        nan,
        nan,
        alpha,
        None,
        reason,
        center="proportion",
        p_value=p,
    )
