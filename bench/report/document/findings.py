"""The report's prose: the header with its warnings, the findings at a glance, how to read it."""

from __future__ import annotations

import math

import pandas as pd

from bench.report import decisions, stats, verdicts
from bench.report.document.claims import claim_lines
from bench.report.document.formatting import mean_pm, num
from bench.report.document.model import Block, Bullets, Section
from bench.report.document.paired import verdict_line
from bench.report.tables import SELECTION_RULE, Analysis


def header(a: Analysis) -> list[Block]:
    d = a.data
    runs = d.runs
    seeds = sorted(runs["seed"].unique())
    sweeps = ", ".join(sorted(runs["sweep"].unique()))
    lines = [
        f"Sweep(s) {sweeps} under {d.path}: {len(runs)} finished runs on "
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
                f"{wl}: a single seed. The lr is selected on the seed it is reported on, and no "
                "confidence interval or test is possible; one seed is not evidence."
            )
        elif len(split.report) == 1:
            warnings.append(
                f"{wl}: two seeds, one to select the lr and one to report on, so no confidence "
                "interval or test is possible; one seed is not evidence: run more seeds."
            )
    for wl, g in runs.groupby("workload", sort=True):
        spread = g.groupby(["optimizer", "lr"])["final"].agg(lambda x: x.nunique(dropna=False))
        if g["seed"].nunique() > 1 and (spread == 1).all():
            warnings.append(
                f"{wl}: every seed gives the same final metric (nothing in this workload depends "
                "on the seed), so its intervals are zero-width and seeds add no evidence."
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


def _separable(g: pd.DataFrame, top: str) -> str:
    """Which optimizers' 95% CIs overlap the best one's (a conservative 'cannot separate')."""
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
    return f"Its 95% CI overlaps those of {', '.join(overlap)}: not separated from them."


def findings_section(a: Analysis) -> Section:
    s = a.summary
    items = [verdict_line(p) for p in a.paired.itertuples(index=False)]
    items += claim_lines(a)
    for wl, g in s.groupby("workload", sort=True):
        info = a.data.workloads[wl]
        ranks = a.ranking.set_index("optimizer")[wl].dropna().sort_values()
        top = ranks.index[0]
        row = g.set_index("optimizer").loc[top]
        ref = a.reference.get(wl)
        cost = f", {num(row['time_per_step_ms'], 3)} ms/step"
        if ref and top != ref and math.isfinite(row["overhead_vs_adam"]):
            cost += f" ({num(row['overhead_vs_adam'], 3)}× {ref})"
        cost += f", {num(row['grad_evals_per_step'], 3)} gradient evaluations per step"
        items.append(
            f"{wl}: ranked first is {top} at lr {num(row['best_lr'])} — final {info.primary} "
            f"{mean_pm(row['final_mean'], row['final_ci_lo'], row['final_ci_hi'], row['n_finite'])}"
            f"{cost}. {_separable(g.set_index('optimizer'), top)}"
        )
    if a.paired.empty:
        items.append(
            "No optimizer with ⊥Grad or surgery ran together with its base (the same optimizer "
            "without the projection), so there is no paired comparison."
        )
    return Section("findings", "Findings at a glance", [Bullets(items)])


def method_section(a: Analysis) -> Section:
    blocks: list[Block] = [
        f"Learning-rate selection. {SELECTION_RULE}",
        Bullets([f"{wl}: {split.describe()}." for wl, split in a.splits.items()]),
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
        "Verdicts. Every paired comparison is called better, worse, equivalent within ±δ or "
        "undecided (bench.report.verdicts): better/worse when the two-sided "
        f"{1 - verdicts.ALPHA:.0%} t-interval of the mean paired difference excludes 0, "
        "equivalent when two one-sided t-tests (TOST; Schuirmann 1987) at "
        f"α = {verdicts.ALPHA} each put the mean difference within ±δ (equivalence first). "
        "A metric with log_scale (FID, distances, KL) is compared by log ratio and "
        f"δ = log(1 + {verdicts.RELATIVE_MARGIN:.0%}); others by difference with δ = "
        f"{verdicts.RELATIVE_MARGIN:.0%} of the base mean over the pairs. 'Seeds for 80% power' "
        f"is the number of pairs a fixed design needs to detect δ with {verdicts.POWER:.0%} "
        "power at the observed paired spread (noncentral t). "
        + (
            "Comparisons marked group-sequential had seeds added in rounds "
            "(bench run --until-decided): their verdicts use the alpha-spending boundaries "
            "(Lan & DeMets 1983, O'Brien-Fleming-type spending; bench.report.spending) at "
            "the looks taken, which keep every error at α under that optional stopping."
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
        "member, timed right after it); overheads compare those, so an optimizer that trains "
        "one seed at a time and Adam trained as a population are compared on equal terms "
        "(runs stored without it: runs of one population size on both sides, named where it "
        "is not 1). "
        "A gradient evaluation is one backward pass of one player; an extrapolation update "
        "(Extra-*) costs two per player, so methods are compared per gradient evaluation as well "
        "as per update.",
    ]
    return Section("method", "How to read this report", blocks)
