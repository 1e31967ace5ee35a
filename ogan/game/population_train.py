"""``ogan.train_population``: one :class:`~ogan.game.train.TrainResult` per seed, one program.

Every member's result has exactly the schema of ``ogan.train``'s (history, trace, summary,
config), plus ``summary["population"]``: the population's size, the member's index and the
population's mean step time. A member's time is its share: each step's population time divided
by the members that took it, so ``time_per_step`` and ``wall_time`` stay per run and their sum
over the members is the time the population took. A member that diverges stops there, with its
final evaluation, exactly as a standalone run does; the others carry on unchanged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ogan import optim
from ogan.errors import ConfigError
from ogan.game import stats as gstats
from ogan.game.config import TrainConfig, resolve
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
    **options: Any,
) -> list[TrainResult]:
    """Train one run per seed as one batched program; ``ogan.train``'s arguments otherwise.

    Member i draws its initialisation, batches and evaluation noise from ``seeds[i]``'s streams
    exactly as ``ogan.train(..., seed=seeds[i])`` does, so its result is that run's up to float
    reordering in the batched kernels (bit for bit it is not: sums run in another order).

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
    with _threads(configs[0].threads):
        return _run(configs)


@dataclass
class _Member:
    """One member's record while the population trains."""

    config: TrainConfig
    rows: torch.Tensor
    step_times: np.ndarray
    history: list[dict[str, Any]] = field(default_factory=list)
    wall: float = 0.0
    eval_time: float = 0.0
    population_time: float = 0.0  # the population's time over this member's steps
    grad_evals: list[int] = field(default_factory=lambda: [0, 0])
    diverged_at: int | None = None
    done: int = 0
    recorded: int = 0  # the step of the previous evaluation


def _run(configs: list[TrainConfig]) -> list[TrainResult]:
    import pandas as pd

    game = PopulationGame(configs)
    size = len(configs)
    config = game.config
    members = [
        _Member(c, torch.full((c.steps, game.layout.width), math.nan), np.full(c.steps, math.nan))
        for c in configs
    ]
    alive = list(range(size))  # the member at each slot of the population
    sync = game.device.type == "cuda"

    def record(slot: int, step: int) -> None:
        m = members[alive[slot]]
        t0 = time.perf_counter()
        metrics = game.evaluate(slot)
        m.eval_time += time.perf_counter() - t0
        window = game.layout.columns(m.rows[m.recorded : step])
        m.recorded = step
        m.grad_evals = list(game.grad_evals)
        m.history.append({
            "step": step,
            "grad_evals": sum(game.grad_evals),
            "wall_time": m.wall,
            **gstats.window_summary(window),
            **metrics,
        })  # fmt: skip

    for slot in range(size):
        record(slot, 0)
    for i in range(config.steps):
        t0 = time.perf_counter()
        rows = game.step(i)
        finite = torch.isfinite(rows).all(1).tolist()  # also waits for the device
        if sync:
            torch.cuda.synchronize(game.device)
        dt = time.perf_counter() - t0
        rows = rows.cpu()
        for slot, index in enumerate(alive):
            m = members[index]
            m.rows[i] = rows[slot]
            m.step_times[i] = dt / len(alive)
            m.wall += dt / len(alive)
            m.population_time += dt
            m.done = i + 1
        if not all(finite):
            for slot, ok in enumerate(finite):
                if not ok:
                    members[alive[slot]].diverged_at = i + 1
                    record(slot, i + 1)
            slots = [slot for slot, ok in enumerate(finite) if ok]
            alive = [alive[slot] for slot in slots]
            if not alive:
                break
            game.keep(slots)
        if (i + 1) % config.eval_every == 0 or i + 1 == config.steps:
            for slot in range(len(alive)):
                record(slot, i + 1)

    results = []
    for index, m in enumerate(members):
        trace = pd.DataFrame({"step": np.arange(1, m.done + 1),
                              **game.layout.columns(m.rows[: m.done])})  # fmt: skip
        trace["step_time"] = m.step_times[: m.done]
        history = pd.DataFrame(m.history)
        summary = gstats.run_summary(
            history=history,
            trace=trace,
            workload=game.workload,
            diverged_at=m.diverged_at,
            wall_time=m.wall,
            eval_time=m.eval_time,
            grad_evals=m.grad_evals,
        )
        summary["metric_info"] = game.workload.metric_info()
        summary["population"] = {
            "size": size,
            "member": index,
            "step_time": m.population_time / m.done if m.done else math.nan,
        }
        results.append(TrainResult(history, trace, summary, m.config.to_dict()))
    return results
