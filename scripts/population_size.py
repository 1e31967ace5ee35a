"""Which ``--population`` to give ``bench run`` on a CPU: a member's share of a population step
at each size, for one arm of a sweep file, against the same arm's standalone step.

A population pays on a CPU only while a step is bound by dispatch; past some size its batched
activations leave the cache and a member-step costs more again (README, Populations). Where that
size lies depends on the workload's networks and batch and on the CPU, so this measures it for
the arm you are about to run: for each size P it builds a population of the arm's first P seeds
(``--population 1``'s standalone game for P = 1), exactly as ``bench run`` would (the sweep's
workload options, flush included, one thread, statistics on, the per-step finite check and
read-back), and steps all of them in turn, one step each, so that whatever else the machine
does falls on every size alike. It prints the median step, the member-step (the step over P),
and the member-step against the standalone step (below 1: the population is cheaper per seed).

    python scripts/population_size.py \\
        bench/sweeps/unrolled-ring-25k-cpu-ortho-d-vs-lookahead.toml \\
        --arm "lookahead(adam)" --sizes 1 4 8 12 16 --steps 200

Only timing: no run is stored and nothing is compared (the members' numbers are
``tests/test_population.py``'s). ``--json FILE`` also writes the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable

import torch

from bench.config import load_sweep
from bench.errors import BenchError
from bench.perf.cases import _kernel_step, _one_thread, _population_stepper
from bench.store import _cpu_name
from ogan.game import Game
from ogan.game.config import resolve
from ogan.game.loop import flush_denormals, torch_threads


def steppers(path: str, arm: str, sizes: list[int]) -> tuple[dict[int, Callable[[], object]], bool]:
    """One step function per size (P = 1 standalone), and whether the arm flushes subnormals."""
    every = load_sweep(path, device="cpu").specs
    specs = [s for s in every if s.label == arm]
    if not specs:
        labels = sorted({s.label for s in every})
        raise BenchError(f"--arm {arm!r} is not an arm of {path}; its arms: {', '.join(labels)}")
    if max(sizes) > len(specs):
        raise BenchError(f"--sizes: {max(sizes)} members, but {arm!r} has {len(specs)} seeds")
    configs = []
    for spec in specs[: max(sizes)]:
        kwargs = spec.train_kwargs()
        kwargs.update(device="cpu", threads=1)
        configs.append(resolve(**kwargs))
    out: dict[int, Callable[[], object]] = {}
    for p in sizes:
        if p == 1:
            with torch.random.fork_rng():  # building players seeds the global generator
                # on one thread as the populations' steps are (the same ~1 µs a step)
                out[p] = _one_thread(_kernel_step(Game(configs[0])))
        else:
            out[p] = _population_stepper(configs[:p])
    return out, bool(configs[0].flush_denormal)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", help="a sweep file, or an embedded sweep's name")
    parser.add_argument("--arm", required=True, help="the arm's label, as the report names it")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8, 12, 16])
    parser.add_argument("--steps", type=int, default=200, help="timed steps of each size")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--json", help="also write the table here")
    args = parser.parse_args(argv)
    sizes = sorted(set(args.sizes))
    if sizes[0] < 1 or 1 not in sizes:
        parser.error("--sizes must hold 1 (the standalone step every ratio is against) and no "
                     "size below it")  # fmt: skip
    try:
        steps, flush = steppers(args.sweep, args.arm, sizes)
    except BenchError as exc:
        print(f"population_size: error: {exc}", file=sys.stderr)
        return 2
    times: dict[int, list[float]] = {p: [] for p in sizes}
    with torch_threads(1), flush_denormals(flush):
        for i in range(args.warmup + args.steps):
            for p in sizes:
                t0 = time.perf_counter()
                steps[p]()
                if i >= args.warmup:
                    times[p].append(time.perf_counter() - t0)
    alone = statistics.median(times[1])
    rows = []
    print(f"{args.arm} in {args.sweep}, one thread, median of {args.steps} steps, sizes in turn")
    print(f"{'P':>4} {'step ms':>9} {'member ms':>10} {'vs alone':>9} {'member-steps/s':>15}")
    for p in sizes:
        step = statistics.median(times[p])
        row = {"P": p, "step_ms": step * 1e3, "member_ms": step / p * 1e3,
               "ratio": step / p / alone, "member_steps_per_s": p / step}  # fmt: skip
        rows.append(row)
        print(f"{p:>4} {row['step_ms']:9.2f} {row['member_ms']:10.3f} {row['ratio']:9.3f} "
              f"{row['member_steps_per_s']:15.0f}")  # fmt: skip
    if args.json:
        meta = {"sweep": args.sweep, "arm": args.arm, "steps": args.steps, "flush": flush,
                "torch": torch.__version__, "cpu": _cpu_name()}  # fmt: skip
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"meta": meta, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
