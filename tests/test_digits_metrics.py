"""The digits data, the shipped digits classifier, digits-FID and the class metrics."""

import hashlib
import math
import shutil

import numpy as np
import pytest
import torch

from ogan.data.digits import holdout_mask, load_digits
from ogan.errors import ConfigError, MissingDataError
from ogan.metrics import digits_classifier as dc
from ogan.metrics.frechet import frechet_distance, gaussian_stats


@pytest.fixture(scope="module")
def extractor() -> dc.DigitsFeatures:
    return dc.DigitsFeatures()


@pytest.fixture(scope="module")
def train_ref(extractor):
    return gaussian_stats(extractor(load_digits("train")[0]))


def test_digits_splits_are_a_stratified_80_20_partition():
    train_x, train_y = load_digits("train")
    test_x, test_y = load_digits("test")
    all_x, all_y = load_digits("all")
    assert (len(train_x), len(test_x), len(all_x)) == (1442, 355, 1797)
    assert train_x.shape[1:] == (1, 8, 8) and train_x.dtype == torch.float32
    assert train_y.dtype == torch.int64
    assert float(all_x.min()) == 0.0 and float(all_x.max()) == 1.0
    # every fifth image of each class is held out
    assert torch.equal(torch.bincount(test_y), torch.bincount(all_y) // 5)
    assert torch.equal(torch.bincount(train_y) + torch.bincount(test_y), torch.bincount(all_y))
    mask = torch.from_numpy(holdout_mask(all_y.numpy()))
    assert torch.equal(test_x, all_x[mask]) and torch.equal(train_x, all_x[~mask])


def test_holdout_mask_marks_every_fifth_occurrence_of_each_label():
    labels = np.array([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    assert np.flatnonzero(holdout_mask(labels)).tolist() == [5, 13]


def test_digits_loader_returns_fresh_tensors():
    images, _ = load_digits("test")
    images.zero_()
    assert float(load_digits("test")[0].max()) == 1.0


def test_unknown_digits_split_is_a_config_error():
    with pytest.raises(ConfigError, match="valid: train, test, all"):
        load_digits("validation")


def test_committed_weights_load_and_match_the_pinned_sha256(extractor):
    digest = hashlib.sha256(dc.WEIGHTS_PATH.read_bytes()).hexdigest()
    assert digest == dc.DIGITS_CLASSIFIER_SHA256 == extractor.sha256
    assert dc.WEIGHTS_PATH.stat().st_size < 1_000_000
    assert extractor.name == "digits-classifier"
    assert (extractor.dims, extractor.min_samples) == (64, 2048)
    assert not extractor.model.training


def test_classifier_reaches_97_percent_on_the_held_out_split(extractor):
    images, labels = load_digits("test")
    assert dc.accuracy(extractor.model, images, labels) >= 0.97  # measured: 0.9859


def test_training_is_deterministic():
    first = dc.train_digits_classifier(epochs=1, seed=3)
    threads = torch.get_num_threads()
    second = dc.train_digits_classifier(epochs=1, seed=3)
    assert torch.get_num_threads() == threads  # global state restored
    first_state, second_state = first.state_dict(), second.state_dict()
    assert first_state.keys() == second_state.keys()
    for name, tensor in first_state.items():
        assert torch.equal(tensor, second_state[name]), name
    third = dc.train_digits_classifier(epochs=1, seed=4)
    assert not torch.equal(first.embed.weight, third.embed.weight)


def test_features_and_probabilities_come_from_one_forward_pass(extractor):
    images = load_digits("test")[0][:10]
    features, probs = extractor.features_and_probs(images)
    assert features.shape == (10, 64) and probs.shape == (10, 10)
    assert features.dtype == probs.dtype == np.float64
    np.testing.assert_allclose(extractor(images), features)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    with torch.no_grad():
        logits = extractor.model(images)
    np.testing.assert_allclose(probs, logits.softmax(dim=1).numpy(), rtol=1e-5, atol=1e-7)


def test_real_digits_are_far_closer_than_collapsed_or_noise_samples(extractor, train_ref):
    # Measured: real test vs train 2.10, collapsed (one train image 2048×) 2609, uniform noise 635.
    real = frechet_distance(*gaussian_stats(extractor(load_digits("test")[0])), *train_ref)
    one_image = load_digits("train")[0][:1].expand(2048, -1, -1, -1)
    collapsed = frechet_distance(*gaussian_stats(extractor(one_image)), *train_ref)
    noise_images = torch.rand(2048, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    noise = frechet_distance(*gaussian_stats(extractor(noise_images)), *train_ref)
    assert real < 5.0
    assert collapsed > 10 * real and noise > 10 * real
    assert min(collapsed, noise) > 100 * real


def test_class_metrics_of_real_digits_cover_all_classes(extractor):
    _, probs = extractor.features_and_probs(load_digits("test")[0])
    metrics = dc.class_metrics(probs)
    assert metrics["class_coverage"] == 10
    assert metrics["class_kl"] < 0.01  # measured: 0.00075


def test_class_metrics_of_a_collapsed_generator_find_one_class(extractor):
    one_image = load_digits("train")[0][:1].expand(500, -1, -1, -1)
    metrics = dc.class_metrics(extractor.features_and_probs(one_image)[1])
    assert metrics["class_coverage"] == 1
    assert metrics["class_kl"] == pytest.approx(math.log(10))


def test_class_coverage_counts_only_confident_and_frequent_classes():
    probs = np.full((200, 10), 0.0)
    probs[:100, 0] = 1.0  # class 0: 100 confident samples
    probs[100:102, 1] = 1.0  # class 1: 2 confident samples, exactly ceil(1% of 200)
    probs[102:200, 2] = 0.5  # class 2: 98 samples, none confident (ties go to class 2)
    probs[102:200, 3] = 0.5
    metrics = dc.class_metrics(probs)
    assert metrics["class_coverage"] == 2  # classes 0 and 1
    histogram = np.array([100, 2, 98]) / 200
    assert metrics["class_kl"] == pytest.approx(float(np.sum(histogram * np.log(histogram * 10))))
    assert dc.class_metrics(probs, min_fraction=0.02)["class_coverage"] == 1


def test_digits_metrics_report_fid_and_classes_from_one_pass(extractor, train_ref):
    train_images = load_digits("train")[0]
    generator = torch.Generator().manual_seed(0)

    def resample_train(n):
        return train_images[torch.randint(len(train_images), (n,), generator=generator)]

    result = dc.digits_metrics(resample_train, 2048, extractor, train_ref)
    assert result["fid"] < 5.0  # measured: 1.83
    assert result["fid_samples"] == 2048
    assert result["fid_extractor"] == "digits-classifier"
    assert result["fid_extractor_sha256"] == dc.DIGITS_CLASSIFIER_SHA256
    assert result["class_coverage"] == 10 and result["class_kl"] < 0.01


def test_digits_metrics_refuse_fewer_than_2048_samples(extractor, train_ref):
    with pytest.raises(ConfigError, match="at least 2048"):
        dc.digits_metrics(lambda n: torch.zeros(n, 1, 8, 8), 1000, extractor, train_ref)


def test_tampered_weights_raise_a_one_line_error_naming_the_fix(tmp_path):
    tampered = tmp_path / "digits_classifier.pt"
    shutil.copy(dc.WEIGHTS_PATH, tampered)
    with open(tampered, "ab") as f:
        f.write(b"\0")
    with pytest.raises(MissingDataError, match="expected 70092f64") as info:
        dc.DigitsFeatures(weights=tampered)
    message = str(info.value)
    assert "re-run python -m ogan.metrics.digits_classifier" in message
    assert str(tampered) in message and "\n" not in message


def test_missing_weights_raise_missing_data_error(tmp_path):
    with pytest.raises(MissingDataError, match="not found"):
        dc.load_digits_classifier(tmp_path / "absent.pt")


def test_entry_point_refuses_to_write_an_inaccurate_classifier(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dc, "MIN_TEST_ACCURACY", 1.01)  # above any accuracy
    out = tmp_path / "w.pt"
    assert dc.main(["--out", str(out), "--epochs", "1"]) == 1
    assert not out.exists()
    assert "test accuracy" in capsys.readouterr().out


def test_entry_point_writes_the_weights_and_prints_their_sha256(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dc, "MIN_TEST_ACCURACY", 0.0)  # one epoch, to keep the test fast
    out = tmp_path / "assets" / "w.pt"
    assert dc.main(["--out", str(out), "--epochs", "1"]) == 0
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert f"sha256: {digest}" in capsys.readouterr().out
    assert [p.name for p in out.parent.iterdir()] == ["w.pt"]  # no temporary file left
    model = dc.DigitsClassifier()
    model.load_state_dict(torch.load(out, weights_only=True))
