"""How the loop executes the step: eagerly, or on CUDA captured once as a CUDA graph and replayed.

A population's step on a GPU is launch overhead: hundreds of small kernels, each launched from
Python, and before this module a host synchronisation every step. Captured as a CUDA graph
(``torch.cuda.graphs``), the whole step — drawing every member's batch (counter-based streams,
:mod:`ogan.game.streams`), both players' forward and backward passes, the optimizer updates,
Lookahead's synchronisation, the statistics row — is one launch, and the loop reads the rows
back once per evaluation interval (:meth:`Execution.read_every`): a member that turned
non-finite inside an interval is stopped at its first non-finite step, found in the rows.

A step is captured only when everything in it is known to be capturable; otherwise it runs
eagerly and ``summary["execution"]`` says why (:func:`plan`), with one line on stderr on CUDA:

* the device is CUDA and the run draws with ``streams="counter"`` (a ``torch.Generator`` per
  member draws from the host, member by member);
* every link of both players' optimizer chains is in :data:`CAPTURABLE`: torch.optim's Adam
  and AdamW and ogan's optimistic Adam, Extra-Adam, PastExtraAdam and Muon (its Adam part), all
  made ``capturable=True`` so that their step counters and bias corrections live on the device;
  SGD, ExtraSGD and OGDA, which keep no counter; the extrapolation methods' two half-steps
  (foreach copies of the anchors around the base step); Lookahead, whose synchronisation is two
  in-place foreach ops; ⊥Grad (``Ortho``), whose projection is the Triton kernel with its
  pointer tables cached per list of tensors (:mod:`ogan._triton_kernel`: no copy, no sync once
  cached) or the foreach path, which syncs nothing either; not with ``impl="reference"``, whose
  loop reads every coefficient back. A user's optimizer is not known to be capturable;
* D gradient surgery goes through the same projection, so it is captured too;
* the capture itself succeeds (a workload's host logic fails it: the step then runs eagerly,
  the error is the reason).

The first :data:`WARMUP` steps run eagerly on a side stream (optimizer state, cuBLAS
workspaces), as ``torch.cuda.graphs`` asks. Capturing records the step without running it, so
the step at which a graph is captured is then replayed; the host-side counters the capture
advanced (gradient evaluations, Lookahead's fast steps) are put back and advanced per replay.
Lookahead's every-k synchronisation is a second graph (the step with the synchronisation).
When members stop, the population's tensors are rebuilt, so the graphs are captured again.

Its semantics are tested on the CPU: tests/graph_replay.py records a captured step's aten
operations and replays only those into the captured memory, so every Python value the host
computed while capturing stays frozen, as in a CUDA graph; there every registered optimizer,
both schemes and every built-in workload replay bit for bit as their eager steps
(tests/test_graph.py). What that cannot see (the Triton kernels, operations a CUDA run would do
on host tensors) the device test and the prepared check (``python -m bench perf --device
cuda``) hold to eager on a GPU.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch import Tensor

from ogan.optim.extragradient import ExtraAdam, ExtraSGD, PastExtraAdam
from ogan.optim.muon import MuonWithAdam
from ogan.optim.optimistic import OGDA, OptimisticAdam
from ogan.optim.wrappers import Lookahead, Ortho

WARMUP = 3
"""Eager steps on a side stream before the first capture."""

CAPTURABLE = (
    torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD,
    OGDA, OptimisticAdam, ExtraSGD, ExtraAdam, PastExtraAdam, MuonWithAdam,
    Lookahead, Ortho,
)  # fmt: skip
"""Optimizer chain links whose step is device work only, once :class:`Graph` has set
``capturable=True`` where they take it (the exact classes: a subclass may add host logic).
Replayed on the CPU with CUDA-graph semantics, each equals its eager steps bit for bit
(tests/test_graph.py); not yet run on a device for ogan's optimizers and ⊥Grad: the device test
holds replay to eager there."""


def _links(opt: Any) -> list[Any]:
    chain = []
    while opt is not None:
        chain.append(opt)
        opt = getattr(opt, "base", None)
    return chain


def plan(core: Any) -> tuple[str, str]:
    """``("graph" | "eager", why)`` for a game (:class:`ogan.game.game.TwoPlayerGame`)."""
    if core.device.type != "cuda":
        return "eager", f"device {core.device.type}: CUDA graphs need a CUDA device"
    if core.streams is None:
        return "eager", (
            "streams='torch' draws each member's batch with its own torch.Generator from the "
            "host; streams='counter' is captured"
        )
    for player in (core.g, core.d):
        for link in _links(player.optimizer):
            if type(link) not in CAPTURABLE:
                return "eager", f"optimizer {type(link).__name__} is not known to be capturable"
            if isinstance(link, Ortho) and link.impl == "reference":
                return "eager", (
                    "⊥Grad impl='reference' reads every coefficient back to the host; "
                    "impl='auto' (Triton or foreach) is captured"
                )
    return "graph", "captured"


def make_capturable(core: Any) -> None:
    """``capturable=True`` on every optimizer group that takes it (torch.optim's Adam, ogan's
    optimizers; a chain's links share its base's groups), with existing step counters moved to
    their parameters' device (ogan's own convert a host counter at their next step).

    Done before the warm-up steps of every capture, not only once: loading a checkpoint an eager
    run saved restores ``capturable=False``, and a step that is not capturable may still be
    recorded without error (a host counter read from a CPU tensor) with its bias corrections
    frozen into the graph as constants, wrong at every later replay.
    """
    for player in (core.g, core.d):
        links = _links(player.optimizer)
        for group in player.optimizer.param_groups:
            if "capturable" not in group:
                continue
            group["capturable"] = True
            for p in group["params"]:
                for link in links:
                    step = link.state[p].get("step") if p in link.state else None
                    if isinstance(step, Tensor) and step.device != p.device:
                        link.state[p]["step"] = step.to(p.device, torch.float32)


class Execution:
    """Eager execution: each step as it is written. On a CPU the rows are read back every step
    (a read costs nothing there, and a diverging member is evaluated at the very step it
    diverged, as always); on CUDA once per evaluation interval, as under a graph, since each
    read waits for the device."""

    def __init__(self, game: Any, mode: str, reason: str):
        self.game, self.mode, self.reason = game, mode, reason

    def read_every(self, eval_every: int) -> int:
        """Steps between read-backs of the rows (and their finite check)."""
        return eval_every if self.game.core.device.type == "cuda" else 1

    def step(self, index: int) -> Tensor:
        """Step ``index``: the rows (slots, width), a tensor the next step does not overwrite."""
        return self.game.step(index)

    def reset(self) -> None:
        """The game's members changed (``keep``)."""

    def record(self) -> dict[str, str]:
        """``summary["execution"]``."""
        return {"mode": self.mode, "reason": self.reason}


class Graph(Execution):
    """The step captured as CUDA graphs (one per Lookahead phase) and replayed."""

    def __init__(self, game: Any, reason: str):
        super().__init__(game, "graph", reason)
        make_capturable(game.core)  # before any state exists, where it does not yet
        self.lookahead = game.core.g.lookahead
        self.reset()

    def reset(self) -> None:
        # phase -> (graph, its output, gradient evaluations and Lookahead fast steps per replay)
        self.graphs: dict[bool, tuple[torch.cuda.CUDAGraph, Tensor, list[int], list[int]]] = {}
        self.eager_until: int | None = None  # set at the next step: WARMUP eager steps from it

    def _phase(self, index: int) -> bool:
        return self.lookahead is not None and (index + 1) % self.lookahead.k == 0

    def step(self, index: int) -> Tensor:
        if self.mode == "eager":  # a capture failed: the rest of the run is eager
            return self.game.step(index)
        if self.eager_until is None:
            self.eager_until = index + WARMUP
            make_capturable(self.game.core)  # again: a checkpoint loaded since may have reset it
        if index < self.eager_until:
            side = torch.cuda.Stream(self.game.core.device)
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                rows = self.game.step(index)
            torch.cuda.current_stream().wait_stream(side)
            return rows
        phase = self._phase(index)
        if phase not in self.graphs:
            try:
                self.graphs[phase] = self._capture(index)
            except Exception as exc:  # host logic in the step: run it eagerly from here on
                self.mode = "eager"
                self.reason = f"capture failed: {type(exc).__name__}: {exc}".splitlines()[0]
                print(f"warning: {self.reason}; running eagerly", file=sys.stderr)
                return self.game.step(index)
        graph, out, evals, fast = self.graphs[phase]
        graph.replay()
        core = self.game.core
        core.grad_evals[0] += evals[0]
        core.grad_evals[1] += evals[1]
        for player, steps in zip((core.g, core.d), fast):
            if player.lookahead is not None:
                player.lookahead.fast_steps += steps
        return out.clone()

    def _capture(self, index: int) -> tuple[torch.cuda.CUDAGraph, Tensor, list[int], list[int]]:
        """Record step ``index`` (not run: the caller replays it) and undo what recording
        changed on the host."""
        core = self.game.core
        players = (core.g, core.d)
        evals = list(core.grad_evals)
        fast = [0 if p.lookahead is None else p.lookahead.fast_steps for p in players]
        torch.cuda.synchronize(core.device)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                out = self.game.step(index)
        finally:
            delta = [now - before for now, before in zip(core.grad_evals, evals)]
            core.grad_evals[:] = evals
            steps = [0] * 2
            for k, (player, before) in enumerate(zip(players, fast)):
                if player.lookahead is not None:
                    steps[k] = player.lookahead.fast_steps - before
                    player.lookahead.fast_steps = before
        return graph, out, delta, steps


def executor(game: Any) -> Execution:
    """How ``game`` (the loop's: :class:`ogan.game.loop.One` or a population) is executed;
    on CUDA, one line on stderr when it runs eagerly."""
    mode, reason = plan(game.core)
    if mode == "graph":
        return Graph(game, reason)
    if game.core.device.type == "cuda":
        print(f"note: the step runs eagerly ({reason})", file=sys.stderr)
    return Execution(game, mode, reason)
