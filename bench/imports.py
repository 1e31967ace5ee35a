"""The code a sweep file makes ``bench`` import, found without importing it.

A sweep that names an import path (``name = "my_lab.gans:MyGAN"``, ``base =
"torch.optim:RAdam"``) or an installed entry point runs that code when it is loaded: ``bench
run --dry-run`` lists it from the TOML alone (:func:`sweep_imports`) and checks what it can
without running it (:func:`static_check`: the module is found on the path, and its source
defines the attribute, read with :mod:`ast`; a misspelled class is the real run's error), and
before a sweep starts
on a Dask cluster every worker is asked to resolve every such name (:func:`check_workers`), so a
module a worker lacks is one error naming it, not a failed run per grid point.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
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
    """What ``--dry-run`` prints for a sweep that names code from outside ogan (each import
    checked by :func:`static_check`; a definite problem raises its ConfigError)."""
    lines = [
        f"{origin} names code that running it imports and executes (run sweep files you trust):",
        *(f"  {i.describe()}" for i in imports),
        "checked without importing:",
        *(f"  {i.name}: {static_check(i)}" for i in imports),
        "nothing was imported, so the runs are not listed and their values are not checked; "
        "without --dry-run the sweep imports this code, checks every run, then starts",
    ]
    return "\n".join(lines)


def static_check(imp: Import) -> str:
    """What can be said of an import without running it: one phrase.

    Raises:
        ConfigError: the module is not on the path, or its source (followed through its
            ``from ... import`` lines) does not define the attribute: the messages of the real
            run's :func:`ogan.registry.resolve_name`.
    """
    target = imp.name if is_import_path(imp.name) else _entry_target(imp)
    if target is None:
        return "an entry point whose target cannot be read; not checked"
    module, _, attr = target.partition(":")
    spec = _find_spec(module)
    if spec is None:
        raise ConfigError(
            f"{imp.kind} {imp.name!r}: cannot import module {module!r}; install it, or run "
            "from the directory that holds it (or add that directory to PYTHONPATH)"
        )
    names = _module_names(module, set())
    if isinstance(names, str):
        return f"module {module!r} found; its attributes not listed without importing ({names})"
    head = attr.split(".")[0]
    if head not in names:
        raise ConfigError(
            f"{imp.kind} {imp.name!r}: module {module!r} has no attribute {attr!r}; "
            "check the name after the colon"
        )
    return f"module {module!r} found, {head!r} defined in its source"


def _entry_target(imp: Import) -> str | None:
    from ogan.registry import entry_points

    ep = entry_points(imp.kind).get(imp.name)
    return None if ep is None else ep.value


def _find_spec(module: str) -> importlib.machinery.ModuleSpec | None:
    """The module's spec, found without executing any package's ``__init__``."""
    parts = module.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])  # a top-level name: nothing is imported
    except (ImportError, ValueError):
        return None
    for i in range(1, len(parts)):
        if spec is None or spec.submodule_search_locations is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(
            ".".join(parts[: i + 1]), list(spec.submodule_search_locations)
        )
    return spec


def _module_names(module: str, seen: set[str]) -> set[str] | str:
    """The names a module's source defines at top level (star imports followed), or why they
    cannot be read (compiled code, a module ``__getattr__``, a star import out of reach)."""
    if module in seen:
        return set()
    seen.add(module)
    spec = _find_spec(module)
    if spec is None or not isinstance(spec.origin, str) or not spec.origin.endswith(".py"):
        return f"{module} is not Python source"
    try:
        tree = ast.parse(Path(spec.origin).read_bytes())  # bytes: the source's own encoding
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        return f"{spec.origin} cannot be read: {type(exc).__name__}"
    package = module if spec.submodule_search_locations is not None else module.rpartition(".")[0]
    names: set[str] = set()
    for node in _top_level(tree.body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == "__getattr__":
                return f"{module} defines __getattr__"
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Import):
            names |= {a.asname or a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name != "*":
                    names.add(alias.asname or alias.name)
                    continue
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = (
                    node.module
                    if node.level == 0
                    else ".".join([*base, *([node.module] if node.module else [])])
                )
                more = _public_names(source, seen)
                if isinstance(more, str):
                    return more
                names |= more
    return names


def _public_names(module: str, seen: set[str]) -> set[str] | str:
    """What ``from module import *`` binds: ``__all__`` when it is a literal, else the names
    without a leading underscore."""
    names = _module_names(module, seen)
    if isinstance(names, str) or "__all__" not in names:
        return names if isinstance(names, str) else {n for n in names if not n.startswith("_")}
    spec = _find_spec(module)
    assert spec is not None and spec.origin is not None
    for node in _top_level(ast.parse(Path(spec.origin).read_bytes()).body):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            try:
                return set(ast.literal_eval(node.value))
            except ValueError:
                break
    return f"{module}'s __all__ is computed"


def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements run at import, also inside if/try/with blocks (not in functions or classes)."""
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        for field in ("body", "orelse", "finalbody"):
            if isinstance(node, ast.If | ast.Try | ast.With | ast.For | ast.While):
                out += _top_level(getattr(node, field, []))
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                out += _top_level(handler.body)
    return out
