"""Grid expansion: a sweep's tables, key-checked, become grid points (see ``bench.config``).

A list value is an axis (one point per element), except for a sequence-valued key (``betas``,
``singular_values``), where a plain list is one value and a list of lists the axis. What keys a
table takes, which are sequence-valued and what an optimizer wraps all come from ogan
(:func:`ogan.registry.resolve_name`, ``ogan.optim``, ``ogan.game.GAME_OPTIONS``); nothing here
knows a particular workload or optimizer.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError
from bench.labels import LabelOwners, variant_label
from ogan import optim
from ogan.errors import ConfigError
from ogan.game import GAME_OPTIMIZER_KEYS, GAME_OPTIONS
from ogan.registry import Entry, names, resolve_name

RUN_KEYS = ("steps", "eval_every")
"""Keys of a [[workload]] table that set the run's length rather than a workload option."""
SWEEP_OPTIMIZER_KEYS = ("label", "workloads")
"""Keys of an [[optimizer]] table that shape the sweep, not the run."""


@dataclass(frozen=True)
class Variant:
    """One grid point of an [[optimizer]] entry: its label, its spec, where it runs."""

    label: str
    spec: dict[str, Any]
    only: tuple[str, ...] | None  # the workloads it is restricted to (None: all)


def workload_entry(table: Mapping[str, Any], where: str) -> Entry:
    """The workload a [[workload]] table names, its keys checked."""
    name = table.get("name")
    if not isinstance(name, str):
        raise BenchError(f'{where} needs name = "<workload>", e.g. name = "mog-ring"')
    try:
        entry = resolve_name("workload", name)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    check_keys(table, ("name", *RUN_KEYS, *GAME_OPTIONS, *entry.keys), f"{where} ({name})")
    for key in RUN_KEYS:
        check_length(table, key, where)
    return entry


NEUTRAL = {"ortho_players": "both", "flush_denormal": False}
"""Keys added after runs existed, at their default: the same run as without the key, so a grid
point drops them and those runs keep their ids."""


def _drop_neutral(point: dict[str, Any]) -> dict[str, Any]:
    for key, default in NEUTRAL.items():
        value = point.get(key)
        if type(value) is type(default) and value == default:  # 0 is not False
            del point[key]
    return point


def workload_points(table: Mapping[str, Any], entry: Entry, where: str) -> list[dict[str, Any]]:
    """The workload options (game options included) of every point of a [[workload]] table."""
    options = {k: v for k, v in table.items() if k not in ("name", *RUN_KEYS)}
    where = f"{where} ({entry.name})"
    return [_drop_neutral(point) for point, _ in expand(options, entry.sequence_keys, where)]


def optimizer_variants(
    tables: list[dict[str, Any]], workload_names: Iterable[str]
) -> list[Variant]:
    """Every grid point of the [[optimizer]] tables, in file order; labels are unique."""
    workload_names = list(workload_names)
    variants: list[Variant] = []
    owners = LabelOwners()
    for i, table in enumerate(tables, 1):
        where = f"[[optimizer]] #{i}"
        name = table.get("name")
        if not isinstance(name, str):
            raise BenchError(f'{where} needs name = "<optimizer>", e.g. name = "adam"')
        try:
            entry = resolve_name("optimizer", name)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (in {where})") from None
        where = f"{where} ({name})"
        inner = _wrapped_values(table, entry)
        valid = [*GAME_OPTIMIZER_KEYS, "lr", *SWEEP_OPTIMIZER_KEYS, "extra_keys"]
        extra = table.get("extra_keys", [])  # keys opted in: ogan.optim.build checks them
        valid += [k for k in (extra if isinstance(extra, list) else []) if isinstance(k, str)]
        sequence: frozenset[str] = frozenset()
        try:
            for hparams in inner:
                valid += [k for k in optim.hyperparameters(name, hparams) if k not in valid]
                sequence |= optim.sequence_keys(name, hparams)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if not entry.open_keys:
            check_keys(table, valid, where)
        given = table.get("label")
        if given is not None and (not isinstance(given, str) or not given):
            raise BenchError(f"{where}: label must be a non-empty string, got {given!r}")
        only = _restriction(table.get("workloads"), workload_names, where)
        if "lr" not in table:
            raise BenchError(f"{where} needs lr = [...] (the generator's learning rates)")
        fields = {k: v for k, v in table.items() if k not in SWEEP_OPTIMIZER_KEYS}
        for spec, axes in expand(fields, sequence, where):
            if isinstance(spec.get("lr"), int) and not isinstance(spec["lr"], bool):
                spec["lr"] = float(spec["lr"])  # 1 and 1.0 are the same run
            _drop_neutral(spec)
            label = variant_label(spec, axes, given, entry.wraps)
            owners.claim(label, i)
            variants.append(Variant(label, spec, only))
    return variants


def expand(
    table: Mapping[str, Any], sequence_keys: frozenset[str], where: str
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


def _wrapped_values(table: Mapping[str, Any], entry: Entry) -> list[dict[str, Any]]:
    """One hyperparameter dict per optimizer the entry wraps ([{}] when it wraps none)."""
    if entry.wraps is None:
        return [{}]
    key, default = entry.wraps
    values = table.get(key, default)
    return [{key: v} for v in (values if isinstance(values, list) else [values])]


def _restriction(only: Any, workload_names: list[str], where: str) -> tuple[str, ...] | None:
    if only is None:
        return None
    if not (isinstance(only, list) and only and all(isinstance(w, str) for w in only)):
        raise BenchError(f"{where}: workloads must be a list of workload names, got {only!r}")
    known = [*dict.fromkeys([*workload_names, *names("workload")])]
    for w in only:
        if w not in known:
            raise ConfigError(
                f"Unknown workload {w!r} in {where} workloads; valid names: {', '.join(known)}"
            )
    return tuple(only)


def tables(doc: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    """The array of tables ``[[key]]`` of a parsed sweep; at least one."""
    found = doc.get(key, [])
    if not isinstance(found, list) or not all(isinstance(t, dict) for t in found):
        raise BenchError(f"[[{key}]] must be an array of tables (write [[{key}]], not [{key}])")
    if not found:
        raise BenchError(f"empty grid: the sweep has no [[{key}]] table")
    return found


def check_keys(table: Mapping[str, Any], valid: Iterable[str], where: str) -> None:
    """Every key of ``table`` is one of ``valid``; the error lists the valid keys."""
    valid = list(valid)
    unknown = [k for k in table if k not in valid]
    if unknown:
        raise BenchError(
            f"unknown key {', '.join(map(repr, unknown))} in {where}; "
            f"valid keys: {', '.join(valid)}"
        )


def check_length(table: Mapping[str, Any], key: str, where: str) -> None:
    """``steps``/``eval_every``, where given, are integers >= 1."""
    if key in table and not (is_int(table[key]) and table[key] >= 1):
        raise BenchError(f"{where} {key} must be an integer >= 1, got {table[key]!r}")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
