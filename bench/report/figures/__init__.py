"""The report's figures: seaborn on matplotlib's Agg canvas, deterministic file names.

:mod:`~bench.report.figures.canvas` holds what every figure shares (the styled canvas, the PNG
writer, axis helpers); :mod:`~bench.report.figures.workload` and
:mod:`~bench.report.figures.traces` draw one workload's figures,
:mod:`~bench.report.figures.forest` and :mod:`~bench.report.figures.paired` its paired
comparisons' (shown in the findings and the paired comparisons), and
:mod:`~bench.report.figures.overview` those across workloads.
"""

from __future__ import annotations

from pathlib import Path

from bench.report.figures.canvas import FigureFile, palette
from bench.report.figures.forest import forest
from bench.report.figures.overview import divergence, profiles
from bench.report.figures.paired import paired_curves
from bench.report.figures.traces import grad_norms, removed_fraction
from bench.report.figures.workload import cost, curves, final_values, lr_sensitivity
from bench.report.tables import Analysis

__all__ = ["PER_WORKLOAD", "FigureFile", "forest", "render_all"]

PER_WORKLOAD = (curves, final_values, lr_sensitivity, cost, grad_norms, removed_fraction)
"""The figures drawn for every workload, in the order the report shows them."""


def render_all(a: Analysis, out: Path) -> tuple[list[FigureFile], dict[str, list[str]]]:
    """Every figure, written under ``out``; also, per workload, notes on figures not drawn."""
    colors = palette(a.data.runs["optimizer"])
    figures = [profiles(a, out, colors), divergence(a, out)]
    notes: dict[str, list[str]] = {}
    for wl in a.data.workloads:
        for placed in (forest, paired_curves):  # in the findings / the paired comparisons
            fig = placed(a, wl, out, colors)
            if fig is not None:  # None: the workload has no paired comparison
                figures.append(fig)
        for make in PER_WORKLOAD:
            fig = make(a, wl, out, colors)
            if fig is None:
                notes.setdefault(wl, []).append(
                    "No optimizer uses ⊥Grad or surgery here, so there is no removed-fraction "
                    "figure."
                )
            else:
                figures.append(fig)
    return figures, notes
