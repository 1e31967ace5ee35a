"""Mixture-of-Gaussians workloads and their mode metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ogan.metrics.frechet import frechet_distance, gaussian_stats
from ogan.metrics.modes import mixture_stats, mode_metrics
from ogan.workloads.mog import EVAL_SAMPLES, MoGGrid, MoGRing


@pytest.mark.parametrize("cls", [MoGRing, MoGGrid])
def test_samples_from_the_true_mixture_score_every_mode_and_high_quality(cls):
    workload = cls(cls.parse_options(), torch.device("cpu"))
    batch = workload.sample(EVAL_SAMPLES, torch.Generator().manual_seed(0))
    m = mode_metrics(batch.real.double().numpy(), cls.centers(), cls.std)
    assert m["modes"] == len(cls.centers())
    assert m["high_quality"] >= 0.97  # 1 - exp(-9/2) = 98.9% of a 2-D Gaussian lies within 3 std
    assert m["reverse_kl"] < 0.02
    exact = mixture_stats(cls.centers(), cls.std)
    fd = frechet_distance(*gaussian_stats(batch.real.numpy()), *exact)
    assert fd < 0.02


@pytest.mark.parametrize("cls", [MoGRing, MoGGrid])
def test_samples_all_on_one_mode_score_one_mode(cls):
    centers = cls.centers()
    rng = np.random.default_rng(0)
    samples = centers[3] + cls.std * rng.normal(size=(EVAL_SAMPLES, 2))
    m = mode_metrics(samples, centers, cls.std)
    assert m["modes"] == 1
    assert m["reverse_kl"] == pytest.approx(math.log(len(centers)))
    assert m["high_quality"] >= 0.97


def test_ring_has_eight_distinct_modes_at_radius_one():
    c = MoGRing.centers()
    assert len(c) == 8
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0)
    gaps = np.linalg.norm(c[:, None] - c[None], axis=-1) + np.eye(8)
    assert gaps.min() == pytest.approx(2 * math.sin(math.pi / 8))  # no repeated endpoint


def test_grid_has_25_modes_on_the_lattice():
    c = MoGGrid.centers()
    assert len(c) == 25 and len({tuple(x) for x in c}) == 25
    assert set(np.unique(c)) == {-4.0, -2.0, 0.0, 2.0, 4.0}


def test_far_samples_are_not_high_quality_and_capture_nothing():
    samples = np.full((100, 2), 10.0)
    m = mode_metrics(samples, MoGRing.centers(), MoGRing.std)
    assert m["high_quality"] == 0 and m["modes"] == 0


def test_mixture_stats_are_the_exact_moments():
    centers = np.array([[1.0, 0.0], [-1.0, 0.0]])
    mu, sigma = mixture_stats(centers, 0.5)
    np.testing.assert_allclose(mu, [0, 0])
    np.testing.assert_allclose(sigma, [[1.25, 0], [0, 0.25]])
