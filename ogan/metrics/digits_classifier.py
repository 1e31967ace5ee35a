"""The digits classifier: features for digits-FID and predictions for class coverage.

Inception features mean little on 8×8 digits, so the ``digits`` workload measures its generators
with a small CNN trained on the digits train split and shipped with the package
(``ogan/assets/digits_classifier.pt``, a state_dict of ~340 kB). Its 64-d penultimate layer, taken
before the ReLU so that no dimension is dead (constant zero), gives the features; its softmax gives
the class metrics. The weights are pinned by sha256, like the Inception weights, because a
digits-FID is only comparable with one computed from the same network.

Regenerate the weights with ``python -m ogan.metrics.digits_classifier`` (deterministic: fixed seed,
one thread, deterministic algorithms; ~10 s on a CPU). Other CPUs may round differently and so
produce another file: the command prints its sha256, which then goes into
``DIGITS_CLASSIFIER_SHA256``.

digits-FID convention: the reference statistics are those of the whole train split (1442 images),
and the generator is sampled ``n ≥ DIGITS_MIN_SAMPLES = 2048`` times (the same floor as image FID in
this project; 2048 samples in 64-d give a well-conditioned covariance). Values at different ``n``
are not comparable; ``n`` and the weights' sha256 are recorded with every value.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ogan.data.digits import load_digits
from ogan.errors import MissingDataError
from ogan.files import atomic_write_bytes
from ogan.metrics.fid import DEFAULT_BATCH_SIZE, draw_samples, fid_record
from ogan.metrics.frechet import RunningGaussianStats
from ogan.metrics.inception import sha256_file

WEIGHTS_PATH = Path(__file__).resolve().parent.parent / "assets" / "digits_classifier.pt"
# sha256 of WEIGHTS_PATH as committed; printed by `python -m ogan.metrics.digits_classifier`.
DIGITS_CLASSIFIER_SHA256 = "70092f647356eac366751f260aa248aa4f17e6acac84756805b113a5e89dc3a7"
NUM_CLASSES = 10
FEATURE_DIM = 64
DIGITS_MIN_SAMPLES = 2048
MIN_TEST_ACCURACY = 0.97  # the entry point refuses to write weights that do worse on the test split

# Class metrics: a class is covered when at least MIN_CLASS_FRACTION of all samples are predicted as
# that class with probability >= CONFIDENCE. At n = 2048 that is 21 samples, a tenth of a class's
# share under a perfect generator: enough to ignore stray lucky samples, far below a real mode.
CONFIDENCE = 0.9
MIN_CLASS_FRACTION = 0.01


class DigitsClassifier(nn.Module):
    """Two 3×3 convolutions, a 2×2 max-pool, a 64-d embedding and a linear head (85 k params)."""

    def __init__(self, dropout: float = 0.2) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.embed = nn.Linear(64 * 4 * 4, FEATURE_DIM)
        self.head = nn.Sequential(
            nn.ReLU(), nn.Dropout(dropout), nn.Linear(FEATURE_DIM, NUM_CLASSES)
        )

    def features(self, images: Tensor) -> Tensor:
        """The 64-d pre-activation of the penultimate layer: the digits-FID features."""
        return self.embed(self.conv(images))

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.features(images))


def train_digits_classifier(
    epochs: int = 30,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
) -> DigitsClassifier:
    """Train on the digits train split, reproducibly: same arguments, same CPU ⇒ same weights.

    Adam with cross-entropy on minibatches shuffled by a seeded generator; runs with one thread and
    ``torch.use_deterministic_algorithms`` under a forked RNG, and restores all three afterwards so
    callers' global state is untouched. Returns the model in eval mode.
    """
    if epochs < 1:
        raise ValueError(f"Invalid epochs: {epochs}")
    images, labels = load_digits("train")
    with _deterministic(seed):
        model = DigitsClassifier()
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        shuffle = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(images), generator=shuffle)
            for batch in order.split(batch_size):
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
                loss.backward()
                optimizer.step()
    return model.eval()


def accuracy(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    """Fraction of ``images`` whose arg-max prediction equals ``labels`` (model in eval mode)."""
    model.eval()
    with torch.no_grad():
        return (model(images).argmax(dim=1) == labels).double().mean().item()


def load_digits_classifier(
    path: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu"
) -> tuple[DigitsClassifier, str]:
    """The shipped classifier in eval mode and its sha256, after checking it is the pinned file.

    Raises:
        MissingDataError: the file is missing or its sha256 differs from
        ``DIGITS_CLASSIFIER_SHA256``.
    """
    path = WEIGHTS_PATH if path is None else Path(path)
    if not path.is_file():
        raise MissingDataError(
            f"digits classifier weights not found at {path}: restore them from git or re-run "
            "python -m ogan.metrics.digits_classifier"
        )
    digest = sha256_file(path)
    if digest != DIGITS_CLASSIFIER_SHA256:
        raise MissingDataError(
            f"digits classifier weights {path} have sha256 {digest[:16]}…, expected "
            f"{DIGITS_CLASSIFIER_SHA256[:16]}…: restore them from git or re-run "
            "python -m ogan.metrics.digits_classifier (and update DIGITS_CLASSIFIER_SHA256)"
        )
    model = DigitsClassifier()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(device).eval(), digest


class DigitsFeatures:
    """digits-FID features (64-d, float64) of the shipped classifier; see the module docstring.

    Same call protocol as ``InceptionFeatures``: ``extractor(images) -> np.ndarray (N, 64)`` for
    images (N, 1, 8, 8) in [0, 1]; ``features_and_probs`` also returns the class probabilities of
    the same forward pass, for ``class_metrics``.

    Args:
        weights: the weights file; default: the shipped one. Any file must match
            ``DIGITS_CLASSIFIER_SHA256``, since digits-FID is defined by those exact weights.
        device: where the classifier runs.
        batch_size: images per forward pass.

    Raises:
        MissingDataError: the weights are missing or are not the pinned file.
    """

    name = "digits-classifier"
    dims = FEATURE_DIM
    min_samples = DIGITS_MIN_SAMPLES

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 1024,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"Invalid batch_size: {batch_size}")
        self.model, self.sha256 = load_digits_classifier(weights, device)
        self.device = torch.device(device)
        self.batch_size = batch_size

    def __call__(self, images: Tensor) -> np.ndarray:
        return self.features_and_probs(images)[0]

    def features_and_probs(self, images: Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Features (N, 64) and softmax probabilities (N, 10), float64, from one forward pass."""
        if images.ndim != 4 or tuple(images.shape[1:]) != (1, 8, 8):
            raise ValueError(f"images must be (N, 1, 8, 8) in [0, 1], got {tuple(images.shape)}")
        features, probs = [np.empty((0, FEATURE_DIM))], [np.empty((0, NUM_CLASSES))]
        with torch.no_grad():
            for batch in images.split(self.batch_size):
                f = self.model.features(batch.to(self.device, torch.float32))
                features.append(f.double().cpu().numpy())
                probs.append(self.model.head(f).softmax(dim=1).double().cpu().numpy())
        return np.concatenate(features), np.concatenate(probs)


def class_metrics(
    probs: np.ndarray, confidence: float = CONFIDENCE, min_fraction: float = MIN_CLASS_FRACTION
) -> dict[str, float | int]:
    """Mode coverage of a generator from classifier probabilities (N, 10) of its samples.

    Returns:
        ``class_coverage``: how many classes receive at least ``ceil(min_fraction · N)`` samples
        predicted with probability ≥ ``confidence`` (10 for a good generator, 1 when collapsed).
        ``class_kl``: KL(predicted-class histogram ‖ uniform) over all samples, in nats: 0 when
        classes are balanced, log 10 ≈ 2.303 when every sample is predicted as one class.
    """
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[1] != NUM_CLASSES or probs.shape[0] == 0:
        raise ValueError(f"probs must be (N > 0, {NUM_CLASSES}), got shape {probs.shape}")
    predicted = probs.argmax(axis=1)
    confident = predicted[probs.max(axis=1) >= confidence]
    min_count = max(1, math.ceil(min_fraction * len(probs)))
    coverage = int((np.bincount(confident, minlength=NUM_CLASSES) >= min_count).sum())
    histogram = np.bincount(predicted, minlength=NUM_CLASSES) / len(probs)
    seen = histogram[histogram > 0]
    kl = float(np.sum(seen * np.log(seen * NUM_CLASSES)))
    return {"class_coverage": coverage, "class_kl": kl}


def digits_metrics(
    sample_fn: Callable[[int], Tensor],
    n: int,
    extractor: DigitsFeatures,
    ref: tuple[np.ndarray, np.ndarray],
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, float | int | str]:
    """``fid_from_samples`` plus ``class_metrics``, from one classifier pass over ``n`` samples."""
    stats = RunningGaussianStats()
    probs = []
    for images in draw_samples(sample_fn, n, batch_size, extractor):
        features, batch_probs = extractor.features_and_probs(images)
        stats.update(features)
        probs.append(batch_probs)
    fid = fid_record(stats.finalize(), n, extractor, ref)
    return {**fid, **class_metrics(np.concatenate(probs))}


@contextlib.contextmanager
def _deterministic(seed: int) -> Iterator[None]:
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            torch.set_num_threads(1)
            torch.use_deterministic_algorithms(True)
            yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def main(argv: Sequence[str] | None = None) -> int:
    """Train the classifier, check its test accuracy, write the weights and print their sha256."""
    parser = argparse.ArgumentParser(
        prog="python -m ogan.metrics.digits_classifier", description=main.__doc__
    )
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH, help="default: %(default)s")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    model = train_digits_classifier(epochs=args.epochs, seed=args.seed)
    test_accuracy = accuracy(model, *load_digits("test"))
    print(f"test accuracy: {test_accuracy:.4f}")
    if test_accuracy < MIN_TEST_ACCURACY:
        print(f"below {MIN_TEST_ACCURACY:.2f}: not writing {args.out}", file=sys.stderr)
        return 1
    # Serialise to memory first: torch.save names the archive after the file it writes, and the
    # temporary name (for an atomic rename) would otherwise change the bytes and so the sha256.
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    atomic_write_bytes(args.out, buffer.getvalue())
    digest = sha256_file(args.out)
    print(f"wrote {args.out}")
    print(f"sha256: {digest}")
    if digest != DIGITS_CLASSIFIER_SHA256:
        print("this differs from DIGITS_CLASSIFIER_SHA256: update the constant in " + __file__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
