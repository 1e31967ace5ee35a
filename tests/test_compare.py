"""Comparisons a sweep file declares (``[[compare]]``): checked when the file is read, kept in
sweep.json, made by the report in the workload's families beside the ones it always makes.

The report end to end runs a tiny real sweep (the bilinear game, 40 steps): Adam, optimistic Adam
and Extra-Adam on four seeds, with Extra-Adam declared against optimistic Adam (a pair the
report does not make by itself: neither is Adam) and optimistic Adam declared against Adam (a
pair it makes anyway, as a baseline). The declared row's numbers are recomputed from the stored
runs with scipy.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

import bench
from bench.cli import main
from bench.config import parse_sweep
from bench.errors import BenchError
from bench.report import build_report, verdicts
from bench.report.families import holm

HEAD = """\
[sweep]
name = "declared"
seeds = [0, 1, 2, 3]
steps = 40
eval_every = 20

[[workload]]
name = "bilinear"
dim = 4

[[optimizer]]
name = "adam"
lr = 0.05

[[optimizer]]
name = "optimistic-adam"
lr = 0.05

[[optimizer]]
name = "extra-adam"
lr = 0.05
"""
COMPARE = """
[[compare]]
arm = "extra-adam"
against = "optimistic-adam"

[[compare]]
arm = "optimistic-adam"
against = "adam"
"""


def test_declared_comparisons_are_read_in_order_and_kept_in_sweep_json():
    sweep = parse_sweep(HEAD + COMPARE)
    assert sweep.compare == (
        ("extra-adam", "optimistic-adam", "steps"),
        ("optimistic-adam", "adam", "steps"),
    )
    assert sweep.manifest()["compare"] == [
        {"arm": "extra-adam", "against": "optimistic-adam"},
        {"arm": "optimistic-adam", "against": "adam"},
    ]
    assert parse_sweep(HEAD).compare == () and parse_sweep(HEAD).manifest()["compare"] == []


def test_a_declared_comparison_changes_no_run_id():
    assert [s.run_id for s in parse_sweep(HEAD + COMPARE).specs] == [
        s.run_id for s in parse_sweep(HEAD).specs
    ]


BAD = {
    "unknown label": (
        '[[compare]]\narm = "adam+ortho"\nagainst = "adam"\n',
        "[[compare]] #1 arm = 'adam+ortho' is not an optimizer of this sweep; its labels: adam, "
        "optimistic-adam, extra-adam",
    ),
    "missing key": ('[[compare]]\narm = "adam"\n', "[[compare]] #1 needs against"),
    "a table, not an array": (
        '[compare]\narm = "adam"\nagainst = "extra-adam"\n',
        "write [[compare]]",
    ),
    "itself": ('[[compare]]\narm = "adam"\nagainst = "adam"\n', "compares 'adam' with itself"),
    "twice, either way": (
        '[[compare]]\narm = "adam"\nagainst = "extra-adam"\n'
        '[[compare]]\narm = "extra-adam"\nagainst = "adam"\n',
        "[[compare]] #2 declares 'extra-adam' against 'adam' a second time",
    ),
    "an unknown budget": (
        '[[compare]]\narm = "adam"\nagainst = "extra-adam"\nbudget = "time"\n',
        "[[compare]] #1 budget = 'time' is not one of 'steps', 'grad_evals'",
    ),
    "twice at one budget": (
        '[[compare]]\narm = "adam"\nagainst = "extra-adam"\nbudget = "grad_evals"\n'
        '[[compare]]\narm = "extra-adam"\nagainst = "adam"\nbudget = "grad_evals"\n',
        "[[compare]] #2 declares 'extra-adam' against 'adam' at budget = 'grad_evals' a second",
    ),
    "unknown key": (
        '[[compare]]\narm = "adam"\nagainst = "extra-adam"\nmargin = 1\n',
        "unknown key 'margin' in [[compare]] #1; valid keys: arm, against, budget",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_declaration_is_one_line_exit_2_and_writes_nothing(case, tmp_path, capsys):
    text, message = BAD[case]
    with pytest.raises(BenchError) as caught:
        parse_sweep(HEAD + text)
    assert message in str(caught.value)
    config = tmp_path / "bad.toml"
    config.write_text(HEAD + text, encoding="utf-8")
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bench run: error: ") and message in err
    assert not out.exists()


@pytest.fixture(scope="module")
def declared_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("declared")
    config = root / "declared.toml"
    config.write_text(HEAD + COMPARE, encoding="utf-8")
    out = root / "results"
    assert main(["run", str(config), "--out", str(out), "--device", "cpu"]) == 0
    sweep_dir = out / "declared"
    # A declaration whose arms never both ran (here: a label with no runs, as if restricted to
    # another workload): the report says so instead of dropping it silently.
    manifest = json.loads((sweep_dir / "sweep.json").read_text(encoding="utf-8"))
    manifest["compare"].append({"arm": "ttur", "against": "adam"})
    (sweep_dir / "sweep.json").write_text(json.dumps(manifest), encoding="utf-8")
    report = build_report(sweep_dir)
    return sweep_dir, report


def _finals(sweep_dir, label: str) -> pd.Series:
    runs = bench.load_runs(sweep_dir)
    chosen = runs[runs["optimizer"] == label].set_index("seed").sort_index()
    return chosen["final_distance"].astype(float)


def test_the_report_makes_the_declared_pair_once_and_counts_it_in_the_confirmatory_family(
    declared_report,
):
    _, report = declared_report
    paired = pd.read_csv(report.parent / "paired.csv")
    rows = {(r.kind, r.base, r.projected) for r in paired.itertuples()}
    # The two baselines against Adam, and the declared pair; optimistic Adam against Adam is
    # declared too, but the report makes it anyway (as a baseline), so not a second time.
    assert rows == {
        ("baseline", "adam", "optimistic-adam"),
        ("baseline", "adam", "extra-adam"),
        ("declared", "optimistic-adam", "extra-adam"),
    }
    assert set(paired["family"]) == {"confirmatory"}
    # Holm over the family of three, the declared pair included.
    assert paired["p_adjusted"].to_numpy() == pytest.approx(
        holm(paired["p_value"].to_numpy()), nan_ok=True
    )


def test_the_declared_row_is_arm_minus_against_on_the_stored_runs(declared_report):
    sweep_dir, report = declared_report
    paired = pd.read_csv(report.parent / "paired.csv")
    row = paired[paired["kind"] == "declared"].iloc[0]
    arm, against = _finals(sweep_dir, "extra-adam"), _finals(sweep_dir, "optimistic-adam")
    assert row["n_pairs"] == 4 and list(arm.index) == list(against.index) == [0, 1, 2, 3]
    # bilinear's distance is compared on the log scale (a ratio): the paired t test of the logs.
    d = np.log(arm) - np.log(against)
    assert row["scale"] == verdicts.LOG_RATIO
    assert row["estimate"] == pytest.approx(d.mean(), rel=1e-9)
    assert row["p_value"] == pytest.approx(sps.ttest_1samp(d, 0.0).pvalue, rel=1e-9)
    assert row["base_mean"] == pytest.approx(against.mean(), rel=1e-9)
    assert row["projected_mean"] == pytest.approx(arm.mean(), rel=1e-9)


def test_the_report_names_a_declared_comparison_it_could_not_make(declared_report):
    _, report = declared_report
    text = report.read_text(encoding="utf-8")
    assert "The sweep declares ttur against adam, but no workload has finished runs of both" in text
    assert "extra-adam vs optimistic-adam" in text


def test_the_readme_sweep_example_with_its_compare_table_reads_as_written():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = text[text.index("\n## Sweeps\n") :]
    start = section.index("```toml\n") + len("```toml\n")
    example = section[start : section.index("\n```", start)]
    sweep = parse_sweep(example)
    assert sweep.compare == (("adam+ortho", "adam", "steps"),)
    assert {s.label for s in sweep.specs} == {"adam", "adam+ortho"}
