"""What several test modules share: sweep files, timing-free result tables, fake image data."""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from test_vision_data import fake_mnist

from ogan import registry
from ogan.metrics.inception import INCEPTION_FILENAME

TINY_SWEEP = """
[sweep]
name = "tiny"
seeds = [0, 1]

[[workload]]
name = "bilinear"
steps = 30
eval_every = 10

[[workload]]
name = "mog-ring"
hidden = 8
batch_size = 32
steps = 20
eval_every = 10

[[optimizer]]
name = "adam"
lr = [1e-3, 1e-2]

[[optimizer]]
name = "extra-adam"
lr = 1e-2
ortho = "weights"
"""
"""Two workloads × three optimizer settings × two seeds = 12 runs of well under a second each."""

TIMING = (
    "wall_time", "step_time", "time_per_step", "time_per_step_alone", "eval_time",
    "time_to_target", "git_commit",
)  # fmt: skip
"""Columns that differ between two otherwise identical runs (clock readings, the checkout)."""


def _write(directory: Path, text: str, name: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory) -> Path:
    """The tiny sweep's TOML file (read-only: write results elsewhere)."""
    return _write(tmp_path_factory.mktemp("sweeps"), TINY_SWEEP, "tiny.toml")


@pytest.fixture
def sweep_file(tmp_path) -> Callable[..., Path]:
    """``sweep_file(text, name="sweep.toml")``: a sweep TOML (dedented) in this test's tmp_path."""
    return lambda text, name="sweep.toml": _write(tmp_path, text, name)


@pytest.fixture(scope="session")
def untimed() -> Callable[[pd.DataFrame], pd.DataFrame]:
    """``untimed(df)``: ``df`` without the :data:`TIMING` columns and the ``population_*`` ones
    (how runs were grouped: a resumed sweep trains its missing members as smaller populations),
    to compare two runs exactly."""
    return lambda df: df.drop(
        columns=[c for c in df.columns if c in TIMING or c.startswith("population_")]
    )


@pytest.fixture
def vision_files(tmp_path, monkeypatch) -> dict[str, str]:
    """Tiny MNIST files and a (fake) FID weights file; nothing real, nothing downloaded."""
    fake_mnist(tmp_path / "data", n_train=40, n_test=8)
    weights = tmp_path / INCEPTION_FILENAME
    weights.write_bytes(b"not really inception")
    monkeypatch.setenv("OGAN_CACHE_DIR", str(tmp_path / "cache"))
    return {"data_dir": str(tmp_path / "data"), "fid_weights": str(weights)}


@pytest.fixture
def optimizer_resolutions(monkeypatch) -> Counter[str]:
    """How often each optimizer name is resolved by ``ogan.registry`` from now on.

    Every resolution of an optimizer name ends in the registry's ``_optimizer_entry`` (which
    reads the signature and builds the ``Entry``), however the caller reached the registry:
    counting there misses no caller, also one that imported ``resolve_name`` by name.
    """
    counts: Counter[str] = Counter()
    real = registry._optimizer_entry

    def counting(name, *args):
        counts[name] += 1
        return real(name, *args)

    monkeypatch.setattr(registry, "_optimizer_entry", counting)
    return counts


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--torch-threads", type=int, default=None, metavar="N",
        help="torch's intra-op threads for the whole session, as a machine with N cores would "
        "use by default: parallel loops and reductions split their work by the thread count, so "
        "a tolerance or a bit-for-bit claim can hold at one count and not at another "
        "(subprocesses the tests start keep the machine's default)",
    )  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    threads = config.getoption("--torch-threads")
    if threads is not None:
        if threads < 1:
            raise pytest.UsageError(f"--torch-threads takes a positive count, not {threads}")
        import torch

        torch.set_num_threads(threads)


def pytest_report_header(config: pytest.Config) -> str:
    import torch

    return f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads"
