"""Everything the report reads from a results directory, loaded once and checked.

:func:`bench.store.read_results` reads the directory once (the same tidy frames as
``bench.load*``); this module adds what the report needs on top: the name of each optimizer,
which runs are non-finite, which optimizer is the ⊥Grad or surgery twin of which base, each
workload's metrics as its runs recorded them, and which runs the sweep asked for but did not
finish. The words are those of the glossary in :mod:`bench.report`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import store
from bench.errors import BenchError
from bench.report.labels import EQUAL_EVALS

SEQUENTIAL_FILE = "sequential.json"
"""Written by ``bench run --until-decided`` (:mod:`bench.sequential`): its design and looks."""


@dataclass(frozen=True)
class WorkloadInfo:
    """What the report needs to know about a workload's metrics."""

    name: str
    description: str
    metrics: dict[str, tuple[str, bool]]  # metric -> (description, higher_is_better)
    primary: str
    target: float | None
    scales: dict[str, tuple[tuple[float | None, float | None], bool]] = field(default_factory=dict)
    """metric -> (bounds, log_scale) as the runs recorded them (absent: unbounded, linear)."""
    margins: dict[str, float | None] = field(default_factory=dict)
    """metric -> its declared equivalence margin (``ogan.workloads.Metric.margin``; None: none)."""
    margin_source: str = "recorded"
    """Where ``margins`` come from: "recorded" by the runs, "declared now" (runs written before
    margins were recorded: the workload's current declaration), or "none" (not resolvable)."""

    def margin(self, metric: str | None = None) -> float | None:
        """The declared margin of ``metric`` (default: the primary); None: no equivalence."""
        return self.margins.get(metric or self.primary)

    @property
    def higher_is_better(self) -> bool:
        return self.metrics[self.primary][1]

    def bounds(self, metric: str | None = None) -> tuple[float | None, float | None]:
        """The (lo, hi) range of ``metric`` (default: the primary); None: no bound."""
        return self.scales.get(metric or self.primary, ((None, None), False))[0]

    def log_scale(self, metric: str | None = None) -> bool:
        """Whether ``metric`` (default: the primary) is positive and compared by ratio."""
        return self.scales.get(metric or self.primary, ((None, None), False))[1]

    def target_text(self) -> str:
        if self.target is None:
            return "no target"
        op = "≥" if self.higher_is_better else "≤"
        return f"{self.primary} {op} {self.target:g}"


@dataclass
class SweepData:
    """One results directory, loaded.

    ``runs``: one row per finished run (``bench.load_runs`` with its ``optimizer`` column, the
    spec's label, renamed ``label``; plus ``workload_name``, ``optimizer``, ``diverged``,
    ``nonfinite``, ``final``: the workload's final primary metric). ``history`` and ``traces``
    carry the same identity columns. ``workload`` is the report's workload key: the name, or
    the name with its options when one workload appears with several option sets.
    """

    path: Path
    sweep_dirs: list[Path]
    runs: pd.DataFrame
    history: pd.DataFrame
    traces: pd.DataFrame
    records: list[dict[str, Any]]
    workloads: dict[str, WorkloadInfo]  # by report workload key
    optimizer_config: dict[tuple[str, str], dict[str, Any]]  # (workload, optimizer) -> config
    pairs: pd.DataFrame  # workload, kind (ortho/surgery/baseline/declared/equal-evals), base,
    # projected
    missing: pd.DataFrame  # specs listed in sweep.json without a finished run, and why
    problems: pd.DataFrame  # run files that exist but do not read back
    expected: int | None  # number of specs in sweep.json (None: no sweep.json)
    notes: list[str] = field(default_factory=list)
    selection_seeds: dict[str, list[int]] = field(default_factory=dict)
    """Selection seeds by workload, fixed by ``--until-decided`` (empty: split the seeds)."""
    sequential: list[dict[str, Any]] = field(default_factory=list)
    """The comparisons of every ``sequential.json`` (their designs and looks), read once."""
    sweeps: list[str] = field(default_factory=list)
    """The sweeps the report is of: the names in the sweep directories' ``sweep.json`` when
    every directory names one, else the sweeps the runs were run in (``runs["sweep"]``). They
    differ when a sweep reuses other sweeps' runs (a run id does not hold the sweep's name)."""


def _workload_info(wl: str, name: str, records: list[dict[str, Any]]) -> tuple[WorkloadInfo, str]:
    """The metrics of workload ``wl`` (registered as ``name``) as its runs recorded them.

    Every run stores its own metric table and target (``summary["metrics"]``,
    ``summary["target"]``): a run's metric set can follow its workload options (seed-mlp on
    MNIST), so it is read from the runs, never from the workload class. Records written before
    ogan stored the table have only their ``final_<metric>`` values: lower is assumed better,
    and the returned note says so (as it says when the runs' tables disagree).
    """
    from ogan import workloads
    from ogan.errors import ConfigError

    try:
        declared = workloads.get(name)
        description = declared.description
    except ConfigError:
        declared, description = None, "(not a registered workload)"
    summaries = [r["summary"] for r in records]
    target = summaries[0].get("target") or {}
    if "metrics" in summaries[0]:
        metrics = {
            m: (v["description"], v["higher_is_better"]) for m, v in summaries[0]["metrics"].items()
        }
        scales = {
            m: (tuple(v.get("bounds") or (None, None)), bool(v.get("log_scale", False)))
            for m, v in summaries[0]["metrics"].items()
        }
        tables = {_canonical([s.get("metrics"), s.get("target")]) for s in summaries}
        note = (
            f"{wl}: its runs record different metric tables or targets; the first run's is used."
            if len(tables) > 1
            else ""
        )
    else:
        finals = sorted(
            k.removeprefix("final_")
            for k in {k for s in summaries for k, v in s.items() if v is not None}
            if k.startswith("final_")
        )
        metrics = {m: ("", False) for m in finals}
        scales = {}
        note = (
            f"{wl}: its runs record no metric table (written by an older ogan), so lower is "
            f"assumed better for {', '.join(finals)}."
        )
    primary = target.get("metric") or next(iter(metrics))
    value = target.get("value")
    margins, source, margin_note = _margins(wl, summaries[0].get("metrics") or {}, declared)
    info = WorkloadInfo(
        name=name,
        description=description,
        metrics=metrics,
        primary=primary,
        target=None if value is None else float(value),
        scales=scales,
        margins=margins,
        margin_source=source,
    )
    return info, " ".join(x for x in (note, margin_note) if x)


def _margins(
    wl: str, recorded: dict[str, Any], declared: Any
) -> tuple[dict[str, float | None], str, str]:
    """(metric -> margin, source, note). A run records its metrics' margins; a run written
    before margins existed falls back to the workload's current declaration when its class
    resolves (a margin is part of the question, not of the data, so a later declaration is
    still one made without these results), else no margin: no equivalence verdict."""
    if recorded and all("margin" in v for v in recorded.values()):
        return {m: v["margin"] for m, v in recorded.items()}, "recorded", ""
    table = getattr(declared, "metrics", None) or {}
    if declared is not None and all(m in table for m in recorded):
        margins = {m: table[m].margin for m in recorded}
        stated = ", ".join(f"{m} ±{v:g}" for m, v in margins.items() if v is not None)
        return (
            margins,
            "declared now",
            (
                f"{wl}: its runs predate recorded equivalence margins; the workload's current "
                f"declaration is used ({stated or 'none'})."
            ),
        )
    return (
        {m: None for m in recorded},
        "none",
        (
            f"{wl}: its runs record no equivalence margin and the workload's declaration cannot be "
            "read, so no comparison on it can be called equivalent."
        ),
    )


def _canonical(d: dict[str, Any]) -> str:
    return json.dumps(d, sort_keys=True, default=str)


def _optimizer_key(config_optimizer: dict[str, Any], drop: tuple[str, ...] = ()) -> str:
    """The optimizer configuration without lr (the swept axis) and without ``drop`` keys."""
    opt = {k: v for k, v in config_optimizer.items() if k != "lr" and k not in drop}
    if not opt.get("ortho"):
        opt.pop("ortho", None)
    return _canonical(opt)


def _workload_keys(records: list[dict[str, Any]]) -> dict[str, str]:
    """run_id -> workload key; a name with several option sets gets the differing options."""
    opts: dict[str, dict[str, dict[str, Any]]] = {}
    for r in records:
        spec = r["spec"]
        # surgery may be set in the [[workload]] table; it is part of the optimizer (the resolved
        # optimizer config carries it), not of the workload.
        options = {k: v for k, v in spec["workload_options"].items() if k != "surgery"}
        setting = {**options, "steps": spec["steps"], "eval_every": spec["eval_every"]}
        opts.setdefault(spec["workload"], {})[r["run_id"]] = setting
    keys = {}
    for name, by_run in opts.items():
        distinct = {_canonical(s) for s in by_run.values()}
        if len(distinct) == 1:
            keys.update(dict.fromkeys(by_run, name))
            continue
        all_keys = sorted({k for s in by_run.values() for k in s})
        differing = [
            k for k in all_keys if len({_canonical({k: s.get(k)}) for s in by_run.values()}) > 1
        ]
        for run_id, s in by_run.items():
            keys[run_id] = f"{name} ({', '.join(f'{k}={s.get(k)}' for k in differing)})"
    return keys


def _optimizers(
    records: list[dict[str, Any]], wl_key: dict[str, str]
) -> tuple[dict[str, str], dict[tuple[str, str], dict[str, Any]]]:
    """run_id -> optimizer name, and each optimizer's resolved config (lr dropped).

    The name is the spec's label. When one label covers several configs on a workload (e.g.
    surgery set in the workload table), "+ortho"/"+surgery" is appended, else a number.
    """
    by_label: dict[tuple[str, str], set[str]] = {}
    for r in records:
        key = _optimizer_key(r["config"]["optimizer"])
        by_label.setdefault((wl_key[r["run_id"]], r["spec"]["label"]), set()).add(key)
    naming: dict[tuple[str, str, str], str] = {}
    for (wl, label), keys in by_label.items():
        ordered = sorted(keys)
        names = {}
        for key in ordered:
            opt = json.loads(key)
            flags = [f for f in ("ortho", "surgery") if opt.get(f) and f not in label]
            names[key] = "+".join([label, *flags]) if len(keys) > 1 else label
        if len(set(names.values())) < len(keys):
            names = {k: f"{names[k]} #{i + 1}" for i, k in enumerate(ordered)}
        naming.update({(wl, label, k): n for k, n in names.items()})
    names_by_run, config = {}, {}
    for r in records:
        wl, label, opt = wl_key[r["run_id"]], r["spec"]["label"], r["config"]["optimizer"]
        name = naming[(wl, label, _optimizer_key(opt))]
        names_by_run[r["run_id"]] = name
        config[(wl, name)] = {k: v for k, v in opt.items() if k != "lr"}
    return names_by_run, config


def _pairs(
    records: list[dict[str, Any]],
    wl_key: dict[str, str],
    optimizer: dict[str, str],
    declared: Sequence[tuple[str, str, str]] = (),
) -> pd.DataFrame:
    """(workload, kind, base, projected) of every paired comparison the report makes.

    ``ortho`` / ``surgery``: an optimizer with the projection against its projection-free twin
    (the same configuration otherwise). ``baseline``: every optimizer without a projection
    against the workload's plain Adam (:func:`adam_reference`), so that the baselines of the
    sweep are seed-matched against the standard GAN optimizer as well. ``declared``: the
    sweep's own ``[[compare]]`` pairs (arm, against, budget), on every workload where both ran,
    unless the report already makes that comparison (either way round). ``equal-evals``
    (:data:`~bench.report.labels.EQUAL_EVALS`): a pair declared with ``budget = "grad_evals"``,
    compared at equal gradient evaluations (:func:`bench.report.tables.at_equal_evals`), which
    no other kind does, so it is always made.
    """
    keys: dict[tuple[str, str], str] = {}
    flags: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        wv = (wl_key[r["run_id"]], optimizer[r["run_id"]])
        opt = r["config"]["optimizer"]
        keys[wv] = _optimizer_key(opt)
        flags[wv] = opt
    by_key = {(wl, k): v for (wl, v), k in keys.items()}
    rows = []
    for (wl, v), opt in sorted(flags.items()):
        if opt.get("ortho"):
            base = by_key.get((wl, _optimizer_key(opt, drop=("ortho", "ortho_players"))))
            if base is not None:
                rows.append({"workload": wl, "kind": "ortho", "base": base, "projected": v})
        if opt.get("surgery"):
            base = by_key.get((wl, _optimizer_key({**opt, "surgery": False})))
            if base is not None:
                rows.append({"workload": wl, "kind": "surgery", "base": base, "projected": v})
    for wl in sorted({wl for wl, _ in flags}):
        names = {v: opt for (w, v), opt in flags.items() if w == wl}
        reference = adam_reference(names)
        for v, opt in sorted(names.items()):
            if reference is not None and v != reference and not _projected(opt):
                rows.append({"workload": wl, "kind": "baseline", "base": reference, "projected": v})
    for arm, against, budget in declared:
        kind = "declared" if budget == "steps" else EQUAL_EVALS
        for wl in sorted({wl for wl, _ in flags}):
            names = {v for w, v in flags if w == wl}
            made = any(
                r["workload"] == wl
                and {r["base"], r["projected"]} == {arm, against}
                and (r["kind"] == EQUAL_EVALS) == (kind == EQUAL_EVALS)
                for r in rows
            )  # the report makes it anyway (either way round)
            if arm in names and against in names and not made:
                rows.append({"workload": wl, "kind": kind, "base": against, "projected": arm})
    return pd.DataFrame(rows, columns=["workload", "kind", "base", "projected"])


def _projected(config_optimizer: dict[str, Any]) -> bool:
    return bool(config_optimizer.get("ortho") or config_optimizer.get("surgery"))


def adam_reference(configs: dict[str, dict[str, Any]]) -> str | None:
    """The plain Adam among one workload's optimizers (name -> optimizer config): the one named
    ``adam``, else the first (by name) that is torch's Adam without a projection; None if none.
    Overheads and the baseline comparisons are relative to it."""
    if "adam" in configs:
        return "adam"
    for v in sorted(configs):
        if configs[v].get("name") == "adam" and not _projected(configs[v]):
            return v
    return None


def _relabel(
    frame: pd.DataFrame, wl_key: dict[str, str], optimizer: dict[str, str]
) -> pd.DataFrame:
    """The report's workload and optimizer names; the store's names stay as workload_name, label."""
    if frame.empty:
        return frame
    frame = frame.rename(columns={"optimizer": "label"})
    frame.insert(frame.columns.get_loc("workload") + 1, "workload_name", frame["workload"])
    frame["workload"] = frame["run_id"].map(wl_key)
    frame.insert(frame.columns.get_loc("label") + 1, "optimizer", frame["run_id"].map(optimizer))
    return frame


def read_sequential(sweep_dir: Path) -> dict[str, Any]:
    """``sequential.json`` of ``sweep_dir`` checked ({} without it): the one place it is read
    for the report (``SweepData.sequential``); :mod:`bench.sequential` reads its own state."""
    path = sweep_dir / SEQUENTIAL_FILE
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text())
        state["selection_seeds"] = {
            wl: [int(s) for s in seeds] for wl, seeds in state["selection_seeds"].items()
        }
        state["comparisons"] = list(state.get("comparisons", []))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BenchError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    return state


def _missing_reason(sweep_dir: Path, run_id: str) -> str:
    """Why a run of sweep.json has no result: its last attempt's failure, or none yet."""
    failure = store.read_failure(sweep_dir, run_id)
    if failure is None:
        return "not run yet (or interrupted)"
    return f"failed, {failure.kind}: {failure.error}"


def load_sweep(path: Path) -> SweepData:
    """Load a results directory (a results root, a sweep directory, or its ``runs``).

    Raises BenchError with a one-line message when there is nothing to report on.
    """
    path = Path(path)
    if not path.exists():
        raise BenchError(f"no results directory {path}; run python -m bench run first")
    results = store.read_results(path)
    if not results.sweep_dirs:
        raise BenchError(
            f"no finished runs under {path} (no runs/ directory); run python -m bench run first"
        )
    expected_specs = [spec for m in results.manifests.values() for spec in m["specs"]]
    has_sweep_file = bool(results.manifests)
    problems = [
        {"sweep": sweep, "run_id": rid, "problem": what} for sweep, rid, what in results.problems
    ]
    if not results.records:
        detail = []
        if has_sweep_file:
            detail.append(f"sweep.json lists {len(expected_specs)} runs, none finished")
        if problems:
            detail.append(f"{len(problems)} run files do not read back")
        extra = f" ({'; '.join(detail)})" if detail else ""
        raise BenchError(f"no finished runs under {path}{extra}; run python -m bench run first")

    records = list(results.records)
    wl_key = _workload_keys(records)
    optimizer, optimizer_config = _optimizers(records, wl_key)
    runs = _relabel(results.runs, wl_key, optimizer)
    history = _relabel(results.history, wl_key, optimizer)
    traces = _relabel(results.traces, wl_key, optimizer)

    workloads = {}
    by_id = {r["run_id"]: r for r in records}
    notes = []
    for wl, group in runs.groupby("workload", sort=True):
        group_records = [by_id[i] for i in group["run_id"]]
        workloads[wl], note = _workload_info(wl, group["workload_name"].iloc[0], group_records)
        notes += [note] if note else []
    final = pd.Series(math.nan, index=runs.index)
    for wl, info in workloads.items():
        rows = runs["workload"] == wl
        column = f"final_{info.primary}"
        if column in runs:
            final[rows] = runs.loc[rows, column].astype(float)
    runs["final"] = final
    runs["diverged"] = runs["diverged_at"].notna()
    runs["nonfinite"] = runs["diverged"] | ~np.isfinite(runs["final"])

    seen = set(runs["run_id"])
    missing = [
        {
            "sweep": s.sweep,
            "workload": s.workload,
            "label": s.label,
            "lr": s.lr,
            "seed": s.seed,
            "run_id": s.run_id,
            "reason": _missing_reason(sweep_dir, s.run_id),
        }
        for sweep_dir, manifest in results.manifests.items()
        for s in manifest["specs"]
        if s.run_id not in seen
    ]
    missing_df = pd.DataFrame(
        missing, columns=["sweep", "workload", "label", "lr", "seed", "run_id", "reason"]
    )
    missing_df = missing_df.drop_duplicates("run_id").sort_values(
        ["workload", "label", "lr", "seed"]
    )
    if not has_sweep_file:
        notes.append(
            f"No {store.SWEEP} under {path}: runs that the sweep asked for but did not finish "
            "cannot be listed."
        )
    if results.repeated:
        dirs = sorted({d for d, _ in results.repeated})
        notes.append(
            f"{len(results.repeated)} run(s) stored in more than one sweep directory (also under "
            f"{', '.join(dirs)}: a sweep that reuses another's runs) are counted once."
        )
    sequential = [q for q in map(read_sequential, results.sweep_dirs) if q]
    declared = list(
        dict.fromkeys(
            (c["arm"], c["against"], c.get("budget", "steps"))
            for m in results.manifests.values()
            for c in m.get("compare", [])
        )
    )
    pairs = _pairs(records, wl_key, optimizer, declared)
    made = {frozenset(p) for p in zip(pairs["base"], pairs["projected"])}
    notes += [
        f"The sweep declares {arm} against {against}"
        f"{'' if budget == 'steps' else ' at equal gradient evaluations'}, but no workload has "
        "finished runs of both: that comparison is not made."
        for arm, against, budget in declared
        if frozenset((arm, against)) not in made
    ]
    named = [m.get("name") for m in results.manifests.values()]
    if named and all(named) and len(named) == len(results.sweep_dirs):
        sweeps = sorted(set(named))
    else:
        sweeps = sorted(runs["sweep"].unique())
    return SweepData(
        path=path,
        sweep_dirs=list(results.sweep_dirs),
        runs=runs,
        history=history,
        traces=traces,
        records=records,
        workloads=workloads,
        optimizer_config=optimizer_config,
        pairs=pairs,
        missing=missing_df.reset_index(drop=True),
        problems=pd.DataFrame(problems, columns=["sweep", "run_id", "problem"]),
        expected=len({s.run_id for s in expected_specs}) if has_sweep_file else None,
        notes=notes,
        selection_seeds={wl: s for q in sequential for wl, s in q["selection_seeds"].items()},
        sequential=[c for q in sequential for c in q["comparisons"]],
        sweeps=sweeps,
    )
