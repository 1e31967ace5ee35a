"""scripts/population_size.py: a member's share of a population step at each size, for one arm
of a sweep file (timing only; the members' numbers are test_population.py's)."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SWEEP = """
[sweep]
seeds = [0, 1, 2]
steps = 4
eval_every = 4
[[workload]]
name = "mog-ring"
batch_size = 32
flush_denormal = true
[[optimizer]]
name = "adam"
lr = 1e-3
"""


def _script():
    path = ROOT / "scripts" / "population_size.py"
    spec = importlib.util.spec_from_file_location("population_size", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_it_times_each_size_against_the_standalone_step(tmp_path, capsys):
    sweep = tmp_path / "s.toml"
    sweep.write_text(SWEEP)
    out = tmp_path / "t.json"
    assert _script().main([str(sweep), "--arm", "adam", "--sizes", "3", "1", "2", "--steps", "3",
                           "--warmup", "1", "--json", str(out)]) == 0  # fmt: skip
    table = json.loads(out.read_text())
    assert table["meta"]["flush"] is True and table["meta"]["arm"] == "adam"
    rows = table["rows"]
    assert [r["P"] for r in rows] == [1, 2, 3]
    assert rows[0]["ratio"] == 1.0
    alone = rows[0]["member_ms"]
    for r in rows:
        assert r["member_ms"] == pytest.approx(r["step_ms"] / r["P"])
        assert r["ratio"] == pytest.approx(r["member_ms"] / alone)
        assert r["member_steps_per_s"] == pytest.approx(1e3 / r["member_ms"])
    assert len(capsys.readouterr().out.splitlines()) == 2 + 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arm", "sgd"], "--arm 'sgd' is not an arm of"),
        (["--arm", "adam", "--sizes", "1", "4"], "--sizes: 4 members, but 'adam' has 3 seeds"),
    ],
)
def test_a_bad_arm_or_size_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    sweep = tmp_path / "s.toml"
    sweep.write_text(SWEEP)
    assert _script().main([str(sweep), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_sizes_without_the_standalone_step_are_refused(tmp_path):
    with pytest.raises(SystemExit) as exit_:
        _script().main(["quick", "--arm", "adam", "--sizes", "2", "4"])
    assert exit_.value.code == 2


@pytest.mark.parametrize(
    ("name", "alone", "ratios"),
    [
        ("unrolled-ortho-d", 7.66, [0.77, 0.67, 0.64, 0.65, 0.64, 0.64]),
        ("unrolled-lookahead", 7.52, [0.76, 0.66, 0.63, 0.64, 0.64, 0.64]),
        ("pacgan-ring", 21.2, [1.07, 0.98, 0.97]),
    ],
)
def test_the_readmes_population_sizes_are_the_committed_tables(name, alone, ratios):
    table = json.loads((ROOT / "results" / "perf" / f"cpu-population-size-{name}-xeon.json")
                       .read_text())  # fmt: skip
    rows = table["rows"]
    assert table["meta"]["cpu"] == "Intel(R) Xeon(R) Processor"
    assert rows[0]["P"] == 1 and round(rows[0]["step_ms"], 2 if alone < 10 else 1) == alone
    assert [round(r["ratio"], 2) for r in rows[1:]] == ratios
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert ", ".join(f"{r:.2f}" for r in ratios) in readme
