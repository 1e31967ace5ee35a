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
    """Mean ± the 95% t half-width and n; says why when there is no interval."""
    if n == 0:
        return "n/a (every run non-finite)"
    if n == 1 or math.isnan(lo):
        return f"{num(mean)} ± n/a (1 seed)"
    return f"{num(mean)} ± {num((hi - lo) / 2, 2)} (n={n})"


def interval(lo: float, hi: float) -> str:
    if math.isnan(lo):
        return "n/a"
    return f"[{num(lo, 3)}, {num(hi, 3)}]"


def frac(k: int, n: int) -> str:
    return f"{k}/{n}"
