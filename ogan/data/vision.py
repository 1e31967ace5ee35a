"""MNIST and CIFAR-10 from the user's disk, each read whole into one float tensor in [0, 1].

ogan never downloads data: ``torchvision.datasets`` reads the files with ``download=False``, and a
missing file is a ``MissingDataError`` saying what to fetch and exactly where to put it. The data
directory is the ``data_dir`` argument, else ``$OGAN_DATA_DIR``, else ``./data``; it is the ``root``
torchvision expects (``<root>/MNIST/raw/…``, ``<root>/cifar-10-batches-py/…``).

CIFAR-10 integrity: torchvision checks the md5 of every CIFAR-10 file before reading, and this
module keeps that check for real data (a truncated download must not quietly yield a smaller
dataset). When a file fails it, the error names the failing files. Tests with tiny fake files
register those files' md5 sums on ``CIFAR10`` instead of bypassing the check here.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from ogan.errors import MissingDataError

DATA_DIR_ENV = "OGAN_DATA_DIR"
DEFAULT_DATA_DIR = "data"
_DATA_DIR_HINT = f"or pass data_dir=... (or set {DATA_DIR_ENV})"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``data_dir`` if given, else ``$OGAN_DATA_DIR`` if set, else ``./data`` (at call time)."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(data_dir).expanduser()


def check_mnist(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The MNIST root if its files are there (cheap: nothing is read), else MissingDataError."""
    from torchvision.datasets import MNIST  # imports take ~2 s; only pay when needed

    root = resolve_data_dir(data_dir)
    raw = root / "MNIST" / "raw"
    names = [Path(archive).stem for archive, _ in MNIST.resources]  # drop the .gz
    legacy = root / "MNIST" / "processed"
    has_legacy = all((legacy / f).is_file() for f in (MNIST.training_file, MNIST.test_file))
    missing = [name for name in names if not (raw / name).is_file()]
    if missing and not has_legacy:
        gz = raw / f"{missing[0]}.gz"
        if gz.is_file():
            fix = f"gunzip {gz}"
        else:
            fix = (
                f"download the four MNIST files ({', '.join(names)}, gunzipped) from "
                f"{MNIST.mirrors[0]} into {raw}"
            )
        raise MissingDataError(
            f"MNIST not found: expected {raw / missing[0]}; {fix}, {_DATA_DIR_HINT}"
        )
    return root


def load_mnist(data_dir: str | os.PathLike[str] | None = None, train: bool = True) -> Tensor:
    """MNIST images (N, 1, 28, 28) float32 in [0, 1]: the 60 000 train or the 10 000 test images.

    Expects the four uncompressed MNIST files in ``<data_dir>/MNIST/raw`` (torchvision's layout;
    torchvision also accepts its legacy ``MNIST/processed/{training,test}.pt``).
    """
    from torchvision.datasets import MNIST

    root = check_mnist(data_dir)
    dataset = MNIST(root=str(root), train=train, download=False)
    return dataset.data.unsqueeze(1).float().div_(255.0)


def check_cifar10(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The CIFAR-10 root if its files are there (cheap: no md5), else MissingDataError."""
    from torchvision.datasets import CIFAR10

    root = resolve_data_dir(data_dir)
    folder = root / CIFAR10.base_folder
    names = [name for name, _ in (*CIFAR10.train_list, *CIFAR10.test_list)]
    missing = [n for n in (*names, CIFAR10.meta["filename"]) if not (folder / n).is_file()]
    if missing:
        raise MissingDataError(
            f"CIFAR-10 not found: expected {folder / missing[0]}; download {CIFAR10.url} and "
            f"extract it in {root} (it unpacks to {CIFAR10.base_folder}), {_DATA_DIR_HINT}"
        )
    return root


def load_cifar10(data_dir: str | os.PathLike[str] | None = None, train: bool = True) -> Tensor:
    """CIFAR-10 images (N, 3, 32, 32) float32 in [0, 1]: the 50 000 train or the 10 000 test images.

    Expects the python version of CIFAR-10 extracted in ``<data_dir>`` (the folder
    ``cifar-10-batches-py``), whose files torchvision verifies by md5.
    """
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    root = check_cifar10(data_dir)
    folder = root / CIFAR10.base_folder
    meta = [CIFAR10.meta["filename"], CIFAR10.meta["md5"]]
    checksums = [*CIFAR10.train_list, *CIFAR10.test_list, meta]
    try:
        dataset = CIFAR10(root=str(root), train=train, download=False)
    except RuntimeError as err:  # every file exists, so torchvision's complaint is an md5 mismatch
        corrupt = [name for name, md5 in checksums if not check_integrity(str(folder / name), md5)]
        raise MissingDataError(
            f"CIFAR-10 files in {folder} fail their md5 check ({', '.join(corrupt) or err}): "
            f"re-download {CIFAR10.url} and extract it in {root}"
        ) from err
    # HWC uint8 -> CHW float; contiguous first so the float copy is in the usual NCHW layout.
    return torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous().float().div_(255.0)
