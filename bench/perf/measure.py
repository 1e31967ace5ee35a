"""Interleaved timing of two callables: the only way a ratio survives a shared, noisy machine.

Absolute times drift between runs (other jobs, frequency scaling); a ratio of two things timed
in alternation within the same seconds does not. Each round times a block of calls of one side,
then of the other, alternating which goes first; the ratio is of the medians over rounds.
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

    def to_dict(self) -> dict[str, float | int]:
        return {
            "subject_s": self.subject_s,
            "baseline_s": self.baseline_s,
            "ratio": self.ratio,
            "rounds": self.rounds,
            "spread": self.spread,
        }


def _calls_per_block(fn: Callable[[], object], block_s: float) -> int:
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    return max(1, int(block_s / once))


def _time_block(fn: Callable[[], object], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def interleaved(
    subject: Callable[[], object],
    baseline: Callable[[], object],
    *,
    rounds: int = 21,
    block_s: float = 0.02,
    warmup: int = 3,
) -> Measurement:
    """Median time per call of ``subject`` and ``baseline`` measured in alternation."""
    for _ in range(warmup):
        subject()
        baseline()
    n_subject = _calls_per_block(subject, block_s)
    n_baseline = _calls_per_block(baseline, block_s)
    s_times, b_times, ratios = [], [], []
    enabled = gc.isenabled()
    gc.disable()  # a collection inside one block would land on one side only
    try:
        for r in range(rounds):
            if r % 2 == 0:
                s = _time_block(subject, n_subject)
                b = _time_block(baseline, n_baseline)
            else:
                b = _time_block(baseline, n_baseline)
                s = _time_block(subject, n_subject)
            s_times.append(s)
            b_times.append(b)
            ratios.append(s / b)
    finally:
        if enabled:
            gc.enable()
    s_med, b_med = statistics.median(s_times), statistics.median(b_times)
    q = statistics.quantiles(ratios, n=4) if len(ratios) >= 4 else [min(ratios), 0, max(ratios)]
    ratio = s_med / b_med
    return Measurement(s_med, b_med, ratio, rounds, (q[2] - q[0]) / ratio)
