"""The report's statistics: pure functions on arrays and DataFrames, no I/O, no plotting.

Everything random (the bootstrap) takes a fixed seed, so a report rebuilt from the same runs
prints the same numbers.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
MIN_SIGNED_RANK_N = 6
"""Below 6 non-zero pairs the exact two-sided signed-rank p-value cannot fall under 0.05: its
smallest possible value is 2 / 2**n (0.0625 at n = 5)."""


def _finite(values: Sequence[float] | np.ndarray | pd.Series) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[np.isfinite(x)]


@dataclass(frozen=True)
class MeanCI:
    """A mean with its two-sided t-based confidence interval (NaN bounds when n < 2)."""

    mean: float
    lo: float
    hi: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2


def mean_ci(
    values: Sequence[float] | np.ndarray | pd.Series, confidence: float = CONFIDENCE
) -> MeanCI:
    """Mean ± Student-t interval of the finite values: mean ± t_{(1+c)/2, n-1} · s / √n."""
    x = _finite(values)
    n = len(x)
    if n == 0:
        return MeanCI(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return MeanCI(mean, math.nan, math.nan, 1)
    half = float(sps.t.ppf((1 + confidence) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return MeanCI(mean, mean - half, mean + half, n)


def t_interval(
    values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """(lo, hi) of :func:`mean_ci`; the shape seaborn's ``errorbar=callable`` expects."""
    ci = mean_ci(values, confidence)
    return ci.lo, ci.hi


def bootstrap_ci(
    values: Sequence[float] | np.ndarray | pd.Series,
    statistic: Callable[..., np.ndarray] = np.mean,
    confidence: float = CONFIDENCE,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """BCa bootstrap interval of ``statistic`` over the finite values (NaN when n < 2).

    ``scipy.stats.bootstrap`` with ``method="BCa"`` (Efron 1987): its bounds are quantiles of
    the resampled statistic, so for the mean they never leave the data's range (no interval
    below zero for non-negative data), and it corrects the percentile interval's bias and
    skewness. Like every bootstrap it is too narrow at a handful of values (below 90% coverage
    for a nominal 95% at n = 8 normal values, 94% at n = 30, by simulation), which is why the
    verdicts (:mod:`bench.report.verdicts`) and the metric intervals
    (:mod:`bench.report.intervals`) are t-based. ``statistic(x, axis=...)`` must reduce along
    ``axis`` (``np.mean``, ``np.median``). Constant data give the point interval.
    """
    x = _finite(values)
    if len(x) < 2:
        return math.nan, math.nan
    if np.all(x == x[0]):  # BCa's acceleration is 0/0 here; every resample is the same value
        point = float(statistic(x[None, :], axis=1)[0])
        return point, point
    res = sps.bootstrap(
        (x,),
        statistic,
        vectorized=True,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="BCa",
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def min_signed_rank_pvalue(n: int) -> float:
    """The smallest two-sided p-value the exact Wilcoxon signed-rank test can give for n pairs."""
    return min(1.0, 2.0 / 2**n) if n > 0 else 1.0


@dataclass(frozen=True)
class PairedComparison:
    """``b − a`` over matched pairs: mean difference, its bootstrap CI, and a signed-rank test."""

    n: int
    mean_diff: float
    ci_lo: float
    ci_hi: float
    b_better: int  # pairs where b is better (by the metric's direction)
    statistic: float
    pvalue: float
    note: str


def paired_differences(a: pd.Series, b: pd.Series) -> pd.Series:
    """``b − a`` on the index labels both have and where both values are finite."""
    joined = pd.concat({"a": a, "b": b}, axis=1, join="inner").astype(float)
    joined = joined[np.isfinite(joined["a"]) & np.isfinite(joined["b"])]
    return (joined["b"] - joined["a"]).sort_index()


def signed_rank(diffs: Sequence[float] | np.ndarray) -> tuple[float, float, str]:
    """Two-sided Wilcoxon signed-rank test of zero median difference: (statistic, p, note).

    The note says when n is too small for the test to reject at the 5% level at all.
    """
    d = _finite(diffs)
    nonzero = int((d != 0).sum())
    if len(d) == 0:
        return math.nan, math.nan, "no pairs"
    if nonzero == 0:
        return math.nan, 1.0, "all differences are zero"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy warns about tiny samples; we say so
        res = sps.wilcoxon(d)
    note = ""
    if nonzero < MIN_SIGNED_RANK_N:
        note = (
            f"n={nonzero} is too small: the smallest possible p is "
            f"{min_signed_rank_pvalue(nonzero):.3g}, so the test cannot show a difference at 5%"
        )
    return float(res.statistic), float(res.pvalue), note


def compare_paired(a: pd.Series, b: pd.Series, higher_is_better: bool = False) -> PairedComparison:
    """Seed-matched comparison of two variants (Series indexed by seed): b − a."""
    d = paired_differences(a, b)
    n = len(d)
    lo, hi = bootstrap_ci(d)
    if n < 2:
        statistic, pvalue = math.nan, math.nan
        note = "1 pair: no interval or test possible" if n else "no pairs"
    else:
        statistic, pvalue, note = signed_rank(d)
    if 1 < n < MIN_SIGNED_RANK_N:
        note = (
            f"n={n} is too small to tell: a bootstrap CI from {n} pairs is unreliable, and the "
            f"smallest possible signed-rank p is {min_signed_rank_pvalue(n):.3g}"
        )
    better = int((d > 0).sum() if higher_is_better else (d < 0).sum())
    mean = float(d.mean()) if n else math.nan
    return PairedComparison(n, mean, lo, hi, better, statistic, pvalue, note)


def split_seeds(
    seeds: Sequence[int], selection: Sequence[int] | None = None
) -> tuple[list[int], list[int]]:
    """(selection seeds, report seeds): the lowest-numbered half selects, the rest reports.

    With one seed both are that seed (selection and report share it, which the report states).
    With an odd count the report half gets the extra seed, since it carries the claims.
    ``selection``: the selection seeds fixed earlier (``bench run --until-decided`` adds report
    seeds, which must not move the split); every other seed reports.
    """
    unique = sorted({int(s) for s in seeds})
    if selection is not None:
        chosen = set(selection)
        return [s for s in unique if s in chosen], [s for s in unique if s not in chosen]
    if len(unique) < 2:
        return unique, unique
    half = len(unique) // 2
    return unique[:half], unique[half:]


def nonfinite_rate_and_mean(values: pd.Series, nonfinite: pd.Series) -> tuple[float, float]:
    """(fraction of non-finite runs, mean of the values of the other runs)."""
    ok = ~nonfinite & np.isfinite(values.astype(float))
    rate = float(1 - ok.mean()) if len(values) else math.nan
    return rate, float(values[ok].mean()) if ok.any() else math.nan


def select_best(
    runs: pd.DataFrame,
    by: Sequence[str],
    value: str,
    nonfinite: str,
    higher_is_better: bool = False,
    candidate: str = "lr",
) -> pd.DataFrame:
    """For each group ``by``, the ``candidate`` value (the lr) with the best score.

    Score, compared lexicographically: the lowest fraction of non-finite runs (the boolean
    column ``nonfinite``, or a non-finite ``value``: such a run counts as worse than any finite
    value), then the best mean ``value`` of the other runs, then the smaller candidate (a stable
    tie-break). Returns one row per group: ``by``, ``candidate``, ``nonfinite_rate``, ``score``,
    ``n``.
    """
    rows = []
    for keys, group in runs.groupby(list(by), sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        scored = []
        for cand, g in group.groupby(candidate, sort=True):
            bad = g[nonfinite].astype(bool) | ~np.isfinite(g[value].astype(float))
            rate, mean = nonfinite_rate_and_mean(g[value], bad)
            key_mean = math.inf if math.isnan(mean) else (-mean if higher_is_better else mean)
            scored.append(((rate, key_mean, cand), cand, rate, mean, len(g)))
        _, cand, rate, mean, n = min(scored, key=lambda s: s[0])
        rows.append(
            {**dict(zip(by, keys)), candidate: cand, "nonfinite_rate": rate, "score": mean, "n": n}
        )
    return pd.DataFrame(rows, columns=[*by, candidate, "nonfinite_rate", "score", "n"])


def performance_ratios(costs: pd.DataFrame) -> pd.DataFrame:
    """Per problem (row), each method's (column) cost divided by the best cost on that problem.

    Costs are lower-is-better and >= 0. ``inf`` marks a method without a finite cost (ratio
    inf); NaN a method that was not run on that problem (ratio NaN). When the best cost is zero,
    methods that also score zero get ratio 1 and the others inf; when every cost is inf, all
    ratios are inf.
    """
    c = costs.to_numpy(dtype=float)
    if (c < 0).any():
        raise ValueError("performance profiles need costs >= 0 (lower is better)")
    out = np.full_like(c, np.nan)
    for i, row in enumerate(c):
        ran = ~np.isnan(row)
        if not ran.any():
            continue
        best = row[ran].min()
        if np.isinf(best):
            out[i, ran] = np.inf
        elif best == 0:
            out[i, ran] = np.where(row[ran] == 0, 1.0, np.inf)
        else:
            out[i, ran] = row[ran] / best
    return pd.DataFrame(out, index=costs.index, columns=costs.columns)


def performance_profile(costs: pd.DataFrame, taus: Sequence[float] | np.ndarray) -> pd.DataFrame:
    """ρ_m(τ): the fraction of problems on which method m is within a factor τ of the best.

    AlgoPerf-style (Dolan & Moré 2002; Dahl et al. 2023). The denominator is the number of
    problems the method was run on (NaN costs are left out, not counted as infinite).
    Returns a DataFrame indexed by τ with one column per method.
    """
    ratios = performance_ratios(costs)
    taus = np.asarray(taus, dtype=float)
    out = {}
    for method in ratios.columns:
        r = ratios[method].dropna().to_numpy()
        out[method] = (
            (r[None, :] <= taus[:, None]).mean(axis=1) if len(r) else np.full(len(taus), np.nan)
        )
    return pd.DataFrame(out, index=pd.Index(taus, name="tau"))


def rank_scores(
    nonfinite_rate: pd.Series, score: pd.Series, higher_is_better: bool = False
) -> pd.Series:
    """Ranks (1 = best, ties averaged) by fewest non-finite runs, then best score (NaN last)."""
    s = score.astype(float)
    key = pd.DataFrame(
        {
            "nonfinite": nonfinite_rate.astype(float).to_numpy(),
            "score": (-s if higher_is_better else s).fillna(math.inf).to_numpy(),
        }
    )
    # Dense codes of the (nonfinite, score) pairs in lexicographic order, then an average rank.
    order = key.sort_values(["nonfinite", "score"]).index
    codes = pd.Series(0.0, index=key.index)
    previous, code = None, -1
    for i in order:
        pair = (key.at[i, "nonfinite"], key.at[i, "score"])
        if pair != previous:
            code, previous = code + 1, pair
        codes[i] = code
    ranks = codes.rank(method="average").to_numpy()
    return pd.Series(ranks, index=score.index)
