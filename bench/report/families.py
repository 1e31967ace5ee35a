"""Declared families of verdicts and their multiplicity control.

A report makes dozens of verdicts; at α = 0.05 each, about one in twenty comparisons with no
difference at all would still be called better or worse. So every verdict belongs to a family
declared before the data are seen, and is decided on p-values adjusted within it:

- **confirmatory**, one family per workload: each optimizer against its base (⊥Grad or surgery
  against the same optimizer without; another optimizer against the workload's Adam; a pair
  the sweep file declares with ``[[compare]]``, its arm against its other) on the workload's
  primary metric. The family-wise error rate (the chance of even one false better,
  worse or equivalent in the family) is held at α = 5% by Holm's step-down procedure (Holm
  1979), valid under any dependence between the comparisons (they share the base's runs).
- **secondary**, one family per workload: the same comparisons on the workload's other
  metrics that have a declared margin (for the mixtures: high-quality fraction, reverse KL,
  Fréchet distance), on their final values; family-wise error held at α = 5% by Holm, as the
  confirmatory family, apart from it (a secondary metric never costs the primary power).
- **exploratory**, one family for the whole report: every other verdict (the claim's gradient
  statistics, reaching the target, the cost among runs that reached it). The false discovery
  rate is held at q = 5% by Benjamini & Hochberg (1995) (``scipy.stats.false_discovery_control``).

Both p-values of a comparison are adjusted, each within its family: the test of "no
difference" (better / worse) and the TOST of "|difference| ≥ δ" (equivalent); the verdict is
then :func:`~bench.report.verdicts.verdict_from_p` on the adjusted pair. The intervals shown are
the unadjusted 95% ones: an interval that excludes 0 beside an adjusted p ≥ 0.05 is a difference
this family cannot claim.

A comparison decided by a group-sequential design (``bench run --until-decided``) has no
p-value; its design runs at level α / m (m: its family's size, Bonferroni) and counts in Holm's
m, which keeps the family's error at α: Holm rejects a true null only at a level ≤ α / m₀, and
the sequential ones are at α / m ≤ α / m₀.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from bench.report.verdicts import ALPHA, verdict_from_p

CONFIRMATORY, SECONDARY, EXPLORATORY = "confirmatory", "secondary", "exploratory"
FDR_Q = 0.05


def holm(p: np.ndarray, extra: int | np.ndarray = 0) -> np.ndarray:
    """Holm-adjusted p-values along the last axis; NaN entries stay NaN and are not counted.

    ``extra``: hypotheses decided elsewhere at level α / m that still count in m (the
    sequential ones of the module docstring). Vectorised for the simulations.
    """
    p = np.asarray(p, dtype=float)
    finite = np.isfinite(p)
    m = finite.sum(axis=-1, keepdims=True) + np.asarray(extra)[..., None]
    order = np.argsort(np.where(finite, p, np.inf), axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1)
    factor = m - np.arange(p.shape[-1])  # m, m − 1, ... for the sorted p's
    stepped = np.minimum(1.0, np.maximum.accumulate(np.nan_to_num(factor * ranked, nan=0), -1))
    adjusted = np.empty_like(p)
    np.put_along_axis(adjusted, order, stepped, axis=-1)
    return np.where(finite, adjusted, np.nan)


def bh(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values along the last axis (NaN stays NaN, not counted)."""
    p = np.asarray(p, dtype=float)
    if p.ndim == 1:
        out = np.full(p.shape, np.nan)
        finite = np.isfinite(p)
        if finite.any():
            out[finite] = sps.false_discovery_control(p[finite])
        return out
    if not np.isfinite(p).all():
        raise ValueError("bh on a matrix needs finite p-values (use 1-D with NaN)")
    return sps.false_discovery_control(p, axis=-1)


SEQUENTIAL = "group-sequential"  # bench.report.decisions.SEQUENTIAL (which imports this module)


def _sequential(frame: pd.DataFrame) -> np.ndarray:
    if "design" not in frame:
        return np.zeros(len(frame), bool)
    return (frame["design"] == SEQUENTIAL).to_numpy()


def _apply(frame: pd.DataFrame, adjusted_p: np.ndarray, adjusted_q: np.ndarray) -> pd.DataFrame:
    out = frame.copy()
    out["p_adjusted"] = adjusted_p
    out["p_equivalence_adjusted"] = adjusted_q
    out["verdict_unadjusted"] = out["verdict"]
    decided = (out["p_value"].notna() & ~_sequential(out)).to_numpy()
    if decided.any():
        new = verdict_from_p(
            adjusted_p[decided],
            adjusted_q[decided],
            out.loc[decided, "estimate"].to_numpy(float),
            higher_is_better=out.loc[decided, "higher_is_better"].to_numpy(bool),
            alpha=ALPHA,
        )
        out.loc[decided, "verdict"] = new
    return out


def _holm_by_workload(table: pd.DataFrame, family: str, sequential: np.ndarray) -> pd.DataFrame:
    """``table`` with ``family``, its p-values adjusted by Holm within each workload, and the
    verdicts from them. ``sequential`` rows (decided by a sequential design: NaN p-value) keep
    their verdict and count in m."""
    if table.empty:
        return table.assign(family=[], p_adjusted=[], p_equivalence_adjusted=[])
    p_adj = np.full(len(table), np.nan)
    q_adj = np.full(len(table), np.nan)
    p = np.where(sequential, np.nan, table["p_value"].to_numpy(float))
    q = np.where(sequential, np.nan, table["p_equivalence"].to_numpy(float))
    for _, idx in table.groupby("workload", sort=False).indices.items():
        extra = int(sequential[idx].sum())
        p_adj[idx] = holm(p[idx], extra)
        q_adj[idx] = holm(q[idx], extra)
    out = _apply(table, p_adj, q_adj)
    out.insert(0, "family", family)
    return out


def confirmatory(paired: pd.DataFrame) -> pd.DataFrame:
    """The paired table with ``family``, ``p_adjusted``, ``p_equivalence_adjusted`` (Holm per
    workload), ``verdict_unadjusted`` and ``verdict`` from the adjusted p-values. Rows decided
    by a sequential design (NaN p-value) keep their verdict and count in m."""
    return _holm_by_workload(paired, CONFIRMATORY, _sequential(paired))


def secondary(table: pd.DataFrame) -> pd.DataFrame:
    """The secondary table (:func:`bench.report.decisions.secondary_table`) with the same
    columns, Holm per workload (every row a fixed design)."""
    return _holm_by_workload(table, SECONDARY, np.zeros(len(table), bool))


def exploratory(claims: pd.DataFrame) -> pd.DataFrame:
    """The claim table with the same columns, Benjamini–Hochberg over the whole report."""
    if claims.empty:
        return claims.assign(family=[], p_adjusted=[], p_equivalence_adjusted=[])
    p = claims["p_value"].to_numpy(float)
    q = claims["p_equivalence"].to_numpy(float)
    out = _apply(claims, bh(p), bh(q))
    out.insert(0, "family", EXPLORATORY)
    return out
