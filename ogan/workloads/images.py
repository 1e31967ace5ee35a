"""What the image workloads share: sampling from images kept in memory, and how they are scored.

Images are stored in [0, 1]. Generators with a sigmoid output train on [0, 1]; DCGAN generators
(tanh) train on [-1, 1]; metrics always see [0, 1]. Data is loaded once per process and kept on
the run's device. FID is computed from in-memory samples (never image files) in eval mode under
``no_grad``, with the feature extractor, its weights' sha256 and the sample count recorded.
The workloads themselves: :mod:`ogan.workloads.digits` (digits, seed-mlp) and
:mod:`ogan.workloads.vision` (mnist, cifar10); their networks: :mod:`ogan.workloads.nets`.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ogan.workloads.base import Batch, Metric, Workload

FID_SAMPLES = 2048
"""Generated samples per FID (the floor of both extractors; values at other n do not compare)."""

DIGITS_METRICS = {
    "digits_fid": Metric(
        f"Fréchet distance of the shipped digits classifier's 64-d features, {FID_SAMPLES} "
        "samples vs the train split",
        bounds=(0, None),
        log_scale=True,
        margin=0.1,
    ),
    "class_coverage": Metric(
        "classes predicted with confidence ≥ 0.9 for ≥ 1% of samples", True, (0, 10), margin=0.5
    ),
    "class_kl": Metric(
        "KL(predicted-class histogram ‖ uniform)", bounds=(0, None), log_scale=True, margin=0.1
    ),
}
INCEPTION_METRICS = {
    "fid": Metric(
        f"FID (pytorch-fid InceptionV3 pool3, {FID_SAMPLES} samples vs the train split)",
        bounds=(0, None),
        log_scale=True,
        margin=0.1,
    )
}


@functools.cache
def digits_train() -> Tensor:
    """The embedded digits' train split, (N, 1, 8, 8) in [0, 1]; loaded once per process."""
    from ogan.data.digits import load_digits

    return load_digits("train")[0]


@functools.cache
def _digits_extractor(device: str) -> Any:
    from ogan.metrics.digits_classifier import DigitsFeatures

    return DigitsFeatures(device=device)


@functools.cache
def _digits_reference(device: str) -> tuple[Any, Any]:
    from ogan.metrics.frechet import gaussian_stats

    return gaussian_stats(_digits_extractor(device)(digits_train()))


@functools.cache
def vision_train(dataset: str, data_dir: str | None) -> Tensor:
    """MNIST's or CIFAR-10's train split from ``data_dir``, in [0, 1]; loaded once per process."""
    from ogan.data.vision import load_cifar10, load_mnist

    return (load_mnist if dataset == "mnist" else load_cifar10)(data_dir, train=True)


def _default_cache_dir() -> Path:
    base = os.environ.get("OGAN_CACHE_DIR") or Path.home() / ".cache" / "ogan"
    return Path(base) / "fid_stats"


class ImageGAN(Workload):
    """An image GAN: batches of in-memory training images and z ~ N(0, I) of ``options.z_dim``."""

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

    def sample_streams(self, batch_size: int, streams: Any) -> Batch:
        idx = streams.randint(len(self._data), (batch_size,))
        z = streams.normal((batch_size, self.options.z_dim))
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


class DigitsScoring:
    """digits-FID and class metrics against the digits train split (digits, seed-mlp)."""

    device: torch.device

    def digits_evaluate(self, sample_fn: Any) -> dict[str, float]:
        from ogan.metrics.digits_classifier import digits_metrics

        key = str(self.device)
        out = digits_metrics(sample_fn, FID_SAMPLES, _digits_extractor(key), _digits_reference(key))
        return {
            "digits_fid": float(out["fid"]),
            "class_coverage": float(out["class_coverage"]),
            "class_kl": float(out["class_kl"]),
        }

    def digits_info(self) -> dict[str, Any]:
        extractor = _digits_extractor(str(self.device))
        return {
            "fid_implementation": "ogan.metrics.frechet (float64, eigenvalue-based)",
            "fid_extractor": extractor.name,
            "fid_extractor_sha256": extractor.sha256,
            "fid_samples": FID_SAMPLES,
            "fid_reference": f"digits train split ({len(digits_train())} images)",
        }


# -- Inception FID (mnist, cifar10, seed-mlp on MNIST) ------------------------------------------


def check_vision(dataset: str, data_dir: str | None, fid_weights: str | None) -> None:
    """MissingDataError, naming the expected path, unless the dataset and FID weights are there."""
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
        lambda: vision_train(dataset, data_dir),
        extractor,
        _default_cache_dir(),
    )


def inception_fid(dataset: str, data_dir: str | None, fid_weights: str | None,
                  device: torch.device, sample_fn: Any) -> dict[str, float]:  # fmt: skip
    """Inception FID of ``sample_fn``'s images against the dataset's train split."""
    from ogan.metrics.fid import fid_from_samples

    extractor = _inception(fid_weights, str(device))
    ref = _inception_reference(dataset, data_dir, extractor)
    return {"fid": float(fid_from_samples(sample_fn, FID_SAMPLES, extractor, ref)["fid"])}


def inception_info(fid_weights: str | None, device: torch.device) -> dict[str, Any]:
    """How :func:`inception_fid` computes, for the run's ``summary["metric_info"]``."""
    from ogan.metrics.inception import InceptionFeatures, find_inception_weights, sha256_file

    return {
        "fid_implementation": "ogan.metrics.frechet (float64, eigenvalue-based)",
        "fid_extractor": InceptionFeatures.name,
        "fid_extractor_sha256": sha256_file(find_inception_weights(fid_weights)),
        "fid_samples": FID_SAMPLES,
        "fid_reference": "train split, statistics cached as pytorch-fid .npz",
        "fid_device": str(device),
    }
