"""The README's "Benchmark your own GAN" runs as written, from a directory outside the project.

The example's sweep is shortened (steps, seeds, learning rates) so that the test is fast; the
commands are the README's own, run by bash in a copy of ``examples/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from patience import patience

import ogan

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Benchmark your own GAN"


def _blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.index("\n## ", start + 1)
    return re.findall(rf"```{language}\n(.*?)```", text[start:end], flags=re.S)


def _shorten(sweep: str) -> str:
    """The example's grid, small: 12 steps, 2 seeds, the middle learning rate."""
    sweep = re.sub(r"(?m)^steps = \d+", "steps = 12", sweep)
    sweep = re.sub(r"(?m)^eval_every = \d+", "eval_every = 6", sweep)
    sweep = re.sub(r"(?m)^seeds = \[.*?\]", "seeds = [0, 1]", sweep)
    return re.sub(r"(?m)^lr = \[[^,\]]+, ([^,\]]+), [^\]]+\]", r"lr = \1", sweep)


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    """A copy of examples/ in a directory outside the project, shortened."""
    root = tmp_path_factory.mktemp("user")
    shutil.copytree(ROOT / "examples", root / "examples", ignore=shutil.ignore_patterns("results"))
    sweep = root / "examples" / "sweep.toml"
    short = _shorten(sweep.read_text(encoding="utf-8"))
    assert short.count("lr = 1e-3") == 4 and "steps = 12" in short  # the edit took
    sweep.write_text(short, encoding="utf-8")
    assert not root.is_relative_to(ROOT)
    return root


def test_the_readme_walkthrough_runs_from_outside_the_project_and_reports_what_ran(outside):
    (script,) = _blocks("bash")
    env = {
        **os.environ,
        # `python` is this interpreter, and it imports the ogan under test
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(Path(ogan.__file__).resolve().parent.parent),
    }
    done = subprocess.run(
        ["bash", "-e", "-c", script], cwd=outside, env=env, capture_output=True, text=True,
        timeout=patience(900),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    # --dry-run: the code the sweep imports, listed before anything ran
    for path in ("moons:TwoMoons", "torch.optim:RAdam", "schedulefree:AdamWScheduleFree"):
        assert f"{path}  (import path" in out
    assert "run sweep files you trust" in out
    runs = sorted((outside / "examples" / "results" / "moons" / "runs").glob("*.json"))
    assert len(runs) == 4 * 2  # 4 optimizer variants × 1 lr × 2 seeds
    records = [json.loads(p.read_text(encoding="utf-8")) for p in runs]
    assert {r["spec"]["label"] for r in records} == {"adam", "adam+ortho", "radam", "schedule-free"}
    assert all(r["summary"]["diverged_at"] is None for r in records)
    report_md = outside / "examples" / "results" / "moons" / "report" / "report.md"
    report = report_md.read_text(encoding="utf-8")
    assert "Code that ran" in report
    digest = records[0]["config"]["sources"]["workload"]["sha256"]
    row = f"| moons:TwoMoons | workload | import path | moons:TwoMoons | sha256 {digest} |"
    assert row in report
    assert "| schedulefree:AdamWScheduleFree | optimizer | import path" in report
    assert "adam+ortho" in report and "schedule-free" in report
    # a name given by import path is shown by its class, with the path in one legend
    assert "Workload: TwoMoons" in report and "Workload: moons:TwoMoons" not in report
    assert "shown by class: TwoMoons = moons:TwoMoons." in report


def test_the_readme_python_example_runs_from_the_examples_directory(outside, monkeypatch):
    (block,) = _blocks("python")
    monkeypatch.chdir(outside / "examples")
    monkeypatch.syspath_prepend(str(outside / "examples"))
    monkeypatch.delitem(sys.modules, "moons", raising=False)
    namespace: dict = {}
    exec(block, namespace)
    result = namespace["result"]
    assert result.summary["steps_completed"] == 100
    base = result.config["sources"]["optimizer.base"]
    assert (base["via"], base["distribution"]) == ("import path", "schedulefree")
