"""Image workloads: embedded 8×8 digits, the seed article's MLP GAN, DCGANs on MNIST/CIFAR-10.

Images are stored in [0, 1]. Generators with a sigmoid output train on [0, 1]; DCGAN generators
(tanh) train on [-1, 1]; metrics always see [0, 1]. Data is loaded once per process and kept on
the run's device. FID is computed from in-memory samples (never image files) in eval mode under
``no_grad``, with the feature extractor, its weights' sha256 and the sample count recorded.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ogan.workloads.base import Batch, Metric, Workload
from ogan.workloads.mog import mlp

FID_SAMPLES = 2048
"""Generated samples per FID (the floor of both extractors; values at other n do not compare)."""

DIGITS_METRICS = {
    "digits_fid": Metric(
        f"Fréchet distance of the shipped digits classifier's 64-d features, {FID_SAMPLES} "
        "samples vs the train split",
        bounds=(0, None),
        log_scale=True,
    ),
    "class_coverage": Metric(
        "classes predicted with confidence ≥ 0.9 for ≥ 1% of samples", True, (0, 10)
    ),
    "class_kl": Metric("KL(predicted-class histogram ‖ uniform)", bounds=(0, None), log_scale=True),
}
INCEPTION_METRICS = {
    "fid": Metric(
        f"FID (pytorch-fid InceptionV3 pool3, {FID_SAMPLES} samples vs the train split)",
        bounds=(0, None),
        log_scale=True,
    )
}


@functools.cache
def _digits_train() -> Tensor:
    from ogan.data.digits import load_digits

    return load_digits("train")[0]


@functools.cache
def _digits_extractor(device: str) -> Any:
    from ogan.metrics.digits_classifier import DigitsFeatures

    return DigitsFeatures(device=device)


@functools.cache
def _digits_reference(device: str) -> tuple[Any, Any]:
    from ogan.metrics.frechet import gaussian_stats

    return gaussian_stats(_digits_extractor(device)(_digits_train()))


@functools.cache
def _vision_train(dataset: str, data_dir: str | None) -> Tensor:
    from ogan.data.vision import load_cifar10, load_mnist

    return (load_mnist if dataset == "mnist" else load_cifar10)(data_dir, train=True)


def _default_cache_dir() -> Path:
    base = os.environ.get("OGAN_CACHE_DIR") or Path.home() / ".cache" / "ogan"
    return Path(base) / "fid_stats"


class _ImageGAN(Workload):
    output: ClassVar[str] = "sigmoid"  # or "tanh": the generator's last activation
    default_steps = 2000
    default_eval_every = 500
    default_batch_size = 64

    def _train_images(self) -> Tensor:
        raise NotImplementedError

    @functools.cached_property
    def _data(self) -> Tensor:
        images = self._train_images().to(self.device)
        return images * 2 - 1 if self.output == "tanh" else images

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        idx = torch.randint(len(self._data), (batch_size,), generator=generator, device=self.device)
        z = torch.randn(batch_size, self.options.z_dim, generator=generator, device=self.device)
        return Batch(real=self._data[idx], z=z)

    def _sampler(self, G: nn.Module, generator: torch.Generator) -> Any:
        def sample_fn(n: int) -> Tensor:
            z = torch.randn(n, self.options.z_dim, generator=generator, device=self.device)
            x = G(z)
            return (x + 1) / 2 if self.output == "tanh" else x

        return sample_fn

    def _finite_or_nan(self, G: nn.Module, generator: torch.Generator) -> dict[str, float] | None:
        probe = self._sampler(G, generator)(2)
        if not torch.isfinite(probe).all():
            return {key: math.nan for key in self.metrics}
        return None


# -- digits -------------------------------------------------------------------------------------


class _Reshape(nn.Module):
    def __init__(self, *shape: int):
        super().__init__()
        self.shape = shape

    def forward(self, x: Tensor) -> Tensor:
        return x.view(x.shape[0], *self.shape)


def _digits_players(
    arch: str, z_dim: int, hidden: int, out_act: nn.Module
) -> tuple[nn.Module, nn.Module]:
    if arch == "mlp":
        G = nn.Sequential(
            mlp([z_dim, hidden, hidden, 64], nn.LeakyReLU), out_act, _Reshape(1, 8, 8)
        )
        D = nn.Sequential(nn.Flatten(), mlp([64, hidden, hidden, 1], nn.LeakyReLU))
        return G, D
    G = nn.Sequential(  # z -> 64×2×2 -> 32×4×4 -> 1×8×8
        nn.Linear(z_dim, 64 * 4), _Reshape(64, 2, 2), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.ConvTranspose2d(32, 1, 4, 2, 1), out_act,
    )  # fmt: skip
    D = nn.Sequential(
        nn.Conv2d(1, 32, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(32, 64, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(64 * 4, 1),
    )  # fmt: skip
    return G, D


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


class _DigitsMetrics:
    """digits-FID and class metrics against the digits train split (shared by two workloads)."""

    device: torch.device

    def _digits_evaluate(self, sample_fn: Any) -> dict[str, float]:
        from ogan.metrics.digits_classifier import digits_metrics

        key = str(self.device)
        out = digits_metrics(sample_fn, FID_SAMPLES, _digits_extractor(key), _digits_reference(key))
        return {
            "digits_fid": float(out["fid"]),
            "class_coverage": float(out["class_coverage"]),
            "class_kl": float(out["class_kl"]),
        }

    def _digits_info(self) -> dict[str, Any]:
        extractor = _digits_extractor(str(self.device))
        return {
            "fid_implementation": "ogan.metrics.frechet (float64, eigenvalue-based)",
            "fid_extractor": extractor.name,
            "fid_extractor_sha256": extractor.sha256,
            "fid_samples": FID_SAMPLES,
            "fid_reference": f"digits train split ({len(_digits_train())} images)",
        }


class Digits(_DigitsMetrics, _ImageGAN):
    """scikit-learn's 8×8 handwritten digits (shipped with it: real data, no download)."""

    name = "digits"
    description = "scikit-learn's 8×8 digits (embedded); MLP or small conv G/D; metric: digits-FID"
    metrics = DIGITS_METRICS
    primary_metric = "digits_fid"
    target = 100.0  # digits-FID: real test images score ~2, uniform noise ~635
    Options = DigitsOptions

    def _train_images(self) -> Tensor:
        return _digits_train()

    def build_players(self) -> tuple[nn.Module, nn.Module]:
        o = self.options
        G, D = _digits_players(o.arch, o.z_dim, o.hidden, nn.Sigmoid())
        return G.to(self.device), D.to(self.device)

    def evaluate(self, G: nn.Module, D: nn.Module, generator: torch.Generator) -> dict[str, float]:
        return self._finite_or_nan(G, generator) or self._digits_evaluate(
            self._sampler(G, generator)
        )

    def metric_info(self) -> dict[str, Any]:
        return self._digits_info()


# -- the seed article's MLP GAN -----------------------------------------------------------------


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


class SeedMLP(_DigitsMetrics, _ImageGAN):
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
            _check_vision("mnist", options.data_dir, options.fid_weights)

    @property
    def _out(self) -> int:
        return 784 if self.options.data == "mnist" else 64

    def _train_images(self) -> Tensor:
        if self.options.data == "mnist":
            return _vision_train("mnist", self.options.data_dir)
        return _digits_train()

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        idx = torch.randint(len(self._data), (batch_size,), generator=generator, device=self.device)
        z = torch.randn(batch_size, 100, generator=generator, device=self.device)
        return Batch(real=self._data[idx].flatten(1), z=z)

    def build_players(self) -> tuple[nn.Module, nn.Module]:
        out = self._out
        G = nn.Sequential(mlp([100, 128, 128, 100, out]), nn.Sigmoid())
        D = mlp([out, 128, 128, 1])
        return G.to(self.device), D.to(self.device)

    def evaluate(self, G: nn.Module, D: nn.Module, generator: torch.Generator) -> dict[str, float]:
        side = 28 if self.options.data == "mnist" else 8

        def sample_fn(n: int) -> Tensor:
            z = torch.randn(n, 100, generator=generator, device=self.device)
            return G(z).view(n, 1, side, side)

        if not torch.isfinite(sample_fn(2)).all():
            return {key: math.nan for key in self.metrics}
        if self.options.data == "mnist":
            return _inception_fid("mnist", self.options.data_dir, self.options.fid_weights,
                                  self.device, sample_fn)  # fmt: skip
        return self._digits_evaluate(sample_fn)

    def metric_info(self) -> dict[str, Any]:
        if self.options.data == "mnist":
            return _inception_info(self.options.fid_weights, self.device)
        return self._digits_info()


# -- DCGAN on MNIST / CIFAR-10 ------------------------------------------------------------------


def _check_vision(dataset: str, data_dir: str | None, fid_weights: str | None) -> None:
    from ogan.data.vision import check_cifar10, check_mnist
    from ogan.metrics.inception import find_inception_weights

    (check_mnist if dataset == "mnist" else check_cifar10)(data_dir)
    find_inception_weights(fid_weights)


@functools.cache
def _inception(fid_weights: str | None, device: str) -> Any:
    from ogan.metrics.inception import InceptionFeatures

    return InceptionFeatures(fid_weights, device=device)


@functools.cache
def _inception_reference(dataset: str, data_dir: str | None, extractor: Any) -> Any:
    """The train split's statistics under ``extractor``, read once per process (on disk: the
    pytorch-fid .npz cache); keyed by the extractor object, itself one per weights and device."""
    from ogan.metrics.fid import reference_stats

    return reference_stats(
        f"{dataset}-train",
        lambda: _vision_train(dataset, data_dir),
        extractor,
        _default_cache_dir(),
    )


def _inception_fid(dataset: str, data_dir: str | None, fid_weights: str | None,
                   device: torch.device, sample_fn: Any) -> dict[str, float]:  # fmt: skip
    from ogan.metrics.fid import fid_from_samples

    extractor = _inception(fid_weights, str(device))
    ref = _inception_reference(dataset, data_dir, extractor)
    return {"fid": float(fid_from_samples(sample_fn, FID_SAMPLES, extractor, ref)["fid"])}


def _inception_info(fid_weights: str | None, device: torch.device) -> dict[str, Any]:
    from ogan.metrics.inception import InceptionFeatures, find_inception_weights, sha256_file

    return {
        "fid_implementation": "ogan.metrics.frechet (float64, eigenvalue-based)",
        "fid_extractor": InceptionFeatures.name,
        "fid_extractor_sha256": sha256_file(find_inception_weights(fid_weights)),
        "fid_samples": FID_SAMPLES,
        "fid_reference": "train split, statistics cached as pytorch-fid .npz",
        "fid_device": str(device),
    }


@dataclass(frozen=True)
class VisionOptions:
    data_dir: str | None = None
    """Dataset location (default: $OGAN_DATA_DIR, else ./data); never downloaded."""
    fid_weights: str | None = None
    """pt_inception-2015-12-05-6726825d.pth (default: the torch hub cache)."""
    z_dim: int = 100
    width: int = 64
    """Channels of the widest-resolution layer (DCGAN's ngf = ndf)."""


def _dcgan(channels: int, size: int, z_dim: int, w: int) -> tuple[nn.Module, nn.Module]:
    """Radford et al. 2016 DCGAN for 28×28 (MNIST) or 32×32 (CIFAR-10) images."""
    if size == 28:
        G = nn.Sequential(
            nn.Linear(z_dim, 2 * w * 7 * 7), _Reshape(2 * w, 7, 7),
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
    G = nn.Sequential(
        _Reshape(z_dim, 1, 1),
        nn.ConvTranspose2d(z_dim, 4 * w, 4, 1, 0), nn.BatchNorm2d(4 * w), nn.ReLU(),
        nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1), nn.BatchNorm2d(2 * w), nn.ReLU(),
        nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.BatchNorm2d(w), nn.ReLU(),
        nn.ConvTranspose2d(w, channels, 4, 2, 1), nn.Tanh(),
    )  # fmt: skip
    D = nn.Sequential(
        nn.Conv2d(channels, w, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(w, 2 * w, 4, 2, 1), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2),
        nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2),
        nn.Conv2d(4 * w, 1, 4, 1, 0), nn.Flatten(),
    )  # fmt: skip
    return G, D


class _VisionGAN(_ImageGAN):
    dataset: ClassVar[str]
    channels: ClassVar[int]
    size: ClassVar[int]
    output = "tanh"
    metrics = INCEPTION_METRICS
    primary_metric = "fid"
    Options = VisionOptions
    default_steps = 5000
    default_eval_every = 1000

    @classmethod
    def check_options(cls, options: Any) -> None:
        _check_vision(cls.dataset, options.data_dir, options.fid_weights)

    def _train_images(self) -> Tensor:
        return _vision_train(self.dataset, self.options.data_dir)

    def build_players(self) -> tuple[nn.Module, nn.Module]:
        o = self.options
        G, D = _dcgan(self.channels, self.size, o.z_dim, o.width)
        return G.to(self.device), D.to(self.device)

    def evaluate(self, G: nn.Module, D: nn.Module, generator: torch.Generator) -> dict[str, float]:
        o = self.options
        return self._finite_or_nan(G, generator) or _inception_fid(
            self.dataset, o.data_dir, o.fid_weights, self.device, self._sampler(G, generator)
        )

    def metric_info(self) -> dict[str, Any]:
        return _inception_info(self.options.fid_weights, self.device)


class MNIST(_VisionGAN):
    name = "mnist"
    description = "MNIST from a local path (torchvision format), DCGAN G/D; metric: Inception FID"
    dataset, channels, size = "mnist", 1, 28
    target = 30.0


class CIFAR10(_VisionGAN):
    name = "cifar10"
    description = (
        "CIFAR-10 from a local path (torchvision format), DCGAN G/D; metric: Inception FID"
    )
    dataset, channels, size = "cifar10", 3, 32
    target = 60.0
