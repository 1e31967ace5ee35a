"""Everything ``ogan.train`` accepts, validated and resolved before anything is built or run."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ogan import optim
from ogan.errors import ConfigError
from ogan.game.losses import LOSSES
from ogan.game.streams import STREAMS
from ogan.registry import resolve_name
from ogan.workloads.base import Workload

SCHEMES = ("simultaneous", "alternating")
GAME_OPTIMIZER_KEYS = ("name", "lr_ratio", "surgery", "ortho_players")
"""Keys of an optimizer spec that belong to the game rather than to one player's optimizer."""
ORTHO_PLAYERS = ("both", "g", "d")
"""Which players ``ortho="weights"`` wraps in ⊥Grad (``ortho_players``; default both). A spec
holds the key only when it is not the default, so runs made before it existed keep their ids."""
GAME_OPTIONS = (
    "scheme", "d_steps", "loss", "r1", "batch_size", "fresh_batch", "streams", "flush_denormal"
)
"""Options of :func:`resolve` that shape the game, neither the workload's nor the optimizer's:
what a sweep's ``[[workload]]`` table may set besides the workload's own options."""


@dataclass(frozen=True)
class TrainConfig:
    """A fully resolved training run: every default filled in, every value checked."""

    workload: str  # the name as given (an import path for an object passed by value)
    options: dict[str, Any]  # the workload's options, defaults included
    optimizer: dict[str, Any]  # name, lr, lr_ratio, surgery and the optimizer's hyperparameters
    steps: int
    eval_every: int
    seed: int
    device: str
    scheme: str
    d_steps: int
    loss: str | None  # None: the workload's own objective (bilinear)
    r1: float
    batch_size: int
    fresh_batch: bool  # extrapolation methods: a new minibatch for the update half-step
    threads: int | None  # torch intra-op threads during the run; None leaves torch's setting
    streams: str = "torch"  # training batches: torch.Generator, or counter-based (streams.py)
    flush_denormal: bool = False  # CPU: subnormal floats flushed to zero (loop.flush_denormals)
    sources: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Where each name's code came from (``ogan.registry.Origin`` as dicts): ``workload``,
    ``optimizer`` and, for a wrapper, ``optimizer.<key>`` (e.g. ``optimizer.base``)."""
    resolved: optim.Resolved | None = dataclasses.field(default=None, compare=False, repr=False)
    """The optimizer spec resolved once (:func:`resolve` sets it): both players' optimizers,
    the population admission and the sources come from it, never from the name again. It is
    the spec's own meaning, not more configuration: equality and :meth:`to_dict` leave it out
    (an object passed by value is not JSON, and the dict names it already)."""

    @property
    def hparams(self) -> dict[str, Any]:
        """The per-player optimizer keyword arguments (lr excluded: it differs per player)."""
        return {k: v for k, v in self.optimizer.items() if k not in (*GAME_OPTIMIZER_KEYS, "lr")}

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain data (what a result and a checkpoint record)."""
        out = dataclasses.asdict(dataclasses.replace(self, resolved=None))
        del out["resolved"]
        return out

    @property
    def optimizer_resolved(self) -> optim.Resolved:
        """:attr:`resolved`, which only a configuration made by hand lacks.

        Raises:
            ValueError: it was not made by :func:`resolve`.
        """
        if self.resolved is None:
            raise ValueError("this TrainConfig holds no resolved optimizer; make it with "
                             "ogan.game.resolve")  # fmt: skip
        return self.resolved


def check_seed(seed: Any) -> int:
    """A run's seed, checked (an integer >= 0).

    Raises:
        ConfigError: anything else, bools included.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    return seed


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _nonneg_float(name: str, value: Any, *, strictly: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x) or x < 0 or (strictly and x == 0):
        raise ConfigError(f"{name} must be {'>' if strictly else '>='} 0 and finite, got {value!r}")
    return x


def resolve_optimizer(
    optimizer: Any | Mapping[str, Any],
) -> tuple[dict[str, Any], optim.Resolved, str | None]:
    """The completed optimizer spec, the spec resolved (:class:`ogan.optim.Resolved`, its name
    looked up once) and its extrapolation kind (None, "extragradient", "past").

    The name and what it wraps are resolved first, the game's keys and the lr completed, then
    the optimizer's keys checked (:meth:`~ogan.optim.Resolved.with_hparams`), and a trial
    optimizer built and stepped (:meth:`~ogan.optim.Resolved.trial`: its own validation, and a
    ``step`` that needs a closure refused now rather than at the first step).
    """
    spec = dict(optimizer) if isinstance(optimizer, Mapping) else {"name": optimizer}
    if "name" not in spec:
        raise ConfigError("optimizer spec needs a 'name', e.g. {'name': 'adam', 'lr': 2e-4}")
    found = optim.resolve(spec["name"], spec, check=False)
    entry, inner = found.entry, found.inner
    spec["name"] = name = entry.name  # a string, also for an object passed by value
    if inner is not None and entry.wraps is not None:
        spec[entry.wraps[0]] = inner.name
    valid = (*GAME_OPTIMIZER_KEYS, *found.keys)
    unknown = sorted(set(spec) - set(valid))
    if unknown and not (inner or entry).open_keys:
        raise ConfigError(
            f"Unknown key(s) {', '.join(unknown)} for optimizer {name!r}; valid: {', '.join(valid)}"
        )
    if "lr" not in spec:
        spec["lr"] = found.default_lr
    spec["lr"] = _nonneg_float("lr", spec["lr"], strictly=True)
    spec["lr_ratio"] = _nonneg_float(
        "lr_ratio", spec.get("lr_ratio", entry.game_defaults.get("lr_ratio", 1.0)), strictly=True
    )
    spec["surgery"] = bool(spec.get("surgery", False))
    players = spec.pop("ortho_players", "both")
    if players not in ORTHO_PLAYERS:
        raise ConfigError(f"Invalid ortho_players: {players!r}; valid: 'both' (the default), "
                          "'g' (the generator only) or 'd' (the discriminator only)")  # fmt: skip
    if players != "both":
        if spec.get("ortho") != "weights":
            raise ConfigError(f"ortho_players={players!r} needs ortho='weights'; add it, or "
                              "remove ortho_players")  # fmt: skip
        spec["ortho_players"] = players
    hparams = {k: v for k, v in spec.items() if k not in (*GAME_OPTIMIZER_KEYS, "lr")}
    resolved = found.with_hparams({"lr": spec["lr"], **hparams})  # the keys the players get
    try:  # the optimizer's own validation, on a throwaway parameter
        trial = resolved.trial()
    except ConfigError:
        raise
    except Exception as exc:  # a user's optimizer may raise anything for a bad value
        raise ConfigError(f"optimizer {name!r}: {type(exc).__name__}: {exc}") from None
    return spec, resolved, getattr(trial, "extrapolation", None)


def _check_flush_denormal(on: Any, device: torch.device, threads: int | None) -> None:
    """``flush_denormal``: a bool; on, a CPU run on one intra-op thread where torch can set it."""
    if not isinstance(on, bool):
        raise ConfigError(f"flush_denormal must be true or false, not {on!r}")
    if not on:
        return
    if device.type != "cpu":
        raise ConfigError(
            f"flush_denormal applies to CPU runs only (device {str(device)!r} computes "
            "subnormal floats at full speed); remove it"
        )
    if threads != 1:
        # torch.set_flush_denormal sets FTZ/DAZ on the calling thread only: torch's other
        # intra-op threads would go on computing subnormals, and a run's numbers would depend
        # on which thread took which chunk.
        raise ConfigError(
            f"flush_denormal needs threads=1 (got threads={threads}): torch sets it on the "
            "calling thread only; add threads=1 (bench run trains every run on one thread)"
        )
    from ogan.game.loop import denormals_supported  # the loop sets it; this only asks

    if not denormals_supported():
        raise ConfigError(
            "flush_denormal: torch cannot flush subnormal floats on this CPU "
            "(torch.set_flush_denormal returned False); remove it"
        )


def resolve(
    workload: Any,
    optimizer: Any | Mapping[str, Any],
    *,
    steps: int | None = None,
    eval_every: int | None = None,
    seed: int = 0,
    device: str | None = None,
    scheme: str | None = None,
    d_steps: int | None = None,
    loss: str | None = None,
    r1: float | None = None,
    surgery: bool | None = None,
    batch_size: int | None = None,
    fresh_batch: bool = False,
    threads: int | None = None,
    streams: str = "torch",
    flush_denormal: bool = False,
    lr: float | None = None,
    lr_ratio: float | None = None,
    **options: Any,
) -> TrainConfig:
    """Check and complete a run's configuration; raises ConfigError/MissingDataError, runs nothing.

    ``workload`` and the optimizer's name are anything :func:`ogan.registry.resolve_name`
    accepts; ``lr`` and ``lr_ratio`` given here override the optimizer spec's.
    """
    entry = resolve_name("workload", workload)
    cls, workload = entry.obj, entry.name
    parsed = cls.parse_options(**options)
    spec = dict(optimizer) if isinstance(optimizer, Mapping) else {"name": optimizer}
    spec.update({k: v for k, v in (("lr", lr), ("lr_ratio", lr_ratio)) if v is not None})
    spec, resolved, extrapolation = resolve_optimizer(spec)
    if surgery is not None:
        spec["surgery"] = bool(surgery)

    check_seed(seed)
    steps = _positive_int("steps", cls.default_steps if steps is None else steps)
    eval_every = _positive_int(
        "eval_every", cls.default_eval_every if eval_every is None else eval_every
    )
    batch_size = _positive_int(
        "batch_size", cls.default_batch_size if batch_size is None else batch_size
    )
    d_steps = _positive_int("d_steps", 1 if d_steps is None else d_steps)
    if threads is not None:
        threads = _positive_int("threads", threads)

    if scheme is None:
        # Extrapolation is defined on the joint gradient field: both players at one point.
        scheme = "simultaneous" if extrapolation else cls.default_scheme
    if scheme not in SCHEMES:
        raise ConfigError(f"Unknown scheme {scheme!r}; valid: {', '.join(SCHEMES)}")
    if extrapolation and scheme != "simultaneous":
        raise ConfigError(
            f"{spec['name']} extrapolates both players at once; use scheme='simultaneous'"
        )
    if scheme == "simultaneous" and d_steps != 1:
        raise ConfigError("d_steps > 1 needs scheme='alternating'")

    if cls.default_loss is None:
        if loss is not None:
            raise ConfigError(f"workload {workload!r} has a fixed objective; remove loss={loss!r}")
    else:
        loss = cls.default_loss if loss is None else loss
        if loss not in LOSSES:
            raise ConfigError(f"Unknown loss {loss!r}; valid: {', '.join(LOSSES)}")
    r1 = _nonneg_float("r1", 0.0 if r1 is None else r1)
    if (r1 > 0 or spec["surgery"]) and not cls.has_real_data:
        raise ConfigError(f"workload {workload!r} has no real data: r1 and surgery do not apply")

    if streams not in STREAMS:
        raise ConfigError(f"Unknown streams {streams!r}; valid: {', '.join(STREAMS)}")
    if streams == "counter" and cls.sample_streams is Workload.sample_streams:
        raise ConfigError(f"workload {workload!r} has no sample_streams: use streams='torch'")

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"Unknown device {device!r}; use 'cpu' or 'cuda[:N]'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use 'cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"Unsupported device {device!r}; use 'cpu' or 'cuda[:N]'")
    _check_flush_denormal(flush_denormal, dev, threads)

    return TrainConfig(
        workload=workload,
        options=dataclasses.asdict(parsed),
        optimizer=spec,
        steps=steps,
        eval_every=eval_every,
        seed=seed,
        device=str(dev),
        scheme=scheme,
        d_steps=d_steps,
        loss=loss,
        r1=r1,
        batch_size=batch_size,
        fresh_batch=bool(fresh_batch),
        threads=threads,
        streams=streams,
        flush_denormal=flush_denormal,
        sources={"workload": entry.origin.to_dict(), **resolved.sources},
        resolved=resolved,
    )
