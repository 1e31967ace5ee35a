"""Checkpoints inside a run: a resumed run is the uninterrupted one bit for bit (timing aside)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import ogan
from bench import runner, store
from bench.cli import main
from bench.config import parse_sweep
from ogan.errors import ConfigError
from ogan.game import checkpoint as ckpt
from ogan.game import loop


def same(a: ogan.TrainResult, b: ogan.TrainResult) -> None:
    """Two results equal bit for bit, the clock readings aside."""
    for table, clock in (("history", "wall_time"), ("trace", "step_time")):
        x, y = (getattr(r, table).drop(columns=clock) for r in (a, b))
        pd.testing.assert_frame_equal(x, y, check_exact=True)
    untimed = [{k: v for k, v in r.summary.items() if "time" not in k} for r in (a, b)]
    for s in untimed:
        s.get("population", {}).pop("step_time", None)
    assert repr(untimed[0]) == repr(untimed[1])  # NaN metrics are equal too
    assert a.config == b.config


@pytest.fixture
def steps_taken(monkeypatch) -> list[int]:
    """The step indices every game steps through from now on (one-run and population games)."""
    taken: list[int] = []
    for cls in (loop.One, ogan.game.population.PopulationGame):
        original = cls.step

        def step(self, index, original=original):
            taken.append(index)
            return original(self, index)

        monkeypatch.setattr(cls, "step", step)
    return taken


CASES = {
    "adam": ("mog-ring", {"name": "adam", "lr": 1e-3}, {}),
    "alternating+surgery": ("mog-ring", {"name": "adam", "lr": 1e-3, "surgery": True},
                            {"scheme": "alternating", "d_steps": 2}),
    "ortho": ("mog-ring", {"name": "sgd", "lr": 1e-2, "momentum": 0.9, "ortho": "weights"}, {}),
    "extra-adam": ("mog-ring", {"name": "extra-adam", "lr": 1e-3}, {}),
    "past-extra-adam": ("mog-ring", {"name": "past-extra-adam", "lr": 1e-3}, {}),
    "lookahead": ("mog-ring", {"name": "lookahead", "lr": 1e-3}, {}),  # k=5: resumed mid-cycle
    "optimistic-adam": ("mog-ring", {"name": "optimistic-adam", "lr": 1e-3}, {}),
    "muon": ("mog-ring", {"name": "muon", "lr": 1e-3}, {}),
    "pacgan (BatchNorm)": ("mog-ring", {"name": "adam", "lr": 1e-3},
                           {"arch": "pacgan", "batch_size": 16}),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_a_run_resumed_from_its_checkpoint_equals_the_uninterrupted_run(
    case, tmp_path, steps_taken
):
    workload, optimizer, options = CASES[case]
    kw = dict(steps=24, seed=3, eval_every=10, device="cpu", threads=1, **options)
    whole = ogan.train(workload, optimizer, **kw)
    path = tmp_path / "run.pt"
    # writes at steps 7, 14, 21 and runs on to 24: the file holds step 21's state
    first = ogan.train(workload, optimizer, checkpoint=path, checkpoint_every=7, **kw)
    same(first, whole)  # writing checkpoints changes nothing
    steps_taken.clear()
    resumed = ogan.train(workload, optimizer, checkpoint=path, checkpoint_every=7, **kw)
    assert steps_taken == [21, 22, 23]  # it did resume: only the steps after the checkpoint
    same(resumed, whole)


def test_a_population_resumes_with_its_diverged_member_stopped(tmp_path, steps_taken):
    # sgd lr=10 on the bilinear game: seed 1 diverges at step 20, seed 0 at 21
    kw = dict(seeds=[0, 1], steps=30, eval_every=10, device="cpu", threads=1)
    whole = ogan.train_population("bilinear", {"name": "sgd", "lr": 10.0}, **kw)
    assert [r.summary["diverged_at"] for r in whole] == [21, 20]
    path = tmp_path / "population.pt"
    ogan.train_population("bilinear", {"name": "sgd", "lr": 10.0}, checkpoint=path,
                          checkpoint_every=20, **kw)  # fmt: skip
    steps_taken.clear()
    resumed = ogan.train_population("bilinear", {"name": "sgd", "lr": 10.0}, checkpoint=path,
                                    checkpoint_every=20, **kw)  # fmt: skip
    assert steps_taken == [20]  # seed 0 alone, from the checkpoint after seed 1 stopped
    for a, b in zip(resumed, whole):
        same(a, b)


def test_a_population_with_ortho_resumes_bit_for_bit(tmp_path, steps_taken):
    optimizer = {"name": "adam", "lr": 1e-3, "ortho": "weights"}
    kw = dict(seeds=[4, 2], steps=12, eval_every=5, device="cpu", threads=1, hidden=8)
    whole = ogan.train_population("mog-ring", optimizer, **kw)
    path = tmp_path / "population.pt"
    ogan.train_population("mog-ring", optimizer, checkpoint=path, checkpoint_every=4, **kw)
    steps_taken.clear()
    resumed = ogan.train_population("mog-ring", optimizer, checkpoint=path, **kw)
    assert steps_taken == [8, 9, 10, 11]
    for a, b in zip(resumed, whole):
        same(a, b)


def test_checkpoints_are_written_by_default_only_in_long_runs():
    assert ckpt.plan("x.pt", None, ckpt.DEFAULT_FROM).every is None
    assert ckpt.plan("x.pt", None, ckpt.DEFAULT_FROM + 1).every == ckpt.DEFAULT_EVERY
    assert ckpt.plan("x.pt", 3, 10).every == 3
    assert ckpt.plan(None, None, 10**6) is None
    plan = ckpt.plan("x.pt", 5, 20)
    assert [s for s in range(1, 21) if ckpt.due(plan, s - 1, s, 20)] == [5, 10, 15]
    # blocks of 6 steps between read-backs: after the block that reached 5, 10, 15
    assert [s for s in (6, 12, 18, 20) if ckpt.due(plan, s - 6 if s < 20 else 18, s, 20)] == [
        6, 12, 18
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"checkpoint_every": 0, "checkpoint": "x.pt"}, "checkpoint_every must be an integer"),
        ({"checkpoint_every": 5}, "checkpoint_every needs checkpoint=PATH"),
    ],
)
def test_bad_checkpoint_options_are_one_line_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ogan.train("bilinear", "sgd", steps=2, device="cpu", **kwargs)


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    path = tmp_path / "run.pt"
    kw = dict(steps=4, eval_every=2, device="cpu", checkpoint=path, checkpoint_every=2)
    ogan.train("bilinear", "sgd", seed=0, **kw)
    with pytest.raises(ConfigError, match="belongs to another run"):
        ogan.train("bilinear", "sgd", seed=1, **kw)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read checkpoint"):
        ogan.train("bilinear", "sgd", seed=0, **kw)


# -- bench run ------------------------------------------------------------------------------

# ~600 population steps of a few ms: the first checkpoint lands within a second, the run goes on
# for seconds after it, so the kill lands in the middle.
LONG = """
[sweep]
name = "long"
seeds = [0, 1]
steps = 600
eval_every = 200
checkpoint_every = 50

[[workload]]
name = "mog-ring"
hidden = 8
batch_size = 32

[[optimizer]]
name = "adam"
lr = 1e-3
"""


def test_checkpoint_every_does_not_change_run_ids():
    with_key = parse_sweep(LONG)
    without = parse_sweep(LONG.replace("checkpoint_every = 50\n", ""))
    assert with_key.checkpoint_every == 50 and without.checkpoint_every is None
    assert [s.run_id for s in with_key.specs] == [s.run_id for s in without.specs]


def test_a_bad_checkpoint_every_is_a_one_line_error_with_exit_2(sweep_file, capsys):
    config = sweep_file(LONG.replace("checkpoint_every = 50", "checkpoint_every = 0"))
    assert main(["run", str(config), "--device", "cpu", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "checkpoint_every must be an integer >= 1, got 0" in err and "\n" not in err


def test_kill_9_after_a_checkpoint_then_rerun_equals_the_uninterrupted_run(
    tmp_path, sweep_file, untimed
):
    config = sweep_file(LONG)
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "bench", "run", str(config), "--out", str(killed),
           "--device", "cpu", "--jobs", "1"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    checkpoints = killed / "long" / store.CHECKPOINTS
    try:
        while not list(checkpoints.glob("*.pt")):  # poll for the file: no guess at speeds
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and its worker
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not store.scan(killed / "long").finished  # killed before the population was stored
    saved = torch.load(next(checkpoints.glob("*.pt")), weights_only=False)["state"]
    assert saved["step"] % 50 == 0 and 0 < saved["step"] < 600

    report = runner.run_sweep(config, out=killed, device="cpu", jobs=1, echo=lambda _: None)
    assert (report.ran, report.failed) == (2, 0)
    assert not list(checkpoints.glob("*"))  # removed once the runs are stored
    whole = runner.run_sweep(config, out=tmp_path / "whole", device="cpu", jobs=1,
                             echo=lambda _: None)  # fmt: skip
    assert whole.ran == 2
    for table in (store.load, store.load_traces):
        pd.testing.assert_frame_equal(
            untimed(table(killed)), untimed(table(tmp_path / "whole")), check_exact=True
        )


def test_force_removes_the_checkpoints_an_earlier_attempt_left(tmp_path, sweep_file):
    config = sweep_file(LONG.replace("steps = 600", "steps = 4").replace("= 50", "= 2"))
    stale = tmp_path / "out" / "long" / store.CHECKPOINTS / "0123456789abcdef.pt"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by an earlier attempt")
    runner.run_sweep(config, out=tmp_path / "out", device="cpu", jobs=1, echo=lambda _: None)
    assert stale.exists()  # a plain rerun leaves it (it may be a population's resume point)
    report = runner.run_sweep(config, out=tmp_path / "out", device="cpu", jobs=1, force=True,
                              echo=lambda _: None)  # fmt: skip
    assert report.ran == 2 and not list(stale.parent.iterdir())
