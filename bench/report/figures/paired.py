"""The paired comparisons during training: each comparison's seed-matched difference at every
evaluation (:attr:`~bench.report.tables.Analysis.paired_curves`), one panel per comparison.

A verdict is on the final value; this figure says how that value was reached: whether a variant
is ahead from the start and the base catches up (a faster start), or pulls ahead late (a better
end), or the two cross. The band is pointwise (a 95% t interval at each evaluation, no
multiplicity control across them) and the figure decides nothing; the caption says so.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from bench.report import verdicts
from bench.report.figures.canvas import FigureFile, figure, slug
from bench.report.tables import Analysis

COLUMNS = 3
"""Panels per row."""


def paired_curves(a: Analysis, wl: str, out: Path, colors: dict) -> FigureFile | None:
    c = a.paired_curves
    c = c[c["workload"] == wl]
    if c.empty:
        return None
    comparisons = list(c.groupby(["kind", "base", "projected"], sort=False))
    ncols = min(COLUMNS, len(comparisons))
    nrows = math.ceil(len(comparisons) / ncols)
    name = f"fig-{slug(wl)}-paired-curves.png"
    names = a.names
    with figure(out, name, nrows, ncols, 4.2 * ncols + 0.4, 3.2 * nrows + 0.5) as (fig, axes):
        for ax in axes.flat[len(comparisons) :]:
            ax.set_visible(False)
        for ax, ((_, base, projected), g) in zip(axes.flat, comparisons):
            log = g["scale"].iloc[0] == verdicts.LOG_RATIO
            # on the log scale the estimate is a mean log ratio: drawn as the ratio itself
            show = np.exp if log else (lambda x: x)
            level = 1.0 if log else 0.0
            delta = float(g["delta"].iloc[0])
            if math.isfinite(delta):
                ax.axhspan(show(-delta), show(delta), color="#e8e8e8", zorder=0, lw=0)
            ax.axhline(level, color="0.4", lw=0.8, zorder=1)
            color = colors.get(projected, "C0")
            ax.fill_between(
                g["step"],
                show(g["estimate_ci_lo"]),
                show(g["estimate_ci_hi"]),
                color=color,
                alpha=0.2,
                lw=0,
            )
            ax.plot(g["step"], show(g["estimate"]), color=color, lw=2)
            if log:
                ax.set_yscale("log")
            metric = g["metric"].iloc[0]
            what = f"{metric}: variant {'/' if log else '−'} base"
            direction = "higher" if a.data.workloads[wl].higher_is_better else "lower"
            ax.set_ylabel(f"{what} ({direction} is better)")
            ax.set_xlabel("step (generator updates)")
            n = g["n_pairs"]
            pairs = f"{n.min()}" if n.min() == n.max() else f"{n.min()}–{n.max()}"
            ax.set_title(f"{names[projected]} vs {names[base]}\n{pairs} pairs", fontsize=10)
        fig.suptitle(f"{a.show(wl)}: the paired difference during training")
    caption = (
        "Each paired comparison of the table above at every evaluation of its runs (each "
        "optimizer at its selected lr, the report seeds): the mean seed-matched difference of "
        "the primary metric, variant − base (the ratio variant / base, a geometric mean, for a "
        "log-scale metric), with a pointwise 95% t interval; the grey band is ±δ, the declared "
        "margin. A pair counts at a step where both runs have a finite value there. "
        "Descriptive: the intervals have no multiplicity control across steps and no verdict "
        "comes from them; the verdict is on the final value (the last point). Numbers: "
        "paired_curves.csv."
    )
    return FigureFile(name, f"{a.show(wl)}: the paired difference during training", caption, wl)


def is_paired_curves(f: FigureFile) -> bool:
    """The paired-difference figures (shown in the paired comparisons, not the workload's
    section)."""
    return f.name.endswith("-paired-curves.png")
