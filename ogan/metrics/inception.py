"""pytorch-fid's InceptionV3 as an offline feature extractor for FID on MNIST and CIFAR-10.

FID values are only comparable when computed with the exact network pytorch-fid uses (TensorFlow's
2015-12-05 Inception graph ported to PyTorch, pool3 features, 2048-d), so this module builds
``pytorch_fid.inception.InceptionV3`` itself rather than a look-alike, and loads its weights from a
file on local disk. It never downloads: a missing file is a ``MissingDataError`` naming the path
looked at, never a hang and never a silent switch to another network.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
from torch import Tensor

from ogan.errors import MissingDataError

INCEPTION_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
# pytorch_fid.inception.FID_WEIGHTS_URL, repeated so that error messages need no torchvision import.
INCEPTION_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + INCEPTION_FILENAME
)
# sha256 of the released file (95,628,359 bytes). The filename carries its first 8 hex digits,
# following torch.hub's ``name-<sha256 prefix>.ext`` convention.
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
INCEPTION_DIMS = 2048
# The usual FID protocol: fewer samples than feature dimensions make the covariance singular and
# bias FID upwards, so values from smaller sets are not comparable with published ones.
INCEPTION_MIN_SAMPLES = 2048

# Swapping a module attribute is process-global; the lock keeps two threads building at once from
# restoring each other's patch.
_BUILD_LOCK = threading.Lock()


def default_inception_path() -> Path:
    """Where torch.hub (so pytorch-fid) caches the weights: ``$TORCH_HOME/hub/checkpoints/…``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILENAME


def find_inception_weights(path: str | os.PathLike[str] | None = None) -> Path:
    """The FID Inception weights file: ``path`` if given (a file, or a directory holding the file),
    else the torch hub cache. Only checks existence; ``InceptionFeatures`` verifies the content.

    Raises:
        MissingDataError: naming the exact path looked at and where the file comes from.
    """
    if path is None:
        candidate = default_inception_path()
        if candidate.is_file():
            return candidate
        raise MissingDataError(
            f"FID Inception weights not found at {candidate} (the torch hub cache; TORCH_HOME "
            f"moves it): download {INCEPTION_URL} there, or set the fid_weights option to its path"
        )
    candidate = Path(path).expanduser()
    if candidate.is_dir():
        candidate = candidate / INCEPTION_FILENAME
    if candidate.is_file():
        return candidate
    raise MissingDataError(
        f"FID Inception weights not found at {candidate} (from the fid_weights option): download "
        f"{INCEPTION_URL} to that path, or fix fid_weights"
    )


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (the Inception weights are ~96 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class InceptionFeatures:
    """Pool3 features (2048-d, float64) of pytorch-fid's FID InceptionV3, from local weights.

    Call protocol shared with ``DigitsFeatures``: ``extractor(images) -> np.ndarray (N, dims)`` for
    images (N, C, H, W) in [0, 1], plus ``name``, ``sha256`` (of the weights file, recorded with
    every FID), ``dims`` and ``min_samples``. Grayscale images are repeated to 3 channels; the
    network resizes to 299×299 and rescales to [-1, 1] itself, exactly as in pytorch-fid.

    Args:
        weights: the weights file (the ``fid_weights`` option); default: the torch hub cache.
        device: where the network runs.
        batch_size: images per forward pass (pytorch-fid's default is 50).
        check_hash: refuse a file whose sha256 is not the released one (on by default, because a
            different file yields FIDs that look valid but compare with nothing). Tests that use
            random weights turn it off; the recorded ``sha256`` still identifies the file.

    Raises:
        MissingDataError: the file is missing, or (with ``check_hash``) is not the released file.
    """

    name = "inception-v3-fid"
    dims = INCEPTION_DIMS
    min_samples = INCEPTION_MIN_SAMPLES

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 50,
        check_hash: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"Invalid batch_size: {batch_size}")
        self.path = find_inception_weights(weights)
        self.sha256 = sha256_file(self.path)
        if check_hash and self.sha256 != INCEPTION_SHA256:
            raise MissingDataError(
                f"{self.path} is not pytorch-fid's FID Inception weights (sha256 "
                f"{self.sha256[:16]}…, expected {INCEPTION_SHA256[:16]}…): "
                f"download {INCEPTION_URL} again"
            )
        self.device = torch.device(device)
        self.batch_size = batch_size
        state_dict = torch.load(self.path, map_location="cpu", weights_only=True)
        self.model = _build_fid_inception(state_dict).to(self.device).eval()

    def __call__(self, images: Tensor) -> np.ndarray:
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(
                f"images must be (N, 1 or 3, H, W) in [0, 1], got shape {tuple(images.shape)}"
            )
        features = [np.empty((0, self.dims))]
        # TF32 convolutions would move CUDA features ~1e-3 away from CPU ones; FIDs from either
        # device should compare, so full float32 precision is asked for here.
        cudnn = torch.backends.cudnn
        no_tf32 = cudnn.flags(
            enabled=cudnn.enabled, benchmark=cudnn.benchmark,
            deterministic=cudnn.deterministic, allow_tf32=False,
        )  # fmt: skip
        with torch.no_grad(), no_tf32:
            for batch in images.split(self.batch_size):
                x = batch.to(self.device, torch.float32)
                if x.shape[1] == 1:
                    x = x.expand(-1, 3, -1, -1)
                pooled = self.model(x)[0]  # (B, 2048, 1, 1): the final average pool
                features.append(pooled.flatten(1).double().cpu().numpy())
        return np.concatenate(features)


def _build_fid_inception(state_dict: dict[str, Tensor]) -> torch.nn.Module:
    """pytorch-fid's ``InceptionV3`` (2048-d block) with ``state_dict`` loaded, without any network.

    ``InceptionV3.__init__`` builds the FID variant through ``fid_inception_v3()``, which fetches
    its weights with ``load_state_dict_from_url(FID_WEIGHTS_URL)``. For the duration of the build
    that name is replaced, in pytorch-fid's module only, by a function returning the state dict read
    from the verified local file. Alternatives were worse: pointing ``torch.hub.set_dir`` at a
    directory holding the file mutates process-wide state, needs a copy or link for an explicit
    path, and still downloads (hangs offline) if the file goes missing; rebuilding the network by
    hand could drift from pytorch-fid. Any other URL raises, so no download can happen.
    pytorch-fid's own ``load_state_dict`` then checks (strictly) that every key and shape matches
    the architecture.
    """
    # pytorch-fid imports torchvision (~2 s): only when an extractor is built
    from pytorch_fid import inception as pfid_inception

    def local_weights(url: str, *args: Any, **kwargs: Any) -> dict[str, Tensor]:
        if url != pfid_inception.FID_WEIGHTS_URL:
            raise RuntimeError(f"ogan never downloads weights; pytorch-fid asked for {url}")
        return state_dict

    with _BUILD_LOCK, mock.patch.object(pfid_inception, "load_state_dict_from_url", local_weights):
        block = pfid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[INCEPTION_DIMS]
        return pfid_inception.InceptionV3([block])
