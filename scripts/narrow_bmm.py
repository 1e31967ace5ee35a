"""What the stacked linear layer's own backward (ogan/game/stacked.py: ``StackedLinear``, ``bmm``)
does to a CPU population step, and why it computes some products another way.

Part 1 times ``torch.bmm`` for the products of ogan's MLP layers (8 members, 256 rows, one
thread): each layer shape's forward, input gradient and weight gradient, as ``a @ b``, as
``(bᵀ aᵀ)ᵀ``, and as ``stacked.bmm`` computes it. Part 2 times the perf gate's population step
(8 members of Adam, one thread, statistics on, with its per-step read-back) with
``StackedLinear`` against autograd's formula for ``torch.baddbmm(bias, x, weight.mT)`` (what the
layer was before): two populations of the same seeds in this one process, stepped alternately,
one step each in turn, so that whatever else the machine does falls on both alike (on a shared
VM, best-of-n timings of one and then the other moved by ±5% from run to run); the median and
10th percentile of each one's step times, and their ratios.

    python scripts/narrow_bmm.py                  # both parts, 1,000 steps each per case
    python scripts/narrow_bmm.py --steps 300 --case mog-ring
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from bench.perf.cases import _population_stepper
from ogan.game import stacked
from ogan.game.config import resolve

MEMBERS, ROWS = 8, 256
SHAPES = [(16, 128), (128, 128), (128, 2), (2, 128), (128, 1), (64, 128), (128, 100)]
CASES = {
    "mog-ring": ("mog-ring", {"batch_size": 256}),
    "seed-mlp": ("seed-mlp", {}),
    "digits": ("digits", {}),
    "unrolled": ("mog-ring", {"arch": "unrolled"}),
}


def best(fn: Callable[[], object], n: int = 100, repeats: int = 5) -> float:
    """The fastest of ``repeats`` means over ``n`` calls, in seconds (after 10 warm-up calls)."""
    out = []
    for _ in range(repeats):
        for _ in range(10):
            fn()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        out.append((time.perf_counter() - t0) / n)
    return min(out)


def orientations() -> None:
    print(f"torch.bmm, {MEMBERS} members x {ROWS} rows, one thread, in µs")
    print(f"{'layer (in, out)':>16} {'product':>12} {'a @ b':>7} {'(bᵀaᵀ)ᵀ':>8} {'ogan':>6}")
    for fan_in, fan_out in SHAPES:
        x, g = torch.randn(MEMBERS, ROWS, fan_in), torch.randn(MEMBERS, ROWS, fan_out)
        w = torch.randn(MEMBERS, fan_out, fan_in)
        for name, a, b in [("forward", x, w.mT), ("input grad", g, w), ("weight grad", g.mT, x)]:
            ways = [torch.bmm, lambda a, b: torch.bmm(b.mT, a.mT).mT, stacked.bmm]
            times = [best(lambda f=f, a=a, b=b: f(a, b), n=50, repeats=3) for f in ways]
            print(f"{(fan_in, fan_out)!s:>16} {name:>12} "
                  + " ".join(f"{t * 1e6:7.0f}" for t in times))  # fmt: skip


class AutogradLinear:
    """The layer as it was: ``torch.baddbmm`` differentiated by autograd."""

    @staticmethod
    def apply(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if bias is None:
            return torch.bmm(x, weight.mT)
        return torch.baddbmm(bias[:, None], x, weight.mT)


def population(case: str) -> Callable[[], object]:
    workload, options = CASES[case]
    spec = {"name": "adam", "lr": 2e-4}
    return _population_stepper([resolve(workload, spec, seed=s, **options)
                                for s in range(MEMBERS)])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--case", action="append", choices=list(CASES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    orientations()
    print(
        f"\npopulation step, {MEMBERS} members of Adam, {args.steps} steps each, alternated "
        "step by step (after 100 each to warm up), in ms"
    )
    print(f"{'case':<10} {'autograd':>16} {'ogan':>16} {'ratio':>14}")
    print(f"{'':<10} {'median':>8}{'p10':>8} {'median':>8}{'p10':>8} {'median':>7}{'p10':>7}")
    own = stacked.StackedLinear
    for case in args.case or list(CASES):
        steps = [population(case), population(case)]
        times: list[list[float]] = [[], []]
        for i in range(100 + args.steps):
            for k, layer in enumerate((AutogradLinear, own)):
                stacked.StackedLinear = layer  # read at every forward
                try:
                    t0 = time.perf_counter()
                    steps[k]()
                    elapsed = time.perf_counter() - t0
                finally:
                    stacked.StackedLinear = own
                if i >= 100:
                    times[k].append(elapsed * 1e3)
        stats = [(statistics.median(t), statistics.quantiles(t, n=10)[0]) for t in times]
        (med_a, p10_a), (med_o, p10_o) = stats
        print(
            f"{case:<10} {med_a:8.2f}{p10_a:8.2f} {med_o:8.2f}{p10_o:8.2f} "
            f"{med_o / med_a:7.3f}{p10_o / p10_a:7.3f}"
        )


if __name__ == "__main__":
    main()
