"""How the step is executed: the graph-or-eager decision, rows read back once per interval, and
(on a CUDA device only) replay against eager."""

from __future__ import annotations

from types import SimpleNamespace

import graph_replay
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
def test_replay_equals_eager_over_20_steps(workload, optimizer, options):
    """Each replayed step against one eager step from the same state, and the state's counts
    against the eager run's (``bench.perf.cuda.replay``: free-running, the game's amplification
    of rounding would decide by chance)."""
    from bench.perf.cuda import replay, replay_passed

    configs = [ogan.game.resolve(workload, optimizer, seed=s, device="cuda", streams="counter",
                                 **options) for s in range(4)]  # fmt: skip
    row = replay(configs)
    assert row["mode"] == "graph", row
    assert replay_passed(row), row


@cuda
@pytest.mark.parametrize(("workload", "optimizer"), [("mog-ring", {"name": "adam", "lr": 1e-3}),
                                                     ("digits", {"name": "adam", "lr": 2e-4})])
def test_the_loop_replays_graphs_and_reads_back_once_per_interval(workload, optimizer,
                                                                   monkeypatch):  # fmt: skip
    """The loop's graph path end to end, against the capturable eager loop, where 20 steps do
    not amplify rounding past the tolerance (plain Adam: 0.1 at most, measured on the CPU)."""
    kw = dict(seeds=[0, 1, 2, 3], steps=20, eval_every=10, device="cuda", streams="counter")
    replayed = ogan.train_population(workload, optimizer, **kw)
    assert replayed[0].summary["execution"]["mode"] == "graph", replayed[0].summary["execution"]
    monkeypatch.setattr(loop.graph, "executor", _capturable_eager)
    eager = ogan.train_population(workload, optimizer, **kw)
    for r, e in zip(replayed, eager):
        assert r.summary["grad_evals"] == e.summary["grad_evals"]
        for column in ("loss_g", "loss_d", "grad_norm_g", "grad_norm_d"):
            torch.testing.assert_close(torch.tensor(r.trace[column].values),
                                       torch.tensor(e.trace[column].values),
                                       rtol=1e-4, atol=1e-5)  # fmt: skip


def _capturable_eager(game):
    """The graph's arithmetic (device-side step counters) run eagerly: what a replay must equal.
    Against the default arithmetic, runs with surgery part by amplified rounding within 20
    steps (``bench.perf.cuda.replay``)."""
    graph.make_capturable(game.core)
    return graph.Execution(game, "eager", "test")


def test_the_loop_under_emulated_graphs_equals_the_capturable_eager_loop(monkeypatch):
    """What the CUDA test above checks, on the CPU (graphs replayed op by op), for a case with
    surgery: bit for bit."""
    kw = dict(seeds=[0, 1, 2], steps=20, eval_every=10, device="cpu", streams="counter",
              arch="pacgan", batch_size=32, threads=1)  # fmt: skip
    optimizer = {"name": "adam", "lr": 1e-3, "surgery": True}
    graph_replay.emulate(monkeypatch)
    monkeypatch.setattr(loop.graph, "plan", lambda core: ("graph", "captured"))
    replayed = ogan.train_population("mog-ring", optimizer, **kw)
    assert replayed[0].summary["execution"]["mode"] == "graph"
    monkeypatch.setattr(loop.graph, "executor", _capturable_eager)
    eager = ogan.train_population("mog-ring", optimizer, **kw)
    assert eager[0].summary["execution"]["mode"] == "eager"
    for r, e in zip(replayed, eager):
        for column in ("loss_g", "loss_d", "grad_norm_g", "grad_norm_d"):
            np.testing.assert_array_equal(r.trace[column].values, e.trace[column].values)


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
    and advanced per replay, recapture after members stop), the graphs replayed op by op on the
    CPU (tests/graph_replay.py); ogan's optimizers with their device-side counters, ⊥Grad and
    surgery included."""
    from ogan.game.population import PopulationGame

    captured = graph_replay.emulate(monkeypatch)
    configs = [ogan.game.resolve("mog-ring", optimizer, seed=s, device="cpu", hidden=8,
                                 batch_size=16, streams="counter", **options)
               for s in range(3)]  # fmt: skip
    eager_game, graph_game = PopulationGame(configs), PopulationGame(configs)
    graph.make_capturable(eager_game)  # the same arithmetic as the graph's, eagerly
    eager = graph.Execution(eager_game, "eager", "test")
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
    assert replayed.mode == "graph", replayed.reason
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


# -- CUDA-graph semantics on the CPU (tests/graph_replay.py) ----------------------------------
#
# A graph replays the step's tensor operations only: every Python value the host computed while
# capturing is frozen. graph_replay records the aten operations of a captured step and replays
# exactly those into the captured memory, so everything below holds replay to eager without a
# GPU; what it cannot see (Triton, the fused CPU kernel) the device test covers.


def _replay_vs_eager(workload, optimizer, monkeypatch, *, steps=8, members=2, **options):
    """(Graph run, eager run) of the same population, stepped side by side: every row and, at
    the end, every parameter and counter equal bit for bit. The eager side runs with
    ``capturable=True`` too: the same arithmetic (a plain eager run's differs in rounding)."""
    from ogan.game.population import PopulationGame

    captured = graph_replay.emulate(monkeypatch)
    configs = [ogan.game.resolve(workload, optimizer, seed=s, device="cpu", streams="counter",
                                 **options) for s in range(members)]  # fmt: skip
    eager_game, graph_game = PopulationGame(configs), PopulationGame(configs)
    graph.make_capturable(eager_game)
    eager = graph.Execution(eager_game, "eager", "test")
    replayed = graph.Graph(graph_game, "test")
    for i in range(steps):
        assert torch.equal(replayed.step(i), eager.step(i)), f"step {i + 1}"
    assert replayed.mode == "graph", replayed.reason
    assert captured and all(len(g.ops) > 100 for g in captured)
    assert graph_game.grad_evals == eager_game.grad_evals
    for a, b in zip(graph_game.g.params + graph_game.d.params,
                    eager_game.g.params + eager_game.d.params):  # fmt: skip
        assert torch.equal(a, b)


@pytest.mark.parametrize("scheme", ["simultaneous", "alternating"])
@pytest.mark.parametrize(
    "optimizer",
    [*ogan.optim.OPTIMIZERS, {"name": "adam", "ortho": "weights"},
     {"name": "adam", "ortho": "weights", "ortho_players": "g"},
     {"name": "adam", "ortho": "weights", "ortho_players": "d"},
     {"name": "adam", "surgery": True},
     {"name": "lookahead", "base": "optimistic-adam", "k": 3, "ortho": "weights"}],
)  # fmt: skip
def test_replayed_on_the_cpu_every_optimizer_equals_its_eager_steps(optimizer, scheme,
                                                                     monkeypatch):  # fmt: skip
    from ogan.errors import ConfigError

    try:
        ogan.game.resolve("mog-ring", optimizer, scheme=scheme)
    except ConfigError as exc:  # the extrapolation methods are simultaneous only
        pytest.skip(str(exc))
    _replay_vs_eager("mog-ring", optimizer, monkeypatch, scheme=scheme, hidden=8,
                     batch_size=16)  # fmt: skip


@pytest.mark.parametrize(
    ("workload", "options"),
    [("mog-ring", {"arch": "pacgan", "batch_size": 16}),
     ("mog-ring", {"arch": "pacgan", "packing": 2, "batch_size": 16}),  # per-slice batch norm
     ("mog-ring", {"arch": "unrolled", "batch_size": 16}),
     ("mog-grid", {"hidden": 8, "batch_size": 16}),
     ("digits", {"batch_size": 16}),
     ("seed-mlp", {"batch_size": 16}),
     ("bilinear", {}),
     ("dirac", {})],
)  # fmt: skip
def test_replayed_on_the_cpu_every_workload_equals_its_eager_steps(workload, options,
                                                                    monkeypatch):  # fmt: skip
    surgery = ogan.workloads.get(workload).has_real_data  # else surgery does not apply
    optimizer = {"name": "lookahead", "base": "extra-adam", "k": 3, "ortho": "weights",
                 "surgery": surgery}  # fmt: skip
    _replay_vs_eager(workload, optimizer, monkeypatch, steps=7, **options)


def test_the_cpu_replay_catches_what_a_cuda_graph_gets_wrong(monkeypatch):
    """The emulation fails where a real graph would: a host read during capture (torch's Adam
    without ``capturable``: its step counter read back), a host value frozen into the graph
    (ogan's optimistic Adam without ``capturable``: its bias corrections from the step count
    at capture, at every replay)."""
    from ogan.game.population import PopulationGame

    graph_replay.emulate(monkeypatch)
    monkeypatch.setattr(graph, "make_capturable", lambda core: None)
    kw = dict(device="cpu", streams="counter", hidden=8, batch_size=16)

    game = PopulationGame([ogan.game.resolve("mog-ring", "adam", seed=s, **kw) for s in (0, 1)])
    run = graph.Graph(game, "test")
    for i in range(graph.WARMUP + 1):
        run.step(i)
    assert run.mode == "eager"
    assert run.reason.startswith("capture failed: HostRead: Tensor.item reads a device value")

    configs = [ogan.game.resolve("mog-ring", "optimistic-adam", seed=s, **kw) for s in (0, 1)]
    eager = graph.Execution(PopulationGame(configs), "eager", "test")
    replayed = graph.Graph(PopulationGame(configs), "test")
    same = [torch.equal(replayed.step(i), eager.step(i)) for i in range(8)]
    assert replayed.mode == "graph"
    # eager warm-up and the captured step itself agree; the second replay uses stale corrections
    assert same[: graph.WARMUP + 1] == [True] * (graph.WARMUP + 1) and not all(same)


def test_replayed_on_the_cpu_a_resumed_run_equals_the_uninterrupted_one(tmp_path, monkeypatch):
    """The whole loop under (emulated) graphs, read back once per interval as on CUDA: it
    equals the eager run to float tolerance (``capturable`` arithmetic against the plain one),
    and a run resumed from its checkpoint equals the uninterrupted one bit for bit."""
    kw = dict(seeds=[0, 1], steps=14, eval_every=6, device="cpu", threads=1, batch_size=16,
              hidden=8, streams="counter")  # fmt: skip
    spec = {"name": "lookahead", "base": "optimistic-adam", "k": 3, "ortho": "weights",
            "lr": 1e-3}  # fmt: skip
    eager = ogan.train_population("mog-ring", spec, **kw)
    graph_replay.emulate(monkeypatch)
    monkeypatch.setattr(graph, "plan", lambda core: ("graph", "captured"))
    monkeypatch.setattr(graph.Execution, "read_every", lambda self, eval_every: eval_every)
    whole = ogan.train_population("mog-ring", spec, **kw)
    path = tmp_path / "p.pt"
    ogan.train_population("mog-ring", spec, checkpoint=path, checkpoint_every=4, **kw)
    assert torch.load(path, weights_only=False)["state"]["step"] == 12
    resumed = ogan.train_population("mog-ring", spec, checkpoint=path, **kw)
    for e, w, r in zip(eager, whole, resumed):
        assert w.summary["execution"] == {"mode": "graph", "reason": "captured"}
        assert w.summary["grad_evals"] == e.summary["grad_evals"]
        for column in ("loss_g", "loss_d", "grad_norm_g", "grad_norm_d"):
            torch.testing.assert_close(torch.tensor(w.trace[column].values),
                                       torch.tensor(e.trace[column].values),
                                       rtol=1e-4, atol=1e-6)  # fmt: skip
        untimed = [x.trace.drop(columns="step_time") for x in (w, r)]
        pd.testing.assert_frame_equal(*untimed, check_exact=True)
        pd.testing.assert_frame_equal(
            w.history.drop(columns="wall_time"),
            r.history.drop(columns="wall_time"),
            check_exact=True,
        )


GATE_SWEEP = """
[sweep]
name = "gate"
seeds = [7, 3, 5, 1, 9]
steps = 40

[[workload]]
name = "mog-ring"
arch = "unrolled"
batch_size = 16
streams = "counter"

[[optimizer]]
name = "adam"
lr = 1e-3
lr_ratio = 0.1
betas = [0.5, 0.999]

[[optimizer]]
name = "adam"
ortho = "weights"
lr = 1e-3

[[optimizer]]
name = "extra-adam"
lr = 1e-3
"""


def _gate_sweep(tmp_path):
    from bench.config import load_sweep

    path = tmp_path / "gate.toml"
    path.write_text(GATE_SWEEP)
    return load_sweep(path, device="cpu")


def test_the_study_gate_holds_each_configuration_of_a_sweep_as_it_will_run(tmp_path, monkeypatch):
    """``bench.perf.cuda.replay_sweep`` (the lease's gate) on the CPU, the graphs replayed op by
    op: every configuration of the sweep, exactly as specified, graphed and equal to eager."""
    from bench.perf.cuda import REPLAY_MEMBERS, replay_sweep

    sweep = _gate_sweep(tmp_path)
    assert [r["mode"] for r in replay_sweep(sweep)["cases"]] == ["eager"] * 3  # no CUDA here
    captured = graph_replay.emulate(monkeypatch)
    monkeypatch.setattr(graph, "plan", lambda core: ("graph", "captured"))
    result = replay_sweep(sweep)
    assert result["passed"] and result["graphed"] == 3 and result["failed"] == 0, result["cases"]
    assert [r["optimizer"] for r in result["cases"]] == ["adam", "adam+ortho", "extra-adam"]
    for r in result["cases"]:  # against the graph's arithmetic run eagerly: bit for bit here
        assert r["rows_error"] == r["params_error"] == 0 and r["state_differs"] == []
        assert r["free_rows_error"] == r["free_params_error"] == 0
        assert np.isfinite([r["default_rows_error"], r["default_params_error"]]).all()
    assert len(captured) == 3  # one capture each: the forced comparison's graphed game
    assert REPLAY_MEMBERS == 4  # the sweep's first four seeds, 7, 3, 5, 1


def test_the_study_gate_passes_the_gpu_studys_own_configurations(monkeypatch):
    """The gate a lease runs first, on the committed sweep itself (six optimizers, the unrolled
    protocol at batch 512, counter streams; ⊥Grad on the foreach path here, Triton there):
    every configuration graphed, each step and the state's counts as eager's, bit for bit."""
    from bench.config import load_sweep
    from bench.perf.cuda import replay_sweep

    sweep = load_sweep("unrolled-ring-gpu", device="cpu")  # the embedded sweep
    graph_replay.emulate(monkeypatch)
    monkeypatch.setattr(graph, "plan", lambda core: ("graph", "captured"))
    result = replay_sweep(sweep)
    assert result["passed"] and result["graphed"] == 6, result["cases"]
    for r in result["cases"]:
        assert r["rows_error"] == r["params_error"] == r["free_params_error"] == 0, r


def _replays(monkeypatch, keep):
    """Emulated graphs whose n-th replay runs only where ``keep(n)``."""
    graph_replay.emulate(monkeypatch)
    monkeypatch.setattr(graph, "plan", lambda core: ("graph", "captured"))
    real = graph_replay.ReplayGraph.replay
    calls = {"n": 0}

    def replay(self):
        calls["n"] += 1
        if keep(calls["n"]):
            real(self)

    monkeypatch.setattr(graph_replay.ReplayGraph, "replay", replay)


def test_the_study_gate_fails_where_the_replay_departs_from_eager(tmp_path, monkeypatch):
    from bench.perf.cuda import replay_passed, replay_sweep

    _replays(monkeypatch, lambda n: n % 2)  # every other replay does nothing
    result = replay_sweep(_gate_sweep(tmp_path))
    assert not result["passed"]
    for r in result["cases"]:
        assert max(r["rows_error"], r["params_error"]) > 1 and not replay_passed(r)


def test_the_study_gate_fails_where_a_replay_leaves_a_counter_behind(tmp_path, monkeypatch):
    """A step counter the graph does not advance: the forced comparison cannot see it (each
    eager twin copies the stale counter), the exact comparison of the state's counts does."""
    from bench.perf.cuda import replay_passed, replay_sweep

    graph_replay.emulate(monkeypatch)
    monkeypatch.setattr(graph, "plan", lambda core: ("graph", "captured"))
    real_step = graph.Graph.step

    def stale(self, index):
        rows = real_step(self, index)
        if self.mode == "graph" and index >= graph.WARMUP + 1:  # a replay: undo its count
            for player in (self.game.core.g, self.game.core.d):
                inner = player.optimizer
                while hasattr(inner, "base"):
                    inner = inner.base
                for state in inner.state.values():
                    if isinstance(state.get("step"), torch.Tensor):
                        state["step"] -= 1
        return rows

    monkeypatch.setattr(graph.Graph, "step", stale)
    result = replay_sweep(_gate_sweep(tmp_path))
    assert not result["passed"]
    for r in result["cases"]:
        assert not replay_passed(r)
        assert r["state_differs"] and all(p.endswith("/step") for p in r["state_differs"])


def test_the_replay_check_tests_each_step_not_what_the_steps_before_left(monkeypatch):
    """A 'graph' whose every replay leaves one weight 0.3 tolerances off eager's (as rounding
    differences that a step amplifies would): free-running the offsets add up past the
    tolerance; step by step each is within it. The check tests each step's maths, and a game's
    amplification of earlier differences is recorded as a finding (``free_*``)."""
    from bench.perf.cuda import ATOL, RTOL, replay

    graph_replay.emulate(monkeypatch)
    monkeypatch.setattr(graph, "plan", lambda core: ("graph", "captured"))
    real_step = graph.Graph.step

    def offset(self, index):
        rows = real_step(self, index)
        with torch.no_grad():
            w = self.game.core.g.params[0].view(-1)
            w[0] += 0.3 * (ATOL + RTOL * w[0].abs())
        return rows

    monkeypatch.setattr(graph.Graph, "step", offset)
    configs = [ogan.game.resolve("mog-ring", {"name": "adam", "lr": 1e-3, "surgery": True},
                                 seed=s, device="cpu", arch="pacgan", batch_size=64,
                                 streams="counter") for s in range(3)]  # fmt: skip
    row = replay(configs)
    assert row["mode"] == "graph"
    assert row["free_params_error"] > 3  # 20 offsets of 0.3, less what the steps undid
    assert row["params_error"] == pytest.approx(0.3, rel=0.05)
    assert row["rows_error"] <= 1 and not row["state_differs"]
