"""``bench run CONFIG --until-decided``: add seeds in rounds to the comparisons still undecided.

The comparisons are the report's paired ones (a variant and its ⊥Grad- or surgery-free twin,
:func:`bench.report.data.load_sweep`'s ``pairs``), each at the learning rates the report selects
on the selection seeds. One invocation:

1. runs (or resumes) the sweep's grid, then fixes each workload's selection seeds, so that the
   seeds added later are report seeds and the selected learning rates never move;
2. takes a *look* at every undecided comparison with new pairs: its verdict under the
   group-sequential design of :mod:`bench.report.spending` (Lan–DeMets alpha spending with
   O'Brien–Fleming-type boundaries on the paired t statistic), valid however many looks;
3. runs the next round of seeds (:data:`SEEDS_PER_ROUND` new seeds, the same for both sides of
   every pair and every comparison of a workload) only for the two variants of each comparison
   still undecided and below ``max_seeds``, then goes back to 2.

No look is taken before :data:`MIN_FIRST_LOOK` pairs (unless the design ends sooner): with
fewer, the spread is estimated from too few degrees of freedom, and a skewed difference (the
t statistic's weak point) misleads most there. Each comparison runs at level α / m, m the
comparisons of its workload (its confirmatory family, :mod:`bench.report.families`), and its
margin is the metric's declared one (``Metric.margin``); equivalence is reached only through
its boundary (:func:`bench.report.verdicts.classify`: no all-zero shortcut).

Limitation, measured (``tests/test_sequential.py``): the boundaries are exact for normal
differences and hold for symmetric discrete ones (whole modes of 8: 5.2% at α = 5%, 20,000
simulated studies, looks at 5, 9, 13, 17, 20 pairs); for right-skewed differences the t
statistic is skewed too, and the false better/worse rate exceeds α: 8.7% for a centred
lognormal with σ = 0.5, 19.8% with σ = 1 (``tests/test_spending.py``). No test of a mean is
exact for such data at these n; the remedy is the metric's ``log_scale`` flag (compared by log
ratio, the same simulation keeps 5.0%), which every positive, multiplicative metric here has.

A comparison stops at its first decided look (better, worse, equivalent) or when it reaches
``max_seeds`` seeds (selection seeds included), undecided. The design (α, the most seeds, the
selection seeds, every look) is kept in ``<sweep dir>/sequential.json``, so an interrupted
session resumes where it stopped; ``max_seeds`` cannot change once looks were taken (the
boundaries depend on it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import store
from bench.config import Sweep
from bench.config import load_sweep as load_config
from bench.errors import BenchError
from bench.report import decisions, spending, tables, verdicts
from bench.report.data import SEQUENTIAL_FILE, SweepData, load_sweep
from bench.runner import run_sweep
from bench.spec import RunSpec
from ogan.workloads.base import Metric

DEFAULT_MAX_SEEDS = 20
MIN_FIRST_LOOK = 5
"""The first look needs this many pairs (module docstring)."""
SEEDS_PER_ROUND = 4
"""Four new seeds per round: few looks cost little power under O'Brien–Fleming spending, and
each round restarts the workers."""
METHOD = (
    "group-sequential paired t-test: Lan-DeMets alpha spending, O'Brien-Fleming-type "
    "boundaries computed for the t statistic by simulation (bench.report.spending)"
)


@dataclass
class SequentialReport:
    """What ``run_until_decided`` did; ``comparisons`` are the state file's entries."""

    sweep_dir: Path
    rounds: int = 0
    ran: int = 0
    failed: int = 0
    transient: int = 0  # failures that may not repeat (bench.worker.is_transient)
    comparisons: list[dict[str, Any]] = field(default_factory=list)


def run_until_decided(
    config: str | Path | None = None,
    *,
    out: str | Path = "results",
    max_seeds: int | None = None,
    seeds_per_round: int = SEEDS_PER_ROUND,
    jobs: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    device: str | None = None,
    population: int | None = None,
    echo: Callable[[str], None] = print,
) -> SequentialReport:
    """Run the sweep, then rounds of seeds until every paired comparison is decided.

    ``max_seeds``: the most seeds a variant of a comparison gets, selection seeds included
    (default: the design's if one was started, else :data:`DEFAULT_MAX_SEEDS`). ``force``
    applies to the grid only; ``population`` as for :func:`~bench.runner.run_sweep`. Bad input
    raises BenchError before anything runs.
    """
    sweep = load_config(config, device=device)
    sweep_dir = Path(out) / sweep.name
    state = _read_state(sweep_dir / SEQUENTIAL_FILE, max_seeds)
    seeds = sorted({spec.seed for spec in sweep.specs})
    if len(seeds) < 2:
        raise BenchError(
            "--until-decided needs at least 2 seeds (the lower half selects each learning "
            f"rate, the rest report); the sweep has {seeds}: add seeds to [sweep]"
        )
    if state is None:
        max_seeds = DEFAULT_MAX_SEEDS if max_seeds is None else max_seeds
        if max_seeds < len(seeds):
            raise BenchError(f"--max-seeds {max_seeds} is below the sweep's {len(seeds)} seeds")
    grid = run_sweep(
        config, out=out, jobs=jobs, scheduler=scheduler, force=force, device=device,
        population=population, echo=echo,
    )  # fmt: skip
    report = SequentialReport(grid.sweep_dir, ran=grid.ran, failed=grid.failed)
    report.transient = grid.transient
    if grid.failed:
        echo("--until-decided: runs of the grid failed; the grid must finish first (see above)")
        return report
    if state is None:
        state = _new_state(load_sweep(grid.sweep_dir), int(max_seeds))
    sweep = _extend(grid.sweep, [RunSpec.from_dict(a["spec"]) for a in state["added"]])
    while True:
        a = tables.analyse(load_sweep(grid.sweep_dir))
        take_looks(state, a)
        todo = next_round(state, a, seeds_per_round)
        state["added"] += [{"workload": wl, "spec": spec.to_dict()} for wl, spec in todo]
        store.atomic_write_json(grid.sweep_dir / SEQUENTIAL_FILE, state)
        if not todo:
            break
        report.rounds += 1
        undecided = sum(not c["done"] for c in state["comparisons"])
        echo(f"round {report.rounds}: {undecided} comparison(s) undecided, {len(todo)} new runs")
        sweep = _extend(sweep, [spec for _, spec in todo])
        ran = run_sweep(sweep, out=out, jobs=jobs, scheduler=scheduler, population=population,
                        echo=echo)  # fmt: skip
        report.ran, report.failed = report.ran + ran.ran, report.failed + ran.failed
        report.transient += ran.transient
        if ran.failed:
            echo("--until-decided: runs failed (see above); the rounds stop here")
            break
    report.comparisons = state["comparisons"]
    echo(verdict_table(state["comparisons"]))
    return report


def _extend(sweep: Sweep, specs: list[RunSpec]) -> Sweep:
    """The sweep with the added runs it does not have yet (its grid may have grown since)."""
    known = {spec.run_id for spec in sweep.specs}
    new = tuple(spec for spec in specs if spec.run_id not in known)
    return dataclasses.replace(sweep, specs=(*sweep.specs, *new))


def _read_state(path: Path, max_seeds: int | None) -> dict[str, Any] | None:
    """The design started earlier (None: none); it must keep its ``max_seeds``."""
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(state, dict):
            raise TypeError("not a JSON object")
        missing = {"max_seeds", "selection_seeds", "comparisons", "added"} - set(state)
        if missing:
            raise KeyError(", ".join(sorted(missing)))
    except (ValueError, KeyError, TypeError) as exc:
        raise BenchError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    if max_seeds is not None and max_seeds != state["max_seeds"]:
        raise BenchError(
            f"{path} was started with --max-seeds {state['max_seeds']}, and its boundaries "
            f"depend on it; run again with --max-seeds {state['max_seeds']} (or start a new "
            "design in a new --out directory)"
        )
    return state


def _new_state(data: SweepData, max_seeds: int) -> dict[str, Any]:
    """A new design: the selection seeds are those of the grid as it is now."""
    splits = tables.seed_splits(data.runs)
    return {
        "method": METHOD,
        "alpha": verdicts.ALPHA,
        "max_seeds": max_seeds,
        "selection_seeds": {wl: split.selection for wl, split in splits.items()},
        "comparisons": [],
        "added": [],
    }


def metric_of(data: SweepData, workload: str) -> Metric:
    """The workload's primary metric as its runs recorded it (the registered class fills the
    fields that older records lack)."""
    from ogan import workloads
    from ogan.errors import ConfigError

    info = data.workloads[workload]
    fields: dict[str, Any] = {"description": "", "higher_is_better": info.higher_is_better}
    with contextlib.suppress(ConfigError, KeyError):  # not registered (any more)
        fields.update(dataclasses.asdict(workloads.get(info.name).metrics[info.primary]))
    ids = set(data.runs.loc[data.runs["workload"] == workload, "run_id"])
    for record in data.records:
        recorded = record["summary"].get("metrics", {}).get(info.primary)
        if record["run_id"] in ids and recorded:
            fields.update(recorded)
            break
    known = {f.name for f in dataclasses.fields(Metric)}
    fields = {k: v for k, v in fields.items() if k in known}
    fields["bounds"] = tuple(fields.get("bounds", (None, None)))
    return Metric(**fields)


def _seeds_run(a: tables.Analysis, workload: str, variants: tuple[str, str]) -> set[int]:
    """Report seeds on which both variants have a stored run (failed or not)."""
    base, variant = (set(a.by_seed(workload, v).index) for v in variants)
    return base & variant


def take_looks(state: dict[str, Any], a: tables.Analysis) -> None:
    """A look at every comparison not yet done that has new pairs (or reached its last seeds).

    ``a``: the report's analysis of the runs as they are (its learning-rate selection, seed
    split and reported runs); the verdict at a look is :func:`decisions.final_verdict`'s, the
    one function that also gives the report's."""
    data = a.data
    lr = a.best.set_index(["workload", "optimizer"])["lr"]
    entries = {_key(c): c for c in state["comparisons"]}
    for p in data.pairs.itertuples(index=False):
        key = (p.workload, p.kind, p.base, p.projected)
        lrs = [float(lr[(p.workload, v)]) for v in (p.base, p.projected)]
        entry = entries.get(key)
        if entry is None and p.workload not in state["selection_seeds"]:
            raise BenchError(
                f"workload {p.workload} is not in the sequential design started earlier (the "
                "grid changed); start a new design in a new --out directory"
            )
        if entry is None:
            entry = _new_entry(state, data, p, lrs)
            entries[key] = entry
            state["comparisons"].append(entry)
        if [entry["lr_base"], entry["lr_variant"]] != lrs:
            raise BenchError(
                f"{p.workload}: the selected learning rates of {p.base} / {p.projected} changed "
                f"since the sequential design started ({entry['lr_base']:g} / "
                f"{entry['lr_variant']:g} -> {lrs[0]:g} / {lrs[1]:g}): the grid changed; "
                "start a new design in a new --out directory"
            )
        if entry["done"]:
            continue
        _look(entry, a, p)


def _key(entry: dict[str, Any]) -> tuple[str, str, str, str]:
    return entry["workload"], entry["kind"], entry["base"], entry["variant"]


def _new_entry(state: dict[str, Any], data: SweepData, p: Any, lrs: list[float]) -> dict:
    metric = metric_of(data, p.workload)
    return {
        "workload": p.workload,
        "kind": p.kind,
        "base": p.base,
        "variant": p.projected,
        "metric": data.workloads[p.workload].primary,
        "higher_is_better": metric.higher_is_better,
        "log_scale": metric.log_scale,
        "lr_base": lrs[0],
        "lr_variant": lrs[1],
        "max_pairs": state["max_seeds"] - len(state["selection_seeds"][p.workload]),
        "alpha": decisions.family_alpha(data, p.workload),
        "declared_margin": metric.margin,
        "scale": None,  # fixed at the first look, with the margin
        "margin": None,
        "looks": [],
        "verdict": verdicts.UNDECIDED,
        "done": False,
    }


def _look(entry: dict[str, Any], a: tables.Analysis, p: Any) -> None:
    base, variant = a.compared(p)
    pairs = verdicts.paired_values(base, variant)
    final = len(_seeds_run(a, p.workload, (p.base, p.projected))) >= entry["max_pairs"]
    first = min(MIN_FIRST_LOOK, entry["max_pairs"])
    if entry["scale"] is None and (len(pairs) >= first or (final and len(pairs) >= 2)):
        entry["scale"] = verdicts.comparison_scale(pairs, entry["log_scale"])
        margin = verdicts.margin_for(
            entry["scale"], entry.get("declared_margin"), entry["log_scale"]
        )
        entry["margin"] = _number(margin)
    if entry["scale"] is None:  # too few pairs: no look yet
        entry["done"] = final
        return
    diffs = verdicts.paired_diffs(pairs, entry["scale"])
    diffs = diffs[np.isfinite(diffs)]  # a log ratio of a value that reached 0 is not
    previous = [look["n"] for look in entry["looks"]]
    if previous and len(diffs) == previous[-1] and not final:
        return  # nothing new since the last look
    if len(diffs) < 2:  # finite pairs too few for any test: no look
        entry["done"] = final
        return
    looks = [*previous, len(diffs)]
    entry["looks"].append({"n": len(diffs), "final": final})
    v, design = decisions.final_verdict(base, variant, a.data, p.workload, entry)
    if design != decisions.SEQUENTIAL:  # final_verdict takes the design at this look's pairs
        raise AssertionError(f"{_key(entry)}: the look at {len(diffs)} pairs was not taken")
    bounds = spending.boundaries(
        looks, entry["max_pairs"], alpha=entry.get("alpha", verdicts.ALPHA), final=final
    )
    entry["looks"][-1].update(  # n and final: set above, for final_verdict
        {
            "seeds": [int(s) for s in diffs.index],
            "verdict": v.verdict,
            "estimate": _number(v.estimate),
            "interval": [_number(v.ci_lo), _number(v.ci_hi)],
            "equivalence_interval": [_number(v.eq_lo), _number(v.eq_hi)],
            "boundary": _number(bounds.difference[-1]),
            "equivalence_boundary": _number(bounds.equivalence[-1]),
            "describe": v.describe(),
        }
    )
    entry["verdict"], entry["done"] = v.verdict, v.decided or final


def _number(x: float) -> float | None:
    """JSON has no inf or NaN: an infinite boundary (a look that spends nothing) is null."""
    return float(x) if math.isfinite(x) else None


def next_round(
    state: dict[str, Any], a: tables.Analysis, seeds_per_round: int
) -> list[tuple[str, RunSpec]]:
    """(workload, run) of the next round: new seeds for both variants of every undecided
    comparison, the same seeds for every comparison of a workload."""
    if seeds_per_round < 1:
        raise BenchError(f"seeds per round must be >= 1, got {seeds_per_round}")
    data = a.data
    todo: dict[str, tuple[str, RunSpec]] = {}
    for entry in state["comparisons"]:
        if entry["done"]:
            continue
        wl = entry["workload"]
        run = _seeds_run(a, wl, (entry["base"], entry["variant"]))
        count = min(seeds_per_round, entry["max_pairs"] - len(run))
        used = set(data.runs.loc[data.runs["workload"] == wl, "seed"])
        used |= {added["spec"]["seed"] for added in state["added"] if added["workload"] == wl}
        first = max(used) + 1  # unused by every variant: a seed means the same on both sides
        for variant, lr in (
            (entry["base"], entry["lr_base"]),
            (entry["variant"], entry["lr_variant"]),
        ):
            template = _template(data, wl, variant, lr)
            for seed in range(first, first + count):
                spec = dataclasses.replace(template, seed=seed)
                todo[spec.run_id] = (wl, spec)
    return list(todo.values())


def _template(data: SweepData, workload: str, variant: str, lr: float) -> RunSpec:
    runs = data.runs
    rows = runs[
        (runs["workload"] == workload) & (runs["optimizer"] == variant) & (runs["lr"] == lr)
    ]
    run_id = rows["run_id"].iloc[0]
    record = next(r for r in data.records if r["run_id"] == run_id)
    return RunSpec.from_dict(record["spec"])


def verdict_table(comparisons: list[dict[str, Any]]) -> str:
    """One line per comparison: its verdict at its last look."""
    if not comparisons:
        return "no paired comparisons (a variant and its ⊥Grad- or surgery-free twin) to decide"
    rows = [
        {
            "workload": c["workload"],
            "comparison": f"{c['variant']} vs {c['base']}",
            "metric": c["metric"],
            "looks": ", ".join(str(look["n"]) for look in c["looks"]) or "-",
            "verdict": c["looks"][-1]["describe"] if c["looks"] else "undecided: < 2 pairs",
        }
        for c in comparisons
    ]
    return pd.DataFrame(rows).to_string(index=False)
