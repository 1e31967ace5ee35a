"""How the report writes numbers: significant digits, means with intervals, counts."""

from __future__ import annotations

import math


def num(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:.{digits}g}"


def mean_pm(mean: float, lo: float, hi: float, n: int) -> str:
    """The center, its 95% interval and n; says why when there is no interval.

    The interval is shown as [lo, hi], not ± a half-width: a range-respecting interval
    (:mod:`bench.report.intervals`: log scale, or cut to the metric's bounds) is asymmetric.
    """
    if n == 0:
        return "n/a (every run non-finite)"
    if n == 1 or math.isnan(lo):
        return f"{num(mean)}, no interval (1 seed)"
    return f"{num(mean)} {interval(lo, hi)} (n={n})"


def interval(lo: float, hi: float) -> str:
    if math.isnan(lo):
        return "n/a"
    return f"[{num(lo, 3)}, {num(hi, 3)}]"


def frac(k: int, n: int) -> str:
    return f"{k}/{n}"
