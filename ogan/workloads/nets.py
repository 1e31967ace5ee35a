"""The workloads' networks, in one place: each builder returns fresh modules from the global RNG.

The workloads build their players here and ``bench perf`` times the same networks, so a benchmark
never drifts from what a sweep trains. Generators end in their output activation; discriminators
return logits (the loss applies the sigmoid).
"""

from __future__ import annotations

import itertools

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
