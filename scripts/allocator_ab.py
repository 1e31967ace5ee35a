"""What ogan's allocator setting (ogan/_allocator.py) does to a CPU population step: glibc's
defaults (``OGAN_MALLOC=default``) against ogan's thresholds, alternated in fresh interpreters.

Each measurement is the perf gate's population case (``population_vs_single_runs``: 8 members of
Adam, one thread, statistics on, the population step with its per-step read-back against one
step of each of the 8 standalone games), timed here as the best of 5 x 100 steps each, with the
minor page faults per step.

    python scripts/allocator_ab.py                 # mog-ring, digits, unrolled ring; 3 rounds
    python scripts/allocator_ab.py --rounds 1 --case digits
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "mog-ring": ("mog-ring", {}),
    "digits": ("digits", {}),
    "unrolled": ("mog-ring", {"arch": "unrolled"}),
}
ONE = """
import json, resource, sys, time
from bench.perf.cases import Settings, population_vs_single_runs
workload, options = sys.argv[1], json.loads(sys.argv[2])
build = population_vs_single_runs(workload, {"name": "adam", "lr": 2e-4}, **options)
population, standalone = build(Settings())  # the gate case's pair, one thread each
def best(fn, n=100):
    out = []
    for _ in range(5):
        for _ in range(10):
            fn()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        out.append(((time.perf_counter() - t0) / n,
                    (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / n))
    return min(out)
(p, pf), (s, sf) = best(population), best(standalone)
print(json.dumps({"population_ms": 1e3 * p, "standalone_ms": 1e3 * s, "ratio": p / s,
                  "population_faults": pf, "standalone_faults": sf}))
"""


def measure(case: str, setting: str) -> dict:
    workload, options = CASES[case]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "OGAN_MALLOC"))}
    if setting == "default":
        env["OGAN_MALLOC"] = "default"
    out = subprocess.run([sys.executable, "-c", ONE, workload, json.dumps(options)], env=env,
                         cwd=ROOT, capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--case", action="append", choices=sorted(CASES))
    args = parser.parse_args()
    print(f"{'case':10} {'round':>5} {'allocator':>9} {'population':>11} {'standalone':>11} "
          f"{'ratio':>6} {'faults/step':>11}")  # fmt: skip
    for r in range(1, args.rounds + 1):
        for case in args.case or list(CASES):
            for setting in ("default", "ogan"):
                m = measure(case, setting)
                print(f"{case:10} {r:5} {setting:>9} {m['population_ms']:9.2f}ms "
                      f"{m['standalone_ms']:9.2f}ms {m['ratio']:6.3f} "
                      f"{m['population_faults']:11.0f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
