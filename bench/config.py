"""Sweep configuration: a TOML file (stdlib ``tomllib``) expanded into a grid of RunSpecs.

Schema
------

A sweep file has three kinds of tables. Every key is checked: an unknown key anywhere is an error
that names it and lists the valid keys. A *list* value is a grid axis (one run per element);
keys whose value is itself a sequence (optimizer ``betas``, bilinear ``singular_values``: ogan
says which, see :func:`ogan.registry.resolve_name`) take a plain list as one value and a list of
lists as an axis.

A name (a workload's, an optimizer's, lookahead's ``base``) is a registered one, one an installed
package registers (entry points ``ogan.workloads`` / ``ogan.optimizers``), or an import path
``"package.module:Attribute"``. **A sweep that names an import path runs that code**: run sweep
files you trust; ``bench run FILE --dry-run`` lists such names without importing anything.

``[sweep]``
    ``name``         directory name under ``--out`` (default: the file's stem). Letters, digits,
                     ``.``, ``_`` and ``-``.
    ``description``  free text, kept in ``sweep.json``.
    ``seeds``        list of integers >= 0 (default ``[0, 1, 2]``).
    ``steps``        generator updates per run (default: each workload's own default).
    ``eval_every``   steps between evaluations (default: each workload's own default).
    ``device``       ``"cpu"`` or ``"cuda"`` (default: cuda when available; ``--device`` wins).
    ``checkpoint_every``  steps between a run's checkpoints (default: 5,000 for runs over 10,000
                     steps, else none); an interrupted run resumes from its last one. It changes
                     no result, so it is not part of the run id.
    ``trace_every``  store every N-th step of a run's per-step trace (default 1: every step),
                     and its last. For long protocols with many seeds, whose traces would be
                     gigabytes (25,000 steps × 1,536 runs). Every statistic of the run's
                     summary (gradient-norm median, p99, growth, vanishing and exploding
                     fractions) is computed from every step before the trace is thinned, so it
                     changes no result and is not part of the run id.

``[[workload]]`` (one or more)
    ``name``         a workload (``python -m bench list``), or the import path of a
                     ``ogan.workloads.Workload`` subclass.
    ``steps``, ``eval_every``  override the sweep's for this workload (toy games and image
                     games need different lengths).
    any option of the workload (e.g. ``dim``, ``singular_values`` for ``bilinear``) and any game
    option of ``ogan.train``: ``scheme``, ``d_steps``, ``loss``, ``r1``, ``batch_size``,
    ``fresh_batch``, ``streams``, ``flush_denormal`` (``true``: subnormal floats flushed to
    zero on the CPU; another run, so another run id; ``false`` is the default).

``[[optimizer]]`` (one or more)
    ``name``         an optimizer (``python -m bench list``), or the import path of a
                     ``torch.optim.Optimizer`` subclass or factory (``"torch.optim:RAdam"``).
    ``lr``           the generator's learning rate, required; usually a list (the lr axis).
    ``lr_ratio``     the discriminator's lr is ``lr * lr_ratio`` (default 1; ``ttur``: 4).
    ``surgery``      ``true``: gradient surgery between D's real and fake terms.
    ``ortho``        ``"weights"``: ⊥Grad around the optimizer (``ortho_renorm`` to turn off
                     the rescaling).
    ``workloads``    run this entry only on these workloads (a list of names; default: all),
                     e.g. gradient surgery needs real data, so not the bilinear game.
    ``label``        the name in tables and figures. Default: derived from the entry, e.g.
                     ``adam``, ``adam+ortho``, ``adam+surgery``, ``lookahead(adam)``, ``ttur``;
                     axes other than ``lr`` append ``[key=value]``. Two entries with the same
                     label are an error.
    any hyperparameter of the optimizer (``betas``, ``eps``, ``momentum``, ``base``/``k``/
    ``alpha`` for ``lookahead`` ..., the keyword arguments of a user's optimizer).

``[[compare]]`` (optional, any number)
    ``arm``, ``against``  the labels of two of the sweep's optimizers: a paired comparison of
                     ``arm`` against ``against`` (difference = arm − against), declared with the
                     sweep, on every workload both ran. The report makes it beside the ones it
                     always makes (⊥Grad or surgery against its projection-free twin, every
                     other optimizer against Adam) and counts it in the same families:
                     confirmatory on the primary metric (Holm), secondary on the others.
                     E.g. ``arm = "adam+ortho"``, ``against = "extra-adam"``. It selects no
                     run, so it is not part of any run id.
    ``budget``       what the two arms are matched on (optional): ``"steps"`` (default: both
                     arms' final values after the sweep's steps) or ``"grad_evals"`` (equal
                     cost: each arm's values after as many gradient evaluations as the cheaper
                     arm spends in its whole run, i.e. the costlier arm's at its last
                     evaluation within that budget; Extra-Adam, two evaluations a step, is read
                     at half the steps of Adam). A pair may be declared at both budgets; the
                     report makes each, in the same families.

The grid is workloads (× their option axes) × optimizers (× their axes, ``lr`` included) × seeds.
Every combination becomes one frozen :class:`~bench.spec.RunSpec` whose content hash is its run
id: the hash of what determines the result (workload and its options, optimizer spec, seed,
steps, eval_every, device) and not of the label, so relabelling keeps finished runs and any other
change makes new ones. Every run still to do is validated with ``ogan.game.resolve`` before
anything is written.

Example::

    [sweep]
    name = "ring-ortho"
    seeds = [0, 1, 2]
    steps = 2000
    eval_every = 100

    [[workload]]
    name = "mog-ring"
    batch_size = 256

    [[optimizer]]
    name = "adam"
    lr = [1e-4, 2e-4, 5e-4]
    betas = [0.5, 0.999]

    [[optimizer]]
    name = "adam"
    ortho = "weights"
    lr = [1e-4, 2e-4, 5e-4]
    betas = [0.5, 0.999]

``python -m bench run quick`` and ``python -m bench run default`` (or no argument) use the sweeps
embedded in ``bench/sweeps/`` (an existing file of the same name wins).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from bench import grid
from bench.errors import BenchError
from bench.imports import Import, sweep_imports
from bench.spec import RunSpec, freeze
from ogan.errors import OganError
from ogan.game import resolve

SWEEP_KEYS = (
    "name", "description", "seeds", "steps", "eval_every", "device", "checkpoint_every",
    "trace_every",
)  # fmt: skip
TOP_KEYS = ("sweep", "workload", "optimizer", "compare")
COMPARE_KEYS = ("arm", "against")
COMPARE_OPTIONAL = ("budget",)
BUDGETS = ("steps", "grad_evals")
DEVICES = ("cpu", "cuda")
DEFAULT_SEEDS = (0, 1, 2)
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class Comparison(NamedTuple):
    """A declared ``[[compare]]``: ``arm`` against ``against`` (difference = arm − against),
    at equal ``budget``: ``"steps"`` (both arms' final values, after the sweep's steps) or
    ``"grad_evals"`` (each arm's values once it has spent as many gradient evaluations as the
    cheaper arm spends in the whole run: an extragradient method, two evaluations a step,
    at half the steps of a one-evaluation method)."""

    arm: str
    against: str
    budget: str = "steps"

    def to_dict(self) -> dict[str, str]:
        """As in ``sweep.json``; ``budget`` only where it is not the default, so that a sweep
        declared before the key existed keeps its manifest byte for byte."""
        out = {"arm": self.arm, "against": self.against}
        return out if self.budget == "steps" else {**out, "budget": self.budget}


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep: its identity, where it came from, and every run it asks for."""

    name: str
    description: str
    origin: str  # the file path, or "embedded:<name>"
    source: str  # the TOML text, kept in sweep.json
    device: str
    specs: tuple[RunSpec, ...]
    imports: tuple[Import, ...] = ()  # the code from outside ogan that it names
    checkpoint_every: int | None = None  # None: ogan's default (long runs only)
    trace_every: int = 1  # the stored trace keeps every N-th step (and the last)
    compare: tuple[Comparison, ...] = ()  # declared comparisons, by label

    def manifest(self) -> dict[str, Any]:
        """The content of ``sweep.json``: enough for a report to tell which runs are missing."""
        return {
            "name": self.name,
            "description": self.description,
            "origin": self.origin,
            "source": self.source,
            "device": self.device,
            "specs": [spec.to_dict() for spec in self.specs],
            "compare": [c.to_dict() for c in self.compare],
        }


def embedded_sweeps() -> tuple[str, ...]:
    """Names of the sweeps shipped in ``bench/sweeps`` (``default``, ``quick``, ...)."""
    folder = resources.files("bench") / "sweeps"
    return tuple(
        sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))
    )


def read_sweep(config: str | Path | None = None) -> tuple[str, str, str]:
    """(TOML text, origin, default name) of a sweep file or embedded sweep (None: default)."""
    config = "default" if config is None else config
    path = Path(config)
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8"), str(path), path.stem  # TOML is UTF-8
        except (OSError, UnicodeDecodeError) as exc:
            raise BenchError(f"cannot read {path}: {exc}") from None
    names = embedded_sweeps()
    if str(config) in names:
        text = (resources.files("bench") / "sweeps" / f"{config}.toml").read_text("utf-8")
        return text, f"embedded:{config}", str(config)
    raise BenchError(
        f"no config file {str(config)!r} and no embedded sweep of that name; "
        f"embedded: {', '.join(names)}"
    )


def load_sweep(config: str | Path | None = None, *, device: str | None = None) -> Sweep:
    """Read a sweep from a TOML file or by embedded name (None: ``default``) and expand it.

    ``device`` overrides the file's ``[sweep] device``. Raises BenchError/ConfigError on bad
    input; the grid's values are checked by :func:`validate`, not here.
    """
    text, origin, default_name = read_sweep(config)
    return parse_sweep(text, origin=origin, default_name=default_name, device=device)


def parse_toml(text: str, origin: str = "<string>") -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"malformed TOML in {origin}: {exc}") from None


def parse_sweep(
    text: str, *, origin: str = "<string>", default_name: str = "sweep", device: str | None = None
) -> Sweep:
    """Parse TOML text into a :class:`Sweep` (see the module docstring for the schema)."""
    doc = parse_toml(text, origin)
    grid.check_keys(doc, TOP_KEYS, "the top level")
    head = doc.get("sweep", {})
    if not isinstance(head, dict):
        raise BenchError("[sweep] must be a table")
    grid.check_keys(head, SWEEP_KEYS, "[sweep]")

    name = head.get("name", default_name)
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise BenchError(
            f"[sweep] name must be letters, digits, '.', '_' or '-' (a directory name), "
            f"got {name!r}"
        )
    description = head.get("description", "")
    if not isinstance(description, str):
        raise BenchError(f"[sweep] description must be a string, got {description!r}")
    seeds = head.get("seeds", list(DEFAULT_SEEDS))
    if not isinstance(seeds, list) or not all(grid.is_int(s) and s >= 0 for s in seeds):
        raise BenchError(f"[sweep] seeds must be a list of integers >= 0, got {seeds!r}")
    if not seeds:
        raise BenchError("empty grid: [sweep] seeds = []")
    for key in grid.RUN_KEYS:
        grid.check_length(head, key, "[sweep]")
    device = device if device is not None else head.get("device", default_device())
    if device not in DEVICES:
        raise BenchError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")

    every = head.get("checkpoint_every")
    if every is not None and not (grid.is_int(every) and every > 0):
        raise BenchError(f"[sweep] checkpoint_every must be an integer >= 1, got {every!r}")
    trace_every = head.get("trace_every", 1)
    if not (grid.is_int(trace_every) and trace_every > 0):
        raise BenchError(f"[sweep] trace_every must be an integer >= 1, got {trace_every!r}")

    workload_tables = grid.tables(doc, "workload")
    optimizer_tables = grid.tables(doc, "optimizer")
    names = [t.get("name") for t in workload_tables]
    variants = grid.optimizer_variants(optimizer_tables, [n for n in names if isinstance(n, str)])
    for v in variants:
        if v.only is not None and not set(names).intersection(v.only):
            raise BenchError(
                f"empty grid: optimizer {v.label!r} is restricted to workloads "
                f"{', '.join(v.only)}, and the sweep has none of them"
            )

    specs: list[RunSpec] = []
    for i, table in enumerate(workload_tables, 1):
        where = f"[[workload]] #{i}"
        entry = grid.workload_entry(table, where)
        cls = entry.obj
        steps = table.get("steps", head.get("steps", cls.default_steps))
        eval_every = table.get("eval_every", head.get("eval_every", cls.default_eval_every))
        for opts in grid.workload_points(table, entry, where):
            for v in variants:
                if v.only is not None and entry.name not in v.only:
                    continue
                for seed in seeds:
                    specs.append(
                        RunSpec(
                            sweep=name,
                            workload=entry.name,
                            workload_options=freeze(opts),
                            optimizer=freeze(v.spec),
                            label=v.label,
                            seed=seed,
                            steps=steps,
                            eval_every=eval_every,
                            device=device,
                        )
                    )
    _check_unique(specs)
    compare = _comparisons(doc, variants)
    imports = tuple(sweep_imports(doc))
    return Sweep(
        name, description, origin, text, device, tuple(specs), imports, every, trace_every, compare
    )


def _comparisons(doc: dict[str, Any], variants: list[grid.Variant]) -> tuple[Comparison, ...]:
    """The sweep's ``[[compare]]`` tables, each checked: both are labels of the sweep's
    optimizers, they differ, the budget is one of :data:`BUDGETS`, and no pair is declared twice
    at one budget (either way round)."""
    if "compare" not in doc:
        return ()
    found = doc["compare"]
    if not isinstance(found, list) or not all(isinstance(t, dict) for t in found):
        raise BenchError(
            "[[compare]] must be an array of tables (write [[compare]], not [compare])"
        )
    labels = [v.label for v in variants]
    pairs: list[Comparison] = []
    for i, table in enumerate(found, 1):
        where = f"[[compare]] #{i}"
        grid.check_keys(table, COMPARE_KEYS + COMPARE_OPTIONAL, where)
        missing = [k for k in COMPARE_KEYS if k not in table]
        if missing:
            raise BenchError(
                f"{where} needs {' and '.join(missing)}: the labels of two of the sweep's "
                f'optimizers, e.g. arm = "adam+ortho", against = "extra-adam"'
            )
        arm, against = table["arm"], table["against"]
        for key, value in (("arm", arm), ("against", against)):
            if value not in labels:
                raise BenchError(
                    f"{where} {key} = {value!r} is not an optimizer of this sweep; its labels: "
                    f"{', '.join(dict.fromkeys(labels))}"
                )
        if arm == against:
            raise BenchError(f"{where} compares {arm!r} with itself; name two different labels")
        budget = table.get("budget", "steps")
        if budget not in BUDGETS:
            raise BenchError(
                f"{where} budget = {budget!r} is not one of {', '.join(map(repr, BUDGETS))}: "
                '"steps" compares final values, "grad_evals" values at equal gradient evaluations'
            )
        if {(arm, against, budget), (against, arm, budget)} & set(pairs):
            at = "" if budget == "steps" else f" at budget = {budget!r}"
            raise BenchError(f"{where} declares {arm!r} against {against!r}{at} a second time")
        pairs.append(Comparison(arm, against, budget))
    return tuple(pairs)


def validate(specs: Iterable[RunSpec], *, device: str | None = None) -> None:
    """Resolve every run with ``ogan.game.resolve``; the first bad one raises, naming the run.

    ``device`` replaces the specs' device for the check (a remote cluster's GPUs cannot be
    checked from here).
    """
    seen: set[tuple[Any, ...]] = set()
    for spec in specs:
        kwargs = spec.train_kwargs()
        if device is not None:
            kwargs["device"] = device
        key = (spec.workload, spec.workload_options, spec.optimizer, spec.steps, spec.eval_every)
        if key in seen:  # the seed is checked by parse_sweep; the rest is the same check again
            continue
        seen.add(key)
        for name in ("lr", "lr_ratio"):  # ogan.train would convert them: too late for the id
            value = dict(spec.optimizer).get(name)
            if isinstance(value, str):
                raise BenchError(
                    f"{spec.workload} × {spec.label}: {name} = {value!r} is a string; write the "
                    f"number without quotes ({name} = {value})"
                )
        try:
            resolve(**kwargs, threads=1)
        except OganError as exc:
            raise type(exc)(f"{spec.workload} × {spec.label} (lr={spec.lr:g}): {exc}") from None


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_unique(specs: list[RunSpec]) -> None:
    first: dict[str, RunSpec] = {}
    for spec in specs:
        other = first.setdefault(spec.run_id, spec)
        if other is not spec:
            raise BenchError(
                f"two grid points give the same run ({spec.workload} × {other.label} and "
                f"{spec.workload} × {spec.label}, lr={spec.lr:g}, seed {spec.seed}); "
                "remove the duplicate [[workload]] or [[optimizer]] entry"
            )
