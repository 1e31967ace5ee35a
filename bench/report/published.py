"""Published numbers beside ours, under the same protocol and with the same statistic.

The published rows live in ``published.toml`` (next to this file), each with its source. A row
applies to the runs of a report whose workload and resolved options (``arch``, ``packing``)
match it. "Ours" is the mean ± standard error over seeds (the published statistic), per
optimizer variant. The protocol fixes the learning rate, so when a variant ran at one learning
rate every seed counts (there is nothing to select); with several, only the report seeds at the
selected one do, as everywhere else in the report.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from bench.report.document.formatting import num
from bench.report.document.model import Section, Table
from bench.report.tables import Analysis

METRICS = ("modes", "high_quality", "reverse_kl")
"""The published columns, in the tables' order (PacGAN Table 1)."""
MATCHED_OPTIONS = ("arch", "packing")
"""Workload options a published row must match (resolved values, defaults included)."""


@dataclass(frozen=True)
class Published:
    source: str
    workload: str
    options: dict[str, Any]
    steps: int
    runs: int
    statistic: str
    values: dict[str, tuple[float, float]]  # metric -> (mean, standard error)


def load_published() -> list[Published]:
    """Every row of ``published.toml``."""
    text = resources.files("bench.report").joinpath("published.toml").read_text("utf-8")
    return [
        Published(
            source=r["source"],
            workload=r["workload"],
            options={k: r[k] for k in MATCHED_OPTIONS},
            steps=int(r["steps"]),
            runs=int(r["runs"]),
            statistic=r["statistic"],
            values={m: (float(r[m][0]), float(r[m][1])) for m in METRICS},
        )
        for r in tomllib.loads(text)["row"]
    ]


def mean_se(values: pd.Series) -> tuple[float, float, int]:
    """(mean, standard error of the mean, n) over the finite values."""
    x = values.astype(float).to_numpy()
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan, 0
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else math.nan
    return float(x.mean()), se, len(x)


def _pm(mean: float, se: float, scale: float = 1.0) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{num(mean * scale, 3)} ± {num(se * scale, 2)}"


def _matching_runs(a: Analysis, row: Published) -> pd.DataFrame:
    """The runs of ``row``'s protocol: each variant at one lr, on the seeds that count."""
    options = {r["run_id"]: r["config"]["options"] for r in a.data.records}
    runs = a.data.runs[a.data.runs["workload_name"] == row.workload]
    keep = runs["run_id"].map(lambda i: all(options[i].get(k) == v for k, v in row.options.items()))
    runs = runs[keep.astype(bool)]
    parts = []
    for (wl, variant), group in runs.groupby(["workload", "optimizer"], sort=True):
        if group["lr"].nunique() > 1:
            chosen = a.reported[
                (a.reported["workload"] == wl) & (a.reported["optimizer"] == variant)
            ]
            group = group[group["run_id"].isin(chosen["run_id"])]
        parts.append(group)
    return pd.concat(parts) if parts else runs


def _table(a: Analysis, row: Published) -> Table | None:
    runs = _matching_runs(a, row)
    if runs.empty:
        return None
    scale = {"high_quality": 100.0}  # the table prints percent, as the paper does
    head = {
        "": f"published: {row.source}",
        "steps": f"{row.steps:,}",
        "runs": str(row.runs),
        **{m: _pm(*row.values[m], scale.get(m, 1.0)) for m in METRICS},
    }
    lines = [head]
    for (wl, variant), group in runs.groupby(["workload", "optimizer"], sort=True):
        line = {"": f"ours: {variant} ({wl})", "steps": f"{int(group['steps_completed'].max()):,}"}
        counts = []
        for m in METRICS:
            mean, se, n = mean_se(group[f"final_{m}"])
            pub_mean, pub_se = row.values[m]
            s = scale.get(m, 1.0)
            line[m] = f"{_pm(mean, se, s)}; Δ {num((mean - pub_mean) * s, 2)}"
            line[m] += f" ± {num(math.hypot(se, pub_se) * s, 2)}" if n > 1 else ""
            counts.append(n)
        line["runs"] = str(len(group)) + ("" if len(set(counts)) == 1 else f" ({min(counts)} def.)")
        lines.append(line)
    frame = pd.DataFrame(lines)[["", "steps", "runs", *METRICS]]
    frame = frame.rename(columns={"high_quality": "high quality (%)", "reverse_kl": "reverse KL"})
    caption = (
        f"Same statistic for both: {row.statistic.replace('10 runs', 'runs')} of the final "
        "values. Δ: ours − published, ± the two standard errors combined (√(se₁² + se₂²)). "
        "Ours at fewer steps than the published protocol is a shortened run of it. Reverse KL "
        "is undefined for a run with no high-quality sample; such runs are left out of its "
        "mean ('def.': runs where every metric is defined)."
    )
    opts = ", ".join(f"{k} = {v}" for k, v in row.options.items())
    return Table(f"{row.workload} ({opts}): published vs ours", frame.astype(str), caption)


def sections(a: Analysis) -> list[Section]:
    """The "Published vs ours" section, or nothing when no run follows a published protocol."""
    tables = [t for t in (_table(a, row) for row in load_published()) if t is not None]
    if not tables:
        return []
    intro = (
        "Rows from the literature beside ours under the same protocol (workload options "
        f"{', '.join(MATCHED_OPTIONS)}; the sweep files under bench/sweeps/ cite the source of "
        "every setting). The metric-vs-step curves in each workload's section show whether a "
        "shortened run had plateaued."
    )
    return [Section("published", "Published vs ours", [intro, *tables])]
