"""The report's prose: the header with its warnings, the findings at a glance, how to read it."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import pandas as pd

from bench.report import decisions, stats, verdicts
from bench.report.document.formatting import mean_pm, num
from bench.report.document.model import Block, Bullets, Section, Table
from bench.report.figures.canvas import FigureFile
from bench.report.figures.forest import stat_label as _stat
from bench.report.labels import comparison_name
from bench.report.tables import SELECTION_RULE, Analysis


def _shown(path: Path) -> str:
    """The results directory as a reader can use it: relative to the working directory, else
    its last two parts. Never the absolute path of the machine that built the report."""
    path = Path(path).resolve()
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd().resolve())) or "."
    return str(Path(*path.parts[-2:]))


def header(a: Analysis) -> list[Block]:
    d = a.data
    runs = d.runs
    seeds = sorted(runs["seed"].unique())
    ran_in = sorted(runs["sweep"].unique())
    # a sweep that reuses other sweeps' runs names them: the runs' provenance stays visible
    reused = f" (run in {', '.join(ran_in)})" if ran_in != d.sweeps else ""
    lines = [
        f"Sweep(s) {', '.join(d.sweeps)} under {_shown(d.path)}: "
        f"{len(runs)} finished runs{reused} on "
        f"{len(d.workloads)} workload(s) ({', '.join(d.workloads)}), "
        f"{runs['optimizer'].nunique()} optimizer(s), "
        f"{runs['lr'].nunique()} learning rate(s), seeds {', '.join(map(str, seeds))}.",
    ]
    warnings = list(d.notes)
    if d.expected is not None and len(d.missing):
        warnings.append(
            f"Partial sweep: {len(d.missing)} of {d.expected} runs listed in sweep.json have no "
            "result; see Missing and non-finite runs."
        )
    if len(d.missing):
        absent = sorted(set(d.missing["workload"]) - set(runs["workload_name"]))
        if absent:
            warnings.append(f"No finished run at all on: {', '.join(absent)}.")
        done = set(zip(runs["workload_name"], runs["label"]))
        asked = set(zip(d.missing["workload"], d.missing["label"]))
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
                f"{a.show(wl)}: a single seed. The lr is selected on the seed it is reported on, "
                "and no confidence interval or test is possible; one seed is not evidence."
            )
        elif len(split.report) == 1:
            warnings.append(
                f"{a.show(wl)}: two seeds, one to select the lr and one to report on, so no "
                "confidence interval or test is possible; one seed is not evidence: run more seeds."
            )
    for wl, g in runs.groupby("workload", sort=True):
        spread = g.groupby(["optimizer", "lr"])["final"].agg(lambda x: x.nunique(dropna=False))
        if g["seed"].nunique() > 1 and (spread == 1).all():
            warnings.append(
                f"{a.show(wl)}: every seed gives the same final metric (nothing in this workload "
                "depends on the seed), so its intervals are zero-width and seeds add no evidence."
            )
    n_nonfinite = int(runs["nonfinite"].sum())
    if n_nonfinite:
        warnings.append(
            f"{n_nonfinite} run(s) are non-finite (diverged, or ended with a non-finite metric); "
            "see Missing and non-finite runs."
        )
    blocks: list[Block] = list(lines)
    if warnings:
        blocks.append(Bullets([f"⚠ {w}" for w in warnings]))
    return blocks


def _separable(g: pd.DataFrame, top: str, a: Analysis) -> str:
    """Which optimizers' 95% CIs overlap the best one's (a conservative 'cannot separate')."""
    if len(g) == 1:
        return "It is the only optimizer here."
    best = g.loc[top]
    if best["n_finite"] < 2:
        return "One seed: no interval, so no optimizer can be separated from it."
    overlap = [
        v
        for v, r in g.iterrows()
        if v != top
        and r["n_finite"] >= 1
        and not (r["final_ci_lo"] > best["final_ci_hi"] or r["final_ci_hi"] < best["final_ci_lo"])
    ]
    overlap = [v for v in overlap if not math.isnan(g.loc[v, "final_mean"])]
    if not overlap:
        return "Its 95% CI overlaps no other optimizer's."
    return (
        f"Its 95% CI overlaps those of {', '.join(map(a.show, overlap))}: not separated from them."
    )


def _p(x: float) -> str:
    if pd.isna(x):
        return "–"
    return "< 0.001" if x < 0.001 else f"{x:.3f}"


def short_table(a: Analysis, wl: str) -> pd.DataFrame:
    """The findings' table of ``wl``: one row per tested comparison, 8 columns (the rest is in
    comparisons.csv), confirmatory first."""
    c = a.comparisons
    c = c[(c["workload"] == wl) & c["p_value"].notna()]
    names = a.names
    return pd.DataFrame(
        {
            "family": c["family"],
            "comparison": [
                comparison_name(names[r.projected], names[r.base], r.kind) for r in c.itertuples()
            ],
            "statistic": [_stat(s) for s in c["statistic"]],
            "verdict": [f"**{v}**" for v in c["verdict"]],
            "effect [95% interval]": c["effect"],
            "δ": c["delta_text"],
            "adjusted p (difference / equivalence)": [
                f"{_p(r.p_adjusted)} / {_p(r.p_equivalence_adjusted)}" for r in c.itertuples()
            ],
            "pairs": c["n_pairs"].astype(int).astype(str),
        }
    ).astype(str)


def _changed(a: Analysis, wl: str) -> list[str]:
    """Verdicts the family adjustment changed (a decision at α that the family cannot claim)."""
    c = a.comparisons
    c = c[(c["workload"] == wl) & (c["verdict"] != c["verdict_unadjusted"])]
    return [
        f"{comparison_name(r.projected, r.base, r.kind)}, {_stat(r.statistic)}: "
        f"{r.verdict_unadjusted} at α = 0.05 "
        f"alone, {r.verdict} in its {r.family} family (adjusted p = "
        f"{_p(r.p_equivalence_adjusted if r.verdict_unadjusted == 'equivalent' else r.p_adjusted)}"
        f"{' of equivalence' if r.verdict_unadjusted == 'equivalent' else ''})"
        for r in c.itertuples()
    ]


def _not_observed(a: Analysis, wl: str) -> str:
    c = a.comparisons
    c = c[(c["workload"] == wl) & (c["verdict"] == verdicts.NOT_OBSERVED)]
    if c.empty:
        return ""
    stats_ = sorted({_stat(s) for s in c["statistic"]})
    example = c["effect"].iloc[0].removeprefix("not observed: ")
    return (
        f"Not observed in either arm of any comparison, so no verdict: {', '.join(stats_)} "
        f"({example}). Zero in both arms is no evidence that either avoids it."
    )


def findings_section(a: Analysis, figures: list[FigureFile] | None = None) -> Section:
    """Per workload: its forest plot, its short table, what the adjustment changed, what was
    never observed, and the optimizer ranked first."""
    s = a.summary
    blocks: list[Block] = [
        "Verdicts come in declared families. Confirmatory, per workload: each optimizer against "
        "its base on the primary metric, family-wise error held at 5% (Holm). Secondary, per "
        "workload: the same comparisons on the workload's other metrics that have a declared "
        "margin, family-wise error held at 5% (Holm) apart from the primary's. Exploratory: "
        "every other statistic of the report, false discovery rate held at 5% "
        "(Benjamini–Hochberg). Margins δ are the metrics' own, declared before the runs; "
        f"'equivalent' needs at least {verdicts.MIN_EQUIVALENCE_PAIRS} pairs. "
        "The full table of every comparison, unadjusted verdicts included, is comparisons.csv."
    ]
    if a.legend:
        blocks.append(f"Names given by import path are shown by class: {a.legend}.")
    forests = {f.workload: f for f in figures or [] if f.name.endswith("-forest.png")}
    for wl, g in s.groupby("workload", sort=True):
        info = a.data.workloads[wl]
        blocks.append(f"**{a.show(wl)}** (primary metric {info.primary}, {info.target_text()}):")
        if wl in forests:
            blocks.append(forests[wl])
        table = short_table(a, wl)
        if len(table):
            blocks.append(Table(f"{a.show(wl)}: verdicts", table))
        items = _changed(a, wl)
        absent = _not_observed(a, wl)
        if absent:
            items.append(absent)
        ranks = a.ranking.set_index("optimizer")[wl].dropna().sort_values()
        top = ranks.index[0]
        row = g.set_index("optimizer").loc[top]
        ref = a.reference.get(wl)
        cost = f", {num(row['time_per_step_ms'], 3)} ms/step"
        if ref and top != ref and math.isfinite(row["overhead_vs_adam"]):
            cost += f" ({num(row['overhead_vs_adam'], 3)}× {a.show(ref)})"
        cost += f", {num(row['grad_evals_per_step'], 3)} gradient evaluations per step"
        name = a.show(top)
        items.append(
            f"Ranked first: {name} at lr {num(row['best_lr'])} — final {info.primary} "
            f"{mean_pm(row['final_mean'], row['final_ci_lo'], row['final_ci_hi'], row['n_finite'])}"
            f"{cost}. {_separable(g.set_index('optimizer'), top, a)}"
        )
        blocks.append(Bullets(items))
    if a.paired.empty:
        blocks.append(
            "No optimizer with ⊥Grad or surgery ran together with its base (the same optimizer "
            "without the projection), so there is no paired comparison."
        )
    return Section("findings", "Findings at a glance", blocks)


def method_section(a: Analysis) -> Section:
    blocks: list[Block] = [
        f"Learning-rate selection. {SELECTION_RULE}",
        Bullets([f"{a.show(wl)}: {split.describe()}." for wl, split in a.splits.items()]),
        "Everything below except the learning-rate sensitivity figure, the time per step and the "
        "divergence heatmap uses each optimizer at its selected lr on the report seeds only.",
        "Intervals respect each metric's range (bench.report.intervals): a log-scale metric "
        "(positive and multiplicative: FID, distances, KL) gets its geometric mean and the "
        "95% Student-t interval of the log values mapped back with exp (always > 0); any "
        "other metric its mean and the 95% Student-t interval over seeds, cut to the metric's "
        "bounds (no interval below 0 for a non-negative metric; summary.csv's final_interval "
        "names the rule used). "
        f"Paired comparisons: runs matched by workload, seed and the lr-selection rule (each "
        f"optimizer at its own selected lr); the 95% BCa bootstrap interval of the mean "
        f"difference ({stats.BOOTSTRAP_RESAMPLES:,} resamples, fixed seed {stats.BOOTSTRAP_SEED}) "
        f"and the two-sided Wilcoxon signed-rank test (scipy.stats.wilcoxon). With fewer than "
        f"{stats.MIN_SIGNED_RANK_N} non-zero differences the test cannot reach p < 0.05 at all, "
        "and the table says so.",
        "Verdicts. Every comparison is called better, worse, equivalent within ±δ or "
        "undecided (bench.report.verdicts): better/worse when the two-sided paired t-test's "
        "p-value of no difference is below α = 0.05, equivalent when two one-sided t-tests "
        "(TOST; Schuirmann 1987) put the mean difference within ±δ (equivalence first), each "
        "p-value adjusted within its family first (bench.report.families: Holm per workload "
        "for the confirmatory and the secondary family, Benjamini–Hochberg across the report "
        "for the exploratory one). A metric with log_scale (FID, distances, KL) is compared by log "
        "ratio. δ is the metric's own margin, declared with it (ogan.workloads.Metric.margin; "
        "the run records it): never derived from the data; a metric without one gets no "
        f"equivalent verdict, and none comes from fewer than {verdicts.MIN_EQUIVALENCE_PAIRS} "
        "pairs. Where every pair differs by the same amount (no spread) the exact sign test "
        "decides, the same way for either sign, and no interval is shown. The intervals are "
        "unadjusted 95% t-intervals, cut to what the metric's bounds allow. 'Seeds for 80% "
        f"power' is the number of pairs a fixed design needs to detect δ with "
        f"{verdicts.POWER:.0%} power at the observed paired spread (noncentral t). "
        + (
            "Comparisons marked group-sequential had seeds added in rounds "
            "(bench run --until-decided): their verdicts use the alpha-spending boundaries "
            "(Lan & DeMets 1983, O'Brien-Fleming-type spending; bench.report.spending) at "
            "the looks taken, at level α / m (m: the comparisons of its workload's family), "
            "which keep every error at α under that optional stopping."
            if "design" in a.paired and (a.paired["design"] == decisions.SEQUENTIAL).any()
            else "Every verdict here is a fixed design (no seeds were added in rounds)."
        ),
        "Cost. Time per step is training wall time only (evaluations excluded), over all runs of "
        "an optimizer; overhead is relative to plain Adam on the same workload in the same sweep, "
        "as measured while the sweep ran (parallel runs share the CPU, so small ratios are "
        "indicative only; python -m bench perf measures overheads under control). A run trained "
        "as a member of a population (bench run --population) records its share of the "
        "population's step time (the time per step column), and every run records the step "
        "time of one run trained alone (a population's: a short standalone run of its first "
        "member, timed right after it, without evaluating); overheads compare each "
        "optimizer's fastest such timing (parallel workers only ever slow one), so an "
        "optimizer that trains "
        "one seed at a time and Adam trained as a population are compared on equal terms "
        "(runs stored without it: runs of one population size on both sides, named where it "
        "is not 1). "
        "A gradient evaluation is one backward pass of one player; an extrapolation update "
        "(Extra-*) costs two per player, so methods are compared per gradient evaluation as well "
        "as per update.",
    ]
    return Section("method", "How to read this report", blocks)
