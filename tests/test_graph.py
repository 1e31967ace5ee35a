"""How the step is executed: the graph-or-eager decision, rows read back once per interval, and
(on a CUDA device only) replay against eager."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from test_population import poison

import ogan
from ogan.game import graph, loop
from ogan.optim import Lookahead, Ortho


def _core(opt_g, opt_d=None, *, device="cuda", streams=True, surgery=False):
    player = lambda opt: SimpleNamespace(optimizer=opt, lookahead=None)  # noqa: E731
    return SimpleNamespace(device=torch.device(device), streams=object() if streams else None,
                           surgery=surgery, g=player(opt_g), d=player(opt_d or opt_g))  # fmt: skip


def _adam():
    return torch.optim.Adam([torch.zeros(2, requires_grad=True)])


def _built(name, **hparams):
    return ogan.optim.build(name, [torch.zeros(2, 2, requires_grad=True)], **hparams)


@pytest.mark.parametrize(
    ("core", "mode", "why"),
    [
        (lambda: _core(_adam()), "graph", "captured"),
        (lambda: _core(Lookahead(_adam())), "graph", "captured"),
        *[(lambda name=name: _core(_built(name)), "graph", "captured")
          for name in ogan.optim.OPTIMIZERS],  # every registered optimizer
        (lambda: _core(_built("optimistic-adam", ortho="weights")), "graph", "captured"),
        (lambda: _core(_built("lookahead", base="past-extra-adam", ortho="weights")), "graph",
         "captured"),
        (lambda: _core(_adam(), surgery=True), "graph", "captured"),  # the cached projection
        (lambda: _core(Ortho(_adam())), "graph", "captured"),
        (lambda: _core(_adam(), device="cpu"), "eager", "device cpu: CUDA graphs need a CUDA"),
        (lambda: _core(_adam(), streams=False), "eager", "streams='torch' draws each member"),
        (lambda: _core(Ortho(_adam(), impl="reference")), "eager",
         "⊥Grad impl='reference' reads every coefficient back"),
        (lambda: _core(torch.optim.RAdam([torch.zeros(1, requires_grad=True)])), "eager",
         "optimizer RAdam is not known"),
        (lambda: _core(Ortho(type("MyAdam", (torch.optim.Adam,), {})(
            [torch.zeros(1, requires_grad=True)]))), "eager", "optimizer MyAdam is not known"),
    ],
)  # fmt: skip
def test_the_step_is_captured_only_when_everything_in_it_is_capturable(core, mode, why):
    got_mode, reason = graph.plan(core())
    assert got_mode == mode and reason.startswith(why), reason


@pytest.mark.parametrize("name", ["optimistic-adam", "past-extra-adam", "muon", "ogda"])
def test_the_graph_path_makes_ogans_optimizers_capturable_before_any_state(name, monkeypatch):
    """As for torch.optim.Adam: ``capturable`` set on every group (a wrapper's are its base's)."""
    opt = _built(name, ortho="weights")
    game = SimpleNamespace(core=_core(opt, device="cpu"))
    monkeypatch.setattr(graph.Graph, "reset", lambda self: None)
    graph.Graph(game, "test")
    assert [g["capturable"] for g in opt.base.param_groups] == [True] * len(opt.param_groups)


def test_a_cpu_run_records_that_it_ran_eagerly_and_why():
    r = ogan.train("bilinear", "sgd", steps=3, eval_every=3, device="cpu")
    assert r.summary["execution"] == {
        "mode": "eager", "reason": "device cpu: CUDA graphs need a CUDA device"
    }  # fmt: skip


class _Deferred(graph.Execution):
    """Eager steps, rows read back once per evaluation interval: the graph path's loop, on CPU."""

    def read_every(self, eval_every: int) -> int:
        return eval_every


def test_read_back_once_per_interval_stops_a_member_at_its_first_non_finite_step(monkeypatch):
    kw = dict(seeds=[0, 1, 2], steps=12, eval_every=6, device="cpu", threads=1, batch_size=16,
              hidden=8)  # fmt: skip
    poison(monkeypatch, seed=1, after=6)  # alternating: two batches a step; diverges at step 4
    every_step = ogan.train_population("mog-ring", "adam", **kw)
    monkeypatch.undo()
    poison(monkeypatch, seed=1, after=6)
    monkeypatch.setattr(loop.graph, "executor", lambda game: _Deferred(game, "eager", "test"))
    deferred = ogan.train_population("mog-ring", "adam", **kw)

    sick, ref = deferred[1], every_step[1]
    assert sick.summary["diverged_at"] == ref.summary["diverged_at"] == 4  # inside [0, 6)
    assert list(sick.history["step"]) == [0, 4]
    assert list(sick.history["grad_evals"]) == list(ref.history["grad_evals"]) == [0, 8]
    untimed = [r.trace.drop(columns="step_time") for r in (sick, ref)]
    pd.testing.assert_frame_equal(*untimed, check_exact=True)  # the same steps up to it
    assert np.isnan(sick.trace["loss_d"].iloc[-1])
    for m in (0, 2):  # the others: stepped with the sick member to step 6, then without it
        assert deferred[m].summary["diverged_at"] is None
        assert list(deferred[m].history["step"]) == [0, 6, 12]
        for column in ("loss_g", "loss_d", "grad_norm_d"):
            torch.testing.assert_close(torch.tensor(deferred[m].trace[column].values),
                                       torch.tensor(every_step[m].trace[column].values),
                                       rtol=1e-5, atol=1e-7)  # fmt: skip


# -- on a CUDA device -----------------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")

REPLAY_CASES = [
    ("mog-ring", {"name": "adam", "lr": 1e-3}, {}),
    ("mog-ring", {"name": "adam", "lr": 1e-3}, {"scheme": "alternating", "d_steps": 2}),
    ("mog-ring", {"name": "sgd", "lr": 1e-2, "momentum": 0.9}, {}),
    ("mog-ring", {"name": "lookahead", "lr": 1e-3}, {}),
    ("mog-ring", {"name": "adam", "lr": 1e-4}, {"arch": "pacgan"}),
    ("mog-ring", {"name": "adam", "lr": 1e-4}, {"arch": "unrolled"}),
    ("digits", {"name": "adam", "lr": 2e-4}, {}),
    # ogan's optimizers (device-side counters), ⊥Grad and surgery (the cached Triton tables)
    *[("mog-ring", {"name": name, "lr": 1e-3}, {})
      for name in ("ogda", "optimistic-adam", "extra-sgd", "extra-adam", "past-extra-adam",
                   "muon", "ttur")],
    ("mog-ring", {"name": "optimistic-adam", "lr": 1e-3, "ortho": "weights"}, {}),
    ("mog-ring", {"name": "adam", "lr": 1e-3, "surgery": True}, {"arch": "pacgan"}),
    ("mog-ring", {"name": "lookahead", "base": "extra-adam", "lr": 1e-3, "ortho": "weights",
                  "surgery": True}, {}),
]  # fmt: skip


@cuda
@pytest.mark.parametrize(("workload", "optimizer", "options"), REPLAY_CASES)
def test_replay_equals_eager_over_20_steps(workload, optimizer, options, monkeypatch):
    kw = dict(seeds=[0, 1, 2, 3], steps=20, eval_every=10, device="cuda", streams="counter",
              **options)  # fmt: skip
    replayed = ogan.train_population(workload, optimizer, **kw)
    assert replayed[0].summary["execution"]["mode"] == "graph", replayed[0].summary["execution"]
    monkeypatch.setattr(loop.graph, "plan", lambda core: ("eager", "test"))
    eager = ogan.train_population(workload, optimizer, **kw)
    for r, e in zip(replayed, eager):
        assert r.summary["grad_evals"] == e.summary["grad_evals"]
        for column in ("loss_g", "loss_d", "grad_norm_g", "grad_norm_d"):
            torch.testing.assert_close(torch.tensor(r.trace[column].values),
                                       torch.tensor(e.trace[column].values),
                                       rtol=1e-4, atol=1e-5)  # fmt: skip


def test_the_prepared_gpu_check_runs_its_graph_part_on_the_cpu_as_eager():
    from bench.perf.cuda import graph_timings, replay_checks

    assert replay_checks(torch.device("cpu")) == {
        "skipped": "CUDA graphs need a CUDA device", "passed": True
    }  # fmt: skip
    timings = graph_timings(torch.device("cpu"), quick=True)
    assert [(r["members"], r["today_ran"], r["eager_ran"]) for r in timings["cases"]] == [
        (1, "today", "eager"), (2, "today", "eager")
    ]  # fmt: skip
    assert all(r["today_ms"] > 0 and r["eager_ms"] > 0 for r in timings["cases"])


class _FakeGraph:
    """A CUDA graph's stand-in on the CPU: "capture" records the step without changing the
    game (its state is put back), "replay" runs the recorded step into the recorded output and,
    like a real replay, changes nothing on the host."""

    def replay(self) -> None:
        core = self.game.core
        players = (core.g, core.d)
        evals = list(core.grad_evals)
        fast = [p.lookahead.fast_steps if p.lookahead else 0 for p in players]
        self.out.copy_(self.step(self.index))
        core.grad_evals[:] = evals
        for p, f in zip(players, fast):
            if p.lookahead:
                p.lookahead.fast_steps = f


def _fake_cuda(monkeypatch, game) -> list[_FakeGraph]:
    import contextlib
    import copy

    captured: list[_FakeGraph] = []

    @contextlib.contextmanager
    def capture(g):
        snapshot = copy.deepcopy(game.core.state_dict())
        original = game.step

        def recording(index):
            g.game, g.step, g.index = game, original, index
            g.out = original(index)
            return g.out

        game.step = recording
        try:
            yield
        finally:  # the device state as before; host counters advanced, as a real capture
            core = game.core
            players = (core.g, core.d)
            evals = list(core.grad_evals)
            fast = [p.lookahead.fast_steps if p.lookahead else 0 for p in players]
            del game.step
            core.load_state_dict(snapshot)
            core.grad_evals[:] = evals
            for p, f in zip(players, fast):
                if p.lookahead:
                    p.lookahead.fast_steps = f
            captured.append(g)

    stream = SimpleNamespace(wait_stream=lambda other: None)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", _FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", capture)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: stream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda: stream)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    return captured


@pytest.mark.parametrize(
    ("optimizer", "options"),
    [({"name": "sgd", "lr": 1e-2, "momentum": 0.9}, {}),
     ({"name": "lookahead", "base": "sgd", "lr": 1e-2, "k": 3},
      {"scheme": "alternating", "d_steps": 2}),
     ({"name": "optimistic-adam", "lr": 1e-3, "ortho": "weights", "surgery": True}, {}),
     ({"name": "lookahead", "base": "past-extra-adam", "lr": 1e-3, "k": 3}, {})],
)  # fmt: skip
def test_graph_bookkeeping_replays_what_eager_steps_do(optimizer, options, monkeypatch):
    """The host side of the graph path (warm-up, capture per Lookahead phase, counters put back
    and advanced per replay, recapture after members stop), with the graph faked on the CPU;
    ogan's optimizers with their device-side counters, ⊥Grad and surgery included."""
    import importlib

    from ogan.game.population import PopulationGame

    adam = importlib.import_module("torch.optim.adam")  # capturable=True refused on CPU by name
    supported = adam._get_capturable_supported_devices
    monkeypatch.setattr(adam, "_get_capturable_supported_devices",
                        lambda *a, **k: [*supported(*a, **k), "cpu"])  # fmt: skip
    configs = [ogan.game.resolve("mog-ring", optimizer, seed=s, device="cpu", hidden=8,
                                 batch_size=16, streams="counter", **options)
               for s in range(3)]  # fmt: skip
    eager_game, graph_game = PopulationGame(configs), PopulationGame(configs)
    for player in (eager_game.g, eager_game.d):  # the same arithmetic as the graph's, eagerly
        for group in player.optimizer.param_groups:
            if "capturable" in group:
                group["capturable"] = True
    eager = graph.Execution(eager_game, "eager", "test")
    captured = _fake_cuda(monkeypatch, graph_game)
    replayed = graph.Graph(graph_game, "test")
    for group in graph_game.g.optimizer.param_groups + graph_game.d.optimizer.param_groups:
        if "capturable" in group:  # as loading a checkpoint an eager run saved does
            group["capturable"] = False
    for i in range(20):
        if i == 12:  # a member stops: new stacked tensors, so new graphs
            for game, run in ((eager_game, eager), (graph_game, replayed)):
                game.keep([0, 2])
                run.reset()
        assert torch.equal(replayed.step(i), eager.step(i)), f"step {i + 1}"
    assert graph_game.grad_evals == eager_game.grad_evals
    for a, b in zip(graph_game.g.params + graph_game.d.params,
                    eager_game.g.params + eager_game.d.params):  # fmt: skip
        assert torch.equal(a, b)
    for player in (graph_game.g, graph_game.d):  # counters on the device, advanced by replays
        inner = player.optimizer
        while hasattr(inner, "base"):
            inner = inner.base
        steps = [state["step"] for state in inner.state.values() if "step" in state]
        assert all(isinstance(t, torch.Tensor) and t == 20 for t in steps)
        assert bool(steps) == (optimizer.get("base", optimizer["name"]) != "sgd")
    phases = 2 if optimizer["name"] == "lookahead" else 1
    assert len(captured) == 2 * phases  # before and after the members stopped
    if phases == 2:
        assert graph_game.g.lookahead.fast_steps == eager_game.g.lookahead.fast_steps
        assert graph_game.d.lookahead.fast_steps == eager_game.d.lookahead.fast_steps


def test_with_one_read_back_per_interval_a_resumed_run_equals_the_uninterrupted_one(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(loop.graph, "executor", lambda game: _Deferred(game, "eager", "test"))
    kw = dict(seeds=[0, 1], steps=14, eval_every=6, device="cpu", threads=1, batch_size=16,
              hidden=8)  # fmt: skip
    whole = ogan.train_population("mog-ring", "adam", **kw)
    path = tmp_path / "p.pt"
    first = ogan.train_population("mog-ring", "adam", checkpoint=path, checkpoint_every=4, **kw)
    # checkpoints after the blocks that reached 4 and 8 (steps 6 and 12): never a cut block
    assert torch.load(path, weights_only=False)["state"]["step"] == 12
    resumed = ogan.train_population("mog-ring", "adam", checkpoint=path, **kw)
    for a, b, c in zip(whole, first, resumed):
        for r in (b, c):
            assert r.trace.drop(columns="step_time").equals(a.trace.drop(columns="step_time"))
            assert r.history.drop(columns="wall_time").equals(a.history.drop(columns="wall_time"))
