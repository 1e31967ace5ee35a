"""Fréchet distance between Gaussians fitted to features: the quantity behind FID, in float64.

    d²((μ₁, Σ₁), (μ₂, Σ₂)) = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁ Σ₂)^{1/2}

pytorch-fid computes the last term with ``scipy.linalg.sqrtm`` of the non-symmetric product Σ₁Σ₂: a
Schur decomposition in complex arithmetic that takes ≈10 s at d = 2048 on two CPU cores, can return
spurious imaginary parts, and no longer accepts pytorch-fid's ``disp`` argument in SciPy ≥ 1.18.
Only the *trace* of the square root is needed, and Σ₁Σ₂ has the same eigenvalues as a symmetric
positive semi-definite matrix, so

    tr (Σ₁ Σ₂)^{1/2} = Σᵢ √λᵢ,   λ = eigvalsh(Lᵀ Σ₂ L) with Σ₁ = L Lᵀ (Cholesky),

which needs one Cholesky factorisation, two matrix products and a symmetric eigenvalue solve without
eigenvectors (≈11× faster than pytorch-fid at d = 2048). When neither covariance is positive
definite (e.g. fewer samples than feature dimensions) the symmetric square root √Σ₁ from ``eigh``
replaces L; λ = eigvalsh(√Σ₁ Σ₂ √Σ₁) is the same spectrum. Eigenvalues that round to tiny negatives
are clipped to 0, so the result is always real.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike


def gaussian_stats(features: ArrayLike | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of ``features`` (N samples × d), in float64.

    Same estimator as pytorch-fid's ``calculate_activation_statistics``: ``np.cov(rowvar=False)``,
    i.e. the unbiased (N − 1) covariance, so statistics from either tool are interchangeable.
    """
    x = _as_float64(features)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (samples, dims), got shape {tuple(x.shape)}")
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 samples to estimate a covariance, got {x.shape[0]}")
    mu = x.mean(axis=0)
    sigma = np.atleast_2d(np.cov(x, rowvar=False))
    return mu, sigma


class RunningGaussianStats:
    """``gaussian_stats`` over feature batches that never sit in memory together.

    60 000 Inception features in float64 take ~1 GB; the running sums take d² floats. Sums are taken
    around the first batch's mean (the shifted-data algorithm), which avoids the cancellation of the
    naive E[xxᵀ] − μμᵀ formula, so the result agrees with ``np.cov`` to ~1e-12 relative.
    """

    def __init__(self) -> None:
        self.count = 0
        self._shift: np.ndarray | None = None
        self._sum: np.ndarray | None = None
        self._outer: np.ndarray | None = None

    def update(self, features: ArrayLike | torch.Tensor) -> None:
        x = _as_float64(features)
        if x.ndim != 2:
            raise ValueError(f"features must be 2-D (samples, dims), got shape {tuple(x.shape)}")
        if x.shape[0] == 0:
            return
        if self._shift is None:
            self._shift = x.mean(axis=0)
            self._sum = np.zeros_like(self._shift)
            self._outer = np.zeros((x.shape[1], x.shape[1]))
        elif x.shape[1] != self._shift.shape[0]:
            raise ValueError(
                f"features have {x.shape[1]} dims, earlier batches {self._shift.shape[0]}"
            )
        centred = x - self._shift
        self._sum += centred.sum(axis=0)
        self._outer += centred.T @ centred
        self.count += x.shape[0]

    def finalize(self) -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma) of everything seen, with the same (N − 1) normalisation as ``np.cov``."""
        if self.count < 2:
            raise ValueError(f"need at least 2 samples to estimate a covariance, got {self.count}")
        mean_centred = self._sum / self.count
        sigma = (self._outer - self.count * np.outer(mean_centred, mean_centred)) / (self.count - 1)
        return self._shift + mean_centred, 0.5 * (sigma + sigma.T)


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), computed in float64.

    Drop-in for ``pytorch_fid.fid_score.calculate_frechet_distance`` (equal to it within 1e-6
    relative wherever ``sqrtm`` converges) but eigenvalue-based, never calling ``sqrtm``; see the
    module docstring. Accepts numpy arrays or CPU tensors; scalars are 1-D Gaussians, as in
    pytorch-fid.

    Raises:
        ValueError: if the shapes disagree or the statistics are not finite.
    """
    m1 = np.atleast_1d(_as_float64(mu1))
    m2 = np.atleast_1d(_as_float64(mu2))
    s1 = np.atleast_2d(_as_float64(sigma1))
    s2 = np.atleast_2d(_as_float64(sigma2))
    if m1.ndim != 1 or m1.shape != m2.shape:
        raise ValueError(
            f"mu1 and mu2 must be 1-D of the same length, got shapes {m1.shape} and {m2.shape}"
        )
    d = m1.shape[0]
    if s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"sigma1 and sigma2 must be ({d}, {d}) to match mu, got {s1.shape} and {s2.shape}"
        )
    for name, value in (("mu1", m1), ("sigma1", s1), ("mu2", m2), ("sigma2", s2)):
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name} contains NaN or inf: the features behind it are not finite")
    diff = m1 - m2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2))


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr (Σ₁ Σ₂)^{1/2} for symmetric positive semi-definite Σ₁, Σ₂ (validated float64 arrays).

    Both inputs are symmetrised first ((Σ + Σᵀ)/2, a no-op for a true covariance) because LAPACK
    reads one triangle only; sqrtm reads both, so this keeps the two methods on the same matrix.
    """
    s1 = 0.5 * (sigma1 + sigma1.T)
    s2 = 0.5 * (sigma2 + sigma2.T)
    # tr (Σ₁Σ₂)^{1/2} = tr (Σ₂Σ₁)^{1/2}: factor whichever covariance is positive definite. In FID
    # the reference statistics usually are, while 2048 generated samples in 2048-d are not.
    for a, b in ((s1, s2), (s2, s1)):
        try:
            root = np.linalg.cholesky(a)
        except np.linalg.LinAlgError:
            continue
        return _sum_sqrt_eigvals(root.T @ b @ root)
    w, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    return _sum_sqrt_eigvals(root @ s2 @ root)


def _sum_sqrt_eigvals(m: np.ndarray) -> float:
    # m = Rᵀ B R is symmetric in exact arithmetic; symmetrising removes the rounding asymmetry.
    eigvals = np.linalg.eigvalsh(0.5 * (m + m.T))
    return float(np.sqrt(np.clip(eigvals, 0.0, None)).sum())


def _as_float64(x: ArrayLike | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)
