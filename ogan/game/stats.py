"""Gradient statistics: per step from per-tensor norms (vector ops only), per run from the trace."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ogan.projection import tensor_norms

MISSING = -1.0
"""The recorded norm of a parameter that got no gradient in a step (``.grad`` None). Such a
parameter is skipped by every optimizer (torch.optim's contract) and left out of the step's
norms and layer extremes; a finite, impossible norm keeps the divergence check unchanged."""
VANISHING = 1e-8
"""A step's global gradient norm below this is vanishing."""
EXPLODING = 1e3
"""A step's global gradient norm above this multiple of the run's median is exploding."""
EDGE_FRACTION = 0.10
"""A gradient norm's growth compares its last 10% of steps with its first 10%."""


class RowLayout:
    """The raw per-step record: everything else is derived from it after the fact.

    ``[loss_g, loss_d, removed_g, removed_d, after_g, before_g, after_d, before_d]`` where
    ``after_*``/``before_*`` are the per-tensor gradient norms after and before any projection
    (``n_g`` and ``n_d`` entries) and ``removed_*`` the fraction of the squared norm removed.
    Recording per-tensor norms costs one foreach reduction per step; the global norms, layer
    extremes and summaries are computed once, vectorised over all steps. A player's entries
    are in no particular order (every derived column is a sum or an extreme); parameters
    without a gradient are :data:`MISSING`, at the end (see :func:`pad`).
    """

    def __init__(self, n_g: int, n_d: int):
        self.n_g, self.n_d = n_g, n_d
        self.width = 4 + 2 * (n_g + n_d)

    def columns(self, rows: Tensor) -> dict[str, np.ndarray]:
        """Trace columns (but ``step``) for a (steps, width) block of rows."""
        rows = rows.double()
        out = {"loss_g": rows[:, 0], "loss_d": rows[:, 1]}
        start = 4
        for p, n, removed in (("g", self.n_g, rows[:, 2]), ("d", self.n_d, rows[:, 3])):
            after, before = rows[:, start : start + n], rows[:, start + n : start + 2 * n]
            start += 2 * n
            missing = after == MISSING
            none = missing.all(1)  # no gradient at all: no extremes (NaN), norm 0
            out[f"grad_norm_{p}"] = after.masked_fill(missing, 0).square().sum(1).sqrt()
            out[f"grad_norm_{p}_pre"] = (
                before.masked_fill(before == MISSING, 0).square().sum(1).sqrt()
            )
            low = after.masked_fill(missing, math.inf).min(1).values
            out[f"layer_min_{p}"] = low.masked_fill(none, math.nan)
            out[f"layer_max_{p}"] = after.max(1).values.masked_fill(none, math.nan)
            out[f"removed_frac_{p}"] = removed
        return {k: v.numpy() for k, v in out.items()}


def pad(norms: Tensor, n: int) -> Tensor:
    """A player's per-tensor norms over its ``n`` parameters, :data:`MISSING` for the rest."""
    if len(norms) == n:
        return norms
    missing = norms.new_full((n - len(norms),), MISSING, dtype=torch.float32)
    return torch.cat([norms.float(), missing])


def grad_norms(params: list[Tensor]) -> Tensor:
    """The per-tensor norms of the parameters' current gradients (:func:`pad` for those with
    none)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.full((len(params),), MISSING, device=params[0].device)
    return pad(tensor_norms(grads), len(params))


def window_summary(columns: dict[str, np.ndarray]) -> dict[str, float]:
    """History columns over the steps since the previous evaluation (NaN for no steps)."""
    out = {}
    for key, how in (("loss_g", np.mean), ("loss_d", np.mean), ("grad_norm_g", np.median),
                     ("grad_norm_d", np.median)):  # fmt: skip
        values = columns[key]
        out[key] = float(how(values)) if len(values) else math.nan
    return out


def norm_growth(norms: np.ndarray) -> float:
    """log(median over the last :data:`EDGE_FRACTION` of a run's finite norms / median over
    the first), the norms in step order: 0 is no growth. NaN for fewer than two edge windows'
    worth of steps, or a zero median."""
    x = np.asarray(norms, dtype=float)
    x = x[np.isfinite(x)]
    k = max(1, round(EDGE_FRACTION * len(x)))
    if len(x) < 2 * k:
        return math.nan
    first, last = float(np.median(x[:k])), float(np.median(x[-k:]))
    return math.log(last / first) if first > 0 and last > 0 else math.nan


def norm_summary(norms: np.ndarray) -> dict[str, float]:
    """median, p99, max, the fractions of vanishing and exploding steps, and the growth
    (:func:`norm_growth`), of a run's per-step norms in step order."""
    growth = norm_growth(norms)
    norms = norms[np.isfinite(norms)]
    if len(norms) == 0:
        keys = ("median", "p99", "max", "vanishing_frac", "exploding_frac", "growth")
        return dict.fromkeys(keys, math.nan)
    median = float(np.median(norms))
    return {
        "median": median,
        "p99": float(np.percentile(norms, 99)),
        "max": float(norms.max()),
        "vanishing_frac": float((norms < VANISHING).mean()),
        "exploding_frac": float((norms > EXPLODING * median).mean()) if median > 0 else 0.0,
        "growth": growth,
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
    # The run's own metric table: a workload's metrics may follow its options (seed-mlp on MNIST).
    summary["metrics"] = {name: dataclasses.asdict(m) for name, m in workload.metrics.items()}
    primary = workload.primary_metric
    hit = _reached(history, primary, workload.target, workload.metrics[primary].higher_is_better)
    summary["target"] = {"metric": primary, "value": workload.target}
    summary["steps_to_target"] = None if hit is None else int(hit["step"])
    summary["time_to_target"] = None if hit is None else float(hit["wall_time"])
    summary["grad_evals_to_target"] = None if hit is None else int(hit["grad_evals"])
    return summary
