"""The forest plot that opens the findings: every tested comparison of one workload, its effect
and 95% interval in units of its declared margin δ, the margin band, the verdict by colour.

Effects on different scales (a difference in modes, a log ratio of FID, a growth of the norm)
share one axis only in units of the smallest difference that matters: x = effect / δ, signed so
that right is better for the variant. The band |x| < 1 is "within the margin": an interval
inside it (at 90%, which the table states) is *equivalent*, one clear of 0 is *better* or
*worse*. A comparison without a declared margin cannot be drawn on this axis and is listed in
the caption instead. Verdicts are the family-adjusted ones; the intervals are unadjusted.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from bench.report import verdicts
from bench.report.figures.canvas import FigureFile, figure, slug
from bench.report.labels import comparison_name
from bench.report.tables import Analysis

COLORS = {
    verdicts.BETTER: "#1a9850",
    verdicts.WORSE: "#d73027",
    verdicts.EQUIVALENT: "#4575b4",
    verdicts.UNDECIDED: "#8c8c8c",
}
LIMIT = 8.0
"""Effects beyond ±8 δ are drawn at the edge with an arrow, and an interval running past the edge
ends in a small arrowhead there (their numbers are in the table)."""


def in_margin_units(c: pd.DataFrame) -> pd.DataFrame:
    """``c`` (comparisons' rows) with ``x``, ``lo``, ``hi``: estimate and interval / δ, signed
    so that right is better for the variant (NaN where no margin is declared)."""
    sign = np.where(c["higher_is_better"].astype(bool), 1.0, -1.0)
    delta = c["delta"].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = sign * c["estimate"].astype(float) / delta
        ends = np.sort(
            np.stack([sign * c["estimate_ci_lo"] / delta, sign * c["estimate_ci_hi"] / delta]), 0
        )
    return c.assign(x=x, lo=ends[0], hi=ends[1])


def forest_rows(a: Analysis, wl: str) -> pd.DataFrame:
    """The rows of ``wl`` the forest plot draws, with ``x``, ``lo``, ``hi`` in units of δ."""
    c = a.comparisons
    c = c[(c["workload"] == wl) & c["verdict"].isin(list(COLORS))]
    c = c[c["p_value"].notna() | (c["design"] == "group-sequential")]
    return in_margin_units(c)


def forest(a: Analysis, wl: str, out: Path, colors: dict) -> FigureFile | None:
    del colors  # coloured by verdict, not by optimizer
    rows = forest_rows(a, wl)
    drawn = rows[np.isfinite(rows["x"])]
    if drawn.empty:
        return None
    names = a.names
    labels = [
        f"{comparison_name(names[r.projected], names[r.base], r.kind)}: "
        f"{stat_label(r.statistic)}"
        for r in drawn.itertuples()
    ]
    name = f"fig-{slug(wl)}-forest.png"
    height = 0.34 * len(drawn) + 1.5
    with figure(out, name, 1, 1, 9.5, height) as (fig, axes):
        ax = axes[0, 0]
        y = np.arange(len(drawn))[::-1]
        ax.axvspan(-1, 1, color="#e8e8e8", zorder=0)
        ax.axvline(0, color="0.4", lw=0.8, zorder=1)
        family = drawn["family"].to_numpy()
        for k in np.flatnonzero(family[1:] != family[:-1]):  # a dashed line between families
            ax.axhline(y[k] - 0.5, color="0.2", lw=0.8, ls="--")
        for yi, r in zip(y, drawn.itertuples()):
            color = COLORS[r.verdict]
            lo, hi = (max(-LIMIT, r.lo), min(LIMIT, r.hi)) if math.isfinite(r.lo) else (r.x, r.x)
            ax.plot([lo, hi], [yi, yi], color=color, lw=2.2, solid_capstyle="butt")
            x = min(max(r.x, -LIMIT), LIMIT)
            marker = "o" if abs(r.x) <= LIMIT else (">" if r.x > 0 else "<")
            ax.plot([x], [yi], marker=marker, color=color, ms=7, clip_on=False, zorder=3)
            for end, head in ((r.lo, "<"), (r.hi, ">")):  # an interval cut at the edge
                if abs(x) < LIMIT and math.isfinite(end) and abs(end) > LIMIT:
                    ax.plot([math.copysign(LIMIT, end)], [yi], marker=head, color=color, ms=5,
                            clip_on=False, zorder=3)  # fmt: skip
        ax.set_yticks(y, labels)
        ax.set_ylim(-0.7, len(drawn) - 0.3)
        span = min(LIMIT, max(2.0, np.nanmax(np.abs(drawn[["x", "lo", "hi"]].to_numpy())) * 1.1))
        ax.set_xlim(-span, span)
        # two lines: under long row labels the axes are narrow, and a one-line label ran off
        # the figure's right edge
        ax.set_xlabel("effect in units of its margin δ\n(← worse for the variant | better →)")
        ax.grid(axis="y", visible=False)
        handles = [Line2D([], [], color=c, lw=2.5, label=v) for v, c in COLORS.items()]
        fig.legend(handles=handles, loc="outside lower center", ncols=4, frameon=False)
    skipped = rows[~np.isfinite(rows["x"])]
    caption = (
        "Each tested comparison: effect / δ with its 95% interval (unadjusted), right = better "
        "for the variant; the grey band is ±δ; colour = the family-adjusted verdict; dashed "
        "lines part the families, top to bottom: confirmatory (the primary metric, Holm), "
        "secondary (the other metrics with a margin, Holm), exploratory (Benjamini–Hochberg)."
    )
    if len(skipped):
        caption += " Not drawn (no margin declared): " + ", ".join(
            f"{comparison_name(a.show(r.projected), a.show(r.base), r.kind)} {r.statistic}"
            for r in skipped.itertuples()
        )
        caption += "."
    return FigureFile(name, f"{a.show(wl)}: every verdict at a glance", caption, wl)


def stat_label(statistic: str) -> str:
    for prefix, text in (
        ("growth_", "norm growth "),
        ("tail_", "p99/median "),
        ("vanishing_", "vanishing "),
        ("exploding_", "exploding "),
    ):
        if statistic.startswith(prefix):
            return text + statistic.removeprefix(prefix).upper()
    return {
        "grad_evals_to_target": "grad. evals to target (both reached)",
        "reached_target": "reaching the target",
        "time_to_target": "time to target",
    }.get(statistic, statistic)
