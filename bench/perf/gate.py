"""The speed gate: ratios measured interleaved, compared with a committed baseline.

A case fails when its ratio (subject time / baseline time) exceeds the committed baseline ratio
by more than ``TOLERANCE`` *and* misses its target. The tolerance is wide because the machines
are shared and noisy (a ratio against a per-tensor Python loop moves 2× between quiet runs); the
slowdowns the gate exists to catch (a fused path falling back to a per-tensor loop, statistics
added to the hot path) move these ratios by several times.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import Any

import torch

from bench.errors import BenchError
from bench.perf.cases import CASES, Settings
from bench.perf.measure import Measurement, interleaved
from ogan.files import atomic_write_bytes

DEFAULT = Settings()
TOLERANCE = 0.5
"""A ratio may exceed its baseline by 50% before the gate fails."""
ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "results" / "perf" / "baseline.json"


@dataclass(frozen=True)
class Result:
    case: str
    measurement: Measurement
    bound: float  # the target
    baseline_ratio: float | None  # the committed one, if any

    @property
    def meets_target(self) -> bool:
        return self.measurement.ratio <= self.bound

    @property
    def regressed(self) -> bool:
        if self.baseline_ratio is None:
            return False
        limit = max(self.baseline_ratio * (1 + TOLERANCE), self.bound)
        return self.measurement.ratio > limit

    def to_dict(self) -> dict[str, Any]:
        c = CASES[self.case]
        return {
            "description": c.description,
            "subject": c.subject,
            "baseline": c.baseline,
            **self.measurement.to_dict(),
            "target": self.bound,
            "meets_target": self.meets_target,
            "baseline_ratio": self.baseline_ratio,
            "regressed": self.regressed,
        }


def read_cases(path: Path) -> dict[str, dict]:
    """The ``cases`` of a saved perf run; a missing or damaged file is a one-line BenchError."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))["cases"]
    except (OSError, ValueError, KeyError) as exc:
        raise BenchError(f"cannot read perf results {path}: {exc}") from None


def write_record(path: Path, record: dict) -> None:
    """Write a perf run atomically (a Ctrl-C never leaves a truncated baseline), cases in order."""
    atomic_write_bytes(path, json.dumps(record, indent=1, default=str).encode())


def baseline_path(settings: Settings = DEFAULT) -> Path:
    """The committed baseline these settings compare against: ``baseline.json`` for torch's
    default threads, ``baseline-threads<N>.json`` for N threads (the fused kernel parallelises
    over threads and a one-tensor ``_foreach_add_`` does not, so their ratio depends on N)."""
    if settings.threads is None:
        return BASELINE
    return BASELINE.with_name(f"baseline-threads{settings.threads}.json")


def load_baseline(path: Path = BASELINE) -> dict[str, float]:
    if not path.is_file():
        return {}
    return {name: case["ratio"] for name, case in read_cases(path).items()}


def run(
    names: list[str] | None = None,
    settings: Settings = DEFAULT,
    *,
    rounds: int = 21,
    baseline: dict[str, float] | None = None,
    isolate: bool = True,
    repeats: int = 1,
) -> list[Result]:
    """Measure the chosen cases (all, or the quick ones with ``settings.quick``).

    With ``isolate`` each case runs in a fresh interpreter: cases leave allocator and cache state
    behind (the DCGAN ones allocate hundreds of MB) that measurably skews the next one. With
    ``repeats`` > 1 each case is measured that many times, each in its own interpreter, and keeps
    the measurement with the median ratio: a ratio also moves with where one process's tensors
    landed (Ortho(Adam) / Adam on one thread, idle, process clock: from 1.21 to 1.58 in different
    interpreters, 1.31–1.34 in three), so a baseline is recorded as the median of several. A
    case that looks regressed is measured once more and keeps the better of the two.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if names is None:
        names = [n for n, c in CASES.items() if c.quick or not settings.quick]
    if settings.device.startswith("cuda"):
        names = [n for n in names if CASES[n].cuda]
    names = sorted(names, key=lambda n: CASES[n].heavy)  # stable: the light ones first
    baseline = load_baseline(baseline_path(settings)) if baseline is None else baseline
    once = _measure_isolated if isolate else measure
    results = []
    for name in names:
        tries = [once(name, settings, rounds) for _ in range(repeats)]
        tries.sort(key=attrgetter("ratio"))
        result = Result(name, tries[len(tries) // 2], CASES[name].bound, baseline.get(name))
        if result.regressed:  # confirm before failing: a real slowdown survives a second look
            again = once(name, settings, rounds)
            if again.ratio < result.measurement.ratio:
                result = Result(name, again, result.bound, result.baseline_ratio)
        results.append(result)
    return results


def clock(settings: Settings) -> str:
    """The clock a case is timed on: the process's CPU time on one CPU thread, which other work
    on the machine inflates far less than wall time; wall time otherwise (bench/perf/measure.py
    says why)."""
    return "process" if settings.threads == 1 and settings.device == "cpu" else "wall"


def measure(name: str, settings: Settings, rounds: int) -> Measurement:
    if settings.threads is not None:  # the fused kernel's OpenMP threads follow torch's
        torch.set_num_threads(settings.threads)
    subject, reference = CASES[name].build(settings)
    return interleaved(subject, reference, rounds=rounds, clock=clock(settings))


def _measure_isolated(name: str, settings: Settings, rounds: int) -> Measurement:
    code = (
        "import json, sys; from bench.perf.gate import measure;"
        "from bench.perf.cases import Settings;"
        "a = json.loads(sys.argv[1]);"
        "m = measure(a['name'], Settings(**a['settings']), a['rounds']);"
        "print(json.dumps(m.to_dict()))"
    )
    arg = json.dumps({"name": name, "settings": dataclasses.asdict(settings), "rounds": rounds})
    proc = subprocess.run(
        [sys.executable, "-c", code, arg], capture_output=True, text=True, cwd=ROOT, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"perf case {name} failed:\n{proc.stderr[-2000:]}")
    return Measurement(**json.loads(proc.stdout.strip().splitlines()[-1]))


def machine() -> dict[str, Any]:
    from bench.store import environment
    from ogan import _allocator

    device = "cuda" if torch.cuda.is_available() else "cpu"
    env = environment(device)
    env["cpu_count"] = __import__("os").cpu_count()
    # the cases run in their own interpreters: a population case's is set as a population sets it
    env["allocator"] = _allocator.for_populations()
    env["machine"] = platform.machine()
    return env


def report(results: list[Result], settings: Settings, *, repeats: int = 1) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {
            "device": settings.device,
            "quick": settings.quick,
            "force_impl": settings.force_impl,
            "threads": settings.threads,
            "clock": clock(settings),
            "repeats": repeats,
        },
        "tolerance": TOLERANCE,
        "machine": machine(),
        "cases": {r.case: r.to_dict() for r in results},
    }


def table(cases: dict[str, dict[str, Any]], other: dict[str, dict[str, Any]] | None = None) -> str:
    """A fixed-width table of ratios (and of a second run's, for --compare)."""
    w = max([18, *map(len, cases)])  # the case names' column fits the longest
    head = f"{'case':<{w}} {'subject':>12} {'baseline':>12} {'ratio':>8} {'target':>8}"
    head += f" {'base':>8} {'status':>10}" if other is None else f" {'other':>8} {'change':>8}"
    lines = [head, "-" * len(head)]
    for name, c in cases.items():
        row = (f"{name:<{w}} {c['subject_s'] * 1e3:>10.3f}ms {c['baseline_s'] * 1e3:>10.3f}ms "
               f"{c['ratio']:>8.3f} {c['target']:>8.3f}")  # fmt: skip
        if other is None:
            base = c.get("baseline_ratio")
            status = (
                "REGRESSED" if c.get("regressed") else ("ok" if c["meets_target"] else "off-target")
            )
            row += f" {'-' if base is None else f'{base:.3f}':>8} {status:>10}"
        elif name in other:
            o = other[name]["ratio"]
            row += f" {o:>8.3f} {c['ratio'] / o - 1:>+8.1%}"
        lines.append(row)
    return "\n".join(lines)


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:,.0f} ms" if ms >= 100 else f"{ms:.2f} ms" if ms >= 1 else f"{ms:.3f} ms"


def ratio_table(cases: Any) -> list[str]:
    """Markdown rows of interleaved ratio cases (a saved run's ``cases``, or the GPU check's
    ``timings``): header, then each case with both times, its ratio and its target."""
    lines = ["| case | subject | baseline | time ratio | target |", "|---|---|---|---|---|"]
    for c in cases:
        ok = "≤" if c["ratio"] <= c["target"] else "**>**"
        lines.append(
            f"| {c['description']} | {c['subject']} {_ms(c['subject_s'])} | "
            f"{c['baseline']} {_ms(c['baseline_s'])} | {c['ratio']:.3f} | {ok} {c['target']:.3g} |"
        )
    return lines


def _repeated(repeats: int) -> str:
    return f", the median of {repeats} interpreters" if repeats > 1 else ""


def markdown(record: dict[str, Any]) -> str:
    """The README's performance table, rendered from a saved run (so the README cannot drift)."""
    m = record["machine"]
    rounds = next(iter(record["cases"].values()))["rounds"]
    threads = record["settings"].get("threads") or m["threads"]  # None: torch's default
    on = {"process": " of the process's CPU time", "wall": " of wall time"}.get(
        record["settings"].get("clock"), ""
    )
    lines = [
        f"Measured {record['date'][:10]} on {m['cpu']} ({m.get('cpu_count')} cores, torch "
        f"{m['torch']}, {threads} torch threads); each ratio is the median of {rounds} "
        f"interleaved rounds{on}{_repeated(record['settings'].get('repeats', 1))}:",
        "",
        *ratio_table(record["cases"].values()),
    ]
    for name, added in record.get("added", {}).items():  # a case measured later, on its own
        m = added["machine"]
        lines += ["", f"`{name}` was added on {added['date'][:10]}, measured alone on {m['cpu']} "
                  f"({m.get('cpu_count')} cores, torch {m['torch']}, {m['threads']} torch "
                  f"threads): `{added['command']}`."]  # fmt: skip
    return "\n".join(lines)
