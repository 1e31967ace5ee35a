"""Mixtures of Gaussians in 2-D: the classic mode-collapse tests (Metz et al. 2017)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ogan.metrics.frechet import frechet_distance, gaussian_stats
from ogan.metrics.modes import mixture_stats, mode_metrics
from ogan.workloads.base import Batch, Metric, Workload
from ogan.workloads.nets import mlp

EVAL_SAMPLES = 2500


@dataclass(frozen=True)
class MoGOptions:
    z_dim: int = 16
    """Generator noise dimension."""
    hidden: int = 128
    """Width of the two hidden layers of G and D."""

    def __post_init__(self) -> None:
        for key in ("z_dim", "hidden"):
            value = getattr(self, key)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{key} must be an integer >= 1, got {value!r}")


class _MoG(Workload):
    std: ClassVar[float]
    metrics = {
        "fd": Metric(
            f"Fréchet distance between {EVAL_SAMPLES} samples and the mixture (exact stats)",
            bounds=(0, None),
            log_scale=True,
        ),
        "modes": Metric(
            "modes captured (≥ 10% of their expected high-quality samples)", True, (0, None)
        ),
        "high_quality": Metric(
            "fraction of samples within 3 std of the nearest mode", True, (0, 1)
        ),
        "reverse_kl": Metric(
            "KL(nearest-mode histogram ‖ uniform)", bounds=(0, None), log_scale=True
        ),
    }
    primary_metric = "fd"
    Options = MoGOptions
    default_steps = 2000
    default_eval_every = 200
    default_batch_size = 256

    @staticmethod
    def centers() -> np.ndarray:
        raise NotImplementedError

    @cached_property
    def _centers(self) -> torch.Tensor:
        return torch.tensor(self.centers(), dtype=torch.float32, device=self.device)

    def build_players(self) -> tuple[nn.Module, nn.Module]:
        h = self.options.hidden
        G = mlp([self.options.z_dim, h, h, 2])
        D = mlp([2, h, h, 1])
        return G.to(self.device), D.to(self.device)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        idx = torch.randint(
            len(self._centers), (batch_size,), generator=generator, device=self.device
        )
        noise = torch.randn(batch_size, 2, generator=generator, device=self.device)
        real = self._centers[idx] + self.std * noise
        z = torch.randn(batch_size, self.options.z_dim, generator=generator, device=self.device)
        return Batch(real=real, z=z)

    def evaluate(self, G: nn.Module, D: nn.Module, generator: torch.Generator) -> dict[str, float]:
        z = torch.randn(EVAL_SAMPLES, self.options.z_dim, generator=generator, device=self.device)
        samples = G(z).double().cpu().numpy()
        if not np.isfinite(samples).all():
            return {key: math.nan for key in self.metrics}
        out = mode_metrics(samples, self.centers(), self.std)
        out["fd"] = frechet_distance(
            *gaussian_stats(samples), *mixture_stats(self.centers(), self.std)
        )
        return out

    def metric_info(self) -> dict[str, object]:
        return {"eval_samples": EVAL_SAMPLES, "fd_reference": "exact mixture mean and covariance"}


class MoGRing(_MoG):
    name = "mog-ring"
    description = "8 Gaussians on a circle of radius 1, std 0.01 (mode collapse test)"
    std = 0.01
    target = 0.02

    @staticmethod
    def centers() -> np.ndarray:
        # 8 distinct angles: linspace(0, 2π, 8) would repeat the first mode at 2π.
        angles = 2 * np.pi * np.arange(8) / 8
        return np.stack([np.cos(angles), np.sin(angles)], 1)


class MoGGrid(_MoG):
    name = "mog-grid"
    description = "25 Gaussians on the grid {-4,-2,0,2,4}², std 0.05 (mode collapse test)"
    std = 0.05
    target = 0.5

    @staticmethod
    def centers() -> np.ndarray:
        xs = np.arange(-4.0, 5.0, 2.0)
        return np.stack(np.meshgrid(xs, xs, indexing="ij"), -1).reshape(-1, 2)
