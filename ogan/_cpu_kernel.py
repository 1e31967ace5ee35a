"""ctypes binding of the fused CPU projection kernel (``ogan/_csrc/ortho_cpu.c``).

The shared object is built by ``pip install`` (setup.py) as the optional extension
``ogan._ortho_cpu``. When it is missing (no C compiler at install time), :data:`AVAILABLE` is
False and ogan uses its multi-tensor torch path instead.
"""

from __future__ import annotations

import array
import ctypes
import importlib.util
from collections.abc import Sequence

import torch

_ABI_VERSION = 2
_DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.bfloat16: 2, torch.float16: 3}


def _load() -> ctypes.CDLL | None:
    spec = importlib.util.find_spec("ogan._ortho_cpu")
    if spec is None or spec.origin is None:
        return None
    lib = ctypes.CDLL(spec.origin)
    lib.ogan_abi_version.restype = ctypes.c_int
    if lib.ogan_abi_version() != _ABI_VERSION:  # a stale build from an older checkout
        return None
    fn = lib.ogan_orthogonalize
    fn.restype = ctypes.c_int
    fn.argtypes = [
        ctypes.c_int,  # dtype code
        ctypes.c_int64,  # number of tensors
        ctypes.c_void_p,  # gradient data pointers
        ctypes.c_void_p,  # reference data pointers
        ctypes.c_void_p,  # element counts
        ctypes.c_int,  # renorm
        ctypes.c_int,  # conflict_only
        ctypes.c_double,  # eps
        ctypes.c_int,  # threads
        ctypes.c_void_p,  # stats out (float32[2 * n])
    ]
    lib.ogan_norms.restype = ctypes.c_int
    lib.ogan_norms.argtypes = [
        ctypes.c_int,  # dtype code
        ctypes.c_int64,  # number of tensors
        ctypes.c_void_p,  # data pointers
        ctypes.c_void_p,  # element counts
        ctypes.c_int,  # threads
        ctypes.c_void_p,  # out (float32[n])
    ]
    lib.ogan_supports_dtype.restype = ctypes.c_int
    lib.ogan_supports_dtype.argtypes = [ctypes.c_int]
    return lib


_LIB = _load()
AVAILABLE = _LIB is not None
SUPPORTED_DTYPES = frozenset(
    dt for dt, code in _DTYPE_CODES.items() if _LIB is not None and _LIB.ogan_supports_dtype(code)
)


def orthogonalize_(
    grads: Sequence[torch.Tensor],
    refs: Sequence[torch.Tensor],
    renorm: bool,
    conflict_only: bool,
    eps: float,
) -> torch.Tensor:
    """Project contiguous CPU ``grads`` (one dtype) against ``refs`` in place.

    Returns a float32 tensor of shape (2, n): per-tensor ||g|| and ||g - c r||.
    """
    if _LIB is None:
        raise RuntimeError("the fused CPU kernel is not built; reinstall ogan with a C compiler")
    n = len(grads)
    # One int64 table: gradient pointers, reference pointers, element counts.
    table = array.array(
        "q",
        [g.data_ptr() for g in grads] + [r.data_ptr() for r in refs] + [g.numel() for g in grads],
    )
    stats = torch.empty(2, n, dtype=torch.float32)
    base = table.buffer_info()[0]
    rc = _LIB.ogan_orthogonalize(
        _DTYPE_CODES[grads[0].dtype],
        n,
        base,
        base + 8 * n,
        base + 16 * n,
        int(renorm),
        int(conflict_only),
        eps,
        torch.get_num_threads(),
        stats.data_ptr(),
    )
    if rc != 0:
        raise RuntimeError(f"fused CPU projection failed (code {rc}) for dtype {grads[0].dtype}")
    return stats


def norms(tensors: Sequence[torch.Tensor], out: torch.Tensor) -> None:
    """L2 norm of each contiguous CPU tensor (one dtype) into the float32 tensor ``out``."""
    if _LIB is None:
        raise RuntimeError("the fused CPU kernel is not built; reinstall ogan with a C compiler")
    n = len(tensors)
    table = array.array("q", [t.data_ptr() for t in tensors] + [t.numel() for t in tensors])
    base = table.buffer_info()[0]
    rc = _LIB.ogan_norms(
        _DTYPE_CODES[tensors[0].dtype], n, base, base + 8 * n, torch.get_num_threads(),
        out.data_ptr(),
    )  # fmt: skip
    if rc != 0:
        raise RuntimeError(f"fused CPU norms failed (code {rc}) for dtype {tensors[0].dtype}")
