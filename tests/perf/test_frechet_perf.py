"""Fréchet distance at FID scale (d = 2048): ogan's eigenvalue method vs pytorch-fid's sqrtm.

Run with ``pytest tests/perf/test_frechet_perf.py -m perf --benchmark-group-by=group``; the two
rows of group "frechet" give the speed ratio (measured ≈11× on 2 CPU cores). Each benchmark also
checks that both methods give the same value.
"""

import numpy as np
import pytest
from pytorch_fid.fid_score import calculate_frechet_distance as pytorch_fid_distance

from ogan.metrics.frechet import frechet_distance, gaussian_stats

pytestmark = [
    pytest.mark.perf,
    pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning"),
]

DIMS = 2048  # Inception pool3 features
SAMPLES = 2500  # a few more samples than dimensions: SPD covariances, as for FID reference sets


def _stats(seed: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((DIMS, DIMS)) / np.sqrt(DIMS)
    features = np.abs(rng.standard_normal((SAMPLES, DIMS)) @ mixing + shift)  # ReLU-like, >= 0
    return gaussian_stats(features)


@pytest.fixture(scope="module")
def stats():
    return (*_stats(0, 0.0), *_stats(1, 0.1))


@pytest.fixture(scope="module")
def expected(stats):
    # float64 eigendecomposition reference, computed once and independent of both timed methods
    mu1, sigma1, mu2, sigma2 = stats
    w, v = np.linalg.eigh(sigma1)
    root = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(root @ sigma2 @ root), 0.0, None)).sum()
    diff = mu1 - mu2
    return diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt


def test_frechet_ogan(benchmark, stats, expected):
    benchmark.group = "frechet"
    value = benchmark.pedantic(frechet_distance, args=stats, rounds=5, warmup_rounds=1)
    assert value == pytest.approx(expected, rel=1e-6)


def test_frechet_pytorch_fid(benchmark, stats, expected):
    benchmark.group = "frechet"
    value = benchmark.pedantic(pytorch_fid_distance, args=stats, rounds=3)
    assert value == pytest.approx(expected, rel=1e-6)
