"""python -m bench verdicts: two reports of one sweep, the verdicts that differ, and flips."""

from __future__ import annotations

import pandas as pd

from bench.cli import main
from bench.report.stability import KEYS, compare_verdicts

KEY = {"workload": "mog-ring", "kind": "ortho", "base": "adam", "projected": "adam+ortho"}


def _legacy(folder, paired, claims):
    """A report from before comparisons.csv: paired.csv and claims.csv."""
    folder.mkdir()
    pd.DataFrame([{**KEY, "metric": m, "verdict": v} for m, v in paired]).to_csv(
        folder / "paired.csv", index=False
    )
    pd.DataFrame([{**KEY, "statistic": s, "verdict": v} for s, v in claims]).to_csv(
        folder / "claims.csv", index=False
    )
    return folder


def _report(folder, rows):
    """A report with comparisons.csv: rows of (family, statistic, verdict)."""
    folder.mkdir()
    frame = pd.DataFrame(
        [{**KEY, "family": f, "statistic": s, "verdict": v, "p_value": 0.5} for f, s, v in rows]
    )
    frame.to_csv(folder / "comparisons.csv", index=False)
    return folder


def test_a_decision_that_turns_undecided_differs_but_only_better_to_worse_flips(tmp_path, capsys):
    a = _report(tmp_path / "a", [("confirmatory", "modes", "better"),
                                 ("confirmatory", "fd", "equivalent"),
                                 ("exploratory", "tail_g", "worse"),
                                 ("exploratory", "tail_d", "undecided")])  # fmt: skip
    b = _report(tmp_path / "b", [("confirmatory", "modes", "undecided"),
                                 ("confirmatory", "fd", "equivalent"),
                                 ("exploratory", "tail_g", "better"),
                                 ("exploratory", "tail_d", "undecided")])  # fmt: skip
    table = compare_verdicts(a, b)
    assert len(table) == 4 and list(table.columns[: len(KEYS)]) == KEYS
    assert table["family"].tolist() == ["confirmatory"] * 2 + ["exploratory"] * 2
    assert table.loc[table["flipped"], "statistic"].tolist() == ["tail_g"]
    assert main(["verdicts", str(a), str(b)]) == 1  # a flip fails
    out = capsys.readouterr().out
    assert "confirmatory: 2 comparisons in both, 1 same verdict, 1 differ, 0 flipped" in out
    assert "exploratory: 2 comparisons in both, 1 same verdict, 1 differ, 1 flipped" in out
    assert main(["verdicts", str(a), str(a)]) == 0


def test_a_report_from_before_the_families_reads_as_them_and_unmatched_rows_are_counted(
    tmp_path, capsys
):
    old = _legacy(tmp_path / "old", [("modes", "undecided")],
                  [("vanishing_g", "equivalent"), ("time_to_target", "better")])  # fmt: skip
    new = _report(tmp_path / "new", [("confirmatory", "modes", "undecided"),
                                     ("exploratory", "vanishing_g", "not observed"),
                                     ("exploratory", "reach", "undecided")])  # fmt: skip
    table = compare_verdicts(old, new)
    assert len(table) == 4
    assert main(["verdicts", str(old), str(new)]) == 0  # nothing flipped
    out = capsys.readouterr().out
    assert "confirmatory: 1 comparisons in both, 1 same verdict, 0 differ, 0 flipped" in out
    assert "exploratory: 1 comparisons in both, 0 same verdict, 1 differ, 0 flipped; " in out
    assert "1 only in A, 1 only in B" in out
    assert "not observed" in out and "time_to_target" in out


def test_a_missing_report_is_a_one_line_usage_error(tmp_path, capsys):
    a = _report(tmp_path / "a", [("confirmatory", "modes", "better")])
    assert main(["verdicts", str(a), str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "none does not exist" in err


def test_reports_without_a_comparison_compare_as_empty(tmp_path, capsys):
    old = tmp_path / "old"
    old.mkdir()
    (old / "paired.csv").write_text("\n")  # an older report with one optimizer: empty tables
    (old / "claims.csv").write_text("\n")
    new = _report(tmp_path / "new", [])
    assert compare_verdicts(old, new).empty
    assert main(["verdicts", str(old), str(new)]) == 0
    assert "no verdict on either side" in capsys.readouterr().out
