"""Mode-coverage metrics for mixtures of Gaussians (Metz et al. 2017; Srivastava et al. 2017)."""

from __future__ import annotations

import math

import numpy as np

CAPTURE_SHARE = 0.1
"""A mode is captured when it holds at least this share of its expected high-quality samples."""


def mode_metrics(samples: np.ndarray, centers: np.ndarray, std: float) -> dict[str, float]:
    """Quality and coverage of 2-D ``samples`` against a mixture with ``centers`` and ``std``.

    * ``high_quality``: fraction of samples within 3 std of their nearest mode;
    * ``modes``: modes holding at least ``CAPTURE_SHARE * n / K`` high-quality samples
      (n samples, K modes): one stray sample does not make a mode captured;
    * ``reverse_kl``: KL(q ‖ uniform) for q the histogram of nearest modes over all samples
      (0 when all modes are equally hit, log K when all samples sit at one mode).
    """
    samples = np.asarray(samples, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64)
    if samples.ndim != 2 or samples.shape[1] != centers.shape[1]:
        raise ValueError(f"samples must be (n, {centers.shape[1]}), got {samples.shape}")
    n, k = len(samples), len(centers)
    dist = np.linalg.norm(samples[:, None, :] - centers[None, :, :], axis=-1)
    nearest = dist.argmin(1)
    hq = dist[np.arange(n), nearest] <= 3 * std
    hq_counts = np.bincount(nearest[hq], minlength=k)
    q = np.bincount(nearest, minlength=k) / n
    nz = q > 0
    return {
        "high_quality": float(hq.mean()),
        "modes": float((hq_counts >= max(1, math.ceil(CAPTURE_SHARE * n / k))).sum()),
        "reverse_kl": float((q[nz] * np.log(q[nz] * k)).sum()),
    }


def mixture_stats(centers: np.ndarray, std: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean and covariance of an equal-weight isotropic Gaussian mixture."""
    centers = np.asarray(centers, dtype=np.float64)
    mu = centers.mean(0)
    diff = centers - mu
    return mu, diff.T @ diff / len(centers) + std**2 * np.eye(centers.shape[1])
