"""The workload registry: names mapped to classes (the table is :data:`ogan.names.WORKLOADS`),
imported on first use.

Names are resolved by :func:`ogan.registry.resolve_name`: these, installed packages' (the
``ogan.workloads`` entry-point group) and import paths ``"package.module:Class"`` of any
:class:`Workload` subclass.
"""

from __future__ import annotations

from typing import Any

from ogan.names import WORKLOADS
from ogan.registry import resolve_name
from ogan.workloads.base import Batch, Metric, Workload

__all__ = ["WORKLOADS", "Batch", "Metric", "Workload", "get"]

def get(name: str | type[Workload] | Any) -> type[Workload]:
    """The workload class a name (or import path, or the class itself) stands for."""
    return resolve_name("workload", name).obj
