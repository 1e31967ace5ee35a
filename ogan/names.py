"""ogan's own names: the one table of its workloads and optimizers, as import paths.

:mod:`ogan.registry` resolves names through this table and imports what an entry points at only
when that name is used. The table imports nothing of ogan, so the registry never imports the
packages whose names it resolves (``ogan.optim`` and ``ogan.workloads`` import the registry,
not the other way round: no import circle), and ``ogan.optim.OPTIMIZERS`` /
``ogan.workloads.WORKLOADS`` are this table, re-exported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

WORKLOAD_BASE = "ogan.workloads.base:Workload"
"""The class every workload subclasses (imported by the registry when it checks one)."""


@dataclass(frozen=True)
class OptimizerEntry:
    """A registered optimizer: how to build it for one player, and what it means for a game."""

    factory: str | Callable[..., Any]
    """An import path ``"module:Attribute"`` of a ``torch.optim.Optimizer`` subclass or a
    factory ``f(params, **hparams)`` (or the object itself)."""
    description: str
    game_defaults: Mapping[str, Any] = field(default_factory=dict)
    """Two-player defaults, e.g. TTUR's discriminator/generator learning-rate ratio."""
    wraps: tuple[str, str] | None = None
    """(key, default) of the optimizer this one wraps, e.g. lookahead's ``("base", "adam")``:
    the wrapped optimizer's hyperparameters pass through, and its default lr is this one's."""


WORKLOADS: dict[str, Any] = {
    "bilinear": "ogan.workloads.toy:Bilinear",
    "dirac": "ogan.workloads.toy:Dirac",
    "mog-ring": "ogan.workloads.mog:MoGRing",
    "mog-grid": "ogan.workloads.mog:MoGGrid",
    "digits": "ogan.workloads.digits:Digits",
    "seed-mlp": "ogan.workloads.digits:SeedMLP",
    "mnist": "ogan.workloads.vision:MNIST",
    "cifar10": "ogan.workloads.vision:CIFAR10",
}

OPTIMIZERS: dict[str, OptimizerEntry] = {
    "sgd": OptimizerEntry("torch.optim:SGD", "gradient descent-ascent (torch.optim.SGD)"),
    "adam": OptimizerEntry("torch.optim:Adam", "Adam (torch.optim.Adam)"),
    "ttur": OptimizerEntry(
        "torch.optim:Adam",
        "two time-scale Adam: lr_D = lr_ratio * lr_G, lr_ratio 4 (Heusel et al. 2017)",
        {"lr_ratio": 4.0},
    ),
    "ogda": OptimizerEntry(
        "ogan.optim.optimistic:OGDA", "optimistic gradient descent (Daskalakis et al. 2018)"
    ),
    "optimistic-adam": OptimizerEntry(
        "ogan.optim.optimistic:OptimisticAdam", "optimistic Adam (Daskalakis et al. 2018)"
    ),
    "extra-sgd": OptimizerEntry(
        "ogan.optim.extragradient:ExtraSGD", "extragradient, SGD half-steps (Gidel et al. 2019)"
    ),
    "extra-adam": OptimizerEntry(
        "ogan.optim.extragradient:ExtraAdam", "extragradient, Adam half-steps (Gidel et al. 2019)"
    ),
    "past-extra-adam": OptimizerEntry(
        "ogan.optim.extragradient:PastExtraAdam",
        "extrapolation from the past with Adam (Gidel et al. 2019)",
    ),
    "lookahead": OptimizerEntry(
        "ogan.optim:lookahead",
        "lookahead-minmax around base=<name> (Chavdarova et al. 2021)",
        wraps=("base", "adam"),
    ),
    "muon": OptimizerEntry(
        "ogan.optim.muon:MuonWithAdam",
        "Muon on matrix weights, Adam on the rest (torch.optim.Muon)",
    ),
}
