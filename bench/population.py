"""Populations in a sweep: the runs that differ only by seed, trained as one program.

``bench run`` groups the runs still to do by everything but their seed and trains each group
with ``ogan.train_population`` (in chunks of at most the population size), when the group's
optimizer passes the population check (:func:`ogan.optim.admit`, once per optimizer spec;
its outcome is stored in every run's ``summary["admission"]``). What a worker runs is
:mod:`bench.worker`. Every member is
stored as its own run, under its usual run id, so the store, ``bench.load``, resuming and the
report see runs exactly as before; ``summary["population"]`` says how a run was trained (size,
member index, the population's step time; ``time_per_step`` is the member's share). Resuming
trains only the members that are missing, and a killed sweep loses only the populations in
flight. A group of one seed is an ordinary run (``ogan.train``), so ``--population 1`` is the
one-process-per-run behaviour of before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from bench.spec import RunSpec
from ogan.optim import Admission, admit

DEFAULT_SIZE = {"cpu": 8, "cuda": 64}
"""Members per population by device. CPU: the member-step throughput of the small workloads
grows up to about 8 members on one core and little beyond (bench perf's population cases);
CUDA: a step of these workloads is launch overhead at any size that fits, 64 members of the
largest (the CIFAR-10 DCGAN at batch 64) take a few GB."""


def default_size(device: str) -> int:
    """The population size ``bench run`` uses on ``device`` unless ``--population`` says."""
    return DEFAULT_SIZE["cuda" if device.startswith("cuda") else "cpu"]


def optimizer_key(spec: RunSpec) -> RunSpec:
    """What an admission depends on: the optimizer spec (one check per spec per sweep)."""
    return dataclasses.replace(spec, seed=0)


def admissions(specs: Iterable[RunSpec]) -> dict[tuple, Admission]:
    """Each optimizer spec's population admission (:func:`ogan.optim.admit`), checked once.

    Raises ConfigError, naming the run, for an optimizer that needs a closure, fails a trial
    step or declares ``elementwise = True`` and fails the check.
    """
    from ogan.errors import OganError

    found: dict[tuple, Admission] = {}
    for spec in specs:
        key = spec.optimizer
        if key in found:
            continue
        optimizer = dict(spec.optimizer)
        try:
            found[key] = admit(optimizer["name"], optimizer)
        except OganError as exc:
            raise type(exc)(f"{spec.workload} × {spec.label} (lr={spec.lr:g}): {exc}") from None
    return found


def populations(
    specs: Sequence[RunSpec], size: int, admitted: dict[tuple, Admission] | None = None
) -> list[tuple[RunSpec, ...]]:
    """``specs`` grouped by everything but the seed, in sweep order, in chunks of ``size``.

    A run whose optimizer is not admitted to populations (``admitted``, default: checked here)
    is a group of its own.
    """
    if size < 1:
        raise ValueError(f"population size must be >= 1, got {size}")
    admitted = admissions(specs) if admitted is None else admitted
    groups: dict[RunSpec, list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault(optimizer_key(spec), []).append(spec)
    chunks = []
    for members in groups.values():
        n = size if admitted[members[0].optimizer].admitted else 1
        chunks += [tuple(members[i : i + n]) for i in range(0, len(members), n)]
    return chunks


def part(specs: Sequence[RunSpec], i: int, n: int) -> tuple[RunSpec, ...]:
    """The i-th (1-based) of ``n`` parts of a sweep: its configurations (runs that differ only
    by seed), in sweep order, cut into ``n`` consecutive blocks of as equal a size as they
    allow, each configuration with all its seeds. The parts are disjoint, their union is the
    sweep, and a part is the same whatever has already run."""
    keys = list(dict.fromkeys(optimizer_key(s) for s in specs))
    chosen = _block(keys, i, n, "--part", "configuration(s) (runs that differ only by seed)")
    return tuple(s for s in specs if optimizer_key(s) in chosen)


def seed_part(specs: Sequence[RunSpec], i: int, n: int) -> tuple[RunSpec, ...]:
    """The i-th (1-based) of ``n`` seed blocks of a sweep: its seeds, in the order the sweep
    lists them, cut into ``n`` consecutive blocks of as equal a size as they allow, with every
    configuration. Run block by block, every configuration has the same seeds after each block
    (paired comparisons at every stage of a lease that may end early); the blocks are disjoint,
    their union is the sweep, and a block is the same whatever has already run."""
    seeds = list(dict.fromkeys(s.seed for s in specs))
    chosen = _block(seeds, i, n, "--seed-part", "seed(s)")
    return tuple(s for s in specs if s.seed in chosen)


def _block(items: list, i: int, n: int, option: str, what: str) -> set:
    """The i-th of ``n`` consecutive blocks of ``items`` (sizes as equal as they allow)."""
    from bench.errors import BenchError

    if not 1 <= i <= n:
        raise BenchError(f"{option} {i}/{n}: expected 1 <= I <= N")
    if n > len(items):
        raise BenchError(
            f"{option} {i}/{n}: the sweep has {len(items)} {what}; N can be at most {len(items)}"
        )
    return set(items[(i - 1) * len(items) // n : i * len(items) // n])
