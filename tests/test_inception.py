"""Offline Inception FID: weights discovery, loading without network, and the FID orchestration.

The real FID weights are a 96 MB download, so these tests save a randomly initialised network of the
same architecture under the expected file name and check that everything around it works.
"""

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from pytorch_fid import inception as pfid_inception
from pytorch_fid.fid_score import compute_statistics_of_path

from ogan.errors import ConfigError, MissingDataError
from ogan.metrics.fid import fid_from_samples, reference_stats
from ogan.metrics.frechet import frechet_distance, gaussian_stats
from ogan.metrics.inception import (
    INCEPTION_FILENAME,
    INCEPTION_URL,
    InceptionFeatures,
    find_inception_weights,
)


def random_fid_inception_state_dict() -> dict[str, torch.Tensor]:
    """The architecture of ``pytorch_fid.inception.fid_inception_v3`` with random weights.

    ``fid_inception_v3`` itself downloads, so this repeats its construction from pytorch-fid's
    blocks; ``InceptionV3`` loads the result strictly, so any drift in keys or shapes fails.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = pfid_inception._inception_v3(num_classes=1008, aux_logits=False, weights=None)
        net.Mixed_5b = pfid_inception.FIDInceptionA(192, pool_features=32)
        net.Mixed_5c = pfid_inception.FIDInceptionA(256, pool_features=64)
        net.Mixed_5d = pfid_inception.FIDInceptionA(288, pool_features=64)
        net.Mixed_6b = pfid_inception.FIDInceptionC(768, channels_7x7=128)
        net.Mixed_6c = pfid_inception.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6d = pfid_inception.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6e = pfid_inception.FIDInceptionC(768, channels_7x7=192)
        net.Mixed_7b = pfid_inception.FIDInceptionE_1(1280)
        net.Mixed_7c = pfid_inception.FIDInceptionE_2(2048)
    return net.state_dict()


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory) -> Path:
    """A TORCH_HOME whose hub cache holds random weights under the real file name."""
    home = tmp_path_factory.mktemp("torch_home")
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(random_fid_inception_state_dict(), checkpoints / INCEPTION_FILENAME)
    return home


@pytest.fixture
def no_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("attempted a download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


def test_url_constant_is_pytorch_fids():
    assert INCEPTION_URL == pfid_inception.FID_WEIGHTS_URL


@pytest.mark.usefixtures("no_downloads")
def test_loads_weights_from_the_torch_hub_cache_without_network(torch_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    weights = torch_home / "hub" / "checkpoints" / INCEPTION_FILENAME

    extractor = InceptionFeatures(check_hash=False)

    assert extractor.path == weights
    assert extractor.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert extractor.name == "inception-v3-fid"
    assert (extractor.dims, extractor.min_samples) == (2048, 2048)
    assert not extractor.model.training
    gray = torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    features = extractor(gray)
    assert features.shape == (2, 2048) and features.dtype == np.float64
    assert np.all(np.isfinite(features)) and np.all(features >= 0.0)  # average of ReLU outputs
    assert np.any(features > 0.0)
    # grayscale is the same image repeated on three channels
    np.testing.assert_allclose(extractor(gray.repeat(1, 3, 1, 1)), features, rtol=1e-6, atol=1e-12)


def test_extractor_returns_no_rows_for_no_images(torch_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    extractor = InceptionFeatures(check_hash=False)
    assert extractor(torch.empty(0, 3, 8, 8)).shape == (0, 2048)


@pytest.mark.usefixtures("no_downloads")
def test_explicit_fid_weights_path_is_used(torch_home, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_home"))
    elsewhere = tmp_path / "weights" / "inception.pth"
    elsewhere.parent.mkdir()
    shutil.copy(torch_home / "hub" / "checkpoints" / INCEPTION_FILENAME, elsewhere)

    extractor = InceptionFeatures(weights=elsewhere, check_hash=False)

    assert extractor.path == elsewhere
    assert extractor(torch.rand(1, 3, 8, 8)).shape == (1, 2048)


def test_a_directory_given_as_fid_weights_is_searched_for_the_file(torch_home):
    folder = torch_home / "hub" / "checkpoints"
    assert find_inception_weights(folder) == folder / INCEPTION_FILENAME


def test_missing_hub_weights_name_the_expected_path_and_the_source(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MissingDataError) as info:
        find_inception_weights()
    message = str(info.value)
    assert str(tmp_path / "hub" / "checkpoints" / INCEPTION_FILENAME) in message
    assert INCEPTION_URL in message and "fid_weights" in message
    assert "\n" not in message


def test_missing_explicit_weights_name_that_path(tmp_path):
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(MissingDataError, match=r"nowhere\.pth") as info:
        InceptionFeatures(weights=missing)
    assert str(missing) in str(info.value) and "\n" not in str(info.value)


def test_weights_with_another_sha256_are_refused_by_default(torch_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    with pytest.raises(MissingDataError, match="is not pytorch-fid's FID Inception") as info:
        InceptionFeatures()
    assert INCEPTION_URL in str(info.value) and "\n" not in str(info.value)


def test_wrong_image_shape_is_refused(torch_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    extractor = InceptionFeatures(check_hash=False)
    with pytest.raises(ValueError, match="1 or 3"):
        extractor(torch.rand(2, 2, 8, 8))


class CountingExtractor:
    """A stand-in network: features = the first three pixels; counts its calls."""

    name = "stub"
    dims = 3
    min_samples = 16

    def __init__(self, sha256: str = "ab" * 32) -> None:
        self.sha256 = sha256
        self.calls = 0

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        self.calls += 1
        return images.flatten(1)[:, :3].double().numpy()


def reference_images() -> torch.Tensor:
    return torch.rand(40, 1, 2, 2, generator=torch.Generator().manual_seed(0))


def test_reference_stats_are_computed_then_cached_as_pytorch_fid_npz(tmp_path):
    extractor = CountingExtractor()
    mu, sigma = reference_stats("toy-train", reference_images, extractor, tmp_path, batch_size=16)

    expected_mu, expected_sigma = gaussian_stats(reference_images().flatten(1)[:, :3])
    np.testing.assert_allclose(mu, expected_mu, rtol=1e-12)
    np.testing.assert_allclose(sigma, expected_sigma, rtol=1e-10)
    assert extractor.calls == 3  # 40 images in batches of 16
    path = tmp_path / f"toy-train-stub-{'ab' * 6}-n40.npz"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    # pytorch-fid's own loader reads the file (keys mu and sigma)
    loaded_mu, loaded_sigma = compute_statistics_of_path(str(path), None, 1, 3, "cpu")
    np.testing.assert_array_equal(loaded_mu, mu)
    np.testing.assert_array_equal(loaded_sigma, sigma)

    again = reference_stats("toy-train", reference_images, extractor, tmp_path)
    assert extractor.calls == 3  # served from the cache
    np.testing.assert_array_equal(again[0], mu)
    np.testing.assert_array_equal(again[1], sigma)


def test_reference_cache_is_keyed_by_the_extractor_weights_and_sample_count(tmp_path):
    reference_stats("toy", reference_images, CountingExtractor(), tmp_path)
    other_weights = CountingExtractor(sha256="cd" * 32)
    reference_stats("toy", reference_images, other_weights, tmp_path)
    fewer = CountingExtractor()
    reference_stats("toy", lambda: reference_images()[:20], fewer, tmp_path)
    assert other_weights.calls == 1 and fewer.calls == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"toy-stub-{'ab' * 6}-n20.npz",
        f"toy-stub-{'ab' * 6}-n40.npz",
        f"toy-stub-{'cd' * 6}-n40.npz",
    ]


def test_reference_key_must_be_a_plain_file_name(tmp_path):
    with pytest.raises(ConfigError, match="invalid reference key"):
        reference_stats("../escape", reference_images, CountingExtractor(), tmp_path)


def test_fid_from_samples_refuses_fewer_samples_than_the_extractor_minimum():
    def sample_fn(n):
        raise AssertionError("drew samples before checking n")

    with pytest.raises(ConfigError, match="at least 16 samples, got 15"):
        fid_from_samples(sample_fn, 15, CountingExtractor(), (np.zeros(3), np.eye(3)))


def test_fid_from_samples_draws_in_batches_and_records_the_extractor():
    generator = torch.Generator().manual_seed(1)
    drawn = []

    def sample_fn(n):
        assert not torch.is_grad_enabled()
        images = torch.rand(n, 1, 2, 2, generator=generator)
        drawn.append(images)
        return images

    ref = (np.full(3, 0.5), np.eye(3) / 12.0)
    result = fid_from_samples(sample_fn, 50, CountingExtractor(), ref, batch_size=20)

    assert [len(d) for d in drawn] == [20, 20, 10]
    features = torch.cat(drawn).flatten(1)[:, :3]
    expected = frechet_distance(*gaussian_stats(features), *ref)
    assert result == {
        "fid": pytest.approx(expected, rel=1e-9),
        "fid_samples": 50,
        "fid_extractor": "stub",
        "fid_extractor_sha256": "ab" * 32,
    }


def test_fid_from_samples_refuses_samples_outside_unit_range():
    def tanh_like(n):
        return torch.full((n, 1, 2, 2), -0.5)

    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        fid_from_samples(tanh_like, 16, CountingExtractor(), (np.zeros(3), np.eye(3)))


def test_fid_from_samples_refuses_a_reference_of_another_dimension():
    def sample_fn(n):
        return torch.rand(n, 1, 2, 2)

    with pytest.raises(ValueError, match="5 dims but stub gives 3"):
        fid_from_samples(sample_fn, 16, CountingExtractor(), (np.zeros(5), np.eye(5)))
