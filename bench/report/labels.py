"""Short readable names for optimizers named by import path.

A user's optimizer is named ``"pytorch_optimizer.optimizer.lion:Lion"`` everywhere a label is
(with its modifiers: ``...:Lion+ortho``). Tables and figures show the class name instead,
``Lion+ortho``, when it is unique within the report; :func:`path_legend` lists the full paths
once, so nothing is lost. Two classes of one name from different modules keep their paths.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

IMPORT_PATH = re.compile(r"\b([A-Za-z_][\w.]*):([A-Za-z_]\w*)")


def _paths(names: Iterable[str]) -> dict[str, str]:
    """import path -> its short name (the attribute), for attributes unique among the paths."""
    found = {m.group(0): m.group(2) for n in names for m in IMPORT_PATH.finditer(str(n))}
    count: dict[str, int] = {}
    for short in found.values():
        count[short] = count.get(short, 0) + 1
    return {path: short for path, short in found.items() if count[short] == 1}


def short_names(names: Iterable[str]) -> dict[str, str]:
    """Each name -> its display name: every unique import path in it replaced by its class."""
    names = list(names)
    paths = _paths(names)
    return {n: IMPORT_PATH.sub(lambda m: paths.get(m.group(0), m.group(0)), str(n)) for n in names}


def path_legend(names: Iterable[str]) -> str:
    """ "Lion = pytorch_optimizer...:Lion; ..." for the shortened paths, or ""."""
    paths = _paths(names)
    return "; ".join(f"{short} = {path}" for path, short in sorted(paths.items()))


EQUAL_EVALS = "equal-evals"
"""The kind of a paired comparison declared with ``budget = "grad_evals"``
(:class:`bench.config.Comparison`): its arms compared at equal gradient evaluations."""


def comparison_name(projected: str, base: str, kind: str) -> str:
    """How a paired comparison is named in tables and figures: "arm vs base", with "at equal
    gradient evaluations" for a pair compared at equal cost (the same pair may be declared at
    equal steps too, and must read apart)."""
    name = f"{projected} vs {base}"
    return f"{name} at equal gradient evaluations" if kind == EQUAL_EVALS else name
