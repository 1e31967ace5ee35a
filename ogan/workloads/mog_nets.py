"""The published players of the 2-D mixture games, built as their sources build them.

Each builder reproduces one source's architecture *and* initialisation; ``ogan.workloads.mog``
documents which choices the sources leave open. Packing (PacGAN, Lin et al. 2018) is one layout
shared by reals and fakes: a batch of ``n = B·m`` points is read as ``m`` consecutive slices of
``B`` points, and pack ``i`` is the concatenation of row ``i`` of every slice. The generator
evaluates its slices one at a time, as PacGAN's code does (one decoder call per noise tensor), so
that batch normalisation sees batches of ``B``, not ``B·m``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ogan.workloads.mog import mlp

PACGAN_INIT_STD = 0.02
"""PacGAN config.py ``weights_init_std``: every weight ~ N(0, 0.02²); every bias 0."""
PACGAN_BN_EPS = 1e-4
"""blocks.bricks.bn.BatchNormalization's default ``epsilon`` (PacGAN's decoder uses the default)."""
PACGAN_BN_MOMENTUM = 0.05
"""PacGAN pacgan_task.py: population statistics ``m * 0.05 + p * 0.95`` after every step."""
UNROLLED_GAIN = 1.4
"""Unrolled GAN demo, cell "Construct model": ``tf.orthogonal_initializer(gain=1.4)``."""


def pack(x: Tensor, m: int) -> Tensor:
    """(B·m, d) points → (B, m·d) packs: pack i concatenates row i of each of the m slices."""
    if m == 1:
        return x
    n, d = x.shape
    return x.reshape(m, n // m, d).transpose(0, 1).reshape(n // m, m * d)


class Pack(nn.Module):
    """D's input layer: reads a batch of points as packs of ``m`` (see :func:`pack`)."""

    def __init__(self, m: int):
        super().__init__()
        self.m = m

    def forward(self, x: Tensor) -> Tensor:
        return pack(x, self.m)


class PerSlice(nn.Module):
    """Applies ``net`` to each of ``m`` consecutive slices of a training batch separately.

    Only batch normalisation notices the difference (its batch statistics are per slice); in
    eval mode the population statistics are used and the whole batch goes through at once.
    """

    def __init__(self, net: nn.Module, m: int):
        super().__init__()
        self.net = net
        self.m = m

    def forward(self, z: Tensor) -> Tensor:
        if not self.training or self.m == 1:
            return self.net(z)
        return torch.cat([self.net(s) for s in z.chunk(self.m)])


class Maxout(nn.Module):
    """Linear to ``out · pieces`` units, then the max over each contiguous group of ``pieces``.

    Written here because torch has no maxout layer; the grouping is blocks' ``LinearMaxout``
    (Linear, then ``Maxout`` reshaping the last axis to (out, pieces)), which PacGAN uses.
    """

    def __init__(self, in_features: int, out_features: int, pieces: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features * pieces)
        self.out_features, self.pieces = out_features, pieces

    def forward(self, x: Tensor) -> Tensor:
        h = self.linear(x)
        return h.view(*h.shape[:-1], self.out_features, self.pieces).amax(-1)


def packed(D: nn.Module, m: int) -> nn.Module:
    """``D`` reading packs of ``m`` points (itself when m = 1: unpacked runs are unchanged)."""
    return D if m == 1 else nn.Sequential(Pack(m), D)


def _init(module: nn.Module, weight: Callable[[Tensor], object]) -> nn.Module:
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            weight(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


def pacgan_players(packing: int) -> tuple[nn.Module, nn.Module]:
    """PacGAN's 2-D players (fjxmlzn/PacGAN, 2DGrid_GAN&PacGAN/pacgan_task.py, create_model_brick).

    G: z ∈ R² → 4 × [Linear 400 (no bias), BatchNorm, ReLU] → Linear 2 (with bias).
    D: 2·m → 3 × maxout (200 units, 5 pieces) → Linear 1. Weights N(0, 0.02²), biases 0; batch
    norm scale 1, shift 0 (blocks' defaults).
    """
    hidden, layers = 400, []
    for i in range(4):
        layers += [
            nn.Linear(2 if i == 0 else hidden, hidden, bias=False),
            nn.BatchNorm1d(hidden, eps=PACGAN_BN_EPS, momentum=PACGAN_BN_MOMENTUM),
            nn.ReLU(),
        ]
    layers.append(nn.Linear(hidden, 2))
    G = nn.Sequential(*layers)
    G = G if packing == 1 else PerSlice(G, packing)
    D = packed(
        nn.Sequential(
            Maxout(2 * packing, 200, 5),
            Maxout(200, 200, 5),
            Maxout(200, 200, 5),
            nn.Linear(200, 1),
        ),
        packing,
    )

    def normal(w: Tensor) -> None:
        nn.init.normal_(w, 0.0, PACGAN_INIT_STD)

    return _init(G, normal), _init(D, normal)


def unrolled_players(packing: int) -> tuple[nn.Module, nn.Module]:
    """The unrolled-GAN demo's players (poolio/unrolled_gan, cell "Generator and discriminator").

    G: z ∈ R²⁵⁶ → 2 × [Linear 128, tanh] → Linear 2; D: 2·m → 2 × [Linear 128, tanh] → Linear 1.
    Weights orthogonal with gain 1.4, biases 0 (slim's default initializer).
    """
    G = mlp([256, 128, 128, 2], nn.Tanh)
    D = packed(mlp([2 * packing, 128, 128, 1], nn.Tanh), packing)

    def orthogonal(w: Tensor) -> None:
        nn.init.orthogonal_(w, gain=UNROLLED_GAIN)

    return _init(G, orthogonal), _init(D, orthogonal)


def default_players(z_dim: int, hidden: int, packing: int) -> tuple[nn.Module, nn.Module]:
    """ogan's own small players: two ReLU layers of ``hidden`` units, torch's default init."""
    G = mlp([z_dim, hidden, hidden, 2])
    D = packed(mlp([2 * packing, hidden, hidden, 1]), packing)
    return G, D
