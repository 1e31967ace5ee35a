"""``ogan.train``: one run of a :class:`~ogan.game.game.Game`, timed, with its history and record.

The step itself (schemes, extrapolation, the design rules against the usual GAN bugs) is in
:mod:`ogan.game.game`; the loop that drives it (timing, divergence, evaluations, checkpoints, the
summary) is :mod:`ogan.game.loop`, the same for one run and for a population.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ogan.game import checkpoint as ckpt
from ogan.game import loop
from ogan.game.config import resolve
from ogan.game.game import Game, Player
from ogan.game.loop import TrainResult
from ogan.workloads.base import Workload

__all__ = ["Game", "Player", "TrainResult", "train"]


def train(
    workload: str | type[Workload],
    optimizer: Any | Mapping[str, Any],
    *,
    steps: int | None = None,
    seed: int = 0,
    eval_every: int | None = None,
    device: str | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int | None = None,
    **options: Any,
) -> TrainResult:
    """Train a two-player game with an optimizer and record what it cost.

    Args:
        workload: a name from ``ogan.workloads.WORKLOADS`` or an installed entry point, an
            import path ``"package.module:Class"``, or a :class:`Workload` subclass itself.
        optimizer: a name (as for ``ogan.optim.build``: registered, installed, an import path
            such as ``"torch.optim:RAdam"``, or the class or factory itself), or a spec
            ``{"name": ..., "lr": ..., <hyperparameters>}``; the spec may also hold
            ``ortho="weights"`` (⊥Grad; ``ortho_players="g"`` or ``"d"`` on that player
            only), ``lr_ratio`` (lr_D = lr * lr_ratio) and ``surgery=True`` (D gradient
            surgery).
        steps: generator updates (workload default if None).
        seed: seeds initialisation, batches and evaluation noise (bit-identical reruns on CPU
            for the same thread count).
        eval_every: steps between evaluations (also evaluated at step 0 and at the end).
        device: "cpu" or "cuda[:N]" (default: cuda when available).
        checkpoint: a file for the run's checkpoints: if it holds one of this run, the run goes
            on from there (the result is the uninterrupted run's bit for bit, timing aside).
        checkpoint_every: steps between checkpoints (needs ``checkpoint``; default 5,000 for
            runs over 10,000 steps, else none). It changes no number the run computes.
        **options: game options (``scheme``, ``d_steps``, ``loss``, ``r1``, ``surgery``,
            ``batch_size``, ``fresh_batch``, ``threads``, ``streams``, ``flush_denormal``:
            True flushes subnormal floats to zero during a CPU run, with ``threads=1``) and the
            workload's own options.

    A non-finite loss or gradient stops the run: ``summary["diverged_at"]`` holds that step
    and the run returns normally.
    """
    config = resolve(workload, optimizer, steps=steps, seed=seed, eval_every=eval_every,
                     device=device, **options)  # fmt: skip
    return _run_one(config, checkpointing=ckpt.plan(checkpoint, checkpoint_every, config.steps))


def step_times(
    workload: str | type[Workload],
    optimizer: Any | Mapping[str, Any],
    *,
    steps: int,
    seed: int = 0,
    device: str | None = None,
    **options: Any,
) -> Any:
    """Each step's training time (s) of a run trained alone for ``steps`` steps, as
    ``ogan.train`` times them, without evaluating the workload's metrics (a pandas Series; what
    ``bench run`` records as ``time_per_step_alone`` beside a population: its median)."""
    config = resolve(workload, optimizer, steps=steps, seed=seed, eval_every=steps,
                     device=device, **options)  # fmt: skip
    return _run_one(config, evaluate=False).trace["step_time"]


def _run_one(config: Any, **run: Any) -> TrainResult:
    """One run of ``config`` through the run loop (``run``: :func:`loop.run`'s keywords)."""
    with loop.run_settings(config):
        return loop.run(loop.One(Game(config)), [config], population=False, **run)[0]
