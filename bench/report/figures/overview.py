"""The figures across workloads: performance profiles and the divergence heatmap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import seaborn as sns

from bench.report import stats
from bench.report.figures.canvas import FigureFile, figure, figure_legend, log_axis, panel_note
from bench.report.tables import Analysis

PROFILE_OFFSET = 0.006
PROFILE_PANELS = (
    ("final", "final primary metric"),
    ("grad_evals_to_target", "gradient evaluations to target"),
    ("time_to_target", "wall time to target"),
)


def profiles(a: Analysis, out: Path, colors: dict) -> FigureFile:
    name = "fig-performance-profiles.png"
    with figure(out, name, 1, 3, 15, 4.4) as (fig, axes):
        for ax, (key, label) in zip(axes[0], PROFILE_PANELS):
            costs = a.profile_costs[key]
            ratios = stats.performance_ratios(costs)
            finite = ratios.to_numpy()[np.isfinite(ratios.to_numpy())]
            if finite.size == 0:
                panel_note(
                    ax, f"no optimizer has a finite {label}\non any workload (median over seeds)"
                )
                ax.set_title(label)
                continue
            hi = max(10.0, float(finite.max()) * 1.5)
            taus = np.geomspace(1.0, hi, 400)
            prof = stats.performance_profile(costs, taus)
            order = sorted(prof.columns)
            for i, opt in enumerate(order):
                # A small vertical offset keeps coinciding profiles (common with few workloads)
                # visible; it is far below the 1/len(workloads) resolution of the profile.
                offset = PROFILE_OFFSET * (i - (len(order) - 1) / 2)
                ax.step(taus, prof[opt] + offset, where="post", color=colors[opt], lw=2)
            log_axis(ax, "x", taus)
            ax.set_ylim(-0.05, 1.05)
            ax.set_xlabel("τ (ratio to the best optimizer on a workload)")
            ax.set_ylabel("fraction of workloads within τ")
            ax.set_title(label)
        figure_legend(fig, colors, a.summary["optimizer"])
        fig.suptitle(f"Performance profiles over {len(a.data.workloads)} workload(s)")
    caption = (
        "AlgoPerf-style performance profiles: for each optimizer, the fraction of workloads on "
        "which its cost is within a factor τ of the best optimizer's (higher and further left is "
        "better). Costs per workload at the selected lr on the report seeds: the mean final "
        "primary metric (inverted if higher is better; ∞ if any reported run is non-finite), and "
        "the median gradient evaluations and seconds to the workload's target (∞ when not "
        "reached). An optimizer not run on a workload is left out of that workload's "
        "denominator, not counted as ∞. "
        f"Lines are offset vertically by {PROFILE_OFFSET:g} per optimizer so that coinciding "
        "profiles stay visible."
    )
    return FigureFile(name, "Performance profiles", caption, None)


def divergence(a: Analysis, out: Path) -> FigureFile:
    runs = a.data.runs
    cells = runs.pivot_table(
        index="workload", columns="optimizer", values="diverged", aggfunc=["mean", "sum", "size"]
    )
    rate, count, total = cells["mean"], cells["sum"], cells["size"]
    annot = count.astype("Int64").astype(str) + "/" + total.astype("Int64").astype(str)
    annot = annot.where(total.notna(), "not run")
    rate = rate.rename(index=a.show, columns=a.show)
    name = "fig-divergence.png"
    # room for the workload names left of the cells (~0.09 in a character at this font size)
    names = 0.09 * max(len(str(w)) for w in rate.index)
    width = max(6.0, 1.1 * rate.shape[1] + 2.5 + names)
    height = max(3.8, 0.6 * rate.shape[0] + 2.2)  # lower, constrained layout gave up on 2 rows
    with figure(out, name, 1, 1, width, height, style="white") as (fig, axes):
        ax = axes[0, 0]
        sns.heatmap(
            rate.astype(float),
            annot=annot.to_numpy(),
            fmt="",
            vmin=0,
            vmax=1,
            cmap="Reds",
            cbar_kws={"label": "divergence rate"},
            linewidths=0.5,
            ax=ax,
        )
        ax.set_xlabel("optimizer")
        ax.set_ylabel("workload")
        ax.tick_params(axis="x", rotation=30)
        ax.tick_params(axis="y", rotation=0)
        fig.suptitle("Diverged runs (non-finite loss or gradient), all lrs and seeds")
    caption = (
        "Fraction of all runs of each workload × optimizer (every lr and seed) that stopped on a "
        "non-finite loss or gradient; cells read diverged/runs; blank: not run."
    )
    return FigureFile(name, "Divergence rate", caption, None)
