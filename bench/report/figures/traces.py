"""The figures drawn from the per-step traces of one workload: gradient norms and the fraction
of the squared gradient norm that the projection removed."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns

from bench.report.figures.canvas import (
    FigureFile,
    by_optimizer,
    figure,
    figure_legend,
    log_axis,
    panel_note,
    slug,
)
from bench.report.tables import Analysis

TRACE_BINS = 120
"""Per-step traces are reduced to this many bins per run before plotting: thousands of noisy
steps per seed would hide the trend."""


def _binned(traces: pd.DataFrame, columns: list[str], agg: str) -> pd.DataFrame:
    """Per run, the ``agg`` of each column over TRACE_BINS equal step bins."""
    width = max(1, math.ceil(traces["step"].max() / TRACE_BINS))
    t = traces[["run_id", "optimizer", "step", *columns]].copy()
    t["bin"] = (t["step"] - 1) // width
    binned = t.groupby(["run_id", "optimizer", "bin"], sort=False)[columns].agg(agg).reset_index()
    binned["step"] = (binned["bin"] + 0.5) * width
    return binned


def grad_norms(a: Analysis, wl: str, out: Path, colors: dict) -> FigureFile:
    rep = a.reported[a.reported["workload"] == wl]
    tr = a.data.traces.merge(rep[["run_id"]], on="run_id")
    name = f"fig-{slug(wl)}-grad-norms.png"
    with figure(out, name, 2, 2, 12, 7.6) as (fig, axes):
        binned = _binned(tr, ["grad_norm_g", "grad_norm_d"], "median") if len(tr) else tr
        for i, (player, label) in enumerate((("g", "generator"), ("d", "discriminator"))):
            col = f"grad_norm_{player}"
            ax = axes[i, 0]
            sns.lineplot(
                data=binned,
                x="step",
                y=col,
                estimator="median",
                errorbar=("pi", 100),
                ax=ax,
                **by_optimizer(colors),
            )
            log_axis(ax, "y", binned[col])
            ax.set_xlabel("step")
            ax.set_ylabel(f"‖∇{player.upper()}‖ (applied)")
            ax.set_title(f"{label}: gradient norm over training")
            ax = axes[i, 1]
            positive = tr[np.isfinite(tr[col]) & (tr[col] > 0)]
            if positive.empty:
                panel_note(ax, "no positive finite gradient norms")
            else:
                sns.ecdfplot(
                    data=positive,
                    x=col,
                    log_scale=True,
                    ax=ax,
                    **by_optimizer(colors),
                )
                log_axis(ax, "x", positive[col])
                ax.set_xlabel(f"‖∇{player.upper()}‖ per step (log scale)")
                ax.set_ylabel("fraction of steps ≤ x")
            ax.set_title(f"{label}: distribution over steps and seeds")
        figure_legend(fig, colors, tr["optimizer"])
        fig.suptitle(f"{a.show(wl)}: gradient norms at each optimizer's selected lr (report seeds)")
    caption = (
        "Global L2 norm of the gradient each optimizer applied (after any projection; ⊥Grad "
        f"rescales to the original norm). Left: per-run medians over {TRACE_BINS} step bins, "
        "line = median over seeds, band = range over seeds. Right: empirical CDF of every step's "
        "norm, pooled over report seeds."
    )
    return FigureFile(name, f"{a.show(wl)}: gradient norms", caption, wl)


def removed_fraction(a: Analysis, wl: str, out: Path, colors: dict) -> FigureFile | None:
    rep = a.reported[a.reported["workload"] == wl]
    projecting = rep.loc[
        rep["ortho"]
        | rep["surgery"]
        | (rep[["removed_frac_g_mean", "removed_frac_d_mean"]].fillna(0) > 0).any(axis=1),
        "run_id",
    ]
    if projecting.empty:
        return None
    tr = a.data.traces.merge(rep[rep["run_id"].isin(projecting)][["run_id"]], on="run_id")
    name = f"fig-{slug(wl)}-removed.png"
    with figure(out, name, 1, 2, 12, 4.0) as (fig, axes):
        binned = _binned(tr, ["removed_frac_g", "removed_frac_d"], "mean")
        for ax, (player, label) in zip(axes[0], (("g", "generator"), ("d", "discriminator"))):
            sns.lineplot(
                data=binned,
                x="step",
                y=f"removed_frac_{player}",
                errorbar=("pi", 100),
                ax=ax,
                **by_optimizer(colors),
            )
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("step")
            ax.set_ylabel("fraction of ‖g‖² removed")
            ax.set_title(label)
        figure_legend(fig, colors, tr["optimizer"])
        fig.suptitle(
            f"{a.show(wl)}: fraction of the squared gradient norm removed by the projection"
        )
    caption = (
        "For optimizers with ⊥Grad (the component along the weights) or D gradient surgery "
        "(conflicting components of D's real- and fake-data gradients): 1 − ‖g′‖²/‖g‖², mean over "
        f"{TRACE_BINS} step bins per run; line = mean over report seeds, band = range."
    )
    return FigureFile(name, f"{a.show(wl)}: fraction removed by the projection", caption, wl)
