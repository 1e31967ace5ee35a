"""The report as a document (:mod:`~bench.report.document.model`), composed from its sections.

:mod:`~bench.report.document.formatting` writes the numbers, :mod:`~bench.report.document.findings`
the prose at the top, :mod:`~bench.report.document.paired` the paired comparisons and
:mod:`~bench.report.document.sections` the tables.
"""

from __future__ import annotations

import pandas as pd

from bench.report.document.claims import claims_section
from bench.report.document.findings import findings_section, header, method_section
from bench.report.document.model import Bullets, Document
from bench.report.document.paired import paired_section
from bench.report.document.sections import (
    across_section,
    missing_section,
    provenance_section,
    ranking_section,
    results_section,
    workload_section,
)
from bench.report.figures.canvas import FigureFile
from bench.report.tables import Analysis

__all__ = ["compose"]


def compose(
    a: Analysis,
    figures: list[FigureFile],
    figure_notes: dict[str, list[str]],
    prov: dict[str, pd.DataFrame],
) -> Document:
    sections = [
        findings_section(a, figures),
        method_section(a),
        results_section(a),
        paired_section(a, figures),
        claims_section(a),
        ranking_section(a),
        across_section(a, figures),
    ]
    for wl in a.data.workloads:
        section = workload_section(a, wl, figures)
        if figure_notes.get(wl):
            section.blocks.append(Bullets(figure_notes[wl]))
        sections.append(section)
    sections += [missing_section(a), provenance_section(prov)]
    return Document(f"ogan report: {', '.join(a.data.sweeps)}", header(a), sections)
