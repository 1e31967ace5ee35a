"""MNIST and CIFAR-10 from disk, on tiny fake files in torchvision's exact on-disk formats."""

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import CIFAR10

from ogan.data.vision import load_cifar10, load_mnist, resolve_data_dir
from ogan.errors import MissingDataError

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format of the MNIST files: magic (0, 0, 0x08 = ubyte, ndim), big-endian sizes."""
    magic = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    sizes = struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(magic + sizes + array.astype(np.uint8).tobytes())


def fake_mnist(root: Path, n_train: int = 5, n_test: int = 3) -> dict[str, np.ndarray]:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images[split] = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[split][0, 0, 0], images[split][0, 0, 1] = 0, 255  # the extremes map to 0 and 1
        image_file, label_file = MNIST_FILES[split]
        write_idx(raw / image_file, images[split])
        write_idx(raw / label_file, rng.integers(0, 10, size=n))
    return images


CIFAR_BATCH = 4  # images per fake batch file (the real files hold 10 000)


def fake_cifar10(root: Path) -> dict[str, np.ndarray]:
    """The python CIFAR-10 layout: pickled dicts with 'data' (N, 3072) uint8 rows in CHW order."""
    folder = root / CIFAR10.base_folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    rows = {}
    for name, _ in [*CIFAR10.train_list, *CIFAR10.test_list]:
        rows[name] = rng.integers(0, 256, size=(CIFAR_BATCH, 3 * 32 * 32), dtype=np.uint8)
        batch = {"batch_label": name, "data": rows[name], "labels": [1, 2, 3, 4]}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072}
    (folder / CIFAR10.meta["filename"]).write_bytes(pickle.dumps(meta))
    return rows


@pytest.fixture
def fake_cifar10_checksums(monkeypatch):
    """Register the fake files' md5 sums on CIFAR10, so torchvision's integrity check still runs."""

    def register(root: Path) -> None:
        folder = root / CIFAR10.base_folder

        def md5(name):
            return hashlib.md5((folder / name).read_bytes()).hexdigest()

        monkeypatch.setattr(CIFAR10, "train_list", [[n, md5(n)] for n, _ in CIFAR10.train_list])
        monkeypatch.setattr(CIFAR10, "test_list", [[n, md5(n)] for n, _ in CIFAR10.test_list])
        meta = {**CIFAR10.meta, "md5": md5(CIFAR10.meta["filename"])}
        monkeypatch.setattr(CIFAR10, "meta", meta)

    return register


@pytest.mark.parametrize(("train", "split"), [(True, "train"), (False, "test")])
def test_mnist_is_read_whole_as_unit_range_float_images(tmp_path, train, split):
    images = fake_mnist(tmp_path)[split]
    loaded = load_mnist(tmp_path, train=train)
    assert loaded.shape == (len(images), 1, 28, 28) and loaded.dtype == torch.float32
    np.testing.assert_allclose(loaded[:, 0].numpy(), images / 255.0, rtol=1e-6)
    assert float(loaded.min()) == 0.0 and float(loaded.max()) == 1.0


@pytest.mark.parametrize(("train", "files"), [(True, 5), (False, 1)])
def test_cifar10_is_read_whole_as_unit_range_chw_images(
    tmp_path, fake_cifar10_checksums, train, files
):
    rows = fake_cifar10(tmp_path)
    fake_cifar10_checksums(tmp_path)
    loaded = load_cifar10(tmp_path, train=train)
    assert loaded.shape == (files * CIFAR_BATCH, 3, 32, 32) and loaded.dtype == torch.float32
    assert loaded.is_contiguous()
    names = [n for n, _ in (CIFAR10.train_list if train else CIFAR10.test_list)]
    expected = np.concatenate([rows[n] for n in names]).reshape(-1, 3, 32, 32) / 255.0
    np.testing.assert_allclose(loaded.numpy(), expected, rtol=1e-6)


def test_data_dir_defaults_to_the_environment_then_to_dot_data(tmp_path, monkeypatch):
    monkeypatch.delenv("OGAN_DATA_DIR", raising=False)
    assert resolve_data_dir() == Path("data")
    monkeypatch.setenv("OGAN_DATA_DIR", str(tmp_path))
    assert resolve_data_dir() == tmp_path
    assert resolve_data_dir("elsewhere") == Path("elsewhere")
    fake_mnist(tmp_path)
    assert load_mnist().shape == (5, 1, 28, 28)


def test_missing_mnist_names_the_expected_file_and_what_to_fetch(tmp_path):
    with pytest.raises(MissingDataError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    raw = tmp_path / "MNIST" / "raw"
    assert message.startswith(f"MNIST not found: expected {raw / 'train-images-idx3-ubyte'};")
    assert f"into {raw}" in message and "t10k-labels-idx1-ubyte" in message
    assert "data_dir" in message and "OGAN_DATA_DIR" in message and "\n" not in message


def test_gzipped_mnist_files_are_named_with_the_command_that_fixes_them(tmp_path):
    fake_mnist(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    (raw / "t10k-images-idx3-ubyte").rename(raw / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(MissingDataError, match=f"gunzip {raw / 't10k-images-idx3-ubyte.gz'}"):
        load_mnist(tmp_path, train=False)


def test_missing_cifar10_names_the_expected_file_and_the_archive(tmp_path):
    with pytest.raises(MissingDataError) as info:
        load_cifar10(tmp_path)
    message = str(info.value)
    expected = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    assert message.startswith(f"CIFAR-10 not found: expected {expected};")
    assert CIFAR10.url in message and f"extract it in {tmp_path}" in message
    assert "\n" not in message


def test_cifar10_files_failing_the_md5_check_are_named(tmp_path):
    fake_cifar10(tmp_path)  # real md5 sums registered: every fake file fails them
    with pytest.raises(MissingDataError, match="fail their md5 check") as info:
        load_cifar10(tmp_path)
    assert "data_batch_1" in str(info.value) and "\n" not in str(info.value)


def test_a_single_corrupted_cifar10_file_is_singled_out(tmp_path, fake_cifar10_checksums):
    fake_cifar10(tmp_path)
    fake_cifar10_checksums(tmp_path)
    with open(tmp_path / CIFAR10.base_folder / "data_batch_3", "ab") as f:
        f.write(b"\0")
    with pytest.raises(MissingDataError, match=r"md5 check \(data_batch_3\)"):
        load_cifar10(tmp_path, train=False)
