"""``python -m bench perf``: speed benchmarks, the ratio gate, and the GPU check.

    python -m bench perf                    benchmarks + full gate -> results/perf/<name>.json
    python -m bench perf --quick            the quick gate (what make test runs)
    python -m bench perf --compare A [B]    ratios of two saved runs (B: the baseline)
    python -m bench perf --device cuda      the GPU check -> results/perf/<name>-cuda.json
    python -m bench perf --summary X.json   a GPU check's record as markdown (README's GPU section)
    python -m bench perf --update-baseline  also write results/perf/baseline.json (each case
                                            the median of 3 interpreters: --repeats)
    python -m bench perf --quick --threads 1    on one thread, against baseline-threads1.json
                                            (what make test's gate runs: see gate.baseline_path)

Exit code 1 when a ratio regressed beyond the tolerance against the committed baseline.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from bench.errors import BenchError
from bench.perf import gate
from bench.perf.cases import CASES, Settings

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "results" / "perf"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench perf", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="the quick gate only (no pytest-benchmark)")
    p.add_argument("--name", help="result name (default: a timestamp; with --device cuda, the "
                   "GPU's model, e.g. h100 -> h100-cuda.json)")  # fmt: skip
    p.add_argument("--out", type=Path, default=OUT, help="where results go (default results/perf)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds per case")
    p.add_argument("--case", action="append", choices=list(CASES), help="only these cases")
    p.add_argument("--compare", nargs="+", type=Path, metavar="RUN.json",
                   help="compare a saved run with another (default: the baseline)")  # fmt: skip
    p.add_argument("--summary", type=Path, metavar="CUDA.json",
                   help="print a --device cuda record as markdown (the README's GPU section)")
    p.add_argument("--update-baseline", action="store_true", help="write baseline.json")
    p.add_argument("--repeats", type=int, default=None,
                   help="measure each case N times, each in a fresh interpreter, and keep the "
                   "median ratio (default 3 with --update-baseline, else 1)")  # fmt: skip
    p.add_argument("--no-benchmarks", action="store_true", help="skip the pytest-benchmark suite")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads in every case (default torch's; each has its baseline)")
    return p


def compare(paths: list[Path]) -> int:
    first = gate.read_cases(paths[0])
    second = gate.read_cases(paths[1] if len(paths) > 1 else gate.BASELINE)
    print(f"{paths[0]} vs {paths[1] if len(paths) > 1 else gate.BASELINE}")
    print(gate.table(first, second))
    return 0


def _pytest_benchmarks(out: Path, name: str) -> None:
    tests = ROOT / "tests" / "perf"
    if not tests.is_dir():
        print(f"(no {tests}: skipping the pytest-benchmark suite; it needs a source checkout)")
        return
    json_path = out / f"{name}-pytest-benchmark.json"
    cmd = [sys.executable, "-m", "pytest", str(tests), "-q", "-m", "perf", "--benchmark-enable"]
    cmd += ["--benchmark-json", str(json_path), "-p", "no:cacheprovider"]
    subprocess.run(cmd, cwd=ROOT, check=False)


def _summary(path: Path) -> int:
    import json

    from bench.perf.cuda import summary

    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchError(f"cannot read {path} as a perf record: {exc}") from None
    if not isinstance(record, dict) or "machine" not in record:
        raise BenchError(f"{path} is not a `bench perf --device cuda` record (no 'machine')")
    print(summary(record), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.compare:
        return compare(args.compare)
    if args.summary:
        return _summary(args.summary)
    name = args.name or datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot create {args.out}: {exc.strerror}") from None
    if args.device == "cuda":
        import torch

        from bench.perf.cuda import check, device_slug

        if not args.name and torch.cuda.is_available():
            name = device_slug(torch.cuda.get_device_name())
        path = args.out / f"{name}-cuda.json"
        result = check(save=lambda partial: gate.write_record(path, partial))
        gate.write_record(path, result)
        print(f"wrote {path}")
        if not result["correctness"]["passed"]:
            print(
                "the CUDA projection does not match the reference (see the JSON)", file=sys.stderr
            )
            return 1
        if not result["correctness"].get("graph_replay_passed", True):
            print("the CUDA graph's replay does not match eager (see the JSON)", file=sys.stderr)
            return 1
        return 0
    if args.threads is not None and args.threads < 1:
        raise BenchError(f"--threads must be >= 1, got {args.threads}")
    if args.repeats is not None and args.repeats < 1:
        raise BenchError(f"--repeats must be >= 1, got {args.repeats}")
    if not (args.quick or args.no_benchmarks):
        _pytest_benchmarks(args.out, name)
    settings = Settings(quick=args.quick, threads=args.threads)
    rounds = args.rounds or (9 if args.quick else 21)
    repeats = args.repeats or (3 if args.update_baseline else 1)
    results = gate.run(args.case, settings, rounds=rounds, repeats=repeats)
    baseline = gate.baseline_path(settings)
    record = gate.report(results, settings, repeats=repeats)
    path = args.out / f"{name}.json"
    gate.write_record(path, record)
    print(gate.table(record["cases"]))
    print(f"wrote {path}  (tolerance {gate.TOLERANCE:.0%} over the baseline ratio)")
    if args.update_baseline:
        gate.write_record(baseline, record)
        print(f"wrote {baseline}")
    regressed = [r.case for r in results if r.regressed]
    if regressed:
        print(f"REGRESSED: {', '.join(regressed)}", file=sys.stderr)
        return 1
    return 0
