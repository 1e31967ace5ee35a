"""One comparison across studies, on one page: ``python -m bench forest REPORT... --out FILE``.

The project answers its question in several studies (a game at 800, 5,000 and 25,000 steps; a
second sample of seeds; the same protocol on a GPU), each a report with its own declared
families. This sets the rows of one comparison (``--arm`` against ``--base`` on one statistic)
from each report side by side: estimate and 95% interval (unadjusted, as in the report's own
forest plot), the declared margin as a band, and the verdict *as the report's family gave it*,
with the family, its correction and its size m, and the pairs n.

Nothing is tested again and nothing is pooled (``bench pool`` estimates over samples of one
protocol): the studies are different games, lengths or samples, each with its own error control,
and the figure says which is which rather than making them one family.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.report.labels import EQUAL_EVALS, comparison_name

CORRECTION = {"confirmatory": "Holm", "secondary": "Holm", "exploratory": "BH"}
"""Each family's multiplicity correction (bench.report.families)."""


def _label_and_path(argument: str) -> tuple[str, Path]:
    """``LABEL=PATH`` or ``PATH`` (labelled by its study: ``results/NAME/report`` → NAME)."""
    label, sep, path = argument.partition("=")
    if not sep or Path(argument).exists():
        path, label = argument, ""
    p = Path(path)
    if not label:
        label = p.parent.name if p.name == "report" and p.parent.name else p.name
    return label, p


class _Study:
    """One study's tables, each read once: its ``comparisons.csv``, ``runs.csv`` and
    ``summary.csv`` (a report directory), or all analysed afresh from a results directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._analysis = None
        self._runs: pd.DataFrame | None = None
        if not (path / "comparisons.csv").is_file() and not self._results():
            raise BenchError(
                f"{path} has no comparisons.csv and no runs; give report directories (…/report, "
                "which python -m bench report writes) or results directories"
            )

    def _results(self) -> bool:
        return (self.path / "runs").is_dir() or (self.path / "sweep.json").is_file()

    def _analysed(self):
        if self._analysis is None:
            from bench.report import analyse_dir

            self._analysis = analyse_dir(self.path)
        return self._analysis

    def comparisons(self) -> pd.DataFrame:
        if (self.path / "comparisons.csv").is_file():
            try:
                return pd.read_csv(self.path / "comparisons.csv")
            except pd.errors.EmptyDataError:
                return pd.DataFrame(columns=["workload", "family", "base", "projected",
                                             "statistic"])  # fmt: skip
        return self._analysed().comparisons

    def runs(self) -> pd.DataFrame | None:
        """Runs × metrics (``runs.csv``), or None where the report directory has none."""
        if self._runs is None:
            if (self.path / "runs.csv").is_file():
                self._runs = pd.read_csv(self.path / "runs.csv")
            elif self._results():
                from bench.report import runs_table

                self._runs = runs_table(self._analysed().data)
        return self._runs

    def cost_per_step(self) -> dict[tuple[str, str], float]:
        """Each (workload, arm)'s gradient evaluations per step, as the report's summary table
        has them (``summary.csv``'s ``grad_evals_per_step``: both players', the median over the
        arm's runs)."""
        if (self.path / "summary.csv").is_file():
            summary = pd.read_csv(self.path / "summary.csv")
        elif self._results():
            summary = self._analysed().summary
        else:
            raise BenchError(
                f"{self.path} has no summary.csv, and --equal-cost reads each arm's gradient "
                "evaluations a step from it; give the report directory python -m bench report "
                "writes"
            )
        per_step = summary.set_index(["workload", "optimizer"])["grad_evals_per_step"]
        return {key: float(v) for key, v in per_step.items()}

    def run_ids(self, workload: str, arms: Sequence[str]) -> set[str] | None:
        """The run ids of ``arms`` on ``workload``; None where the study has no runs table (or
        one without run ids)."""
        runs = self.runs()
        if runs is None or "run_id" not in runs:
            return None
        keep = (runs["workload"] == workload) & runs["label"].isin(list(arms))
        return set(runs.loc[keep, "run_id"])


def _at_equal_cost(pick: pd.DataFrame, study: _Study) -> pd.DataFrame:
    """``pick``'s rows at equal cost: a pair's row at equal gradient evaluations where the study
    made one (its row at equal steps left out); any other row only if its two arms spend the
    same gradient evaluations a step (then equal steps are equal cost), else an error naming it."""
    key = ["workload", "projected", "base", "statistic"]
    evals = pick["kind"] == EQUAL_EVALS
    pairs = pd.MultiIndex.from_frame(pick[key])
    pick = pick[evals.to_numpy() | ~pairs.isin(pd.MultiIndex.from_frame(pick.loc[evals, key]))]
    rest = pick[pick["kind"] != EQUAL_EVALS]
    cost = study.cost_per_step() if not rest.empty else {}
    for r in rest.itertuples():
        a, b = cost.get((r.workload, r.projected)), cost.get((r.workload, r.base))
        if a is None or b is None or not np.isclose(a, b, rtol=1e-6):
            spend = "unknown" if a is None or b is None else f"{a:g} and {b:g}"
            raise BenchError(
                f"{study.path}: {r.projected} and {r.base} ({r.workload}) spend {spend} gradient "
                "evaluations a step and the study compared them only at equal steps; leave the "
                "pair out (--arm, --base), or drop --equal-cost, or declare the pair at equal "
                'cost in its sweep ([[compare]] budget = "grad_evals") and report it again'
            )
    return pick


def _family_sizes(c: pd.DataFrame) -> pd.Series:
    """m of each row's family: its workload's tested rows of the family (confirmatory and
    secondary are per workload), or the report's (exploratory is one family per report)."""
    tested = c["p_value"].notna() | (c["design"] == "group-sequential")
    per_workload = tested.groupby([c["family"], c["workload"]]).transform("sum")
    per_report = tested.groupby(c["family"]).transform("sum")
    return per_workload.where(c["family"] != "exploratory", per_report).astype(int)


def rows(
    reports: Sequence[str],
    base: str | Sequence[str] = "adam",
    arms: Sequence[str] | None = None,
    statistic: str | None = None,
    by: str = "study",
    equal_cost: bool = False,
) -> pd.DataFrame:
    """One row per (report, arm, base): the comparison ``arm`` vs ``base`` on ``statistic``
    (default: each report's confirmatory statistic), as the report decided it, in the order
    given: by study (each report's rows together) or ``by="arm"`` (each arm's rows together, one
    a study). Several bases set one arm against each comparator a study made (e.g. ⊥Grad on D
    only against Adam in one sample and against optimistic Adam in another, each a comparison
    its sweep declared); a study's rows are those against any of them, in the bases' order.
    ``equal_cost`` keeps each pair at equal cost (:func:`_at_equal_cost`): its row at equal
    gradient evaluations where the study made one, its row at equal steps where its arms cost the
    same a step, and an error where neither holds."""
    if by not in ("study", "arm"):
        raise BenchError(f"rows are grouped by 'study' or 'arm', not {by!r}")
    if not reports:
        raise BenchError("give at least one report directory")
    bases = [base] if isinstance(base, str) else list(dict.fromkeys(base))
    if not bases:
        raise BenchError("give at least one base (the arm compared with)")
    named = " or ".join(repr(b) for b in bases)
    frames, studies = [], {}
    for argument in reports:
        label, path = _label_and_path(argument)
        if label in studies:
            raise BenchError(f"two studies are labelled {label!r}; label them: LABEL=PATH")
        study = _Study(path)
        studies[label] = study
        c = study.comparisons()
        if c.empty:
            raise BenchError(f"{path} holds no comparison (a report of one optimizer?)")
        c = c.assign(m=_family_sizes(c))
        against = c["base"].isin(bases)
        if statistic is None:  # each workload's primary metric
            pick = c[(c["family"] == "confirmatory") & against]
            stat = "the primary metric"
        else:
            pick = c[against & (c["statistic"] == statistic)]
            stat = repr(statistic)
        pick = pick.assign(_b=pick["base"].map({b: i for i, b in enumerate(bases)}))
        keys = ["_b"]  # the arms' order given, then the bases'; else the report's
        if arms:
            pick = pick[pick["projected"].isin(list(arms))]
            pick = pick.assign(_o=pick["projected"].map({a: i for i, a in enumerate(arms)}))
            keys = ["_o", "_b"]
        pick = pick.sort_values(keys, kind="stable")
        if equal_cost and not pick.empty:
            pick = _at_equal_cost(pick, study)
        if pick.empty:
            have = sorted(set(c.loc[against, "projected"]))
            raise BenchError(
                f"{path}: no comparison of {', '.join(arms) if arms else 'any arm'} against "
                f"{named} on {stat}; it compares {', '.join(have) or 'nothing'} with {named}"
            )
        frames.append(pick.assign(study=label, path=str(path)))
    out = pd.concat(frames, ignore_index=True)
    if by == "arm":
        first = {a: i for i, a in enumerate(dict.fromkeys([*(arms or []), *out["projected"]]))}
        out = out.iloc[np.argsort(out["projected"].map(first).to_numpy(), kind="stable")]
        out = out.reset_index(drop=True)
    out = out.assign(shares_runs_with=_shared(out, studies))
    keep = ["study", "workload", "projected", "base", "kind", "statistic", "family", "m", "n_pairs",
            "scale", "delta", "estimate", "estimate_ci_lo", "estimate_ci_hi", "p_adjusted",
            "p_equivalence_adjusted", "verdict", "shares_runs_with", "higher_is_better",
            "path"]  # fmt: skip
    return out.reindex(columns=keep)


def _shared(out: pd.DataFrame, studies: dict[str, _Study]) -> list[str]:
    """For each row, the other studies (``; ``-joined, in the order given) that hold any of the
    row's runs, its arm's or its comparator's, by run id: a sweep that reuses another's finished
    runs (the same spec and seed give the same id) makes two rows that are not independent
    samples, and the figure says so. Rows of one study are left out: its family already
    corrects for them. "unknown" where the row's study has no runs table (``runs.csv``)."""
    ids = [studies[r.study].run_ids(r.workload, (r.projected, r.base)) for r in out.itertuples()]
    held: dict[str, set[str]] = {}
    for r, own in zip(out.itertuples(), ids):
        held.setdefault(r.study, set()).update(own or ())
    return [
        "unknown" if own is None
        else "; ".join(s for s, theirs in held.items() if s != r.study and own & theirs)
        for r, own in zip(out.itertuples(), ids)
    ]  # fmt: skip


def _share_groups(table: pd.DataFrame) -> dict[str, str]:
    """Study -> a letter (A, B, …) for each set of studies linked by shared runs
    (:func:`_shared`); studies that share none have no letter."""
    parent: dict[str, str] = {}

    def root(s: str) -> str:
        while parent.setdefault(s, s) != s:
            s = parent[s]
        return s

    for r in table.itertuples():
        shared = r.shares_runs_with if isinstance(r.shares_runs_with, str) else ""  # NaN: none
        for other in filter(None, "" if shared == "unknown" else shared.split("; ")):
            parent[root(other)] = root(r.study)
    groups: dict[str, list[str]] = {}
    for s in dict.fromkeys(table["study"]):
        groups.setdefault(root(s), []).append(s)
    linked = [g for g in groups.values() if len(g) > 1]
    return {s: chr(ord("A") + i) for i, g in enumerate(linked) for s in g}


def _units(t: pd.DataFrame) -> tuple[pd.DataFrame, str, float | None]:
    """The rows' x, lo, hi on one axis: the metric's own units when every row shares its scale
    and margin (a ratio for a log ratio), else units of each row's margin δ."""
    est, lo, hi = (t[k].astype(float) for k in ("estimate", "estimate_ci_lo", "estimate_ci_hi"))
    scales = set(t["scale"])
    deltas = set(np.round(t["delta"].astype(float), 12))
    if len(scales) == 1 and len(deltas) == 1:
        (scale,), (delta,) = scales, deltas
        if scale == "log ratio":
            return t.assign(x=np.exp(est), lo=np.exp(lo), hi=np.exp(hi)), "ratio", delta
        return t.assign(x=est, lo=lo, hi=hi), "difference", delta
    from bench.report.figures.forest import in_margin_units  # the report's own forest axis

    return in_margin_units(t), "units of δ", 1.0


def draw(table: pd.DataFrame, out: str | Path, by: str = "study") -> None:
    """The forest plot of :func:`rows`' table, written to ``out`` (a PNG) only once whole; a
    thin line between ``by``'s groups (the table's own order)."""
    from matplotlib.lines import Line2D

    from bench.report.figures.canvas import figure
    from bench.report.figures.forest import COLORS, stat_label

    t = table[np.isfinite(table["estimate"].astype(float))]
    if t.empty:
        raise BenchError("no row has an estimate to draw (every comparison was untested)")
    t, axis, delta = _units(t.reset_index(drop=True))
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise BenchError(f"--out {out}: the figure is written as PNG; name a .png file")
    if not out.parent.is_dir():
        raise BenchError(f"--out {out}: the folder {out.parent} does not exist")
    arms = t["projected"].nunique() > 1
    bases = t["base"].nunique() > 1  # each row names its comparator
    several = t.groupby("study")["workload"].transform("nunique") > 1
    stats = t["statistic"].nunique() > 1
    labels = [
        (f"{r.study}: {r.projected}" if arms else r.study)
        + (f" vs {r.base}" if bases else "")
        + ("\nat equal gradient evaluations" if r.kind == EQUAL_EVALS else "")
        + (f" ({r.workload})" if many else "")
        + (f", {stat_label(str(r.statistic))}" if stats else "")
        for r, many in zip(t.itertuples(), several)
    ]
    letter = _share_groups(t) if "shares_runs_with" in t else {}
    notes = [
        f"n = {r.n_pairs:g}, {r.family} ({CORRECTION.get(r.family, '?')} over {r.m})"
        + (f", runs {letter[r.study]}" if r.study in letter else "")
        for r in t.itertuples()
    ]
    # the plot keeps its width as labels grow (about 0.09 inch a character past 62, the longest
    # a row's label fits in 10.5 inches beside its note), and a row its height on two lines
    longest = max(len(line) for label in labels for line in label.splitlines())
    width = 10.5 + 0.09 * max(0, longest - 62)
    row = 0.55 if any("\n" in label for label in labels) else 0.42
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        with figure(Path(tmp), "forest.png", 1, 1, width, row * len(t) + 1.6) as (fig, axes):
            ax = axes[0, 0]
            y = np.arange(len(t))[::-1]
            band = (np.exp(-delta), np.exp(delta)) if axis == "ratio" else (-delta, delta)
            ax.axvspan(*band, color="#e8e8e8", zorder=0)
            ax.axvline(1.0 if axis == "ratio" else 0.0, color="0.4", lw=0.8, zorder=1)
            group = t["projected" if by == "arm" else "study"].to_numpy()
            parts = np.flatnonzero(group[1:] != group[:-1])
            for k in parts if len(parts) < len(group) - 1 else []:  # a line between groups
                ax.axhline(y[k] - 0.5, color="0.75", lw=0.8)
            for yi, r in zip(y, t.itertuples()):
                color = COLORS.get(r.verdict, "#000000")
                if np.isfinite(r.lo) and np.isfinite(r.hi):
                    ax.plot([r.lo, r.hi], [yi, yi], color=color, lw=2.2, solid_capstyle="butt")
                ax.plot([r.x], [yi], marker="o", color=color, ms=7, zorder=3)
            ax.set_yticks(y, labels)
            ax.set_ylim(-0.7, len(t) - 0.3)
            if axis == "ratio":
                ax.set_xscale("log")
            right = ax.secondary_yaxis("right")
            right.set_yticks(y, notes)
            right.tick_params(length=0)
            first = t.iloc[0]
            arm = "arm" if arms else str(first["projected"])
            base = "the row's comparator" if bases else str(first["base"])
            what = stat_label(str(first["statistic"]))
            better = "higher" if bool(first["higher_is_better"]) else "lower"
            if axis == "units of δ":
                xlabel = (f"{arm} against {base}: effect in units of its margin δ "
                          "(← worse for the arm | better →), 95% interval; band ±δ")  # fmt: skip
            elif axis == "ratio":
                xlabel = (f"{arm} / {base}: {what}, ratio ({better} is better), 95% "
                          "interval; band ±δ")  # fmt: skip
            else:
                xlabel = (f"{arm} − {base}: {what}, difference ({better} is better), "
                          "95% interval; band ±δ")  # fmt: skip
            ax.set_xlabel(xlabel)
            ax.grid(axis="y", visible=False)
            handles = [Line2D([], [], color=c, lw=2.5, label=v) for v, c in COLORS.items()]
            if letter:  # rows whose studies hold some of the same runs: not independent samples
                names = ", ".join(sorted(set(letter.values())))
                handles.append(Line2D([], [], ls="none", label=f"runs {names}: rows of studies "
                                      "that share runs (not independent samples)"))  # fmt: skip
            fig.legend(handles=handles, loc="outside lower center", ncols=4 + bool(letter),
                       frameon=False)  # fmt: skip
        os.replace(Path(tmp) / "forest.png", out)


def summary(table: pd.DataFrame) -> str:
    """The table as text: one line per study and arm."""
    lines = []
    for r in table.itertuples():
        # the p that decided: equivalence's (TOST) for *equivalent*, else no difference's
        p = r.p_equivalence_adjusted if r.verdict == "equivalent" else r.p_adjusted
        p = ("untested" if not np.isfinite(p) else "< 0.001" if p < 0.001 else f"= {p:.3g}") + (
            " (equivalence)" if r.verdict == "equivalent" else ""
        )
        shared = getattr(r, "shares_runs_with", "")  # a table read back: NaN where none
        shared = shared if isinstance(shared, str) and shared != "unknown" else ""
        est = f"{r.estimate:.3g} [{r.estimate_ci_lo:.3g}, {r.estimate_ci_hi:.3g}]"
        if r.scale == "log ratio":
            est = (f"ratio {np.exp(r.estimate):.3g} [{np.exp(r.estimate_ci_lo):.3g}, "
                   f"{np.exp(r.estimate_ci_hi):.3g}]")  # fmt: skip
        lines.append(
            f"{r.study}: {comparison_name(r.projected, r.base, r.kind)}, {r.statistic} "
            f"({r.workload}): {est}, "
            f"n = {r.n_pairs:g}; {r.verdict} ({r.family}, {CORRECTION.get(r.family, '?')} over "
            f"{r.m}, adjusted p {p})".replace("adjusted p untested", "untested")
            + (f"; shares runs with {shared}" if shared else "")
        )
    return "\n".join(lines)
