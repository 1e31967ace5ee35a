"""The workload registry: names mapped to classes, imported on first use."""

from __future__ import annotations

import importlib

from ogan.errors import ConfigError
from ogan.workloads.base import Batch, Metric, Workload

__all__ = ["WORKLOADS", "Batch", "Metric", "Workload", "get"]

WORKLOADS: dict[str, str] = {
    "bilinear": "ogan.workloads.toy:Bilinear",
    "dirac": "ogan.workloads.toy:Dirac",
    "mog-ring": "ogan.workloads.mog:MoGRing",
    "mog-grid": "ogan.workloads.mog:MoGGrid",
    "digits": "ogan.workloads.digits:Digits",
    "seed-mlp": "ogan.workloads.digits:SeedMLP",
    "mnist": "ogan.workloads.vision:MNIST",
    "cifar10": "ogan.workloads.vision:CIFAR10",
}


def get(name: str) -> type[Workload]:
    """The workload class registered under ``name``."""
    if name not in WORKLOADS:
        raise ConfigError(f"Unknown workload {name!r}; valid names: {', '.join(WORKLOADS)}")
    module, cls = WORKLOADS[name].split(":")
    return getattr(importlib.import_module(module), cls)
