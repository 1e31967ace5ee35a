"""GAN optimizers, usable in any PyTorch loop, and a registry to build them by name.

>>> opt = ogan.optim.build("optimistic-adam", model.parameters(), lr=2e-4, betas=(0.5, 0.9))
>>> opt = ogan.optim.Ortho(torch.optim.Adam(model.parameters(), lr=2e-4))  # ⊥Grad around Adam
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.optim import Optimizer

from ogan.errors import ConfigError
from ogan.optim.extragradient import ExtraAdam, ExtraSGD, PastExtraAdam
from ogan.optim.muon import MuonWithAdam
from ogan.optim.optimistic import OGDA, OptimisticAdam
from ogan.optim.wrappers import Lookahead, Ortho

__all__ = [
    "OGDA",
    "OPTIMIZERS",
    "ExtraAdam",
    "ExtraSGD",
    "Lookahead",
    "MuonWithAdam",
    "OptimisticAdam",
    "OptimizerEntry",
    "Ortho",
    "PastExtraAdam",
    "build",
    "hyperparameters",
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


def _lookahead(
    params: Iterable, base: str = "adam", k: int = 5, alpha: float = 0.5, **base_hparams: Any
) -> Lookahead:
    if base == "lookahead":
        raise ConfigError("lookahead cannot wrap lookahead; choose another base")
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
        _lookahead, "lookahead-minmax around base=<name> (Chavdarova et al. 2021)"
    ),
    "muon": OptimizerEntry(
        MuonWithAdam, "Muon on matrix weights, Adam on the rest (torch.optim.Muon)"
    ),
}


def hyperparameters(name: str, hparams: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """The keyword arguments ``build(name, ...)`` accepts (``base``'s too, for lookahead)."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"Unknown optimizer {name!r}; valid names: {', '.join(OPTIMIZERS)}")
    sig = inspect.signature(OPTIMIZERS[name].factory)
    keys = [
        p.name
        for p in list(sig.parameters.values())[1:]
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in ("foreach", "fused", "capturable", "differentiable")
    ]
    if name == "lookahead":
        base_keys = hyperparameters((hparams or {}).get("base", "adam"))
        keys += [k for k in base_keys if k not in keys and k not in ORTHO_KEYS]
    return (*keys, *ORTHO_KEYS)


def build(name: str, params: Iterable, **hparams: Any) -> Optimizer:
    """Build a registered optimizer for one player.

    Args:
        name: a key of :data:`OPTIMIZERS`.
        params: parameters or parameter groups, as for any ``torch.optim`` optimizer.
        **hparams: the optimizer's keyword arguments, plus ``ortho="weights"`` (wrap in
            :class:`Ortho`) and ``ortho_renorm`` (default True). Unknown keys are errors.

    Raises:
        ConfigError: unknown name or key (the message lists the valid ones).
        ValueError: an invalid value (from the optimizer's own validation).
    """
    valid = hyperparameters(name, hparams)
    unknown = sorted(set(hparams) - set(valid))
    if unknown:
        raise ConfigError(
            f"Unknown hyperparameter(s) {', '.join(unknown)} for optimizer {name!r}; "
            f"valid: {', '.join(valid)}"
        )
    hparams = {k: tuple(v) if isinstance(v, list) else v for k, v in hparams.items()}
    ortho = hparams.pop("ortho", None)
    renorm = hparams.pop("ortho_renorm", True)
    if ortho not in (None, "none", "weights"):
        raise ConfigError(f"Invalid ortho: {ortho!r}; valid: 'weights' (⊥Grad) or 'none'")
    optimizer = OPTIMIZERS[name].factory(params, **hparams)
    if ortho == "weights":
        optimizer = Ortho(optimizer, renorm=bool(renorm))
    return optimizer
