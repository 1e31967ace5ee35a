"""The claim's verdicts: do ⊥Grad (and surgery) avoid vanishing and exploding gradients and
train faster? A findings line per comparison and the table behind it."""

from __future__ import annotations

import pandas as pd

from bench.report.document.formatting import num
from bench.report.document.model import Block, Section, Table
from bench.report.labels import comparison_name
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


def claims_section(a: Analysis) -> Section:
    blocks: list[Block] = [
        "The claim the project grew from: orthogonal gradients avoid vanishing and exploding "
        "gradients and train faster. Each statistic is computed per run and compared seed by "
        "seed with the verdict rule of the paired table (lower is better for every one), in "
        "the exploratory family (Benjamini–Hochberg across the report). Norm growth = "
        "log(median applied |g| over the last 10% of the traced steps / over the first 10%), "
        "compared by difference with δ = log 1.1; p99/median of |g| by log ratio, δ = ±10%; "
        "the vanishing and exploding fractions of steps (ogan.game.stats) by difference with "
        "δ = 0.01 (1% of the steps); a fraction that is 0 in every run of both arms is 'not "
        "observed', with an exact bound on how often it fires, and no verdict. Reaching the "
        "target is its own endpoint (a diverged run did not reach it): the exact McNemar test "
        "on the pairs where only one run reached it. How fast is a second endpoint, on "
        "gradient evaluations to the target among the pairs where both reached it (log ratio, "
        "δ = ±10%). Wall-clock time to the target is shown, not tested: the sweep's runs share "
        "the machine's cores (python -m bench perf times under control)."
    ]
    c = a.claims
    if c.empty:
        blocks.append("No paired comparison, so no verdict on the claim.")
        return Section("claims", "The claim: vanishing, exploding, faster", blocks)
    names = a.names
    table = pd.DataFrame(
        {
            "workload": c["workload"].map(a.show),
            "comparison": [
                comparison_name(names[r.projected], names[r.base], r.kind) for r in c.itertuples()
            ],
            "statistic": c["what"],
            "pairs": c["n_pairs"].astype(str),
            "verdict": [f"**{v}**" for v in c["verdict"]],
            "effect [95% interval]": c["effect"],
            "δ": c["delta_text"],
            "adjusted p (BH)": c["p_adjusted"].map(lambda x: num(x, 3)),
        }
    )
    blocks.append(Table("The claim's paired verdicts", table))
    return Section("claims", "The claim: vanishing, exploding, faster", blocks)
