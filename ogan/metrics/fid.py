"""FID orchestration: reference statistics (cached on disk) and FID of a generator's samples.

Works with any feature extractor that follows the call protocol of ``InceptionFeatures`` and
``DigitsFeatures`` (``FeatureExtractor`` below). Samples are drawn and featurised batch by batch and
reduced to running Gaussian statistics, so neither images nor all features need to fit in memory and
no image files are written (unlike pytorch-fid's command line, which reads image folders).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from ogan.errors import ConfigError
from ogan.files import atomic_open
from ogan.metrics.frechet import RunningGaussianStats, frechet_distance

DEFAULT_BATCH_SIZE = 250
_KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class FeatureExtractor(Protocol):
    """What FID needs from a network: features of images in [0, 1], and how to record them."""

    name: str  # recorded with every FID, e.g. "inception-v3-fid"
    sha256: str  # of the weights file, so that FIDs from different weights are never mixed
    dims: int
    min_samples: int  # the smallest sample count for which an FID is reported

    def __call__(self, images: Tensor) -> np.ndarray: ...


def reference_stats(
    key: str,
    images_fn: Callable[[], Tensor],
    extractor: FeatureExtractor,
    cache_dir: str | os.PathLike[str],
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of the extractor's features on a real dataset, cached as a pytorch-fid ``.npz``.

    The cache file is ``<cache_dir>/<key>-<extractor.name>-<sha256[:12]>-n<N>.npz`` with arrays
    ``mu`` and ``sigma`` (what ``pytorch_fid.fid_score`` reads, so ``python -m pytorch_fid`` accepts
    it) plus ``n``, ``extractor`` and ``extractor_sha256``. Naming it by the weights' hash and the
    sample count means other weights or another subset never reuse stale statistics. ``images_fn``
    is always called (to learn N); only the feature extraction, the expensive part, is skipped on a
    cache hit.

    Args:
        key: names the dataset and split, e.g. ``"mnist-train"``; letters, digits, ``._-``.
        images_fn: returns all reference images, (N, C, H, W) in [0, 1].
        extractor: the feature network.
        cache_dir: created if missing.
        batch_size: images per extractor call.
    """
    if not _KEY_PATTERN.fullmatch(key):
        raise ConfigError(
            f"invalid reference key {key!r}: use letters, digits, '.', '_' and '-', "
            "e.g. 'mnist-train'"
        )
    if batch_size < 1:
        raise ConfigError(f"Invalid batch_size: {batch_size}")
    images = images_fn()
    n = len(images)
    path = Path(cache_dir) / f"{key}-{extractor.name}-{extractor.sha256[:12]}-n{n}.npz"
    if path.is_file():
        with np.load(path) as cached:
            mu, sigma = cached["mu"][:], cached["sigma"][:]
        _check_dims(mu, extractor, f"cached statistics {path}")
        return mu, sigma
    stats = RunningGaussianStats()
    for start in range(0, n, batch_size):
        batch = images[start : start + batch_size]
        _check_images(batch, "reference images")
        stats.update(extractor(batch))
    mu, sigma = stats.finalize()
    with atomic_open(path) as f:  # another worker of the sweep may be reading the cache
        np.savez(
            f,
            mu=mu,
            sigma=sigma,
            n=np.int64(n),
            extractor=np.str_(extractor.name),
            extractor_sha256=np.str_(extractor.sha256),
        )
    return mu, sigma


def fid_from_samples(
    sample_fn: Callable[[int], Tensor],
    n: int,
    extractor: FeatureExtractor,
    ref: tuple[np.ndarray, np.ndarray],
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, float | int | str]:
    """FID of ``n`` generated samples against reference statistics, with what it was computed from.

    ``sample_fn(b)`` returns ``b`` images (b, C, H, W) in [0, 1]; it is called under
    ``torch.no_grad()`` but putting the generator in eval mode is the caller's job (this function
    cannot see it).

    Returns:
        ``{"fid", "fid_samples", "fid_extractor", "fid_extractor_sha256"}``.

    Raises:
        ConfigError: ``n`` is below ``extractor.min_samples`` (FID is biased upwards at small n, and
            values at different n do not compare).
        ValueError: samples of the wrong shape or outside [0, 1], or a reference of other dims.
    """
    stats = RunningGaussianStats()
    for images in draw_samples(sample_fn, n, batch_size, extractor):
        stats.update(extractor(images))
    return fid_record(stats.finalize(), n, extractor, ref)


def draw_samples(
    sample_fn: Callable[[int], Tensor], n: int, batch_size: int, extractor: FeatureExtractor
) -> Iterator[Tensor]:
    """Yield ``n`` validated samples in batches of at most ``batch_size``, drawn without autograd.

    Checks ``n`` against ``extractor.min_samples`` before drawing anything, so a bad setting fails
    at once rather than after a slow generator pass.
    """
    if n < extractor.min_samples:
        raise ConfigError(
            f"FID with {extractor.name} needs at least {extractor.min_samples} samples, got {n}; "
            f"raise the sample count to {extractor.min_samples} or more"
        )
    if batch_size < 1:
        raise ConfigError(f"Invalid batch_size: {batch_size}")
    remaining = n
    while remaining > 0:
        size = min(batch_size, remaining)
        with torch.no_grad():
            images = sample_fn(size)
        if not isinstance(images, Tensor) or images.shape[:1] != (size,):
            raise ValueError(f"sample_fn({size}) must return a tensor of {size} images")
        _check_images(images, "samples")
        yield images
        remaining -= size


def fid_record(
    stats: tuple[np.ndarray, np.ndarray],
    n: int,
    extractor: FeatureExtractor,
    ref: tuple[np.ndarray, np.ndarray],
) -> dict[str, float | int | str]:
    """The FID entry of a run's metrics: the value and what it was computed from."""
    _check_dims(np.atleast_1d(ref[0]), extractor, "reference statistics")
    return {
        "fid": frechet_distance(stats[0], stats[1], ref[0], ref[1]),
        "fid_samples": n,
        "fid_extractor": extractor.name,
        "fid_extractor_sha256": extractor.sha256,
    }


def _check_images(images: Tensor, what: str) -> None:
    if images.ndim != 4:
        raise ValueError(f"{what} must be (N, C, H, W), got shape {tuple(images.shape)}")
    if images.numel() == 0:
        return
    if not torch.isfinite(images).all():
        raise ValueError(f"{what} contain NaN or inf")
    low, high = images.min().item(), images.max().item()
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"{what} must lie in [0, 1], got [{low:.3g}, {high:.3g}]; "
            "map tanh outputs with (x + 1) / 2"
        )


def _check_dims(mu: np.ndarray, extractor: FeatureExtractor, what: str) -> None:
    if mu.shape != (extractor.dims,):
        raise ValueError(
            f"{what} have {mu.shape[-1]} dims but {extractor.name} gives {extractor.dims}; "
            "recompute them with the same extractor"
        )
