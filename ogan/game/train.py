"""``ogan.train``: one run of a :class:`~ogan.game.game.Game`, timed, with its history and record.

The step itself (schemes, extrapolation, the design rules against the usual GAN bugs) is in
:mod:`ogan.game.game`; this module drives it: timing, divergence, evaluations, the summary.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ogan.game import stats as gstats
from ogan.game.config import TrainConfig, resolve
from ogan.game.game import Game, Player
from ogan.workloads.base import Workload

__all__ = ["Game", "Player", "TrainResult", "train"]


@dataclass
class TrainResult:
    """What a run produced.

    Attributes:
        history: one row per evaluation: ``step``, ``grad_evals``, ``wall_time`` (training seconds
            so far, evaluation excluded), ``loss_g``/``loss_d`` and ``grad_norm_g``/``grad_norm_d``
            (means and medians over the steps since the previous evaluation), then the
            workload's metric columns.
        trace: one row per step: losses, per-player gradient statistics, step time.
        summary: final metrics, gradient-norm summaries, divergence, cost (JSON-serialisable).
        config: the resolved configuration (:class:`TrainConfig` as a dict).
    """

    history: Any  # pandas.DataFrame
    trace: Any  # pandas.DataFrame
    summary: dict[str, Any]
    config: dict[str, Any]


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train(
    workload: str | type[Workload],
    optimizer: Any | Mapping[str, Any],
    *,
    steps: int | None = None,
    seed: int = 0,
    eval_every: int | None = None,
    device: str | None = None,
    **options: Any,
) -> TrainResult:
    """Train a two-player game with an optimizer and record what it cost.

    Args:
        workload: a name from ``ogan.workloads.WORKLOADS`` or an installed entry point, an
            import path ``"package.module:Class"``, or a :class:`Workload` subclass itself.
        optimizer: a name (as for ``ogan.optim.build``: registered, installed, an import path
            such as ``"torch.optim:RAdam"``, or the class or factory itself), or a spec
            ``{"name": ..., "lr": ..., <hyperparameters>}``; the spec may also hold
            ``ortho="weights"`` (⊥Grad), ``lr_ratio`` (lr_D = lr * lr_ratio) and
            ``surgery=True`` (D gradient surgery).
        steps: generator updates (workload default if None).
        seed: seeds initialisation, batches and evaluation noise (bit-identical reruns on CPU
            for the same thread count).
        eval_every: steps between evaluations (also evaluated at step 0 and at the end).
        device: "cpu" or "cuda[:N]" (default: cuda when available).
        **options: game options (``scheme``, ``d_steps``, ``loss``, ``r1``, ``surgery``,
            ``batch_size``, ``fresh_batch``, ``threads``) and the workload's own options.

    A non-finite loss or gradient stops the run: ``summary["diverged_at"]`` holds that step
    and the run returns normally.
    """
    config = resolve(workload, optimizer, steps=steps, seed=seed, eval_every=eval_every,
                     device=device, **options)  # fmt: skip
    with _threads(config.threads):
        return _run(config)


def _run(config: TrainConfig) -> TrainResult:
    import pandas as pd

    game = Game(config)
    sync = game.device.type == "cuda"
    rows = torch.full((config.steps, game.layout.width), math.nan)
    step_times = np.full(config.steps, math.nan)
    history: list[dict[str, Any]] = []
    wall = 0.0
    eval_time = 0.0
    diverged_at: int | None = None
    done = 0
    recorded = 0  # the step of the previous evaluation: each row summarises the steps since

    def record(step: int) -> None:
        nonlocal eval_time, recorded
        t0 = time.perf_counter()
        metrics = game.evaluate()
        eval_time += time.perf_counter() - t0
        window = game.layout.columns(rows[recorded:step])
        recorded = step
        history.append({
            "step": step,
            "grad_evals": sum(game.grad_evals),
            "wall_time": wall,
            **gstats.window_summary(window),
            **metrics,
        })  # fmt: skip

    record(0)
    for i in range(config.steps):
        t0 = time.perf_counter()
        row = game.step(i)
        finite = bool(torch.isfinite(row).all())  # also waits for the device
        if sync:
            torch.cuda.synchronize(game.device)
        dt = time.perf_counter() - t0
        rows[i] = row.cpu()
        step_times[i] = dt
        wall += dt
        done = i + 1
        if not finite:
            diverged_at = done
            break
        if done % config.eval_every == 0 or done == config.steps:
            record(done)
    if diverged_at is not None:
        record(done)

    trace = pd.DataFrame({"step": np.arange(1, done + 1), **game.layout.columns(rows[:done])})
    trace["step_time"] = step_times[:done]
    history_df = pd.DataFrame(history)
    summary = gstats.run_summary(
        history=history_df,
        trace=trace,
        workload=game.workload,
        diverged_at=diverged_at,
        wall_time=wall,
        eval_time=eval_time,
        grad_evals=game.grad_evals,
    )
    summary["metric_info"] = game.workload.metric_info()
    return TrainResult(history=history_df, trace=trace, summary=summary, config=config.to_dict())
