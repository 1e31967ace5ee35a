"""Checkpoints inside a run: the whole state of a run (or a population), written atomically.

A long protocol (25k–400k steps) on a lent or preemptible machine must survive being killed.
Every ``checkpoint_every`` steps the run loop (:mod:`ogan.game.loop`) writes everything that
decides what the run does next: each member's parameters and buffers, both optimizers' state
(wrappers included: ⊥Grad, Lookahead's slow weights, the extrapolation anchors), the data
generators' states and torch's global generators (a network may draw from them, e.g. dropout),
the gradient-evaluation counters, and the record so far (the per-step rows, the history, the
timing, who diverged where). A run started with the same checkpoint path loads it and goes on
from that step, so the resumed run is the uninterrupted one bit for bit (on CPU, for the same
thread count); only its timing differs.

The interval never changes what a run computes (a checkpoint is taken between two steps, after
that step's evaluation, and touches nothing), so it is not part of :class:`TrainConfig` and not
part of a run id. The file holds the members' resolved configurations; a checkpoint of another
run is refused rather than silently continued.

The file is a ``torch.save`` pickle written through :mod:`ogan.files` (temporary file, fsync,
rename): a run killed while writing leaves the previous checkpoint intact. It is loaded with
``weights_only=False`` because it holds optimizer state of any registered or user optimizer and
the history's Python objects; it is the run's own file, written by this module.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ogan.errors import ConfigError
from ogan.files import atomic_open
from ogan.game.config import TrainConfig

FORMAT = 1
"""Bumped whenever the file's layout changes; an older file is refused with a clear message."""

DEFAULT_EVERY = 5000
"""Steps between checkpoints when the run asks for checkpoints without an interval and is
longer than :data:`DEFAULT_FROM` steps: at the published protocols' speeds (a few ms a step on
a GPU, tens on a CPU core) that is seconds to minutes of work lost at most, against one write of
a few MB."""

DEFAULT_FROM = 10_000
"""Runs of at most this many steps take no checkpoint unless ``checkpoint_every`` says: they
are cheap to redo."""


@dataclass(frozen=True)
class Checkpointing:
    """Where a run keeps its checkpoint and how often it writes it (``every``: steps)."""

    path: Path
    every: int | None


def plan(path: str | Path | None, every: int | None, steps: int) -> Checkpointing | None:
    """The checkpointing a run with ``steps`` steps does, or None; validates the two options.

    ``every`` None: :data:`DEFAULT_EVERY` for runs over :data:`DEFAULT_FROM` steps, else none
    (the path is still read: a run resumes from a checkpoint it finds there).
    """
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise ConfigError(f"checkpoint_every must be an integer >= 1, got {every!r}")
    if path is None:
        if every is not None:
            raise ConfigError("checkpoint_every needs checkpoint=PATH: where to keep the state")
        return None
    if every is None and steps > DEFAULT_FROM:
        every = DEFAULT_EVERY
    return Checkpointing(Path(path), every)


def due(checkpointing: Checkpointing | None, start: int, done: int, steps: int) -> bool:
    """Whether a checkpoint is written after the steps ``start + 1 .. done`` (a block between two
    read-backs): when the block reached a multiple of the interval, and never after the last
    step (the run ends). Blocks are never cut for a checkpoint, so the interval changes nothing
    the run computes, however the loop reads its rows back."""
    if checkpointing is None or checkpointing.every is None:
        return False
    every = checkpointing.every
    return done // every > start // every and done < steps


def random_state(device: torch.device) -> dict[str, Any]:
    """torch's global generators: CPU, and the run's GPU when it has one."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_random_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save(path: Path, configs: list[dict[str, Any]], state: dict[str, Any]) -> None:
    """Write ``state`` (the loop's and the game's) for the run of ``configs``, atomically."""
    with atomic_open(path) as f:
        torch.save({"format": FORMAT, "configs": configs, "state": state}, f)


def load(path: Path, configs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The state saved at ``path`` for the run of ``configs``; None when there is no file.

    Tensors are loaded on the CPU: each goes where it belongs through its owner's own loading
    (``Module.load_state_dict``, ``Optimizer.load_state_dict``, which keeps step counters where
    the optimizer wants them, ``Tensor.copy_`` for stacked members).
    """
    if not path.exists():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a file that is not a checkpoint: say which and why
        raise ConfigError(f"cannot read checkpoint {path}: {exc}") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a checkpoint of this version of ogan; delete it")
    if [_completed(c) for c in saved["configs"]] != configs:
        raise ConfigError(f"checkpoint {path} belongs to another run; delete it or use another")
    return saved["state"]


def _completed(config: dict[str, Any]) -> dict[str, Any]:
    """A saved configuration with the defaults of keys added to ``TrainConfig`` since it was
    written (``flush_denormal``): the run it describes is the one those defaults give, so an
    interrupted run goes on across the upgrade."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)
                if f.default is not dataclasses.MISSING and f.name != "resolved"}  # fmt: skip
    return {**{k: v for k, v in defaults.items() if k not in config}, **config}
