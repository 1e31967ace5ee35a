"""The report as a document: sections of text, formatted tables and figures.

One structure, rendered twice (HTML and Markdown) by :mod:`bench.report.html`, so the two
outputs cannot disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench.report import stats
from bench.report.figures import FigureFile, slug
from bench.report.tables import SELECTION_RULE, Analysis

MAX_LISTED_RUNS = 200
"""Longer lists of missing or failed runs are cut (the CSV next to the report has them all)."""


@dataclass(frozen=True)
class Table:
    title: str
    frame: pd.DataFrame  # already formatted: every cell a string
    caption: str = ""


@dataclass(frozen=True)
class Bullets:
    items: list[str]


Block = str | Table | Bullets | FigureFile


@dataclass
class Section:
    anchor: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    level: int = 2


@dataclass
class Document:
    title: str
    intro: list[Block]
    sections: list[Section]


# -- number formatting ------------------------------------------------------------------------


def num(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:.{digits}g}"


def mean_pm(mean: float, lo: float, hi: float, n: int) -> str:
    """Mean ± the 95% t half-width and n; says why when there is no interval."""
    if n == 0:
        return "n/a (every run failed)"
    if n == 1 or math.isnan(lo):
        return f"{num(mean)} ± n/a (1 seed)"
    return f"{num(mean)} ± {num((hi - lo) / 2, 2)} (n={n})"


def interval(lo: float, hi: float) -> str:
    if math.isnan(lo):
        return "n/a"
    return f"[{num(lo, 3)}, {num(hi, 3)}]"


def frac(k: int, n: int) -> str:
    return f"{k}/{n}"


# -- sections ---------------------------------------------------------------------------------


def _header(a: Analysis) -> list[Block]:
    d = a.data
    runs = d.runs
    seeds = sorted(runs["seed"].unique())
    sweeps = ", ".join(sorted(runs["sweep"].unique()))
    lines = [
        f"Sweep(s) {sweeps} under {d.path}: {len(runs)} finished runs on "
        f"{len(d.workloads)} workload(s) ({', '.join(d.workloads)}), "
        f"{runs['variant'].nunique()} optimizer variant(s), "
        f"{runs['lr'].nunique()} learning rate(s), seeds {', '.join(map(str, seeds))}.",
    ]
    warnings = list(d.notes)
    if d.expected is not None and len(d.missing):
        warnings.append(
            f"Partial sweep: {len(d.missing)} of {d.expected} runs listed in sweep.json have no "
            "result; see Missing and diverged runs."
        )
    if len(d.missing):
        absent = sorted(set(d.missing["workload"]) - set(runs["workload_name"]))
        if absent:
            warnings.append(f"No finished run at all on: {', '.join(absent)}.")
        done = set(zip(runs["workload_name"], runs["optimizer"]))
        asked = set(zip(d.missing["workload"], d.missing["variant"]))
        lost = sorted((w, v) for w, v in asked - done if w not in absent)
        if lost:
            warnings.append(
                "No finished run of: " + ", ".join(f"{v} on {w}" for w, v in lost) + "."
            )
    if len(d.problems):
        warnings.append(f"{len(d.problems)} run file(s) do not read back and are left out.")
    for wl, split in a.splits.items():
        if split.shared:
            warnings.append(
                f"{wl}: a single seed. The lr is selected on the seed it is reported on, and no "
                "confidence interval or test is possible; one seed is not evidence."
            )
        elif len(split.report) == 1:
            warnings.append(
                f"{wl}: two seeds, one to select the lr and one to report on, so no confidence "
                "interval or test is possible; one seed is not evidence: run more seeds."
            )
    for wl, g in runs.groupby("workload", sort=True):
        spread = g.groupby(["variant", "lr"])["final"].agg(lambda x: x.nunique(dropna=False))
        if g["seed"].nunique() > 1 and (spread == 1).all():
            warnings.append(
                f"{wl}: every seed gives the same final metric (nothing in this workload depends "
                "on the seed), so its intervals are zero-width and seeds add no evidence."
            )
    n_failed = int(runs["failed"].sum())
    if n_failed:
        warnings.append(
            f"{n_failed} run(s) diverged or ended with a non-finite metric; "
            "see Missing and diverged runs."
        )
    blocks: list[Block] = list(lines)
    if warnings:
        blocks.append(Bullets([f"⚠ {w}" for w in warnings]))
    return blocks


def verdict(p: Any) -> str:
    """One sentence on a paired comparison that claims no more than its n supports."""
    direction = ""
    if p.n_pairs >= 2 and (p.diff_ci_lo > 0 or p.diff_ci_hi < 0):
        better = (p.diff_ci_lo > 0) == bool(p.higher_is_better)
        direction = "helps" if better else "hurts"
    detail = (
        f"mean {p.metric} difference ({p.variant} − {p.base}) {num(p.mean_diff, 3)}, 95% bootstrap "
        f"CI {interval(p.diff_ci_lo, p.diff_ci_hi)}, {p.variant} better on "
        f"{p.variant_better}/{p.n_pairs} seeds"
        + ("" if math.isnan(p.p_value) else f", Wilcoxon p = {num(p.p_value, 2)}")
    )
    if p.n_pairs < 2:
        return f"cannot tell: {p.n_pairs} seed-matched pair(s), so no interval or test — {detail}"
    if p.n_pairs < stats.MIN_SIGNED_RANK_N:
        return (
            f"too few seed pairs to tell (n={p.n_pairs}; below {stats.MIN_SIGNED_RANK_N} pairs the "
            f"bootstrap interval is unreliable and the signed-rank test cannot reach 5%) — {detail}"
        )
    if not direction:
        return f"no detectable difference (the CI includes 0) — {detail}"
    agree = p.p_value < 0.05
    caveat = "" if agree else "; the signed-rank test does not confirm it"
    return f"{direction} (the CI excludes 0{caveat}) — {detail}"


def _separable(g: pd.DataFrame, top: str) -> str:
    """Which variants' 95% CIs overlap the best one's (a conservative 'cannot separate')."""
    best = g.loc[top]
    if best["n_finite"] < 2:
        return "One seed: no interval, so no variant can be separated from it."
    overlap = [
        v
        for v, r in g.iterrows()
        if v != top
        and r["n_finite"] >= 1
        and not (r["final_ci_lo"] > best["final_ci_hi"] or r["final_ci_hi"] < best["final_ci_lo"])
    ]
    overlap = [v for v in overlap if not math.isnan(g.loc[v, "final_mean"])]
    if not overlap:
        return "Its 95% CI overlaps no other variant's."
    return f"Its 95% CI overlaps those of {', '.join(overlap)}: not separated from them."


def _findings(a: Analysis) -> Section:
    s = a.summary
    items = []
    for wl, g in s.groupby("workload", sort=True):
        info = a.data.workloads[wl]
        ranks = a.ranking.set_index("variant")[wl].dropna().sort_values()
        top = ranks.index[0]
        row = g.set_index("variant").loc[top]
        ref = a.reference.get(wl)
        cost = f", {num(row['time_per_step_ms'], 3)} ms/step"
        if ref and top != ref and math.isfinite(row["overhead_vs_adam"]):
            cost += f" ({num(row['overhead_vs_adam'], 3)}× {ref})"
        cost += f", {num(row['grad_evals_per_step'], 3)} gradient evaluations per step"
        items.append(
            f"{wl}: ranked first is {top} at lr {num(row['best_lr'])} — final {info.primary} "
            f"{mean_pm(row['final_mean'], row['final_ci_lo'], row['final_ci_hi'], row['n_finite'])}"
            f"{cost}. {_separable(g.set_index('variant'), top)}"
        )
    for p in a.paired.itertuples(index=False):
        what = "⊥Grad" if p.kind == "ortho" else "D gradient surgery"
        items.append(f"{p.workload}: {what} on {p.base} ({p.variant} vs {p.base}): {verdict(p)}.")
    if a.paired.empty:
        items.append(
            "No ⊥Grad or surgery variant ran together with its base optimizer, so there is no "
            "paired comparison."
        )
    return Section("findings", "Findings at a glance", [Bullets(items)])


def _method(a: Analysis) -> Section:
    blocks: list[Block] = [
        f"Learning-rate selection. {SELECTION_RULE}",
        Bullets([f"{wl}: {split.describe()}." for wl, split in a.splits.items()]),
        "Everything below except the learning-rate sensitivity figure, the time per step and the "
        "divergence heatmap uses each variant at its selected lr on the report seeds only.",
        f"Intervals. Mean ± half-width of the two-sided 95% Student-t interval over seeds. "
        f"Paired comparisons: runs matched by workload, seed and the lr-selection rule (each "
        f"variant at its own selected lr); the 95% percentile-bootstrap interval of the mean "
        f"difference ({stats.BOOTSTRAP_RESAMPLES:,} resamples, fixed seed {stats.BOOTSTRAP_SEED}) "
        f"and the two-sided Wilcoxon signed-rank test (scipy.stats.wilcoxon). With fewer than "
        f"{stats.MIN_SIGNED_RANK_N} non-zero differences the test cannot reach p < 0.05 at all, "
        "and the table says so.",
        "Cost. Time per step is training wall time only (evaluations excluded), over all runs of "
        "a variant; overhead is relative to plain Adam on the same workload in the same sweep, "
        "as measured while the sweep ran (parallel runs share the CPU, so small ratios are "
        "indicative only; python -m bench perf measures overheads under control). "
        "A gradient evaluation is one backward pass of one player; an extrapolation update "
        "(Extra-*) costs two per player, so methods are compared per gradient evaluation as well "
        "as per update.",
    ]
    return Section("method", "How to read this report", blocks)


def _summary_tables(a: Analysis) -> Section:
    s = a.summary
    quality = pd.DataFrame(
        {
            "workload": s["workload"],
            "optimizer": s["variant"],
            "metric": [a.data.workloads[w].primary for w in s["workload"]],
            "best lr": s["best_lr"].map(num),
            "lrs tried": s["lrs_tried"].astype(str),
            "final mean ± 95% CI": [
                mean_pm(r.final_mean, r.final_ci_lo, r.final_ci_hi, r.n_finite)
                for r in s.itertuples(index=False)
            ],
            "failed at best lr": [
                frac(r.diverged_best, r.n_report) for r in s.itertuples(index=False)
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
            "overhead vs Adam": s["overhead_vs_adam"].map(
                lambda x: "n/a" if math.isnan(x) else f"{x:.2f}×"
            ),
        }
    )
    cost = pd.DataFrame(
        {
            "workload": s["workload"],
            "optimizer": s["variant"],
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
                "Final primary metric on the report seeds at the selected lr (failed runs left out "
                "of "
                "the mean and counted in 'failed at best lr'); divergence over every run; time per "
                "step over every run (mean ± 95% t half-width).",
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


def _paired(a: Analysis) -> Section:
    p = a.paired
    blocks: list[Block] = [
        "Each variant at its own selected lr, matched by seed on the report seeds. Difference = "
        "variant − base of the final primary metric (negative is better when lower is better). "
        "A pair where either run failed is dropped and counted."
    ]
    if p.empty:
        blocks.append(
            "No paired comparison: the sweep has no ⊥Grad or surgery variant together with its "
            "base optimizer (same settings without the projection) on the same workload."
        )
        return Section("paired", "Paired comparisons: with vs without the projection", blocks)
    table = pd.DataFrame(
        {
            "workload": p["workload"],
            "comparison": [f"{r.base} → {r.variant}" for r in p.itertuples(index=False)],
            "metric": [
                f"{r.metric} ({'↑' if r.higher_is_better else '↓'})"
                for r in p.itertuples(index=False)
            ],
            "lr base / variant": [
                f"{num(r.lr_base)} / {num(r.lr_variant)}" for r in p.itertuples(index=False)
            ],
            "seeds": p["seeds"],
            "pairs": p["n_pairs"].astype(str),
            "base mean": p["base_mean"].map(num),
            "variant mean": p["variant_mean"].map(num),
            "mean difference": p["mean_diff"].map(num),
            "95% bootstrap CI": [
                interval(r.diff_ci_lo, r.diff_ci_hi) for r in p.itertuples(index=False)
            ],
            "variant better": [
                frac(r.variant_better, r.n_pairs) for r in p.itertuples(index=False)
            ],
            "Wilcoxon p": p["p_value"].map(lambda x: num(x, 3)),
            "note": [
                "; ".join(
                    x
                    for x in (
                        r.note,
                        f"{r.dropped_failed} pair(s) dropped: a run failed"
                        if r.dropped_failed
                        else "",
                    )
                    if x
                )
                for r in p.itertuples(index=False)
            ],
        }
    )
    blocks.append(Table("Seed-matched paired comparisons", table))
    return Section("paired", "Paired comparisons: with vs without the projection", blocks)


def _ranking(a: Analysis) -> Section:
    r = a.ranking
    table = r.copy()
    for col in table.columns[1:]:
        table[col] = table[col].map(lambda x: "–" if pd.isna(x) else f"{x:.3g}")
    table = table.rename(
        columns={"variant": "optimizer", "mean_rank": "mean rank", "workloads": "workloads"}
    )
    return Section(
        "ranking",
        "Ranking",
        [
            Table(
                "Rank per workload (1 = best) and mean rank",
                table.astype(str),
                "Per workload, variants are ranked by the fraction of failed runs at the selected "
                "lr, then by the mean final primary metric (report seeds); ties share the average "
                "rank. '–': not run on that workload. The mean rank is over the workloads a "
                "variant ran on.",
            )
        ],
    )


def _across(a: Analysis, figures: list[FigureFile]) -> Section:
    blocks: list[Block] = [f for f in figures if f.workload is None]
    if len(a.data.workloads) == 1:
        blocks.insert(0, "Only one workload: a profile over one workload is a step at one ratio.")
    return Section("across", "Across workloads", blocks)


def _workload_section(a: Analysis, wl: str, figures: list[FigureFile]) -> Section:
    info = a.data.workloads[wl]
    blocks: list[Block] = [
        f"{info.description}. Primary metric: {info.primary} "
        f"({'higher' if info.higher_is_better else 'lower'} is better); "
        f"target {info.target_text()}. "
        f"{a.splits[wl].describe().capitalize()}."
    ]
    blocks += [f for f in figures if f.workload == wl]
    g = a.grad_norms[a.grad_norms["workload"] == wl].drop(columns="workload")
    if not g.empty:
        formatted = g.rename(columns={"variant": "optimizer"}).copy()
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
    return Section(f"wl-{slug(wl)}", f"Workload: {wl}", blocks)


def _listed(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    if len(frame) <= MAX_LISTED_RUNS:
        return frame, ""
    return frame.head(MAX_LISTED_RUNS), f" The first {MAX_LISTED_RUNS} of {len(frame)} are listed."


def _missing(a: Analysis) -> Section:
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
        frame = shown.assign(lr=shown["lr"].map(num)).rename(columns={"variant": "optimizer"})
        blocks.append(
            Table(
                f"Missing: {len(d.missing)} of {d.expected} runs in sweep.json have no result",
                frame.astype(str),
                "Run python -m bench run again to resume the sweep (finished runs are "
                f"skipped).{cut}",
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
    failed = d.runs[d.runs["failed"]].sort_values(["workload", "variant", "lr", "seed"])
    if failed.empty:
        blocks.append("No run diverged or ended with a non-finite metric.")
    else:
        shown, cut = _listed(failed)
        frame = pd.DataFrame(
            {
                "workload": shown["workload"],
                "optimizer": shown["variant"],
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
                f"Failed: {len(failed)} run(s) diverged or ended with a non-finite metric",
                frame,
                "Kept in divergence rates and counted as worse than any finite value when the lr "
                "is "
                f"selected and variants are ranked.{cut}",
            )
        )
    return Section("missing", "Missing and diverged runs", blocks)


def _provenance(prov: dict[str, pd.DataFrame]) -> Section:
    titles = {
        "metrics": ("Metric definitions", "From the workload registry (ogan.workloads)."),
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
        "variants": ("Optimizer variants", "The resolved optimizer configuration of each variant."),
        "environment": (
            "Environment",
            "Library versions, hardware and code revision over all runs.",
        ),
    }
    blocks: list[Block] = [
        Table(titles[k][0], v.astype(str), titles[k][1]) for k, v in prov.items() if not v.empty
    ]
    return Section("provenance", "How every number was computed", blocks)


def compose(
    a: Analysis,
    figures: list[FigureFile],
    figure_notes: dict[str, list[str]],
    prov: dict[str, pd.DataFrame],
) -> Document:
    sections = [
        _findings(a),
        _method(a),
        _summary_tables(a),
        _paired(a),
        _ranking(a),
        _across(a, figures),
    ]
    for wl in a.data.workloads:
        section = _workload_section(a, wl, figures)
        if figure_notes.get(wl):
            section.blocks.append(Bullets(figure_notes[wl]))
        sections.append(section)
    sections += [_missing(a), _provenance(prov)]
    sweeps = ", ".join(sorted(a.data.runs["sweep"].unique()))
    return Document(f"ogan report: {sweeps}", _header(a), sections)
