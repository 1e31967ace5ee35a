"""Games with exact answers: the bilinear game and the Dirac-GAN."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ogan.workloads.base import Batch, Metric, Workload


class _Point(nn.Module):
    """A player that is a point: its output is its parameter, whatever the noise."""

    def __init__(self, init: Tensor):
        super().__init__()
        self.w = nn.Parameter(init.clone())

    def forward(self, z: Tensor | None = None) -> Tensor:
        return self.w


class _BilinearCritic(nn.Module):
    """D_y(x) = xᵀ A y."""

    def __init__(self, y0: Tensor, A: Tensor):
        super().__init__()
        self.w = nn.Parameter(y0.clone())
        self.register_buffer("A", A)

    def forward(self, x: Tensor) -> Tensor:
        return x @ (self.A @ self.w)


@dataclass(frozen=True)
class BilinearOptions:
    dim: int = 4
    """Dimension of each player (x and y)."""
    singular_values: tuple[float, ...] = (1.0,)
    """Singular values of A: one (repeated dim times) or dim of them, all >= 0."""
    init_scale: float = 1.0
    """x0, y0 ~ N(0, init_scale² I)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "singular_values", tuple(float(s) for s in self.singular_values))
        if not (isinstance(self.dim, int) and self.dim >= 1):
            raise ValueError(f"dim must be an integer >= 1, got {self.dim!r}")
        if len(self.singular_values) not in (1, self.dim):
            raise ValueError(
                f"singular_values needs 1 or dim={self.dim} values, got {len(self.singular_values)}"
            )
        if any(not s >= 0 for s in self.singular_values):
            raise ValueError(f"singular_values must be >= 0, got {self.singular_values}")
        if not self.init_scale > 0:
            raise ValueError(f"init_scale must be > 0, got {self.init_scale}")


class Bilinear(Workload):
    r"""min_x max_y xᵀAy with A = U diag(s) Vᵀ (U, V random orthogonal, from the seed).

    The equilibrium is (0, 0); the metric is the distance to it. Every method's behaviour on
    this game has a closed form, which the tests check.
    """

    name = "bilinear"
    description = "min_x max_y xᵀAy, A with given singular values; metric: distance to equilibrium"
    metrics = {
        "distance": Metric(
            "‖(x, y) − (x*, y*)‖, the distance to the equilibrium (0, 0)",
            bounds=(0, None),
            log_scale=True,
            margin=0.1,  # 10% closer or farther
        )
    }
    primary_metric = "distance"
    target = 1.0  # from ‖z0‖ ≈ 2.8 (dim 4): Adam-type methods need thousands of steps
    Options = BilinearOptions
    default_scheme = "simultaneous"
    default_loss = None
    default_steps = 1000
    default_eval_every = 50
    default_batch_size = 1
    has_real_data = False

    def build_players(self) -> tuple[nn.Module, nn.Module]:
        o = self.options
        d = o.dim
        s = torch.tensor(o.singular_values * (d if len(o.singular_values) == 1 else 1))
        U, _ = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64))
        V, _ = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64))
        A = (U * s.double()) @ V.T
        x0 = torch.randn(d) * o.init_scale
        y0 = torch.randn(d) * o.init_scale
        G = _Point(x0)
        D = _BilinearCritic(y0, A.float())
        return G.to(self.device), D.to(self.device)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        return Batch(real=None, z=None)

    def sample_streams(self, batch_size: int, streams: Any) -> Batch:
        return Batch(real=None, z=None)

    def objective(self, d_fake: Tensor) -> tuple[Tensor, Tensor]:
        return -d_fake, d_fake  # D maximises xᵀAy, G minimises it

    def evaluate(self, G: nn.Module, D: nn.Module, generator: torch.Generator) -> dict[str, float]:
        return {
            "distance": math.sqrt(float(G.w.double().square().sum() + D.w.double().square().sum()))
        }


@dataclass(frozen=True)
class DiracOptions:
    theta0: float = 1.0
    """Initial generator position θ (G = δ_θ)."""
    psi0: float = 1.0
    """Initial discriminator slope ψ (D(x) = ψx)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.theta0) and math.isfinite(self.psi0)):
            raise ValueError(f"theta0 and psi0 must be finite, got {self.theta0}, {self.psi0}")


class _DiracGenerator(nn.Module):
    def __init__(self, theta0: float):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([theta0]))

    def forward(self, z: Tensor) -> Tensor:
        return self.theta.expand(z.shape[0], 1)


class _DiracCritic(nn.Module):
    def __init__(self, psi0: float):
        super().__init__()
        self.psi = nn.Parameter(torch.tensor([psi0]))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.psi


class Dirac(Workload):
    r"""Dirac-GAN (Mescheder et al. 2018): p_data = δ₀, G = δ_θ, D_ψ(x) = ψx.

    The unique equilibrium is (θ, ψ) = (0, 0). The default loss is the zero-sum (minimax) one
    that Mescheder et al. analyse: unregularised simultaneous gradient descent spirals out,
    alternating descent cycles, and the R1 penalty (``r1=γ``) makes it converge.
    """

    name = "dirac"
    description = "Dirac-GAN: data δ₀, G = δ_θ, D(x) = ψx; metric: distance to (0, 0)"
    metrics = {
        "distance": Metric(
            "‖(θ, ψ)‖, the distance to the equilibrium (0, 0)",
            bounds=(0, None),
            log_scale=True,
            margin=0.1,  # 10% closer or farther
        )
    }
    primary_metric = "distance"
    target = 1e-2
    Options = DiracOptions
    default_loss = "minimax"
    default_steps = 1000
    default_eval_every = 50
    default_batch_size = 1

    def build_players(self) -> tuple[nn.Module, nn.Module]:
        o = self.options
        return _DiracGenerator(o.theta0).to(self.device), _DiracCritic(o.psi0).to(self.device)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        zeros = torch.zeros(batch_size, 1, device=self.device)
        return Batch(real=zeros, z=zeros)

    def sample_streams(self, batch_size: int, streams: Any) -> Batch:
        zeros = torch.zeros(*streams.keys.shape, batch_size, 1, device=self.device)
        return Batch(real=zeros, z=zeros)

    def evaluate(self, G: nn.Module, D: nn.Module, generator: torch.Generator) -> dict[str, float]:
        return {"distance": math.hypot(float(G.theta), float(D.psi))}
