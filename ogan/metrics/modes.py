"""Mode-coverage metrics for mixtures of Gaussians, as PacGAN computes them (Lin et al. 2018).

Source: fjxmlzn/PacGAN, ``synthetic_data_experiments/PacGAN/pacgan/extensions.py``,
``MetricLogger.do``: each sample goes to its nearest mode in the normalised distance
``sqrt(sum((x - mu)² / var))`` (for isotropic modes, ``‖x − mu‖ / std``); it is *high quality*
when that distance is below ``dis_thre = 3``; ``detail_of_coverage`` counts the high-quality
samples per mode; "mode coverage" is the number of modes with a non-zero count; "good points
percentage" is the high-quality count over all samples. The code logs the coverage histogram's
entropy, not a KL: the paper's reverse KL of the mode histogram against the uniform target is
``KL(q ‖ u) = log K − H(q)`` for ``q`` that normalised histogram, which is what
:func:`mode_metrics` returns (modes with no sample add ``0 · log 0 = 0``, as in scipy's entropy
and the code's own KL helper; the uniform target has no empty bin, so the KL is finite).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import entropy

HQ_STDS = 3.0
"""PacGAN MetricLogger ``dis_thre``: high quality means strictly closer than 3 std to a mode."""


def mode_metrics(samples: np.ndarray, centers: np.ndarray, std: float) -> dict[str, float]:
    """Quality and coverage of 2-D ``samples`` against a mixture with ``centers`` and ``std``.

    * ``high_quality``: fraction of samples strictly within ``HQ_STDS`` std of their nearest mode;
    * ``modes``: modes that hold at least one high-quality sample;
    * ``reverse_kl``: ``KL(q ‖ uniform)`` for ``q`` the histogram of high-quality samples over
      modes: 0 when they are spread evenly over every mode, ``log K`` when they all sit at one.
      NaN when no sample is high quality (``q`` is then 0/0, as in PacGAN's code).
    """
    samples = np.asarray(samples, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64)
    if samples.ndim != 2 or samples.shape[1] != centers.shape[1]:
        raise ValueError(f"samples must be (n, {centers.shape[1]}), got {samples.shape}")
    n, k = len(samples), len(centers)
    dist = np.linalg.norm(samples[:, None, :] - centers[None, :, :], axis=-1) / std
    nearest = dist.argmin(1)
    hq = dist[np.arange(n), nearest] < HQ_STDS
    counts = np.bincount(nearest[hq], minlength=k)
    total = counts.sum()
    return {
        "high_quality": float(hq.mean()),
        "modes": float((counts > 0).sum()),
        "reverse_kl": float(math.log(k) - entropy(counts / total)) if total else math.nan,
    }


def mixture_stats(centers: np.ndarray, std: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean and covariance of an equal-weight isotropic Gaussian mixture."""
    centers = np.asarray(centers, dtype=np.float64)
    mu = centers.mean(0)
    diff = centers - mu
    return mu, diff.T @ diff / len(centers) + std**2 * np.eye(centers.shape[1])
