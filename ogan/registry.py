"""Names of workloads and optimizers: ogan's own, installed packages' and import paths.

One function, :func:`resolve_name`, turns every name ogan accepts into the object it means and
what a caller needs to know about it (its keys, which of them are sequence-valued, what it
wraps, where its code came from). Everything that accepts a name goes through it:
``ogan.train``, ``ogan.optim.build``, the sweep files, ``bench list`` and the Dask check.

A name is, in this order:

1. a registered name: the table :mod:`ogan.names` (``ogan.workloads.WORKLOADS`` /
   ``ogan.optim.OPTIMIZERS``);
2. an entry point of an installed package, in the group ``ogan.workloads`` or
   ``ogan.optimizers`` (``importlib.metadata``); a name registered twice (by two packages, or
   by a package and ogan) is an error naming both;
3. an import path ``"package.module:Attribute"`` (anything with a colon);
4. the object itself (``ogan.train(MyGAN, ...)``): remembered in this process under its import
   path, so the resolved configuration stays a plain, JSON-able dict.

A workload is a concrete subclass of :class:`ogan.workloads.Workload`; an optimizer is a
``torch.optim.Optimizer`` subclass or a factory ``f(params, **hparams)`` returning one, whose
hyperparameters are read from its signature.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata as metadata
import inspect
import re
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ogan.errors import ConfigError
from ogan.names import OPTIMIZERS, WORKLOAD_BASE, WORKLOADS
from ogan.provenance import Origin, find_origin

GROUPS = {"workload": "ogan.workloads", "optimizer": "ogan.optimizers"}
"""The entry-point group of each kind of name."""
IMPL_FLAGS = ("foreach", "fused", "capturable", "differentiable")
"""torch.optim's implementation switches: they choose how the update is computed (speed,
graph capture), not which update, so they are accepted where the optimizer names them, recorded
with the run, and left out of its id (``bench.spec.RunSpec.run_id``)."""
_PATH_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_passed: dict[str, Any] = {}  # import path -> an object passed by value in this process


@dataclass(frozen=True)
class Entry:
    """A resolved name: the object and what callers need to know about its keys.

    ``keys`` are a workload's options or an optimizer's hyperparameters (``lr`` included, the
    ``ortho`` keys and a wrapped optimizer's keys not), ``defaults`` their defaults where they
    have one, ``sequence_keys`` those whose value is itself a sequence (``betas``,
    ``singular_values``: a sweep takes a plain list there as one value). ``open_keys``: a
    factory with ``**kwargs`` takes keys that cannot be listed; its own call checks them.
    ``wraps``: for an optimizer around another one (lookahead), the key that names the inner
    optimizer and its default, e.g. ``("base", "adam")``. ``impl_keys``: the
    :data:`IMPL_FLAGS` an optimizer's signature names (accepted, but not in ``keys``).
    """

    kind: str
    name: str
    obj: Any
    origin: Origin
    description: str
    keys: tuple[str, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    sequence_keys: frozenset[str] = frozenset()
    open_keys: bool = False
    wraps: tuple[str, str] | None = None
    game_defaults: Mapping[str, Any] = field(default_factory=dict)
    impl_keys: tuple[str, ...] = ()  # the IMPL_FLAGS its signature names


def is_import_path(name: str) -> bool:
    """Whether a name is an import path (``"package.module:Attribute"``) rather than a name."""
    return ":" in name


def resolve_name(kind: str, name: Any) -> Entry:
    """What a workload or optimizer name means (see the module docstring for the order).

    Raises:
        ConfigError: an unknown name (the message lists the valid ones), a name registered
            twice, an import path that does not import or lacks the attribute, or an object of
            the wrong kind; each message says how to fix it.
    """
    if kind not in GROUPS:
        raise ValueError(f"kind must be one of {', '.join(GROUPS)}, got {kind!r}")
    if not isinstance(name, str):
        path = _path_of(name)
        return _entry(kind, path, name, find_origin("object", path, name))
    builtin, extra = _builtins(kind)
    installed = entry_points(kind)
    if name in builtin:
        if name in installed:
            raise ConfigError(_twice(kind, name, "ogan itself", _ep_source(installed[name])))
        target = builtin[name] if isinstance(builtin[name], str) else _path_of(builtin[name])
        obj = builtin[name] if not isinstance(builtin[name], str) else _import(kind, target, name)
        return _entry(kind, name, obj, find_origin("registered", target, obj), extra.get(name))
    if name in installed:
        ep = installed[name]
        obj = _import(kind, ep.value, name)
        origin = find_origin("entry point", ep.value, obj)
        if ep.dist is not None:  # the package that registered it, whatever holds the file
            origin = dataclasses.replace(
                origin, distribution=ep.dist.metadata["Name"], version=ep.dist.version
            )
        return _entry(kind, name, obj, origin)
    if is_import_path(name):
        obj = _passed[name] if name in _passed else _import(kind, name, name)
        return _entry(kind, name, obj, find_origin("import path", name, obj))
    valid = [*builtin, *installed]
    raise ConfigError(
        f"Unknown {kind} {name!r}; valid names: {', '.join(valid)}, "
        f"or an import path 'package.module:{'Class' if kind == 'workload' else 'Optimizer'}'"
    )


def names(kind: str) -> dict[str, str]:
    """Every name of a kind that needs no import path, mapped to where it comes from (the
    entry points' distributions are read from metadata: nothing is imported)."""
    builtin, _ = _builtins(kind)
    out = dict.fromkeys(builtin, "ogan")
    for name, ep in entry_points(kind).items():
        if name in out:
            raise ConfigError(_twice(kind, name, "ogan itself", _ep_source(ep)))
        out[name] = _ep_source(ep)
    return out


def entry_points(kind: str) -> Mapping[str, metadata.EntryPoint]:
    """The installed packages' names of a kind; a name two packages register is an error.

    Read once per ``sys.path`` (reading every distribution's metadata takes ~20 ms).
    """
    return _entry_points(GROUPS[kind], tuple(sys.path))


@functools.cache
def _entry_points(group: str, path: tuple[str, ...]) -> Mapping[str, metadata.EntryPoint]:
    del path  # the cache key: a changed sys.path can hold other distributions
    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=group):  # one per distribution name
        other = found.setdefault(ep.name, ep)
        if other is not ep:
            kind = next(k for k, g in GROUPS.items() if g == group)
            raise ConfigError(_twice(kind, ep.name, _ep_source(other), _ep_source(ep)))
    return types.MappingProxyType(found)


# -- loading ---------------------------------------------------------------------------------


def _import(kind: str, path: str, name: str) -> Any:
    if not _PATH_RE.fullmatch(path):
        raise ConfigError(
            f"{kind} {name!r}: {path!r} is not an import path; write 'package.module:Attribute'"
        )
    module_name, attr = path.split(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        where = "" if exc.name == module_name else f" (it imports {exc.name!r}, which is missing)"
        raise ConfigError(
            f"{kind} {name!r}: cannot import module {module_name!r}{where}; install it, or run "
            "from the directory that holds it (or add that directory to PYTHONPATH)"
        ) from None
    except Exception as exc:  # user code: any error while importing it is its own
        raise ConfigError(
            f"{kind} {name!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(
                f"{kind} {name!r}: module {module_name!r} has no attribute {attr!r}; "
                f"check the name after the colon"
            )
        obj = getattr(obj, part)
    return obj


def _path_of(obj: Any) -> str:
    """The import path of an object passed by value, remembered for this process."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if module is None or qualname is None:
        raise ConfigError(
            f"{obj!r} is not a class or function; pass a Workload subclass, an optimizer class "
            "or factory, a registered name or an import path 'package.module:Attribute'"
        )
    path = f"{module}:{qualname}"
    _passed[path] = obj
    return path


def _ep_source(ep: metadata.EntryPoint) -> str:
    dist = "an unknown distribution" if ep.dist is None else f"{ep.dist.name} {ep.dist.version}"
    return f"{dist} ({ep.value})"


def _twice(kind: str, name: str, first: str, second: str) -> str:
    return (
        f"{kind} name {name!r} is defined twice: by {first} and by {second}; uninstall one, or "
        "use the import path of the one you mean"
    )


# -- what a name is ----------------------------------------------------------------------------


def _builtins(kind: str) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """(name -> import path or object, name -> registry metadata) of ogan's own names."""
    if kind == "workload":
        return WORKLOADS, {}
    return {n: e.factory for n, e in OPTIMIZERS.items()}, OPTIMIZERS


def _entry(kind: str, name: str, obj: Any, origin: Origin, registered: Any = None) -> Entry:
    if kind == "workload":
        return _workload_entry(name, obj, origin)
    return _optimizer_entry(name, obj, origin, registered)


def _workload_entry(name: str, cls: Any, origin: Origin) -> Entry:
    base = _import("workload", WORKLOAD_BASE, WORKLOAD_BASE)  # imported here: no circle

    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(
            f"workload {name!r} is {_what(cls)}, not a subclass of ogan.workloads.Workload; "
            "point the name at your Workload class"
        )
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise ConfigError(f"workload {name!r} does not implement {missing}; define them")
    for attr in ("metrics", "primary_metric", "target"):
        if not hasattr(cls, attr):
            raise ConfigError(
                f"workload {name!r} does not set {attr}; set it on the class "
                "(see ogan.workloads.Workload)"
            )
    if not (isinstance(cls.metrics, dict) and cls.primary_metric in cls.metrics):
        raise ConfigError(
            f"workload {name!r}: primary_metric {cls.primary_metric!r} is not one of its "
            f"metrics ({', '.join(cls.metrics) if isinstance(cls.metrics, dict) else 'none'})"
        )
    if not dataclasses.is_dataclass(cls.Options):
        raise ConfigError(f"workload {name!r}: Options must be a dataclass (its TOML keys)")
    fields = dataclasses.fields(cls.Options)
    hints = _hints(cls.Options)
    return Entry(
        kind="workload",
        name=name,
        obj=cls,
        origin=origin,
        description=cls.description,
        keys=tuple(f.name for f in fields),
        defaults={f.name: f.default for f in fields if f.default is not dataclasses.MISSING},
        sequence_keys=frozenset(
            f.name
            for f in fields
            if _is_sequence_type(hints.get(f.name)) or isinstance(f.default, tuple)
        ),
    )


def _optimizer_entry(name: str, obj: Any, origin: Origin, registered: Any) -> Entry:
    from torch.optim import Optimizer

    if isinstance(obj, type) and not issubclass(obj, Optimizer):
        raise ConfigError(
            f"optimizer {name!r} is the class {obj.__qualname__}, not a torch.optim.Optimizer "
            "subclass; name an optimizer class or a factory f(params, **hparams)"
        )
    if not callable(obj):
        raise ConfigError(
            f"optimizer {name!r} is {_what(obj)}; name a torch.optim.Optimizer subclass or a "
            "factory f(params, **hparams) that returns one"
        )
    try:
        params = list(inspect.signature(obj).parameters.values())
    except (TypeError, ValueError):
        raise ConfigError(f"optimizer {name!r}: its signature cannot be read") from None
    if not params or params[0].kind not in (params[0].POSITIONAL_ONLY,
                                            params[0].POSITIONAL_OR_KEYWORD):  # fmt: skip
        raise ConfigError(
            f"optimizer {name!r} does not take the parameters first; it must be called as "
            "f(params, **hparams)"
        )
    named = [
        p
        for p in params[1:]
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in IMPL_FLAGS
    ]
    impl = tuple(p.name for p in params[1:] if p.name in IMPL_FLAGS and p.kind is not p.VAR_KEYWORD)
    wraps = None if registered is None else registered.wraps
    # **kwargs of a wrapper go to the wrapped optimizer, whose keys are listed (lr included)
    open_keys = wraps is None and any(p.kind is p.VAR_KEYWORD for p in params)
    if "lr" not in {p.name for p in named} and not open_keys and wraps is None:
        raise ConfigError(
            f"optimizer {name!r} has no lr argument; ogan sets each player's learning rate "
            "through it (wrap it in a factory f(params, lr, ...))"
        )
    hints = _hints(obj.__init__ if isinstance(obj, type) else obj)
    doc = (getattr(obj, "__doc__", None) or "").strip().partition("\n")[0]  # not getdoc: slow
    return Entry(
        kind="optimizer",
        name=name,
        obj=obj,
        origin=origin,
        description=registered.description if registered else (doc or origin.target),
        keys=tuple(p.name for p in named),
        defaults={p.name: p.default for p in named if p.default is not p.empty},
        sequence_keys=frozenset(
            p.name
            for p in named
            if isinstance(p.default, tuple) or _is_sequence_type(hints.get(p.name), strict=True)
        ),
        open_keys=open_keys,
        wraps=wraps,
        game_defaults=registered.game_defaults if registered else {},
        impl_keys=impl,
    )


def _what(obj: Any) -> str:
    if isinstance(obj, type):
        return f"the class {obj.__qualname__}"
    if isinstance(obj, types.ModuleType):
        return f"the module {obj.__name__}"
    kind = type(obj).__name__
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _hints(obj: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj)
    except Exception:  # unresolvable annotations in user code: fall back to the defaults
        return {}


def _is_sequence_type(tp: Any, strict: bool = False) -> bool:
    """tuple/list types (or a union holding one); ``strict``: every member of the union is one
    (``lr: float | Tensor`` is not a sequence, ``betas: tuple[float, float]`` is)."""
    origin = typing.get_origin(tp)
    if tp in (tuple, list) or origin in (tuple, list):
        return True
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        check = all if strict else any
        return bool(args) and check(_is_sequence_type(a, strict) for a in args)
    return False
