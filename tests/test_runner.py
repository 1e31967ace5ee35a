"""The sweep runner: store, resume, skip; faults (kill -9, Ctrl-C, corrupt files, divergence)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from patience import patience

import bench
from bench import runner, store, worker
from bench.cli import failure_advice
from bench.errors import BenchError
from bench.report.data import load_sweep as load_sweep_data
from ogan.files import temporaries

TINY_RUNS = 2 * 3 * 2  # conftest's tiny sweep: workloads × optimizer settings × seeds

# Long enough per run (~0.5 s) that a signal lands in the middle of the sweep.
SLOW = """
[sweep]
name = "slow"
seeds = [0, 1, 2, 3]

[[workload]]
name = "mog-ring"
hidden = 32
batch_size = 64
steps = 100
eval_every = 50

[[optimizer]]
name = "adam"
lr = [1e-3, 2e-3]
betas = [0.5, 0.999]
"""
SLOW_RUNS = 8

def run(config: Path, out: Path, **kw) -> runner.SweepReport:
    lines: list[str] = []
    report = runner.run_sweep(config, out=out, device="cpu", echo=lines.append, **kw)
    report.lines = lines  # type: ignore[attr-defined]
    return report


def bench_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench", *args]


def wait_for_runs(runs: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + patience(timeout)
    while not list(runs.glob("*.json")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no run finished in time"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory, tiny_sweep) -> tuple[Path, runner.SweepReport]:
    tmp = tmp_path_factory.mktemp("tiny")
    report = run(tiny_sweep, tmp / "out", jobs=1)
    return tmp / "out", report


def test_a_sweep_stores_every_run_with_spec_summary_environment_and_history(tiny_results):
    out, report = tiny_results
    assert (report.total, report.ran, report.skipped, report.failed) == (TINY_RUNS, TINY_RUNS, 0, 0)
    runs = out / "tiny" / "runs"
    ids = {spec.run_id for spec in report.sweep.specs}
    assert {p.name for p in runs.iterdir()} == {
        f"{i}{suffix}" for i in ids for suffix in (".json", ".parquet", ".trace.parquet")
    }
    record = json.loads((runs / f"{report.sweep.specs[0].run_id}.json").read_text(encoding="utf-8"))
    assert record["spec"] == report.sweep.specs[0].to_dict()
    assert record["config"]["threads"] == 1
    env = record["env"]
    assert env["device"] == "cpu" and env["threads"] == 1
    assert {"torch", "numpy", "python", "cpu", "git_commit"} <= set(env)
    assert "final_distance" in record["summary"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_commit_is_read_without_writing_the_checkouts_index(tmp_path, monkeypatch):
    """A run records its checkout's commit and whether it is dirty, and never takes
    .git/index.lock to do it: plain `git status` rewrites a stale index under that lock, and a
    git killed meanwhile (kill -9 of a run's group, the call's timeout) leaves it behind."""
    for name in [k for k in os.environ if k.startswith("GIT_")]:  # e.g. run from a git hook
        monkeypatch.delenv(name)  # so that every git here works on tmp_path's repository only
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f").write_text("a")
    subprocess.run([*git, "add", "f"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=tmp_path, check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    index = tmp_path / ".git" / "index"
    stamp = index.stat().st_mtime_ns - 10**9
    os.utime(tmp_path / "f", ns=(stamp, stamp))  # stale stat data: plain status would rewrite
    before = (index.read_bytes(), index.stat().st_mtime_ns)
    assert store.git_state(tmp_path) == head
    assert (index.read_bytes(), index.stat().st_mtime_ns) == before
    (tmp_path / "f").write_text("b")
    assert store.git_state(tmp_path) == head + "+dirty"
    assert (index.read_bytes(), index.stat().st_mtime_ns) == before
    assert store.git_state(Path("/")) is None


def test_sweep_json_holds_every_spec_and_the_config_source(tiny_results, tiny_sweep):
    out, report = tiny_results
    manifest = store.read_sweep(out / "tiny")
    assert manifest["specs"] == list(report.sweep.specs)
    assert manifest["source"] == tiny_sweep.read_text(encoding="utf-8")
    assert store.missing(out / "tiny") == []


def test_bench_load_returns_one_tidy_frame_of_every_evaluation(tiny_results):
    out, _ = tiny_results
    df = bench.load(out)
    # bilinear: evaluations at 0, 10, 20, 30; mog-ring: at 0, 10, 20
    assert len(df) == 6 * 4 + 6 * 3
    assert list(df.columns[:9]) == [
        "sweep",
        "run_id",
        "workload",
        "optimizer",
        "optimizer_name",
        "lr",
        "seed",
        "ortho",
        "surgery",
    ]
    assert set(df["optimizer"]) == {"adam", "extra-adam+ortho"}
    assert set(df.loc[df["ortho"], "optimizer_name"]) == {"extra-adam"}
    assert df.groupby("run_id")["step"].max().isin([20, 30]).all()


def test_the_summary_table_has_runs_diverged_mean_final_metric_and_failed_per_label(
    tiny_results,
):
    out, report = tiny_results
    table = runner.summary_table(out / "tiny", report.sweep.specs)
    lines = table.splitlines()
    assert lines[0].split() == [
        "workload",
        "optimizer",
        "runs",
        "diverged",
        "metric",
        "final",
        "(mean)",
        "failed",
    ]
    rows = [line.split() for line in lines[1:]]
    assert [r[:5] for r in rows] == [
        ["bilinear", "adam", "4", "0", "distance"],
        ["bilinear", "extra-adam+ortho", "2", "0", "distance"],
        ["mog-ring", "adam", "4", "0", "modes"],
        ["mog-ring", "extra-adam+ortho", "2", "0", "modes"],
    ]
    runs = bench.load_runs(out)
    mean = runs.query("workload == 'bilinear' and optimizer == 'adam'")["final_distance"].mean()
    assert float(rows[0][5]) == pytest.approx(mean, rel=1e-3)
    assert report.lines[-1] == table


def test_a_rerun_skips_finished_runs_and_force_recomputes_them(tmp_path, tiny_sweep):
    first = run(tiny_sweep, tmp_path / "out", jobs=1)
    json_file = tmp_path / "out" / "tiny" / "runs" / f"{first.sweep.specs[0].run_id}.json"
    stamp = json_file.stat().st_mtime_ns
    again = run(tiny_sweep, tmp_path / "out", jobs=1)
    assert (again.skipped, again.ran) == (TINY_RUNS, 0)
    assert json_file.stat().st_mtime_ns == stamp
    forced = run(tiny_sweep, tmp_path / "out", jobs=1, force=True)
    assert (forced.skipped, forced.ran) == (0, TINY_RUNS)
    assert json_file.stat().st_mtime_ns != stamp


def test_corrupt_or_truncated_files_are_reported_and_rerun_and_never_crash_loading(
    tmp_path, capsys, tiny_sweep, untimed
):
    first = run(tiny_sweep, tmp_path / "out", jobs=1)
    runs = tmp_path / "out" / "tiny" / "runs"
    ids = [spec.run_id for spec in first.sweep.specs]
    reference = untimed(bench.load(tmp_path / "out"))
    (runs / f"{ids[0]}.json").write_text('{"run_id": "')  # truncated JSON
    data = (runs / f"{ids[1]}.parquet").read_bytes()
    (runs / f"{ids[1]}.parquet").write_bytes(data[: len(data) // 2])  # truncated parquet
    (runs / f"{ids[2]}.trace.parquet").write_bytes(b"garbage")
    (runs / f"{ids[3]}.json").write_text("[1, 2]")  # valid JSON, not a record

    with pytest.warns(UserWarning, match="left out 4 run.*python -m bench run re-runs them"):
        partial = bench.load(tmp_path / "out")  # loading skips what it cannot read, and says so
    assert set(partial["run_id"]) == set(ids[4:])
    scan = store.scan(tmp_path / "out" / "tiny")
    assert {run_id for run_id, _ in scan.problems} == set(ids[:4])

    capsys.readouterr()
    again = run(tiny_sweep, tmp_path / "out", jobs=1)
    assert (again.skipped, again.ran) == (TINY_RUNS - 4, 4)
    err = capsys.readouterr().err
    assert all(f"run {run_id} is unreadable" in err for run_id in ids[:4])
    pd.testing.assert_frame_equal(untimed(bench.load(tmp_path / "out")), reference)


def test_a_diverged_run_is_recorded_and_the_sweep_goes_on(tmp_path, sweep_file):
    config = sweep_file(
        """
        [sweep]
        name = "boom"
        seeds = [0]
        [[workload]]
        name = "bilinear"
        steps = 50
        eval_every = 10
        [[optimizer]]
        name = "sgd"
        lr = [1e30, 0.1]
        """,
    )
    report = run(config, tmp_path / "out", jobs=1)
    assert (report.ran, report.diverged, report.failed) == (2, 1, 0)
    runs = bench.load_runs(tmp_path / "out").set_index("lr")
    assert runs.loc[1e30, "diverged_at"] <= 50
    assert pd.isna(runs.loc[0.1, "diverged_at"])
    assert any("diverged at step" in line for line in report.lines)
    table = runner.summary_table(tmp_path / "out" / "boom", report.sweep.specs)
    assert table.splitlines()[1].split()[:4] == ["bilinear", "sgd", "2", "1"]


def test_a_run_that_raises_is_reported_the_others_are_stored_and_a_rerun_retries_it(
    tmp_path, monkeypatch, tiny_sweep
):
    import ogan

    train = ogan.train

    def crash_inside():
        raise RuntimeError("simulated crash")

    def flaky(workload, optimizer, **kw):
        if workload == "bilinear" and optimizer["lr"] == 1e-2 and kw["seed"] == 1:
            crash_inside()
        return train(workload, optimizer, **kw)

    monkeypatch.setattr(ogan, "train", flaky)  # jobs=1 trains in this process
    report = run(tiny_sweep, tmp_path / "out", jobs=1, population=1)  # one run: one ogan.train
    assert (report.ran, report.failed) == (TINY_RUNS - 2, 2)  # adam and extra-adam at 1e-2
    assert sum("FAILED, will repeat (RuntimeError: simulated crash)" in line
               for line in report.lines) == 2  # fmt: skip
    assert (report.failed, report.transient) == (2, 0)
    failed = [s.run_id for s in report.sweep.specs if s.workload == "bilinear" and s.lr == 1e-2
              and s.seed == 1]  # fmt: skip
    runs = tmp_path / "out" / "tiny" / "runs"
    assert sorted(p.name for p in runs.glob("*.error.txt")) == sorted(
        f"{i}.error.txt" for i in failed
    )
    for run_id in failed:  # the whole traceback, down to the frame that raised
        text = (runs / f"{run_id}.error.txt").read_text(encoding="utf-8")
        assert text.startswith("# failure: deterministic\nTraceback (most recent call last)")
        assert "crash_inside" in text
        assert text.rstrip().splitlines()[-1] == "RuntimeError: simulated crash"
    table = report.lines[-1].splitlines()
    assert table[0].split()[-2:] == ["failed", "error"]
    rows = {tuple(line.split()[:2]): line for line in table[1:]}
    for label in ("adam", "extra-adam+ortho"):
        assert rows["bilinear", label].endswith(" 1 RuntimeError: simulated crash")
    assert rows["mog-ring", "adam"].split()[-1] == "0"
    missing = load_sweep_data(tmp_path / "out").missing  # the report's missing runs, and why
    assert sorted(missing["run_id"]) == sorted(failed)
    assert set(missing["reason"]) == {"failed, deterministic: RuntimeError: simulated crash"}

    monkeypatch.setattr(ogan, "train", train)
    again = run(tiny_sweep, tmp_path / "out", jobs=1, population=1)  # one run: one ogan.train
    assert (again.skipped, again.ran, again.failed) == (TINY_RUNS - 2, 2, 0)
    assert not list(runs.glob("*.error.txt"))  # a successful run of that id removes its error
    assert "failed" in again.lines[-1] and "error" not in again.lines[-1].splitlines()[0]


def test_status_line_and_summary_table_name_the_metric_the_run_recorded(
    tmp_path, monkeypatch, sweep_file, vision_files
):
    # seed-mlp's metrics follow its data option: on MNIST it reports Inception FID, not digits_fid
    from ogan.workloads.digits import SeedMLP

    monkeypatch.setattr(SeedMLP, "evaluate", lambda self, G, D, gen: {"fid": 7.25})
    config = sweep_file(
        f"""
        [sweep]
        name = "mlp-mnist"
        seeds = [0]
        [[workload]]
        name = "seed-mlp"
        data = "mnist"
        data_dir = "{vision_files["data_dir"]}"
        fid_weights = "{vision_files["fid_weights"]}"
        batch_size = 8
        steps = 2
        eval_every = 2
        [[optimizer]]
        name = "adam"
        lr = 2e-4
        """
    )
    report = run(config, tmp_path / "out", jobs=1)
    assert report.lines[1].startswith("[1/1] seed-mlp adam lr=0.0002 seed=0: fid=7.25 (")
    table = report.lines[-1].splitlines()
    assert table[1].split()[:6] == ["seed-mlp", "adam", "1", "0", "fid", "7.25"]
    assert "digits_fid" not in "\n".join(report.lines)


def test_kill_9_mid_sweep_then_rerun_gives_the_tables_of_an_uninterrupted_sweep(
    tmp_path, sweep_file, untimed
):
    config = sweep_file(SLOW)
    killed = tmp_path / "killed"
    one = ("--population", "1")
    proc = subprocess.Popen(
        bench_cmd("run", str(config), "--out", str(killed), "--jobs", "2", "--device", "cpu", *one),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for_runs(killed / "slow" / "runs", proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and its workers
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    stored = len(store.scan(killed / "slow").finished)
    assert 1 <= stored < SLOW_RUNS

    resumed = subprocess.run(
        bench_cmd("run", str(config), "--out", str(killed), "--device", "cpu", *one),
        capture_output=True,
        text=True,
        timeout=patience(300),
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{stored} already finished, {SLOW_RUNS - stored} to run" in resumed.stdout
    assert not temporaries(killed / "slow" / "runs")

    whole = run(config, tmp_path / "whole", jobs=1, population=1)
    assert whole.ran == SLOW_RUNS
    for load in (bench.load, bench.load_traces, bench.load_runs):
        pd.testing.assert_frame_equal(
            untimed(load(killed)), untimed(load(tmp_path / "whole"))
        )


def _sigint_handler(_):
    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_local_workers_leave_ctrl_c_to_the_parent():
    # a worker idle between tasks when a terminal's Ctrl-C reaches the group would otherwise die
    # of KeyboardInterrupt outside any task and print a traceback (a busy machine showed it)
    from joblib import delayed

    from bench.runner import local_parallel

    # the parent as under a terminal (a suite started in the background inherits SIGINT ignored)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert set(local_parallel(2)(delayed(_sigint_handler)(i) for i in range(4))) == {True}
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the parent's stays
        assert set(local_parallel(1)(delayed(_sigint_handler)(i) for i in range(2))) == {False}
    finally:
        signal.signal(signal.SIGINT, inherited)


# a terminal's Ctrl-C: the group; `timeout`'s SIGINT: the runner, then the group, so the runner
# gets two, microseconds apart or, on a busy machine, milliseconds (bench.cli's
# drop_repeated_interrupts: the second is the same interrupt; without it the second landed in the
# cleanup or the interpreter's exit: tracebacks, or death by the signal, -2)
@pytest.mark.parametrize("to", ["runner", "process group", "runner and process group"])
def test_ctrl_c_stops_cleanly_keeps_finished_runs_and_exits_130(to, tmp_path, sweep_file):
    # 24 runs of ~0.5 s on two workers: SIGINT lands mid-sweep even on an idle machine
    config = sweep_file(SLOW.replace("seeds = [0, 1, 2, 3]", f"seeds = {list(range(12))}"))
    n_runs = 3 * SLOW_RUNS
    out = tmp_path / "out"
    # one run per process: in populations of four, both would land together, and the sweep end
    proc = subprocess.Popen(
        bench_cmd("run", str(config), "--out", str(out), "--jobs", "2", "--device", "cpu",
                  "--population", "1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # a suite started in the background (`make test &`) ignores SIGINT, and a child inherits
        # that: restore the default, under which Python raises KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        wait_for_runs(out / "slow" / "runs", proc)
        if to != "process group":
            proc.send_signal(signal.SIGINT)
        if to == "runner and process group":
            time.sleep(0.02)
        if to != "runner":
            os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=patience(60))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130
    assert "interrupted" in stdout and "run the same command again" in stdout
    assert "Traceback" not in stderr
    scan = store.scan(out / "slow")
    assert scan.problems == () and 1 <= len(scan.finished) < n_runs
    again = run(config, out, jobs=1)
    assert again.skipped == len(scan.finished) and again.skipped + again.ran == n_runs


def test_stale_temporary_files_of_a_killed_writer_are_removed(tmp_path, tiny_sweep):
    runs = tmp_path / "out" / "tiny" / "runs"
    runs.mkdir(parents=True)
    stale = runs / ".0123456789abcdef.parquet.x1y2.tmp"
    stale.write_bytes(b"half a file")
    run(tiny_sweep, tmp_path / "out", jobs=1, force=True)
    assert not stale.exists()


def test_a_second_run_on_the_same_sweep_directory_is_refused(tmp_path, tiny_sweep):
    sweep_dir = tmp_path / "out" / "tiny"
    sweep_dir.mkdir(parents=True)
    with open(sweep_dir / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(BenchError, match="another `bench run` is writing"):
            run(tiny_sweep, tmp_path / "out", jobs=1)


def test_dry_run_lists_the_runs_to_do_and_writes_nothing(tmp_path, tiny_sweep):
    report = run(tiny_sweep, tmp_path / "out", dry_run=True)
    assert report.ran == 0 and not (tmp_path / "out").exists()
    assert "12 runs, 0 already finished, 12 to run" in report.lines[0]
    assert len(report.lines) == 1 + TINY_RUNS
    assert {line.split()[0] for line in report.lines[1:]} == {
        spec.run_id for spec in report.sweep.specs
    }


def test_gpu_workers_each_hold_a_different_gpu_for_their_lifetime(tmp_path, monkeypatch):
    monkeypatch.setattr(worker, "_claimed_gpu", None)
    slots = worker.GpuSlots(str(tmp_path), 2)
    try:
        assert worker.gpu_device(slots) == "cuda:0"
        assert worker.gpu_device(slots) == "cuda:0"  # kept across runs
        code = (
            "from bench import worker; "
            f"s = worker.GpuSlots({str(tmp_path)!r}, {{n}}); print(worker.gpu_device(s))"
        )
        other = subprocess.run(
            [sys.executable, "-c", code.format(n=2)], capture_output=True, text=True, check=True
        )
        assert other.stdout.strip() == "cuda:1"
        full = subprocess.run(
            [sys.executable, "-c", code.format(n=1)], capture_output=True, text=True
        )
        assert "all 1 GPUs are held" in full.stderr
    finally:
        worker.release_gpu()


def test_the_worker_count_defaults_to_the_cpus_and_never_exceeds_the_runs():
    from joblib import cpu_count

    assert runner._n_jobs(None, 100, 0, None) == cpu_count()
    assert runner._n_jobs(None, 100, 3, None) == 3  # one worker per GPU
    assert runner._n_jobs(8, 3, 0, None) == 3
    assert runner._n_jobs(1, 3, 0, None) == 1


def test_a_transient_failure_is_said_to_be_one_and_only_it_gets_the_retry_advice(
    tmp_path, monkeypatch, tiny_sweep, capsys
):
    import ogan

    train = ogan.train

    def short_of_memory(workload, optimizer, **kw):
        if workload == "bilinear" and optimizer["lr"] == 1e-2 and kw["seed"] == 1:
            raise MemoryError("simulated")
        if workload == "bilinear" and optimizer["lr"] == 1e-2 and kw["seed"] == 0:
            raise TypeError("simulated")
        return train(workload, optimizer, **kw)

    monkeypatch.setattr(ogan, "train", short_of_memory)  # jobs=1 trains in this process
    report = run(tiny_sweep, tmp_path / "out", jobs=1, population=1)
    assert (report.failed, report.transient) == (4, 2)  # adam and extra-adam at 1e-2, seeds 0-1
    assert sum("FAILED, may not repeat (MemoryError: simulated)" in x for x in report.lines) == 2
    assert sum("FAILED, will repeat (TypeError: simulated)" in x for x in report.lines) == 2
    reasons = load_sweep_data(tmp_path / "out").missing["reason"].value_counts().to_dict()
    assert reasons == {"failed, transient: MemoryError: simulated": 2,
                       "failed, deterministic: TypeError: simulated": 2}  # fmt: skip
    assert failure_advice(4, 2) == (
        "bench run: 2 run(s) failed with an error that will repeat (see above; the report lists "
        "each missing run's reason): fix the spec or the code it names; 2 run(s) failed with an "
        "error that may not repeat (memory, disk, connection): run the same command again to "
        "retry them"
    )
    assert "run the same command again" not in failure_advice(3, 0)


REPEATED = """
import os, signal, sys, time
from bench.cli import REPEAT_S, drop_repeated_interrupts
signal.signal(signal.SIGINT, signal.default_int_handler)  # as Python starts when not ignoring it
drop_repeated_interrupts()
raised, expected, first = [], [], None
for wait in (0, 0, 0.001, REPEAT_S + 0.2):  # three together (timeout's), then one after the window
    time.sleep(wait)
    sent = time.monotonic()
    # what should happen, from when it was sent (a starved process may send late)
    expected.append(first is None or sent - first >= REPEAT_S)
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs here
        raised.append(False)
    except KeyboardInterrupt:
        raised.append(True)
        first = sent if expected[-1] else first
print(raised)
print(expected)
signal.signal(signal.SIGINT, signal.SIG_IGN)
drop_repeated_interrupts()  # a process that ignores SIGINT keeps ignoring it
print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)
"""


def test_sigints_sent_together_are_one_interrupt_and_a_later_one_is_another():
    done = subprocess.run([sys.executable, "-c", REPEATED], capture_output=True, text=True,
                          timeout=patience(60), cwd=Path(bench.__file__).parents[1])  # fmt: skip
    assert done.returncode == 0, done.stderr
    raised, expected, ignoring = done.stdout.split("\n")[:3]
    # the second and third, sent within 0.1 s of the first, are dropped (expected says so unless
    # a starved process sent them after the window); the fourth, 1.2 s on, raises again
    assert raised == expected and expected.startswith("[True") and expected.endswith("True]")
    assert ignoring == "True"


@pytest.mark.parametrize("during", [KeyboardInterrupt, ValueError])
def test_an_interrupt_that_breaks_joblibs_abort_is_still_an_interrupt(during, monkeypatch):
    # joblib 1.6's abort fails when the interrupt lands while loky starts its executor (seen
    # with SIGINT sent as the workers spawned): the runner reports the interrupt, not that
    def pool(n_jobs):
        def run(tasks):
            try:
                raise during
            except during:
                raise RuntimeError("cannot join thread before it is started") from None

        return run

    monkeypatch.setattr(runner, "local_parallel", pool)
    expected = KeyboardInterrupt if during is KeyboardInterrupt else RuntimeError
    with pytest.raises(expected):
        list(runner._outcomes([], 1, None, None))
