"""The run loop, written once: one run (``ogan.train``) or a population (``ogan.train_population``).

The loop times each step, checks it for divergence, evaluates every ``eval_every`` steps, keeps
the per-step rows and the history, writes checkpoints (:mod:`ogan.game.checkpoint`) and builds
each member's :class:`TrainResult`. It drives a game through a small interface that
:class:`PopulationGame` has and :class:`One` gives a one-run :class:`Game`: ``step`` returns
one row per member still training, ``evaluate(slot)`` one member's metrics, ``keep(slots)``
continues with some members only, ``state_dict``/``load_state_dict`` for checkpoints.

The steps run in blocks between read-backs of their rows (:mod:`ogan.game.graph` says how
long: one step on a CPU, an evaluation interval on CUDA, where every read waits for the device).
A block's time is shared by its steps, and a member's by the members that took each step, so
for one run it is the step's time and over a population the members' times add up to the
population's. A member that diverges stops at its first non-finite row, with its final
evaluation; the others carry on unchanged.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ogan.game import checkpoint as ckpt
from ogan.game import graph
from ogan.game import stats as gstats
from ogan.game.config import TrainConfig
from ogan.game.game import Game


@dataclass
class TrainResult:
    """What a run produced.

    Attributes:
        history: one row per evaluation: ``step``, ``grad_evals``, ``wall_time`` (training seconds
            so far, evaluation excluded), ``loss_g``/``loss_d`` and ``grad_norm_g``/``grad_norm_d``
            (means and medians over the steps since the previous evaluation), then the
            workload's metric columns.
        trace: one row per step: losses, per-player gradient statistics, step time.
        summary: final metrics, gradient-norm summaries, divergence, cost (JSON-serialisable).
        config: the resolved configuration (:class:`TrainConfig` as a dict).
    """

    history: Any  # pandas.DataFrame
    trace: Any  # pandas.DataFrame
    summary: dict[str, Any]
    config: dict[str, Any]


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` for a run (``TrainConfig.threads``), restored after;
    None leaves torch's setting."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _flushing() -> bool:
    """Whether this thread flushes subnormal float32 results to zero now (1e-30 * 1e-10 is
    1e-40, a subnormal: FTZ makes it 0). torch sets the mode but has no call that reads it."""
    tiny = torch.tensor(1e-30, dtype=torch.float32)
    return bool((tiny * 1e-10).item() == 0.0)


def denormals_supported() -> bool:
    """Whether torch can flush subnormals on this CPU (asked by setting it; the mode is
    left as it was)."""
    before = _flushing()
    supported = torch.set_flush_denormal(True)
    torch.set_flush_denormal(before)
    return bool(supported)


@contextmanager
def flush_denormals(on: bool) -> Iterator[None]:
    """Subnormal floats flushed to zero on this thread for a run (``TrainConfig.flush_denormal``:
    x86's FTZ and DAZ through ``torch.set_flush_denormal``), restored after; off leaves the
    mode as it is. Why: where weights decay towards zero (⊥Grad on D, README: Performance)
    Intel cores compute on subnormals through microcode assists, several times slower; the
    flushed run's numbers differ from the unflushed one's below 1.2e-38, so it is another run."""
    if not on:
        yield
        return
    before = _flushing()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


@contextmanager
def run_settings(config: TrainConfig) -> Iterator[None]:
    """The process-wide torch settings a run trains under, set for the run and restored after:
    its intra-op threads, then (on the thread that now does all the work) the subnormal mode."""
    with torch_threads(config.threads), flush_denormals(config.flush_denormal):
        yield


class One:
    """A one-run :class:`Game` seen as a population of one (the loop's interface)."""

    def __init__(self, game: Game):
        self.game = self.core = game
        self.config, self.device, self.layout = game.config, game.device, game.layout
        self.workload = game.workload

    @property
    def grad_evals(self) -> list[int]:
        return self.game.grad_evals

    def step(self, index: int) -> Tensor:
        return self.game.step(index)[None]

    def evaluate(self, slot: int) -> dict[str, float]:
        return self.game.evaluate()

    def keep(self, slots: list[int]) -> None:  # one member: the loop ends when it stops
        raise AssertionError("a one-run game has no members to drop")

    def state_dict(self) -> dict[str, Any]:
        return self.game.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.game.load_state_dict(state)


@dataclass
class _Member:
    """One member's record while the run trains (all of it goes into a checkpoint)."""

    rows: Tensor
    step_times: np.ndarray
    history: list[dict[str, Any]] = field(default_factory=list)
    wall: float = 0.0
    eval_time: float = 0.0
    population_time: float = 0.0  # the population's time over this member's steps
    grad_evals: list[int] = field(default_factory=lambda: [0, 0])
    diverged_at: int | None = None
    done: int = 0
    recorded: int = 0  # the step of the previous evaluation: each row summarises the steps since

    def state(self) -> dict[str, Any]:
        """The record so far (rows up to the last step taken: the rest are NaN)."""
        return {**dataclasses.asdict(self), "rows": self.rows[: self.done].clone(),
                "step_times": self.step_times[: self.done].copy()}  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            if key == "rows":
                self.rows[: len(value)] = value
            elif key == "step_times":
                self.step_times[: len(value)] = value
            else:
                setattr(self, key, value)


def _next_stop(i: int, config: TrainConfig, every: int) -> int:
    """The step after which the loop next reads the rows back: the next multiple of ``every``
    (1: every step), or the end."""
    return min(config.steps, (i // every + 1) * every)


def run(
    game: Any,
    configs: list[TrainConfig],
    *,
    population: bool,
    checkpointing: ckpt.Checkpointing | None = None,
    evaluate: bool = True,
) -> list[TrainResult]:
    """Train ``game`` (a :class:`One` or a :class:`PopulationGame` of ``configs``) to the end.

    ``population``: the results say how the population trained (``summary["population"]``).
    ``checkpointing``: where to resume from and write checkpoints to (None: neither).
    ``evaluate``: False records NaN for every metric instead of evaluating (a run that only
    times its steps: an Inception FID on the CPU costs minutes).
    """
    import pandas as pd

    config = game.config
    members = [
        _Member(torch.full((c.steps, game.layout.width), math.nan), np.full(c.steps, math.nan))
        for c in configs
    ]
    alive = list(range(len(configs)))  # the member at each slot of the game
    sync = game.device.type == "cuda"
    start = 0
    config_dicts = [c.to_dict() for c in configs]

    def record(slot: int, step: int, now: int) -> None:
        """Evaluate the member at ``slot`` (the game is at step ``now``) as of ``step``."""
        m = members[alive[slot]]
        t0 = time.perf_counter()
        metrics = (
            game.evaluate(slot) if evaluate else dict.fromkeys(game.workload.metrics, math.nan)
        )
        m.eval_time += time.perf_counter() - t0
        window = game.layout.columns(m.rows[m.recorded : step])
        m.recorded = step
        # every step takes the same gradient evaluations: the count at ``step``
        m.grad_evals = [g * step // now for g in game.grad_evals] if now else [0, 0]
        m.history.append({
            "step": step,
            "grad_evals": sum(m.grad_evals),
            "wall_time": m.wall,
            **gstats.window_summary(window),
            **metrics,
        })  # fmt: skip

    execution = graph.executor(game)  # before loading: it may make the optimizers capturable
    saved = None if checkpointing is None else ckpt.load(checkpointing.path, config_dicts)
    if saved is None:
        for slot in range(len(alive)):
            record(slot, 0, 0)
    else:
        start, alive = saved["step"], saved["alive"]
        for m, state in zip(members, saved["members"]):
            m.restore(state)
        if len(alive) < len(configs):
            game.keep(alive)  # every member was at its own slot when the game was built
        game.load_state_dict(saved["game"])
        ckpt.set_random_state(saved["random"], game.device)
    every = execution.read_every(config.eval_every)
    i = start
    while i < config.steps:
        end = _next_stop(i, config, every)
        t0 = time.perf_counter()
        block = torch.stack([execution.step(j) for j in range(i, end)])  # (steps, slots, width)
        finite = torch.isfinite(block).all(2).cpu()  # waits for the device: once per block
        if sync:
            torch.cuda.synchronize(game.device)
        dt = (time.perf_counter() - t0) / (end - i)  # a block's steps share its time
        block = block.cpu()
        stopped = []
        for slot, index in enumerate(alive):
            m = members[index]
            bad = (~finite[:, slot]).nonzero()
            n = int(bad[0]) + 1 if len(bad) else end - i  # up to its first non-finite step
            m.rows[i : i + n] = block[:n, slot]
            m.step_times[i : i + n] = dt / len(alive)
            for _ in range(n):  # as many additions as steps: the same sum as step by step
                m.wall += dt / len(alive)
                m.population_time += dt
            m.done = i + n
            if len(bad):
                m.diverged_at = m.done
                stopped.append(slot)
        if stopped:
            for slot in stopped:
                record(slot, members[alive[slot]].diverged_at, end)
            slots = [slot for slot in range(len(alive)) if slot not in stopped]
            alive = [alive[slot] for slot in slots]
            if not alive:
                break
            game.keep(slots)
            execution.reset()
        if end % config.eval_every == 0 or end == config.steps:
            for slot in range(len(alive)):
                record(slot, end, end)
        if ckpt.due(checkpointing, i, end, config.steps):
            state = {
                "step": end,
                "alive": alive,
                "members": [m.state() for m in members],
                "game": game.state_dict(),
                "random": ckpt.random_state(game.device),
            }
            ckpt.save(checkpointing.path, config_dicts, state)  # type: ignore[union-attr]
        i = end

    results = []
    for index, (c, m) in enumerate(zip(configs, members)):
        trace = pd.DataFrame({"step": np.arange(1, m.done + 1),
                              **game.layout.columns(m.rows[: m.done])})  # fmt: skip
        trace["step_time"] = m.step_times[: m.done]
        history = pd.DataFrame(m.history)
        summary = gstats.run_summary(
            history=history,
            trace=trace,
            workload=game.workload,
            diverged_at=m.diverged_at,
            wall_time=m.wall,
            eval_time=m.eval_time,
            grad_evals=m.grad_evals,
        )
        summary["metric_info"] = game.workload.metric_info()
        summary["execution"] = execution.record()
        if population:
            summary["population"] = {
                "size": len(configs),
                "member": index,
                "step_time": m.population_time / m.done if m.done else math.nan,
            }
        results.append(TrainResult(history, trace, summary, c.to_dict()))
    return results
