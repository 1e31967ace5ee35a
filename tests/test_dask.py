"""``--scheduler``: the same sweep on a real local Dask cluster (scheduler and workers as separate
processes on 127.0.0.1) gives results identical to the local run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from patience import patience

import bench
from bench import runner
from bench.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the nanny and its worker processes too
        try:
            proc.wait(timeout=patience(15))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """A scheduler and two single-threaded workers, each its own process group; free ports."""
    from distributed import Client

    tmp = tmp_path_factory.mktemp("cluster")
    info = tmp / "scheduler.json"
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> None:
        log = open(tmp / f"{len(procs)}.log", "w")  # noqa: SIM115 - lives as long as the process
        cmd = [sys.executable, "-m", *args]
        # the code under test, not whatever checkout the environment's editable install names
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path}
        procs.append(
            subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp, env=env,
                start_new_session=True,
            )
        )

    try:
        start(
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(info),
        )
        deadline = time.monotonic() + patience(60)
        while not (info.is_file() and info.read_text(encoding="utf-8").strip().endswith("}")):
            assert procs[0].poll() is None, (tmp / "0.log").read_text(encoding="utf-8")
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.1)
        address = json.loads(info.read_text(encoding="utf-8"))["address"]
        assert address.startswith("tcp://127.0.0.1:")
        start(
            "distributed.cli.dask_worker",
            address,
            "--nthreads",
            "1",
            "--nworkers",
            "2",
            "--host",
            "127.0.0.1",
            "--no-dashboard",
            "--death-timeout",
            str(round(patience(60))),
        )
        with Client(address, timeout=patience(30)) as client:
            client.wait_for_workers(2, timeout=patience(60))
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)


def test_a_sweep_on_a_local_dask_cluster_equals_the_local_run_bit_for_bit(
    scheduler, tmp_path, capsys, tiny_sweep, untimed
):
    from distributed import Client

    common = ["run", str(tiny_sweep), "--device", "cpu"]
    assert main([*common, "--out", str(tmp_path / "cluster"), "--scheduler", scheduler]) == 0
    assert main([*common, "--out", str(tmp_path / "local"), "--jobs", "2"]) == 0

    with Client(scheduler) as client:  # the workers, not this process, trained the runs
        assert set(client.run(lambda: "ogan.game.train" in sys.modules).values()) == {True}
    for load in (bench.load, bench.load_traces, bench.load_runs):
        cluster = untimed(load(tmp_path / "cluster"))
        local = untimed(load(tmp_path / "local"))
        assert len(cluster) > 0
        pd.testing.assert_frame_equal(cluster, local, check_exact=True)
    # the resumed sweep on the cluster has nothing left to do
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "cluster"), "--scheduler", scheduler]) == 0
    n_runs = len(bench.load_runs(tmp_path / "cluster"))
    assert f"{n_runs} already finished, 0 to run" in capsys.readouterr().out


def test_gpu_runs_need_workers_with_a_gpu_resource(scheduler, tmp_path, capsys, tiny_sweep):
    argv = [
        "run",
        str(tiny_sweep),
        "--out",
        str(tmp_path / "out"),
        "--scheduler",
        scheduler,
        "--device",
        "cuda",
    ]
    assert main(argv) == 2
    assert "no Dask worker" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_unreachable_scheduler_is_one_line_exit_2(tmp_path, capsys, monkeypatch, tiny_sweep):
    monkeypatch.setattr(runner, "DASK_CONNECT_TIMEOUT_S", 1)
    out = tmp_path / "out"
    argv = ["run", str(tiny_sweep), "--out", str(out), "--scheduler", "tcp://127.0.0.1:9"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err
    assert not Path(out).exists()


def test_a_module_the_workers_cannot_import_is_one_error_before_the_sweep_starts(
    scheduler, tmp_path, capsys, monkeypatch
):
    # importable here (the examples directory is on this process's path), not on the workers
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "examples"))
    config = tmp_path / "user.toml"
    config.write_text(
        '[sweep]\nseeds = [0]\nsteps = 2\neval_every = 2\n[[workload]]\nname = "moons:TwoMoons"\n'
        '[[optimizer]]\nname = "adam"\nlr = 1e-3\n'
    )
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "--scheduler", scheduler]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "Dask worker tcp://127.0.0.1:" in err and "cannot import module 'moons'" in err
    assert not out.exists()
