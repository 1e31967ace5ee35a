"""The report's figures: seaborn on matplotlib's Agg canvas, deterministic file names.

Figures are built on ``matplotlib.figure.Figure`` (not pyplot), so rendering never touches a
GUI backend or pyplot's global figure list, and the styles are applied in context managers, so
building a report leaves matplotlib's global settings as it found them.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator
from PIL import Image

from bench.report import stats
from bench.report.tables import Analysis

DPI = 110
TRACE_BINS = 120
"""Per-step traces are reduced to this many bins per run before plotting: thousands of noisy
steps per seed would hide the trend."""
SEED_LINES_UP_TO = 3
"""With this many report seeds or fewer, curves also show each run as a thin line."""
MIN_SEEDS_FOR_BAND = 3
"""Curves get a 95% t-band from this many seeds on; at 2 the band is 12.7 standard errors wide
and hides every line, so the runs themselves are shown instead."""
DECADES_FOR_LOG = 2.0
"""A positive quantity spanning more than this many decades is drawn on a log axis."""


@dataclass(frozen=True)
class FigureFile:
    """A rendered figure: file name (relative to the report directory), title, caption."""

    name: str
    title: str
    caption: str
    workload: str | None  # None: a figure across workloads


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def palette(variants: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One colour per variant, the same in every figure."""
    names = sorted(set(variants))
    colors = sns.color_palette("tab10" if len(names) <= 10 else "husl", len(names))
    return dict(zip(names, colors))


def _spans_decades(values: pd.Series | np.ndarray) -> bool:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0 or (x <= 0).any():
        return False
    return bool(np.log10(x.max() / x.min()) > DECADES_FOR_LOG)


def _log_axis(ax, which: str, values: pd.Series | np.ndarray) -> None:
    """Log scale; under two decades, plain numbers on major and 2/5 minor ticks, else 10^k."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x) & (x > 0)]
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    if len(x) and np.log10(x.max() / x.min()) < 2:
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        axis.set_major_formatter(plain)
        axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        axis.set_minor_formatter(plain)
    else:
        axis.set_minor_formatter(NullFormatter())


def _lr_axis(ax, lrs: pd.Series) -> None:
    """Log x axis ticked at exactly the learning rates that were tried."""
    ax.set_xscale("log")
    tried = sorted(lrs.unique())
    ax.set_xticks(tried, [f"{lr:g}" for lr in tried])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.tick_params(axis="x", rotation=30 if len(tried) > 5 else 0)


def _run_range(values: pd.Series, log: bool) -> tuple[float, float]:
    x = values.astype(float).to_numpy()
    x = x[np.isfinite(x) & ((x > 0) if log else True)]
    return (float(x.min()), float(x.max())) if len(x) else (math.nan, math.nan)


def _clipped_t_interval(values: pd.Series, log: bool) -> Callable[[np.ndarray], tuple]:
    """The 95% t-interval cut to the range of the panel's runs.

    A t-band over few seeds is wide (t = 4.3 at 3 seeds) and may cross zero, which a log axis
    cannot draw; the figure caption says that bands are clipped.
    """
    lo_all, hi_all = _run_range(values, log)

    def interval(v: np.ndarray) -> tuple[float, float]:
        lo, hi = stats.t_interval(v)
        return max(lo, lo_all), min(hi, hi_all)

    return interval


def _clip_to_runs(ax, values: pd.Series, log: bool) -> None:
    """Y-limits from the individual runs, so that wide bands do not squeeze the mean lines."""
    lo, hi = _run_range(values, log)
    if math.isnan(lo) or lo == hi:
        return
    if log:
        pad = 10 ** (0.05 * np.log10(hi / lo))
        ax.set_ylim(lo / pad, hi * pad)
    else:
        pad = 0.05 * (hi - lo)
        ax.set_ylim(lo - pad, hi + pad)


def _new_figure(nrows: int, ncols: int, width: float, height: float) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _save(fig: Figure, out: Path, name: str) -> None:
    """Write a 256-colour PNG without metadata.

    The example report is committed: palette PNGs are about 3× smaller than matplotlib's RGBA
    ones and look the same for line plots, and without "Software"/date metadata a rebuild from
    the same runs gives identical bytes.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    image = Image.open(buffer).convert("RGB")
    image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    image.save(out / name, format="png", optimize=True)


def _legend(
    fig: Figure, colors: dict[str, tuple], present: Sequence[str], title: str = "optimizer"
) -> None:
    handles = [Line2D([], [], color=colors[v], lw=2.5, label=v) for v in sorted(set(present))]
    fig.legend(
        handles=handles,
        title=title,
        loc="outside right upper",
        frameon=False,
    )


def _note(ax, text: str) -> None:
    ax.text(
        0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True, color="0.35"
    )
    ax.set_xticks([])
    ax.set_yticks([])


@contextmanager
def _style() -> Iterator[None]:
    """Seaborn's whitegrid style and a readable font size, for the duration of one figure."""
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.95):
        yield


def _metric_label(a: Analysis, wl: str, metric: str) -> str:
    info = a.data.workloads[wl]
    hib = info.metrics.get(metric, ("", False))[1]
    return f"{metric} ({'higher' if hib else 'lower'} is better)"


# -- per workload ------------------------------------------------------------------------------


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
    with _style():
        fig, axes = _new_figure(len(metrics), 2, 12, 3.1 * len(metrics) + 0.6)
        for i, metric in enumerate(metrics):
            for j, (x, xlabel) in enumerate(panels):
                ax = axes[i, j]
                common = {"data": hist, "x": x, "y": metric, "hue": "variant", "palette": colors}
                if seed_lines:
                    sns.lineplot(
                        **common,
                        units="run_id",
                        estimator=None,
                        lw=0.8,
                        alpha=0.4,
                        ax=ax,
                        legend=False,
                    )
                log = _spans_decades(hist[metric])
                sns.lineplot(
                    **common,
                    lw=2.2,
                    errorbar=_clipped_t_interval(hist[metric], log) if band else None,
                    err_kws={"alpha": 0.12},
                    ax=ax,
                    legend=False,
                )
                if log:
                    _log_axis(ax, "y", hist[metric])
                _clip_to_runs(ax, hist[metric], log)
                ax.set_xlabel(xlabel)
                ax.set_ylabel(_metric_label(a, wl, metric))
        _legend(fig, colors, hist["variant"])
        fig.suptitle(f"{wl}: metrics during training at each optimizer's selected lr")
        _save(fig, out, name)
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
    return FigureFile(name, f"{wl}: training curves", caption, wl)


def final_values(a: Analysis, wl: str, out: Path, colors: dict) -> FigureFile:
    info = a.data.workloads[wl]
    rep = a.reported[a.reported["workload"] == wl].copy()
    order = sorted(rep["variant"].unique())
    ok = rep[~rep["failed"]]
    name = f"fig-{slug(wl)}-final.png"
    with _style():
        fig, axes = _new_figure(1, 1, 9, 0.55 * len(order) + 1.8)
        ax = axes[0, 0]
        if ok.empty:
            _note(ax, "every reported run failed (diverged or non-finite metric)")
        else:
            # swarmplot, not stripplot: stripplot jitters with NumPy's global RNG, so two builds
            # from the same runs would differ.
            sns.swarmplot(
                data=ok,
                y="variant",
                x="final",
                hue="variant",
                order=order,
                palette=colors,
                size=8,
                zorder=4,
                ax=ax,
                legend=False,
            )
            sns.pointplot(
                data=ok,
                y="variant",
                x="final",
                order=order,
                color="0.2",
                errorbar=stats.t_interval,
                markers="|",
                markersize=22,
                linestyle="none",
                err_kws={"linewidth": 1.2},
                ax=ax,
                capsize=0.3,
            )
            if _spans_decades(ok["final"]):
                _log_axis(ax, "x", ok["final"])
            failed = rep[rep["failed"]].groupby("variant").size()
            labels = [
                f"{v}\n({failed.get(v, 0)} of {(rep['variant'] == v).sum()} failed)"
                if failed.get(v, 0)
                else v
                for v in order
            ]
            ax.set_yticks(range(len(order)), labels)
        ax.set_xlabel(f"final {_metric_label(a, wl, info.primary)}")
        ax.set_ylabel("")
        one = " (one seed: no interval)" if len(a.splits[wl].report) == 1 else ""
        fig.suptitle(f"{wl}: final {info.primary} at each optimizer's selected lr{one}")
        _save(fig, out, name)
    caption = (
        "One dot per report seed; grey: the mean (tall tick) with its 95% t-interval. Failed runs "
        "(diverged or non-finite metric) are left out of the mean and counted in the label."
    )
    return FigureFile(name, f"{wl}: final {info.primary}", caption, wl)


def lr_sensitivity(a: Analysis, wl: str, out: Path, colors: dict) -> FigureFile:
    info = a.data.workloads[wl]
    runs = a.data.runs[a.data.runs["workload"] == wl]
    ok = runs[~runs["failed"]]
    best = a.best[a.best["workload"] == wl]
    name = f"fig-{slug(wl)}-lr.png"
    with _style():
        fig, axes = _new_figure(1, 2, 12, 4.2)
        ax = axes[0, 0]
        if ok.empty:
            _note(ax, "every run failed")
        else:
            sns.lineplot(
                data=ok,
                x="lr",
                y="final",
                hue="variant",
                palette=colors,
                marker="o",
                errorbar=stats.t_interval,
                ax=ax,
                legend=False,
            )
            means = ok.groupby(["variant", "lr"])["final"].mean()
            for row in best.itertuples(index=False):
                if (row.variant, row.lr) in means.index:
                    ax.scatter(
                        [row.lr],
                        [means[(row.variant, row.lr)]],
                        marker="*",
                        s=260,
                        color=colors[row.variant],
                        edgecolor="black",
                        zorder=5,
                    )
            if _spans_decades(ok["final"]):
                _log_axis(ax, "y", ok["final"])
        _lr_axis(ax, runs["lr"])
        ax.set_xlabel("learning rate (G; D = lr × lr_ratio)")
        ax.set_ylabel(f"final {_metric_label(a, wl, info.primary)}")
        ax.set_title("final metric (runs that did not fail)")
        ax = axes[0, 1]
        if not runs["failed"].any():
            _note(ax, f"no run failed at any lr\n({len(runs)} runs)")
        else:
            rate = runs.groupby(["variant", "lr"])["failed"].mean().reset_index()
            sns.lineplot(
                data=rate,
                x="lr",
                y="failed",
                hue="variant",
                palette=colors,
                marker="o",
                ax=ax,
                legend=False,
            )
            _lr_axis(ax, runs["lr"])
            ax.set_ylim(-0.05, 1.05)
            ax.set_xlabel("learning rate")
            ax.set_ylabel("fraction of runs failed")
        ax.set_title("divergence rate")
        _legend(fig, colors, runs["variant"])
        fig.suptitle(f"{wl}: learning-rate sensitivity (all seeds)")
        _save(fig, out, name)
    caption = (
        "All seeds (selection and report). Left: mean final metric with 95% t-interval over the "
        "runs that did not fail; ★ marks the selected lr (chosen on the selection seeds only). "
        "Right: fraction of runs that diverged or ended with a non-finite metric."
    )
    return FigureFile(name, f"{wl}: learning-rate sensitivity", caption, wl)


def cost(a: Analysis, wl: str, out: Path, colors: dict) -> FigureFile:
    info = a.data.workloads[wl]
    runs = a.data.runs[a.data.runs["workload"] == wl].copy()
    rep = a.reported[a.reported["workload"] == wl].copy()
    order = sorted(runs["variant"].unique())
    ref = a.reference.get(wl)
    name = f"fig-{slug(wl)}-cost.png"
    height = 0.45 * len(order) + 1.6
    with _style():
        fig, axes = _new_figure(2, 2, 12, 2 * height + 0.8)
        runs["ms"] = 1e3 * runs["time_per_step"]
        ax = axes[0, 0]
        sns.barplot(
            data=runs,
            y="variant",
            x="ms",
            hue="variant",
            order=order,
            palette=colors,
            errorbar=stats.t_interval,
            ax=ax,
            legend=False,
            alpha=0.8,
            capsize=0.2,
        )
        ax.set_xlabel("wall time per step (ms, training only)")
        ax.set_ylabel("")
        ax.set_title("time per step (all runs)")
        ax = axes[0, 1]
        if ref is None:
            _note(ax, "no plain Adam variant in this sweep: no overhead reference")
        else:
            ref_ms = runs.loc[runs["variant"] == ref, "ms"].mean()
            runs["overhead"] = runs["ms"] / ref_ms
            sns.barplot(
                data=runs,
                y="variant",
                x="overhead",
                hue="variant",
                order=order,
                palette=colors,
                errorbar=stats.t_interval,
                ax=ax,
                legend=False,
                alpha=0.8,
                capsize=0.2,
            )
            ax.axvline(1.0, color="black", lw=1, ls="--")
            ax.set_xlabel(f"time per step / mean time per step of {ref}")
            ax.set_ylabel("")
            ax.set_title(f"overhead vs {ref}")
        for ax, col, label in (
            (axes[1, 0], "grad_evals_to_target", "gradient evaluations to target"),
            (axes[1, 1], "time_to_target", "wall time to target (s)"),
        ):
            reached = rep[rep[col].notna()]
            counts = rep.groupby("variant").size()
            hits = reached.groupby("variant").size()
            labels = [f"{v} ({hits.get(v, 0)}/{counts.get(v, 0)})" for v in order]
            if reached.empty:
                ok = rep[~rep["failed"]]
                best = ""
                if len(ok):
                    top = ok.loc[
                        ok["final"].idxmax() if info.higher_is_better else ok["final"].idxmin()
                    ]
                    best = f"\nbest final {info.primary}: {top['final']:.4g} ({top['variant']})"
                _note(ax, f"no reported run reached the target\n{info.target_text()}{best}")
            else:
                sns.swarmplot(
                    data=reached,
                    y="variant",
                    x=col,
                    hue="variant",
                    order=order,
                    palette=colors,
                    size=7,
                    ax=ax,
                    legend=False,
                )
                ax.set_yticks(range(len(order)), labels)
                if _spans_decades(reached[col]):
                    _log_axis(ax, "x", reached[col])
                else:
                    ax.set_xlim(0, 1.1 * float(reached[col].max()))
                ax.set_xlabel(label)
                ax.set_ylabel("")
            ax.set_title(f"{label.split(' to ')[0]} to {info.target_text()} (reached/runs)")
        fig.suptitle(f"{wl}: cost")
        _save(fig, out, name)
    caption = (
        "Top: wall time per training step (evaluation excluded) over all runs of each variant, "
        "mean with 95% t-interval, and the same relative to plain Adam's mean. Bottom: per "
        "report run at the selected lr, gradient evaluations and seconds until the primary "
        f"metric first reached {info.target_text()}; the label counts the runs that reached it. "
        "Times are as measured during the sweep: runs that shared the CPU with other parallel "
        "runs are slower, so small ratios are indicative only (python -m bench perf measures "
        "overheads under control)."
    )
    return FigureFile(name, f"{wl}: cost", caption, wl)


def _binned(traces: pd.DataFrame, columns: list[str], agg: str) -> pd.DataFrame:
    """Per run, the ``agg`` of each column over TRACE_BINS equal step bins."""
    width = max(1, math.ceil(traces["step"].max() / TRACE_BINS))
    t = traces[["run_id", "variant", "step", *columns]].copy()
    t["bin"] = (t["step"] - 1) // width
    binned = t.groupby(["run_id", "variant", "bin"], sort=False)[columns].agg(agg).reset_index()
    binned["step"] = (binned["bin"] + 0.5) * width
    return binned


def grad_norms(a: Analysis, wl: str, out: Path, colors: dict) -> FigureFile:
    rep = a.reported[a.reported["workload"] == wl]
    tr = a.data.traces.merge(rep[["run_id"]], on="run_id")
    name = f"fig-{slug(wl)}-grad-norms.png"
    with _style():
        fig, axes = _new_figure(2, 2, 12, 7.6)
        binned = _binned(tr, ["grad_norm_g", "grad_norm_d"], "median") if len(tr) else tr
        for i, (player, label) in enumerate((("g", "generator"), ("d", "discriminator"))):
            col = f"grad_norm_{player}"
            ax = axes[i, 0]
            sns.lineplot(
                data=binned,
                x="step",
                y=col,
                hue="variant",
                palette=colors,
                estimator="median",
                errorbar=("pi", 100),
                ax=ax,
                legend=False,
            )
            _log_axis(ax, "y", binned[col])
            ax.set_xlabel("step")
            ax.set_ylabel(f"‖∇{player.upper()}‖ (applied)")
            ax.set_title(f"{label}: gradient norm over training")
            ax = axes[i, 1]
            positive = tr[np.isfinite(tr[col]) & (tr[col] > 0)]
            if positive.empty:
                _note(ax, "no positive finite gradient norms")
            else:
                sns.ecdfplot(
                    data=positive,
                    x=col,
                    hue="variant",
                    palette=colors,
                    log_scale=True,
                    ax=ax,
                    legend=False,
                )
                _log_axis(ax, "x", positive[col])
                ax.set_xlabel(f"‖∇{player.upper()}‖ per step (log scale)")
                ax.set_ylabel("fraction of steps ≤ x")
            ax.set_title(f"{label}: distribution over steps and seeds")
        _legend(fig, colors, tr["variant"])
        fig.suptitle(f"{wl}: gradient norms at each optimizer's selected lr (report seeds)")
        _save(fig, out, name)
    caption = (
        "Global L2 norm of the gradient each optimizer applied (after any projection; ⊥Grad "
        f"rescales to the original norm). Left: per-run medians over {TRACE_BINS} step bins, "
        "line = median over seeds, band = range over seeds. Right: empirical CDF of every step's "
        "norm, pooled over report seeds."
    )
    return FigureFile(name, f"{wl}: gradient norms", caption, wl)


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
    with _style():
        fig, axes = _new_figure(1, 2, 12, 4.0)
        binned = _binned(tr, ["removed_frac_g", "removed_frac_d"], "mean")
        for ax, (player, label) in zip(axes[0], (("g", "generator"), ("d", "discriminator"))):
            sns.lineplot(
                data=binned,
                x="step",
                y=f"removed_frac_{player}",
                hue="variant",
                palette=colors,
                errorbar=("pi", 100),
                ax=ax,
                legend=False,
            )
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("step")
            ax.set_ylabel("fraction of ‖g‖² removed")
            ax.set_title(label)
        _legend(fig, colors, tr["variant"])
        fig.suptitle(f"{wl}: fraction of the squared gradient norm removed by the projection")
        _save(fig, out, name)
    caption = (
        "For variants with ⊥Grad (the component along the weights) or D gradient surgery "
        "(conflicting components of D's real- and fake-data gradients): 1 − ‖g′‖²/‖g‖², mean over "
        f"{TRACE_BINS} step bins per run; line = mean over report seeds, band = range."
    )
    return FigureFile(name, f"{wl}: fraction removed by the projection", caption, wl)


# -- across workloads -------------------------------------------------------------------------


PROFILE_OFFSET = 0.006
PROFILE_PANELS = (
    ("final", "final primary metric"),
    ("grad_evals_to_target", "gradient evaluations to target"),
    ("time_to_target", "wall time to target"),
)


def profiles(a: Analysis, out: Path, colors: dict) -> FigureFile:
    name = "fig-performance-profiles.png"
    with _style():
        fig, axes = _new_figure(1, 3, 15, 4.4)
        for ax, (key, label) in zip(axes[0], PROFILE_PANELS):
            costs = a.profile_costs[key]
            ratios = stats.performance_ratios(costs)
            finite = ratios.to_numpy()[np.isfinite(ratios.to_numpy())]
            if finite.size == 0:
                _note(ax, f"no variant has a finite {label}\non any workload (median over seeds)")
                ax.set_title(label)
                continue
            hi = max(10.0, float(finite.max()) * 1.5)
            taus = np.geomspace(1.0, hi, 400)
            prof = stats.performance_profile(costs, taus)
            order = sorted(prof.columns)
            for i, variant in enumerate(order):
                # A small vertical offset keeps coinciding profiles (common with few workloads)
                # visible; it is far below the 1/len(workloads) resolution of the profile.
                offset = PROFILE_OFFSET * (i - (len(order) - 1) / 2)
                ax.step(taus, prof[variant] + offset, where="post", color=colors[variant], lw=2)
            _log_axis(ax, "x", taus)
            ax.set_ylim(-0.05, 1.05)
            ax.set_xlabel("τ (ratio to the best variant on a workload)")
            ax.set_ylabel("fraction of workloads within τ")
            ax.set_title(label)
        _legend(fig, colors, a.summary["variant"])
        fig.suptitle(f"Performance profiles over {len(a.data.workloads)} workload(s)")
        _save(fig, out, name)
    caption = (
        "AlgoPerf-style performance profiles: for each variant, the fraction of workloads on which "
        "its cost is within a factor τ of the best variant's (higher and further left is better). "
        "Costs per workload at the selected lr on the report seeds: the mean final primary metric "
        "(inverted if higher is better; ∞ if any reported run failed), and the median gradient "
        "evaluations and seconds to the workload's target (∞ when not reached). A variant not run "
        "on a workload is left out of that workload's denominator, not counted as a failure. "
        f"Lines are offset vertically by {PROFILE_OFFSET:g} per variant so that coinciding "
        "profiles stay visible."
    )
    return FigureFile(name, "Performance profiles", caption, None)


def divergence(a: Analysis, out: Path) -> FigureFile:
    runs = a.data.runs
    rate = runs.pivot_table(index="workload", columns="variant", values="diverged", aggfunc="mean")
    count = runs.pivot_table(index="workload", columns="variant", values="diverged", aggfunc="sum")
    total = runs.pivot_table(index="workload", columns="variant", values="diverged", aggfunc="size")
    annot = count.astype("Int64").astype(str) + "/" + total.astype("Int64").astype(str)
    annot = annot.where(total.notna(), "not run")
    name = "fig-divergence.png"
    with sns.axes_style("white"), sns.plotting_context("notebook", font_scale=0.95):
        fig, axes = _new_figure(
            1, 1, max(6.0, 1.1 * rate.shape[1] + 2.5), 0.6 * rate.shape[0] + 2.2
        )
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
        _save(fig, out, name)
    caption = (
        "Fraction of all runs of each workload × optimizer (every lr and seed) that stopped on a "
        "non-finite loss or gradient; cells read diverged/runs; blank: not run."
    )
    return FigureFile(name, "Divergence rate", caption, None)


PER_WORKLOAD = (curves, final_values, lr_sensitivity, cost, grad_norms, removed_fraction)


def render_all(a: Analysis, out: Path) -> tuple[list[FigureFile], dict[str, list[str]]]:
    """Every figure, written under ``out``; also, per workload, notes on figures not drawn."""
    colors = palette(a.data.runs["variant"])
    figures = [profiles(a, out, colors), divergence(a, out)]
    notes: dict[str, list[str]] = {}
    for wl in a.data.workloads:
        for make in PER_WORKLOAD:
            fig = make(a, wl, out, colors)
            if fig is None:
                notes.setdefault(wl, []).append(
                    "No variant uses ⊥Grad or surgery here, so there is no removed-fraction figure."
                )
            else:
                figures.append(fig)
    return figures, notes
