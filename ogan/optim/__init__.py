"""GAN optimizers, usable in any PyTorch loop, and a registry to build them by name.

Names are resolved by :func:`ogan.registry.resolve_name`: ours, installed packages' (the
``ogan.optimizers`` entry-point group) and import paths such as ``"torch.optim:RAdam"``.

>>> opt = ogan.optim.build("optimistic-adam", model.parameters(), lr=2e-4, betas=(0.5, 0.9))
>>> opt = ogan.optim.Ortho(torch.optim.Adam(model.parameters(), lr=2e-4))  # ⊥Grad around Adam
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.optim import Optimizer

from ogan.errors import ConfigError
from ogan.optim.extragradient import ExtraAdam, ExtraSGD, PastExtraAdam
from ogan.optim.muon import MuonWithAdam
from ogan.optim.optimistic import OGDA, OptimisticAdam
from ogan.optim.wrappers import GradNormProbe, Lookahead, Ortho, set_mode
from ogan.registry import Entry, resolve_name

__all__ = [
    "OGDA",
    "OPTIMIZERS",
    "ExtraAdam",
    "ExtraSGD",
    "GradNormProbe",
    "Lookahead",
    "MuonWithAdam",
    "OptimisticAdam",
    "OptimizerEntry",
    "Ortho",
    "PastExtraAdam",
    "acts_per_member",
    "build",
    "default_lr",
    "hyperparameters",
    "sequence_keys",
    "set_mode",
    "wrapped",
]  # fmt: skip

ORTHO_KEYS = ("ortho", "ortho_renorm")
"""Keys every optimizer accepts: ``ortho="weights"`` wraps it in :class:`Ortho`."""


@dataclass(frozen=True)
class OptimizerEntry:
    """A registered optimizer: how to build it for one player, and what it means for a game."""

    factory: Callable[..., Optimizer]
    description: str
    game_defaults: Mapping[str, Any] = field(default_factory=dict)
    """Two-player defaults, e.g. TTUR's discriminator/generator learning-rate ratio."""
    wraps: tuple[str, str] | None = None
    """(key, default) of the optimizer this one wraps, e.g. lookahead's ``("base", "adam")``:
    the wrapped optimizer's hyperparameters pass through, and its default lr is this one's."""


def _lookahead(
    params: Iterable, base: str = "adam", k: int = 5, alpha: float = 0.5, **base_hparams: Any
) -> Lookahead:
    return Lookahead(build(base, params, **base_hparams), k=k, alpha=alpha)


OPTIMIZERS: dict[str, OptimizerEntry] = {
    "sgd": OptimizerEntry(torch.optim.SGD, "gradient descent-ascent (torch.optim.SGD)"),
    "adam": OptimizerEntry(torch.optim.Adam, "Adam (torch.optim.Adam)"),
    "ttur": OptimizerEntry(
        torch.optim.Adam,
        "two time-scale Adam: lr_D = lr_ratio * lr_G, lr_ratio 4 (Heusel et al. 2017)",
        {"lr_ratio": 4.0},
    ),
    "ogda": OptimizerEntry(OGDA, "optimistic gradient descent (Daskalakis et al. 2018)"),
    "optimistic-adam": OptimizerEntry(OptimisticAdam, "optimistic Adam (Daskalakis et al. 2018)"),
    "extra-sgd": OptimizerEntry(ExtraSGD, "extragradient, SGD half-steps (Gidel et al. 2019)"),
    "extra-adam": OptimizerEntry(ExtraAdam, "extragradient, Adam half-steps (Gidel et al. 2019)"),
    "past-extra-adam": OptimizerEntry(
        PastExtraAdam, "extrapolation from the past with Adam (Gidel et al. 2019)"
    ),
    "lookahead": OptimizerEntry(
        _lookahead,
        "lookahead-minmax around base=<name> (Chavdarova et al. 2021)",
        wraps=("base", "adam"),
    ),
    "muon": OptimizerEntry(
        MuonWithAdam, "Muon on matrix weights, Adam on the rest (torch.optim.Muon)"
    ),
}


ELEMENTWISE_TORCH = (
    torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.NAdam, torch.optim.RAdam,
    torch.optim.Adamax, torch.optim.RMSprop, torch.optim.Adagrad, torch.optim.Adadelta,
    torch.optim.Rprop, torch.optim.ASGD,
)  # fmt: skip
"""torch.optim's optimizers whose update of an element depends on that element's gradient
history and on scalars alone (no norm, factorisation or line search over a tensor): on a
population's stacked tensors they update every member exactly as they would that member alone.
Not listed, so never batched: Adafactor (factored moments, per-tensor RMS), Muon (one
orthogonalisation per tensor; ogan's ``muon`` is population-aware), LBFGS, SparseAdam."""


def acts_per_member(name: Any, hparams: Mapping[str, Any] | None = None) -> bool:
    """Whether optimizer ``name`` can train a population (``ogan.train_population``).

    A population stacks its members' tensors along a leading dimension; an optimizer trains it
    correctly only if it updates each member's slice exactly as it would that member alone.
    That holds for every optimizer ogan registers (the element-wise ones, and ⊥Grad and Muon,
    which act on each member's slices through the groups' ``members`` key), for
    :data:`ELEMENTWISE_TORCH`, and for a class or factory that says so with the attribute
    ``elementwise = True``. Anything else (it may take a norm over a whole tensor) is trained
    one seed at a time.
    """
    entry = resolve_name("optimizer", name)
    inner = wrapped(name, hparams)
    if inner is not None and not acts_per_member(inner.obj):
        return False
    registered = OPTIMIZERS.get(entry.name)
    if registered is not None and registered.factory is entry.obj:
        return True
    obj = entry.obj
    if isinstance(obj, type) and obj in ELEMENTWISE_TORCH:
        return True
    return getattr(obj, "elementwise", False) is True


def wrapped(name: Any, hparams: Mapping[str, Any] | None = None) -> Entry | None:
    """The optimizer that ``name`` wraps with these hyperparameters (lookahead's ``base``)."""
    entry = resolve_name("optimizer", name)
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
    """The keyword arguments ``build(name, ...)`` accepts (a wrapped optimizer's too)."""
    entry = resolve_name("optimizer", name)
    keys = list(entry.keys)
    inner = wrapped(name, hparams)
    if inner is not None:
        keys += [k for k in inner.keys if k not in keys]
    return (*keys, *ORTHO_KEYS)


def sequence_keys(name: Any, hparams: Mapping[str, Any] | None = None) -> frozenset[str]:
    """Hyperparameters whose value is a sequence (``betas``), a wrapped optimizer's included."""
    inner = wrapped(name, hparams)
    own = resolve_name("optimizer", name).sequence_keys
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
            :class:`Ortho`) and ``ortho_renorm`` (default True). Unknown keys are errors.

    Raises:
        ConfigError: unknown name or key (the message lists the valid ones), or a factory
            that does not return an optimizer.
        ValueError: an invalid value (from the optimizer's own validation).
    """
    entry = resolve_name("optimizer", name)
    valid = hyperparameters(name, hparams)
    unknown = sorted(set(hparams) - set(valid))
    if unknown and not entry.open_keys:
        raise ConfigError(
            f"Unknown hyperparameter(s) {', '.join(unknown)} for optimizer {entry.name!r}; "
            f"valid: {', '.join(valid)}"
        )
    hparams = {k: tuple(v) if isinstance(v, list) else v for k, v in hparams.items()}
    ortho = hparams.pop("ortho", None)
    renorm = hparams.pop("ortho_renorm", True)
    if ortho not in (None, "none", "weights"):
        raise ConfigError(f"Invalid ortho: {ortho!r}; valid: 'weights' (⊥Grad) or 'none'")
    optimizer = entry.obj(params, **hparams)
    if not isinstance(optimizer, Optimizer):
        raise ConfigError(
            f"optimizer {entry.name!r} returned {type(optimizer).__name__}, not a "
            "torch.optim.Optimizer; the factory must return one"
        )
    if ortho == "weights":
        optimizer = Ortho(optimizer, renorm=bool(renorm))
    return optimizer
