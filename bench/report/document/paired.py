"""The paired comparisons (with vs without the projection; every other optimizer vs Adam): their
verdicts and their table."""

from __future__ import annotations

import pandas as pd

from bench.report import decisions
from bench.report.document.formatting import num
from bench.report.document.model import Block, Section, Table
from bench.report.figures.canvas import FigureFile
from bench.report.figures.paired import is_paired_curves
from bench.report.labels import EQUAL_EVALS, comparison_name
from bench.report.tables import Analysis

_as_verdict = decisions.as_verdict


TITLE = "Paired comparisons: with vs without the projection, and vs Adam"


def paired_section(a: Analysis, figures: list[FigureFile]) -> Section:
    p = a.paired
    blocks: list[Block] = [
        "Each optimizer at its own selected lr, matched by seed on the report seeds. The kinds "
        "of comparison: an optimizer with ⊥Grad or surgery against the same optimizer without "
        "it (ortho, surgery), every optimizer without a projection against the workload's "
        "plain Adam (baseline), and any the sweep file declares with [[compare]] (declared: "
        "its arm against its other; with budget = \"grad_evals\", at equal gradient "
        "evaluations: each arm's values once it has spent what the cheaper arm spends in a "
        "whole run, not its final ones). Difference = the second − the first (projected − base, "
        "or arm − other) of the "
        "final primary metric (negative is better when lower is better). A pair where either "
        "run is non-finite is dropped and counted. The verdict is the confirmatory family's "
        "(Holm within the workload); the learning rates, seeds, bootstrap interval, Wilcoxon "
        "test, unadjusted verdict and seeds for 80% power are in paired.csv."
    ]
    if p.empty:
        blocks.append(
            "No paired comparison: the sweep has no optimizer with ⊥Grad or surgery together with "
            "its base (the same settings without the projection) on the same workload, no "
            "other optimizer beside a plain Adam, and no [[compare]] whose two arms both ran."
        )
        return Section("paired", TITLE, blocks)
    names = a.names
    table = pd.DataFrame(
        {
            "workload": p["workload"].map(a.show),
            "comparison": [
                f"{comparison_name(names[r.projected], names[r.base], r.kind)} ({r.metric} "
                f"{'↑' if r.higher_is_better else '↓'})"
                for r in p.itertuples(index=False)
            ],
            "pairs": [
                f"{r.n_pairs}"
                + (f" ({r.dropped_nonfinite} non-finite dropped)" if r.dropped_nonfinite else "")
                for r in p.itertuples(index=False)
            ],
            "base / variant mean": [
                f"{num(r.base_mean)} / {num(r.projected_mean)}" for r in p.itertuples(index=False)
            ],
            "verdict": [
                f"**{r.verdict}**" + (" (sequential)" if r.design == decisions.SEQUENTIAL else "")
                for r in p.itertuples(index=False)
            ],
            "effect [95% interval]": [
                decisions.effect_text(_as_verdict(r)) for r in p.itertuples(index=False)
            ],
            "δ": p["delta_text"],
            "adjusted p (Holm)": p["p_adjusted"].map(lambda x: num(x, 3)),
        }
    )
    blocks.append(Table("Seed-matched paired comparisons", table))
    blocks += [
        f"{comparison_name(names[r.projected], names[r.base], r.kind)}: "
        f"{r.budget_grad_evals:,.0f} gradient evaluations each, {names[r.base]} read at step "
        f"{r.budget_step_base:,.0f} and {names[r.projected]} at step "
        f"{r.budget_step_projected:,.0f} (median over runs: each run's last evaluation within "
        "the budget)."
        for r in p[p["kind"] == EQUAL_EVALS].itertuples(index=False)
    ]
    blocks += [f for f in figures if is_paired_curves(f)]
    return Section("paired", TITLE, blocks)
