"""Do two reports of the same sweep reach the same verdicts? (``python -m bench verdicts A B``)

A verdict is a claim about an optimizer, so it must survive a rerun on another machine: float
rounding differs between CPUs (and between a population and one-run-per-process training, which
sum in another order), and short GAN runs amplify it. This compares the verdicts of two reports
of the same sweep and seeds. Moving between a decision and *undecided* is what an α-level test
does near its boundary; *better* on one machine and *worse* on the other is a *flip*, and that
must not happen.

Each side is read from the one analysis (:func:`bench.report.analyse_dir`): a directory of runs
is analysed afresh; a report directory gives the analysis as its build wrote it,
``comparisons.csv`` (one row per verdict, its family named). A report built before families
existed has ``paired.csv`` (read as the confirmatory family) and ``claims.csv`` (exploratory)
instead, so that a report's verdicts before and after a change of rules can be set side by side.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.errors import BenchError
from bench.report.verdicts import BETTER, WORSE

KEYS = ["family", "workload", "kind", "base", "projected", "statistic"]
"""The columns that name one comparison (``comparisons.csv``'s)."""

LEGACY = {"paired.csv": ("confirmatory", "metric"), "claims.csv": ("exploratory", "statistic")}
"""A report from before ``comparisons.csv``: its tables, the family each held, the column that
named the statistic."""


def _read(path: Path, family: str | None = None, column: str = "statistic") -> pd.DataFrame:
    """``KEYS`` + ``verdict`` of one CSV (a report with no comparison writes an empty one)."""
    try:
        t = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=[*KEYS, "verdict"])
    t = t.rename(columns={column: "statistic"})
    if family is not None:
        t = t.assign(family=family)
    missing = {*KEYS, "verdict"} - set(t.columns)
    if missing and len(t):
        raise BenchError(f"{path} lacks the column(s) {', '.join(sorted(missing))}; is it a "
                         "report's CSV? (python -m bench report writes them)")  # fmt: skip
    return t.reindex(columns=[*KEYS, "verdict"])


def verdicts_of(path: str | Path) -> pd.DataFrame:
    """``KEYS`` + ``verdict``, one row per verdict of the report or results under ``path``."""
    path = Path(path)
    if (path / "comparisons.csv").is_file():
        return _read(path / "comparisons.csv")
    if (path / "paired.csv").is_file():
        frames = [
            _read(path / name, family, column)
            for name, (family, column) in LEGACY.items()
            if (path / name).is_file()
        ]
        return pd.concat(frames, ignore_index=True)
    if not path.is_dir():
        raise BenchError(
            f"{path} does not exist; give two report directories (…/report, which python -m "
            "bench report writes) or results directories"
        )
    from bench.report import analyse_dir

    return analyse_dir(path).comparisons[[*KEYS, "verdict"]]


def compare_verdicts(a: str | Path, b: str | Path) -> pd.DataFrame:
    """One row per comparison of either side: its key, ``verdict_a``, ``verdict_b`` (NaN where
    a side lacks it) and ``flipped`` (better on one side, worse on the other)."""
    out = verdicts_of(a).merge(verdicts_of(b), on=KEYS, how="outer", suffixes=("_a", "_b"))
    first = out["family"].map({"confirmatory": 0, "secondary": 1, "exploratory": 2}).fillna(3)
    out = out.assign(_first=first).sort_values(["_first", "workload"], kind="stable")
    out = out.drop(columns="_first").reset_index(drop=True)
    pairs = zip(out["verdict_a"], out["verdict_b"])
    out["flipped"] = [{x, y} == {BETTER, WORSE} for x, y in pairs]
    return out


def summary(table: pd.DataFrame) -> str:
    """Counts per family, then every comparison whose verdict differs or that one side lacks."""
    if table.empty:
        return "no verdict on either side (no workload ran two optimizers to compare)"
    lines = []
    for family, group in table.groupby("family", sort=False):
        both = group.dropna(subset=["verdict_a", "verdict_b"])
        same = int((both["verdict_a"] == both["verdict_b"]).sum())
        line = (
            f"{family}: {len(both)} comparisons in both, {same} same verdict, "
            f"{len(both) - same} differ, {int(group['flipped'].sum())} flipped"
        )
        only_a, only_b = int(group["verdict_b"].isna().sum()), int(group["verdict_a"].isna().sum())
        if only_a or only_b:
            line += f"; {only_a} only in A, {only_b} only in B"
        lines.append(line)
    differ = table[table["verdict_a"].fillna("–") != table["verdict_b"].fillna("–")]
    if len(differ):
        shown = differ.fillna({"verdict_a": "–", "verdict_b": "–"}).dropna(axis=1, how="all")
        lines += ["", shown.to_string(index=False)]
    return "\n".join(lines)
