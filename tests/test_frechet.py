"""The eigenvalue-based Fréchet distance: parity with pytorch-fid, closed forms, singular cases."""

import inspect
import math
import warnings
from unittest import mock

import numpy as np
import pytest
import scipy.linalg
import torch
from pytorch_fid.fid_score import calculate_frechet_distance as pytorch_fid_distance

from ogan.metrics import frechet as frechet_module
from ogan.metrics.frechet import RunningGaussianStats, frechet_distance, gaussian_stats

# pytorch-fid passes sqrtm(disp=False), deprecated in SciPy 1.17: its warning is not ours.
pytestmark = pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning")


def random_spd(rng: np.random.Generator, d: int, condition: float) -> np.ndarray:
    """A random SPD matrix whose eigenvalues span ``condition`` (log-spaced, random basis)."""
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    eigvals = np.logspace(0.0, -np.log10(condition), d)
    rng.shuffle(eigvals)
    return (q * eigvals) @ q.T


def sample_stats(rng: np.random.Generator, n: int, d: int, shift: float = 0.0):
    mixing = rng.standard_normal((d, d)) / np.sqrt(d)
    return gaussian_stats(rng.standard_normal((n, d)) @ mixing + shift)


@pytest.mark.parametrize("d", [2, 16, 256])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_pytorch_fid_on_sample_statistics(d, seed):
    rng = np.random.default_rng(seed)
    mu1, sigma1 = sample_stats(rng, 4 * d + 10, d)
    mu2, sigma2 = sample_stats(rng, 4 * d + 10, d, shift=0.3)
    expected = pytorch_fid_distance(mu1, sigma1, mu2, sigma2)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("d", [8, 64, 256])
@pytest.mark.parametrize("condition", [1e2, 1e6, 1e10])
def test_equals_pytorch_fid_on_ill_conditioned_covariances(d, condition):
    rng = np.random.default_rng(d)
    mu1, mu2 = 0.01 * rng.standard_normal(d), 0.01 * rng.standard_normal(d)
    sigma1, sigma2 = random_spd(rng, d, condition), random_spd(rng, d, condition)
    with warnings.catch_warnings():  # sqrtm may warn about its own accuracy here
        warnings.simplefilter("ignore")
        expected = pytorch_fid_distance(mu1, sigma1, mu2, sigma2)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-6)


def test_small_distance_between_close_covariances_matches_pytorch_fid():
    # FD ≈ 0.03 from traces of ~100: the cancellation case where precision matters most.
    rng = np.random.default_rng(3)
    sigma1 = random_spd(rng, 128, 1e6)
    sigma2 = sigma1 + 1e-3 * random_spd(rng, 128, 10)
    mu = np.zeros(128)
    expected = pytorch_fid_distance(mu, sigma1, mu, sigma2)
    assert frechet_distance(mu, sigma1, mu, sigma2) == pytest.approx(expected, rel=1e-6)


def test_equal_covariances_leave_only_the_squared_mean_difference():
    rng = np.random.default_rng(0)
    sigma = random_spd(rng, 32, 1e3)
    mu1, mu2 = rng.standard_normal(32), rng.standard_normal(32)
    expected = float(np.sum((mu1 - mu2) ** 2))
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(expected, rel=1e-9)


def test_identical_statistics_are_at_distance_zero():
    rng = np.random.default_rng(0)
    mu, sigma = sample_stats(rng, 500, 64)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(("m1", "s1", "m2", "s2"), [(0.0, 1.0, 3.0, 2.0), (-1.5, 0.2, 0.5, 4.0)])
def test_one_dimensional_gaussians_match_the_closed_form(m1, s1, m2, s2):
    expected = (m1 - m2) ** 2 + (s1 - s2) ** 2
    assert frechet_distance(m1, s1**2, m2, s2**2) == pytest.approx(expected, rel=1e-12)


def test_diagonal_covariances_match_the_closed_form():
    # Commuting covariances: tr √(Σ₁Σ₂) = Σ √(a_i b_i), so FD = ‖Δμ‖² + Σ (√a_i − √b_i)².
    a, b = np.array([1.0, 4.0, 0.25, 9.0]), np.array([4.0, 1.0, 0.25, 16.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 2.0, 0.0])
    expected = 1.0 + 9.0 + float(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_fewer_samples_than_dimensions_give_a_finite_nonnegative_distance():
    rng = np.random.default_rng(0)
    mu1, sigma1 = sample_stats(rng, 40, 128)  # rank ≤ 39: both covariances singular
    mu2, sigma2 = sample_stats(rng, 60, 128, shift=0.1)
    value = frechet_distance(mu1, sigma1, mu2, sigma2)
    assert math.isfinite(value) and value >= 0.0
    assert value == pytest.approx(pytorch_fid_distance(mu1, sigma1, mu2, sigma2), rel=1e-6)


def test_singular_first_covariance_uses_the_second_for_the_cholesky_path():
    # The usual FID case: 2048 samples' covariance in 2048-d is singular, the reference's is not.
    rng = np.random.default_rng(1)
    mu1, sigma1 = sample_stats(rng, 20, 32)
    mu2, sigma2 = sample_stats(rng, 400, 32)
    forward = frechet_distance(mu1, sigma1, mu2, sigma2)
    assert forward == pytest.approx(frechet_distance(mu2, sigma2, mu1, sigma1), rel=1e-9)
    assert forward == pytest.approx(pytorch_fid_distance(mu1, sigma1, mu2, sigma2), rel=1e-6)


def test_a_collapsed_sample_set_with_zero_covariance_is_handled():
    mu = np.ones(8)
    sigma = np.eye(8)
    # N(μ₂, 0) vs N(μ₁, I): FD = ‖Δμ‖² + tr I = 8·1 + 8
    assert frechet_distance(mu, sigma, np.zeros(8), np.zeros((8, 8))) == pytest.approx(16.0)


def test_never_calls_scipy_sqrtm():
    rng = np.random.default_rng(0)
    stats = [*sample_stats(rng, 50, 16), *sample_stats(rng, 10, 16)]  # PD and singular paths
    with mock.patch.object(scipy.linalg, "sqrtm", side_effect=AssertionError("sqrtm called")) as m:
        frechet_distance(*stats)
        frechet_distance(*stats[2:], *stats[:2])
    assert m.call_count == 0
    # nor through a name imported into the module, which the patch above would not reach
    source = inspect.getsource(frechet_module)
    assert "sqrtm(" not in source and "import sqrtm" not in source


def test_accepts_torch_tensors():
    rng = np.random.default_rng(0)
    mu1, sigma1 = sample_stats(rng, 100, 8)
    mu2, sigma2 = sample_stats(rng, 100, 8)
    expected = frechet_distance(mu1, sigma1, mu2, sigma2)
    tensors = [torch.from_numpy(x).float() for x in (mu1, sigma1, mu2, sigma2)]
    assert frechet_distance(*tensors) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        (((3,), (3, 3), (4,), (4, 4)), "mu1 and mu2"),
        (((3,), (3, 3), (3,), (4, 4)), "sigma1 and sigma2"),
        (((3, 1), (3, 3), (3, 1), (3, 3)), "mu1 and mu2"),
    ],
)
def test_mismatched_shapes_raise_a_one_line_value_error(shapes, message):
    args = [np.ones(s) for s in shapes]
    with pytest.raises(ValueError, match=message) as info:
        frechet_distance(*args)
    assert "\n" not in str(info.value)


def test_non_finite_statistics_raise_value_error():
    sigma = np.eye(3)
    with pytest.raises(ValueError, match="mu2 contains NaN"):
        frechet_distance(np.zeros(3), sigma, np.array([0.0, np.nan, 0.0]), sigma)


def test_gaussian_stats_match_numpy_and_pytorch_fid_convention():
    x = np.random.default_rng(0).standard_normal((50, 6))
    mu, sigma = gaussian_stats(torch.from_numpy(x))
    np.testing.assert_allclose(mu, x.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-14)
    assert mu.dtype == sigma.dtype == np.float64


def test_gaussian_stats_refuses_one_sample_and_wrong_rank():
    with pytest.raises(ValueError, match="at least 2 samples"):
        gaussian_stats(np.ones((1, 4)))
    with pytest.raises(ValueError, match="2-D"):
        gaussian_stats(np.ones(4))


def test_running_stats_over_batches_equal_the_one_shot_statistics():
    # Offset features (mean ≫ spread) are where a naive E[xxᵀ] − μμᵀ would lose digits.
    x = 100.0 + np.random.default_rng(0).standard_normal((1000, 12))
    running = RunningGaussianStats()
    for batch in np.array_split(x, 7):
        running.update(batch)
    mu, sigma = running.finalize()
    np.testing.assert_allclose(mu, x.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-12)
    assert running.count == 1000


def test_running_stats_refuse_a_change_of_dimension():
    running = RunningGaussianStats()
    running.update(np.ones((3, 4)))
    with pytest.raises(ValueError, match="5 dims"):
        running.update(np.ones((3, 5)))
