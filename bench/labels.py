"""Optimizer variant labels: the names of a sweep's optimizers in tables and figures.

A label is given (``label = "..."``) or derived from the entry: its name, what it wraps, its
modifiers (``adam``, ``adam+ortho``, ``adam+surgery``, ``lookahead(adam)``, ``ttur``; ⊥Grad on
one player only shows which, ``adam+ortho(g)``), then
``[key=value]`` for each grid axis other than ``lr``. Two entries may not share a label.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.errors import BenchError

MODIFIERS = (("ortho", "weights", "+ortho"), ("surgery", True, "+surgery"))
"""(key, value, suffix): the modifiers a derived label shows."""


def derive_label(entry: Mapping[str, Any], wraps: tuple[str, str] | None = None) -> str:
    """The default label of an optimizer variant: its name, what it wraps, its modifiers.

    ``wraps`` is the entry's ``ogan.registry.Entry.wraps`` (lookahead's ``("base", "adam")``).
    """
    label = entry["name"]
    if wraps is not None:
        key, default = wraps
        label = f"{label}({entry.get(key, default)})"
    for key, value, suffix in MODIFIERS:
        if entry.get(key) == value and type(entry.get(key)) is type(value):
            label += suffix
            if key == "ortho" and entry.get("ortho_players", "both") != "both":
                label += f"({entry['ortho_players']})"
    return label


def variant_label(
    spec: Mapping[str, Any],
    axes: list[str],
    given: str | None,
    wraps: tuple[str, str] | None,
) -> str:
    """The label of one grid point of an ``[[optimizer]]`` entry.

    The axes other than ``lr`` are appended as ``[key=value]``, except, for a derived label,
    those the label already shows (the name, the wrapped optimizer, the modifiers).
    """
    shown = [k for k in axes if k != "lr"]
    if given is None:
        implicit = {"name", "ortho_players", *(k for k, _, _ in MODIFIERS),
                    *([wraps[0]] if wraps else [])}  # fmt: skip
        shown = [k for k in shown if k not in implicit]
    base = given if given is not None else derive_label(spec, wraps)
    return base + "".join(f"[{k}={show(spec[k])}]" for k in shown)


class LabelOwners:
    """Which ``[[optimizer]]`` entry produced each label: two entries may not share one."""

    def __init__(self) -> None:
        self._owner: dict[str, int] = {}

    def claim(self, label: str, entry: int) -> None:
        owner = self._owner.setdefault(label, entry)
        if owner != entry:
            raise BenchError(
                f"optimizer label {label!r} is used by [[optimizer]] #{owner} "
                f'and #{entry}; set label = "..." on one of them'
            )


def show(value: Any) -> str:
    """A value as a label shows it: lists comma-separated, booleans lower case, floats short."""
    if isinstance(value, list | tuple):
        return ",".join(show(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
