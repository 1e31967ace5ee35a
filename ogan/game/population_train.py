"""``ogan.train_population``: one :class:`~ogan.game.train.TrainResult` per seed, one program.

Every member's result has exactly the schema of ``ogan.train``'s (history, trace, summary,
config), plus ``summary["population"]``: the population's size, the member's index and the
population's mean step time, and ``summary["admission"]``: the optimizer's population admission
(:meth:`ogan.optim.Admission.to_dict`, the dict ``bench run`` stores with every run). The loop
is ``ogan.train``'s (:mod:`ogan.game.loop`): a member's time is its share of each step's, and a
member that diverges stops there, with its final evaluation, exactly as a standalone run does;
the others carry on unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ogan.errors import ConfigError
from ogan.game import checkpoint as ckpt
from ogan.game import loop
from ogan.game.config import check_seed, resolve
from ogan.game.loop import TrainResult
from ogan.game.population import PopulationGame


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
    for seed in seeds:
        check_seed(seed)
    # One resolution for all members: they differ by seed alone, which nothing resolved reads.
    config = resolve(workload, optimizer, steps=steps, seed=seeds[0], eval_every=eval_every,
                     device=device, **options)  # fmt: skip
    configs = [dataclasses.replace(config, seed=seed) for seed in seeds]
    admission = config.optimizer_resolved.admission()
    if not admission.admitted:
        raise ConfigError(
            f"optimizer {config.optimizer['name']!r} cannot train a population: "
            f"{admission.reason}; train the seeds one at a time (ogan.train, or bench run "
            "--population 1)"
        )
    checkpointing = ckpt.plan(checkpoint, checkpoint_every, config.steps)
    with loop.run_settings(config):
        game = PopulationGame(configs)
        results = loop.run(game, configs, population=True, checkpointing=checkpointing)
    for result in results:
        result.summary["admission"] = admission.to_dict()
    return results
