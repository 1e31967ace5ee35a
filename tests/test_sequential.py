"""``bench run --until-decided``: rounds of seeds for the undecided comparisons only, on a tiny
bilinear sweep (real runs, a few steps each)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from bench import sequential
from bench.cli import main
from bench.errors import BenchError
from bench.report import analyse, load_sweep
from bench.report.data import SEQUENTIAL_FILE

TINY = """
[sweep]
name = "seq"
seeds = [0, 1, 2, 3]

[[workload]]
name = "bilinear"
steps = 20
eval_every = 10

[[optimizer]]
name = "adam"
lr = [1e-2, 3e-2]

[[optimizer]]
name = "adam"
ortho = "weights"
lr = 1e-2
"""
GRID_RUNS = 3 * 4
MAX_SEEDS = 6  # 2 selection seeds + at most 4 pairs: a look at 2 pairs, one round, a look at 4


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "seq.toml"
    path.write_text(textwrap.dedent(TINY))
    return path


@pytest.fixture(scope="module")
def decided(config, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    lines: list[str] = []
    before = _best_lrs(config, out)
    report = sequential.run_until_decided(
        config, out=out, max_seeds=MAX_SEEDS, seeds_per_round=2, jobs=2, echo=lines.append
    )
    return report, out, lines, before


def _best_lrs(config: Path, out: Path) -> dict:
    from bench.runner import run_sweep

    run_sweep(config, out=out, jobs=2, device="cpu", echo=lambda _: None)
    best = analyse(load_sweep(out / "seq")).best
    return dict(zip(best["optimizer"], best["lr"]))


def test_it_adds_rounds_of_the_same_new_seeds_to_both_sides_at_their_selected_lrs(decided):
    report, out, _, best = decided
    state = json.loads((out / "seq" / SEQUENTIAL_FILE).read_text(encoding="utf-8"))
    (comparison,) = state["comparisons"]
    assert (comparison["base"], comparison["variant"]) == ("adam", "adam+ortho")
    assert (comparison["lr_base"], comparison["lr_variant"]) == (best["adam"], best["adam+ortho"])
    added = [a["spec"] for a in state["added"]]
    assert report.rounds == 1 and report.ran == len(added) == 4
    assert sorted((a["label"], a["seed"]) for a in added) == [
        ("adam", 4),
        ("adam", 5),
        ("adam+ortho", 4),
        ("adam+ortho", 5),
    ]
    assert {a["label"]: a["optimizer"]["lr"] for a in added} == best
    # no look before min(MIN_FIRST_LOOK = 5, the design's 4 pairs): one look, the last
    assert [look["n"] for look in comparison["looks"]] == [4]
    assert comparison["done"] and comparison["looks"][-1]["final"]
    assert comparison["scale"] == "log ratio"  # the distance is a log-scale metric


def test_the_report_keeps_the_selection_seeds_and_learning_rates_after_seeds_are_added(
    decided,
):
    _, out, _, best = decided
    a = analyse(load_sweep(out / "seq"))
    split = a.splits["bilinear"]
    assert (split.selection, split.report) == ([0, 1], [2, 3, 4, 5])
    assert dict(zip(a.best["optimizer"], a.best["lr"])) == best
    assert sorted(a.paired["n_pairs"]) == [4]


def test_the_verdict_at_the_last_look_is_the_one_reported(decided):
    report, _, lines, _ = decided
    (comparison,) = report.comparisons
    last = comparison["looks"][-1]
    assert comparison["verdict"] == last["verdict"] and last["describe"] in lines[-1]


def test_a_second_invocation_resumes_and_runs_nothing(decided, config):
    _, out, _, _ = decided
    again = sequential.run_until_decided(config, out=out, jobs=2, echo=lambda _: None)
    assert (again.rounds, again.ran) == (0, 0)


def test_the_most_seeds_cannot_change_once_a_design_started(decided, config):
    _, out, _, _ = decided
    with pytest.raises(BenchError, match="--max-seeds 6"):
        sequential.run_until_decided(config, out=out, max_seeds=10, echo=lambda _: None)


def test_only_undecided_comparisons_get_new_runs(decided):
    _, out, _, _ = decided
    data = analyse(load_sweep(out / "seq"))
    state = json.loads((out / "seq" / SEQUENTIAL_FILE).read_text(encoding="utf-8"))
    assert sequential.next_round(state, data, 2) == []  # done
    (comparison,) = state["comparisons"]
    comparison.update(done=False, max_pairs=7)
    todo = sequential.next_round(state, data, 2)
    assert sorted((spec.label, spec.seed) for _, spec in todo) == [
        ("adam", 6),
        ("adam", 7),
        ("adam+ortho", 6),
        ("adam+ortho", 7),
    ]
    comparison["max_pairs"] = 5  # one seed left
    assert sorted(spec.seed for _, spec in sequential.next_round(state, data, 2)) == [6, 6]


def test_too_few_seeds_or_a_max_below_the_sweeps_seeds_is_refused_before_anything_runs(
    tmp_path,
):
    one = tmp_path / "one.toml"
    one.write_text(textwrap.dedent(TINY).replace("seeds = [0, 1, 2, 3]", "seeds = [0]"))
    with pytest.raises(BenchError, match="at least 2 seeds"):
        sequential.run_until_decided(one, out=tmp_path / "out", echo=lambda _: None)
    four = tmp_path / "four.toml"
    four.write_text(textwrap.dedent(TINY))
    with pytest.raises(BenchError, match="below the sweep's 4 seeds"):
        sequential.run_until_decided(four, out=tmp_path / "out", max_seeds=3, echo=print)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-seeds", "5"], "--max-seeds goes with --until-decided"),
        (["--until-decided", "--dry-run"], "cannot be a dry run"),
    ],
)
def test_cli_flag_mistakes_are_one_line_exit_2(args, message, config, tmp_path, capsys):
    code = main(["run", str(config), "--out", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_the_max_seeds_help_states_the_default(capsys):
    assert main(["run", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"default: {sequential.DEFAULT_MAX_SEEDS}," in help_text


def test_the_report_gives_the_group_sequential_verdict_of_the_last_look(decided):
    _, out, _, _ = decided
    state = json.loads((out / "seq" / SEQUENTIAL_FILE).read_text(encoding="utf-8"))
    (comparison,) = state["comparisons"]
    (row,) = analyse(load_sweep(out / "seq")).paired.itertuples(index=False)
    last = comparison["looks"][-1]
    assert row.design == "group-sequential" and row.verdict == last["verdict"]
    assert row.estimate == pytest.approx(last["estimate"], rel=1e-12)
    assert (row.estimate_ci_lo, row.estimate_ci_hi) == pytest.approx(last["interval"], rel=1e-12)
