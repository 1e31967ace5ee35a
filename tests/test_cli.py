"""``python -m bench``: commands, dispatch, and bad input as one line on stderr with exit code 2."""

from __future__ import annotations

import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
from patience import patience

from bench.cli import main
from ogan import optim, workloads
from ogan.errors import MissingDataError
from ogan.workloads.base import Metric, Workload

GOOD = """
[sweep]
name = "cli"
seeds = [0]
[[workload]]
name = "bilinear"
steps = 20
eval_every = 10
[[optimizer]]
name = "adam"
lr = [1e-3, 1e-2]
"""


@dataclass(frozen=True)
class StubOptions:
    fid_weights: str = "/nonexistent/pt_inception-2015-12-05-6726825d.pth"


class StubWorkload(Workload):
    """Stands in for an image workload whose FID weights are not on disk."""

    name = "stub-fid"
    description = "a workload whose FID weights are missing"
    metrics = {"fid": Metric("FID")}
    primary_metric = "fid"
    target = 1.0
    Options = StubOptions

    @classmethod
    def check_options(cls, options: StubOptions) -> None:
        if not Path(options.fid_weights).is_file():
            raise MissingDataError(f"FID weights not found: expected {options.fid_weights}")

    def build_players(self):
        raise NotImplementedError

    def sample(self, batch_size, generator):
        raise NotImplementedError

    def evaluate(self, G, D, generator):
        raise NotImplementedError


BAD = {
    "unknown workload": ('name = "nope"', 'name = "adam"\nlr = 1e-3', "Unknown workload 'nope'"),
    "unknown optimizer": (
        'name = "bilinear"',
        'name = "adamm"\nlr = 1e-3',
        "Unknown optimizer 'adamm'",
    ),
    "unknown hyperparameter": (
        'name = "bilinear"',
        'name = "adam"\nlr = 1e-3\nbeta1 = 0.5',
        "unknown key 'beta1'",
    ),
    "zero lr": ('name = "bilinear"', 'name = "adam"\nlr = [1e-3, 0.0]', "lr must be > 0"),
    "negative lr": ('name = "bilinear"', 'name = "adam"\nlr = -1e-3', "lr must be > 0"),
    "nan lr": ('name = "bilinear"', 'name = "adam"\nlr = nan', "got nan"),
    "empty grid": ('name = "bilinear"', 'name = "adam"\nlr = []', "empty grid"),
    "missing data path": (
        'name = "mnist"\ndata_dir = "/nonexistent/mnist"',
        'name = "adam"\nlr = 2e-4',
        "/nonexistent/mnist",
    ),
    "missing FID weights": (
        'name = "stub-fid"',
        'name = "adam"\nlr = 2e-4',
        "FID weights not found",
    ),
}


@pytest.fixture
def stub_workload(monkeypatch):
    monkeypatch.setitem(workloads.WORKLOADS, "stub-fid", f"{__name__}:StubWorkload")


def bad_sweep(sweep_file, case: str) -> tuple[Path, str]:
    """The sweep file of a BAD case, and the message its error must hold."""
    workload, optimizer, message = BAD[case]
    text = f"[[workload]]\n{workload}\n[[optimizer]]\n{optimizer}\n"
    return sweep_file(text, "bad.toml"), message


def assert_one_line_error(err: str, message: str) -> None:
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("bench run: error: ")
    assert message in err


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_on_stderr_exit_2_and_writes_nothing(
    case, tmp_path, capsys, stub_workload, sweep_file
):
    config, message = bad_sweep(sweep_file, case)
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "--device", "cpu"]) == 2
    captured = capsys.readouterr()
    assert_one_line_error(captured.err, message)
    assert captured.out == ""
    assert not out.exists()


def test_malformed_toml_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    config = tmp_path / "broken.toml"
    config.write_text("[sweep\nname = 'x'\n")
    assert main(["run", str(config), "--out", str(tmp_path / "out")]) == 2
    assert_one_line_error(capsys.readouterr().err, "malformed TOML")
    assert not (tmp_path / "out").exists()


def test_an_unknown_allocator_setting_is_one_line_exit_2(tmp_path, capsys, monkeypatch, sweep_file):
    monkeypatch.setenv("OGAN_MALLOC", "off")
    out = tmp_path / "out"
    assert main(["run", str(sweep_file(GOOD)), "--out", str(out), "--device", "cpu"]) == 2
    assert_one_line_error(capsys.readouterr().err, "OGAN_MALLOC='off' is not a setting")
    assert not out.exists()


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_an_unwritable_output_directory_is_one_line_exit_2(where, tmp_path, capsys, sweep_file):
    config = sweep_file(GOOD)
    if where == "under-a-file":
        (tmp_path / "file").write_text("")
        out = tmp_path / "file" / "results"
    else:
        out = Path("/proc/bench-results")
    assert main(["run", str(config), "--out", str(out), "--device", "cpu"]) == 2
    assert_one_line_error(capsys.readouterr().err, "cannot write results to")
    assert not out.exists()


def test_a_good_sweep_runs_and_prints_status_lines_and_the_summary(tmp_path, capsys, sweep_file):
    config = sweep_file(GOOD)
    argv = ["run", str(config), "--out", str(tmp_path / "out"), "--jobs", "1", "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("sweep 'cli': 2 runs, 0 already finished, 2 to run on cpu")
    assert sum(line.startswith(("[1/2] bilinear adam", "[2/2] bilinear adam")) for line in out) == 2
    assert out[-2].split()[:5] == ["workload", "optimizer", "runs", "diverged", "metric"]
    assert out[-1].split()[:5] == ["bilinear", "adam", "2", "0", "distance"]
    assert len(list((tmp_path / "out" / "cli" / "runs").glob("*.json"))) == 2


def test_failed_runs_give_exit_code_1(tmp_path, capsys, monkeypatch, sweep_file):
    import ogan

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(ogan, "train", broken)
    config = sweep_file(GOOD)
    argv = ["run", str(config), "--out", str(tmp_path / "out"), "--jobs", "1", "--device", "cpu"]
    assert main(argv) == 1
    assert "2 run(s) failed" in capsys.readouterr().err


def test_usage_errors_exit_2():
    assert main(["run", "--jobs", "0"]) == 2
    assert main(["run", "--device", "tpu"]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["list", "--bogus"]) == 2


def test_list_prints_every_workload_optimizer_and_metric_with_a_description(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    entries = {line.split()[0]: line for line in lines if line.startswith("  ")}
    for name in [*workloads.WORKLOADS, *optim.OPTIMIZERS]:
        assert len(entries[name].split()) > 1, name
    for name in workloads.WORKLOADS:
        cls = workloads.get(name)
        for metric, info in cls.metrics.items():
            assert info.description in entries[f"{name}.{metric}"]
    assert "(higher is better, primary)" in entries["mog-ring.modes"]
    assert "(lower is better)" in entries["mog-ring.fd"]


def test_report_dispatches_to_build_report_with_the_directory(monkeypatch, capsys, tmp_path):
    calls = []
    stub = types.ModuleType("bench.report")
    stub.build_report = lambda path: calls.append(path) or path / "report" / "index.html"
    monkeypatch.setitem(sys.modules, "bench.report", stub)
    assert main(["report", str(tmp_path)]) == 0
    assert main(["report"]) == 0
    assert calls == [tmp_path, Path("results/default")]
    assert capsys.readouterr().out.splitlines()[0] == str(tmp_path / "report" / "index.html")


def test_perf_passes_every_argument_through(monkeypatch):
    calls = []
    stub = types.ModuleType("bench.perf")
    stub.main = lambda args: calls.append(args) or 3
    monkeypatch.setitem(sys.modules, "bench.perf", stub)
    monkeypatch.setattr("bench.perf", stub, raising=False)
    assert main(["perf", "--compare", "base.json", "-k", "runner", "-h"]) == 3
    assert calls == [["--compare", "base.json", "-k", "runner", "-h"]]


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=patience(120),
    )


@pytest.mark.parametrize("case", ["unknown workload", "nan lr", "malformed"])
def test_python_m_bench_reports_bad_input_in_one_line_with_exit_2(case, tmp_path, sweep_file):
    if case == "malformed":
        config, message = tmp_path / "bad.toml", "malformed TOML"
        config.write_text("[[workload]\n")
    else:
        config, message = bad_sweep(sweep_file, case)
    result = run_module("run", str(config), "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 2
    assert_one_line_error(result.stderr, message)
    assert result.stdout == ""
    assert not (tmp_path / "results").exists()


def test_python_m_bench_dry_run_of_the_quick_preset_lists_its_runs_and_writes_nothing(tmp_path):
    result = run_module("run", "quick", "--dry-run", "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "sweep 'quick' (embedded:quick): 32 runs, 0 already finished, 32 to run" in lines[0]
    assert len(lines) == 33
    assert not (tmp_path / "results").exists()


def test_python_m_bench_list_runs_main(tmp_path):
    result = run_module("list", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == "workloads:"


def test_a_closed_output_pipe_ends_quietly_with_exit_141(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    proc.stdout.close()  # like `| head` that has already quit: the first write fails
    assert proc.wait(timeout=patience(120)) == 141
    assert proc.stderr.read() == b""
    proc.stderr.close()
