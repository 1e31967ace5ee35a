"""``ogan.train_population``: one :class:`~ogan.game.train.TrainResult` per seed, one program.

Every member's result has exactly the schema of ``ogan.train``'s (history, trace, summary,
config), plus ``summary["population"]``: the population's size, the member's index and the
population's mean step time. The loop is ``ogan.train``'s (:mod:`ogan.game.loop`): a member's
time is its share of each step's, and a member that diverges stops there, with its final
evaluation, exactly as a standalone run does; the others carry on unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ogan import optim
from ogan.errors import ConfigError
from ogan.game import checkpoint as ckpt
from ogan.game import loop
from ogan.game.config import resolve
from ogan.game.population import PopulationGame
from ogan.game.train import TrainResult, _threads


def train_population(
    workload: str,
    optimizer: str | Mapping[str, Any],
    *,
    seeds: Iterable[int],
    steps: int | None = None,
    eval_every: int | None = None,
    device: str | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int | None = None,
    **options: Any,
) -> list[TrainResult]:
    """Train one run per seed as one batched program; ``ogan.train``'s arguments otherwise.

    Member i draws its initialisation, batches and evaluation noise from ``seeds[i]``'s streams
    exactly as ``ogan.train(..., seed=seeds[i])`` does, so its result is that run's up to float
    reordering in the batched kernels (bit for bit it is not: sums run in another order).
    ``checkpoint``/``checkpoint_every``: as ``ogan.train``'s, one file for the whole population.

    Returns:
        one :class:`TrainResult` per seed, in the order of ``seeds``.
    """
    seeds = list(seeds)
    if not seeds:
        raise ConfigError("seeds must name at least one seed, e.g. seeds=[0, 1, 2, 3]")
    configs = [
        resolve(workload, optimizer, steps=steps, seed=seed, eval_every=eval_every,
                device=device, **options)
        for seed in seeds
    ]  # fmt: skip
    spec = configs[0].optimizer
    admission = optim.admit(spec["name"], {**configs[0].hparams, "lr": spec["lr"]})
    if not admission.admitted:
        raise ConfigError(
            f"optimizer {spec['name']!r} cannot train a population: {admission.reason}; train "
            "the seeds one at a time (ogan.train, or bench run --population 1)"
        )
    checkpointing = ckpt.plan(checkpoint, checkpoint_every, configs[0].steps)
    with _threads(configs[0].threads):
        game = PopulationGame(configs)
        return loop.run(game, configs, population=True, checkpointing=checkpointing)
