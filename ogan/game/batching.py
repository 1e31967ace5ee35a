"""How the step's tensors are laid out: one run, or the members of a population stacked.

The step's maths (:class:`ogan.game.game.TwoPlayerGame`: losses, backward passes, surgery,
projection statistics, the statistics row) is written once; where one run and a population
differ is only in how a per-member quantity is held, and that is all these two objects say,
as torch.optim's ``_single_tensor_adam`` and ``_multi_tensor_adam`` are two layouts of one rule.

* :class:`Single`: one run. Losses are scalars, a player's gradients are its tensors, its
  per-tensor norms one row.
* :class:`Members`: ``P`` members. Networks' outputs carry a leading member dimension, a loss
  is one value per member (``torch.vmap`` of the one-run loss), backward passes take the sum
  (no operation mixes members, so each member's gradient is its own loss's), the kernels see
  every member's slice of a stacked tensor as one more segment, and the records are one row per
  member.

Each operation of :class:`Single` is exactly the operation the one-run step always did, so
``ogan.train`` stays bit for bit what it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ogan.game import stats as gstats
from ogan.projection import member_slices, tensor_norms


class Single:
    """One run's layout (see the module docstring)."""

    count = 1  # segments per parameter tensor

    def __init__(self, device: torch.device):
        self.zero = torch.zeros((), device=device)

    def per_member(self, fn: Callable[..., Any], in_dims: Any = 0) -> Callable[..., Any]:
        """``fn`` of one member's values, applied to every member's."""
        return fn

    def total(self, loss: Tensor) -> Tensor:
        """What a backward pass differentiates."""
        return loss

    def through(self, net: Any, x: Tensor) -> Tensor:
        """``net(x)`` for a backward pass that wants the gradient of ``x`` and none of
        ``net``'s parameters (the generator's step through the discriminator)."""
        return net(x)

    def segments(self, tensors: Sequence[Tensor]) -> list[Tensor]:
        """Tensors as the fused kernels' segments (each member's slice its own)."""
        return list(tensors)

    def norms(self, tensors: Sequence[Tensor]) -> Tensor:
        """Per-tensor norms of one player's tensors, one row per member."""
        return torch.stack(torch._foreach_norm(list(tensors)))

    def squares(self, norms: Tensor) -> Tensor:
        """The squared norm of a player's gradient, per member, from its per-segment norms."""
        return norms.square().sum()

    def rows(self, norms: Tensor, n: int) -> Tensor:
        """Per-segment norms over a player's ``n`` tensors as record rows (``gstats.pad``)."""
        return gstats.pad(norms, n)


class Members(Single):
    """The layout of a population of ``size`` members (see the module docstring)."""

    def __init__(self, device: torch.device, size: int):
        self.count = size
        self.zero = torch.zeros(size, device=device)

    def per_member(self, fn: Callable[..., Any], in_dims: Any = 0) -> Callable[..., Any]:
        return torch.vmap(fn, in_dims)

    def total(self, loss: Tensor) -> Tensor:
        return loss.sum()

    def through(self, net: Any, x: Tensor) -> Tensor:
        return net(x, frozen=True)  # a Stacked network, its parameters detached

    def segments(self, tensors: Sequence[Tensor]) -> list[Tensor]:
        return member_slices(tensors, self.count)

    def norms(self, tensors: Sequence[Tensor]) -> Tensor:
        return tensor_norms(self.segments(tensors)).view(self.count, -1)

    def squares(self, norms: Tensor) -> Tensor:
        return norms.view(self.count, -1).square().sum(1)

    def rows(self, norms: Tensor, n: int) -> Tensor:
        return torch.stack([gstats.pad(row, n) for row in norms.view(self.count, -1)])
