"""The result store: one JSON and two parquet files per finished run, each written atomically.

Layout of a sweep directory ``DIR/<sweep>/``::

    sweep.json                the expanded sweep: every RunSpec it asked for
    runs/<run_id>.json        spec, resolved config, summary, environment   (written last)
    runs/<run_id>.parquet     history: one row per evaluation
    runs/<run_id>.trace.parquet   trace: one row per training step
    runs/<run_id>.error.txt   the last attempt's failure, if it raised: its kind, its traceback
    checkpoints/<key>.pt      an unfinished run's (or population's) last checkpoint; removed
                              once the run is stored (key: see :class:`Checkpoints`)

Every file is written with :mod:`ogan.files` (temporary name in the same directory, fsync,
rename), so a crash leaves either a complete file or none. A run counts as finished only when
its JSON and both parquet files read back; anything else is reported and re-run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import subprocess
import tarfile
import warnings
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import BenchError
from bench.spec import RunSpec
from ogan.files import atomic_open, atomic_write_bytes, temporaries

RUNS = "runs"
SWEEP = "sweep.json"
ERROR_SUFFIX = ".error.txt"
CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class Checkpoints:
    """Where the runs of a sweep keep their checkpoints, and how often they write them.

    A run, or a population, has one file named by the hash of its members' run ids (a
    population is resumed only as the same population: ``bench run`` groups the same runs the
    same way). Workers write it (``ogan.train``'s ``checkpoint``); the parent removes it once
    the run is stored. On a Dask cluster resuming needs the results directory on a shared disk.
    """

    sweep_dir: str
    every: int | None  # None: ogan's default

    def path(self, specs: Collection[RunSpec]) -> Path:
        key = hashlib.sha256(" ".join(sorted(s.run_id for s in specs)).encode()).hexdigest()
        return Path(self.sweep_dir) / CHECKPOINTS / f"{key[:16]}.pt"

    def kwargs(self, specs: Collection[RunSpec]) -> dict[str, Any]:
        """``ogan.train``/``train_population``'s checkpoint arguments for these runs."""
        return {"checkpoint": str(self.path(specs)), "checkpoint_every": self.every}


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
    from ogan import _allocator

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
        "allocator": _allocator.describe(),
        "git_commit": git_commit(),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache  # once per process: a worker records many runs
def git_commit() -> str | None:
    """The checkout's commit (with "+dirty" if it has changes), or None outside a git checkout."""
    return git_state(Path(__file__).resolve().parent.parent)


def git_state(root: Path) -> str | None:
    """:func:`git_commit` of the checkout at ``root``.

    Read-only: ``git status`` refreshes the index and writes it back under ``.git/index.lock``
    when files' timestamps changed, and a git killed while holding that lock (a run stopped with
    ``kill -9``, its process group killed, or this call's own timeout on a loaded machine) leaves
    the lock behind, and the user's next ``git commit`` fails. ``--no-optional-locks`` (git's
    own flag for such background readers) skips that write."""
    git = ["git", "--no-optional-locks"]
    try:
        commit = subprocess.run(
            [*git, "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=5,
        )  # fmt: skip
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def unpack(archive: str | Path, into: str | Path) -> list[str]:
    """Unpack a tar archive of run files (a GPU lease's, any compression) under ``into``;
    returns its member names. Anything that would land outside ``into`` is refused
    (``tarfile.TarError``) before it is written.

    tarfile's ``filter="data"`` (PEP 706) does this from Python 3.11.4 and 3.12; the 3.11
    releases before it (Debian 12's 3.11.2) lack the argument, and there the same refusal is
    made here, stricter: plain files and folders only (what ``gpu-session.sh`` packs), each
    inside ``into``."""
    into = Path(into)
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
        else:
            root = into.resolve()
            for m in members:
                if not (m.isfile() or m.isdir()) or not (root / m.name).resolve().is_relative_to(
                    root
                ):
                    raise tarfile.TarError(
                        f"{archive}: refusing {m.name!r} (not a plain file or folder inside "
                        f"{into}); run files are packed as plain files"
                    )
            tar.extractall(into)  # every member checked above
    return [m.name for m in members]


def thinned(trace: pd.DataFrame, every: int) -> pd.DataFrame:
    """Every ``every``-th step of a per-step trace, and its last step (the sweep's
    ``trace_every``)."""
    if every == 1 or trace.empty:
        return trace
    step = trace["step"]
    return trace[(step % every == 0) | (step == step.iloc[-1])].reset_index(drop=True)


def write_run(
    sweep_dir: Path, spec: RunSpec, result: Any, env: dict[str, Any], trace_every: int = 1
) -> None:
    """Store one finished run: parquet files first, the JSON (the "finished" mark) last.
    ``trace_every``: the stored trace keeps every N-th step and the last (:func:`thinned`)."""
    runs = sweep_dir / RUNS
    _atomic_parquet(runs / f"{spec.run_id}.parquet", result.history)
    _atomic_parquet(runs / f"{spec.run_id}.trace.parquet", thinned(result.trace, trace_every))
    record = {
        "run_id": spec.run_id,
        "spec": spec.to_dict(),
        "config": result.config,
        "summary": result.summary,
        "trace_every": trace_every,
        "env": env,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    atomic_write_json(runs / f"{spec.run_id}.json", record)
    (runs / f"{spec.run_id}{ERROR_SUFFIX}").unlink(missing_ok=True)  # an earlier attempt's


FAILURE_HEADER = "# failure: "
"""The first line of ``<id>.error.txt``: ``# failure: deterministic`` (the same run raises it
again: fix the spec or the code) or ``# failure: transient`` (it depended on the machine at
the time: running again may succeed); see :func:`bench.worker.is_transient`."""


@dataclass(frozen=True)
class Failure:
    """Why a run's last attempt failed."""

    kind: str  # "deterministic", "transient", or "unknown" (a file written before the header)
    error: str  # the exception's line, the traceback's last
    traceback: str


def write_error(sweep_dir: Path, run_id: str, traceback: str, *, transient: bool = False) -> None:
    """Store why a run's attempt failed (its kind, then its traceback); :func:`write_run`
    removes it later."""
    kind = "transient" if transient else "deterministic"
    text = f"{FAILURE_HEADER}{kind}\n{traceback}"
    atomic_write_bytes(sweep_dir / RUNS / f"{run_id}{ERROR_SUFFIX}", text.encode())


def read_error(sweep_dir: Path, run_id: str) -> str | None:
    """The traceback of the run's last attempt if it failed, else None."""
    failure = read_failure(sweep_dir, run_id)
    return None if failure is None else failure.traceback


def read_failure(sweep_dir: Path, run_id: str) -> Failure | None:
    """Why the run's last attempt failed (None: it has not failed, or it has since finished)."""
    try:
        text = (sweep_dir / RUNS / f"{run_id}{ERROR_SUFFIX}").read_text(errors="replace")
    except FileNotFoundError:
        return None
    kind = "unknown"
    if text.startswith(FAILURE_HEADER):
        head, _, text = text.partition("\n")
        kind = head.removeprefix(FAILURE_HEADER).strip()
    error = (text.strip().splitlines() or ["?"])[-1]
    return Failure(kind, error, text)


def write_sweep(sweep_dir: Path, manifest: dict[str, Any]) -> None:
    """Store ``sweep.json``: every RunSpec of the sweep and its config source."""
    atomic_write_json(sweep_dir / SWEEP, manifest)


def read_sweep(path: str | Path) -> dict[str, Any]:
    """A sweep directory's ``sweep.json``, with ``specs`` as :class:`RunSpec` objects.

    Raises BenchError when the directory has none or it does not read back.
    """
    manifest = _read_manifest(Path(path))
    if manifest is None:
        raise BenchError(f"no {SWEEP} in {path}: python -m bench run writes it for every sweep")
    return manifest


def missing(path: str | Path) -> list[RunSpec]:
    """The runs ``sweep.json`` asks for that are not (readably) stored yet."""
    finished = scan(Path(path)).finished
    return [spec for spec in read_sweep(path)["specs"] if spec.run_id not in finished]


def remove_stale_temporaries(sweep_dir: Path) -> None:
    """Delete the temporary files a killed writer left behind (call with the sweep locked)."""
    for tmp in temporaries(sweep_dir / RUNS) + temporaries(sweep_dir / CHECKPOINTS):
        tmp.unlink(missing_ok=True)


def remove_checkpoints(sweep_dir: Path) -> None:
    """Delete every checkpoint of the sweep (``--force``; call with the sweep locked)."""
    for path in (sweep_dir / CHECKPOINTS).glob("*.pt"):
        path.unlink(missing_ok=True)


# -- reading ----------------------------------------------------------------------------------

TABLES = {"history": ".parquet", "traces": ".trace.parquet"}
"""A run's parquet tables, by name: the suffix each has next to ``runs/<run_id>.json``."""


@dataclass(frozen=True)
class Scan:
    """What a sweep directory holds: finished run ids, and files that could not be read."""

    finished: frozenset[str]
    problems: tuple[tuple[str, str], ...]  # (run_id, what is wrong)


@dataclass(frozen=True)
class Results:
    """A results directory, read once (:func:`read_results`): every loader is a view of this.

    ``records``: the JSON record (spec, config, summary, env) of every finished run, by sweep
    directory and run id. ``history``/``traces``: those runs' tables with the identity columns
    in front (None when not asked for). ``problems``: (sweep directory name, run id, what is
    wrong) for each run whose files do not all read back; it is left out of everything else.
    ``repeated``: (sweep directory name, run id) for each run already read from an earlier
    sweep directory (a sweep that reuses another's finished runs holds copies of their files:
    a run id does not hold the sweep's name); a run is counted once, from the first directory.
    """

    path: Path
    sweep_dirs: tuple[Path, ...]
    records: tuple[dict[str, Any], ...]
    problems: tuple[tuple[str, str, str], ...]
    history: pd.DataFrame | None
    traces: pd.DataFrame | None
    repeated: tuple[tuple[str, str], ...] = ()

    @functools.cached_property
    def runs(self) -> pd.DataFrame:
        """One row per finished run: identity columns, then the summary (nested keys flattened)."""
        rows = []
        for record in self.records:
            summary = pd.json_normalize(record["summary"], sep="_").iloc[0].to_dict()
            git = record["env"].get("git_commit")
            rows.append({**_spec_columns(record), **summary, "git_commit": git})
        return pd.DataFrame(rows)

    @functools.cached_property
    def manifests(self) -> dict[Path, dict[str, Any]]:
        """``sweep.json`` of each sweep directory that has one, read on first use.

        Raises BenchError when one does not read back.
        """
        read = {d: _read_manifest(d) for d in self.sweep_dirs}
        return {d: manifest for d, manifest in read.items() if manifest is not None}


def sweep_dirs(path: str | Path) -> list[Path]:
    """The sweep directories at ``path``: itself, its parent if it is ``runs``, or its children.

    A sweep directory is one with a ``runs`` directory or a ``sweep.json``.
    """
    path = Path(path)
    if path.name == RUNS:
        return [path.parent]
    if _is_sweep_dir(path):
        return [path]
    return sorted(p for p in path.iterdir() if _is_sweep_dir(p)) if path.is_dir() else []


def _is_sweep_dir(path: Path) -> bool:
    return (path / RUNS).is_dir() or (path / SWEEP).is_file()


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _read_manifest(sweep_dir: Path) -> dict[str, Any] | None:
    path = sweep_dir / SWEEP
    if not path.is_file():
        return None
    try:
        manifest = _read_json(path)
        manifest["specs"] = [RunSpec.from_dict(d) for d in manifest["specs"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise BenchError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    return manifest


def _read_record(path: Path) -> dict[str, Any]:
    record = _read_json(path)
    if not isinstance(record, dict) or record.get("run_id") != path.stem:
        raise ValueError("not a run record for this id")
    if not all(isinstance(record.get(key), dict) for key in ("spec", "summary", "env")):
        raise ValueError("run record without spec, summary or env")
    return record


def _read_runs(
    sweep_dir: Path, tables: Collection[str], known: Collection[str] = ()
) -> Iterator[tuple[str, dict[str, Any] | None, dict[str, pd.DataFrame], str | None]]:
    """(run_id, record, tables, problem) for every run file under ``sweep_dir/runs``.

    Each file is opened once: the JSON record and the ``tables`` asked for are read in full, the
    other tables' parquet footers are checked. A run with any file that does not read back gets
    a problem (and no record) instead of an exception. A run in ``known`` (already read from
    another sweep directory; checked when its turn comes) has its footers checked only.
    """
    import pyarrow.parquet as pq

    runs = sweep_dir / RUNS
    if not runs.is_dir():
        return
    for path in sorted(runs.glob("*.json")):
        run_id = path.stem
        wanted = () if run_id in known else tables
        try:
            record = _read_record(path)
            frames = {}
            for name, suffix in TABLES.items():
                file = runs / f"{run_id}{suffix}"
                if name in wanted:
                    frames[name] = pd.read_parquet(file)
                else:
                    pq.read_metadata(file)
        except Exception as exc:  # any unreadable file means: run it again
            yield run_id, None, {}, f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            continue
        yield run_id, record, frames, None


def scan(sweep_dir: Path) -> Scan:
    """Finished runs under ``sweep_dir/runs``; corrupt or partial ones are listed, never raised."""
    finished: set[str] = set()
    problems: list[tuple[str, str]] = []
    for run_id, _, _, problem in _read_runs(sweep_dir, ()):
        if problem is None:
            finished.add(run_id)
        else:
            problems.append((run_id, problem))
    return Scan(frozenset(finished), tuple(problems))


def read_results(path: str | Path, tables: Collection[str] = tuple(TABLES)) -> Results:
    """Read a results directory once: its sweep directories, every run record and table.

    ``path`` may be a results root, a sweep directory or its ``runs`` directory. ``tables``
    names the parquet tables to read (:data:`TABLES`); the others are only checked, so every
    caller counts the same runs as finished. ``sweep.json`` is read when first asked for
    (:attr:`Results.manifests`).
    """
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        raise ValueError(f"unknown tables {unknown}; choose from {sorted(TABLES)}")
    dirs = sweep_dirs(path)
    records: list[dict[str, Any]] = []
    problems: list[tuple[str, str, str]] = []
    frames: dict[str, list[pd.DataFrame]] = {name: [] for name in tables}
    seen: set[str] = set()
    repeated: list[tuple[str, str]] = []
    for sweep_dir in dirs:
        for run_id, record, read, problem in _read_runs(sweep_dir, tables, known=seen):
            if record is None:
                problems.append((sweep_dir.name, run_id, problem))
                continue
            if run_id in seen:  # the same run stored under two sweeps: count it once
                repeated.append((sweep_dir.name, run_id))
                continue
            seen.add(run_id)
            records.append(record)
            for name, table in read.items():
                for key, value in reversed(_spec_columns(record).items()):
                    table.insert(0, key, value)
                frames[name].append(table)
    joined = {
        name: pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        for name, parts in frames.items()
    }
    return Results(
        path=Path(path),
        sweep_dirs=tuple(dirs),
        records=tuple(records),
        problems=tuple(problems),
        history=joined.get("history"),
        traces=joined.get("traces"),
        repeated=tuple(repeated),
    )


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


def _loaded(path: str | Path, tables: Collection[str]) -> Results:
    """:func:`read_results` for the public loaders, which warn about the runs they leave out."""
    results = read_results(path, tables)
    if results.problems:
        sweep, run_id, problem = results.problems[0]
        warnings.warn(
            f"left out {len(results.problems)} run(s) under {path} whose files do not read back "
            f"(first: {sweep}/{RUNS}/{run_id}: {problem}); python -m bench run re-runs them",
            stacklevel=3,
        )
    return results


def load(path: str | Path) -> pd.DataFrame:
    """Every finished run's history under ``path`` as one tidy DataFrame.

    One row per (run, evaluation): the run's identity (sweep, run_id, workload, optimizer label,
    optimizer_name, lr, seed, ortho, surgery) followed by the history columns.
    ``path`` may be a results root, a sweep directory or its ``runs`` directory.
    """
    return _loaded(path, ("history",)).history


def load_runs(path: str | Path) -> pd.DataFrame:
    """One row per finished run: identity columns, then the summary (nested keys flattened)."""
    return _loaded(path, ()).runs


def load_traces(path: str | Path) -> pd.DataFrame:
    """Every finished run's per-step trace, with the identity columns, as one DataFrame."""
    return _loaded(path, ("traces",)).traces


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """The raw JSON records (spec, config, summary, env) of every finished run."""
    return list(_loaded(path, ()).records)
