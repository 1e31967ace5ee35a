"""What every report figure shares: the canvas, the style, the PNG writer and the axis helpers.

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
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator
from PIL import Image

from bench.report import intervals
from bench.report.labels import short_names
from bench.report.tables import Analysis

DPI = 110
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


def palette(optimizers: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One colour per optimizer, the same in every figure."""
    names = sorted(set(optimizers))
    colors = sns.color_palette("tab10" if len(names) <= 10 else "husl", len(names))
    return dict(zip(names, colors))


@contextmanager
def figure(
    out: Path,
    name: str,
    nrows: int,
    ncols: int,
    width: float,
    height: float,
    style: str = "whitegrid",
) -> Iterator[tuple[Figure, np.ndarray]]:
    """A figure with an ``nrows × ncols`` grid of axes, written to ``out/name`` when the block ends.

    Seaborn's ``style`` and a readable font size hold for the duration of the block; the axes
    come as a 2-d array whatever the grid. Nothing is written when the block raises.
    """
    with sns.axes_style(style), sns.plotting_context("notebook", font_scale=0.95):
        fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        yield fig, fig.subplots(nrows, ncols, squeeze=False)
        _save(fig, out / name)


def _save(fig: Figure, path: Path) -> None:
    """Write a 256-colour PNG without metadata.

    The example report is committed: palette PNGs are about 3× smaller than matplotlib's RGBA
    ones and look the same for line plots, and without "Software"/date metadata a rebuild from
    the same runs gives identical bytes.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    image = Image.open(buffer).convert("RGB")
    image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    image.save(path, format="png", optimize=True)


def spans_decades(values: pd.Series | np.ndarray) -> bool:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0 or (x <= 0).any():
        return False
    return bool(np.log10(x.max() / x.min()) > DECADES_FOR_LOG)


def log_axis(ax, which: str, values: pd.Series | np.ndarray) -> None:
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


def lr_axis(ax, lrs: pd.Series) -> None:
    """Log x axis ticked at exactly the learning rates that were tried."""
    ax.set_xscale("log")
    tried = sorted(lrs.unique())
    ax.set_xticks(tried, [f"{lr:g}" for lr in tried])
    ax.xaxis.set_minor_formatter(NullFormatter())  # only the tried rates are labelled
    if len(tried) > 3:  # neighbours on a log axis (1e-4, 2e-4, 5e-4) collide when level
        ax.tick_params(axis="x", labelrotation=45)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.tick_params(axis="x", rotation=30 if len(tried) > 5 else 0)


def _run_range(values: pd.Series, log: bool) -> tuple[float, float]:
    x = values.astype(float).to_numpy()
    x = x[np.isfinite(x) & ((x > 0) if log else True)]
    return (float(x.min()), float(x.max())) if len(x) else (math.nan, math.nan)


def clipped_interval(
    values: pd.Series, log: bool, bounds: intervals.Bounds, log_scale: bool
) -> Callable[[np.ndarray], tuple]:
    """The metric's 95% interval (:func:`bench.report.intervals.metric_ci`: log-t, or t cut to
    its bounds) cut to the range of the panel's runs.

    A band over few seeds is wide (t = 4.3 at 3 seeds); cut to the runs it stays drawable on a
    log axis; the figure caption says that bands are clipped.
    """
    lo_all, hi_all = _run_range(values, log)
    interval_of = intervals.errorbar(bounds, log_scale)

    def interval(v: np.ndarray) -> tuple[float, float]:
        lo, hi = interval_of(v)
        return max(lo, lo_all), min(hi, hi_all)

    return interval


def clip_to_runs(ax, values: pd.Series, log: bool) -> None:
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


def figure_legend(
    fig: Figure, colors: dict[str, tuple], present: Sequence[str], title: str = "optimizer"
) -> None:
    names = short_names(colors)  # unique class names for import paths, over the whole report
    handles = [
        Line2D([], [], color=colors[v], lw=2.5, label=names[v]) for v in sorted(set(present))
    ]
    fig.legend(
        handles=handles,
        title=title,
        loc="outside right upper",
        frameon=False,
    )


def panel_note(ax, text: str) -> None:
    """Write ``text`` in the middle of an empty panel (why there is nothing to draw)."""
    ax.text(
        0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True, color="0.35"
    )
    ax.set_xticks([])
    ax.set_yticks([])


def metric_label(a: Analysis, wl: str, metric: str) -> str:
    info = a.data.workloads[wl]
    hib = info.metrics.get(metric, ("", False))[1]
    return f"{metric} ({'higher' if hib else 'lower'} is better)"


def by_optimizer(colors: dict[str, tuple]) -> dict[str, Any]:
    """Seaborn keywords that colour a plot by optimizer, with the same colours in every figure.

    No legend per axes: :func:`figure_legend` draws one for the whole figure.
    """
    return {"hue": "optimizer", "palette": colors, "legend": False}
