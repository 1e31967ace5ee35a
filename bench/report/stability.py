"""Do two reports of the same sweep reach the same verdicts? (``python -m bench verdicts A B``)

A verdict is a claim about an optimizer, so it must survive a rerun on another machine: float
rounding differs between CPUs (and between a population and one-run-per-process training, which
sum in another order), and short GAN runs amplify it. This compares the verdicts of two report
directories made from the same sweep and seeds: the paired comparisons (``paired.csv``) and the
claim's statistics (``claims.csv``). Moving between a decision and *undecided* is what an α-level
test does near its boundary; *better* on one machine and *worse* on the other is a *flip*, and
that must not happen.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.errors import BenchError
from bench.report.verdicts import BETTER, WORSE

TABLES = {
    "paired.csv": ["workload", "kind", "base", "projected", "metric"],
    "claims.csv": ["workload", "kind", "base", "projected", "statistic"],
}
"""Each verdict table of a report and the columns that name one comparison in it."""


def compare_verdicts(a: str | Path, b: str | Path) -> pd.DataFrame:
    """One row per comparison both reports hold: its table, key, the two verdicts, ``flipped``."""
    frames = []
    for name, keys in TABLES.items():
        tables = []
        for folder in (Path(a), Path(b)):
            path = folder / name
            if not path.is_file():
                raise BenchError(f"{path} does not exist; give two report directories "
                                 "(python -m bench report writes them)")  # fmt: skip
            tables.append(pd.read_csv(path, usecols=[*keys, "verdict"]))
        both = tables[0].merge(tables[1], on=keys, suffixes=("_a", "_b"))
        both.insert(0, "table", name.removesuffix(".csv"))
        frames.append(both)
    out = pd.concat(frames, ignore_index=True)
    pairs = zip(out["verdict_a"], out["verdict_b"])
    out["flipped"] = [{x, y} == {BETTER, WORSE} for x, y in pairs]
    return out


def summary(table: pd.DataFrame) -> str:
    """Counts per table, then every comparison whose verdict differs."""
    lines = []
    for name, group in table.groupby("table", sort=False):
        same = int((group["verdict_a"] == group["verdict_b"]).sum())
        flipped = int(group["flipped"].sum())
        lines.append(f"{name}: {len(group)} comparisons, {same} same verdict, "
                     f"{len(group) - same} differ, {flipped} flipped")  # fmt: skip
    differ = table[table["verdict_a"] != table["verdict_b"]].dropna(axis=1, how="all")
    if len(differ):
        lines += ["", differ.to_string(index=False)]
    return "\n".join(lines)
