"""scikit-learn's bundled 8×8 handwritten digits as image tensors, with a fixed train/test split.

The data ships inside scikit-learn (1797 images, 10 classes, pixel values 0..16), so this workload
needs no download. The split is a pure function of the dataset order, not of a random generator, so
it is identical across NumPy and scikit-learn versions: within each class, every fifth image (its
5th, 10th, … occurrence) is a test image: a stratified 80/20 split (1442 train, 355 test).
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ogan.errors import ConfigError

SPLITS = ("train", "test", "all")
TEST_EVERY = 5  # 1 in 5 images of each class is held out: an 80/20 split
PIXEL_MAX = 16.0  # the dataset's pixel values are integers 0..16


def load_digits(split: Literal["train", "test", "all"] = "train") -> tuple[Tensor, Tensor]:
    """Images (N, 1, 8, 8) float32 in [0, 1] and labels (N,) int64 of one split.

    Returns fresh tensors each call (the parsed dataset is cached in-process), so callers may modify
    them in place.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown digits split {split!r}; valid: {', '.join(SPLITS)}")
    images, labels, is_test = _load_all()
    if split == "train":
        keep = ~is_test
    elif split == "test":
        keep = is_test
    else:
        keep = torch.ones_like(is_test)
    return images[keep].clone(), labels[keep].clone()


def holdout_mask(labels: np.ndarray, every: int = TEST_EVERY) -> np.ndarray:
    """Mask marking every ``every``-th occurrence of each label (1-based) as a test sample."""
    mask = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        positions = np.flatnonzero(labels == label)
        mask[positions[every - 1 :: every]] = True
    return mask


@functools.cache
def _load_all() -> tuple[Tensor, Tensor, Tensor]:
    # scikit-learn is slow to import; only pay for it when the digits are used
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / PIXEL_MAX).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    return images, labels, torch.from_numpy(holdout_mask(bunch.target))
