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

import torch
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
    "closure_error",
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
    params: Iterable,
    base: Any = "adam",
    k: int = 5,
    alpha: float = 0.5,
    **base_hparams: Any,
) -> Lookahead:
    """The registered ``lookahead``: :class:`Lookahead` around ``build(base, ...)``.

    ``base`` is a name, or the wrapped optimizer already resolved (a :class:`Resolved`, as
    :meth:`Resolved.build` passes it), which builds without resolving its name again.
    """
    if isinstance(base, Resolved):
        return Lookahead(base.build(params, **base_hparams), k=k, alpha=alpha)
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
        found = resolve(name, hparams, check=False)
        valid = {*found.keys, "extra_keys", *_extra_keys(hparams)}
        name = found.with_hparams({k: v for k, v in (hparams or {}).items() if k in valid})
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
                raise closure_error(entry.name, exc) from None
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


def closure_error(name: str, exc: BaseException) -> ConfigError:
    """The one message for an optimizer whose ``step`` wants a closure (``exc`` its error), the
    same wherever it is found: ``ogan.train``'s resolve and a sweep's admission."""
    return ConfigError(
        f"optimizer {name!r} needs a closure in step() (it re-evaluates the loss: "
        f"{type(exc).__name__}: {exc}); ogan's two-player step has none to give, choose another "
        "optimizer"
    )


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
    return resolve(name, hparams, check=False).keys


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
    found = resolve(name, hparams, check=False)
    own = found.entry.sequence_keys | {"extra_keys"}
    return own if found.inner is None else own | found.inner.sequence_keys


def default_lr(name: Any, hparams: Mapping[str, Any] | None = None) -> float:
    """The learning rate ``name`` uses when none is given (a wrapper's is its inner one's)."""
    return resolve(name, hparams, check=False).default_lr


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
    admission, :attr:`sources` where its code came from, :meth:`trial` a throwaway one (its
    values validated, a step that needs a closure refused) and :meth:`with_hparams` the same
    optimizer with other keys, without resolving the name again. ``ogan.game.resolve`` makes
    one per run (``TrainConfig.resolved``) and every later use goes through it.
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
    def keys(self) -> tuple[str, ...]:
        """The keyword arguments :meth:`build` accepts (:func:`hyperparameters`)."""
        return _keys(self.entry, self.inner)

    @property
    def default_lr(self) -> float:
        """The learning rate used when none is given (a wrapper's is its inner one's).

        Raises:
            ConfigError: it has none (a factory without a default ``lr``).
        """
        entry = self.entry if self.inner is None else self.inner
        lr = entry.defaults.get("lr")
        if not isinstance(lr, int | float) or isinstance(lr, bool):
            raise ConfigError(f"optimizer {entry.name!r} has no default learning rate; give lr")
        return float(lr)

    @property
    def sources(self) -> dict[str, Any]:
        """Where its code came from (``TrainConfig.sources``' optimizer entries)."""
        out = {"optimizer": self.entry.origin.to_dict()}
        if self.inner is not None and self.entry.wraps is not None:
            out[f"optimizer.{self.entry.wraps[0]}"] = self.inner.origin.to_dict()
        return out

    def with_hparams(self, hparams: Mapping[str, Any]) -> Resolved:
        """The same optimizer with these keyword arguments, checked as :func:`resolve` checks
        them; its name and what it wraps are not resolved again (unless ``hparams`` names
        another optimizer to wrap)."""
        inner = self.inner
        if self.entry.wraps is not None:
            key, default = self.entry.wraps
            if inner is None or hparams.get(key, default) != inner.name:
                inner = _wrapped(self.entry, hparams)
        return _checked(self.entry, inner, hparams)

    def build(self, params: Iterable, *, ortho: bool = True, **overrides: Any) -> Optimizer:
        """The optimizer for one player (``overrides``: e.g. that player's ``lr``).

        ``ortho=False`` leaves this player's optimizer unwrapped where the spec asks for ⊥Grad
        (the game's ``ortho_players`` names the other player only); True wraps it as the spec
        says.

        A wrapper (lookahead) gets what it wraps as a :class:`Resolved` under its key, so the
        inner optimizer is built from the entry resolved here, not from its name again; the
        wrapper passes on the inner optimizer's keys (``extra_keys`` included), which go to it
        unchecked: :func:`resolve` checked them against both.
        """
        kwargs = {**self.hparams, **overrides}
        if self.inner is not None and self.entry.wraps is not None:
            kwargs[self.entry.wraps[0]] = Resolved(self.inner, None, {}, False, True, {})
        elif self.entry.wraps is None:
            kwargs.pop("extra_keys", None)  # checked, and not the optimizer's own
        optimizer = self.entry.obj(params, **kwargs)
        if not isinstance(optimizer, Optimizer):
            raise ConfigError(
                f"optimizer {self.name!r} returned {type(optimizer).__name__}, not a "
                "torch.optim.Optimizer; the factory must return one"
            )
        return Ortho(optimizer, renorm=self.renorm) if self.ortho and ortho else optimizer

    def admission(self) -> Admission:
        """:func:`admit` for this spec (cached)."""
        return admit(self)

    def trial(self) -> Optimizer:
        """The optimizer built on a throwaway parameter, after one step with a zero gradient.

        Building runs the optimizer's own validation of its values; the step finds a ``step``
        that needs a closure, which ogan's two-player step cannot give, before any run rather
        than at the first step. Other errors of that step are left to the run: a one-element
        zero gradient outside the game's protocol (no ``extrapolate`` first, a schedule-free
        optimizer still in eval mode) is no evidence against it. The global random state is
        restored, so a run resolved this way draws what it drew before.

        Raises:
            ConfigError: its step needs a closure (:func:`closure_error`'s message).
            Exception: whatever the constructor raises for a bad value.
        """
        optimizer = self.build([torch.zeros(1, requires_grad=True)])
        param = optimizer.param_groups[0]["params"][0]
        param.grad = torch.zeros_like(param)
        with torch.random.fork_rng(devices=[]):
            try:
                optimizer.step()
            except Exception as exc:
                if needs_closure(exc):
                    raise closure_error(self.name, exc) from None
        return optimizer


def resolve(name: Any, hparams: Mapping[str, Any] | None = None, *, check: bool = True) -> Resolved:
    """Resolve an optimizer name and check its keyword arguments, once (see :class:`Resolved`).

    ``check=False`` resolves the name and what it wraps (``hparams`` may name it) and checks
    nothing else: for a caller that checks the keys its own way first (``ogan.game.resolve``,
    whose game keys are valid too) and then calls :meth:`Resolved.with_hparams` with the keys
    it completed; the result holds no keyword arguments.

    Raises:
        ConfigError: as :func:`build`.
    """
    entry = resolve_name("optimizer", name)
    inner = _wrapped(entry, hparams)
    if not check:
        return Resolved(entry, inner, {}, False, True, {})
    return _checked(entry, inner, hparams or {})


def _checked(entry: Entry, inner: Entry | None, hparams: Mapping[str, Any]) -> Resolved:
    spec = dict(hparams)
    _check_keys(entry, inner, spec)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
    if entry.wraps is None:  # a wrapper hands it on with the keys it opts in
        kwargs.pop("extra_keys", None)
    ortho = kwargs.pop("ortho", None)
    renorm = kwargs.pop("ortho_renorm", True)
    if ortho not in (None, "none", "weights"):
        raise ConfigError(f"Invalid ortho: {ortho!r}; valid: 'weights' (⊥Grad) or 'none'")
    return Resolved(entry, inner, kwargs, ortho == "weights", bool(renorm), spec)
