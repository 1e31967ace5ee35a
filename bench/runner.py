"""Run a sweep: validate it, skip finished runs, train the rest in parallel, store each as it lands.

Workers only compute: :mod:`bench.worker` trains one :class:`~bench.spec.RunSpec` (or the
runs that differ only by seed, together, as one population: see :mod:`bench.population`) and
returns the result. The parent process writes every run the moment it arrives
(``Parallel(return_as="generator_unordered")``), so the same code serves local processes
(joblib's loky backend) and a Dask cluster (joblib's dask backend), and a killed sweep loses at
most the runs in flight.

Devices: on CPU every worker trains with one torch thread. With ``device="cuda"`` locally there
is one worker per GPU and each worker holds one GPU for its whole life (an exclusive lock file per
GPU); on a Dask cluster each run asks for the worker resource ``{"GPU": 1}``.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import population as populations
from bench import store
from bench.config import Sweep, load_sweep, validate
from bench.errors import BenchError
from bench.imports import check_workers
from bench.spec import RunSpec
from bench.worker import GpuSlots, Outcome, execute_population
from ogan.optim import Admission

DASK_CONNECT_TIMEOUT_S = 10
"""How long to wait for a scheduler (and for its first worker) before giving up."""


@dataclass
class SweepReport:
    """What ``run_sweep`` did."""

    sweep: Sweep
    sweep_dir: Path
    total: int
    skipped: int
    ran: int = 0
    diverged: int = 0
    failed: int = 0
    transient: int = 0  # failures that may not repeat (bench.worker.is_transient)


# -- parent side ------------------------------------------------------------------------------


def run_sweep(
    config: str | Path | Sweep | None = None,
    *,
    out: str | Path = "results",
    jobs: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    device: str | None = None,
    population: int | None = None,
    part: tuple[int, int] | None = None,
    seed_part: tuple[int, int] | None = None,
    echo: Callable[[str], None] = print,
) -> SweepReport:
    """Run (or resume) a sweep and store every finished run under ``<out>/<sweep name>/``.

    ``config``: a sweep file or embedded name, or a :class:`~bench.config.Sweep` built in code
    (run as it is: its specs carry their device).

    Runs that differ only by seed train as populations of at most ``population`` members
    (default: :func:`bench.population.default_size` of the device; 1: one run per process).

    ``part``: ``(i, n)`` runs only the i-th of n parts (:func:`bench.population.part`); the
    report and the summary table still cover the whole sweep. ``seed_part``: ``(i, n)`` runs
    only the i-th of n blocks of the sweep's seeds (:func:`bench.population.seed_part`), with
    every configuration (or those of ``part``).

    Everything is checked before anything is written: the config, every run still to do
    (through ``ogan.game.resolve``), the output directory and the scheduler. Finished runs are
    skipped unless ``force``. KeyboardInterrupt propagates after the finished runs are stored.
    """
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(_dask_client(scheduler)) if scheduler else None
        if client is not None and device is None:
            device = "cuda" if _cluster_gpus(client) else "cpu"
        sweep = config if isinstance(config, Sweep) else load_sweep(config, device=device)
        if client is not None and sweep.device == "cuda" and not _cluster_gpus(client):
            raise BenchError(
                f"no Dask worker at {scheduler} offers a GPU resource; start the workers with "
                "--resources GPU=1, or use --device cpu"
            )
        if client is not None:  # user code the workers lack: one error now, not a failed run each
            check_workers(client, list(sweep.imports))
        n_gpus = _local_gpus() if client is None and sweep.device == "cuda" else 0
        if jobs is not None and n_gpus and jobs > n_gpus:
            raise BenchError(f"--jobs {jobs} > {n_gpus} GPUs: each worker holds one GPU")
        sweep_dir = Path(out) / sweep.name
        check_writable(sweep_dir)

        specs = sweep.specs if part is None else populations.part(sweep.specs, *part)
        if seed_part is not None:
            specs = populations.seed_part(specs, *seed_part)
        ids = [spec.run_id for spec in specs]
        scan = store.scan(sweep_dir)
        done = set() if force else scan.finished & set(ids)
        todo = [spec for spec in specs if spec.run_id not in done]
        # Finished runs were checked when they ran (and resuming stays fast: building the first
        # torch optimizer imports torch._dynamo, ~2 s). A cluster's GPUs cannot be checked from
        # here: check its runs on the CPU.
        validate(todo, device="cpu" if client is not None else None)
        admitted = populations.admissions(todo)
        report = SweepReport(sweep, sweep_dir, total=len(ids), skipped=len(done))
        size = population or populations.default_size(sweep.device)
        if dry_run:
            _print_plan(report, todo, echo)
            _say_alone(todo, admitted, size, echo)
            return report

        stack.enter_context(_sweep_lock(sweep_dir))
        store.remove_stale_temporaries(sweep_dir)
        if force:  # recomputing: never resume from what an earlier attempt left
            store.remove_checkpoints(sweep_dir)
        store.write_sweep(sweep_dir, sweep.manifest())
        for run_id, problem in scan.problems:
            print(
                f"warning: run {run_id} is unreadable ({problem}); running it again",
                file=sys.stderr,
            )
        which = [f"part {part[0]}/{part[1]}"] if part is not None else []
        which += [f"seed part {seed_part[0]}/{seed_part[1]}"] if seed_part is not None else []
        of = f" ({', '.join(which)} of {len(sweep.specs)})" if which else ""
        echo(
            f"sweep {sweep.name!r}: {len(ids)} runs{of}, {len(done)} already finished, "
            f"{len(todo)} to run on {sweep.device} -> {sweep_dir}"
        )
        if todo:
            _say_alone(todo, admitted, size, echo)
            groups = populations.populations(todo, size, admitted)
            n_jobs = _n_jobs(jobs, len(groups), n_gpus, client)
            gpus = stack.enter_context(_gpu_slots(n_gpus)) if n_gpus else None
            checkpoints = store.Checkpoints(str(sweep_dir), sweep.checkpoint_every)
            _run_all(report, todo, groups, admitted, n_jobs, client, gpus, echo, checkpoints)
        echo(summary_table(sweep_dir, sweep.specs))
    return report


def _run_all(
    report: SweepReport,
    todo: list[RunSpec],
    groups: list[tuple[RunSpec, ...]],
    admitted: dict[tuple, Admission],
    n_jobs: int,
    client: Any,
    gpus: GpuSlots | None,
    echo: Callable[[str], None],
    checkpoints: store.Checkpoints | None = None,
) -> None:
    from tqdm import tqdm

    said: set[tuple[str, str]] = set()  # (workload, optimizer label) whose fallback was said

    bar = tqdm(
        total=len(todo),
        unit="run",
        desc=report.sweep.name,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5,
        disable=None,  # no bar in logs (not a terminal): the status lines say the same
    )
    outcomes = _outcomes(groups, n_jobs, client, gpus, checkpoints)
    try:
        for count, outcome in enumerate(outcomes, 1):
            spec = outcome.spec
            if outcome.error is None:
                outcome.result.summary["admission"] = admitted[spec.optimizer].to_dict()
                store.write_run(
                    report.sweep_dir, spec, outcome.result, outcome.env, report.sweep.trace_every
                )
                if outcome.checkpoint is not None:  # stored: nothing left to resume
                    Path(outcome.checkpoint).unlink(missing_ok=True)
                report.ran += 1
                report.diverged += outcome.result.summary.get("diverged_at") is not None
            else:
                store.write_error(
                    report.sweep_dir,
                    spec.run_id,
                    outcome.traceback or outcome.error,
                    transient=outcome.transient,
                )
                report.failed += 1
                report.transient += outcome.transient
            bar.update()
            with tqdm.external_write_mode():  # tqdm.write, through echo: above the bar
                if outcome.fallback is not None and (spec.workload, spec.label) not in said:
                    said.add((spec.workload, spec.label))
                    echo(
                        f"{spec.workload} {spec.label}: trained one seed at a time "
                        f"({outcome.fallback})"
                    )
                echo(f"[{count}/{len(todo)}] {status_line(outcome)}")
    except KeyboardInterrupt:
        bar.close()
        echo(
            f"interrupted: {report.skipped + report.ran} of {report.total} runs are stored in "
            f"{report.sweep_dir}; run the same command again to finish the rest"
        )
        raise
    finally:
        outcomes.close()  # stops the workers when we leave early
        bar.close()


def local_parallel(n_jobs: int) -> Any:
    """joblib's loky pool for a sweep on this machine: results as they finish, one task at a time.

    Its workers ignore SIGINT (:func:`bench.worker.leave_interrupts_to_the_parent`). A
    terminal's Ctrl-C reaches the whole process group; the parent stores what finished and
    stops the workers. A worker waiting between tasks would otherwise die of KeyboardInterrupt
    outside any task and print a traceback (seen on a busy machine, where a worker idles while
    the parent writes runs)."""
    from joblib import Parallel
    from joblib.parallel import LokyBackend

    from bench.worker import leave_interrupts_to_the_parent

    backend = LokyBackend(initializer=leave_interrupts_to_the_parent)
    return Parallel(n_jobs=n_jobs, backend=backend, return_as="generator_unordered", batch_size=1)


def _outcomes(
    groups: list[tuple[RunSpec, ...]],
    n_jobs: int,
    client: Any,
    gpus: GpuSlots | None,
    checkpoints: store.Checkpoints | None = None,
) -> Iterator[Outcome]:
    from joblib import Parallel, delayed, parallel_config

    tasks = (delayed(execute_population)(group, gpus, checkpoints) for group in groups)
    if client is None:
        try:
            for members in local_parallel(n_jobs)(tasks):
                yield from members
        except RuntimeError as exc:
            # An interrupt that lands while loky is still starting its executor makes joblib's
            # abort fail ("cannot join thread before it is started", joblib 1.6): the interrupt
            # is what happened, and no task had started on the workers it leaves idle (they end
            # with this process). Seen with SIGINT sent as the workers spawn.
            if isinstance(exc.__context__, KeyboardInterrupt):
                raise KeyboardInterrupt from None
            raise
        return
    gpu = groups[0][0].device == "cuda"
    backend_args = {"resources": {"GPU": 1}} if gpu else {}
    with parallel_config(
        backend="dask",
        client=client,
        wait_for_workers_timeout=DASK_CONNECT_TIMEOUT_S,
        **backend_args,
    ):
        parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered", batch_size=1)
        for members in parallel(tasks):
            yield from members


def status_line(outcome: Outcome) -> str:
    """One line per finished run: what it was and how it ended."""
    spec = outcome.spec
    what = f"{spec.workload} {spec.label} lr={spec.lr:g} seed={spec.seed}"
    if outcome.error is not None:
        kind = "may not repeat" if outcome.transient else "will repeat"
        return f"{what}: FAILED, {kind} ({outcome.error})"
    summary = outcome.result.summary
    if summary.get("diverged_at") is not None:
        return f"{what}: diverged at step {summary['diverged_at']} ({outcome.seconds:.1f}s)"
    metric = summary["target"]["metric"]  # the run's own: a workload's options may change it
    return (
        f"{what}: {metric}={summary.get(f'final_{metric}', math.nan):.4g} ({outcome.seconds:.1f}s)"
    )


def summary_table(sweep_dir: Path, specs: tuple[RunSpec, ...]) -> str:
    """Per workload × optimizer label (in config order): runs stored, diverged, the mean final
    primary metric (over the runs that did not diverge), runs whose last attempt failed and,
    when any did, the last line of the first one's traceback (``runs/<id>.error.txt``)."""
    import pandas as pd

    records = {r["run_id"]: r for r in store.read_results(sweep_dir, tables=()).records}
    rows = []
    for spec in specs:  # the sweep's own labels, even for runs stored under an older label
        record = records.get(spec.run_id)
        error = store.read_error(sweep_dir, spec.run_id)
        if record is None and error is None:
            continue
        summary = record["summary"] if record is not None else {}
        metric = summary["target"]["metric"] if record is not None else None
        rows.append(
            {
                "workload": spec.workload,
                "optimizer": spec.label,
                "stored": record is not None,
                "metric": metric,
                "diverged": summary.get("diverged_at") is not None,
                "final": summary.get(f"final_{metric}"),
                "failed": error is not None,
                "error": None if error is None else (error.strip().splitlines() or ["?"])[-1],
            }
        )
    if not rows:
        return "no finished runs"
    df = pd.DataFrame(rows)
    df["final"] = pd.to_numeric(df["final"], errors="coerce")
    table = (
        df.groupby(["workload", "optimizer"], sort=False)
        .agg(
            runs=("stored", "sum"),
            diverged=("diverged", "sum"),
            metric=("metric", "first"),
            final_mean=("final", "mean"),
            failed=("failed", "sum"),
            error=("error", "first"),
        )
        .reset_index()
        .rename(columns={"final_mean": "final (mean)"})
    )
    table["metric"] = table["metric"].fillna("-")
    if table["failed"].any():
        table["error"] = table["error"].fillna("")
    else:
        table = table.drop(columns="error")
    return table.to_string(index=False, float_format=lambda x: f"{x:.4g}")


def check_writable(sweep_dir: Path) -> None:
    """Raise BenchError unless ``sweep_dir`` can be created (or written) here; creates nothing."""
    path = sweep_dir.absolute()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise BenchError(f"cannot write results to {sweep_dir}: {existing} is not a directory")
    runs = path / store.RUNS
    target = runs if runs.is_dir() else existing
    if not os.access(target, os.W_OK | os.X_OK):
        raise BenchError(f"cannot write results to {sweep_dir}: {target} is not writable")


@contextlib.contextmanager
def _sweep_lock(sweep_dir: Path) -> Iterator[None]:
    """Only one ``bench run`` writes to a sweep directory at a time."""
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(sweep_dir / ".lock", os.O_CREAT | os.O_RDWR)
    except OSError as exc:
        raise BenchError(f"cannot write results to {sweep_dir}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BenchError(f"another `bench run` is writing to {sweep_dir}") from None
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _gpu_slots(count: int) -> Iterator[GpuSlots]:
    with tempfile.TemporaryDirectory(prefix="bench-gpus-") as lock_dir:
        yield GpuSlots(lock_dir, count)


@contextlib.contextmanager
def _dask_client(address: str) -> Iterator[Any]:
    from distributed import Client

    try:
        client = Client(address, timeout=DASK_CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise BenchError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        yield client
    finally:
        client.close()


def _cluster_gpus(client: Any) -> int:
    workers = client.scheduler_info().get("workers", {}).values()
    return int(sum(w.get("resources", {}).get("GPU", 0) for w in workers))


def _local_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def _n_jobs(jobs: int | None, n_runs: int, n_gpus: int, client: Any) -> int:
    if jobs is None:
        if client is not None:
            jobs = max(1, sum(client.ncores().values()))
        elif n_gpus:
            jobs = n_gpus
        else:
            from joblib import cpu_count

            jobs = cpu_count()
    return max(1, min(jobs, n_runs))


def _print_plan(report: SweepReport, todo: list[RunSpec], echo: Callable[[str], None]) -> None:
    echo(
        f"sweep {report.sweep.name!r} ({report.sweep.origin}): {report.total} runs, "
        f"{report.skipped} already finished, {len(todo)} to run on {report.sweep.device} "
        f"-> {report.sweep_dir}"
    )
    for spec in todo:
        echo(
            f"  {spec.run_id}  {spec.workload} {spec.label} lr={spec.lr:g} seed={spec.seed} "
            f"steps={spec.steps}"
        )


def _say_alone(
    todo: list[RunSpec],
    admitted: dict[tuple, Admission],
    size: int,
    echo: Callable[[str], None],
) -> None:
    """One line per optimizer whose runs train one seed at a time, with the reason."""
    if size == 1:
        return
    seeds: dict[RunSpec, int] = {}  # runs per group: a run with no other seed has no population
    for spec in todo:
        key = populations.optimizer_key(spec)
        seeds[key] = seeds.get(key, 0) + 1
    said: set[str] = set()
    for spec in todo:
        admission = admitted[spec.optimizer]
        if admission.admitted or spec.label in said or seeds[populations.optimizer_key(spec)] < 2:
            continue
        said.add(spec.label)
        echo(
            f"{spec.label}: trained one seed at a time, not as a population "
            f"(the per-member check: {admission.reason})"
        )
