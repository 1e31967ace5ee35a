"""Workloads on 8×8 digits: ``digits`` (small G/D) and ``seed-mlp`` (the seed article's GAN).

Both are scored by digits-FID, the Fréchet distance of the features of a classifier the project
trains and ships (:mod:`ogan.metrics.digits_classifier`); seed-mlp on MNIST by Inception FID.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ogan.workloads import nets
from ogan.workloads.base import Batch
from ogan.workloads.images import (
    DIGITS_METRICS,
    INCEPTION_METRICS,
    DigitsScoring,
    ImageGAN,
    check_vision,
    digits_train,
    inception_fid,
    inception_info,
    vision_train,
)
from ogan.workloads.vision import MNIST


@dataclass(frozen=True)
class DigitsOptions:
    arch: str = "mlp"
    """"mlp" (two hidden layers) or "conv" (a small DCGAN)."""
    z_dim: int = 32
    hidden: int = 256
    """Hidden width of the MLP players."""

    def __post_init__(self) -> None:
        if self.arch not in ("mlp", "conv"):
            raise ValueError(f"arch must be 'mlp' or 'conv', got {self.arch!r}")
        for key in ("z_dim", "hidden"):
            if not (isinstance(getattr(self, key), int) and getattr(self, key) >= 1):
                raise ValueError(f"{key} must be an integer >= 1, got {getattr(self, key)!r}")


class Digits(DigitsScoring, ImageGAN):
    """scikit-learn's 8×8 handwritten digits (shipped with it: real data, no download)."""

    name = "digits"
    description = "scikit-learn's 8×8 digits (embedded); MLP or small conv G/D; metric: digits-FID"
    metrics = DIGITS_METRICS
    primary_metric = "digits_fid"
    target = 100.0  # digits-FID: real test images score ~2, uniform noise ~635
    Options = DigitsOptions

    def _train_images(self) -> Tensor:
        return digits_train()

    def build_players(self) -> tuple[nn.Module, nn.Module]:
        o = self.options
        G, D = nets.digits_players(o.arch, o.z_dim, o.hidden, nn.Sigmoid())
        return G.to(self.device), D.to(self.device)

    def evaluate(self, G: nn.Module, D: nn.Module, generator: torch.Generator) -> dict[str, float]:
        return self._finite_or_nan(G, generator) or self.digits_evaluate(
            self._sampler(G, generator)
        )

    def metric_info(self) -> dict[str, Any]:
        return self.digits_info()


@dataclass(frozen=True)
class SeedMLPOptions:
    data: str = "digits"
    """"digits" (embedded) or "mnist" (from data_dir)."""
    data_dir: str | None = None
    """MNIST location (default: $OGAN_DATA_DIR, else ./data)."""
    fid_weights: str | None = None
    """InceptionV3 FID weights for MNIST (default: the torch hub cache file)."""

    def __post_init__(self) -> None:
        if self.data not in ("digits", "mnist"):
            raise ValueError(f"data must be 'digits' or 'mnist', got {self.data!r}")


class SeedMLP(DigitsScoring, ImageGAN):
    """The seed article's GAN: G 100→128→128→100→out (ReLU, sigmoid), D out→128→128→1 (ReLU).

    The article's D ends in a sigmoid; here D returns the logit and the loss applies the sigmoid
    (the same model, numerically stabler). Its article trains with Adam(2e-4, β1 = 0.5).
    """

    name = "seed-mlp"
    description = "the seed article's MLP GAN (100→128→128→100→out); digits, or MNIST from disk"
    metrics = DIGITS_METRICS
    primary_metric = "digits_fid"
    target = 100.0
    Options = SeedMLPOptions

    def __init__(self, options: Any, device: torch.device):
        super().__init__(options, device)
        if options.data == "mnist":  # the metric follows the data
            self.metrics = INCEPTION_METRICS
            self.primary_metric = "fid"
            self.target = MNIST.target

    @classmethod
    def check_options(cls, options: Any) -> None:
        if options.data == "mnist":
            check_vision("mnist", options.data_dir, options.fid_weights)

    @property
    def _out(self) -> int:
        return 784 if self.options.data == "mnist" else 64

    def _train_images(self) -> Tensor:
        if self.options.data == "mnist":
            return vision_train("mnist", self.options.data_dir)
        return digits_train()

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        idx = torch.randint(len(self._data), (batch_size,), generator=generator, device=self.device)
        z = torch.randn(batch_size, 100, generator=generator, device=self.device)
        return Batch(real=self._data[idx].flatten(1), z=z)

    def sample_streams(self, batch_size: int, streams: Any) -> Batch:
        idx = streams.randint(len(self._data), (batch_size,))
        z = streams.normal((batch_size, 100))
        return Batch(real=self._data[idx].flatten(-3), z=z)  # (*members, batch, pixels)

    def build_players(self) -> tuple[nn.Module, nn.Module]:
        G, D = nets.seed_mlp_players(self._out)
        return G.to(self.device), D.to(self.device)

    def evaluate(self, G: nn.Module, D: nn.Module, generator: torch.Generator) -> dict[str, float]:
        side = 28 if self.options.data == "mnist" else 8

        def sample_fn(n: int) -> Tensor:
            z = torch.randn(n, 100, generator=generator, device=self.device)
            return G(z).view(n, 1, side, side)

        if not torch.isfinite(sample_fn(2)).all():
            return {key: math.nan for key in self.metrics}
        if self.options.data == "mnist":
            return inception_fid("mnist", self.options.data_dir, self.options.fid_weights,
                                 self.device, sample_fn)  # fmt: skip
        return self.digits_evaluate(sample_fn)

    def metric_info(self) -> dict[str, Any]:
        if self.options.data == "mnist":
            return inception_info(self.options.fid_weights, self.device)
        return self.digits_info()
