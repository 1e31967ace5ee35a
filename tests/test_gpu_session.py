"""scripts/gpu-session.sh, the prepared commands of a session lent a GPU, run here on the CPU
with tiny sweeps under the study's names, so that the script cannot rot between leases: a part
of a study packs its finished runs under $OUT and they load back here; the pilot projects a
study's time; a bad command is a usage error."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from patience import patience

import bench
from bench import store

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


# What the GPU machine's python lacks (the device tool's package list: no dask, no pytorch-fid;
# its python is 3.12 with torch 2.11, which the README's rehearsal covers). Every command here
# runs with them absent, as there: None in sys.modules makes `import` fail and
# importlib.util.find_spec say "not found".
ABSENT_ON_THE_DEVICE = ("dask", "distributed", "pytorch_fid")


def _device_pythonpath(tmp_path: Path) -> str:
    site = tmp_path / "device-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(
        f"import sys\nfor name in {ABSENT_ON_THE_DEVICE!r}:\n    sys.modules[name] = None\n"
    )
    return os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))


def test_what_the_device_lacks_is_absent_from_the_commands_here(tmp_path):
    env = {**os.environ, "PYTHONPATH": _device_pythonpath(tmp_path)}
    for name in ABSENT_ON_THE_DEVICE:  # installed here (the project's dependencies), absent there
        code = f"import importlib.util as u; assert u.find_spec({name!r}) is None; import {name}"
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert f"ModuleNotFoundError: import of {name} halted" in done.stderr, done.stderr


def _session(tmp_path: Path, *args: str, sweep: str = TINY, budget_s: int | None = None,
             preexec_fn=None) -> subprocess.CompletedProcess:  # fmt: skip
    """``gpu-session.sh ARGS`` on the CPU with ``sweep`` as the study (and the seeds' sweep)."""
    sweeps, out = tmp_path / "sweeps", tmp_path / "out"
    sweeps.mkdir(exist_ok=True)
    out.mkdir(exist_ok=True)
    (sweeps / "unrolled-ring-gpu.toml").write_text(sweep)
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "GPU_SESSION_DEVICE": "cpu",
           "GPU_SESSION_SWEEPS": str(sweeps), "GPU_SESSION_RESULTS": str(tmp_path / "results"),
           "GPU_PILOT_STEPS": "4", "PYTHONPATH": _device_pythonpath(tmp_path)}  # fmt: skip
    if budget_s is not None:
        env["GPU_BUDGET_S"] = str(budget_s)
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=patience(300), preexec_fn=preexec_fn)  # fmt: skip


def test_a_study_part_past_its_budget_is_stopped_by_sigint_also_when_started_ignoring_it(tmp_path):
    # a remote runner may start the command in the background, where SIGINT is ignored and
    # inherited: timeout's SIGINT must still stop bench run, which stores what finished (exit
    # 124: timeout stopped it), not leave it to SIGKILL 30 s later (137) or the sweep's end
    long = TINY.replace("steps = 40", "steps = 10000000")
    assert long != TINY
    done = _session(tmp_path, "study", "1", "1", sweep=long, budget_s=3,
                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # fmt: skip
    # (whether bench run was still importing at 3 s, and so says nothing, is the machine's speed)
    assert done.returncode == 124, done.stdout + done.stderr
    assert "no finished run of unrolled-ring-gpu to pack" in done.stdout


def test_a_study_part_packs_its_finished_runs_under_out_and_they_load_back(tmp_path):
    done = _session(tmp_path, "study", "2", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    packed = tmp_path / "out" / "unrolled-ring-gpu-2of2.tar.gz"
    assert "packed 3 runs of unrolled-ring-gpu" in done.stdout
    assert (tmp_path / "out" / "unrolled-ring-gpu-2of2.log").is_file()
    back = tmp_path / "back"
    names = store.unpack(packed, back)
    assert not [n for n in names if "checkpoint" in n]
    runs = bench.load_runs(back / "unrolled-ring-gpu")
    assert sorted(runs["seed"]) == [1000, 1001, 1002] and set(runs["optimizer"]) == {"adam+ortho"}
    assert set(bench.load_traces(back / "unrolled-ring-gpu")["step"]) == {10, 20, 30, 40}


def test_the_pilot_projects_each_optimizers_time_and_writes_its_json(tmp_path):
    done = _session(tmp_path, "pilot")
    assert done.returncode == 0, done.stdout + done.stderr
    pilot = json.loads((tmp_path / "out" / "pilot.json").read_text(encoding="utf-8"))["pilot"]
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


COUNTER = """
[sweep]
name = "unrolled-ring-counter"
seeds = [0, 1]
steps = 20
eval_every = 10

[[workload]]
name = "mog-ring"
arch = "unrolled"
batch_size = 32
streams = "counter"

[[optimizer]]
name = "adam"
lr = 1e-3
"""


def _lease(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "sweeps").mkdir(exist_ok=True)
    (tmp_path / "sweeps" / "unrolled-ring-counter.toml").write_text(COUNTER)
    out = tmp_path / "out"
    if out.exists():  # the device tool empties $OUT before each command
        shutil.rmtree(out)
    os.environ["LEASE_BLOCK"] = "2"
    try:
        return _session(tmp_path, "lease", *args)
    finally:
        del os.environ["LEASE_BLOCK"]


def _untar(paths, into: Path) -> None:
    for path in paths:
        assert not [n for n in store.unpack(path, into) if "checkpoint" in n]


def test_a_lease_runs_the_study_in_seed_blocks_then_the_seeds_and_packs_each(tmp_path):
    done = _lease(tmp_path, "300", "gate", "study", "seeds")
    assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / "out"
    lease = json.loads((out / "lease.json").read_text(encoding="utf-8"))
    gate, study, seeds = lease["steps"]
    assert gate["passed"] and [c["mode"] for c in gate["cases"]] == ["eager", "eager"]
    assert all(c["reason"].startswith("device cpu") for c in gate["cases"])
    # 3 seeds in blocks of 2: seed 1000, then 1001-1002; every optimizer in each block
    assert [(b["seeds"], b["runs"], b["expected"], [(c["args"], c["rc"]) for c in b["commands"]])
            for b in study["blocks"]] == [
        ([1000, 1000], 2, 2, [("--seed-part 1/2", 0)]),
        ([1001, 1002], 4, 4, [("--seed-part 2/2", 0)]),
    ]  # fmt: skip
    assert seeds["runs"] == seeds["expected"] == 2
    assert (out / "lease.log").read_text(encoding="utf-8").count("bench run") == 3
    back = tmp_path / "back"
    _untar([out / "unrolled-ring-gpu-1.tar.gz"], back)
    first = bench.load_runs(back / "unrolled-ring-gpu")
    assert sorted(first.groupby("optimizer")["seed"].apply(sorted).tolist()) == [[1000]] * 2
    _untar([out / "unrolled-ring-gpu-2.tar.gz", out / "unrolled-ring-counter.tar.gz"], back)
    assert len(bench.load_runs(back / "unrolled-ring-gpu")) == 6
    assert not bench.missing(back / "unrolled-ring-gpu")
    assert len(bench.load_runs(back / "unrolled-ring-counter")) == 2
    shutil.copytree(out, tmp_path / "lease1")

    again = _lease(tmp_path, "300", "gate", "study", "seeds")  # the same warm machine
    assert again.returncode == 0, again.stdout + again.stderr
    lease = json.loads((out / "lease.json").read_text(encoding="utf-8"))
    assert lease["steps"][0]["cached"] is True
    assert "bench run" not in (out / "lease.log").read_text(encoding="utf-8")  # nothing left to run
    assert [b["runs"] for b in lease["steps"][1]["blocks"]] == [2, 4]
    assert {p.name for p in out.iterdir()} == {  # repacked: $OUT starts empty each command
        "lease.json", "lease.log", "unrolled-ring-gpu-1.tar.gz", "unrolled-ring-gpu-2.tar.gz",
        "unrolled-ring-counter.tar.gz"}  # fmt: skip

    # back here: both leases' files made into the report in one command
    here = tmp_path / "here"
    _untar([out / "unrolled-ring-counter.tar.gz"], here)  # stands in for the CPU's seeds 0-9
    done = _ingest(here, tmp_path / "lease1", out)
    assert done.returncode == 0, done.stdout + done.stderr
    report = here / "unrolled-ring-gpu" / "report"
    assert (report / "index.html").is_file() and len(pd.read_csv(report / "runs.csv")) == 6
    assert len(bench.load_runs(here / "gpu" / "unrolled-ring-counter")) == 2
    agreement = pd.read_csv(report / "agreement-cpu-gpu.csv")  # the same runs on both sides
    assert len(agreement) > 0
    assert (agreement["verdict"] == "no difference detected").all(), agreement.to_string()
    time = pd.read_csv(report / "device_time.csv")
    assert time["lease"].tolist() == [1] * 5 + [2] * 3  # 3 steps each, 2 block commands at first
    first = time[time["lease"] == 1]
    assert first["step"].tolist() == ["gate", "study", "study --seed-part 1/2",
                                      "study --seed-part 2/2", "seeds"]  # fmt: skip
    assert first["seeds"].fillna("").tolist() == ["", "", "1000-1000", "1001-1002", ""]
    assert set(time["outcome"]) == {"done", "exit 0"}
    assert "lease 2: started" in (report / "device-time.md").read_text(encoding="utf-8")
    assert (report / "lease-1.json").is_file() and (report / "lease-2.json").is_file()
    assert "skipped the verdicts beside unrolled-ring:" in done.stdout
    # with a CPU report beside it (here: its own), the verdicts are compared; again is the same
    shutil.copytree(report, here / "unrolled-ring" / "report")
    runs = (report / "runs.csv").read_text(encoding="utf-8")
    done = _ingest(here, tmp_path / "lease1", out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (report / "runs.csv").read_text(encoding="utf-8") == runs
    verdicts = (report / "verdicts-vs-unrolled-ring.txt").read_text(encoding="utf-8")
    assert "0 differ, 0 flipped" in verdicts


def _ingest(results: Path, *folders: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "scripts" / "gpu_ingest.py"), *map(str, folders)]
    return subprocess.run(cmd, env={**os.environ, "RESULTS": str(results)}, capture_output=True,
                          text=True, timeout=patience(300))  # fmt: skip


def test_ingest_refuses_what_is_not_a_lease_and_writes_nothing(tmp_path):
    results = tmp_path / "results"
    done = _ingest(results, tmp_path / "nowhere")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "no such folder" in done.stderr
    (tmp_path / "empty").mkdir()
    done = _ingest(results, tmp_path / "empty")
    assert done.returncode == 2 and "none of a lease's files" in done.stderr
    evil = tmp_path / "evil"
    evil.mkdir()
    (tmp_path / "payload").write_text("x")
    with tarfile.open(evil / "unrolled-ring-gpu-1.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "payload", "unrolled-ring-gpu/../../payload")
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "unrolled-ring-gpu-1.tar.gz").write_bytes(
        (evil / "unrolled-ring-gpu-1.tar.gz").read_bytes()[:20])
    (tmp_path / "garbled").mkdir()
    (tmp_path / "garbled" / "lease.json").write_text('{"steps": ')
    for folder, says in ((evil, "is not a file under unrolled-ring-gpu/"),
                         (tmp_path / "cut", "not a whole archive"),
                         (tmp_path / "garbled", "not a lease record")):  # fmt: skip
        done = _ingest(results, folder)
        assert done.returncode == 2 and says in done.stderr, done.stderr
    assert not results.exists()
    done = _ingest(results, tmp_path / "nowhere", evil)  # a bad folder among good ones
    assert done.returncode == 2 and not results.exists()
    assert _ingest(results).returncode == 2


def test_ingest_copies_each_gpu_models_check_under_its_name_with_its_summary(tmp_path):
    record = {"machine": {"torch": "2.11.0+cu130"}, "triton": "3.6.0", "complete": True,
              "seconds": 200.0, "graph": {"timings": {"steps": 30, "cases": [],
                                                      "targets": {"pacgan P=10 <= 3 ms": 2.5}}}}
    first, second = tmp_path / "lease1", tmp_path / "lease2"
    for folder, gpu, ms in ((first, "NVIDIA H100 80GB HBM3", 2.5), (second, "NVIDIA H200", 2.0),
                            (second, "NVIDIA H100 80GB HBM3", 2.75)):  # fmt: skip
        folder.mkdir(exist_ok=True)
        targets = {"pacgan P=10 <= 3 ms": ms}
        rec = {**record, "gpu": gpu, "graph": {"timings": {**record["graph"]["timings"],
                                                           "targets": targets}}}  # fmt: skip
        (folder / f"{gpu.split()[1].lower()}-cuda.json").write_text(json.dumps(rec))
    results = tmp_path / "results"
    done = _ingest(results, first, second)
    assert done.returncode == 0, done.stdout + done.stderr
    perf = results / "perf"
    assert sorted(p.name for p in perf.iterdir()) == [
        "h100-cuda.json", "h100-cuda.md", "h200-cuda.json", "h200-cuda.md"]
    h100 = (perf / "h100-cuda.md").read_text(encoding="utf-8")  # the later lease's H100 check
    assert "| pacgan P=10 <= 3 ms | 2.75 | yes |" in h100
    assert "The targets were set on one H200; these figures are from NVIDIA H100" in h100
    assert "set on one" not in (perf / "h200-cuda.md").read_text(encoding="utf-8")


def test_a_lease_with_too_little_time_left_starts_nothing(tmp_path):
    done = _lease(tmp_path, "40")  # 40 s, less the 20 kept back, is under a step's 30
    assert done.returncode == 0, done.stdout + done.stderr
    steps = json.loads((tmp_path / "out" / "lease.json").read_text(encoding="utf-8"))["steps"]
    assert [s["step"] for s in steps] == ["gate", "study", "seeds", "check"]
    assert all(s["skipped"].endswith("s left") for s in steps)
    assert not (tmp_path / "results").exists()


def _lease_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_lease", ROOT / "scripts" / "gpu_lease.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_failed_gate_skips_the_study_and_the_lease_fails(tmp_path, monkeypatch):
    from bench.perf import cuda

    gpu_lease = _lease_module()
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "unrolled-ring-gpu.toml").write_text(TINY)
    for name, value in {"OUT": tmp_path, "DEVICE": "cpu", "SWEEPS": tmp_path / "sweeps",
                        "RESULTS": tmp_path / "results"}.items():  # fmt: skip
        monkeypatch.setenv(name, str(value))
    cases = [{"optimizer": "adam", "mode": "graph", "rows_error": 0.0, "params_error": 0.0,
              "state_differs": []},
             {"optimizer": "adam+ortho", "mode": "failed", "reason": "RuntimeError: capture"}]
    monkeypatch.setattr(cuda, "replay_sweep", lambda sweep: {"passed": False, "cases": cases})
    lease = gpu_lease.Lease(600, ["gate"])
    assert lease() == 0  # a capture that failed: that configuration trains eagerly, last
    assert lease.modes == {"adam": "graph", "adam+ortho": "failed"}

    cases[0]["rows_error"] = 3.0  # a replay that is not the eager step's maths
    (tmp_path / "results" / "lease-gate.json").unlink()
    assert gpu_lease.Lease(600, ["gate", "study", "seeds"])() == 1
    steps = json.loads((tmp_path / "lease.json").read_text(encoding="utf-8"))["steps"]
    assert steps[0]["gate_passed"] is False
    assert [s["skipped"] for s in steps[1:]] == [
        "the gate failed: replay differs from eager, or it raised"] * 2

    def broken(sweep):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(cuda, "replay_sweep", broken)  # a gate that raises: recorded, lease on
    (tmp_path / "results" / "lease-gate.json").unlink()
    assert gpu_lease.Lease(600, ["gate", "study"])() == 1
    steps = json.loads((tmp_path / "lease.json").read_text(encoding="utf-8"))["steps"]
    assert steps[0]["error"] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert steps[1]["skipped"].startswith("the gate failed")


def test_a_step_past_its_deadline_is_interrupted_and_says_so(tmp_path, monkeypatch):
    gpu_lease = _lease_module()
    monkeypatch.setenv("OUT", str(tmp_path))
    monkeypatch.setattr(gpu_lease, "GRACE_S", patience(30))
    lease = gpu_lease.Lease(600, [])
    code = "import time\ntry:\n    time.sleep(600)\nexcept KeyboardInterrupt:\n    exit(7)"
    # as if the lease had been started in the background (`cmd &`): SIGINT ignored, and inherited
    # by its steps unless the lease restores it
    ignoring = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        rc, stopped = lease.run([sys.executable, "-c", code], 2)
    finally:
        signal.signal(signal.SIGINT, ignoring)
    assert stopped and rc in (7, -2)  # SIGINT before Python set its handler: killed by it
    rc, stopped = lease.run([sys.executable, "-c", "pass"], patience(60))
    assert (rc, stopped) == (0, False)


def test_a_bad_lease_is_a_usage_error(tmp_path):
    done = _lease(tmp_path, "300", "nonsense")
    assert done.returncode == 2 and "usage: gpu_lease.py SECONDS" in done.stdout


def test_a_configuration_that_did_not_capture_runs_after_those_that_did():
    block_commands = _lease_module().block_commands
    labels = ["adam", "adam+ortho", "adam+surgery"]
    graph = {label: "graph" for label in labels}
    assert block_commands(labels, graph, 1, 2) == [["--seed-part", "1/2"]]
    assert block_commands(labels, {}, 2, 2) == [["--seed-part", "2/2"]]  # no gate, or a CPU
    assert block_commands(labels, {**graph, "adam+ortho": "failed"}, 2, 2) == [
        ["--part", "1/3", "--seed-part", "2/2"], ["--part", "3/3", "--seed-part", "2/2"],
        ["--part", "2/3", "--seed-part", "2/2"],
    ]  # fmt: skip


@pytest.mark.parametrize("pep706", [True, False], ids=["tarfile-filter", "python-3.11.2"])
def test_unpack_refuses_a_member_outside_its_folder_with_or_without_tarfiles_filter(
    tmp_path, monkeypatch, pep706
):
    """store.unpack (what gpu_ingest.py unpacks lease archives with) on Pythons with tarfile's
    filter="data" and on 3.11 releases before 3.11.4, which lack it (Debian 12's 3.11.2)."""
    if not pep706:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
        assert not hasattr(tarfile, "data_filter")
    (tmp_path / "run.json").write_text("{}")
    good, evil = tmp_path / "good.tar.gz", tmp_path / "evil.tar.gz"
    with tarfile.open(good, "w:gz") as tar:
        tar.add(tmp_path / "run.json", "sweep/runs/run.json")
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(tmp_path / "run.json", "sweep/../../escaped.json")
    into = tmp_path / "a" / "results"
    assert store.unpack(good, into) == ["sweep/runs/run.json"]
    assert (into / "sweep" / "runs" / "run.json").read_text(encoding="utf-8") == "{}"
    with pytest.raises(tarfile.TarError):
        store.unpack(evil, into)
    assert not (tmp_path / "a" / "escaped.json").exists()
    assert not (tmp_path / "escaped.json").exists()
