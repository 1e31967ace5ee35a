"""The metric figures of one workload: training curves, final values, learning-rate sensitivity
and cost. Each writes one PNG and returns its :class:`~bench.report.figures.canvas.FigureFile`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns

from bench.report import intervals
from bench.report.figures.canvas import (
    FigureFile,
    by_optimizer,
    clip_to_runs,
    clipped_interval,
    figure,
    figure_legend,
    log_axis,
    lr_axis,
    metric_label,
    panel_note,
    slug,
    spans_decades,
)
from bench.report.tables import Analysis

SEED_LINES_UP_TO = 3
"""With this many report seeds or fewer, curves also show each run as a thin line."""
MIN_SEEDS_FOR_BAND = 3
"""Curves get a 95% t-band from this many seeds on; at 2 the band is 12.7 standard errors wide
and hides every line, so the runs themselves are shown instead."""


def curves(a: Analysis, wl: str, out: Path, colors: dict) -> FigureFile:
    info = a.data.workloads[wl]
    rep = a.reported[a.reported["workload"] == wl]
    hist = a.data.history.merge(rep[["run_id"]], on="run_id")
    metrics = [info.primary, *[m for m in info.metrics if m != info.primary and m in hist]]
    name = f"fig-{slug(wl)}-curves.png"
    seeds = a.splits[wl].report
    band = len(seeds) >= MIN_SEEDS_FOR_BAND
    seed_lines = 1 < len(seeds) <= SEED_LINES_UP_TO
    panels = (("step", "step (generator updates)"), ("grad_evals", "gradient evaluations (G + D)"))
    with figure(out, name, len(metrics), 2, 12, 3.1 * len(metrics) + 0.6) as (fig, axes):
        for i, metric in enumerate(metrics):
            for j, (x, xlabel) in enumerate(panels):
                ax = axes[i, j]
                common = {"data": hist, "x": x, "y": metric, **by_optimizer(colors)}
                if seed_lines:
                    sns.lineplot(
                        **common,
                        units="run_id",
                        estimator=None,
                        lw=0.8,
                        alpha=0.4,
                        ax=ax,
                    )
                log = spans_decades(hist[metric])
                sns.lineplot(
                    **common,
                    lw=2.2,
                    estimator=intervals.estimator(info.log_scale(metric)),
                    errorbar=clipped_interval(
                        hist[metric], log, info.bounds(metric), info.log_scale(metric)
                    )
                    if band
                    else None,
                    err_kws={"alpha": 0.12},
                    ax=ax,
                )
                if log:
                    log_axis(ax, "y", hist[metric])
                clip_to_runs(ax, hist[metric], log)
                ax.set_xlabel(xlabel)
                ax.set_ylabel(metric_label(a, wl, metric))
        figure_legend(fig, colors, hist["optimizer"])
        fig.suptitle(f"{a.show(wl)}: metrics during training at each optimizer's selected lr")
    if band:
        how = "with a 95% t-interval band, clipped to the range of the individual runs"
    elif len(seeds) == 2:
        how = (
            "(no band: with two seeds a 95% t-interval is ±6.4 times the gap between the runs, "
            "so the two runs are drawn as thin lines instead)"
        )
    else:
        how = "(one seed: no interval)"
    if band and seed_lines:
        how += "; thin lines: the individual runs"
    caption = (
        f"Thick line: mean over report seeds {', '.join(map(str, seeds))} {how}. Left: per "
        "generator update; right: per gradient evaluation, since an extrapolation (Extra-*) "
        "update costs two. A diverged run stops at its divergence step, after which the mean "
        "is over the runs still going."
    )
    return FigureFile(name, f"{a.show(wl)}: training curves", caption, wl)


def _swarm_room(ok: pd.DataFrame, column: str = "final", dot: float = 8.0) -> tuple[float, float]:
    """(row height in inches, dot size in points) so that a swarm of ``column`` by optimizer
    shows every run: runs that tie (whole modes, evaluations to a target counted at evaluation
    steps) stack across the row, and a swarm that runs out of room drops dots (seaborn warns).
    Rows grow to 1.5 in, then the dots shrink below ``dot``."""
    ties = int(ok.groupby(["optimizer", column]).size().max()) if len(ok) else 1
    row = min(1.5, max(0.55, ties * dot / 72 * 1.3 / 0.8))  # a swarm may use ~80% of a row
    return row, min(dot, row * 0.8 * 72 / (1.3 * ties))


def final_values(a: Analysis, wl: str, out: Path, colors: dict) -> FigureFile:
    info = a.data.workloads[wl]
    rep = a.reported[a.reported["workload"] == wl].copy()
    order = sorted(rep["optimizer"].unique())
    ok = rep[~rep["nonfinite"]]
    name = f"fig-{slug(wl)}-final.png"
    row, size = _swarm_room(ok)
    with figure(out, name, 1, 1, 9, row * len(order) + 1.8) as (fig, axes):
        ax = axes[0, 0]
        if ok.empty:
            panel_note(ax, "every reported run is non-finite (diverged, or a non-finite metric)")
        else:
            # swarmplot, not stripplot: stripplot jitters with NumPy's global RNG, so two builds
            # from the same runs would differ.
            sns.swarmplot(
                data=ok,
                y="optimizer",
                x="final",
                order=order,
                size=size,
                zorder=4,
                ax=ax,
                **by_optimizer(colors),
            )
            sns.pointplot(
                data=ok,
                y="optimizer",
                x="final",
                order=order,
                color="0.2",
                estimator=intervals.estimator(info.log_scale()),
                errorbar=intervals.errorbar(info.bounds(), info.log_scale()),
                markers="|",
                markersize=22,
                linestyle="none",
                err_kws={"linewidth": 1.2},
                ax=ax,
                capsize=0.3,
            )
            if spans_decades(ok["final"]):
                log_axis(ax, "x", ok["final"])
            nonfinite = rep[rep["nonfinite"]].groupby("optimizer").size()
            labels = [
                f"{v}\n({nonfinite.get(v, 0)} of {(rep['optimizer'] == v).sum()} non-finite)"
                if nonfinite.get(v, 0)
                else v
                for v in order
            ]
            ax.set_yticks(range(len(order)), labels)
        ax.set_xlabel(f"final {metric_label(a, wl, info.primary)}")
        ax.set_ylabel("")
        one = " (one seed: no interval)" if len(a.splits[wl].report) == 1 else ""
        fig.suptitle(f"{a.show(wl)}: final {info.primary} at each optimizer's selected lr{one}")
    caption = (
        "One dot per report seed; grey: the mean (the geometric mean for a log-scale metric; "
        "tall tick) with its 95% interval in the metric's range (see How to read). Non-finite "
        "runs (diverged, or a non-finite metric) are left out of the mean and counted in the label."
    )
    return FigureFile(name, f"{a.show(wl)}: final {info.primary}", caption, wl)


def lr_sensitivity(a: Analysis, wl: str, out: Path, colors: dict) -> FigureFile:
    info = a.data.workloads[wl]
    runs = a.data.runs[a.data.runs["workload"] == wl]
    ok = runs[~runs["nonfinite"]]
    best = a.best[a.best["workload"] == wl]
    name = f"fig-{slug(wl)}-lr.png"
    with figure(out, name, 1, 2, 12, 4.2) as (fig, axes):
        ax = axes[0, 0]
        if ok.empty:
            panel_note(ax, "every run is non-finite")
        else:
            sns.lineplot(
                data=ok,
                x="lr",
                y="final",
                marker="o",
                estimator=intervals.estimator(info.log_scale()),
                errorbar=intervals.errorbar(info.bounds(), info.log_scale()),
                ax=ax,
                **by_optimizer(colors),
            )
            center = intervals.estimator(info.log_scale())
            means = ok.groupby(["optimizer", "lr"])["final"].agg(center)
            for row in best.itertuples(index=False):
                if (row.optimizer, row.lr) in means.index:
                    ax.scatter(
                        [row.lr],
                        [means[(row.optimizer, row.lr)]],
                        marker="*",
                        s=260,
                        color=colors[row.optimizer],
                        edgecolor="black",
                        zorder=5,
                    )
            if spans_decades(ok["final"]):
                log_axis(ax, "y", ok["final"])
        lr_axis(ax, runs["lr"])
        ax.set_xlabel("learning rate (G; D = lr × lr_ratio)")
        ax.set_ylabel(f"final {metric_label(a, wl, info.primary)}")
        ax.set_title("final metric (finite runs)")
        ax = axes[0, 1]
        if not runs["nonfinite"].any():
            panel_note(ax, f"no non-finite run at any lr\n({len(runs)} runs)")
        else:
            rate = runs.groupby(["optimizer", "lr"])["nonfinite"].mean().reset_index()
            sns.lineplot(
                data=rate,
                x="lr",
                y="nonfinite",
                marker="o",
                ax=ax,
                **by_optimizer(colors),
            )
            lr_axis(ax, runs["lr"])
            ax.set_ylim(-0.05, 1.05)
            ax.set_xlabel("learning rate")
            ax.set_ylabel("fraction of runs non-finite")
        ax.set_title("non-finite rate")
        figure_legend(fig, colors, runs["optimizer"])
        fig.suptitle(f"{a.show(wl)}: learning-rate sensitivity (all seeds)")
    caption = (
        "All seeds (selection and report). Left: mean final metric with 95% t-interval over the "
        "finite runs; ★ marks the selected lr (chosen on the selection seeds only). "
        "Right: fraction of runs that diverged or ended with a non-finite metric."
    )
    return FigureFile(name, f"{a.show(wl)}: learning-rate sensitivity", caption, wl)


def cost(a: Analysis, wl: str, out: Path, colors: dict) -> FigureFile:
    info = a.data.workloads[wl]
    runs = a.data.runs[a.data.runs["workload"] == wl].copy()
    rep = a.reported[a.reported["workload"] == wl].copy()
    order = sorted(runs["optimizer"].unique())
    ref = a.reference.get(wl)
    name = f"fig-{slug(wl)}-cost.png"
    targets = ("grad_evals_to_target", "time_to_target")
    room = [_swarm_room(rep[rep[c].notna()], c, dot=7.0) for c in targets]
    row, size = max(r for r, _ in room), min(s for _, s in room)
    height = row * len(order) + 1.6
    with figure(out, name, 2, 2, 12, 2 * height + 0.8) as (fig, axes):
        runs["ms"] = 1e3 * runs["time_per_step"]

        def bars(ax, x: str) -> None:
            """Per optimizer, the mean of ``x`` over all its runs with a 95% t-interval."""
            sns.barplot(
                data=runs,
                y="optimizer",
                x=x,
                order=order,
                errorbar=intervals.errorbar((0.0, None)),  # a cost is >= 0
                ax=ax,
                alpha=0.8,
                capsize=0.2,
                **by_optimizer(colors),
            )

        ax = axes[0, 0]
        bars(ax, "ms")
        ax.set_xlabel("wall time per step (ms, training only)")
        ax.set_ylabel("")
        ax.set_title("time per step (all runs)")
        ax = axes[0, 1]
        if ref is None:
            panel_note(ax, "no plain Adam optimizer in this sweep: no overhead reference")
        else:
            # the summary table's ratios (same population size on both sides), not a second
            # computation: the figure shows what the table says, n/a where it says n/a
            table = a.summary[a.summary["workload"] == wl].set_index("optimizer")
            ratio = table["overhead_vs_adam"].reindex(order).astype(float)
            ys = np.arange(len(order))
            known = np.isfinite(ratio.to_numpy())
            ax.barh(
                ys[known],
                ratio.to_numpy()[known],
                color=[colors[v] for v, k in zip(order, known) if k],
                alpha=0.8,
            )
            for y in ys[~known]:
                ax.text(0.02, y, "n/a", va="center", transform=ax.get_yaxis_transform())
            ax.set_yticks(ys, order)
            ax.set_ylim(len(order) - 0.5, -0.5)
            ax.axvline(1.0, color="black", lw=1, ls="--")
            ax.set_xlabel(f"standalone step time / {a.show(ref)}'s")
            ax.set_ylabel("")
            ax.set_title(f"overhead vs {a.show(ref)} (the summary table's)")
        for ax, col, label in (
            (axes[1, 0], "grad_evals_to_target", "gradient evaluations to target"),
            (axes[1, 1], "time_to_target", "wall time to target (s)"),
        ):
            reached = rep[rep[col].notna()]
            counts = rep.groupby("optimizer").size()
            hits = reached.groupby("optimizer").size()
            labels = [f"{v} ({hits.get(v, 0)}/{counts.get(v, 0)})" for v in order]
            if reached.empty:
                ok = rep[~rep["nonfinite"]]
                best = ""
                if len(ok):
                    top = ok.loc[
                        ok["final"].idxmax() if info.higher_is_better else ok["final"].idxmin()
                    ]
                    best = f"\nbest final {info.primary}: {top['final']:.4g} ({top['optimizer']})"
                panel_note(ax, f"no reported run reached the target\n{info.target_text()}{best}")
            else:
                sns.swarmplot(
                    data=reached,
                    y="optimizer",
                    x=col,
                    order=order,
                    size=size,
                    ax=ax,
                    **by_optimizer(colors),
                )
                ax.set_yticks(range(len(order)), labels)
                if spans_decades(reached[col]):
                    log_axis(ax, "x", reached[col])
                else:
                    ax.set_xlim(0, 1.1 * float(reached[col].max()))
                ax.set_xlabel(label)
                ax.set_ylabel("")
            ax.set_title(f"{label.split(' to ')[0]} to {info.target_text()} (reached/runs)")
        fig.suptitle(f"{a.show(wl)}: cost")
    caption = (
        "Top: wall time per training step (evaluation excluded) over all runs of each optimizer, "
        "mean with 95% t-interval (a population member's share of its step), and the summary "
        "table's overhead vs plain Adam (fastest standalone step times). Bottom: per "
        "report run at the selected lr, gradient evaluations and seconds until the primary "
        f"metric first reached {info.target_text()}; the label counts the runs that reached it. "
        "Times are as measured during the sweep: runs that shared the CPU with other parallel "
        "runs are slower, so small ratios are indicative only (python -m bench perf measures "
        "overheads under control)."
    )
    return FigureFile(name, f"{a.show(wl)}: cost", caption, wl)
