"""``python -m bench report [DIR]``: a sweep's figures and tables, as one HTML page and Markdown.

>>> from bench.report import build_report
>>> build_report(Path("results/default"))          # -> results/default/report/index.html

Pipeline: :mod:`~bench.report.data` loads and checks the runs, :mod:`~bench.report.tables`
selects learning rates and computes every number (with :mod:`~bench.report.stats`),
:mod:`~bench.report.figures` draws the PNGs (a module per kind of figure),
:mod:`~bench.report.document` lays them out as prose and formatted tables, and
:mod:`~bench.report.html` writes ``index.html`` (self-contained) and ``report.md``.

Glossary: one word per concept, in the code, the column names and the prose.

- *optimizer*: an optimizer configuration, everything but the swept learning rate: a row of
  the tables, a colour of the figures. Its name is its ``label`` (the sweep's ``label`` key,
  by default the registry name and flags, e.g. ``adam+ortho``), with ``+ortho``/``+surgery``
  or ``#n`` appended where one label covers several configurations on a workload.
- *label*: the spec's own name for an optimizer (``bench.load``'s ``optimizer`` column); the
  report shows it only for runs it has no record of (missing runs).
- *optimizer name* (``optimizer_name``): the registry entry an optimizer wraps (``adam``).
- *base* and *projected*: the two sides of a paired comparison (``kind``): an optimizer without
  and with a projection (⊥Grad or D gradient surgery), identical otherwise (``ortho``,
  ``surgery``); or the workload's plain Adam and another optimizer without a projection
  (``baseline``); or the ``against`` and ``arm`` of a comparison the sweep file declares
  (``[[compare]]``, ``declared``).
- *workload*: the registered name, with the options that differ appended where one name ran
  with several option sets (``workload_name`` is the registered name alone).
- *diverged*: a non-finite loss or gradient stopped the run (``summary["diverged_at"]``).
- *non-finite* (``nonfinite``): diverged, or ended with a non-finite final primary metric. A
  non-finite run counts as worse than any finite value when learning rates are selected and
  optimizers ranked, and is left out of means.
- *failed*: the run raised an error. It has no record: the report lists it as missing, and
  the next ``python -m bench run`` retries it.
- *missing*: listed in ``sweep.json`` without a finished run; *unreadable*: a run whose files
  do not read back (left out of everything, re-run by the next ``bench run``).
- *selection seeds* choose each optimizer's learning rate; every claim is made on the
  *report seeds* (disjoint from two seeds on).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.report.data import SweepData, load_sweep
from bench.report.tables import Analysis, analyse, budget_table

__all__ = ["Analysis", "SweepData", "analyse", "analyse_dir", "build_report", "load_sweep"]


def analyse_dir(path: str | Path) -> Analysis:
    """The one analysis of the results under ``path`` (``bench.analyse``): ``.data.runs`` runs ×
    metrics, ``.comparisons`` comparisons × statistics with their family-adjusted verdicts, and
    every table the report shows. The report, ``bench verdicts`` (through its CSVs) and
    ``--until-decided`` (its learning-rate selection and seed split) read this, not their own."""
    return analyse(load_sweep(Path(path)))


CSV_TABLES = (
    "runs",
    "comparisons",
    "summary",
    "paired",
    "paired_curves",
    "budget",
    "claims",
    "ranking",
    "best_lr",
    "grad_norms",
    "missing",
    "nonfinite",
)
"""The numeric tables written next to the report as ``<name>.csv`` (full precision)."""


def runs_table(data: SweepData) -> pd.DataFrame:
    """Runs × metrics as the analysis reads them, one row per finished run (its key, its final
    metrics, gradient-norm statistics, steps, times, population and admission), without the
    metric metadata every run repeats (the report states it). Committed with a report, it lets a
    reader redo any verdict without the run files, and a later study compare its runs with these.
    """
    drop = [c for c in data.runs.columns if c.startswith(("metrics_", "metric_info_"))]
    return data.runs.drop(columns=drop)


def build_report(path: Path, out: Path | None = None) -> Path:
    """Build the report of the results under ``path``; returns the path of ``index.html``.

    Args:
        path: a results root, a sweep directory or its ``runs`` directory.
        out: where to write (default ``path/report``); created if needed. Figures from an
            earlier build that this build does not produce are removed.

    Raises:
        BenchError: ``path`` holds no finished run (the message names it and what is missing).
    """
    from bench.report import document, figures, html, provenance, published

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
        "runs": runs_table(data),
        "comparisons": a.comparisons,
        "summary": a.summary,
        "paired": a.paired,
        "paired_curves": a.paired_curves,
        "budget": budget_table(a),
        "claims": a.claims,
        "ranking": a.ranking,
        "best_lr": a.best,
        "grad_norms": a.grad_norms,
        "missing": data.missing,
        "nonfinite": data.runs.loc[
            data.runs["nonfinite"],
            ["workload", "optimizer", "lr", "seed", "diverged_at", "final", "run_id"],
        ],
    }
    for name in CSV_TABLES:
        numeric[name].to_csv(out / f"{name}.csv", index=False)

    doc = document.compose(a, drawn, notes, provenance.provenance(data))
    doc.sections[1:1] = published.sections(a)  # after the findings
    index = out / "index.html"
    index.write_text(html.render_html(doc, out), encoding="utf-8")
    (out / "report.md").write_text(html.render_markdown(doc), encoding="utf-8")
    return index
