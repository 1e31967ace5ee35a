"""One paired estimate over independent samples of one protocol (``python -m bench pool A B ...``).

When a comparison stays *undecided*, the next step is often another sample: the same protocol
and arms on fresh seeds. That sample is run *because* the first was undecided, so pooling the two
into one test and calling a verdict would be optional stopping, whose error rate is not α (a
design that adds seeds until decided must say so before its first look: ``bench run
--until-decided``, :mod:`bench.report.spending`). What pooling does give, declared before the
new sample is run, is an **estimate**: the paired difference over every pair of every sample,
with its interval. This computes it, per workload and arm against a base arm (``adam``), on one
final metric (the workload's target metric unless ``--metric`` names another):

* per sample: the pairs (seeds where both arms' final metric is finite), the mean paired
  difference (arm − base) and its t interval, as the report's confirmatory row has it;
* pooled: the same over the union of the pairs, with the paired t-test's p and the Wilcoxon
  signed-rank test's (both descriptive: no margin, no family, no verdict);
* heterogeneity: do the samples' paired differences come from one distribution? A permutation
  test of the one-way F statistic across samples (``scipy.stats.permutation_test``, the sample
  labels permuted): exact at any n, for discrete metrics full of ties and skewed ones alike,
  which the F and Kruskal-Wallis tests' sizes are not at these n. A small p says the samples
  differ (another machine, another stream of batches, a changed protocol) and the pooled mean
  describes none of them.

What makes samples poolable is checked where the runs say it: the same workload, arm
(``optimizer`` label), learning rate and number of steps in every sample; no seed in two samples
(a seed run twice is one observation counted twice). The networks and batch size are not in a
report's ``runs.csv``: that the samples share them is the user's claim, and ``bench agree`` tests
that their distributions agree. tests/test_pooling.py holds the numbers to scipy's and simulates
the heterogeneity test's size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats as sps

from bench.errors import BenchError
from bench.report.stats import mean_ci, paired_differences, signed_rank
from bench.report.verdicts import ALPHA

RESAMPLES = 9999
"""Permutations of the heterogeneity test (Monte Carlo; p = (k + 1) / (RESAMPLES + 1))."""
POOLED = "pooled"


def _check_one_lr(runs: pd.DataFrame, name: str) -> None:
    """Every workload × arm of this sample has one learning rate."""
    lrs = runs.groupby(["workload", "optimizer"])["lr"].nunique()
    several = lrs[lrs > 1]
    if len(several):
        (workload, arm), count = next(iter(several.items()))
        raise BenchError(
            f"{name}: {arm} on {workload} has runs at {count} learning rates; pool "
            "compares one lr per arm (give a sweep's report with one lr per arm)"
        )


def _protocol(runs: pd.DataFrame) -> dict[tuple[str, str], tuple[float, int | None]]:
    """(workload, arm) -> (lr, steps): what every sample must share (steps None where every run
    of the arm diverged: how far it would have gone is not in the runs)."""
    out: dict[tuple[str, str], tuple[float, int | None]] = {}
    for (workload, arm), g in runs.groupby(["workload", "optimizer"]):
        finished = g[~g["diverged"].astype(bool)] if "diverged" in g else g
        steps = int(finished["steps_completed"].max()) if len(finished) else None
        out[(workload, arm)] = (float(g["lr"].iloc[0]), steps)
    return out


def _check_poolable(samples: Mapping[str, pd.DataFrame]) -> None:
    names = list(samples)
    first = _protocol(samples[names[0]])
    for name in names[1:]:
        other = _protocol(samples[name])
        for key in sorted(first.keys() & other.keys()):
            (lr_a, steps_a), (lr_b, steps_b) = first[key], other[key]
            if lr_a != lr_b or (None not in (steps_a, steps_b) and steps_a != steps_b):
                raise BenchError(
                    f"{names[0]} and {name} are not one protocol: {key[1]} on {key[0]} ran at "
                    f"lr {lr_a:g} for {steps_a} steps in one and lr {lr_b:g} for {steps_b} in "
                    "the other; pool samples of one sweep's protocol on other seeds"
                )
    seen: dict[int, str] = {}
    for name in names:
        for seed in sorted(set(samples[name]["seed"].astype(int))):
            if seed in seen:
                raise BenchError(
                    f"seed {seed} is in both {seen[seed]} and {name}: pooled samples must be "
                    "independent (disjoint seeds); drop one of them"
                )
            seen[seed] = name


def heterogeneity_p(groups: list[np.ndarray], seed: int = 0, resamples: int = RESAMPLES) -> float:
    """Permutation p of the one-way F statistic across ``groups`` (NaN with fewer than two
    groups of two or more values; 1 when every value is the same)."""
    groups = [g for g in groups if len(g) >= 2]
    if len(groups) < 2:
        return math.nan
    values = np.concatenate(groups)
    if np.all(values == values[0]):
        return 1.0

    def f_statistic(*xs: np.ndarray, axis: int) -> np.ndarray:
        # all groups constant and equal inside a permutation gives 0/0: no evidence either way
        with np.errstate(divide="ignore", invalid="ignore"):
            f = sps.f_oneway(*xs, axis=axis).statistic
        return np.nan_to_num(f, nan=0.0)

    res = sps.permutation_test(
        groups, f_statistic, permutation_type="independent", vectorized=True,
        n_resamples=resamples, alternative="greater", random_state=np.random.default_rng(seed),
    )  # fmt: skip
    return float(res.pvalue)


def _paired(runs: pd.DataFrame, workload: str, base: str, arm: str, metric: str) -> pd.Series:
    """arm − base per seed, where both are finite."""
    w = runs[runs["workload"] == workload]
    a, b = (w[w["optimizer"] == name].set_index("seed")[metric] for name in (base, arm))
    return paired_differences(a, b)


def _metric(runs: pd.DataFrame, workload: str, metric: str | None) -> str:
    if metric is not None:
        column = f"final_{metric.removeprefix('final_')}"
    else:
        targets = runs.loc[runs["workload"] == workload, "target_metric"].dropna().unique()
        if len(targets) != 1:
            raise BenchError(f"{workload}: no single target metric in the runs; name one with "
                             "--metric (e.g. --metric modes)")  # fmt: skip
        column = f"final_{targets[0]}"
    if column not in runs.columns:
        finals = sorted(c.removeprefix("final_") for c in runs.columns if c.startswith("final_"))
        raise BenchError(f"no metric {column.removeprefix('final_')!r} in the runs; "
                         f"choose from {', '.join(finals)}")  # fmt: skip
    return column


def pool(
    samples: Mapping[str, pd.DataFrame],
    base: str = "adam",
    metric: str | None = None,
    resamples: int = RESAMPLES,
) -> pd.DataFrame:
    """One row per workload × arm × sample, then the pooled row (``sample == "pooled"``):
    pairs, mean paired difference arm − base, its t interval, the pairs' s.d.; on the pooled
    row the paired t and Wilcoxon p and the heterogeneity p across samples."""
    if len(samples) < 2:
        raise BenchError("pool needs at least two samples (report or results directories)")
    for name, runs in samples.items():
        _check_one_lr(runs, name)
    _check_poolable(samples)
    names = list(samples)
    arms_everywhere = set.intersection(*(set(map(tuple, r[["workload", "optimizer"]].to_numpy()))
                                         for r in samples.values()))  # fmt: skip
    workloads = sorted({w for w, a in arms_everywhere if a == base})
    if not workloads:
        raise BenchError(f"no workload has the base arm {base!r} in every sample; name the base "
                         "with --base (an optimizer label of the report, e.g. adam)")  # fmt: skip
    rows = []
    for workload in workloads:
        column = _metric(samples[names[0]], workload, metric)
        for arm in sorted(a for w, a in arms_everywhere if w == workload and a != base):
            diffs = [_paired(samples[n], workload, base, arm, column) for n in names]
            for name, d in zip(names, diffs):
                rows.append(_row(workload, arm, base, column, name, d.to_numpy()))
            pooled = np.concatenate([d.to_numpy() for d in diffs])
            row = _row(workload, arm, base, column, POOLED, pooled)
            if len(pooled) >= 2 and np.std(pooled) > 0:
                row["p_t"] = float(sps.ttest_1samp(pooled, 0.0).pvalue)
            elif len(pooled) >= 2 and not pooled.any():  # every pair tied: nothing differs
                row["p_t"] = 1.0
            row["p_wilcoxon"] = signed_rank(pooled)[1]
            row["p_heterogeneity"] = heterogeneity_p([d.to_numpy() for d in diffs],
                                                     resamples=resamples)  # fmt: skip
            rows.append(row)
    columns = ["workload", "arm", "base", "metric", "sample", "n_pairs", "mean_diff", "ci_lo",
               "ci_hi", "sd", "p_t", "p_wilcoxon", "p_heterogeneity"]  # fmt: skip
    return pd.DataFrame(rows).reindex(columns=columns)


def _row(workload: str, arm: str, base: str, column: str, sample: str, d: np.ndarray) -> dict:
    ci = mean_ci(d, 1 - ALPHA) if len(d) else None
    return {
        "workload": workload, "arm": arm, "base": base, "metric": column.removeprefix("final_"),
        "sample": sample, "n_pairs": len(d),
        "mean_diff": ci.mean if ci else math.nan, "ci_lo": ci.lo if ci else math.nan,
        "ci_hi": ci.hi if ci else math.nan,
        "sd": float(np.std(d, ddof=1)) if len(d) >= 2 else math.nan,
    }  # fmt: skip


def summary(table: pd.DataFrame) -> str:
    """What was pooled and how, then each arm's samples and its pooled estimate, as text."""
    lines = [
        f"pooled paired estimates (arm − base over the union of the samples' pairs); interval: "
        f"t {1 - ALPHA:.0%}; p: paired t and Wilcoxon signed-rank, unadjusted; heterogeneity: "
        f"permutation test of the F statistic across samples ({RESAMPLES:,} resamples). "
        "An estimate, not a verdict: no margin, no family, and samples added after a look are "
        "not a declared design."
    ]
    for (workload, arm, base, metric), g in table.groupby(["workload", "arm", "base", "metric"],
                                                          sort=False):  # fmt: skip
        lines.append(f"{workload}: {arm} − {base}, final {metric}")
        for r in g.itertuples(index=False):
            if r.n_pairs == 0:
                lines.append(f"  {r.sample}: no pairs")
                continue
            text = (f"  {r.sample}: {r.mean_diff:+.3g} [{r.ci_lo:.3g}, {r.ci_hi:.3g}] over "
                    f"{r.n_pairs} pairs (s.d. {r.sd:.3g})")  # fmt: skip
            if r.sample == POOLED:
                text += (f"; p = {r.p_t:.3g} (t), {r.p_wilcoxon:.3g} (Wilcoxon); "
                         f"heterogeneity p = {r.p_heterogeneity:.3g}")  # fmt: skip
            lines.append(text)
    return "\n".join(lines)
