"""RunSpec: one run of a sweep, frozen and hashable; its content hash is the run id."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ogan.registry import IMPL_FLAGS

Items = tuple[tuple[str, Any], ...]


def freeze(value: Any) -> Any:
    """Lists become tuples and dicts sorted item tuples, so that specs hash and compare by value."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(items: Items) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in items}


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one run. Two equal specs give bit-identical results on CPU."""

    sweep: str
    workload: str
    workload_options: Items  # the [[workload]] table's keys (game options included), sorted
    optimizer: Items  # the [[optimizer]] entry's keys with lr resolved, sorted
    label: str  # the optimizer variant's name in tables and figures, e.g. "adam+ortho"
    seed: int
    steps: int
    eval_every: int
    device: str

    @property
    def run_id(self) -> str:
        """sha256 of the canonical JSON of what determines the result (not sweep or label, nor
        torch.optim's implementation switches, ``foreach`` and the like: they change how fast
        the update is computed, not the experiment; the run records them in its spec)."""
        optimizer = {k: v for k, v in thaw(self.optimizer).items() if k not in IMPL_FLAGS}
        key = {
            "workload": self.workload,
            "workload_options": thaw(self.workload_options),
            "optimizer": optimizer,
            "seed": self.seed,
            "steps": self.steps,
            "eval_every": self.eval_every,
            "device": self.device,
        }
        blob = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def __hash__(self) -> int:
        return int(self.run_id, 16)

    @property
    def lr(self) -> float:
        return float(dict(self.optimizer)["lr"])

    def train_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``ogan.train`` for this run."""
        return {
            "workload": self.workload,
            "optimizer": thaw(self.optimizer),
            "steps": self.steps,
            "seed": self.seed,
            "eval_every": self.eval_every,
            "device": self.device,
            **thaw(self.workload_options),
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["workload_options"] = thaw(self.workload_options)
        d["optimizer"] = thaw(self.optimizer)
        d["run_id"] = self.run_id
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunSpec:
        fields = {k: v for k, v in d.items() if k != "run_id"}
        fields["workload_options"] = freeze(fields["workload_options"])
        fields["optimizer"] = freeze(fields["optimizer"])
        return cls(**fields)
