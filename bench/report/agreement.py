"""Do two samples of one protocol agree? (``python -m bench agree A B``)

A verdict is a claim about an optimizer, not about the machine it ran on. The same protocol and
seeds trained on another device (a GPU against the committed CPU study), with another stream of
batches (``streams="counter"``) or another population size, gives other trajectories: GAN
training is chaotic, so runs are not expected to match one by one, but each optimizer's
*distribution* of final metrics must be the same. This compares, per workload × optimizer × lr
present on both sides, every final metric of the runs (``final_*``):

* the difference of means (B − A) with its Welch 95% interval, and the difference a Welch test
  would detect with 80% power at this n (two-sided α = 0.05, unadjusted): "no difference
  detected" says little when that is large;
* a two-sided **permutation test** of the difference of means (``scipy.stats.permutation_test``,
  9,999 resamples, a fixed random state): under the null that both sides draw from one
  distribution its size is exact at any n, for discrete metrics full of ties (modes covered,
  0–8) and skewed ones (reverse KL) alike, which a t or rank test's is not at 10 seeds;
* the family: every test of the comparison, Holm-adjusted (family-wise error 5%): verdict
  *differ* where the adjusted p < 0.05, else *no difference detected* (agreement is not shown
  by a test that fails to reject; the detectable difference says how far it goes).

Runs whose metric is not finite (diverged) are left out of the test and counted on each side.
Each side is a report directory (its ``runs.csv``: a committed report's runs suffice) or a
results directory (its runs loaded afresh). tests/test_agreement.py simulates the family-wise
error under discrete and skewed nulls.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from bench.errors import BenchError
from bench.report.families import holm
from bench.report.verdicts import ALPHA

RESAMPLES = 9999
"""Permutations per test (Monte Carlo; p = (k + 1) / (RESAMPLES + 1), valid at any count)."""
POWER = 0.80
KEYS = ["workload", "optimizer", "lr"]
DIFFER, NO_DIFFERENCE, NOT_TESTED = "differ", "no difference detected", "not tested"


def runs_of(path: str | Path) -> pd.DataFrame:
    """One row per run: a report's ``runs.csv`` or a results directory's runs."""
    path = Path(path)
    if (path / "runs.csv").is_file():
        runs = pd.read_csv(path / "runs.csv")
    elif (path / "runs").is_dir() or (path / "sweep.json").is_file():
        from bench import store

        runs = store.load_runs(path)
    else:
        raise BenchError(
            f"{path} has no runs.csv and no runs/; give a report directory (…/report, which "
            "python -m bench report writes) or a sweep's results directory"
        )
    missing = set(KEYS) - set(runs.columns)
    if missing and len(runs):
        raise BenchError(f"{path}: no column(s) {', '.join(sorted(missing))}; is it a report's "
                         "runs.csv? (python -m bench report writes it)")  # fmt: skip
    return runs


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
    return np.mean(y, axis=axis) - np.mean(x, axis=axis)


def permutation_p(a: np.ndarray, b: np.ndarray, seed: int = 0, resamples: int = RESAMPLES) -> float:
    """Two-sided permutation p-value of mean(b) − mean(a) (NaN with fewer than 2 a side)."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if np.all(np.r_[a, b] == a[0]):  # one value throughout: nothing differs
        return 1.0
    res = sps.permutation_test(
        (a, b), _mean_difference, permutation_type="independent", vectorized=True,
        n_resamples=resamples, alternative="two-sided", random_state=np.random.default_rng(seed),
    )  # fmt: skip
    return float(res.pvalue)


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(lo, hi) of the Welch 95% interval of mean(b) − mean(a), and the difference detectable
    with 80% power (normal approximation)."""
    se = math.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b))
    diff = float(np.mean(b) - np.mean(a))
    if se == 0:
        return diff, diff, 0.0
    ci = sps.ttest_ind(b, a, equal_var=False).confidence_interval(1 - ALPHA)
    detectable = (sps.norm.ppf(1 - ALPHA / 2) + sps.norm.ppf(POWER)) * se
    return float(ci.low), float(ci.high), float(detectable)


def agreement(a: pd.DataFrame, b: pd.DataFrame, resamples: int = RESAMPLES) -> pd.DataFrame:
    """One row per workload × optimizer × lr × final metric on both sides (see the module)."""
    metrics = sorted(c for c in set(a.columns) & set(b.columns) if c.startswith("final_"))
    rows = []
    b_groups = dict(iter(b.groupby(KEYS, sort=True)))
    for key, ga in a.groupby(KEYS, sort=True):
        gb = b_groups.get(key)
        if gb is None:
            continue
        for metric in metrics:
            x, y = ga[metric].to_numpy(float), gb[metric].to_numpy(float)
            fx, fy = x[np.isfinite(x)], y[np.isfinite(y)]
            if np.isnan(x).all() and np.isnan(y).all():
                continue  # a metric this workload does not have
            row = dict(zip(KEYS, key), metric=metric.removeprefix("final_"), n_a=len(fx),
                       n_b=len(fy), nonfinite_a=len(x) - len(fx),
                       nonfinite_b=len(y) - len(fy))  # fmt: skip
            if len(fx) < 2 or len(fy) < 2:
                rows.append({**row, "p_value": math.nan})
                continue
            lo, hi, detectable = _welch(fx, fy)
            rows.append({
                **row, "mean_a": fx.mean(), "mean_b": fy.mean(), "sd_a": fx.std(ddof=1),
                "sd_b": fy.std(ddof=1), "difference": fy.mean() - fx.mean(), "ci_lo": lo,
                "ci_hi": hi, "detectable_80": detectable,
                "p_value": permutation_p(fx, fy, seed=len(rows), resamples=resamples),
            })  # fmt: skip
    columns = [*KEYS, "metric", "n_a", "n_b", "nonfinite_a", "nonfinite_b", "mean_a", "mean_b",
               "sd_a", "sd_b", "difference", "ci_lo", "ci_hi", "detectable_80",
               "p_value"]  # fmt: skip
    out = pd.DataFrame(rows).reindex(columns=columns)
    out["p_adjusted"] = holm(out["p_value"].to_numpy(float)) if len(out) else []
    out["verdict"] = np.where(
        out["p_adjusted"].isna(), NOT_TESTED,
        np.where(out["p_adjusted"] < ALPHA, DIFFER, NO_DIFFERENCE),
    )  # fmt: skip
    return out


def summary(table: pd.DataFrame, a: str, b: str) -> str:
    """The family, its correction and every row, as text."""
    if table.empty:
        return f"nothing to compare: no workload × optimizer × lr has runs in both {a} and {b}"
    tested = int((table["verdict"] != NOT_TESTED).sum())
    lines = [
        f"A = {a}, B = {b}: {len(table)} metric(s) of {table.groupby(KEYS).ngroups} "
        f"workload × optimizer × lr; family: the {tested} tested, Holm-adjusted, α = {ALPHA}; "
        f"test: two-sided permutation test of mean(B) − mean(A) ({RESAMPLES:,} resamples); "
        f"interval: Welch {1 - ALPHA:.0%}; detectable: at {POWER:.0%} power, unadjusted",
        f"{int((table['verdict'] == DIFFER).sum())} differ",
    ]
    for r in table.itertuples(index=False):
        nonfinite = (f", non-finite {r.nonfinite_a}/{r.nonfinite_b}"
                     if r.nonfinite_a or r.nonfinite_b else "")  # fmt: skip
        if r.verdict == NOT_TESTED:
            lines.append(f"  {r.workload} {r.optimizer} lr={r.lr:g} {r.metric}: not tested "
                         f"(n = {r.n_a}, {r.n_b}{nonfinite})")  # fmt: skip
            continue
        lines.append(
            f"  {r.workload} {r.optimizer} lr={r.lr:g} {r.metric}: {r.mean_a:.4g} (n={r.n_a}) vs "
            f"{r.mean_b:.4g} (n={r.n_b}){nonfinite}; B − A {r.difference:+.3g} "
            f"[{r.ci_lo:.3g}, {r.ci_hi:.3g}], detectable ±{r.detectable_80:.3g}; "
            f"p = {r.p_value:.3g}, Holm {r.p_adjusted:.3g}: {r.verdict}"
        )
    return "\n".join(lines)
