"""Run the numerical tests (``-m numerical``) as they would run on other x86-64 CPUs.

A tolerance tuned on one machine can hold there and fail on a CPU whose kernels add in another
order (a fresh clone once failed 3 tests on a Zen 4 only). torch, oneDNN and MKL each choose
their kernels by the instruction sets the CPU has, and each can be told to use fewer, which is
what another CPU would make them use:

- ``ATEN_CPU_CAPABILITY``: torch's own vectorised kernels (element-wise ops, reductions);
- ``ONEDNN_MAX_CPU_ISA``: oneDNN (convolutions, bfloat16 matmuls: Muon's Newton–Schulz);
- ``MKL_ENABLE_INSTRUCTIONS``: MKL's float32/float64 GEMM (every ``nn.Linear``, ``bmm``).

Capping can only remove instruction sets: on a CPU without AVX-512 the AVX-512 selection is the
host's own, and this script says so instead of pretending. Each selection runs in its own
process, one after another; the exit code is 0 only if every one passed.

    python tests/emulate_cpus.py                 # every selection below
    python tests/emulate_cpus.py avx2 -- -x      # one selection; after --: pytest's arguments
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SELECTIONS: dict[str, tuple[str, dict[str, str]]] = {
    "baseline": (
        "x86-64 without SIMD kernels (torch's scalar path, SSE4.1 oneDNN, SSE4.2 MKL)",
        {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
         "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    ),
    "avx2": (
        "an AVX2 CPU without AVX-512 (Haswell to Alder Lake, Zen 1-3)",
        {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
         "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    ),
    "avx512-bf16": (
        "AVX-512 with BF16 and VNNI but no AMX (Zen 4, Cooper Lake)",
        {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16",
         "MKL_ENABLE_INSTRUCTIONS": "AVX512"},
    ),
}  # fmt: skip

PROBE = "import torch; print(torch.backends.cpu.get_cpu_capability())"


def _capability(env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
    return out.stdout.strip() or f"unknown ({out.stderr.strip().splitlines()[-1:]})"


def main(argv: list[str]) -> int:
    names, pytest_args = argv, []
    if "--" in argv:
        i = argv.index("--")
        names, pytest_args = argv[:i], argv[i + 1 :]
    unknown = [n for n in names if n not in SELECTIONS]
    if unknown:
        print(f"emulate_cpus: unknown selection(s) {unknown}; choose from {list(SELECTIONS)}",
              file=sys.stderr)  # fmt: skip
        return 2
    failed = []
    for name in names or list(SELECTIONS):
        what, variables = SELECTIONS[name]
        env = {**os.environ, **variables}
        wanted = variables["ATEN_CPU_CAPABILITY"].upper()
        got = _capability(env)
        note = "" if got.upper() == wanted else f" (this CPU gives torch {got}, not {wanted})"
        print(f"== {name}: {what}{note}", flush=True)
        start = time.monotonic()
        cmd = [sys.executable, "-m", "pytest", "-q", "-m", "numerical", "-p", "no:cacheprovider",
               *pytest_args]  # fmt: skip
        rc = subprocess.run(cmd, env=env, cwd=ROOT).returncode
        print(f"== {name}: exit {rc} in {time.monotonic() - start:.0f} s", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"numerical tests failed under: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
