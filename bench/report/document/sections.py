"""The report's table sections: results, ranking, per workload, missing runs and provenance."""

from __future__ import annotations

import math

import pandas as pd

from bench.report.document.formatting import frac, mean_pm, num
from bench.report.document.model import Block, Section, Table
from bench.report.figures.canvas import FigureFile, slug
from bench.report.figures.paired import is_paired_curves
from bench.report.tables import Analysis

MAX_LISTED_RUNS = 200
"""Longer lists of missing or non-finite runs are cut (the CSV next to the report has them all)."""


def _at_population(size: float | None) -> str:
    """Where an overhead was measured on members of populations: at which size (both sides)."""
    if size is None or (isinstance(size, float) and math.isnan(size)) or int(size) == 1:
        return ""
    return f" (population {int(size)})"


def results_section(a: Analysis) -> Section:
    s = a.summary
    quality = pd.DataFrame(
        {
            "workload": s["workload"].map(a.show),
            "optimizer": s["optimizer"].map(a.show),
            "metric": [a.data.workloads[w].primary for w in s["workload"]],
            "best lr": s["best_lr"].map(num),
            "lrs tried": s["lrs_tried"].astype(str),
            "final (mean or geometric mean) [95% CI]": [
                mean_pm(r.final_mean, r.final_ci_lo, r.final_ci_hi, r.n_finite)
                for r in s.itertuples(index=False)
            ],
            "non-finite at best lr": [
                frac(r.nonfinite_best, r.n_report) for r in s.itertuples(index=False)
            ],
            "divergence rate (all runs)": [
                f"{num(r.divergence_rate_all, 2)} "
                f"({round(r.divergence_rate_all * r.n_all)}/{r.n_all})"
                for r in s.itertuples(index=False)
            ],
            "time/step (ms)": [
                num(r.time_per_step_ms, 3)
                + (
                    ""
                    if math.isnan(r.time_per_step_ci_ms)
                    else f" ± {num(r.time_per_step_ci_ms, 2)}"
                )
                for r in s.itertuples(index=False)
            ],
            "overhead vs Adam": [
                "n/a" if math.isnan(x) else f"{x:.2f}×" + _at_population(size)
                for x, size in zip(s["overhead_vs_adam"], s["overhead_population"])
            ],
        }
    )
    cost = pd.DataFrame(
        {
            "workload": s["workload"].map(a.show),
            "optimizer": s["optimizer"].map(a.show),
            "target": [a.data.workloads[w].target_text() for w in s["workload"]],
            "grad evals/step": s["grad_evals_per_step"].map(lambda x: num(x, 3)),
            "reached target": [
                frac(r.reached_target, r.n_report) for r in s.itertuples(index=False)
            ],
            "median grad evals to target": s["grad_evals_to_target"].map(
                lambda x: "not reached" if math.isinf(x) else num(x)
            ),
            "median time to target (s)": s["time_to_target_s"].map(
                lambda x: "not reached" if math.isinf(x) else num(x, 3)
            ),
            "removed by projection G / D": [
                f"{num(r.removed_frac_g, 2)} / {num(r.removed_frac_d, 2)}"
                for r in s.itertuples(index=False)
            ],
        }
    )
    return Section(
        "results",
        "Results per workload and optimizer",
        [
            Table(
                "Quality and cost at the selected lr",
                quality,
                "Final primary metric on the report seeds at the selected lr (non-finite runs left "
                "out of the mean and counted in 'non-finite at best lr'); the geometric mean for "
                "a log-scale metric (see How to read this report); divergence over every "
                "run; time per step over every run (mean ± 95% t half-width).",
            ),
            Table(
                "Time and gradient evaluations to target",
                cost,
                "Median over the report runs with a run that never reached the target counted as ∞ "
                "('not reached' when at least half did not). Removed: mean fraction of ‖g‖² the "
                "projection removed per step (G / D).",
            ),
        ],
    )


def ranking_section(a: Analysis) -> Section:
    r = a.ranking
    table = r.copy()
    for col in table.columns[1:]:
        table[col] = table[col].map(lambda x: "–" if pd.isna(x) else f"{x:.3g}")
    table = table.rename(columns={"mean_rank": "mean rank", **a.names})
    table["optimizer"] = table["optimizer"].map(a.show)
    return Section(
        "ranking",
        "Ranking",
        [
            Table(
                "Rank per workload (1 = best) and mean rank",
                table.astype(str),
                "Per workload, optimizers are ranked by the fraction of non-finite runs at the "
                "selected lr, then by the mean final primary metric (report seeds); ties share the "
                "average rank. '–': not run on that workload. The mean rank is over the workloads "
                "an optimizer ran on.",
            )
        ],
    )


def is_forest(f: FigureFile) -> bool:
    """The findings' forest plots (shown there, not again in the workload's section)."""
    return f.name.endswith("-forest.png")


def across_section(a: Analysis, figures: list[FigureFile]) -> Section:
    blocks: list[Block] = [f for f in figures if f.workload is None]
    if len(a.data.workloads) == 1:
        blocks.insert(0, "Only one workload: a profile over one workload is a step at one ratio.")
    return Section("across", "Across workloads", blocks)


def workload_section(a: Analysis, wl: str, figures: list[FigureFile]) -> Section:
    info = a.data.workloads[wl]
    blocks: list[Block] = [
        f"{info.description}. Primary metric: {info.primary} "
        f"({'higher' if info.higher_is_better else 'lower'} is better); "
        f"target {info.target_text()}. "
        f"{a.splits[wl].describe().capitalize()}."
    ]
    blocks += [f for f in figures if f.workload == wl and not (is_forest(f) or is_paired_curves(f))]
    g = a.grad_norms[a.grad_norms["workload"] == wl].drop(columns="workload")
    if not g.empty:
        formatted = g.copy()
        for col in formatted.columns[1:]:
            formatted[col] = formatted[col].map(lambda x: num(x, 3))
        formatted.columns = [
            c.replace("grad_norm_", "").replace("_", " ") for c in formatted.columns
        ]
        blocks.append(
            Table(
                "Gradient-norm summaries",
                formatted.astype(str),
                "Per run over its steps (median, 99th percentile, max; vanishing: < 1e-8; "
                "exploding: "
                "> 1000 × the run's median), then the mean over the report runs; g: generator, d: "
                "discriminator.",
            )
        )
    return Section(f"wl-{slug(wl)}", f"Workload: {a.show(wl)}", blocks)


def _listed(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    if len(frame) <= MAX_LISTED_RUNS:
        return frame, ""
    return frame.head(MAX_LISTED_RUNS), f" The first {MAX_LISTED_RUNS} of {len(frame)} are listed."


def missing_section(a: Analysis) -> Section:
    d = a.data
    blocks: list[Block] = []
    if d.expected is None:
        blocks.append(
            "No sweep.json: the runs the sweep asked for are unknown, so missing runs cannot be "
            "listed."
        )
    elif d.missing.empty:
        blocks.append(f"All {d.expected} runs listed in sweep.json finished.")
    else:
        shown, cut = _listed(d.missing)
        frame = shown.assign(lr=shown["lr"].map(num))
        blocks.append(
            Table(
                f"Missing: {len(d.missing)} of {d.expected} runs in sweep.json have no result",
                frame.astype(str),
                "reason: a run's last attempt's error (deterministic: it will fail again as it "
                "is; transient: running again may succeed), or none yet. Run python -m bench "
                f"run again to resume the sweep (finished runs are skipped).{cut}",
            )
        )
    if len(d.problems):
        blocks.append(
            Table(
                f"Unreadable: {len(d.problems)} run file(s)",
                d.problems.astype(str),
                "These runs are left out of every table and figure and will be re-run.",
            )
        )
    nonfinite = d.runs[d.runs["nonfinite"]].sort_values(["workload", "optimizer", "lr", "seed"])
    if nonfinite.empty:
        blocks.append("No run diverged or ended with a non-finite metric.")
    else:
        shown, cut = _listed(nonfinite)
        frame = pd.DataFrame(
            {
                "workload": shown["workload"].map(a.show),
                "optimizer": shown["optimizer"],
                "lr": shown["lr"].map(num),
                "seed": shown["seed"].astype(str),
                "diverged at step": shown["diverged_at"].map(
                    lambda x: "–" if pd.isna(x) else str(int(x))
                ),
                "final metric": shown["final"].map(num),
                "run id": shown["run_id"],
            }
        )
        blocks.append(
            Table(
                f"Non-finite: {len(nonfinite)} run(s) diverged or ended with a non-finite metric",
                frame,
                "Counted as worse than any finite value when the lr is selected and optimizers "
                f"are ranked; the divergence rates count those that diverged.{cut}",
            )
        )
    return Section("missing", "Missing and non-finite runs", blocks)


def provenance_section(prov: dict[str, pd.DataFrame]) -> Section:
    titles = {
        "metrics": (
            "Metric definitions",
            "As each run recorded them (summary['metrics'] and summary['target']).",
        ),
        "code": (
            "Code that ran",
            "Where each name's code came from (ogan.registry): its installed distribution "
            "and version, or the sha256 of its file when it is in none. Several values joined "
            "by ';' mean the runs differ.",
        ),
        "metric_info": (
            "How the metrics were computed",
            "Each run's summary['metric_info']: feature extractor, its sha256, sample counts. "
            "Several values joined by ';' mean the runs differ.",
        ),
        "config": (
            "Resolved game configuration",
            "Distinct values over the runs of each workload.",
        ),
        "optimizers": ("Optimizers", "The resolved configuration of each optimizer (lr swept)."),
        "environment": (
            "Environment",
            "Library versions, hardware and code revision over all runs.",
        ),
    }
    blocks: list[Block] = [
        Table(titles[k][0], v.astype(str), titles[k][1]) for k, v in prov.items() if not v.empty
    ]
    return Section("provenance", "How every number was computed", blocks)
