"""glibc's allocator, set for a process that trains populations on the CPU.

A population's step allocates tensors of a megabyte and more (8 members' activations: 8 x 256 x
128 floats on mog-ring) and frees them by the end of the step. With glibc's default thresholds
that memory goes back to the operating system (``munmap``, or a trim of the heap's top) and the
next step faults it in again, page by page: 260-1,700 minor page faults per population step of
mog-ring, digits and the unrolled ring at 8 members, none in a standalone step, whose tensors are
8 times smaller (``getrusage``, the 2-core AMD EPYC VM, 2026-12-05). Where a step faults most it
costs the most: digits' population step went from 29.5-30.5 ms to 24.7-26.7 ms, the unrolled
ring's from 36.0-38.9 to 34.5-35.9 ms; mog-ring's moved less than the VM's noise
(``scripts/allocator_ab.py``, results/perf/cpu-populations-allocator-epyc.txt).

:func:`retain_freed_memory` keeps such memory for reuse: ``mallopt`` with a fixed mmap threshold
(allocations under 32 MiB come from the heap: glibc's own ceiling for its adaptive threshold)
and a trim threshold of 128 MiB (at most that much free memory is kept at the heap's top). It is
what the ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` environment variables do, set from
inside the process because a user's ``python -m bench run`` cannot be asked to export them;
torch's own CPU allocator has no caching to configure (its tuning guide points at jemalloc or
tcmalloc through ``LD_PRELOAD``, which likewise cannot be set once the process runs). Python has
no binding for ``mallopt``, hence ctypes.

It is process-wide and idempotent, acts only on glibc, and gives way to a user's choice: set
either environment variable (glibc reads them at start-up) or ``OGAN_MALLOC=default`` and it
changes nothing. :func:`describe` says what holds, for the run's recorded environment.
"""

from __future__ import annotations

import ctypes
import os
import sys

from ogan.errors import ConfigError

MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 128 << 20
_M_TRIM_THRESHOLD = -1  # glibc's <malloc.h> parameter numbers
_M_MMAP_THRESHOLD = -3
ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
OPT_OUT = "OGAN_MALLOC"
"""``OGAN_MALLOC=default`` leaves glibc's thresholds alone (``ogan`` or unset: ogan's)."""

_state: str | None = None  # what retain_freed_memory did, once it ran


def _glibc() -> tuple[ctypes.CDLL, str] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        version = libc.gnu_get_libc_version  # glibc only (musl has no such function)
    except (OSError, AttributeError):
        return None
    if not hasattr(libc, "mallopt"):
        return None
    version.restype = ctypes.c_char_p
    return libc, version().decode()


def check_setting() -> str:
    """``OGAN_MALLOC``'s value ("" when unset); anything but ``default`` or ``ogan`` is a
    one-line :class:`ConfigError` (``bench run`` checks it before it writes anything)."""
    choice = os.environ.get(OPT_OUT, "")
    if choice not in ("", "ogan", "default"):
        raise ConfigError(
            f"{OPT_OUT}={choice!r} is not a setting: use {OPT_OUT}=default to keep glibc's "
            f"allocator thresholds, or leave it unset (or {OPT_OUT}=ogan) for ogan's"
        )
    return choice


def _environment() -> str:
    """The user's own ``MALLOC_*`` thresholds, as ``NAME=value`` ("" when none is set)."""
    return ", ".join(f"{n}={os.environ[n]}" for n in ENVIRONMENT if n in os.environ)


def _plan() -> tuple[str, ctypes.CDLL | None]:
    """(the line a CPU population leaves in :func:`describe`, the libc whose ``mallopt`` must
    set it, or None when nothing is to be set)."""
    choice = check_setting()
    glibc = _glibc()
    if glibc is None:
        return "not glibc: unchanged", None
    libc, version = glibc
    if choice == "default":
        return f"glibc {version}: defaults ({OPT_OUT}=default)", None
    if given := _environment():
        return f"glibc {version}: {given} (environment)", None
    return (f"glibc {version}: mmap threshold {MMAP_THRESHOLD >> 20} MiB, trim threshold "
            f"{TRIM_THRESHOLD >> 20} MiB (ogan, for CPU populations)"), libc  # fmt: skip


def for_populations() -> str:
    """What :func:`retain_freed_memory` sets, or has set, in this process and environment,
    without setting it (``bench perf`` records it: its population cases run under it)."""
    return _state if _state is not None else _plan()[0]


def retain_freed_memory() -> str:
    """Set glibc's thresholds so that freed memory is reused rather than returned to the
    operating system (see the module docstring); returns :func:`describe`'s line."""
    global _state
    if _state is None:
        line, libc = _plan()
        if libc is not None:
            ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            ok = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
            line = line if ok else f"{line.split(':')[0]}: mallopt refused, defaults"
        _state = line
    return _state


def describe() -> str:
    """How this process's allocator is set: ogan's thresholds once a CPU population was built,
    else glibc's defaults or the environment's."""
    if _state is not None:
        return _state
    glibc = _glibc()
    if glibc is None:
        return "not glibc"
    given = _environment()
    return f"glibc {glibc[1]}: {given + ' (environment)' if given else 'defaults'}"
