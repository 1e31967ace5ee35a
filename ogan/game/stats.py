"""Gradient statistics: per step from per-tensor norms (vector ops only), per run from the trace."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

PLAYER_STATS = (
    "grad_norm_{p}",
    "grad_norm_{p}_pre",
    "layer_min_{p}",
    "layer_max_{p}",
    "removed_frac_{p}",
)
POST, PRE, LAYER_MIN, LAYER_MAX, REMOVED = range(len(PLAYER_STATS))
TRACE_COLUMNS = (
    "step",
    "loss_g",
    "loss_d",
    *(name.format(p="g") for name in PLAYER_STATS),
    *(name.format(p="d") for name in PLAYER_STATS),
)
"""Per-step trace columns (``step_time`` is appended by the trainer)."""

VANISHING = 1e-8
"""A step's global gradient norm below this is vanishing."""
EXPLODING = 1e3
"""A step's global gradient norm above this multiple of the run's median is exploding."""


def player_stats(before: Tensor, after: Tensor, removed: Tensor | None) -> Tensor:
    """One player's step statistics from per-tensor gradient norms.

    ``before``/``after`` are per-tensor norms before and after any projection; ``removed`` the
    fraction of the squared gradient norm the projection removed (None: no projection).
    Returns ``[global norm after, global norm before, min layer norm, max layer norm, removed]``.
    """
    zero = torch.zeros((), device=after.device)
    return torch.stack([
        after.square().sum().sqrt(),
        before.square().sum().sqrt(),
        after.min() if after.numel() else zero,
        after.max() if after.numel() else zero,
        zero if removed is None else removed.to(zero.dtype),
    ]).float()  # fmt: skip


def window_summary(window: Tensor) -> dict[str, float]:
    """History columns for the steps since the previous evaluation (NaN for an empty window)."""
    idx = {name: i - 1 for i, name in enumerate(TRACE_COLUMNS)}
    out = {}
    for key, how in (("loss_g", "mean"), ("loss_d", "mean"), ("grad_norm_g", "median"),
                     ("grad_norm_d", "median")):  # fmt: skip
        col = window[:, idx[key]]
        if len(col) == 0:
            out[key] = math.nan
        else:
            out[key] = float(col.mean() if how == "mean" else col.median())
    return out


def norm_summary(norms: np.ndarray) -> dict[str, float]:
    """median, p99, max, and the fractions of vanishing and exploding steps."""
    norms = norms[np.isfinite(norms)]
    if len(norms) == 0:
        return {k: math.nan for k in ("median", "p99", "max", "vanishing_frac", "exploding_frac")}
    median = float(np.median(norms))
    return {
        "median": median,
        "p99": float(np.percentile(norms, 99)),
        "max": float(norms.max()),
        "vanishing_frac": float((norms < VANISHING).mean()),
        "exploding_frac": float((norms > EXPLODING * median).mean()) if median > 0 else 0.0,
    }


def _reached(history: Any, metric: str, target: float, higher_is_better: bool) -> Any:
    values = history[metric]
    hit = values >= target if higher_is_better else values <= target
    hit = hit & (history["step"] > 0)
    return history[hit].iloc[0] if hit.any() else None


def run_summary(
    *,
    history: Any,
    trace: Any,
    workload: Any,
    diverged_at: int | None,
    wall_time: float,
    eval_time: float,
    grad_evals: list[int],
) -> dict[str, Any]:
    """The per-run summary: final metrics, cost, gradient-norm summaries, divergence."""
    steps = len(trace)
    last = history.iloc[-1]
    summary: dict[str, Any] = {
        "steps_completed": steps,
        "diverged_at": diverged_at,
        "wall_time": wall_time,
        "time_per_step": wall_time / steps if steps else math.nan,
        "eval_time": eval_time,
        "grad_evals": int(sum(grad_evals)),
        "grad_evals_g": int(grad_evals[0]),
        "grad_evals_d": int(grad_evals[1]),
    }
    for metric in workload.metrics:
        summary[f"final_{metric}"] = float(last[metric])
    for player in ("g", "d"):
        for key, value in norm_summary(trace[f"grad_norm_{player}"].to_numpy()).items():
            summary[f"grad_norm_{player}_{key}"] = value
        summary[f"removed_frac_{player}_mean"] = float(trace[f"removed_frac_{player}"].mean())
    primary = workload.primary_metric
    hit = _reached(history, primary, workload.target, workload.metrics[primary].higher_is_better)
    summary["target"] = {"metric": primary, "value": workload.target}
    summary["steps_to_target"] = None if hit is None else int(hit["step"])
    summary["time_to_target"] = None if hit is None else float(hit["wall_time"])
    summary["grad_evals_to_target"] = None if hit is None else int(hit["grad_evals"])
    return summary
