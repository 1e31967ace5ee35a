"""Triton kernels of the fused projection, for CUDA tensors (three launches per call).

1. ``_reduce``: one program per CHUNK of a tensor; writes the chunk's <g,r>, <g,g>, <r,r>.
2. ``_coefs``: one program per tensor; adds its chunks' partial sums in float64 in chunk order
   (deterministic, no atomics), derives c and the renorm scale, and writes the statistics.
3. ``_update``: one program per chunk; g <- s g - s c r, skipped where c == 0.

Tensors are reached through a table of data pointers (as in Triton's grouped-GEMM tutorial), so
nothing is concatenated or copied. The semantics match ``ogan.projection`` exactly, including the
exact residual recomputed for ill-conditioned tensors and the parallel-vector rule.
The kernels also run on CPU tensors under ``TRITON_INTERPRET=1``, which is how CI tests them.
"""

from __future__ import annotations

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


class _Layout:
    """Chunk tables for one list of tensor sizes, cached on the device (sizes rarely change)."""

    def __init__(self, numels: tuple[int, ...], device: torch.device):
        chunks = [(k, s) for k, n in enumerate(numels) for s in range(0, n, CHUNK)]
        first = [0]
        for n in numels:
            first.append(first[-1] + -(-n // CHUNK))
        self.nchunks = len(chunks)
        self.chunk_seg = torch.tensor(
            [k for k, _ in chunks] or [0], dtype=torch.int64, device=device
        )
        self.chunk_start = torch.tensor(
            [s for _, s in chunks] or [0], dtype=torch.int64, device=device
        )
        self.numel = torch.tensor(numels, dtype=torch.int64, device=device)
        self.seg_chunk0 = torch.tensor(first, dtype=torch.int64, device=device)


_LAYOUTS: dict[tuple, _Layout] = {}


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
    numels = tuple(g.numel() for g in grads)
    key = (numels, device)
    layout = _LAYOUTS.get(key)
    if layout is None:
        layout = _LAYOUTS[key] = _Layout(numels, device)
    n = len(grads)
    tables = torch.tensor(
        [g.data_ptr() for g in grads] + [r.data_ptr() for r in refs], dtype=torch.int64
    ).to(device, non_blocking=True)
    g_tab, r_tab = tables[:n], tables[n:]
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
