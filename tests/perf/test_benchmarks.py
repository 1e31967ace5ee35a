"""pytest-benchmark of every perf case's two sides (python -m bench perf runs this suite).

Absolute times for people; the gate (bench/perf/gate.py) judges ratios measured interleaved.
The Fréchet case has its own benchmark in test_frechet_perf.py.
"""

from __future__ import annotations

import pytest

from bench.perf.cases import CASES, Settings

pytestmark = pytest.mark.perf

NAMES = [name for name in CASES if name != "frechet"]


@pytest.mark.parametrize("side", ["subject", "baseline"])
@pytest.mark.parametrize("name", NAMES)
def test_case(benchmark, name, side):
    case = CASES[name]
    subject, baseline = case.build(Settings())
    benchmark.group = f"{name}: {case.description}"
    benchmark.extra_info["label"] = case.subject if side == "subject" else case.baseline
    benchmark(subject if side == "subject" else baseline)
