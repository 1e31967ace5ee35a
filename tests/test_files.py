"""ogan.files: the one atomic writer (run records, FID caches, weights, perf baselines)."""

from __future__ import annotations

import os
import stat

import pytest

from ogan import files


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "new" / "dir" / "record.json"
    files.atomic_write_bytes(target, b"first")
    files.atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["record.json"]


def test_a_failed_write_keeps_the_old_content_and_removes_its_temporary(tmp_path):
    target = tmp_path / "record.json"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="midway"), files.atomic_open(target) as f:
        f.write(b"half of the new")
        raise RuntimeError("midway")
    assert target.read_bytes() == b"old"
    assert files.temporaries(tmp_path) == []


def test_the_file_and_then_its_directory_are_fsynced(tmp_path, monkeypatch):
    synced: list[str] = []
    fsync = os.fsync

    def record(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        fsync(fd)

    monkeypatch.setattr(os, "fsync", record)
    files.atomic_write_bytes(tmp_path / "x.bin", b"data")
    assert synced == ["file", "dir"]


def test_a_killed_writer_leaves_the_target_untouched_and_a_temporary_that_is_found(tmp_path):
    target = tmp_path / "record.json"
    target.write_bytes(b"old")
    pid = os.fork()
    if pid == 0:  # the child dies in the middle of writing, as under kill -9
        with files.atomic_open(target) as f:
            f.write(b"half")
            f.flush()
            os._exit(9)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 9
    assert target.read_bytes() == b"old"
    (leftover,) = files.temporaries(tmp_path)
    assert leftover.read_bytes() == b"half" and leftover.name.startswith(".record.json.")
