"""The paired comparisons (with vs without the projection; every other optimizer vs Adam): their
verdicts and their table."""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench.report import decisions, verdicts
from bench.report.document.formatting import frac, interval, num
from bench.report.document.model import Block, Section, Table
from bench.report.tables import Analysis


def verdict_line(p: Any) -> str:
    """One findings line: workload, comparison, verdict, effect and interval, δ, n, seeds needed."""
    effect = decisions.effect_text(_as_verdict(p))
    need = "" if pd.isna(p.seeds_for_power) else f"{int(p.seeds_for_power)}"
    design = " (group-sequential)" if p.design == decisions.SEQUENTIAL else ""
    return (
        f"{p.workload}, {p.projected} vs {p.base}, final {p.metric}: **{p.verdict}**{design} — "
        f"{effect}, δ = {p.delta_text}, {p.n_pairs} pairs, "
        f"seeds for 80% power at δ: {need or 'not computable'}"
    )


def _as_verdict(p: Any) -> verdicts.Verdict:
    return verdicts.Verdict(
        p.verdict, int(p.n_pairs), p.scale, p.estimate, p.estimate_ci_lo, p.estimate_ci_hi,
        p.equivalence_lo, p.equivalence_hi, p.delta, verdicts.ALPHA,
        None if pd.isna(p.seeds_for_power) else int(p.seeds_for_power), "",
    )  # fmt: skip


TITLE = "Paired comparisons: with vs without the projection, and vs Adam"


def paired_section(a: Analysis) -> Section:
    p = a.paired
    blocks: list[Block] = [
        "Each optimizer at its own selected lr, matched by seed on the report seeds. Two kinds "
        "of comparison: an optimizer with ⊥Grad or surgery against the same optimizer without "
        "it (ortho, surgery), and every optimizer without a projection against the workload's "
        "plain Adam (baseline). Difference = the second − the first (projected − base) of the "
        "final primary metric (negative is better when lower is better). A pair where either "
        "run is non-finite is dropped and counted."
    ]
    if p.empty:
        blocks.append(
            "No paired comparison: the sweep has no optimizer with ⊥Grad or surgery together with "
            "its base (the same settings without the projection) on the same workload, and no "
            "other optimizer beside a plain Adam."
        )
        return Section("paired", TITLE, blocks)
    table = pd.DataFrame(
        {
            "workload": p["workload"],
            "kind": p["kind"],
            "comparison": [f"{r.base} → {r.projected}" for r in p.itertuples(index=False)],
            "metric": [
                f"{r.metric} ({'↑' if r.higher_is_better else '↓'})"
                for r in p.itertuples(index=False)
            ],
            "lr base / projected": [
                f"{num(r.lr_base)} / {num(r.lr_projected)}" for r in p.itertuples(index=False)
            ],
            "seeds": p["seeds"],
            "pairs": p["n_pairs"].astype(str),
            "base mean": p["base_mean"].map(num),
            "projected mean": p["projected_mean"].map(num),
            "mean difference": p["mean_diff"].map(num),
            "95% bootstrap CI": [
                interval(r.diff_ci_lo, r.diff_ci_hi) for r in p.itertuples(index=False)
            ],
            "projected better": [
                frac(r.projected_better, r.n_pairs) for r in p.itertuples(index=False)
            ],
            "Wilcoxon p": p["p_value"].map(lambda x: num(x, 3)),
            "verdict": [
                r.verdict + (" (sequential)" if r.design == decisions.SEQUENTIAL else "")
                for r in p.itertuples(index=False)
            ],
            "effect [interval]": [
                decisions.effect_text(_as_verdict(r)) for r in p.itertuples(index=False)
            ],
            "δ": p["delta_text"],
            "seeds for 80% power": p["seeds_for_power"].map(
                lambda x: "?" if pd.isna(x) else str(int(x))
            ),
            "note": [
                "; ".join(
                    x
                    for x in (
                        r.note,
                        f"{r.dropped_nonfinite} pair(s) dropped: a run is non-finite"
                        if r.dropped_nonfinite
                        else "",
                    )
                    if x
                )
                for r in p.itertuples(index=False)
            ],
        }
    )
    blocks.append(Table("Seed-matched paired comparisons", table))
    return Section("paired", TITLE, blocks)
