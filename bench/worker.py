"""What a worker process runs: one run, or one population, returned as outcomes; never a file.

``bench.runner`` (the parent) sends each group of runs here (:func:`execute_population`) through
joblib or Dask, and writes what comes back. This module imports neither the runner nor the
grouping (:mod:`bench.population`): both import it.

Failures are classified where they happen (:func:`is_transient`): an error that the same run
would raise again (a TypeError in an optimizer, a bad value, a NaN check) is *deterministic*;
one that depends on the machine's state at the time (out of memory, a full disk, a lost file
or connection) is *transient*, and only those are worth retrying as they are.

Costs on equal terms: a member of a population is charged its share of the population's step,
which depends on the population's size, while an optimizer that trains one seed at a time is
charged a whole step. So every stored run also carries ``summary["time_per_step_alone"]``, the
median step time of one run trained alone: a standalone run's own steps', and for a population
those of a short standalone run of its first member (:data:`ALONE_STEPS` steps) measured in
the same worker right after it. The median leaves out the first steps' warm-up, which a short
run's mean would carry and a long run's would not. The report's overheads compare those.
"""

from __future__ import annotations

import dataclasses
import fcntl
import math
import os
import signal
import time
import traceback
from dataclasses import dataclass
from typing import Any

from bench import store
from bench.spec import RunSpec

ALONE_STEPS = 20
"""Steps of the standalone timing run after a population (their median: see the docstring)."""
TRANSIENT_ERRORS = (MemoryError, OSError, TimeoutError)
"""Exception types that depend on the machine at the time, not on the run (CUDA's out-of-memory
error is recognised by name: torch.cuda.OutOfMemoryError)."""


@dataclass
class Outcome:
    """What a worker sends back for one run: the result, or why it failed."""

    spec: RunSpec
    result: Any  # ogan.TrainResult, None when the run raised
    env: dict[str, Any] | None
    error: str | None  # the exception's last line
    seconds: float
    traceback: str | None = None  # the whole traceback, stored as runs/<id>.error.txt
    transient: bool = False  # the error may not repeat (see is_transient)
    fallback: str | None = None  # why a population's runs were trained one at a time
    checkpoint: str | None = None  # removed once this outcome is stored (its run's last one)


@dataclass(frozen=True)
class GpuSlots:
    """One lock file per local GPU; a worker takes the first free one and keeps it for life."""

    lock_dir: str
    count: int


def is_transient(exc: BaseException) -> bool:
    """Whether an error depends on the machine's state rather than on the run itself."""
    return isinstance(exc, TRANSIENT_ERRORS) or type(exc).__name__ == "OutOfMemoryError"


# (lock_dir, lock fd, GPU index): the GPU this worker process holds for its whole life
_claimed_gpu: tuple[str, int, int] | None = None


def gpu_device(slots: GpuSlots) -> str:
    """The GPU this worker holds (the first free one, taken on the first call, kept for life)."""
    global _claimed_gpu
    if _claimed_gpu is not None and _claimed_gpu[0] == slots.lock_dir:
        return f"cuda:{_claimed_gpu[2]}"
    if _claimed_gpu is not None:  # a reused worker from an earlier sweep: release its lock
        os.close(_claimed_gpu[1])
        _claimed_gpu = None
    for index in range(slots.count):
        fd = os.open(os.path.join(slots.lock_dir, f"gpu{index}.lock"), os.O_CREAT | os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _claimed_gpu = (slots.lock_dir, fd, index)
        return f"cuda:{index}"
    raise RuntimeError(f"all {slots.count} GPUs are held by other workers")


def release_gpu() -> None:
    """Give up this process's GPU lock (tests; a worker keeps it until it exits)."""
    global _claimed_gpu
    if _claimed_gpu is not None:
        os.close(_claimed_gpu[1])
        _claimed_gpu = None


def _device(spec: RunSpec, gpus: GpuSlots | None) -> str:
    return gpu_device(gpus) if gpus is not None and spec.device == "cuda" else spec.device


def execute(
    spec: RunSpec, gpus: GpuSlots | None = None, checkpoints: store.Checkpoints | None = None
) -> Outcome:
    """Train one run and return its result; writes nothing but its checkpoints.

    An exception inside the run is returned as the outcome's error, so one broken run does not
    stop the sweep; a diverged run is a normal result (``summary["diverged_at"]``).
    """
    import ogan  # the first import in a fresh worker takes seconds: keep it out of the timing

    t0 = time.perf_counter()
    device = _device(spec, gpus)
    saving = {} if checkpoints is None else checkpoints.kwargs([spec])
    try:
        result = ogan.train(**{**spec.train_kwargs(), "device": device}, threads=1, **saving)
        env = store.environment(device, threads=1)
    except Exception as exc:  # reported by the parent, classified for its retry advice
        last = traceback.format_exception_only(exc)[-1].strip()
        full = "".join(traceback.format_exception(exc))
        return Outcome(spec, None, None, last, time.perf_counter() - t0, full, is_transient(exc))
    result.summary["time_per_step_alone"] = median_step_time(result)
    path = saving.get("checkpoint")
    return Outcome(spec, result, env, None, time.perf_counter() - t0, checkpoint=path)


def leave_interrupts_to_the_parent() -> None:
    """A local worker's initializer (:func:`bench.runner.local_parallel`): ignore SIGINT, so
    that Ctrl-C stops the sweep through the parent alone, which stores the finished runs and
    then stops the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def execute_population(
    specs: tuple[RunSpec, ...],
    gpus: GpuSlots | None = None,
    checkpoints: store.Checkpoints | None = None,
) -> list[Outcome]:
    """Train one population; one :class:`Outcome` per member.

    ``checkpoints``: the population keeps one checkpoint; its last member's outcome carries
    the path, so the parent removes the file once every member is stored.

    If the population raises, its members are trained one at a time (:func:`execute`: each
    fails or succeeds on its own), and every outcome says why (``fallback``: the parent says it
    once per optimizer); a diverged member is a normal result. Each member's ``seconds`` is its
    share of the population's time.
    """
    if len(specs) == 1:
        return [execute(specs[0], gpus, checkpoints)]
    import ogan  # the first import in a fresh worker takes seconds: keep it out of the timing

    t0 = time.perf_counter()
    device = _device(specs[0], gpus)
    kwargs = {**specs[0].train_kwargs(), "device": device}
    del kwargs["seed"]
    saving = {} if checkpoints is None else checkpoints.kwargs(specs)
    try:
        seeds = [s.seed for s in specs]
        results = ogan.train_population(**kwargs, seeds=seeds, threads=1, **saving)
        env = store.environment(device, threads=1)
    except Exception as exc:
        # A workload's networks may do what torch.vmap cannot batch (e.g. dropout, .item() in
        # forward): its members still run, one at a time, each with its own error if it fails.
        error = traceback.format_exception_only(type(exc), exc)[-1].strip()
        why = f"the population of {len(specs)} failed ({error})"
        return [dataclasses.replace(execute(spec, gpus, checkpoints), fallback=why)
                for spec in specs]  # fmt: skip
    share = (time.perf_counter() - t0) / len(specs)
    alone = _time_alone(specs[0], device)
    for r in results:
        r.summary["time_per_step_alone"] = alone
    outcomes = [Outcome(spec, r, env, None, share) for spec, r in zip(specs, results)]
    outcomes[-1].checkpoint = saving.get("checkpoint")
    return outcomes


def _time_alone(spec: RunSpec, device: str) -> float:
    """The step time of ``spec`` trained alone for :data:`ALONE_STEPS` steps (NaN if it fails:
    the population's results stand without it)."""
    from ogan.game.train import step_times

    kwargs = {**spec.train_kwargs(), "device": device}
    kwargs["steps"] = min(ALONE_STEPS, spec.steps)
    del kwargs["eval_every"]
    try:  # no evaluation: an Inception FID on the CPU would cost more than the steps
        return float(step_times(**kwargs, threads=1).median())
    except Exception:  # a timing aid must not fail a population that trained
        return math.nan


def median_step_time(result: Any) -> float:
    """The median of a run's per-step training times (``trace["step_time"]``)."""
    times = result.trace.get("step_time")
    return float(times.median()) if times is not None and len(times) else math.nan
