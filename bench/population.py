"""Populations in a sweep: the runs that differ only by seed, trained as one program.

``bench run`` groups the runs still to do by everything but their seed and trains each group
with ``ogan.train_population`` (in chunks of at most the population size). Every member is
stored as its own run, under its usual run id, so the store, ``bench.load``, resuming and the
report see runs exactly as before; ``summary["population"]`` says how a run was trained (size,
member index, the population's step time; ``time_per_step`` is the member's share). Resuming
trains only the members that are missing, and a killed sweep loses only the populations in
flight. A group of one seed is an ordinary run (``ogan.train``), so ``--population 1`` is the
one-process-per-run behaviour of before.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bench.spec import RunSpec

if TYPE_CHECKING:  # bench.runner imports this module
    from bench.runner import GpuSlots, Outcome
    from bench.store import Checkpoints

DEFAULT_SIZE = {"cpu": 8, "cuda": 64}
"""Members per population by device. CPU: the member-step throughput of the small workloads
grows up to about 8 members on one core and little beyond (bench perf's population cases);
CUDA: a step of these workloads is launch overhead at any size that fits, 64 members of the
largest (the CIFAR-10 DCGAN at batch 64) take a few GB."""


def default_size(device: str) -> int:
    """The population size ``bench run`` uses on ``device`` unless ``--population`` says."""
    return DEFAULT_SIZE["cuda" if device.startswith("cuda") else "cpu"]


def populations(specs: Sequence[RunSpec], size: int) -> list[tuple[RunSpec, ...]]:
    """``specs`` grouped by everything but the seed, in sweep order, in chunks of ``size``.

    A run whose optimizer cannot train a population (``ogan.optim.acts_per_member``: one that
    may take a norm over a whole tensor) is a group of its own.
    """
    from ogan.optim import acts_per_member

    if size < 1:
        raise ValueError(f"population size must be >= 1, got {size}")
    groups: dict[RunSpec, list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault(dataclasses.replace(spec, seed=0), []).append(spec)
    chunks = []
    for members in groups.values():
        optimizer = dict(members[0].optimizer)
        n = size if acts_per_member(optimizer["name"], optimizer) else 1
        chunks += [tuple(members[i : i + n]) for i in range(0, len(members), n)]
    return chunks


def execute_population(
    specs: tuple[RunSpec, ...],
    gpus: GpuSlots | None = None,
    checkpoints: Checkpoints | None = None,
) -> list[Outcome]:
    """Train one population (in a worker); one :class:`bench.runner.Outcome` per member.

    ``checkpoints``: the population keeps one checkpoint; its last member's outcome carries
    the path, so the parent removes the file once every member is stored.

    If the population raises, its members are trained one at a time (:func:`bench.runner.
    execute`: each fails or succeeds on its own); a diverged member is a normal result. Each
    member's ``seconds`` is its share of the population's time.
    """
    from bench import runner, store

    if len(specs) == 1:
        return [runner.execute(specs[0], gpus, checkpoints)]
    import ogan  # the first import in a fresh worker takes seconds: keep it out of the timing

    t0 = time.perf_counter()
    device = specs[0].device
    if gpus is not None and device == "cuda":
        device = runner._gpu_device(gpus)
    kwargs = {**specs[0].train_kwargs(), "device": device}
    del kwargs["seed"]
    try:
        saving = {} if checkpoints is None else checkpoints.kwargs(specs)
        seeds = [s.seed for s in specs]
        results = ogan.train_population(**kwargs, seeds=seeds, threads=1, **saving)
        env = store.environment(device, threads=1)
    except Exception as exc:
        # A workload's networks may do what torch.vmap cannot batch (e.g. dropout, .item() in
        # forward): its members still run, one at a time, each with its own error if it fails.
        error = traceback.format_exception_only(type(exc), exc)[-1].strip()
        print(
            f"warning: a population of {len(specs)} ({specs[0].workload} {specs[0].label} "
            f"lr={specs[0].lr:g}) failed ({error}); training its members one at a time",
            file=sys.stderr,
        )
        return [runner.execute(spec, gpus, checkpoints) for spec in specs]
    share = (time.perf_counter() - t0) / len(specs)
    outcomes = [runner.Outcome(spec, r, env, None, share) for spec, r in zip(specs, results)]
    outcomes[-1].checkpoint = saving.get("checkpoint")
    return outcomes
