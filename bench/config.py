"""Sweep configuration: a TOML file (stdlib ``tomllib``) expanded into a grid of RunSpecs.

Schema
------

A sweep file has three kinds of tables. Every key is checked: an unknown key anywhere is an error
that names it and lists the valid keys. A *list* value is a grid axis (one run per element);
keys whose value is itself a sequence (optimizer ``betas``, bilinear ``singular_values``, found
by introspection: a tuple default in the optimizer's signature or a tuple-typed workload option)
take a plain list as one value and a list of lists as an axis.

``[sweep]``
    ``name``         directory name under ``--out`` (default: the file's stem). Letters, digits,
                     ``.``, ``_`` and ``-``.
    ``description``  free text, kept in ``sweep.json``.
    ``seeds``        list of integers >= 0 (default ``[0, 1, 2]``).
    ``steps``        generator updates per run (default: each workload's own default).
    ``eval_every``   steps between evaluations (default: each workload's own default).
    ``device``       ``"cpu"`` or ``"cuda"`` (default: cuda when available; ``--device`` wins).

``[[workload]]`` (one or more)
    ``name``         a registered workload (``python -m bench list``).
    ``steps``, ``eval_every``  override the sweep's for this workload (toy games and image
                     games need different lengths).
    any option of the workload (e.g. ``dim``, ``singular_values`` for ``bilinear``) and any game
    option of ``ogan.train``: ``scheme``, ``d_steps``, ``loss``, ``r1``, ``batch_size``,
    ``fresh_batch``.

``[[optimizer]]`` (one or more)
    ``name``         a registered optimizer (``python -m bench list``).
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
    ``alpha`` for ``lookahead`` ...).

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

import dataclasses
import inspect
import itertools
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.spec import RunSpec, freeze
from ogan import optim, workloads
from ogan.errors import ConfigError, OganError
from ogan.game import resolve

SWEEP_KEYS = ("name", "description", "seeds", "steps", "eval_every", "device")
TOP_KEYS = ("sweep", "workload", "optimizer")
DEVICES = ("cpu", "cuda")
DEFAULT_SEEDS = (0, 1, 2)
_RUN_KEYS = ("steps", "eval_every")
"""Keys of a [[workload]] table that set the run's length rather than a workload option."""
_NOT_GAME_OPTIONS = {
    "steps",
    "eval_every",
    "seed",
    "device",
    "threads",
    "lr",
    "lr_ratio",
    "surgery",
}
"""Keyword arguments of ``ogan.game.resolve`` that the sweep sets, or that are optimizer keys."""
GAME_OPTIONS = tuple(
    p.name
    for p in inspect.signature(resolve).parameters.values()
    if p.kind is p.KEYWORD_ONLY and p.name not in _NOT_GAME_OPTIONS
)
_GAME_OPTIMIZER_KEYS = ("name", "label", "workloads", "lr", "lr_ratio", "surgery")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep: its identity, where it came from, and every run it asks for."""

    name: str
    description: str
    origin: str  # the file path, or "embedded:<name>"
    source: str  # the TOML text, kept in sweep.json
    device: str
    specs: tuple[RunSpec, ...]

    def manifest(self) -> dict[str, Any]:
        """The content of ``sweep.json``: enough for a report to tell which runs are missing."""
        return {
            "name": self.name,
            "description": self.description,
            "origin": self.origin,
            "source": self.source,
            "device": self.device,
            "specs": [spec.to_dict() for spec in self.specs],
        }


def embedded_sweeps() -> tuple[str, ...]:
    """Names of the sweeps shipped in ``bench/sweeps`` (``default``, ``quick``, ...)."""
    folder = resources.files("bench") / "sweeps"
    return tuple(
        sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))
    )


def load_sweep(config: str | Path | None = None, *, device: str | None = None) -> Sweep:
    """Read a sweep from a TOML file or by embedded name (None: ``default``) and expand it.

    ``device`` overrides the file's ``[sweep] device``. Raises BenchError/ConfigError on bad
    input; the grid's values are checked by :func:`validate`, not here.
    """
    config = "default" if config is None else config
    path = Path(config)
    if path.is_file():
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise BenchError(f"cannot read {path}: {exc}") from None
        return parse_sweep(text, origin=str(path), default_name=path.stem, device=device)
    names = embedded_sweeps()
    if str(config) in names:
        text = (resources.files("bench") / "sweeps" / f"{config}.toml").read_text()
        return parse_sweep(
            text, origin=f"embedded:{config}", default_name=str(config), device=device
        )
    raise BenchError(
        f"no config file {str(config)!r} and no embedded sweep of that name; "
        f"embedded: {', '.join(names)}"
    )


def parse_sweep(
    text: str, *, origin: str = "<string>", default_name: str = "sweep", device: str | None = None
) -> Sweep:
    """Parse TOML text into a :class:`Sweep` (see the module docstring for the schema)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"malformed TOML in {origin}: {exc}") from None
    _check_keys(doc, TOP_KEYS, "the top level")
    head = _table(doc.get("sweep", {}), "[sweep]")
    _check_keys(head, SWEEP_KEYS, "[sweep]")

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
    if not isinstance(seeds, list) or not all(_is_int(s) and s >= 0 for s in seeds):
        raise BenchError(f"[sweep] seeds must be a list of integers >= 0, got {seeds!r}")
    if not seeds:
        raise BenchError("empty grid: [sweep] seeds = []")
    for key in _RUN_KEYS:
        _check_length(head, key, "[sweep]")
    device = device if device is not None else head.get("device", default_device())
    if device not in DEVICES:
        raise BenchError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")

    workload_tables = _tables(doc, "workload")
    optimizer_tables = _tables(doc, "optimizer")
    variants = _optimizer_variants(optimizer_tables)
    names = {t.get("name") for t in workload_tables}
    for label, _, only in variants:
        if only is not None and not names.intersection(only):
            raise BenchError(
                f"empty grid: optimizer {label!r} is restricted to workloads "
                f"{', '.join(only)}, and the sweep has none of them"
            )

    specs: list[RunSpec] = []
    for i, table in enumerate(workload_tables, 1):
        where = f"[[workload]] #{i}"
        cls = _workload_class(table, where)
        valid = (
            "name",
            *_RUN_KEYS,
            *GAME_OPTIONS,
            *(f.name for f in dataclasses.fields(cls.Options)),
        )
        _check_keys(table, valid, f"{where} ({cls.name})")
        for key in _RUN_KEYS:
            _check_length(table, key, where)
        steps = table.get("steps", head.get("steps", cls.default_steps))
        eval_every = table.get("eval_every", head.get("eval_every", cls.default_eval_every))
        options = {k: v for k, v in table.items() if k not in ("name", *_RUN_KEYS)}
        for opts, _ in _expand(options, workload_sequence_keys(cls), f"{where} ({cls.name})"):
            for label, opt, only in variants:
                if only is not None and cls.name not in only:
                    continue
                for seed in seeds:
                    specs.append(
                        RunSpec(
                            sweep=name,
                            workload=cls.name,
                            workload_options=freeze(opts),
                            optimizer=freeze(opt),
                            label=label,
                            seed=seed,
                            steps=steps,
                            eval_every=eval_every,
                            device=device,
                        )
                    )
    _check_unique(specs)
    return Sweep(name, description, origin, text, device, tuple(specs))


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
        try:
            resolve(**kwargs, threads=1)
        except OganError as exc:
            raise type(exc)(f"{spec.workload} × {spec.label} (lr={spec.lr:g}): {exc}") from None


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def derive_label(entry: Mapping[str, Any]) -> str:
    """The default label of an optimizer variant: its name, base and modifiers."""
    name = entry["name"]
    label = f"lookahead({entry.get('base', 'adam')})" if name == "lookahead" else name
    if entry.get("ortho") == "weights":
        label += "+ortho"
    if entry.get("surgery") is True:
        label += "+surgery"
    return label


def optimizer_sequence_keys(name: str, base: Any = None) -> frozenset[str]:
    """Hyperparameters whose value is a sequence: a tuple default in the factory's signature."""
    names = [name]
    if name == "lookahead":  # lookahead passes the base's hyperparameters through
        bases = base if isinstance(base, list) else [base or "adam"]
        names += [b for b in bases if isinstance(b, str) and b in optim.OPTIMIZERS]
    return frozenset(
        p.name
        for n in names
        for p in inspect.signature(optim.OPTIMIZERS[n].factory).parameters.values()
        if isinstance(p.default, tuple)
    )


def workload_sequence_keys(cls: type) -> frozenset[str]:
    """Options of a workload whose value is a sequence: tuple- or list-typed dataclass fields."""
    hints = typing.get_type_hints(cls.Options)
    return frozenset(
        f.name
        for f in dataclasses.fields(cls.Options)
        if _is_sequence_type(hints.get(f.name)) or isinstance(f.default, tuple)
    )


def _is_sequence_type(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp in (tuple, list) or origin in (tuple, list):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_sequence_type(arg) for arg in typing.get_args(tp))
    return False


def _optimizer_variants(
    tables: list[dict[str, Any]],
) -> list[tuple[str, dict[str, Any], list[str] | None]]:
    """(label, optimizer spec, workloads it is restricted to) per variant, in file order.

    Labels are unique across entries."""
    variants: list[tuple[str, dict[str, Any], list[str] | None]] = []
    owner: dict[str, int] = {}  # label -> the entry that produced it
    for i, table in enumerate(tables, 1):
        where = f"[[optimizer]] #{i}"
        name = table.get("name")
        if not isinstance(name, str):
            raise BenchError(f'{where} needs name = "<optimizer>", e.g. name = "adam"')
        if name not in optim.OPTIMIZERS:
            raise ConfigError(
                f"Unknown optimizer {name!r} in {where}; valid names: {', '.join(optim.OPTIMIZERS)}"
            )
        where = f"{where} ({name})"
        bases = table.get("base", "adam")
        valid = list(_GAME_OPTIMIZER_KEYS)
        for base in bases if isinstance(bases, list) else [bases]:
            hparams = {"base": base} if name == "lookahead" else {}
            try:
                valid += [k for k in optim.hyperparameters(name, hparams) if k not in valid]
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        _check_keys(table, valid, where)
        label = table.get("label")
        if label is not None and (not isinstance(label, str) or not label):
            raise BenchError(f"{where}: label must be a non-empty string, got {label!r}")
        only = table.get("workloads")
        if only is not None and not (
            isinstance(only, list) and only and all(isinstance(w, str) for w in only)
        ):
            raise BenchError(f"{where}: workloads must be a list of workload names, got {only!r}")
        for w in only or []:
            if w not in workloads.WORKLOADS:
                raise ConfigError(
                    f"Unknown workload {w!r} in {where} workloads; "
                    f"valid names: {', '.join(workloads.WORKLOADS)}"
                )
        if "lr" not in table:
            raise BenchError(f"{where} needs lr = [...] (the generator's learning rates)")
        fields = {k: v for k, v in table.items() if k not in ("label", "workloads")}
        expanded = _expand(fields, optimizer_sequence_keys(name, bases), where)
        for spec, axes in expanded:
            if isinstance(spec.get("lr"), int) and not isinstance(spec["lr"], bool):
                spec["lr"] = float(spec["lr"])  # 1 and 1.0 are the same run
            shown = [k for k in axes if k != "lr"]
            if label is None:
                shown = [k for k in shown if k not in ("name", "base", "ortho", "surgery")]
            variant = (label or derive_label(spec)) + "".join(
                f"[{k}={_show(spec[k])}]" for k in shown
            )
            if owner.get(variant, i) != i:
                raise BenchError(
                    f"optimizer label {variant!r} is used by [[optimizer]] #{owner[variant]} "
                    f'and #{i}; set label = "..." on one of them'
                )
            owner[variant] = i
            variants.append((variant, spec, only))
    return variants


def _expand(
    table: dict[str, Any], sequence_keys: frozenset[str], where: str
) -> list[tuple[dict[str, Any], list[str]]]:
    """Every combination of the table's list values: (values, names of the axis keys)."""
    fixed: dict[str, Any] = {}
    axes: dict[str, list[Any]] = {}
    for key, value in table.items():
        nested = isinstance(value, list) and any(isinstance(v, list) for v in value)
        if key in ("name", "label") and isinstance(value, list):
            raise BenchError(f"{where}: {key} must be a single string, got {value!r}")
        if not isinstance(value, list) or (key in sequence_keys and not nested):
            fixed[key] = value
        elif key in sequence_keys and not all(isinstance(v, list) for v in value):
            raise BenchError(
                f"{where}: {key} takes a sequence, so a grid over it is a list of lists; "
                f"got {value!r}"
            )
        else:
            if not value:
                raise BenchError(f"empty grid: {key} = [] in {where}")
            axes[key] = value
    return [
        ({**fixed, **dict(zip(axes, combo))}, list(axes))
        for combo in itertools.product(*axes.values())
    ]


def _workload_class(table: dict[str, Any], where: str) -> type:
    name = table.get("name")
    if not isinstance(name, str):
        raise BenchError(f'{where} needs name = "<workload>", e.g. name = "mog-ring"')
    try:
        return workloads.get(name)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _tables(doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    tables = doc.get(key, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise BenchError(f"[[{key}]] must be an array of tables (write [[{key}]], not [{key}])")
    if not tables:
        raise BenchError(f"empty grid: the sweep has no [[{key}]] table")
    return tables


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BenchError(f"{where} must be a table")
    return value


def _check_keys(table: Mapping[str, Any], valid: Iterable[str], where: str) -> None:
    valid = list(valid)
    unknown = [k for k in table if k not in valid]
    if unknown:
        raise BenchError(
            f"unknown key {', '.join(map(repr, unknown))} in {where}; "
            f"valid keys: {', '.join(valid)}"
        )


def _check_length(table: Mapping[str, Any], key: str, where: str) -> None:
    if key in table and not (_is_int(table[key]) and table[key] >= 1):
        raise BenchError(f"{where} {key} must be an integer >= 1, got {table[key]!r}")


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(_show(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
