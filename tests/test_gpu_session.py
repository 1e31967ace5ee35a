"""scripts/gpu-session.sh, the prepared commands of a session lent a GPU, run here on the CPU
with tiny sweeps under the study's names, so that the script cannot rot between leases: a part
of a study packs its finished runs under $OUT and they load back here; the pilot projects a
study's time; a bad command is a usage error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from patience import patience

import bench

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu-session.sh"
TINY = """
[sweep]
name = "unrolled-ring-gpu"
seeds = [1000, 1001, 1002]
steps = 40
eval_every = 20
trace_every = 10

[[workload]]
name = "mog-ring"
arch = "unrolled"
batch_size = 32
streams = "counter"

[[optimizer]]
name = "adam"
lr = 1e-3

[[optimizer]]
name = "adam"
ortho = "weights"
lr = 1e-3
"""

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _session(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    sweeps, out = tmp_path / "sweeps", tmp_path / "out"
    sweeps.mkdir(exist_ok=True)
    out.mkdir(exist_ok=True)
    (sweeps / "unrolled-ring-gpu.toml").write_text(TINY)
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "GPU_SESSION_DEVICE": "cpu",
           "GPU_SESSION_SWEEPS": str(sweeps), "GPU_SESSION_RESULTS": str(tmp_path / "results"),
           "GPU_PILOT_STEPS": "4"}  # fmt: skip
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=patience(300))  # fmt: skip


def test_a_study_part_packs_its_finished_runs_under_out_and_they_load_back(tmp_path):
    done = _session(tmp_path, "study", "2", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    packed = tmp_path / "out" / "unrolled-ring-gpu-2of2.tar.gz"
    assert "packed 3 runs of unrolled-ring-gpu" in done.stdout
    assert (tmp_path / "out" / "unrolled-ring-gpu-2of2.log").is_file()
    back = tmp_path / "back"
    with tarfile.open(packed) as tar:
        names = tar.getnames()
        assert not [n for n in names if "checkpoint" in n]
        tar.extractall(back, filter="data")
    runs = bench.load_runs(back / "unrolled-ring-gpu")
    assert sorted(runs["seed"]) == [1000, 1001, 1002] and set(runs["optimizer"]) == {"adam+ortho"}
    assert set(bench.load_traces(back / "unrolled-ring-gpu")["step"]) == {10, 20, 30, 40}


def test_the_pilot_projects_each_optimizers_time_and_writes_its_json(tmp_path):
    done = _session(tmp_path, "pilot")
    assert done.returncode == 0, done.stdout + done.stderr
    pilot = json.loads((tmp_path / "out" / "pilot.json").read_text())["pilot"]
    assert [p["optimizer"] for p in pilot] == ["adam", "adam+ortho"]
    for p in pilot:
        assert p["members"] == 3 and p["steps"] == 4 and p["execution"]["mode"] == "eager"
        # 40 steps and 3 evaluations (0, 20, 40) from 4 steps and 3 evaluations (0, 2, 4)
        expected = (p["seconds"] - p["eval_seconds"]) * 40 / 4 + p["eval_seconds"]
        assert p["projected_s"] == pytest.approx(expected)
    assert "projected whole study" in done.stdout


@pytest.mark.parametrize("args", [[], ["study"], ["nonsense"]])
def test_a_bad_command_is_a_usage_error(tmp_path, args):
    done = _session(tmp_path, *args)
    assert done.returncode != 0
    assert not list((tmp_path / "out").iterdir())
