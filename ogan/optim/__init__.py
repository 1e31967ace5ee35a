"""GAN optimizers, usable in any PyTorch loop, and a registry to build them by name.

Names are resolved by :func:`ogan.registry.resolve_name`: ours, installed packages' (the
``ogan.optimizers`` entry-point group) and import paths such as ``"torch.optim:RAdam"``.

>>> opt = ogan.optim.build("optimistic-adam", model.parameters(), lr=2e-4, betas=(0.5, 0.9))
>>> opt = ogan.optim.Ortho(torch.optim.Adam(model.parameters(), lr=2e-4))  # ⊥Grad around Adam
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from torch.optim import Optimizer

from ogan.errors import ConfigError
from ogan.names import OPTIMIZERS, OptimizerEntry
from ogan.optim.admission import Admission, check
from ogan.optim.extragradient import ExtraAdam, ExtraSGD, PastExtraAdam
from ogan.optim.muon import MuonWithAdam
from ogan.optim.optimistic import OGDA, OptimisticAdam
from ogan.optim.wrappers import GradNormProbe, Lookahead, Ortho, set_mode
from ogan.registry import Entry, resolve_name

__all__ = [
    "OGDA",
    "OPTIMIZERS",
    "Admission",
    "ExtraAdam",
    "ExtraSGD",
    "GradNormProbe",
    "Lookahead",
    "MuonWithAdam",
    "OptimisticAdam",
    "OptimizerEntry",
    "Ortho",
    "PastExtraAdam",
    "Resolved",
    "acts_per_member",
    "admit",
    "build",
    "default_lr",
    "hyperparameters",
    "lookahead",
    "resolve",
    "sequence_keys",
    "set_mode",
    "wrapped",
]  # fmt: skip

ORTHO_KEYS = ("ortho", "ortho_renorm")
"""Keys every optimizer accepts: ``ortho="weights"`` wraps it in :class:`Ortho`."""


def lookahead(
    params: Iterable, base: str = "adam", k: int = 5, alpha: float = 0.5, **base_hparams: Any
) -> Lookahead:
    """The registered ``lookahead``: :class:`Lookahead` around ``build(base, ...)``."""
    return Lookahead(build(base, params, **base_hparams), k=k, alpha=alpha)


def admit(name: Any | Resolved, hparams: Mapping[str, Any] | None = None) -> Admission:
    """Whether optimizer ``name`` with these hyperparameters may train a population, measured.

    :func:`ogan.optim.admission.check` runs it on a trial population and on each member alone;
    every optimizer (ogan's, torch.optim's, a user's) is admitted by that measurement alone.
    ``hparams`` are the keyword arguments of :func:`build` (``lr`` included; keys that are
    not the optimizer's, such as a sweep spec's ``lr_ratio``, are ignored). Cached per name and
    hyperparameters in this process.

    Raises:
        ConfigError: the optimizer declares ``elementwise = True`` but fails the check (the
            message names the member that differs and by how much), or its ``step`` needs a
            closure (ogan's game steps without one).
    """
    if not isinstance(name, Resolved):
        entry = resolve_name("optimizer", name)
        valid = {*_keys(entry, _wrapped(entry, hparams)), "extra_keys", *_extra_keys(hparams)}
        name = resolve(entry.name, {k: v for k, v in (hparams or {}).items() if k in valid})
    key = (name.name, repr(sorted(name.spec.items())))
    if key not in _admissions:
        _admissions[key] = _admit(name)
    return _admissions[key]


_admissions: dict[tuple[str, str], Admission] = {}


TRIAL_LRS = (1e-2, 1.0)
"""Learning rates every admission check tries besides the spec's own: coupling can hide at a
small one (Prodigy's step size stays at ``d0`` for thousands of steps at lr 1e-3, then mixes
members once it grows; at lr 1 it mixes at once) and show only at another (AdamP)."""


def _admit(resolved: Resolved) -> Admission:
    entry, kwargs = resolved.entry, resolved.hparams
    lrs = [kwargs["lr"]] if "lr" in kwargs else []
    lrs += [lr for lr in TRIAL_LRS if lr not in lrs and ("lr" in kwargs or entry.defaults)]
    outcome = best = None
    for i, lr in enumerate(lrs or [None]):
        trial = {} if lr is None else {"lr": lr}
        try:
            outcome = check(lambda groups, trial=trial: resolved.build(groups, **trial))
        except ConfigError:
            raise
        except Exception as exc:  # the optimizer fails on its own, not only in a population
            if needs_closure(exc):
                raise ConfigError(
                    f"optimizer {entry.name!r} needs a closure in step() (it re-evaluates the "
                    f"loss: {type(exc).__name__}: {exc}); ogan's two-player step has none to "
                    "give, choose another optimizer"
                ) from None
            if i == 0:
                raise ConfigError(f"optimizer {entry.name!r} fails a trial step: "
                                  f"{type(exc).__name__}: {exc}") from None  # fmt: skip
            continue  # a trial learning rate it cannot take: no evidence either way
        where = "" if lr is None else f"at lr={lr:g}, "
        if not outcome.admitted:
            outcome = Admission(False, where + outcome.reason, outcome.max_difference)
            break
        if best is None or outcome.max_difference > best.max_difference:  # the closest call
            at = f" (closest at lr={lr:g})" if lr is not None and outcome.max_difference else ""
            best = Admission(True, outcome.reason + at, outcome.max_difference)
    assert outcome is not None
    outcome = outcome if not outcome.admitted or best is None else best
    declared = getattr(entry.obj, "elementwise", None) is True
    if declared and not outcome.admitted:
        raise ConfigError(
            f"optimizer {entry.name!r} declares elementwise = True, but {outcome.reason}; "
            "remove the attribute (its runs then train one seed at a time)"
        )
    return outcome


def needs_closure(exc: BaseException) -> bool:
    """Whether an error from ``step()`` says it wanted a closure (torch.optim.LBFGS: a
    TypeError naming ``closure``; pytorch_optimizer: ``NoClosureError``)."""
    return "closure" in type(exc).__name__.lower() or (
        isinstance(exc, TypeError) and "closure" in str(exc)
    )


def acts_per_member(name: Any, hparams: Mapping[str, Any] | None = None) -> bool:
    """Whether optimizer ``name`` can train a population: :func:`admit`'s verdict."""
    return admit(name, hparams).admitted


def wrapped(name: Any, hparams: Mapping[str, Any] | None = None) -> Entry | None:
    """The optimizer that ``name`` wraps with these hyperparameters (lookahead's ``base``)."""
    return _wrapped(resolve_name("optimizer", name), hparams)


def _wrapped(entry: Entry, hparams: Mapping[str, Any] | None) -> Entry | None:
    if entry.wraps is None:
        return None
    key, default = entry.wraps
    inner = resolve_name("optimizer", (hparams or {}).get(key, default))
    if inner.wraps is not None:
        raise ConfigError(
            f"{entry.name} cannot wrap {inner.name} (it wraps an optimizer itself); "
            f"choose another {key}"
        )
    return inner


def hyperparameters(name: Any, hparams: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """The keyword arguments ``build(name, ...)`` accepts (a wrapped optimizer's too, and the
    implementation switches its signature names; ``extra_keys`` opts in more)."""
    entry = resolve_name("optimizer", name)
    return _keys(entry, _wrapped(entry, hparams))


def _keys(entry: Entry, inner: Entry | None) -> tuple[str, ...]:
    keys = [*entry.keys, *entry.impl_keys]
    if entry.open_keys and "lr" not in keys:  # ogan sets each player's lr: it must go through
        keys.insert(0, "lr")
    if inner is not None:
        keys += [k for k in (*inner.keys, *inner.impl_keys) if k not in keys]
    return (*keys, *ORTHO_KEYS)


def _extra_keys(hparams: Mapping[str, Any] | None) -> tuple[str, ...]:
    extra = (hparams or {}).get("extra_keys", [])
    if not (isinstance(extra, list | tuple) and all(isinstance(k, str) for k in extra)):
        raise ConfigError(f"extra_keys must be a list of key names, got {extra!r}")
    return tuple(extra)


def _check_keys(entry: Entry, inner: Entry | None, hparams: Mapping[str, Any]) -> None:
    """Unknown keys and numbers written as strings are errors, for every optimizer.

    A constructor with ``**kwargs`` (pytorch_optimizer's all have one) would swallow a
    misspelled or foreign key (``momentum`` on Lion) without a word and the spec would record
    it as if it mattered; a key the class really reads from ``**kwargs`` is opted in by name
    with ``extra_keys``. A number given as a string (``lr = "1e-4"`` in TOML) would be passed
    on as a string, and give the run another id than the number does.
    """
    valid = _keys(entry, inner)
    extra = _extra_keys(hparams)
    open_keys = (inner or entry).open_keys
    for key in extra:
        if key in valid:
            raise ConfigError(
                f"extra_keys: {key!r} is a named parameter of optimizer {entry.name!r}; "
                "remove it from extra_keys"
            )
        if not open_keys:
            raise ConfigError(
                f"extra_keys: optimizer {entry.name!r} takes no **kwargs, so {key!r} cannot "
                f"reach it; valid keys: {', '.join(valid)}"
            )
    unknown = sorted(set(hparams) - {*valid, *extra, "extra_keys"})
    if unknown:
        hint = (
            f" (if it reads {unknown[0]!r} from **kwargs, opt in: extra_keys = [{unknown[0]!r}])"
            if open_keys
            else ""
        )
        raise ConfigError(
            f"Unknown hyperparameter(s) {', '.join(unknown)} for optimizer {entry.name!r}; "
            f"valid: {', '.join(valid)}{hint}"
        )
    defaults = {**(inner.defaults if inner else {}), **entry.defaults}
    for key, value in hparams.items():
        default = defaults.get(key)
        numeric = [default] if not isinstance(default, tuple) else list(default)
        given = value if isinstance(value, list | tuple) else [value]
        if any(_is_number(d) for d in numeric) and any(isinstance(v, str) for v in given):
            raise ConfigError(
                f"optimizer {entry.name!r}: {key} = {value!r} holds a string where a number "
                "is expected; write the number without quotes"
            )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def sequence_keys(name: Any, hparams: Mapping[str, Any] | None = None) -> frozenset[str]:
    """Hyperparameters whose value is a sequence (``betas``), a wrapped optimizer's included,
    and ``extra_keys`` (a list of key names)."""
    inner = wrapped(name, hparams)
    own = resolve_name("optimizer", name).sequence_keys | {"extra_keys"}
    return own if inner is None else own | inner.sequence_keys


def default_lr(name: Any, hparams: Mapping[str, Any] | None = None) -> float:
    """The learning rate ``name`` uses when none is given (a wrapper's is its inner one's)."""
    inner = wrapped(name, hparams)
    entry = resolve_name("optimizer", name) if inner is None else inner
    lr = entry.defaults.get("lr")
    if not isinstance(lr, int | float) or isinstance(lr, bool):
        raise ConfigError(f"optimizer {entry.name!r} has no default learning rate; give lr")
    return float(lr)


def build(name: Any, params: Iterable, **hparams: Any) -> Optimizer:
    """Build an optimizer for one player, by name.

    Args:
        name: a key of :data:`OPTIMIZERS`, an installed entry-point name, an import path
            ``"package.module:Attribute"`` (a ``torch.optim.Optimizer`` subclass or a factory
            ``f(params, **hparams)``), or that object itself (see :mod:`ogan.registry`).
        params: parameters or parameter groups, as for any ``torch.optim`` optimizer.
        **hparams: the optimizer's keyword arguments, plus ``ortho="weights"`` (wrap in
            :class:`Ortho`) and ``ortho_renorm`` (default True). Unknown keys are errors, also
            for a constructor with ``**kwargs``, unless ``extra_keys=[...]`` names them.

    Raises:
        ConfigError: unknown name or key (the message lists the valid ones), or a factory
            that does not return an optimizer.
        ValueError: an invalid value (from the optimizer's own validation).
    """
    return resolve(name, hparams).build(params)


@dataclass(frozen=True)
class Resolved:
    """An optimizer spec resolved once, to be handed on.

    torch.optim turns ``params`` into ``param_groups`` once, in ``__init__``, and nothing
    downstream reads the user's argument again; this does the same for a name and its keys:
    :func:`resolve` finds the class or factory (and what it wraps) and checks the keys once;
    :meth:`build` makes each player's optimizer, :meth:`admission` gives its population
    admission, :attr:`sources` where its code came from, without resolving the name again.
    """

    entry: Entry
    inner: Entry | None  # what it wraps (lookahead's base), resolved too
    hparams: Mapping[str, Any]  # checked keyword arguments; lists as tuples; no ortho keys
    ortho: bool  # wrap in Ortho (⊥Grad)
    renorm: bool
    spec: Mapping[str, Any]  # the keyword arguments as given (the admission's cache key)

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def sources(self) -> dict[str, Any]:
        """Where its code came from (``TrainConfig.sources``' optimizer entries)."""
        out = {"optimizer": self.entry.origin.to_dict()}
        if self.inner is not None and self.entry.wraps is not None:
            out[f"optimizer.{self.entry.wraps[0]}"] = self.inner.origin.to_dict()
        return out

    def build(self, params: Iterable, **overrides: Any) -> Optimizer:
        """The optimizer for one player (``overrides``: e.g. that player's ``lr``)."""
        optimizer = self.entry.obj(params, **{**self.hparams, **overrides})
        if not isinstance(optimizer, Optimizer):
            raise ConfigError(
                f"optimizer {self.name!r} returned {type(optimizer).__name__}, not a "
                "torch.optim.Optimizer; the factory must return one"
            )
        return Ortho(optimizer, renorm=self.renorm) if self.ortho else optimizer

    def admission(self) -> Admission:
        """:func:`admit` for this spec (cached)."""
        return admit(self)


def resolve(name: Any, hparams: Mapping[str, Any] | None = None) -> Resolved:
    """Resolve an optimizer name and check its keyword arguments, once (see :class:`Resolved`).

    Raises:
        ConfigError: as :func:`build`.
    """
    entry = resolve_name("optimizer", name)
    spec = dict(hparams or {})
    inner = _wrapped(entry, spec)
    _check_keys(entry, inner, spec)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
    if entry.wraps is None:  # a wrapper hands it on with the keys it opts in
        kwargs.pop("extra_keys", None)
    ortho = kwargs.pop("ortho", None)
    renorm = kwargs.pop("ortho_renorm", True)
    if ortho not in (None, "none", "weights"):
        raise ConfigError(f"Invalid ortho: {ortho!r}; valid: 'weights' (⊥Grad) or 'none'")
    return Resolved(entry, inner, kwargs, ortho == "weights", bool(renorm), spec)
