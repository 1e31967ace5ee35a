"""Two moons: a GAN of your own, benchmarked with ogan (README: "Benchmark your own GAN")."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ogan.workloads import Batch, Metric, Workload


def moons(n: int, noise: float, generator: torch.Generator) -> Tensor:
    """n points of scikit-learn's make_moons (two interleaving half circles), seeded."""
    device = generator.device
    t = math.pi * torch.rand(n, generator=generator, device=device)
    upper = torch.rand(n, generator=generator, device=device) < 0.5
    x = torch.where(upper, t.cos(), 1 - t.cos())
    y = torch.where(upper, t.sin(), 0.5 - t.sin())
    return torch.stack([x, y], 1) + noise * torch.randn(n, 2, generator=generator, device=device)


def mlp(*sizes: int) -> nn.Sequential:
    pairs = itertools.pairwise(sizes)
    layers = [m for a, b in pairs for m in (nn.Linear(a, b), nn.LeakyReLU(0.2))]
    return nn.Sequential(*layers[:-1])  # no activation after the last layer


@dataclass(frozen=True)
class Options:  # the keys of its [[workload]] table; unknown keys and bad values are errors
    hidden: int = 64  # width of both players' two hidden layers
    noise: float = 0.05  # std of the noise around the moons, as make_moons' noise

    def __post_init__(self) -> None:
        if not (isinstance(self.hidden, int) and self.hidden >= 1) or not self.noise >= 0:
            raise ValueError(f"need hidden >= 1 and noise >= 0, got {self.hidden}, {self.noise}")


class TwoMoons(Workload):
    """Two moons in 2-D: G maps 4-d noise to points, D scores points (MLPs)."""

    metrics = {"swd": Metric("sliced Wasserstein-1 distance to the data (4096 samples)")}
    primary_metric = "swd"
    target = 0.05  # what an eye calls "two moons" (the noise alone gives ~0.01)
    Options = Options
    default_steps, default_eval_every, default_batch_size = 2000, 200, 128
    z_dim = 4

    def build_players(self) -> tuple[nn.Module, nn.Module]:
        h = self.options.hidden
        return mlp(self.z_dim, h, h, 2).to(self.device), mlp(2, h, h, 1).to(self.device)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        z = torch.randn(batch_size, self.z_dim, generator=generator, device=self.device)
        return Batch(real=moons(batch_size, self.options.noise, generator), z=z)

    def evaluate(self, G: nn.Module, D: nn.Module, generator: torch.Generator) -> dict:
        n = 4096  # the mean over 64 random directions of the 1-d W1 between sorted projections
        fake = G(torch.randn(n, self.z_dim, generator=generator, device=self.device))
        real = moons(n, self.options.noise, generator)
        directions = torch.randn(2, 64, generator=generator, device=self.device)
        directions = directions / directions.norm(dim=0)
        gap = (fake @ directions).sort(0).values - (real @ directions).sort(0).values
        return {"swd": float(gap.abs().mean())}
