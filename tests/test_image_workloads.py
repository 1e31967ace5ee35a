"""Image workloads: digits and seed-mlp end to end; MNIST/CIFAR-10 data paths and FID wiring."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import ogan
from ogan.errors import MissingDataError
from ogan.game.config import resolve
from ogan.metrics.digits_classifier import DIGITS_CLASSIFIER_SHA256
from ogan.metrics.inception import INCEPTION_FILENAME
from ogan.workloads import digits, images, vision

GAN = {"name": "adam", "lr": 2e-4, "betas": [0.5, 0.999]}


@pytest.mark.parametrize(("workload", "options"), [("digits", {}), ("digits", {"arch": "conv"}),
                                                  ("seed-mlp", {})])  # fmt: skip
def test_digits_workloads_report_digits_fid_and_how_it_was_computed(workload, options):
    r = ogan.train(workload, GAN, steps=4, eval_every=2, device="cpu", batch_size=16, **options)
    assert list(r.history["step"]) == [0, 2, 4]
    fid = r.history["digits_fid"]
    assert (fid > 0).all() and np.isfinite(fid).all()
    assert ((r.history["class_coverage"] >= 0) & (r.history["class_coverage"] <= 10)).all()
    info = r.summary["metric_info"]
    assert info["fid_extractor"] == "digits-classifier"
    assert info["fid_extractor_sha256"] == DIGITS_CLASSIFIER_SHA256
    assert info["fid_samples"] == 2048


def test_seed_mlp_has_the_seed_articles_architecture():
    config = resolve("seed-mlp", "adam", device="cpu")
    G, D = digits.SeedMLP(
        digits.SeedMLP.parse_options(**config.options), torch.device("cpu")
    ).build_players()
    linear = [
        (m.in_features, m.out_features) for m in G.modules() if isinstance(m, torch.nn.Linear)
    ]
    assert linear == [(100, 128), (128, 128), (128, 100), (100, 64)]
    assert isinstance(G[-1], torch.nn.Sigmoid)
    linear = [
        (m.in_features, m.out_features) for m in D.modules() if isinstance(m, torch.nn.Linear)
    ]
    assert linear == [(64, 128), (128, 128), (128, 1)]
    assert sum(isinstance(m, torch.nn.ReLU) for m in G.modules()) == 3


def test_mnist_trains_on_local_files_with_a_dcgan(vision_files, monkeypatch):
    monkeypatch.setattr(vision.MNIST, "evaluate", lambda self, G, D, gen: {"fid": 1.0})
    r = ogan.train("mnist", GAN, steps=3, eval_every=3, device="cpu", batch_size=8, **vision_files)
    assert r.summary["steps_completed"] == 3 and np.isfinite(r.trace["loss_d"]).all()
    w = vision.MNIST(vision.MNIST.parse_options(**vision_files), torch.device("cpu"))
    G, _ = w.build_players()
    x = G(torch.randn(5, 100))
    assert x.shape == (5, 1, 28, 28) and x.abs().max() <= 1  # tanh; real data mapped to [-1, 1]
    assert w._data.min() >= -1 and w._data.max() <= 1


class _StubExtractor:
    """Stands in for InceptionFeatures: same protocol, cheap features (no weights needed)."""

    name, sha256, dims, min_samples = "stub", "0" * 64, 4, 2048
    calls = 0

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        type(self).calls += 1
        pooled = torch.nn.functional.adaptive_avg_pool2d(x.mean(1, keepdim=True), 2)
        return pooled.flatten(1).double().numpy()


def test_vision_fid_uses_cached_train_statistics_and_2048_samples(vision_files, monkeypatch):
    stub = _StubExtractor()
    monkeypatch.setattr(images, "_inception", lambda weights, device: stub)
    w = vision.MNIST(vision.MNIST.parse_options(**vision_files), torch.device("cpu"))
    G, D = w.build_players()
    G.eval()
    with torch.no_grad():
        first = w.evaluate(G, D, torch.Generator().manual_seed(0))
        calls = stub.calls
        second = w.evaluate(G, D, torch.Generator().manual_seed(0))
    assert math.isfinite(first["fid"]) and first == second
    assert stub.calls - calls == 2048 // 250 + 1  # generated batches only: reference was cached
    cache = Path(os.environ["OGAN_CACHE_DIR"]) / "fid_stats"
    assert [p.name for p in cache.iterdir()] == ["mnist-train-stub-000000000000-n40.npz"]


@pytest.mark.parametrize("workload", ["mnist", "cifar10"])
def test_missing_dataset_is_a_clear_error_before_anything_runs(workload, tmp_path):
    with pytest.raises(MissingDataError, match=str(tmp_path)):
        resolve(workload, "adam", data_dir=str(tmp_path), device="cpu")


def test_missing_fid_weights_name_the_path(vision_files, tmp_path):
    missing = tmp_path / "nowhere" / INCEPTION_FILENAME
    with pytest.raises(MissingDataError, match="nowhere"):
        resolve("mnist", "adam", data_dir=vision_files["data_dir"], fid_weights=str(missing),
                device="cpu")  # fmt: skip


def test_seed_mlp_on_mnist_measures_inception_fid(vision_files):
    config = resolve("seed-mlp", "adam", data="mnist", device="cpu", **vision_files)
    w = digits.SeedMLP(digits.SeedMLP.parse_options(**config.options), torch.device("cpu"))
    assert w.primary_metric == "fid" and set(w.metrics) == {"fid"}
    G, D = w.build_players()
    assert G[0][0].in_features == 100 and D[0].in_features == 784


def test_seed_mlp_on_mnist_records_its_own_metric_table_in_the_summary(vision_files, monkeypatch):
    monkeypatch.setattr(digits.SeedMLP, "evaluate", lambda self, G, D, gen: {"fid": 3.0})
    r = ogan.train("seed-mlp", GAN, steps=2, eval_every=2, device="cpu", batch_size=8,
                   data="mnist", **vision_files)  # fmt: skip
    assert set(r.summary["metrics"]) == {"fid"}
    assert r.summary["metrics"]["fid"]["higher_is_better"] is False
    assert r.summary["target"] == {"metric": "fid", "value": vision.MNIST.target}
    assert r.summary["final_fid"] == 3.0 and "final_digits_fid" not in r.summary
