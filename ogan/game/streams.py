"""Counter-based random streams: every member's training batch from a fixed number of kernels.

A ``torch.Generator`` is one sequential stream: a population of P members with one generator
each draws its batches with P times the kernel launches (a Python loop), and nothing else lets a
member's numbers depend on its own seed only. Here a member's stream is a function of (its key,
a position): element ``i`` of member ``m``'s stream is SplitMix64's output
``mix(key_m + i * GAMMA)`` (Steele, Lea & Flood 2014, *Fast splittable pseudorandom number
generators*; the sequence SplitMix64 yields from seed ``key_m``, which passes BigCrush). All
members' draws are one set of element-wise integer ops over a ``(P, n)`` tensor, whatever P:
a fixed number of kernel launches (on the CPU the normals go through that tensor in cache-sized
blocks, :meth:`Streams._normal_blocked`: as many as the draw's size needs), no host
synchronisation (the position is a device tensor, advanced in place), so a CUDA graph can
capture it. Member ``m``'s numbers depend on its key and on how many numbers were drawn before
(the same for every member), never on who else is in the population: member ``s`` of the
populations {s}, {s, t} and {t, s, u} draws the same batches.

The stream is opt-in (``ogan.train(..., streams="counter")``, a game option, so part of the run
id): the default, ``"torch"``, keeps each run's ``torch.Generator`` stream, the one every
recorded result was trained with; a run keeps one stream definition whether it trains alone or
in a population, so a member is its standalone run under either.

Integers are held in int64 with wrapping multiplication (two's complement, as SplitMix64's
uint64 arithmetic); a logical right shift is an arithmetic shift and a mask, so the integers
are the same bits on every device. Uniforms take the top 53 bits (float64); normals come from
Box–Muller in float64, rounded once to the working dtype, so an element is the same float in
every tensor shape it is drawn in (torch's vectorised and scalar float64 ``log``/``cos`` may
differ in a last bit, which the rounding to float32 absorbs in all but about one case in 2**29).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

STREAMS = ("torch", "counter")
"""The game option ``streams``: torch.Generator per run (the default) or counter-based."""

GAMMA = -7046029254386353131  # 0x9E3779B97F4A7C15 as int64: SplitMix64's increment
_M1 = -4658895280553007687  # 0xBF58476D1CE4E5B9
_M2 = -7723592293110705685  # 0x94D049BB133111EB


def _shr(x: Tensor, k: int) -> Tensor:
    """Logical right shift of int64 bit patterns (torch's >> is arithmetic)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def mix(z: Tensor) -> Tensor:
    """SplitMix64's output function (its ``mix64`` variant 13), on int64 bit patterns."""
    return _mix_(z.clone(), torch.empty_like(z))


BLOCK = 1 << 16
"""Numbers per block of the CPU draw (:meth:`Streams._normal_blocked`): six buffers of it, 3 MB,
about an L2 cache. Measured on the 2-core Xeon (P = 10, 512 x 256 normals each, one thread, beside
a running study): 2**14 11.9 ms, 2**15 10.7, 2**16 10.0, 2**17 21.5; the reference ops 32."""


def _shr_(x: Tensor, k: int, out: Tensor) -> Tensor:
    """:func:`_shr` into ``out``."""
    return torch.bitwise_right_shift(x, k, out=out).bitwise_and_((1 << (64 - k)) - 1)


def _mix_(z: Tensor, scratch: Tensor) -> Tensor:
    """:func:`mix` in place on ``z`` (``scratch``: a buffer of its shape): the xor-shift and
    multiply rounds, written once."""
    z.bitwise_xor_(_shr_(z, 30, scratch)).mul_(_M1)
    z.bitwise_xor_(_shr_(z, 27, scratch)).mul_(_M2)
    return z.bitwise_xor_(_shr_(z, 31, scratch))


def key(seed: int) -> int:
    """A member's key from its data seed (an int64 bit pattern)."""
    z = mix(torch.tensor(seed, dtype=torch.int64) * GAMMA)
    return int(z)


class Streams:
    """One counter-based stream per member: ``keys`` is a () tensor for one run, (P,) for a
    population; every draw has the members' dimensions (``keys.shape``) first.

    ``position`` counts the numbers each member has drawn so far (a device tensor: advancing
    it needs no host synchronisation).
    """

    def __init__(self, keys: Tensor):
        self.keys = keys
        self.position = torch.zeros((), dtype=torch.int64, device=keys.device)

    def _bits(self, n: int) -> Tensor:
        """The next ``n`` 64-bit outputs of every member's stream, (*members, n)."""
        offsets = torch.arange(1, n + 1, dtype=torch.int64, device=self.keys.device)
        counters = (self.position + offsets) * GAMMA  # SplitMix64's state after i steps
        out = mix(self.keys[..., None] + counters)
        self.position.add_(n)
        return out

    def uniform(self, shape: tuple[int, ...]) -> Tensor:
        """Float64 uniforms in [0, 1) (53 bits), (*members, *shape)."""
        n = math.prod(shape)
        u = _shr(self._bits(n), 11).double() * 2.0**-53
        return u.view(*self.keys.shape, *shape)

    def normal(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> Tensor:
        """Standard normals (Box–Muller on pairs of uniforms), (*members, *shape).

        On CUDA one Triton kernel draws them (:mod:`ogan._triton_streams`: the same numbers in
        one pass instead of ~15 over temporaries), once it has been checked against this torch
        path on the device (:func:`fused_normal_ok`); on the CPU, :meth:`_normal_blocked`."""
        if fused_normal_ok(self.keys.device, dtype):
            from ogan import _triton_streams

            return _triton_streams.normal(self.keys, self.position, shape, dtype)
        if self.keys.device.type == "cpu":
            return self._normal_blocked(shape, dtype)
        return self._normal(shape, dtype)

    def _normal(self, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        """:meth:`normal` in torch ops: the definition the kernel is checked against."""
        n = math.prod(shape)
        half = (n + 1) // 2
        u = self.uniform((2, half))
        radius = torch.sqrt(-2.0 * torch.log1p(-u[..., 0, :]))  # 1 - u in (0, 1]: log finite
        theta = (2 * math.pi) * u[..., 1, :]
        z = torch.cat([radius * torch.cos(theta), radius * torch.sin(theta)], -1)[..., :n]
        return z.to(dtype).reshape(*self.keys.shape, *shape)

    def _normal_blocked(self, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        """:meth:`_normal`'s numbers on the CPU, computed in cache-sized blocks in place.

        :meth:`_normal` makes ~25 passes over fresh (P, n) int64/float64 temporaries; at 10
        members of the unrolled-GAN protocol each is 10 MB, so the draw is page faults and
        memory traffic. Here every member's pairs ``j0 .. j0 + cols`` go through the same
        integer and float64 operations in six buffers of ``BLOCK`` numbers (L2-sized, reused
        block after block), then are rounded into the output: the same integers, the same
        float64 operations in the same order on the same values, so the same numbers (tested
        bit for bit). ``cols`` is a multiple of 16 (two AVX-512 float64 vectors) as a
        precaution: the elements torch's vectorised kernels leave to their scalar tail, whose
        ``log1p``/``cos``/``sin`` may differ in a last bit, are then the reference's. Blocks are
        a cache tiling of the whole draw: a loop over blocks of all members at once, never over
        members."""
        n = math.prod(shape)
        half = (n + 1) // 2
        keys = self.keys.reshape(-1, 1)
        members = keys.shape[0]
        out = torch.empty(members, 2 * half, dtype=dtype)
        cols = max(16, min(-(-half // 16) * 16, BLOCK // max(members, 1) // 16 * 16))
        ints = [torch.empty(members, cols, dtype=torch.int64) for _ in range(3)]
        floats = [torch.empty(members, cols, dtype=torch.float64) for _ in range(3)]
        steps = torch.empty(cols, dtype=torch.int64)
        base = (self.position + 1) * GAMMA  # counter of the first number drawn
        for j0 in range(0, half, cols):
            w = min(cols, half - j0)
            z1, z2, t = (x[:, :w] for x in ints)
            radius, theta, trig = (x[:, :w] for x in floats)
            for z, start in ((z1, j0), (z2, half + j0)):  # uniforms j and half + j
                torch.arange(start, start + w, out=steps[:w])
                torch.add(keys, steps[:w].mul_(GAMMA).add_(base), out=z)
                _mix_(z, t)
            radius.copy_(_shr_(z1, 11, t)).mul_(-(2.0**-53))  # -u1: scaled by a power of 2
            torch.log1p(radius, out=radius).mul_(-2.0).sqrt_()
            theta.copy_(_shr_(z2, 11, t)).mul_(2.0**-53).mul_(2 * math.pi)
            out[:, j0 : j0 + w].copy_(torch.cos(theta, out=trig).mul_(radius))
            out[:, half + j0 : half + j0 + w].copy_(torch.sin(theta, out=trig).mul_(radius))
        self.position.add_(2 * half)
        return out[:, :n].contiguous().view(*self.keys.shape, *shape)

    def randint(self, high: int, shape: tuple[int, ...]) -> Tensor:
        """Integers in [0, high) (Lemire's multiply-shift on the top 32 bits), (*members, *shape).

        Its bias is below high / 2**32 (for ``high`` up to a dataset's size, far below what a
        run can detect)."""
        if not 0 < high < 2**31:
            raise ValueError(f"randint needs 0 < high < 2**31, got {high}")
        n = math.prod(shape)
        top = _shr(self._bits(n), 32)
        return _shr(top * high, 32).view(*self.keys.shape, *shape)

    def keep(self, index: Tensor) -> None:
        """Keep the streams of the members at ``index`` (a population whose members stopped)."""
        self.keys = self.keys.index_select(0, index.to(self.keys.device))

    def state_dict(self) -> dict[str, Tensor]:
        return {"keys": self.keys, "position": self.position}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.keys = state["keys"].to(self.keys.device)
        self.position.copy_(state["position"])


_FUSED: dict[tuple[str, torch.dtype], bool] = {}
"""(device, dtype) -> whether the Triton normals reproduced the torch path there."""


def fused_normal_ok(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether :meth:`Streams.normal` uses the Triton kernel on ``device`` for ``dtype``: CUDA,
    Triton importable, and :func:`check_fused_normal` passed there. Checked once per device and
    dtype, eagerly: while a CUDA graph is being captured an unchecked pair uses the torch path.
    A kernel that fails the check is not used, with one line on stderr."""
    if device.type != "cuda":
        return False
    found = _FUSED.get((str(device), dtype))  # every draw after the first: this lookup only
    if found is not None:
        return found
    if not torch.cuda.is_available() or torch.cuda.is_current_stream_capturing():
        return False
    ok, reason = check_fused_normal(device, dtype)
    if not ok:
        import sys

        print(f"note: counter-stream normals on {device} use torch ops, not the Triton kernel "
              f"({reason})", file=sys.stderr)  # fmt: skip
    _FUSED[(str(device), dtype)] = ok
    return ok


def check_fused_normal(device: torch.device, dtype: torch.dtype) -> tuple[bool, str]:
    """(ok, why not): a check draw of the Triton kernel (4 members × 4,099 normals, two draws
    in a row) against :meth:`Streams._normal` on ``device``: equal up to one float32 ulp in at
    most one number (float64 ``log``/``cos`` may round differently in a last bit), and the
    position advanced alike."""
    try:
        from ogan import _triton_streams

        keys = torch.tensor([key(s) for s in range(4)], device=device)
        fused, plain = Streams(keys), Streams(keys)
        got = [_triton_streams.normal(fused.keys, fused.position, (4099,), dtype) for _ in "ab"]
        want = [plain._normal((4099,), dtype) for _ in "ab"]
    except Exception as exc:  # no Triton, or one that cannot compile here
        return False, f"{type(exc).__name__}: {exc}".splitlines()[0]
    got_t, want_t = torch.cat(got, -1).float(), torch.cat(want, -1).float()
    ulp = torch.finfo(torch.float32).eps * want_t.abs().clamp_min(1e-30)
    differ = int((got_t != want_t).sum())
    if differ > 1 or not bool(((got_t - want_t).abs() <= ulp).all()):
        return False, f"{differ} of {want_t.numel()} numbers differ from the torch path's"
    if not torch.equal(fused.position, plain.position):
        return False, "it advances the stream's position otherwise"
    return True, ""
