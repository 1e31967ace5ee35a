"""The claim's verdicts: do ⊥Grad (and surgery) avoid vanishing and exploding gradients and
train faster? A findings line per comparison and the table behind it."""

from __future__ import annotations

import pandas as pd

from bench.report.document.formatting import num
from bench.report.document.model import Block, Section, Table
from bench.report.tables import Analysis

SHORT = {
    "growth": "norm growth",
    "tail": "p99/median",
    "vanishing": "vanishing",
    "exploding": "exploding",
    "time_to_target": "time to target",
    "grad_evals_to_target": "gradient evaluations to target",
}


def _short(stat: str) -> str:
    for prefix, text in SHORT.items():
        if stat == prefix:
            return text
        if stat.startswith(prefix + "_"):
            return f"{text} {stat.rsplit('_', 1)[1].upper()}"
    return stat


def claim_lines(a: Analysis) -> list[str]:
    """One line per paired comparison: each claim statistic's verdict (lower is better)."""
    c = a.claims
    if c.empty:
        return []
    lines = []
    for (wl, base, projected), g in c.groupby(["workload", "base", "projected"], sort=False):
        parts = [f"{_short(r.statistic)} {r.verdict} ({r.effect})" for r in g.itertuples()]
        lines.append(
            f"{wl}, the claim for {projected} vs {base} (lower is better, "
            f"{int(g['n_pairs'].max())} pairs at most): " + "; ".join(parts)
        )
    return lines


def claims_section(a: Analysis) -> Section:
    blocks: list[Block] = [
        "The claim the project grew from: orthogonal gradients avoid vanishing and exploding "
        "gradients and train faster. Each statistic is computed per run and compared seed by "
        "seed with the verdict rule of the paired table (lower is better for every one). Norm "
        "growth = log(median applied |g| over the last 10% of the traced steps / over the "
        "first 10%), compared by difference with δ = log 1.1; p99/median of |g| by log ratio; "
        "the vanishing and exploding fractions of steps (ogan.game.stats) by difference with "
        "δ = 0.01 (1% of the steps). Time and gradient evaluations to the target by log ratio; "
        "a run that never reached the target is censored at what it spent in all (a diverged "
        "run never reaches it), so a pair where only one run reached it still says which was "
        "cheaper. Where there is such a pair, the verdict is the exact sign test's on the order "
        "of every pair (equivalence is not assessed there), its effect the median log ratio "
        "with its distribution-free interval (ends may be ∞); the 'reached' column counts the "
        "runs that reached the target."
    ]
    c = a.claims
    if c.empty:
        blocks.append("No paired comparison, so no verdict on the claim.")
        return Section("claims", "The claim: vanishing, exploding, faster", blocks)
    table = pd.DataFrame(
        {
            "workload": c["workload"],
            "comparison": [f"{r.base} → {r.projected}" for r in c.itertuples()],
            "statistic": c["what"],
            "pairs": c["n_pairs"].astype(str),
            "base mean": c["base_mean"].map(num),
            "projected mean": c["projected_mean"].map(num),
            "verdict": c["verdict"],
            "effect [interval]": c["effect"],
            "δ": c["delta_text"],
            "seeds for 80% power": c["seeds_for_power"].map(
                lambda x: "?" if pd.isna(x) else str(int(x))
            ),
            "reached": c["reached"],
        }
    )
    blocks.append(Table("The claim's paired verdicts", table))
    return Section("claims", "The claim: vanishing, exploding, faster", blocks)
