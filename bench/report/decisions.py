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
- reaching the target (a paired binary endpoint: exact McNemar,
  :func:`~bench.report.verdicts.reach_verdict`; a diverged run did not reach it), and, apart
  from it, the gradient evaluations to the target among the pairs where both runs reached it
  (log ratio). Wall-clock time to the target is shown but not tested: the sweep's runs share
  the machine's cores, so their times carry its load (``bench perf`` times under control).

Each statistic's margin is declared here, with the statistic (:data:`CLAIM_STATISTICS`), never
taken from the data. A statistic that is 0 in every run of both arms (a fraction of vanishing
steps that never fired) is *not observed*, with the exact (Clopper–Pearson) 95% upper bound on
the share of runs in which it fires; it is no evidence that either arm avoids it, so it gets no
verdict and no place in the family.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from bench.report import intervals, spending, verdicts
from bench.report.data import SweepData
from bench.report.labels import EQUAL_EVALS
from bench.report.verdicts import LOG_RATIO, Verdict
from ogan.game import stats as gstats

FIXED, SEQUENTIAL = "fixed", "group-sequential"

RELATIVE = math.log1p(0.10)
CLAIM_STATISTICS: tuple[tuple[str, str, bool, float], ...] = (
    # (statistic, what it measures, log_scale, margin); lower is better for every one of them.
    # growth is a log ratio already: ±log 1.1 is a 10% change of the growth; the tail ratio is
    # log-scale: ±10%; the fractions of steps: ±1 point of the steps
    ("growth_{p}", "log(median |g| last 10% / first 10%) of {P}", False, RELATIVE),
    ("tail_{p}", "p99 / median of {P}'s |g|", True, 0.10),
    ("vanishing_{p}", "fraction of steps with vanishing {P} gradient", False, 0.01),
    ("exploding_{p}", "fraction of steps with exploding {P} gradient", False, 0.01),
)
REACH = "reached_target"
SPEED = "grad_evals_to_target"
WALL = "time_to_target"
SPEED_MARGIN = 0.10
"""Gradient evaluations to the target among pairs that both reached it: ±10%."""
DESCRIPTIVE = "descriptive"
"""The verdict column of a statistic shown but not tested (wall-clock time on shared cores)."""


def sequential_designs(data: SweepData) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """(workload, kind, base, projected) -> its ``sequential.json`` entry (none: absent)."""
    return {(c["workload"], c["kind"], c["base"], c["variant"]): c for c in data.sequential}


def family_alpha(data: SweepData, workload: str) -> float:
    """α / m for a sequential design in ``workload``'s confirmatory family of m comparisons
    (:mod:`bench.report.families`)."""
    m = int((data.pairs["workload"] == workload).sum()) if len(data.pairs) else 1
    return verdicts.ALPHA / max(m, 1)


def final_verdict(
    base: pd.Series, projected: pd.Series, data: SweepData, workload: str, design: dict[str, Any]
) -> tuple[Verdict, str]:
    """(verdict on the final primary metric, design name) of one paired comparison.

    ``design``: its ``sequential.json`` entry, or {}. The sequential boundaries apply when the
    pairs are exactly those of the design's last look; otherwise (runs added by hand since)
    the fixed design's, which the design name says. The margin is the metric's declared one
    (:attr:`~bench.report.data.WorkloadInfo.margins`), whatever an older design recorded.
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
                margin=verdicts.margin_for(design["scale"], info.margin(), info.log_scale()),
                scale=design["scale"],
                alpha=family_alpha(data, workload),
                final=bool(looks[-1]["final"]),
            )
            return v, SEQUENTIAL
    v = verdicts.paired_verdict(
        base,
        projected,
        higher_is_better=info.higher_is_better,
        log_scale=info.log_scale(),
        margin=info.margin(),
    )
    return v, FIXED


def verdict_columns(v: Verdict, design: str, span: float | None = None) -> dict[str, Any]:
    """The paired table's verdict columns (on the comparison's scale, see ``scale``).

    ``span``: hi − lo of a metric bounded on both sides (modes: 0-8): no difference can exceed
    it, so the difference interval is cut to ±span (a t-interval knows nothing of bounds).
    """
    v = _clipped(v, span)
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
        "p_value": v.p_value,
        "p_equivalence": v.p_equivalence,
        "reason": v.reason,
    }


def _clipped(v: Verdict, span: float | None) -> Verdict:
    """``v`` with its difference interval cut to ±span (:func:`verdict_columns`)."""
    if span is None or v.scale == LOG_RATIO:
        return v
    return dataclasses.replace(v, ci_lo=max(v.ci_lo, -span), ci_hi=min(v.ci_hi, span))


def as_verdict(row: Any) -> Verdict:
    """A table row (``itertuples``) of :func:`verdict_columns` back as a Verdict (for its text)."""
    power = getattr(row, "seeds_for_power", None)
    return Verdict(
        row.verdict, int(row.n_pairs), row.scale, row.estimate, row.estimate_ci_lo,
        row.estimate_ci_hi, row.equivalence_lo, row.equivalence_hi, row.delta, verdicts.ALPHA,
        None if power is None or pd.isna(power) else int(power), "",
    )  # fmt: skip


def delta_text(v: Verdict) -> str:
    """δ with its scale: '±10% (log ratio)' or '±0.05 (difference)'; 'none' without one."""
    if not math.isfinite(v.margin):
        return "none declared"
    return f"{verdicts.margin_text(v)} ({v.scale})"


def effect_text(v: Verdict) -> str:
    """The effect with its interval: a ratio on the log scale, a difference otherwise."""
    if v.n < 2:
        return f"{v.n} pair(s): no interval"
    return v.effect()


# -- the claim --------------------------------------------------------------------------------


def norm_growth(traces: pd.DataFrame, column: str) -> pd.Series:
    """Per run: :func:`ogan.game.stats.norm_growth` of ``column`` over its traced steps."""
    out = {
        run_id: gstats.norm_growth(tr.sort_values("step")[column].to_numpy(dtype=float))
        for run_id, tr in traces.groupby("run_id", sort=False)
    }
    return pd.Series(out, dtype=float)


def claim_statistics(reported: pd.DataFrame, traces: pd.DataFrame) -> pd.DataFrame:
    """The reported runs with a column per claim statistic (NaN where a run lacks the data).

    A run's growth is its summary's (``grad_norm_{g,d}_growth``, from every step, whatever the
    stored trace keeps: a sweep's ``trace_every``), else, for runs stored before the summary
    had it, computed from its trace."""
    r = reported.copy()
    for p in ("g", "d"):
        column = f"grad_norm_{p}"
        stored = r[f"{column}_growth"].astype(float) if f"{column}_growth" in r else None
        lacking = r if stored is None else r[stored.isna()]
        have = column in traces.columns and len(traces) and len(lacking)
        growth = (
            norm_growth(traces[traces["run_id"].isin(lacking["run_id"])], column) if have else None
        )
        from_trace = r["run_id"].map(growth) if growth is not None else math.nan
        r[f"growth_{p}"] = from_trace if stored is None else stored.fillna(from_trace)
        median, p99 = f"{column}_median", f"{column}_p99"
        if median in r and p99 in r:
            with np.errstate(divide="ignore", invalid="ignore"):
                r[f"tail_{p}"] = r[p99].astype(float) / r[median].astype(float)
        else:
            r[f"tail_{p}"] = math.nan
        for kind in ("vanishing", "exploding"):
            src = f"{column}_{kind}_frac"
            r[f"{kind}_{p}"] = r[src].astype(float) if src in r else math.nan
    return r


def not_observed(base: pd.Series, variant: pd.Series, alpha: float = verdicts.ALPHA) -> str:
    """ "not observed: 0/12 vs 0/12 runs (fires in ≤ 12% of runs, 95% exact bound)" when the
    statistic is 0 in every run of both arms, else ""."""
    b, v = base.dropna(), variant.dropna()
    if not len(b) or not len(v) or (b != 0).any() or (v != 0).any():
        return ""
    n = len(b) + len(v)
    bound = 1 - (alpha) ** (1 / n)  # Clopper–Pearson one-sided upper bound at 0 of n
    return (
        f"not observed: 0/{len(b)} vs 0/{len(v)} runs (it fires in at most {bound:.0%} of runs, "
        f"exact one-sided {1 - alpha:.0%} bound)"
    )


def claim_table(a: Any) -> pd.DataFrame:
    """One row per paired comparison × claim statistic (``a``: the report's Analysis)."""
    data: SweepData = a.data
    stats_runs = claim_statistics(a.reported, data.traces)
    rows = []
    for p in data.pairs.itertuples(index=False):
        if p.kind == "baseline":  # the claim is the projection's (a declared pair is asked for)
            continue
        if p.kind == EQUAL_EVALS:  # whole-run statistics: the pair at equal steps has them
            continue
        r = stats_runs[stats_runs["workload"] == p.workload]
        base = r[r["optimizer"] == p.base].set_index("seed")
        proj = r[r["optimizer"] == p.projected].set_index("seed")
        items = [
            (stat.format(p=pl), what.format(P="G" if pl == "g" else "D"), log, margin)
            for stat, what, log, margin in CLAIM_STATISTICS
            for pl in ("g", "d")
        ]
        common = {
            "workload": p.workload,
            "kind": p.kind,
            "base": p.base,
            "projected": p.projected,
        }
        for stat, what, log, margin in items:
            b, v = base[stat].astype(float), proj[stat].astype(float)
            verdict = verdicts.paired_verdict(
                b, v, higher_is_better=False, log_scale=log, margin=margin
            )
            fraction = stat.startswith(("vanishing", "exploding"))  # of steps: within ±1
            row = _claim_row(
                common, stat, what, verdict, b, v, higher_is_better=False,
                span=1.0 if fraction else None,
            )  # fmt: skip
            if stat.startswith("growth") and math.isfinite(verdict.margin):
                row["delta_text"] = "±log 1.1 (difference of logs)"
            absent = not_observed(b, v)
            if absent:
                row.update(verdict=verdicts.NOT_OBSERVED, p_value=math.nan, reason=absent)
                row.update(p_equivalence=math.nan, effect=absent)
            rows.append(row)
        if data.workloads[p.workload].target is not None:
            rows += _target_rows(common, base, proj)
    return pd.DataFrame(rows)


def range_width(bounds: tuple[float | None, float | None]) -> float | None:
    """The width of a metric's range (``WorkloadInfo.bounds``); None where it is unbounded."""
    lo, hi = bounds
    return None if lo is None or hi is None else float(hi) - float(lo)


def secondary_table(a: Any) -> pd.DataFrame:
    """One row per paired comparison (every kind: the projection's and the baselines') ×
    secondary metric: each metric of the workload other than the primary that has a declared
    margin, compared on its final value by the paired rule (:func:`verdicts.paired_verdict`:
    the metric's direction, log scale and margin). Pairs with a non-finite run or value drop
    out, as in the confirmatory table. Its family is :func:`bench.report.families.secondary`."""
    data: SweepData = a.data
    rows = []
    for p in data.pairs.itertuples(index=False):
        info = data.workloads[p.workload]
        base, proj = a.sides(p)  # at a pair's budget where it has one (equal-evals)
        common = {"workload": p.workload, "kind": p.kind, "base": p.base, "projected": p.projected}
        for metric, (_, higher) in info.metrics.items():
            column, margin = f"final_{metric}", info.margin(metric)
            if metric == info.primary or margin is None or column not in base or column not in proj:
                continue
            b = base.loc[~base["nonfinite"], column].astype(float)
            v = proj.loc[~proj["nonfinite"], column].astype(float)
            verdict = verdicts.paired_verdict(
                b, v, higher_is_better=higher, log_scale=info.log_scale(metric), margin=margin
            )
            width = range_width(info.bounds(metric))
            rows.append(_claim_row(common, metric, f"final {metric}", verdict, b, v,
                                   higher_is_better=higher, span=width))  # fmt: skip
    return pd.DataFrame(rows)


def _claim_row(
    common: dict[str, Any],
    stat: str,
    what: str,
    verdict: Verdict,
    b: pd.Series,
    v: pd.Series,
    *,
    higher_is_better: bool,
    reached: str = "",
    span: float | None = None,
) -> dict[str, Any]:
    pairs = verdicts.paired_values(b, v)
    return {
        **common,
        "statistic": stat,
        "what": what,
        "higher_is_better": higher_is_better,
        "n_pairs": verdict.n,
        "base_mean": float(pairs["base"].mean()) if len(pairs) else math.nan,
        "projected_mean": float(pairs["variant"].mean()) if len(pairs) else math.nan,
        "reached": reached,
        **verdict_columns(verdict, FIXED, span),
        "effect": effect_text(_clipped(verdict, span)),
    }


def _target_rows(
    common: dict[str, Any], base: pd.DataFrame, proj: pd.DataFrame
) -> list[dict[str, Any]]:
    """Reaching the target (McNemar), gradient evaluations to it among pairs that both reached
    it (log ratio, ±10%), and wall-clock time to it among them (descriptive only)."""
    b_cost, v_cost = base[SPEED].astype(float), proj[SPEED].astype(float)
    seeds = b_cost.index.intersection(v_cost.index)
    b_hit, v_hit = np.isfinite(b_cost[seeds]), np.isfinite(v_cost[seeds])
    reached = ", ".join(
        f"{int(hit.sum())}/{len(seeds)} {side} [{lo:.2f}, {hi:.2f}]"
        for side, hit in (("base", b_hit), ("projected", v_hit))
        for lo, hi in [intervals.clopper_pearson(int(hit.sum()), len(seeds))]
    )
    both = seeds[(b_hit & v_hit).to_numpy()]
    reach = verdicts.reach_verdict(b_hit, v_hit)
    rows = [
        _claim_row(
            common,
            REACH,
            "reached the target (share of runs)",
            reach,
            b_hit.astype(float),
            v_hit.astype(float),
            higher_is_better=True,
            reached=reached,
        )
    ]
    rows[0]["effect"] = f"reached {reached}; {reach.reason.split('; ', 1)[1]}"
    if len(seeds) and not (b_hit.any() or v_hit.any()):
        bound = 1 - verdicts.ALPHA ** (1 / (2 * len(seeds)))
        absent = (
            f"not observed: no run reached the target, 0/{len(seeds)} vs 0/{len(seeds)} "
            f"(at most {bound:.0%} of runs reach it, exact one-sided 95% bound)"
        )
        rows[0].update(verdict=verdicts.NOT_OBSERVED, p_value=math.nan, effect=absent)
        rows[0]["reason"] = absent
    speed = verdicts.paired_verdict(
        b_cost[both], v_cost[both], higher_is_better=False, log_scale=True, margin=SPEED_MARGIN
    )
    rows.append(
        _claim_row(
            common,
            SPEED,
            "gradient evaluations to target, pairs where both reached it",
            speed,
            b_cost[both],
            v_cost[both],
            higher_is_better=False,
            reached=reached,
        )
    )
    b_t, v_t = base[WALL].astype(float)[both], proj[WALL].astype(float)[both]
    wall = verdicts.paired_verdict(b_t, v_t, higher_is_better=False, log_scale=True)
    row = _claim_row(
        common,
        WALL,
        "time to target (s), pairs where both reached it",
        wall,
        b_t,
        v_t,
        higher_is_better=False,
        reached=reached,
    )
    row.update(
        verdict=DESCRIPTIVE,
        p_value=math.nan,
        p_equivalence=math.nan,
        reason="wall-clock time on shared cores: described, not tested",
    )
    rows.append(row)
    return rows
