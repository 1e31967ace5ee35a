"""The workloads' networks, in one place: each builder returns fresh modules from the global RNG.

The workloads build their players here and ``bench perf`` times the same networks, so a benchmark
never drifts from what a sweep trains. Generators end in their output activation; discriminators
return logits (the loss applies the sigmoid).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import Tensor, nn


def mlp(sizes: list[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers of the given widths with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class Reshape(nn.Module):
    """``x.view(batch, *shape)``: between a linear layer and convolutions, or images and MLPs."""

    def __init__(self, *shape: int):
        super().__init__()
        self.shape = shape

    def forward(self, x: Tensor) -> Tensor:
        return x.view(x.shape[0], *self.shape)


def seed_mlp_players(out: int) -> tuple[nn.Module, nn.Module]:
    """The seed article's GAN: G 100→128→128→100→out (ReLU, sigmoid), D out→128→128→1 (ReLU).

    ``out`` is the flattened image size (64 for 8×8 digits, 784 for MNIST).
    """
    G = nn.Sequential(mlp([100, 128, 128, 100, out]), nn.Sigmoid())
    D = mlp([out, 128, 128, 1])
    return G, D


def digits_players(
    arch: str, z_dim: int, hidden: int, out_act: nn.Module
) -> tuple[nn.Module, nn.Module]:
    """G and D for 1×8×8 images: ``"mlp"`` (two hidden layers of ``hidden``) or ``"conv"``."""
    if arch == "mlp":
        G = nn.Sequential(
            mlp([z_dim, hidden, hidden, 64], nn.LeakyReLU), out_act, Reshape(1, 8, 8)
        )
        D = nn.Sequential(nn.Flatten(), mlp([64, hidden, hidden, 1], nn.LeakyReLU))
        return G, D
    G = nn.Sequential(  # z -> 64×2×2 -> 32×4×4 -> 1×8×8
        nn.Linear(z_dim, 64 * 4), Reshape(64, 2, 2), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.ConvTranspose2d(32, 1, 4, 2, 1), out_act,
    )  # fmt: skip
    D = nn.Sequential(
        nn.Conv2d(1, 32, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(32, 64, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(64 * 4, 1),
    )  # fmt: skip
    return G, D


def dcgan_players(channels: int, size: int, z_dim: int, w: int) -> tuple[nn.Module, nn.Module]:
    """Radford et al. 2016 DCGAN for ``size`` × ``size`` images (tanh output).

    ``size`` is 28 (MNIST: a linear layer to 7×7, two up-convolutions) or 4·2^k (32 for CIFAR-10,
    64 for the paper's own setting): from 4×4, each up-convolution doubles the side and halves
    the channels, down to ``w`` before the image; D mirrors it (batch norm but on its first layer).
    """
    if size == 28:
        G = nn.Sequential(
            nn.Linear(z_dim, 2 * w * 7 * 7), Reshape(2 * w, 7, 7),
            nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.BatchNorm2d(w), nn.ReLU(),
            nn.ConvTranspose2d(w, channels, 4, 2, 1), nn.Tanh(),
        )  # fmt: skip
        D = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(2 * w * 7 * 7, 1),
        )  # fmt: skip
        return G, D
    doublings = (size // 4).bit_length() - 1
    if size < 8 or 4 << doublings != size:
        raise ValueError(f"DCGAN image size must be 28 or 4·2^k ≥ 8, got {size}")
    widths = [w << i for i in reversed(range(doublings))]  # e.g. 4w, 2w, w
    g: list[nn.Module] = [Reshape(z_dim, 1, 1), nn.ConvTranspose2d(z_dim, widths[0], 4, 1, 0),
                          nn.BatchNorm2d(widths[0]), nn.ReLU()]  # fmt: skip
    for a, b in itertools.pairwise(widths):
        g += [nn.ConvTranspose2d(a, b, 4, 2, 1), nn.BatchNorm2d(b), nn.ReLU()]
    g += [nn.ConvTranspose2d(w, channels, 4, 2, 1), nn.Tanh()]
    d: list[nn.Module] = [nn.Conv2d(channels, w, 4, 2, 1), nn.LeakyReLU(0.2)]
    for a, b in itertools.pairwise(widths[::-1]):
        d += [nn.Conv2d(a, b, 4, 2, 1), nn.BatchNorm2d(b), nn.LeakyReLU(0.2)]
    d += [nn.Conv2d(widths[0], 1, 4, 1, 0), nn.Flatten()]
    return nn.Sequential(*g), nn.Sequential(*d)


# -- the published players of the 2-D mixture games ------------------------------------------
#
# The published players of the 2-D mixture games, built as their sources build them.
#
# Each builder reproduces one source's architecture *and* initialisation; ``ogan.workloads.mog``
# documents which choices the sources leave open. Packing (PacGAN, Lin et al. 2018) is one layout
# shared by reals and fakes: a batch of ``n = B·m`` points is read as ``m`` consecutive slices of
# ``B`` points, and pack ``i`` is the concatenation of row ``i`` of every slice. The generator
# evaluates its slices one at a time, as PacGAN's code does (one decoder call per noise tensor), so
# that batch normalisation sees batches of ``B``, not ``B·m``.

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
