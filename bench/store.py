"""The result store: one JSON and two parquet files per finished run, each written atomically.

Layout of a sweep directory ``DIR/<sweep>/``::

    sweep.json                the expanded sweep: every RunSpec it asked for
    runs/<run_id>.json        spec, resolved config, summary, environment   (written last)
    runs/<run_id>.parquet     history: one row per evaluation
    runs/<run_id>.trace.parquet   trace: one row per training step
    runs/<run_id>.error.txt   the traceback of the run's last attempt, if it raised

Every file is written with :mod:`ogan.files` (temporary name in the same directory, fsync,
rename), so a crash leaves either a complete file or none. A run counts as finished only when
its JSON and both parquet files read back; anything else is reported and re-run.
"""

from __future__ import annotations

import functools
import json
import platform
import subprocess
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from bench.spec import RunSpec
from ogan.files import atomic_open, atomic_write_bytes, temporaries

RUNS = "runs"
SWEEP = "sweep.json"
ERROR_SUFFIX = ".error.txt"


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True, default=str).encode())


def _atomic_parquet(path: Path, df: pd.DataFrame) -> None:
    with atomic_open(path) as f:
        df.to_parquet(f, index=False)


def environment(device: str, threads: int | None = None) -> dict[str, Any]:
    """Versions, hardware and code revision, recorded with every run.

    ``threads``: the torch threads the run used (default: torch's current setting).
    """
    import numpy
    import scipy
    import torch

    import ogan

    gpu = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None
    return {
        "ogan": ogan.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "pandas": pd.__version__,
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "gpu": gpu,
        "device": device,
        "threads": torch.get_num_threads() if threads is None else threads,
        "git_commit": git_commit(),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache  # once per process: a worker records many runs
def git_commit() -> str | None:
    """The checkout's commit (with "+dirty" if it has changes), or None outside a git checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=5,
        )  # fmt: skip
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def write_run(sweep_dir: Path, spec: RunSpec, result: Any, env: dict[str, Any]) -> None:
    """Store one finished run: parquet files first, the JSON (the "finished" mark) last."""
    runs = sweep_dir / RUNS
    _atomic_parquet(runs / f"{spec.run_id}.parquet", result.history)
    _atomic_parquet(runs / f"{spec.run_id}.trace.parquet", result.trace)
    record = {
        "run_id": spec.run_id,
        "spec": spec.to_dict(),
        "config": result.config,
        "summary": result.summary,
        "env": env,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    atomic_write_json(runs / f"{spec.run_id}.json", record)
    (runs / f"{spec.run_id}{ERROR_SUFFIX}").unlink(missing_ok=True)  # an earlier attempt's


def write_error(sweep_dir: Path, run_id: str, traceback: str) -> None:
    """Store why a run's attempt failed (its traceback); :func:`write_run` removes it later."""
    atomic_write_bytes(sweep_dir / RUNS / f"{run_id}{ERROR_SUFFIX}", traceback.encode())


def read_error(sweep_dir: Path, run_id: str) -> str | None:
    """The traceback of the run's last attempt if it failed, else None."""
    try:
        return (sweep_dir / RUNS / f"{run_id}{ERROR_SUFFIX}").read_text(errors="replace")
    except FileNotFoundError:
        return None


def write_sweep(sweep_dir: Path, manifest: dict[str, Any]) -> None:
    """Store ``sweep.json``: every RunSpec of the sweep and its config source."""
    atomic_write_json(sweep_dir / SWEEP, manifest)


def read_sweep(path: str | Path) -> dict[str, Any]:
    """A sweep directory's ``sweep.json``, with ``specs`` as :class:`RunSpec` objects."""
    manifest = json.loads((Path(path) / SWEEP).read_text())
    manifest["specs"] = [RunSpec.from_dict(d) for d in manifest["specs"]]
    return manifest


def missing(path: str | Path) -> list[RunSpec]:
    """The runs ``sweep.json`` asks for that are not (readably) stored yet."""
    finished = scan(Path(path)).finished
    return [spec for spec in read_sweep(path)["specs"] if spec.run_id not in finished]


def remove_stale_temporaries(sweep_dir: Path) -> None:
    """Delete the temporary files a killed writer left behind (call with the sweep locked)."""
    for tmp in temporaries(sweep_dir / RUNS):
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class Scan:
    """What a sweep directory holds: finished run ids, and files that could not be read."""

    finished: frozenset[str]
    problems: tuple[tuple[str, str], ...]  # (run_id, what is wrong)


def _read_record(path: Path) -> dict[str, Any]:
    record = json.loads(path.read_text())
    if not isinstance(record, dict) or record.get("run_id") != path.stem:
        raise ValueError("not a run record for this id")
    if not all(isinstance(record.get(key), dict) for key in ("spec", "summary", "env")):
        raise ValueError("run record without spec, summary or env")
    return record


def scan(sweep_dir: Path) -> Scan:
    """Finished runs under ``sweep_dir/runs``; corrupt or partial ones are listed, never raised."""
    runs = sweep_dir / RUNS
    finished: set[str] = set()
    problems: list[tuple[str, str]] = []
    if not runs.is_dir():
        return Scan(frozenset(), ())
    for path in sorted(runs.glob("*.json")):
        run_id = path.stem
        try:
            _read_record(path)
            for suffix in (".parquet", ".trace.parquet"):
                import pyarrow.parquet as pq

                pq.read_metadata(runs / f"{run_id}{suffix}")
        except Exception as exc:  # any unreadable file means: run it again
            problems.append((run_id, f"{type(exc).__name__}: {exc}".splitlines()[0][:200]))
            continue
        finished.add(run_id)
    return Scan(frozenset(finished), tuple(problems))


def _sweep_dirs(path: Path) -> list[Path]:
    path = Path(path)
    if path.name == RUNS:
        return [path.parent]
    if (path / RUNS).is_dir():
        return [path]
    return sorted(p for p in path.iterdir() if (p / RUNS).is_dir()) if path.is_dir() else []


def _records(path: Path) -> Iterable[tuple[Path, dict[str, Any]]]:
    for sweep_dir in _sweep_dirs(path):
        finished = scan(sweep_dir).finished
        for run_id in sorted(finished):
            yield sweep_dir / RUNS, _read_record(sweep_dir / RUNS / f"{run_id}.json")


def _spec_columns(record: dict[str, Any]) -> dict[str, Any]:
    spec = record["spec"]
    opt = spec["optimizer"]
    return {
        "sweep": spec["sweep"],
        "run_id": record["run_id"],
        "workload": spec["workload"],
        "optimizer": spec["label"],
        "optimizer_name": opt["name"],
        "lr": float(opt["lr"]),
        "seed": spec["seed"],
        "ortho": opt.get("ortho") == "weights",
        "surgery": bool(opt.get("surgery", False)),
    }


def _load_tables(path: Path, suffix: str) -> pd.DataFrame:
    frames = []
    for runs, record in _records(path):
        file = runs / f"{record['run_id']}{suffix}"
        try:
            table = pd.read_parquet(file)
        except Exception as exc:  # scan() checks the footer only; a damaged body shows up here
            warnings.warn(f"skipping unreadable {file}: {type(exc).__name__}: {exc}", stacklevel=3)
            continue
        for key, value in reversed(_spec_columns(record).items()):
            table.insert(0, key, value)
        frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load(path: str | Path) -> pd.DataFrame:
    """Every finished run's history under ``path`` as one tidy DataFrame.

    One row per (run, evaluation): the run's identity (sweep, run_id, workload, optimizer label,
    optimizer_name, lr, seed, ortho, surgery) followed by the history columns.
    ``path`` may be a results root, a sweep directory or its ``runs`` directory.
    """
    return _load_tables(Path(path), ".parquet")


def load_runs(path: str | Path) -> pd.DataFrame:
    """One row per finished run: identity columns, then the summary (nested keys flattened)."""
    rows = []
    for _, record in _records(Path(path)):
        summary = pd.json_normalize(record["summary"], sep="_").iloc[0].to_dict()
        rows.append(
            {**_spec_columns(record), **summary, "git_commit": record["env"].get("git_commit")}
        )
    return pd.DataFrame(rows)


def load_traces(path: str | Path) -> pd.DataFrame:
    """Every finished run's per-step trace, with the identity columns, as one DataFrame."""
    return _load_tables(Path(path), ".trace.parquet")


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """The raw JSON records (spec, config, summary, env) of every finished run."""
    return [record for _, record in _records(Path(path))]
