"""The counter-based normals of :mod:`ogan.game.streams` in one Triton kernel, for CUDA tensors.

``Streams.normal`` written in torch ops is about fifteen passes over int64 and float64
temporaries of the whole draw (SplitMix64's three xor-shift-multiply rounds, the uniforms,
Box–Muller, the concatenation): for the unrolled-GAN protocol at 256 members (512 × 256 noise
numbers each) every temporary is 268 MB, several GB of memory traffic a draw, where the result
is 134 MB of float32. This kernel computes each pair of normals where it is stored: one program
per (member, block of pairs), the same integer arithmetic in uint64 (wrapping, logical shifts:
SplitMix64 as written) and the same float64 Box–Muller, rounded once to the output dtype, so it
draws the numbers the torch path draws: the integers bit for bit, the normals to the last bit of
float64's ``log``/``cos``/``sin`` (libdevice on the GPU), which the rounding to float32
absorbs in all but about one number in 2**29. ``ogan.game.streams`` checks it against the torch
path on the device before using it (:func:`ogan.game.streams.fused_normal_ok`). It runs on CPU
tensors under ``TRITON_INTERPRET=1``, which is how the tests check it here.

Written by hand because no library draws a counter-based stream like this one: torch's
generators are sequential per generator (one per member, a Python loop), and its Philox offsets
are not a function of a member's own seed alone.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

BLOCK = 1024

_TL = {torch.float32: tl.float32, torch.float64: tl.float64, torch.float16: tl.float16,
       torch.bfloat16: tl.bfloat16}  # fmt: skip


@triton.jit
def _mix(z):
    """SplitMix64's output function on uint64 (as ogan.game.streams.mix)."""
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB
    return z ^ (z >> 31)


@triton.jit
def _normal(keys, position, out, n, half, OUT: tl.constexpr, BLOCK: tl.constexpr):
    member = tl.program_id(1)
    j = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)  # the pair: uniforms j and half + j
    mask = j < half
    key = tl.load(keys + member).to(tl.uint64, bitcast=True)
    pos = tl.load(position).to(tl.uint64, bitcast=True)
    jj = j.to(tl.uint64)
    z1 = _mix(key + (pos + 1 + jj) * 0x9E3779B97F4A7C15)
    z2 = _mix(key + (pos + 1 + half + jj) * 0x9E3779B97F4A7C15)
    u1 = (z1 >> 11).to(tl.float64) * 1.1102230246251565e-16  # 2**-53
    u2 = (z2 >> 11).to(tl.float64) * 1.1102230246251565e-16
    # log(1 - u1): 1 - u1 is exact (u1 a multiple of 2**-53 below 1), so this is the torch
    # path's log1p(-u1) up to each function's last-bit rounding (Triton's core has no log1p)
    radius = tl.sqrt(-2.0 * tl.log(1.0 - u1))  # float64: sqrt.rn, IEEE rounding
    theta = 6.283185307179586 * u2  # (2 π) u2, π as math.pi
    row = out + member.to(tl.int64) * n
    tl.store(row + j, (radius * tl.cos(theta)).to(OUT), mask=mask)
    tl.store(row + half + j, (radius * tl.sin(theta)).to(OUT), mask=mask & (half + j < n))


def normal(
    keys: torch.Tensor, position: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype
) -> torch.Tensor:
    """What ``Streams(keys)`` at ``position`` draws with ``normal(shape, dtype)``, advancing
    ``position`` in place: (*keys.shape, *shape)."""
    n = math.prod(shape)
    half = (n + 1) // 2
    flat = keys.reshape(-1).contiguous()
    out = torch.empty(flat.numel(), n, dtype=dtype, device=keys.device)
    if n and flat.numel():
        grid = (triton.cdiv(half, BLOCK), flat.numel())
        _normal[grid](flat, position, out, n, half, OUT=_TL[dtype], BLOCK=BLOCK)
    position.add_(2 * half)
    return out.view(*keys.shape, *shape)
