"""The paired comparisons (with vs without the projection): their verdict and their table."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from bench.report import stats
from bench.report.document.formatting import frac, interval, num
from bench.report.document.model import Block, Section, Table
from bench.report.tables import Analysis


def verdict(p: Any) -> str:
    """One sentence on a paired comparison that claims no more than its n supports."""
    direction = ""
    if p.n_pairs >= 2 and (p.diff_ci_lo > 0 or p.diff_ci_hi < 0):
        better = (p.diff_ci_lo > 0) == bool(p.higher_is_better)
        direction = "helps" if better else "hurts"
    detail = (
        f"mean {p.metric} difference ({p.projected} − {p.base}) {num(p.mean_diff, 3)}, 95% "
        f"bootstrap CI {interval(p.diff_ci_lo, p.diff_ci_hi)}, {p.projected} better on "
        f"{p.projected_better}/{p.n_pairs} seeds"
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


def paired_section(a: Analysis) -> Section:
    p = a.paired
    blocks: list[Block] = [
        "Each optimizer at its own selected lr, matched by seed on the report seeds. Difference = "
        "projected − base of the final primary metric (negative is better when lower is better). "
        "A pair where either run is non-finite is dropped and counted."
    ]
    if p.empty:
        blocks.append(
            "No paired comparison: the sweep has no optimizer with ⊥Grad or surgery together with "
            "its base (the same settings without the projection) on the same workload."
        )
        return Section("paired", "Paired comparisons: with vs without the projection", blocks)
    table = pd.DataFrame(
        {
            "workload": p["workload"],
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
    return Section("paired", "Paired comparisons: with vs without the projection", blocks)
