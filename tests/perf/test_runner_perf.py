"""The sweep runner on the quick preset: 2 workers against 1, and re-running a finished sweep.

Run with ``pytest tests/perf/test_runner_perf.py -m perf -s``. Each timing is a whole
``python -m bench run quick`` command in a subprocess (interpreter start, imports, worker start-up
and writing included): what a user waits for. Both speeds are measured in the same test, so the
ratio holds on a noisy machine where absolute times drift.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.perf

MIN_SPEEDUP = 1.6  # 2 workers vs 1 on 2 cores: worker start-up and the tail cost the rest
MAX_RESUME_S = 5.0
MAX_QUICK_S = 60.0


def bench_run(out: Path, *args: str) -> float:
    """Seconds for one ``python -m bench run quick`` command."""
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bench", "run", "quick", "--device", "cpu", "--out", out, *args],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return time.perf_counter() - t0


def test_two_workers_run_the_quick_preset_at_least_1_6x_faster_than_one(benchmark, tmp_path):
    one = bench_run(tmp_path / "one", "--jobs", "1")
    times: list[float] = []
    benchmark.pedantic(
        lambda: times.append(bench_run(tmp_path / "two", "--jobs", "2", "--force")),
        rounds=1,
        iterations=1,
    )
    two = times[0]
    benchmark.extra_info.update(one_worker_s=one, two_workers_s=two, speedup=one / two)
    print(f"\nquick preset: 1 worker {one:.1f} s, 2 workers {two:.1f} s, speedup {one / two:.2f}x")
    assert two <= MAX_QUICK_S
    assert one / two >= MIN_SPEEDUP


def test_rerunning_a_finished_sweep_takes_at_most_5_seconds(benchmark, tmp_path):
    bench_run(tmp_path, "--jobs", "2")
    times: list[float] = []
    benchmark.pedantic(lambda: times.append(bench_run(tmp_path)), rounds=3, iterations=1)
    benchmark.extra_info.update(resume_s=min(times))
    print(f"\nre-running the finished quick preset: {', '.join(f'{t:.2f}' for t in times)} s")
    assert max(times) <= MAX_RESUME_S
