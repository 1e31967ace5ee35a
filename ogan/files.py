"""Files written so that a reader never sees half of one, and a crash loses at most the new one.

The one recipe every writer in ogan and bench uses (run records, FID statistics caches, the
digits classifier's weights, perf baselines): write a temporary file in the target's directory,
flush and fsync it, rename it over the target (atomic on POSIX within one filesystem), then
fsync the directory so the rename itself survives a power cut. A writer killed midway leaves a
temporary file, named so that :func:`temporaries` finds it; never a truncated target.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

_SUFFIX = ".tmp"


@contextmanager
def atomic_open(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new content into; it replaces ``path`` on a clean exit.

    Creates the parent directories. On an exception the temporary file is removed and ``path``
    is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path) as f:
        f.write(data)


def temporaries(directory: str | Path) -> list[Path]:
    """The temporary files killed writers left in ``directory`` (safe to delete when no writer
    is running there)."""
    return sorted(Path(directory).glob(f".*{_SUFFIX}"))


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
