"""The verdicts of the report: one per paired comparison, and the claim's own.

Every paired comparison (base vs base+⊥Grad, base vs base+surgery) gets a
:class:`~bench.report.verdicts.Verdict` on the final primary metric: the fixed design of
:mod:`bench.report.verdicts`, or, when the sweep added seeds in rounds (``bench run
--until-decided`` wrote ``sequential.json``), the group-sequential boundaries of
:mod:`bench.report.spending` at the looks that design took, so that the report's verdict is
the one that stays valid under that optional stopping.

The claim the project grew from, "orthogonal gradients avoid vanishing and exploding gradients
and train faster", is tested by the same rule on per-run statistics (:data:`CLAIM_STATISTICS`):

- ``growth`` of each player's applied gradient norm: log(median over the last 10% of the
  traced steps / median over the first 10%), from the traces (0: no growth; compared by
  difference, δ = log 1.1);
- ``p99 / median`` of the norm (a heavy upper tail: spikes), from the run summary;
- the vanishing and exploding fractions of steps (``ogan.game.stats``), from the run summary;
- time and gradient evaluations to the target. A run that never reached it is right-censored at
  what it spent in all (a diverged run never reaches it): when only one run of a pair reached
  the target, the pair still says which was cheaper, and the verdict is the sign test's
  (:func:`~bench.report.verdicts.censored_cost_verdict`); how many runs reached is stated
  beside it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.report import spending, verdicts
from bench.report.data import SEQUENTIAL_FILE, SweepData
from bench.report.verdicts import LOG_RATIO, Verdict

FIXED, SEQUENTIAL = "fixed", "group-sequential"
EDGE_FRACTION = 0.10
"""The growth statistic compares the last 10% of traced steps with the first 10%."""

CLAIM_STATISTICS: tuple[tuple[str, str, bool], ...] = (
    # (statistic, what it measures, log_scale); lower is better for every one of them
    ("growth_{p}", "log(median |g| last 10% / first 10%) of {P}", False),
    ("tail_{p}", "p99 / median of {P}'s |g|", True),
    ("vanishing_{p}", "fraction of steps with vanishing {P} gradient", False),
    ("exploding_{p}", "fraction of steps with exploding {P} gradient", False),
)
COSTS = (
    ("time_to_target", "time to target (s)"),
    ("grad_evals_to_target", "gradient evaluations to target"),
)
BUDGETS = {"time_to_target": "wall_time", "grad_evals_to_target": "grad_evals"}
"""What a run spent in all, for each cost: a run that never reached the target cost more."""


def sequential_designs(data: SweepData) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """(workload, kind, base, projected) -> its entry of ``sequential.json`` (none: {})."""
    out: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for sweep_dir in data.sweep_dirs:
        path = Path(sweep_dir) / SEQUENTIAL_FILE
        if path.is_file():
            for c in json.loads(path.read_text()).get("comparisons", []):
                out[(c["workload"], c["kind"], c["base"], c["variant"])] = c
    return out


def final_verdict(
    base: pd.Series, projected: pd.Series, data: SweepData, workload: str, design: dict[str, Any]
) -> tuple[Verdict, str]:
    """(verdict on the final primary metric, design name) of one paired comparison.

    ``design``: its ``sequential.json`` entry, or {}. The sequential boundaries apply when the
    pairs are exactly those of the design's last look; otherwise (runs added by hand since)
    the fixed design's, which the design name says.
    """
    info = data.workloads[workload]
    looks = design.get("looks") or []
    if looks and design.get("scale"):
        pairs = verdicts.paired_values(base, projected)
        diffs = verdicts.paired_diffs(pairs, design["scale"])
        diffs = diffs[np.isfinite(diffs)]
        if len(diffs) == looks[-1]["n"] and len(diffs) >= 2:
            v = spending.sequential_verdict(
                diffs.to_numpy(),
                [look["n"] for look in looks],
                design["max_pairs"],
                higher_is_better=info.higher_is_better,
                margin=design["margin"],
                scale=design["scale"],
                final=bool(looks[-1]["final"]),
            )
            return v, SEQUENTIAL
    v = verdicts.paired_verdict(
        base, projected, higher_is_better=info.higher_is_better, log_scale=info.log_scale()
    )
    return v, FIXED


def verdict_columns(v: Verdict, design: str) -> dict[str, Any]:
    """The paired table's verdict columns (on the comparison's scale, see ``scale``)."""
    return {
        "verdict": v.verdict,
        "design": design,
        "scale": v.scale,
        "delta": v.margin,
        "delta_text": delta_text(v),
        "estimate": v.estimate,
        "estimate_ci_lo": v.ci_lo,
        "estimate_ci_hi": v.ci_hi,
        "equivalence_lo": v.eq_lo,
        "equivalence_hi": v.eq_hi,
        "seeds_for_power": v.seeds_for_power,
    }


def delta_text(v: Verdict) -> str:
    """δ with its scale: '±10% (log ratio)' or '±0.05 (difference)'."""
    if not math.isfinite(v.margin):
        return "?"
    if v.scale == LOG_RATIO:
        return f"±{math.expm1(v.margin):.0%} ({LOG_RATIO})"
    return f"±{v.margin:.3g} (difference)"


def effect_text(v: Verdict) -> str:
    """The effect with its interval: a ratio on the log scale, a difference otherwise."""
    if v.n < 2:
        return f"{v.n} pair(s): no interval"
    return v.effect()


# -- the claim --------------------------------------------------------------------------------


def norm_growth(traces: pd.DataFrame, column: str) -> pd.Series:
    """Per run: log(median of ``column`` over the last 10% of its steps / over the first 10%)."""
    out = {}
    for run_id, tr in traces.groupby("run_id", sort=False):
        x = tr.sort_values("step")[column].to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        k = max(1, round(EDGE_FRACTION * len(x)))
        if len(x) < 2 * k:
            out[run_id] = math.nan
            continue
        first, last = float(np.median(x[:k])), float(np.median(x[-k:]))
        out[run_id] = math.log(last / first) if first > 0 and last > 0 else math.nan
    return pd.Series(out, dtype=float)


def claim_statistics(reported: pd.DataFrame, traces: pd.DataFrame) -> pd.DataFrame:
    """The reported runs with a column per claim statistic (NaN where a run lacks the data)."""
    r = reported.copy()
    for p in ("g", "d"):
        column = f"grad_norm_{p}"
        have = column in traces.columns and len(traces)
        growth = norm_growth(traces[traces["run_id"].isin(r["run_id"])], column) if have else None
        r[f"growth_{p}"] = r["run_id"].map(growth) if growth is not None else math.nan
        median, p99 = f"grad_norm_{p}_median", f"grad_norm_{p}_p99"
        if median in r and p99 in r:
            with np.errstate(divide="ignore", invalid="ignore"):
                r[f"tail_{p}"] = r[p99].astype(float) / r[median].astype(float)
        else:
            r[f"tail_{p}"] = math.nan
        for kind in ("vanishing", "exploding"):
            src = f"grad_norm_{p}_{kind}_frac"
            r[f"{kind}_{p}"] = r[src].astype(float) if src in r else math.nan
    return r


def claim_table(a: Any) -> pd.DataFrame:
    """One row per paired comparison × claim statistic (``a``: the report's Analysis)."""
    data: SweepData = a.data
    stats_runs = claim_statistics(a.reported, data.traces)
    rows = []
    for p in data.pairs.itertuples(index=False):
        if p.kind == "baseline":  # the claim is the projection's
            continue
        r = stats_runs[stats_runs["workload"] == p.workload]
        base = r[r["optimizer"] == p.base].set_index("seed")
        proj = r[r["optimizer"] == p.projected].set_index("seed")
        items = [
            (stat.format(p=pl), what.format(P="G" if pl == "g" else "D"), log)
            for stat, what, log in CLAIM_STATISTICS
            for pl in ("g", "d")
        ] + [(stat, what, True) for stat, what in COSTS]
        for stat, what, log in items:
            b, v = base[stat].astype(float), proj[stat].astype(float)
            # the vanishing and exploding fractions are zero for most runs: 10% of the base
            # mean would be δ = 0; a margin of 1% of the steps is what the question cares about
            margin = 0.01 if stat.startswith(("vanishing", "exploding")) else None
            if stat.startswith("growth"):  # a log ratio already: δ = log 1.1 as for ratios
                margin = math.log1p(verdicts.RELATIVE_MARGIN)
            if stat in BUDGETS:
                verdict = verdicts.censored_cost_verdict(
                    _cost_frame(base, stat), _cost_frame(proj, stat)
                )
            else:
                verdict = verdicts.paired_verdict(
                    b, v, higher_is_better=False, log_scale=log, margin=margin
                )
            reached = ""
            if stat in dict(COSTS):
                reached = (
                    f"{int(np.isfinite(b).sum())}/{len(b)} base, "
                    f"{int(np.isfinite(v).sum())}/{len(v)} projected reached"
                )
            pairs = verdicts.paired_values(b, v)
            rows.append(
                {
                    "workload": p.workload,
                    "kind": p.kind,
                    "base": p.base,
                    "projected": p.projected,
                    "statistic": stat,
                    "what": what,
                    "n_pairs": verdict.n,
                    "base_mean": float(pairs["base"].mean()) if len(pairs) else math.nan,
                    "projected_mean": float(pairs["variant"].mean()) if len(pairs) else math.nan,
                    "reached": reached,
                    **verdict_columns(verdict, FIXED),
                    "effect": effect_text(verdict),
                }
            )
    return pd.DataFrame(rows)


def _cost_frame(runs: pd.DataFrame, stat: str) -> pd.DataFrame:
    """``cost`` (NaN: the target not reached) and ``budget`` (inf for a run that diverged)."""
    budget = runs[BUDGETS[stat]].astype(float) if BUDGETS[stat] in runs else math.inf
    frame = pd.DataFrame({"cost": runs[stat].astype(float), "budget": budget}, index=runs.index)
    if "diverged_at" in runs:
        frame.loc[runs["diverged_at"].notna().to_numpy(), "budget"] = math.inf
    return frame
