"""Interleaved timing of two callables: the only way a ratio survives a shared, noisy machine.

Absolute times drift between runs (other jobs, frequency scaling); a ratio of two things timed
in alternation within the same seconds does not. Each round times a block of calls of one side,
then of the other, alternating which goes first; the ratio is of the medians over rounds.

Which clock: on one thread, the process's CPU time (``CLOCK_PROCESS_CPUTIME_ID``). On a machine
with more runnable work than cores the scheduler takes the process off its core for whole
time slices (milliseconds), and a block's wall time then counts how many slices landed in it:
Ortho(Adam) / Adam on one thread measured 0.87 to 1.42 in wall time across four runs beside two
busy loops on 2 cores, and 2.32 once beside a loaded suite, against 1.30–1.34 idle; in CPU time
the same four runs gave 1.30–1.53. CPU time counts only the time the process ran (what it still
sees of other work is the cache refills after the process is put back), so it is the clock for
single-threaded cases. Multi-threaded CPU cases keep wall time: CPU time would add
every OpenMP thread's spinning at barriers, and parallel speed-up is what they measure. So do
CUDA cases, whose work runs on the device.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Measurement:
    subject_s: float  # median seconds per call
    baseline_s: float
    ratio: float  # subject / baseline
    rounds: int
    spread: float  # interquartile range of the per-round ratios, relative to the ratio
    clock: str = "wall"  # "wall" (time.perf_counter) or "process" (time.process_time)

    def to_dict(self) -> dict[str, float | int | str]:
        return {
            "subject_s": self.subject_s,
            "baseline_s": self.baseline_s,
            "ratio": self.ratio,
            "rounds": self.rounds,
            "spread": self.spread,
            "clock": self.clock,
        }


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "process": time.process_time}


def _calls_per_block(fn: Callable[[], object], block_s: float, now: Callable[[], float]) -> int:
    t0 = now()
    fn()
    once = max(now() - t0, 1e-7)
    return max(1, int(block_s / once))


def _time_block(fn: Callable[[], object], n: int, now: Callable[[], float]) -> float:
    t0 = now()
    for _ in range(n):
        fn()
    return (now() - t0) / n


def interleaved(
    subject: Callable[[], object],
    baseline: Callable[[], object],
    *,
    rounds: int = 21,
    block_s: float = 0.02,
    warmup: int = 3,
    clock: str = "wall",
) -> Measurement:
    """Median time per call of ``subject`` and ``baseline`` measured in alternation, on
    ``clock`` ("wall", or "process" for single-threaded CPU work: see the module's note)."""
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {sorted(CLOCKS)}, got {clock!r}")
    now = CLOCKS[clock]
    for _ in range(warmup):
        subject()
        baseline()
    n_subject = _calls_per_block(subject, block_s, now)
    n_baseline = _calls_per_block(baseline, block_s, now)
    s_times, b_times, ratios = [], [], []
    enabled = gc.isenabled()
    gc.disable()  # a collection inside one block would land on one side only
    try:
        for r in range(rounds):
            if r % 2 == 0:
                s = _time_block(subject, n_subject, now)
                b = _time_block(baseline, n_baseline, now)
            else:
                b = _time_block(baseline, n_baseline, now)
                s = _time_block(subject, n_subject, now)
            s_times.append(s)
            b_times.append(b)
            ratios.append(s / b)
    finally:
        if enabled:
            gc.enable()
    s_med, b_med = statistics.median(s_times), statistics.median(b_times)
    q = statistics.quantiles(ratios, n=4) if len(ratios) >= 4 else [min(ratios), 0, max(ratios)]
    ratio = s_med / b_med
    return Measurement(s_med, b_med, ratio, rounds, (q[2] - q[0]) / ratio, clock)
