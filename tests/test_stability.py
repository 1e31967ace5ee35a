"""python -m bench verdicts: two reports of one sweep, the verdicts that differ, and flips."""

from __future__ import annotations

import pandas as pd

from bench.cli import main
from bench.report.stability import compare_verdicts

KEY = {"workload": "mog-ring", "kind": "ortho", "base": "adam", "projected": "adam+ortho"}


def _report(folder, paired, claims):
    folder.mkdir()
    pd.DataFrame([{**KEY, "metric": m, "verdict": v} for m, v in paired]).to_csv(
        folder / "paired.csv", index=False
    )
    pd.DataFrame([{**KEY, "statistic": s, "verdict": v} for s, v in claims]).to_csv(
        folder / "claims.csv", index=False
    )
    return folder


def test_a_decision_that_turns_undecided_differs_but_only_better_to_worse_flips(tmp_path, capsys):
    a = _report(tmp_path / "a", [("modes", "better"), ("fd", "equivalent")],
                [("tail_g", "worse"), ("tail_d", "undecided")])  # fmt: skip
    b = _report(tmp_path / "b", [("modes", "undecided"), ("fd", "equivalent")],
                [("tail_g", "better"), ("tail_d", "undecided")])  # fmt: skip
    table = compare_verdicts(a, b)
    assert len(table) == 4
    assert table.loc[table["flipped"], "statistic"].tolist() == ["tail_g"]
    assert main(["verdicts", str(a), str(b)]) == 1  # a flip fails
    out = capsys.readouterr().out
    assert "paired: 2 comparisons, 1 same verdict, 1 differ, 0 flipped" in out
    assert "claims: 2 comparisons, 1 same verdict, 1 differ, 1 flipped" in out
    assert main(["verdicts", str(a), str(a)]) == 0


def test_a_missing_report_is_a_one_line_usage_error(tmp_path, capsys):
    a = _report(tmp_path / "a", [("modes", "better")], [("tail_g", "worse")])
    assert main(["verdicts", str(a), str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "paired.csv does not exist" in err
