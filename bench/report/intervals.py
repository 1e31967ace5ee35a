"""Confidence intervals that respect a metric's range: what the report draws around a mean.

Which interval a metric gets follows from its metadata (``ogan.workloads.Metric``):

- ``log_scale`` (positive, multiplicative: FID, distances, KL): the **geometric mean** with a
  Student-t interval on the log scale, ``exp(mean(log x) ± t_{(1+c)/2, n-1} · s_log / √n)``.
  It is exact for log-normal values (coverage c at every n ≥ 2), always inside (0, ∞), and
  matches the verdicts, which compare these metrics by log ratio
  (:mod:`bench.report.verdicts`). If a value is ≤ 0 the log is undefined and the metric falls
  back to the rule below (``method`` says so).
- otherwise: the arithmetic mean with the t-interval (:func:`bench.report.stats.mean_ci`), cut
  to the metric's ``bounds`` (e.g. 0 modes, a fraction's 1). Cutting never changes coverage:
  the true mean lies inside the bounds, so it lies in the cut interval exactly when it lies in
  the uncut one.

- no spread (every value the same): a t-interval has zero width, a precision ten equal runs do
  not give. At a bound of a metric bounded on both sides (8 of 8 modes in every run) the
  interval is the exact one for a variable in [lo, hi]: its mean is lowest for a two-point
  distribution on {lo, hi}, where n runs all at hi happen with probability p^n, so the
  Clopper–Pearson bound for n successes of n, (α/2)^{1/n}, gives
  [lo + (hi − lo)·(α/2)^{1/n}, hi] (10 runs: [0.69, 1] of the range). Anywhere else no interval
  is given (NaN; ``method`` says why).

Why not the bootstrap here: at the report's 3-10 seeds a bootstrap interval (percentile or
BCa) is too narrow (``stats.bootstrap_ci`` says by how much); these t-based rules are exact
under their model at every n.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from bench.report.stats import CONFIDENCE, mean_ci

Bounds = tuple[float | None, float | None]
UNBOUNDED: Bounds = (None, None)

T = "t"
T_CUT = "t, cut to the metric's range"
LOG_T = "t on the log scale (geometric mean)"
EXACT_AT_BOUND = "exact at the bound (Clopper–Pearson, no spread)"
NO_SPREAD = "no spread: no interval"


@dataclass(frozen=True)
class MetricCI:
    """A central value with a confidence interval inside the metric's range.

    ``center`` is the geometric mean when ``method`` is :data:`LOG_T`, else the mean.
    Bounds are NaN when n < 2.
    """

    center: float
    lo: float
    hi: float
    n: int
    method: str


def cut(lo: float, hi: float, bounds: Bounds) -> tuple[float, float]:
    """(lo, hi) intersected with the metric's bounds (NaN stays NaN)."""
    low, high = bounds
    if low is not None and not math.isnan(lo):
        lo = max(lo, low)
    if high is not None and not math.isnan(hi):
        hi = min(hi, high)
    return lo, hi


def log_t_interval(
    values: Sequence[float] | np.ndarray | pd.Series, confidence: float = CONFIDENCE
) -> MetricCI:
    """Geometric mean and the t-interval of ``log(values)`` mapped back with ``exp``.

    Takes the finite values; every one must be > 0 (ValueError otherwise: the log scale is
    undefined there, see :func:`metric_ci` for the fallback).
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if (x <= 0).any():
        raise ValueError("the log-scale interval needs values > 0")
    ci = mean_ci(np.log(x), confidence)
    return MetricCI(math.exp(ci.mean), math.exp(ci.lo), math.exp(ci.hi), ci.n, LOG_T)


def metric_ci(
    values: Sequence[float] | np.ndarray | pd.Series,
    *,
    bounds: Bounds = UNBOUNDED,
    log_scale: bool = False,
    confidence: float = CONFIDENCE,
) -> MetricCI:
    """The interval a metric with these ``bounds`` and ``log_scale`` gets (module docstring)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) >= 2 and (x == x[0]).all():
        return _no_spread(float(x[0]), len(x), bounds, confidence)
    if log_scale and len(x) and (x > 0).all():
        return log_t_interval(x, confidence)
    ci = mean_ci(x, confidence)
    lo, hi = cut(ci.lo, ci.hi, bounds)
    method = T_CUT if (lo, hi) != (ci.lo, ci.hi) else T
    return MetricCI(ci.mean, lo, hi, ci.n, method)


def _no_spread(value: float, n: int, bounds: Bounds, confidence: float) -> MetricCI:
    """The interval of n equal values (module docstring)."""
    low, high = bounds
    if low is not None and high is not None and value in (low, high):
        reach = (high - low) * ((1 - confidence) / 2) ** (1 / n)
        lo, hi = (low + reach, high) if value == high else (low, high - reach)
        return MetricCI(value, lo, hi, n, EXACT_AT_BOUND)
    return MetricCI(value, math.nan, math.nan, n, NO_SPREAD)


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The exact interval for a proportion of k in n (``scipy.stats.binomtest``'s)."""
    if n == 0:
        return math.nan, math.nan
    ci = sps.binomtest(k, n).proportion_ci(confidence, method="exact")
    return float(ci.low), float(ci.high)


def errorbar(
    bounds: Bounds = UNBOUNDED, log_scale: bool = False, confidence: float = CONFIDENCE
) -> Callable[[np.ndarray], tuple[float, float]]:
    """``(lo, hi)`` of :func:`metric_ci` as a function of the values: seaborn's ``errorbar=``."""

    def interval(values: np.ndarray) -> tuple[float, float]:
        ci = metric_ci(values, bounds=bounds, log_scale=log_scale, confidence=confidence)
        return ci.lo, ci.hi

    return interval


def estimator(log_scale: bool = False) -> Callable[[np.ndarray], float]:
    """The center :func:`metric_ci` reports, as seaborn's ``estimator=``: the mean, or the
    geometric mean of a log-scale metric."""

    def center(values: np.ndarray) -> float:
        return metric_ci(values, log_scale=log_scale).center

    return center
