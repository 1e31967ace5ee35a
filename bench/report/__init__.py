"""``python -m bench report [DIR]``: a sweep's figures and tables, as one HTML page and Markdown.

>>> from bench.report import build_report
>>> build_report(Path("results/default"))          # -> results/default/report/index.html

Pipeline: :mod:`~bench.report.data` loads and checks the runs, :mod:`~bench.report.tables`
selects learning rates and computes every number (with :mod:`~bench.report.stats`),
:mod:`~bench.report.figures` draws the PNGs, :mod:`~bench.report.document` lays them out and
:mod:`~bench.report.html` writes ``index.html`` (self-contained) and ``report.md``.
"""

from __future__ import annotations

from pathlib import Path

from bench.report.data import SweepData, load_sweep
from bench.report.tables import Analysis, analyse

__all__ = ["Analysis", "SweepData", "analyse", "build_report", "load_sweep"]

CSV_TABLES = ("summary", "paired", "ranking", "best_lr", "grad_norms", "missing", "failed")
"""The numeric tables written next to the report as ``<name>.csv`` (full precision)."""


def build_report(path: Path, out: Path | None = None) -> Path:
    """Build the report of the results under ``path``; returns the path of ``index.html``.

    Args:
        path: a results root, a sweep directory or its ``runs`` directory.
        out: where to write (default ``path/report``); created if needed. Figures from an
            earlier build that this build does not produce are removed.

    Raises:
        BenchError: ``path`` holds no finished run (the message names it and what is missing).
    """
    from bench.report import document, figures, html, published, tables

    path = Path(path)
    data = load_sweep(path)
    out = Path(out) if out is not None else path / "report"
    out.mkdir(parents=True, exist_ok=True)

    a = analyse(data)
    drawn, notes = figures.render_all(a, out)
    keep = {f.name for f in drawn}
    for stale in out.glob("fig-*.png"):
        if stale.name not in keep:
            stale.unlink()

    numeric = {
        "summary": a.summary,
        "paired": a.paired,
        "ranking": a.ranking,
        "best_lr": a.best,
        "grad_norms": a.grad_norms,
        "missing": data.missing,
        "failed": data.runs.loc[
            data.runs["failed"],
            ["workload", "variant", "lr", "seed", "diverged_at", "final", "run_id"],
        ],
    }
    for name in CSV_TABLES:
        numeric[name].to_csv(out / f"{name}.csv", index=False)

    doc = document.compose(a, drawn, notes, tables.provenance(data))
    doc.sections[1:1] = published.sections(a)  # after the findings
    index = out / "index.html"
    index.write_text(html.render_html(doc, out), encoding="utf-8")
    (out / "report.md").write_text(html.render_markdown(doc), encoding="utf-8")
    return index
