"""The code a sweep file makes ``bench`` import, found without importing it.

A sweep that names an import path (``name = "my_lab.gans:MyGAN"``, ``base =
"torch.optim:RAdam"``) or an installed entry point runs that code when it is loaded: ``bench
run --dry-run`` lists it from the TOML alone (:func:`sweep_imports`), and before a sweep starts
on a Dask cluster every worker is asked to resolve every such name (:func:`check_workers`), so a
module a worker lacks is one error naming it, not a failed run per grid point.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError
from ogan.errors import ConfigError
from ogan.registry import is_import_path, names, resolve_name


@dataclass(frozen=True)
class Import:
    """A name of a sweep that loads code from outside ogan."""

    kind: str  # "workload" or "optimizer"
    name: str
    source: str  # "import path", or the entry point's distribution and target
    where: str  # the table that names it

    def describe(self) -> str:
        return f"{self.kind:<9} {self.name}  ({self.source}; {self.where})"


def sweep_imports(doc: Mapping[str, Any]) -> list[Import]:
    """The import paths and entry-point names a parsed sweep names, in file order (nothing is
    imported: what an ogan optimizer wraps is read from ogan's own registry)."""
    found: dict[tuple[str, str], Import] = {}

    def note(kind: str, value: Any, where: str) -> None:
        for name in value if isinstance(value, list) else [value]:
            if not isinstance(name, str) or (kind, name) in found:
                continue
            if is_import_path(name):
                found[kind, name] = Import(kind, name, "import path", where)
            elif (source := names(kind).get(name, "ogan")) != "ogan":
                found[kind, name] = Import(kind, name, f"entry point of {source}", where)

    for kind in ("workload", "optimizer"):
        tables = doc.get(kind, [])
        for i, table in enumerate(tables if isinstance(tables, list) else [], 1):
            if not isinstance(table, dict):
                continue
            where = f"[[{kind}]] #{i}"
            note(kind, table.get("name"), where)
            if kind == "optimizer" and names("optimizer").get(table.get("name")) == "ogan":
                wraps = resolve_name("optimizer", table["name"]).wraps
                if wraps is not None:
                    note("optimizer", table.get(wraps[0]), where)
    return list(found.values())


def check_workers(client: Any, imports: list[Import]) -> None:
    """Raise BenchError naming the first worker that cannot resolve one of the names."""
    if not imports:
        return
    pairs = [(i.kind, i.name) for i in imports]
    try:
        answers = client.run(resolvable, pairs)
    except Exception as exc:  # e.g. a worker without bench itself: any error, one line
        raise BenchError(
            f"Dask workers cannot check the sweep's code ({type(exc).__name__}: {exc}); "
            "install ogan on every worker"
        ) from None
    for address, problem in sorted(answers.items()):
        if problem is not None:
            raise BenchError(
                f"Dask worker {address} cannot load the sweep's code: {problem} "
                "(on every worker: install it, or put its directory on PYTHONPATH)"
            )


def resolvable(pairs: list[tuple[str, str]]) -> str | None:
    """Run on a worker: the first name it cannot resolve, as its error message (None: all)."""
    for kind, name in pairs:
        try:
            resolve_name(kind, name)
        except ConfigError as exc:
            return str(exc)
    return None


def plan(origin: str, imports: list[Import]) -> str:
    """What ``--dry-run`` prints for a sweep that names code from outside ogan."""
    lines = [
        f"{origin} names code that running it imports and executes (run sweep files you trust):",
        *(f"  {i.describe()}" for i in imports),
        "nothing was imported, so the runs are not listed; without --dry-run the sweep imports "
        "this code, checks every run, then starts",
    ]
    return "\n".join(lines)
