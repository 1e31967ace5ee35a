"""Counter-based random streams: every member's training batch from a fixed number of kernels.

A ``torch.Generator`` is one sequential stream: a population of P members with one generator
each draws its batches with P times the kernel launches (a Python loop), and nothing else lets a
member's numbers depend on its own seed only. Here a member's stream is a function of (its key,
a position): element ``i`` of member ``m``'s stream is SplitMix64's output
``mix(key_m + i * GAMMA)`` (Steele, Lea & Flood 2014, *Fast splittable pseudorandom number
generators*; the sequence SplitMix64 yields from seed ``key_m``, which passes BigCrush). All
members' draws are one set of element-wise integer ops over a ``(P, n)`` tensor, whatever P:
a fixed number of kernel launches, no host synchronisation (the position is a device tensor,
advanced in place), so a CUDA graph can capture it. Member ``m``'s numbers depend on its key and
on how many numbers were drawn before (the same for every member), never on who else is in the
population: member ``s`` of the populations {s}, {s, t} and {t, s, u} draws the same batches.

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
    z = (z ^ _shr(z, 30)) * _M1
    z = (z ^ _shr(z, 27)) * _M2
    return z ^ _shr(z, 31)


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
        """Standard normals (Box–Muller on pairs of uniforms), (*members, *shape)."""
        n = math.prod(shape)
        half = (n + 1) // 2
        u = self.uniform((2, half))
        radius = torch.sqrt(-2.0 * torch.log1p(-u[..., 0, :]))  # 1 - u in (0, 1]: log finite
        theta = (2 * math.pi) * u[..., 1, :]
        z = torch.cat([radius * torch.cos(theta), radius * torch.sin(theta)], -1)[..., :n]
        return z.to(dtype).reshape(*self.keys.shape, *shape)

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
