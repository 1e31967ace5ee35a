"""Triton kernels of the fused projection, for CUDA tensors (three launches per call).

1. ``_reduce``: one program per CHUNK of a tensor; writes the chunk's <g,r>, <g,g>, <r,r>.
2. ``_coefs``: one program per tensor; adds its chunks' partial sums in float64 in chunk order
   (deterministic, no atomics), derives c and the renorm scale, and writes the statistics.
3. ``_update``: one program per chunk; g <- s g - s c r, skipped where c == 0.

Tensors are reached through a table of data pointers (as in Triton's grouped-GEMM tutorial), so
nothing is concatenated or copied. The semantics match ``ogan.projection`` exactly, including the
exact residual recomputed for ill-conditioned tensors and the parallel-vector rule.
The kernels also run on CPU tensors under ``TRITON_INTERPRET=1``, which is how CI tests them.

The tables (pointers and chunk layout) are cached per list of tensors, keyed by what they hold:
data pointers, shapes, dtypes and device (:func:`tables`). A step projects the same tensors
every time (an optimizer's parameters and, within a CUDA graph, its gradients, whose addresses
replay), so a call launches its three kernels with no host-to-device copy and no
synchronisation, and can be captured in a CUDA graph. A miss builds the table in pinned host
memory and copies it asynchronously; a table a graph captured (built or used while the stream
is capturing) is kept for the process, since the graph reads it (and a miss's pinned source) at
every replay; the others are evicted least recently used (:data:`CACHED_TABLES`). A stale entry
can never be wrong: its key is its content.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import triton
import triton.language as tl

CHUNK = 8192
BLOCK = 1024
PARTIAL_BLOCK = 128
ILL_CONDITIONED = 1e-2  # same threshold as the C kernel

_TL_DTYPES = {
    torch.float32: tl.float32,
    torch.float64: tl.float64,
    torch.float16: tl.float16,
    torch.bfloat16: tl.bfloat16,
}


@triton.jit
def _reduce(
    g_tab, r_tab, chunk_seg, chunk_start, numel, partial,
    DTYPE: tl.constexpr, ACC: tl.constexpr, CHUNK: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    seg = tl.load(chunk_seg + pid)
    start = tl.load(chunk_start + pid)
    n = tl.load(numel + seg)
    gp = tl.load(g_tab + seg).to(tl.pointer_type(DTYPE))
    rp = tl.load(r_tab + seg).to(tl.pointer_type(DTYPE))
    sd = tl.zeros([BLOCK], dtype=ACC)
    sg = tl.zeros([BLOCK], dtype=ACC)
    sr = tl.zeros([BLOCK], dtype=ACC)
    for off in tl.static_range(0, CHUNK, BLOCK):
        idx = start + off + tl.arange(0, BLOCK)
        mask = idx < n
        g = tl.load(gp + idx, mask=mask, other=0.0).to(ACC)
        r = tl.load(rp + idx, mask=mask, other=0.0).to(ACC)
        sd += g * r
        sg += g * g
        sr += r * r
    tl.store(partial + 3 * pid, tl.sum(sd, axis=0).to(tl.float64))
    tl.store(partial + 3 * pid + 1, tl.sum(sg, axis=0).to(tl.float64))
    tl.store(partial + 3 * pid + 2, tl.sum(sr, axis=0).to(tl.float64))


@triton.jit
def _coefs(
    g_tab, r_tab, numel, seg_chunk0, partial, coef, stats, nseg, eps, rho,
    RENORM: tl.constexpr, CONFLICT_ONLY: tl.constexpr, DTYPE: tl.constexpr,
    PBLOCK: tl.constexpr, BLOCK: tl.constexpr, ILL: tl.constexpr,
):  # fmt: skip
    k = tl.program_id(0)
    c0 = tl.load(seg_chunk0 + k)
    c1 = tl.load(seg_chunk0 + k + 1)
    sd = tl.zeros([PBLOCK], dtype=tl.float64)
    sg = tl.zeros([PBLOCK], dtype=tl.float64)
    sr = tl.zeros([PBLOCK], dtype=tl.float64)
    for i in range(c0, c1, PBLOCK):
        j = i + tl.arange(0, PBLOCK)
        mask = j < c1
        sd += tl.load(partial + 3 * j, mask=mask, other=0.0)
        sg += tl.load(partial + 3 * j + 1, mask=mask, other=0.0)
        sr += tl.load(partial + 3 * j + 2, mask=mask, other=0.0)
    dot = tl.sum(sd, axis=0)
    gg = tl.sum(sg, axis=0)
    rr = tl.sum(sr, axis=0)
    c = dot / (rr + eps)
    if CONFLICT_ONLY:
        c = tl.where(dot >= 0, 0.0, c)
    skip = c == 0.0
    g2 = tl.where(skip, gg, gg - 2.0 * c * dot + c * c * rr)
    if (c != 0.0) & (g2 < ILL * gg):
        # The closed form cancels here: recompute ||g - c r||^2 from the elements.
        n = tl.load(numel + k)
        gp = tl.load(g_tab + k).to(tl.pointer_type(DTYPE))
        rp = tl.load(r_tab + k).to(tl.pointer_type(DTYPE))
        acc = tl.zeros([BLOCK], dtype=tl.float64)
        for off in range(0, n, BLOCK):
            idx = off + tl.arange(0, BLOCK)
            mask = idx < n
            e = tl.load(gp + idx, mask=mask, other=0.0).to(tl.float64) - c * tl.load(
                rp + idx, mask=mask, other=0.0
            ).to(tl.float64)
            acc += e * e
        g2 = tl.sum(acc, axis=0)
    s = gg * 0.0 + 1.0  # a float64 scalar
    if RENORM:
        s = tl.where(
            skip, 1.0, tl.where(g2 <= rho * rho * gg, 0.0, tl.sqrt(gg) / (tl.sqrt(g2) + eps))
        )
    tl.store(coef + 3 * k, s)
    tl.store(coef + 3 * k + 1, s * c)
    tl.store(coef + 3 * k + 2, skip.to(tl.float64))
    tl.store(stats + k, tl.sqrt(gg).to(tl.float32))
    tl.store(stats + nseg + k, tl.sqrt(g2).to(tl.float32))


@triton.jit
def _update(
    g_tab, r_tab, chunk_seg, chunk_start, numel, coef,
    DTYPE: tl.constexpr, ACC: tl.constexpr, CHUNK: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    seg = tl.load(chunk_seg + pid)
    if tl.load(coef + 3 * seg + 2) == 0.0:
        start = tl.load(chunk_start + pid)
        n = tl.load(numel + seg)
        s = tl.load(coef + 3 * seg).to(ACC)
        t = tl.load(coef + 3 * seg + 1).to(ACC)
        gp = tl.load(g_tab + seg).to(tl.pointer_type(DTYPE))
        rp = tl.load(r_tab + seg).to(tl.pointer_type(DTYPE))
        for off in tl.static_range(0, CHUNK, BLOCK):
            idx = start + off + tl.arange(0, BLOCK)
            mask = idx < n
            g = tl.load(gp + idx, mask=mask, other=0.0).to(ACC)
            r = tl.load(rp + idx, mask=mask, other=0.0).to(ACC)
            tl.store(gp + idx, (s * g - t * r).to(DTYPE), mask=mask)


CACHED_TABLES = 64
"""Eager calls' tables kept (least recently used evicted): every list of tensors a run
projects, many times over (a population's ⊥Grad and surgery project a handful of lists; eager
steps that reallocate gradients may see a few addresses each)."""


class Tables:
    """One list of (gradient, reference) pairs' device tables, as views of one int64 tensor:
    the pointers (``g_tab``, ``r_tab``), each tensor's size (``numel``), its first chunk
    (``seg_chunk0``) and each chunk's tensor and offset (``chunk_seg``, ``chunk_start``)."""

    def __init__(self, grads: Sequence[torch.Tensor], refs: Sequence[torch.Tensor]):
        device = grads[0].device
        numels = [g.numel() for g in grads]
        chunks = [(k, s) for k, n in enumerate(numels) for s in range(0, n, CHUNK)] or [(0, 0)]
        first = [0]
        for n in numels:
            first.append(first[-1] + -(-n // CHUNK))
        self.nchunks = first[-1]
        sections = [[g.data_ptr() for g in grads], [r.data_ptr() for r in refs], numels, first,
                    [k for k, _ in chunks], [s for _, s in chunks]]  # fmt: skip
        values, bounds = [], []
        for section in sections:  # each 16-byte aligned, as Triton specialises pointers
            bounds.append((len(values), len(values) + len(section)))
            values += section + [0] * (len(section) % 2)
        host = torch.tensor(values, dtype=torch.int64)
        if device.type == "cuda":
            host = host.pin_memory()  # an asynchronous copy, and one a graph may capture
        self.host = host  # a captured copy reads it again at every replay: kept alive here
        table = host.to(device, non_blocking=True)
        (self.g_tab, self.r_tab, self.numel, self.seg_chunk0, self.chunk_seg,
         self.chunk_start) = (table[a:b] for a, b in bounds)  # fmt: skip


_TABLES: OrderedDict[tuple, Tables] = OrderedDict()  # eager: least recently used first
_CAPTURED: dict[tuple, Tables] = {}  # read by a CUDA graph: kept for the process


def _key(grads: Sequence[torch.Tensor], refs: Sequence[torch.Tensor]) -> tuple:
    return (
        tuple(g.data_ptr() for g in grads), tuple(r.data_ptr() for r in refs),
        tuple(g.shape for g in grads), tuple(r.shape for r in refs),
        grads[0].dtype, refs[0].dtype, grads[0].device,
    )  # fmt: skip


def tables(
    grads: Sequence[torch.Tensor], refs: Sequence[torch.Tensor], capturing: bool = False
) -> Tables:
    """The cached :class:`Tables` of these tensors (built on a miss).

    ``capturing``: the current CUDA stream is being captured into a graph, which will read the
    table at every replay: the entry is then kept for the process instead of being evictable.
    """
    key = _key(grads, refs)
    found = _CAPTURED.get(key)
    if found is not None:
        return found
    found = _TABLES.pop(key, None)
    if found is None:
        found = Tables(grads, refs)
    if capturing:
        _CAPTURED[key] = found
        return found
    _TABLES[key] = found  # most recently used last
    while len(_TABLES) > CACHED_TABLES:
        _TABLES.popitem(last=False)
    return found


def orthogonalize_(
    grads: Sequence[torch.Tensor],
    refs: Sequence[torch.Tensor],
    renorm: bool,
    conflict_only: bool,
    eps: float,
    rho: float,
) -> torch.Tensor:
    """Project contiguous ``grads`` (one dtype, one device) against ``refs`` in place.

    Returns a float32 tensor of shape (2, n) on the device: per-tensor ||g|| and ||g - c r||.
    """
    device = grads[0].device
    dtype = grads[0].dtype
    capturing = device.type == "cuda" and torch.cuda.is_current_stream_capturing()
    layout = tables(grads, refs, capturing)
    n = len(grads)
    g_tab, r_tab = layout.g_tab, layout.r_tab  # views of one cached device tensor: no copy
    partial = torch.empty(max(layout.nchunks, 1) * 3, dtype=torch.float64, device=device)
    coef = torch.empty(3 * n, dtype=torch.float64, device=device)
    stats = torch.empty(2, n, dtype=torch.float32, device=device)
    tl_dtype = _TL_DTYPES[dtype]
    acc = tl.float64 if dtype == torch.float64 else tl.float32
    if layout.nchunks:
        _reduce[(layout.nchunks,)](
            g_tab, r_tab, layout.chunk_seg, layout.chunk_start, layout.numel, partial,
            DTYPE=tl_dtype, ACC=acc, CHUNK=CHUNK, BLOCK=BLOCK,
        )  # fmt: skip
    _coefs[(n,)](
        g_tab, r_tab, layout.numel, layout.seg_chunk0, partial, coef, stats, n, eps, rho,
        RENORM=renorm, CONFLICT_ONLY=conflict_only, DTYPE=tl_dtype,
        PBLOCK=PARTIAL_BLOCK, BLOCK=BLOCK, ILL=ILL_CONDITIONED,
    )  # fmt: skip
    if layout.nchunks:
        _update[(layout.nchunks,)](
            g_tab, r_tab, layout.chunk_seg, layout.chunk_start, layout.numel, coef,
            DTYPE=tl_dtype, ACC=acc, CHUNK=CHUNK, BLOCK=BLOCK,
        )  # fmt: skip
    return stats
