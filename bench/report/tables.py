"""The report's numbers: best lr per optimizer, summaries, paired comparisons, ranking.

Every table here is a numeric DataFrame (the CSV files next to the report); formatting for
HTML and Markdown happens in :mod:`bench.report.html`.

The honesty rule: the best learning rate of a (workload, optimizer) is chosen on the *selection*
seeds and every claim (means, CIs, paired tests, profiles, ranking) is made on the *report*
seeds, which are disjoint whenever the workload has two or more seeds (see
:func:`bench.report.stats.split_seeds`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.report import decisions, families, intervals, labels, stats, verdicts
from bench.report.data import SweepData
from bench.report.data import adam_reference as reference_of

SELECTION_RULE = (
    "For each workload and optimizer, the learning rate with the lowest fraction of non-finite "
    "runs (diverged, or a non-finite final primary metric: a non-finite run counts as worse "
    "than any finite value), then the best mean final primary metric, over the selection "
    "seeds; ties go to the smaller learning rate."
)


@dataclass(frozen=True)
class SeedSplit:
    selection: list[int]
    report: list[int]

    @property
    def shared(self) -> bool:
        """True when selection and report use the same seeds (a single-seed workload)."""
        return set(self.selection) == set(self.report)

    @property
    def selecting(self) -> list[int]:
        """The seeds the lr is chosen on: every seed when there is one lr (nothing to choose)."""
        return self.selection or self.report

    def describe(self) -> str:
        sel = ", ".join(map(str, self.selection))
        rep = ", ".join(map(str, self.report))
        if not self.selection:
            return (
                f"one learning rate per optimizer: nothing is selected, so every seed ({rep}) "
                "is reported"
            )
        if self.shared:
            return (
                f"one seed ({rep}): the learning rate is selected on the seed it is reported on, "
                "so the reported numbers are optimistic, and no confidence interval is possible"
            )
        return f"lr selected on seed(s) {sel}; everything reported on seed(s) {rep}"


@dataclass
class Analysis:
    """Everything computed from one :class:`SweepData`."""

    data: SweepData
    splits: dict[str, SeedSplit]
    best: pd.DataFrame  # workload, optimizer, lr, nonfinite_rate, score, n (selection seeds)
    reported: pd.DataFrame  # the runs at the best lr on the report seeds
    summary: pd.DataFrame
    paired: pd.DataFrame
    ranking: pd.DataFrame
    profile_costs: dict[str, pd.DataFrame]
    grad_norms: pd.DataFrame
    claims: pd.DataFrame  # the claim's verdicts (bench.report.decisions.claim_table)
    reference: dict[str, str | None]  # workload -> the Adam optimizer overheads are relative to
    secondary: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    """The secondary metrics' verdicts (bench.report.decisions.secondary_table)."""
    comparisons: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    """Every verdict of the report, one tidy row each (:func:`comparisons_table`): what the
    findings, the forest plots and ``bench verdicts`` read."""
    _at_budget: dict[tuple[str, str, str], tuple[pd.DataFrame, pd.DataFrame]] = dataclasses.field(
        default_factory=dict, repr=False
    )  # :meth:`sides` of the pairs at equal gradient evaluations, by (workload, base, variant)

    @functools.cached_property
    def paired_curves(self) -> pd.DataFrame:
        """Every paired comparison's seed-matched difference at each evaluation during
        training (:func:`paired_curves_table`); computed when first asked for."""
        return paired_curves_table(self)

    @functools.cached_property
    def names(self) -> dict[str, str]:
        """Every optimizer and workload name -> how the report shows it: an import path by its
        class, where that class name is unique within the report (:mod:`bench.report.labels`)."""
        return labels.short_names([*self.data.runs["optimizer"].unique(), *self.data.workloads])

    def by_seed(self, workload: str, optimizer: str) -> pd.DataFrame:
        """The reported runs of one optimizer on one workload, indexed by seed."""
        r = self.reported
        return r[(r["workload"] == workload) & (r["optimizer"] == optimizer)].set_index("seed")

    def sides(self, pair: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The reported runs of a pair's base and variant (a row of ``data.pairs``), by seed,
        as the pair compares them: as they are, or, for a pair at equal gradient evaluations,
        with every final value taken at the budget (:func:`at_equal_evals`, computed once per
        pair: the paired, secondary and budget tables all read it)."""
        base = self.by_seed(pair.workload, pair.base)
        variant = self.by_seed(pair.workload, pair.projected)
        if pair.kind != labels.EQUAL_EVALS:
            return base, variant
        key = (pair.workload, pair.base, pair.projected)
        if key not in self._at_budget:
            self._at_budget[key] = at_equal_evals(self.data, pair.workload, base, variant)
        return self._at_budget[key]

    def compared(self, pair: Any) -> tuple[pd.Series, pd.Series]:
        """The finite primary values by seed that a pair pairs (of :meth:`sides`): base,
        variant."""
        base, variant = self.sides(pair)
        return base.loc[~base["nonfinite"], "final"], variant.loc[~variant["nonfinite"], "final"]

    def show(self, name: str) -> str:
        """The display name of an optimizer or workload (itself when it has no import path)."""
        return self.names.get(name, name)

    @property
    def legend(self) -> str:
        """ "Lion = pytorch_optimizer:Lion; ..." for every name the report shortened, or ""."""
        return labels.path_legend(self.names)


def seed_splits(
    runs: pd.DataFrame, selection: dict[str, list[int]] | None = None
) -> dict[str, SeedSplit]:
    """Per workload; ``selection``: selection seeds fixed by workload (SweepData's).

    A workload on which every optimizer ran one learning rate needs no selection: all its seeds
    are report seeds (halving them would throw away seed pairs for nothing).
    """
    selection = selection or {}
    splits = {}
    for wl, group in runs.groupby("workload", sort=True):
        one_lr = wl not in selection and group.groupby("optimizer")["lr"].nunique().max() == 1
        fixed = [] if one_lr else selection.get(wl)
        splits[wl] = SeedSplit(*stats.split_seeds(group["seed"].unique(), fixed))
    return splits


def at_equal_evals(
    data: SweepData, workload: str, base: pd.DataFrame, variant: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two arms' runs (by seed, as :meth:`Analysis.by_seed`) at equal cost: the budget is the
    smaller of the two arms' whole-run gradient evaluations (each arm's largest ``grad_evals``),
    and every run's ``final``, ``final_<metric>`` and ``nonfinite`` are replaced by its values at
    its last evaluation within the budget. For an extragradient method (two evaluations a step)
    against a one-evaluation method run as long, that is the extragradient run at half its
    steps: with constant learning rates and counter streams, what a run that long ends on.

    A run that diverged by the step at which its arm has spent the budget is non-finite there,
    as a final one is; one that diverged later is not (the budget's run would not have). Each
    side gains ``budget_grad_evals`` (the budget) and ``budget_step`` (the step its values are
    from). The evaluation grid sets how close to the budget the values are: a sweep that
    declares such a pair should evaluate at the costlier arm's budget step (``eval_every``
    dividing it); the paired table reports the steps used.
    """
    spend = [float(side["grad_evals"].max()) for side in (base, variant)]
    budget = min(spend)
    history = data.history
    info = data.workloads[workload]
    metrics = [m for m in info.metrics if m in history]
    out = []
    for side in (base, variant):
        done = side["steps_completed"].astype(float)
        per_step = float((side["grad_evals"] / done.where(done > 0)).median())
        spent_at = budget / per_step  # the step at which this arm has spent the budget
        h = history[history["run_id"].isin(side["run_id"]) & (history["grad_evals"] <= budget)]
        last = h.sort_values("step").groupby("run_id").tail(1).set_index("run_id")
        at = last.reindex(side["run_id"].to_numpy())
        s = side.copy()
        for metric in metrics:
            s[f"final_{metric}"] = at[metric].to_numpy(float)
        s["final"] = at[info.primary].to_numpy(float)
        s["budget_grad_evals"] = budget
        s["budget_step"] = at["step"].to_numpy(float)
        gone = s["diverged_at"].notna() & (s["diverged_at"].astype(float) <= spent_at)
        s["nonfinite"] = gone.to_numpy() | ~np.isfinite(s["final"].to_numpy(float))
        out.append(s)
    return out[0], out[1]


def best_lrs(runs: pd.DataFrame, splits: dict[str, SeedSplit], data: SweepData) -> pd.DataFrame:
    parts = []
    for wl, split in splits.items():
        sel = runs[(runs["workload"] == wl) & runs["seed"].isin(split.selecting)]
        hib = data.workloads[wl].higher_is_better
        parts.append(stats.select_best(sel, ["workload", "optimizer"], "final", "nonfinite", hib))
    return pd.concat(parts, ignore_index=True)


def reported_runs(
    runs: pd.DataFrame, best: pd.DataFrame, splits: dict[str, SeedSplit]
) -> pd.DataFrame:
    """The runs every claim is made on: each optimizer at its selected lr, on the report seeds."""
    keys = ["workload", "optimizer", "lr"]
    chosen = runs.merge(best[keys], on=keys)
    keep = [s in splits[wl].report for wl, s in zip(chosen["workload"], chosen["seed"])]
    return chosen[keep].reset_index(drop=True)


def adam_reference(data: SweepData, workload: str) -> str | None:
    """The plain Adam optimizer of a workload (overheads are relative to it), if one ran."""
    names = data.runs.loc[data.runs["workload"] == workload, "optimizer"].unique()
    return reference_of({v: data.optimizer_config[(workload, v)] for v in names})


def population_sizes(runs: pd.DataFrame) -> pd.Series:
    """Each run's population size (1: trained alone, as every run stored before populations)."""
    if "population_size" not in runs:
        return pd.Series(1, index=runs.index)
    return runs["population_size"].fillna(1).astype(int)


def alone_time(runs: pd.DataFrame) -> pd.Series:
    """Each run's step time trained alone (``summary["time_per_step_alone"]``, recorded by
    ``bench run`` since populations are admitted by measurement; NaN for older runs)."""
    if "time_per_step_alone" not in runs:
        return pd.Series(math.nan, index=runs.index)
    return runs["time_per_step_alone"].astype(float)


def overhead(runs: pd.DataFrame, reference: pd.DataFrame) -> tuple[float, int | None]:
    """(time per step of ``runs`` / that of ``reference``, the population size).

    Equal terms for every optimizer: the step time of one run trained alone
    (:func:`alone_time`; size 1), whether the sweep trained it as a population or not, so
    an optimizer refused a population compares with Adam trained as one. Each side's is the
    fastest of its standalone timings (one per population): a sweep's workers share the cores,
    and sharing only ever slows a timing (timeit's rule; one contended timing of Adam's made
    every optimizer look 1.8× faster than it in the default report). Runs stored without
    it fall back to their share of a population's step, which depends on the size: both means
    are then taken over the runs of one population size both ran at, the size most of the
    runs used (ties: the smaller). (NaN, None) when they share no size.
    """
    alone, ref_alone = alone_time(runs).dropna(), alone_time(reference).dropna()
    if len(alone) and len(ref_alone):
        return float(alone.min() / ref_alone.min()), 1
    sizes, ref_sizes = population_sizes(runs), population_sizes(reference)
    counts = sizes[sizes.isin(set(ref_sizes))].value_counts()
    if counts.empty:
        return math.nan, None
    size = int(min(counts.index, key=lambda n: (-counts[n], n)))
    ratio = (runs.loc[sizes == size, "time_per_step"].mean()
             / reference.loc[ref_sizes == size, "time_per_step"].mean())  # fmt: skip
    return float(ratio), size


def _median_inf(values: pd.Series) -> float:
    """Median with a missing value (target not reached) counted as +inf."""
    x = values.astype(float).fillna(math.inf).to_numpy()
    return float(np.median(x)) if len(x) else math.nan


def summary_table(a: Analysis) -> pd.DataFrame:
    """One row per workload × optimizer: the reported numbers."""
    runs, rep = a.data.runs, a.reported
    rows = []
    for (wl, optimizer), chosen in a.best.groupby(["workload", "optimizer"], sort=True):
        lr = float(chosen["lr"].iloc[0])
        r = rep[(rep["workload"] == wl) & (rep["optimizer"] == optimizer)]
        every = runs[(runs["workload"] == wl) & (runs["optimizer"] == optimizer)]
        ok = r[~r["nonfinite"]]
        info = a.data.workloads[wl]
        ci = intervals.metric_ci(ok["final"], bounds=info.bounds(), log_scale=info.log_scale())
        tps = stats.mean_ci(every["time_per_step"])
        ref = a.reference.get(wl)
        ref_runs = runs[(runs["workload"] == wl) & (runs["optimizer"] == ref)] if ref else None
        ratio, size = overhead(every, ref_runs) if ref_runs is not None else (math.nan, None)
        rows.append(
            {
                "workload": wl,
                "optimizer": optimizer,
                "best_lr": lr,
                "lrs_tried": int(every["lr"].nunique()),
                "n_report": len(r),
                "final_mean": ci.center,  # the geometric mean for a log-scale metric
                "final_ci_lo": ci.lo,
                "final_ci_hi": ci.hi,
                "final_interval": ci.method,
                "n_finite": ci.n,
                "nonfinite_best": int(r["nonfinite"].sum()),
                "nonfinite_rate_best": float(r["nonfinite"].mean()) if len(r) else math.nan,
                "divergence_rate_all": float(every["diverged"].mean()),
                "n_all": len(every),
                "time_per_step_ms": 1e3 * tps.mean,
                "time_per_step_ci_ms": 1e3 * tps.half_width,
                "overhead_vs_adam": ratio,
                "overhead_population": size,  # both sides trained at this population size
                "grad_evals_per_step": float(
                    (every["grad_evals"] / every["steps_completed"]).median()
                ),
                "reached_target": int(r["steps_to_target"].notna().sum()),
                "grad_evals_to_target": _median_inf(r["grad_evals_to_target"]),
                "time_to_target_s": _median_inf(r["time_to_target"]),
                "removed_frac_g": float(r["removed_frac_g_mean"].mean()),
                "removed_frac_d": float(r["removed_frac_d_mean"].mean()),
            }
        )
    return pd.DataFrame(rows)


def paired_table(a: Analysis) -> pd.DataFrame:
    """Seed-matched base vs base+ortho and base vs surgery, each at its own selected lr."""
    designs = decisions.sequential_designs(a.data)
    rows = []
    for p in a.data.pairs.itertuples(index=False):
        info = a.data.workloads[p.workload]
        base, proj = a.sides(p)
        common = base.index.intersection(proj.index)
        nonfinite = int((base.loc[common, "nonfinite"] | proj.loc[common, "nonfinite"]).sum())
        base_ok, proj_ok = a.compared(p)
        cmp = stats.compare_paired(base_ok, proj_ok, info.higher_is_better)
        # the means are over the pairs the difference is over, so that they subtract to it
        paired = stats.paired_differences(base_ok, proj_ok).index
        lr = a.best.set_index(["workload", "optimizer"])["lr"]
        design = designs.get((p.workload, p.kind, p.base, p.projected), {})
        v, how = decisions.final_verdict(base_ok, proj_ok, a.data, p.workload, design)
        rows.append(
            {
                "workload": p.workload,
                "kind": p.kind,
                "base": p.base,
                "projected": p.projected,
                "metric": info.primary,
                "higher_is_better": info.higher_is_better,
                "lr_base": float(lr[(p.workload, p.base)]),
                "lr_projected": float(lr[(p.workload, p.projected)]),
                "seeds": ", ".join(map(str, sorted(common))),
                "n_pairs": cmp.n,
                "dropped_nonfinite": nonfinite,
                "base_mean": float(base_ok.loc[paired].mean()),
                "projected_mean": float(proj_ok.loc[paired].mean()),
                "mean_diff": cmp.mean_diff,
                "diff_ci_lo": cmp.ci_lo,
                "diff_ci_hi": cmp.ci_hi,
                "projected_better": cmp.b_better,
                "wilcoxon_stat": cmp.statistic,
                "wilcoxon_p": cmp.pvalue,
                "note": cmp.note,
                **decisions.verdict_columns(v, how, decisions.range_width(info.bounds())),
                **_budget_columns(base, proj),
            }
        )
    return pd.DataFrame(rows)


def _budget_columns(base: pd.DataFrame, variant: pd.DataFrame) -> dict[str, float]:
    """A pair at equal gradient evaluations: its budget and the (median) step each arm's values
    are from; NaN for a pair at equal steps."""
    if "budget_grad_evals" not in base:
        return {"budget_grad_evals": math.nan, "budget_step_base": math.nan,
                "budget_step_projected": math.nan}  # fmt: skip
    return {
        "budget_grad_evals": float(base["budget_grad_evals"].iloc[0]),
        "budget_step_base": float(base["budget_step"].median()),
        "budget_step_projected": float(variant["budget_step"].median()),
    }


BUDGET_COLUMNS = [
    "workload", "base", "projected", "optimizer", "seed", "run_id", "budget_grad_evals",
    "budget_step", "nonfinite", "final",
]  # fmt: skip


def budget_table(a: Analysis) -> pd.DataFrame:
    """Every run of a pair compared at equal gradient evaluations, with the values it was
    compared on (:func:`at_equal_evals`): the step it was read at, non-finite there or not, its
    primary and other metrics then. Written as ``budget.csv`` beside ``runs.csv`` (which holds
    the final values), so that such a verdict, too, can be redone from a committed report."""
    frames = []
    for p in a.paired.itertuples(index=False):
        if p.kind != labels.EQUAL_EVALS:
            continue
        for optimizer, side in zip((p.base, p.projected), a.sides(p)):
            metrics = [c for c in side.columns if c.startswith("final_")]
            keep = ["seed", "run_id", "budget_grad_evals", "budget_step", "nonfinite", "final"]
            rows = side.reset_index().sort_values("seed")[[*keep, *metrics]]
            pair = {"workload": p.workload, "base": p.base, "projected": p.projected}
            frames.append(rows.assign(**pair, optimizer=optimizer))
    if not frames:
        return pd.DataFrame(columns=BUDGET_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    return out[[*BUDGET_COLUMNS, *[c for c in out.columns if c not in BUDGET_COLUMNS]]]


PAIRED_CURVE_COLUMNS = [
    "workload", "kind", "base", "projected", "metric", "scale", "delta", "step", "n_pairs",
    "estimate", "estimate_ci_lo", "estimate_ci_hi",
]  # fmt: skip


def paired_curves_table(a: Analysis) -> pd.DataFrame:
    """The paired table's comparisons, each at every evaluation of its runs: the seed-matched
    difference of the primary metric (variant − base, or log(variant / base): the final
    verdict's own scale) over the pairs with both values finite (and > 0 on the log scale) at
    that step, with the fixed design's 95% t interval, cut to the metric's range as the paired
    table's is.

    Descriptive: it says *when* a difference appears or fades (a faster start against a better
    end); no verdict is drawn from it, and the pointwise intervals have no multiplicity control
    across steps. Its last step is the paired table's estimate, since a run's final metrics are
    its last evaluation's (:func:`ogan.game.stats.run_summary` takes them from the last row).
    """
    rows: list[dict] = []
    history = a.data.history
    for p in a.paired.itertuples(index=False):
        if p.kind == labels.EQUAL_EVALS:  # its arms are read at different steps: no curve
            continue
        info = a.data.workloads[p.workload]
        sides = []
        for optimizer in (p.base, p.projected):
            runs = a.by_seed(p.workload, optimizer)["run_id"]
            h = history[history["run_id"].isin(runs)]
            seed = h["run_id"].map(pd.Series(runs.index, index=runs.to_numpy()))
            sides.append(h.assign(seed=seed).pivot(index="step", columns="seed", values=p.metric))
        base, variant = sides
        span = decisions.range_width(info.bounds())
        for step in base.index.intersection(variant.index):
            pairs = verdicts.paired_values(base.loc[step], variant.loc[step])
            if p.scale == verdicts.LOG_RATIO:
                pairs = pairs[(pairs > 0).all(axis=1)]
            v = verdicts.decide(
                verdicts.paired_diffs(pairs, p.scale),
                higher_is_better=bool(p.higher_is_better),
                margin=p.delta,
                scale=p.scale,
            )
            cols = decisions.verdict_columns(v, decisions.FIXED, span)
            rows.append(
                {
                    "workload": p.workload,
                    "kind": p.kind,
                    "base": p.base,
                    "projected": p.projected,
                    "metric": p.metric,
                    "scale": p.scale,
                    "delta": p.delta,
                    "step": int(step),
                    "n_pairs": v.n,
                    "estimate": cols["estimate"],
                    "estimate_ci_lo": cols["estimate_ci_lo"],
                    "estimate_ci_hi": cols["estimate_ci_hi"],
                }
            )
    return pd.DataFrame(rows, columns=PAIRED_CURVE_COLUMNS)


def ranking_table(a: Analysis) -> pd.DataFrame:
    """Rank per workload (1 = best: fewest non-finite runs at the best lr, then best mean)."""
    s = a.summary
    ranks = {}
    for wl, g in s.groupby("workload", sort=True):
        hib = a.data.workloads[wl].higher_is_better
        ranks[wl] = pd.Series(
            stats.rank_scores(g["nonfinite_rate_best"], g["final_mean"], hib).to_numpy(),
            index=g["optimizer"],
        )
    table = pd.DataFrame(ranks)
    table.index.name = "optimizer"
    table.insert(0, "mean_rank", table.mean(axis=1))
    table.insert(1, "workloads", table.iloc[:, 1:].notna().sum(axis=1))
    return table.sort_values(["mean_rank", "workloads"], ascending=[True, False]).reset_index()


def _profile_costs(a: Analysis) -> dict[str, pd.DataFrame]:
    """Workload × optimizer costs (lower is better; inf = non-finite or target not reached)."""
    s = a.summary
    final = {}
    for row in s.itertuples(index=False):
        hib = a.data.workloads[row.workload].higher_is_better
        if row.nonfinite_best > 0 or not math.isfinite(row.final_mean):
            cost = math.inf
        elif hib:
            cost = 1 / row.final_mean if row.final_mean > 0 else math.inf
        else:
            cost = row.final_mean
        final[(row.workload, row.optimizer)] = cost

    def table(values: dict[tuple[str, str], float]) -> pd.DataFrame:
        return pd.Series(values).unstack()

    return {
        "final": table(final),
        "grad_evals_to_target": table(
            {(r.workload, r.optimizer): r.grad_evals_to_target for r in s.itertuples(index=False)}
        ),
        "time_to_target": table(
            {(r.workload, r.optimizer): r.time_to_target_s for r in s.itertuples(index=False)}
        ),
    }


def grad_norm_table(a: Analysis) -> pd.DataFrame:
    """Gradient-norm summaries (means over the reported runs of each run's statistic)."""
    cols = [
        f"grad_norm_{p}_{k}"
        for p in ("g", "d")
        for k in ("median", "p99", "max", "vanishing_frac", "exploding_frac")
    ]
    cols = [c for c in cols if c in a.reported]
    return a.reported.groupby(["workload", "optimizer"], sort=True)[cols].mean().reset_index()


COMPARISON_COLUMNS = [
    "workload", "family", "kind", "base", "projected", "statistic", "what", "higher_is_better",
    "n_pairs", "scale", "estimate", "estimate_ci_lo", "estimate_ci_hi", "delta", "delta_text",
    "p_value", "p_adjusted", "p_equivalence", "p_equivalence_adjusted", "verdict",
    "verdict_unadjusted", "design", "effect", "reason",
]  # fmt: skip


def comparisons_table(a: Analysis) -> pd.DataFrame:
    """Comparisons × statistics with their verdicts: the confirmatory family (each paired
    comparison on the primary metric) first, then the secondary one (the other metrics with a
    margin), then the exploratory one (the claim's)."""
    paired = a.paired.rename(columns={"metric": "statistic"})
    if len(paired):
        paired = paired.assign(
            what=[f"final {m}" for m in paired["statistic"]],
            effect=[decisions.effect_text(decisions.as_verdict(r)) for r in paired.itertuples()],
        )
    frames = [f for f in (paired, a.secondary, a.claims) if len(f)]
    if not frames:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    return out.reindex(columns=COMPARISON_COLUMNS)


def analyse(data: SweepData) -> Analysis:
    splits = seed_splits(data.runs, data.selection_seeds)
    best = best_lrs(data.runs, splits, data)
    a = Analysis(
        data=data,
        splits=splits,
        best=best,
        reported=reported_runs(data.runs, best, splits),
        summary=pd.DataFrame(),
        paired=pd.DataFrame(),
        ranking=pd.DataFrame(),
        profile_costs={},
        grad_norms=pd.DataFrame(),
        claims=pd.DataFrame(),
        reference={wl: adam_reference(data, wl) for wl in splits},
    )
    a.summary = summary_table(a)
    a.paired = families.confirmatory(paired_table(a))
    a.ranking = ranking_table(a)
    a.profile_costs = _profile_costs(a)
    a.grad_norms = grad_norm_table(a)
    a.secondary = families.secondary(decisions.secondary_table(a))
    a.claims = families.exploratory(decisions.claim_table(a))
    a.comparisons = comparisons_table(a)
    return a
