"""The GPU check (``python -m bench perf --device cuda``): one prepared script, a few minutes.

1. correctness: the Triton projection against the reference on the GPU (and against the CPU
   reference), for every dtype and mode, plus mixed CPU/GPU lists and Ortho(Adam);
2. the step as a CUDA graph (:mod:`ogan.game.graph`): first replay against eager over 20 steps
   for every registered optimizer, both schemes, on mog-ring (default, pacgan, unrolled) and
   digits (the graph where the plan allows it, else the plan's reason), then population step
   times, today's eager path against the graph, with the issue's targets;
3. timings, interleaved as on CPU: fused vs reference vs one ``_foreach_add_``, Ortho(Adam) vs
   Adam, the training step vs a hand loop;
4. kernel launches per call/step, counted with the CUDA profiler;
5. short training runs on the GPU.

The JSON is written after each part (``"complete": false`` until the last), so a check stopped
at a command's time limit still brings back its finished parts.

``check(device="cpu")`` runs the same code on the CPU (the tests do, so the script cannot rot).
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable
from typing import Any

import torch

from bench.perf.cases import CASES, Settings
from bench.perf.measure import interleaved
from ogan.optim import Ortho
from ogan.projection import RHO, orthogonalize_

SHAPES = [(3, 4), (1,), (7,), (128, 100), (5, 3, 2, 2), (300_000,), (2,), (0,), (64, 3, 4, 4)]
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]


def _max_error(out, expected, originals, stats, dtype) -> float:
    """Largest error in units of its tolerance (<= 1 passes), as in tests/test_projection.py."""
    eps32 = torch.finfo(torch.float32).eps
    base = {torch.float64: 1e-12, torch.float32: 1e-5}.get(dtype, 2 * torch.finfo(dtype).eps)
    worst = 0.0
    for i, (o, e, g) in enumerate(zip(out, expected, originals)):
        if not g.numel():
            continue
        projected = float(stats.norm_projected[i])
        kappa = float(stats.norm_before[i]) / projected if projected > 0 else 1.0
        tol = base + (8 * eps32 * kappa if dtype != torch.float64 else 0.0)
        scale = max(float(g.double().abs().max()), 1e-30)
        err = float((o.double().cpu() - e.double().cpu()).abs().max())
        worst = max(worst, err / (tol * scale))
    return worst


def correctness(device: torch.device) -> dict[str, Any]:
    rows = []
    for dtype in DTYPES:
        for renorm, conflict in ((True, False), (False, False), (False, True), (True, True)):
            gen = torch.Generator().manual_seed(0)
            grads = [torch.randn(s, generator=gen).to(dtype) for s in SHAPES]
            refs = [torch.randn(s, generator=gen).to(dtype) for s in SHAPES]
            refs[2].zero_()
            grads[6] = 3 * refs[6]
            kw = {"renorm": renorm, "conflict_only": conflict}
            cpu = [g.clone() for g in grads]
            stats = orthogonalize_(cpu, refs, impl="reference", **kw)
            on_dev = [g.to(device) for g in grads]
            refs_dev = [r.to(device) for r in refs]
            ref_dev = [g.clone() for g in on_dev]
            orthogonalize_(ref_dev, refs_dev, impl="reference", **kw)
            fused = [g.clone() for g in on_dev]
            orthogonalize_(fused, refs_dev, impl="fused", **kw)
            rows.append({
                "dtype": str(dtype), "renorm": renorm, "conflict_only": conflict,
                "fused_vs_device_reference": _max_error(fused, ref_dev, grads, stats, dtype),
                "fused_vs_cpu_reference": _max_error(fused, cpu, grads, stats, dtype),
            })  # fmt: skip
    # one call mixing devices and dtypes: grouped, each group by its own path
    gen = torch.Generator().manual_seed(1)
    mixed_g = [torch.randn(50, generator=gen), torch.randn(4, 4, generator=gen).to(device),
               torch.randn(9, generator=gen).to(device, torch.bfloat16)]  # fmt: skip
    mixed_r = [torch.randn(50, generator=gen), torch.randn(4, 4, generator=gen).to(device),
               torch.randn(9, generator=gen).to(device, torch.bfloat16)]  # fmt: skip
    expected = [g.clone() for g in mixed_g]
    stats = orthogonalize_(expected, mixed_r, impl="reference")
    got = [g.clone() for g in mixed_g]
    orthogonalize_(got, mixed_r)
    mixed = max(
        _max_error([o], [e], [g], _one(stats, i), g.dtype)
        for i, (o, e, g) in enumerate(zip(got, expected, mixed_g))
    )
    worst = max(max(r["fused_vs_device_reference"], r["fused_vs_cpu_reference"]) for r in rows)
    normals = _stream_normals(device)
    return {"cases": rows, "mixed_devices": mixed, "ortho_adam": _ortho_adam(device),
            "stream_normals": normals,
            "passed": worst <= 1 and mixed <= 1 and normals["passed"]}  # fmt: skip


def _stream_normals(device: torch.device) -> dict[str, Any]:
    """The counter streams' Triton normals against their torch path on this device (the check
    ``Streams.normal`` makes before using the kernel) and, for a large draw, against the CPU's
    numbers: float32 elements that differ (ulp-level float64 rounding; expected 0 or 1)."""
    from ogan.game.streams import Streams, check_fused_normal, key

    if device.type != "cuda":
        return {"skipped": "the Triton normals are used on CUDA only", "passed": True}
    rows = {}
    for dtype in (torch.float32, torch.float64):
        ok, why = check_fused_normal(device, dtype)
        rows[str(dtype)] = {"ok": ok, "reason": why}
    keys = torch.tensor([key(s) for s in range(64)])
    from ogan import _triton_streams

    on_gpu = Streams(keys.to(device))
    got = _triton_streams.normal(on_gpu.keys, on_gpu.position, (512, 256), torch.float32).cpu()
    want = Streams(keys)._normal((512, 256), torch.float32)
    rows["large_draw_vs_cpu"] = {"numbers": want.numel(), "differ": int((got != want).sum()),
                                 "max_abs": float((got - want).abs().max())}  # fmt: skip
    passed = all(r["ok"] for k, r in rows.items() if k.startswith("torch."))
    return {**rows, "passed": passed and rows["large_draw_vs_cpu"]["differ"] <= 2}


def _one(stats, i):
    from ogan.projection import ProjectionStats

    return ProjectionStats(stats.norm_before[i : i + 1], stats.norm_projected[i : i + 1])


def _ortho_adam(device: torch.device) -> float:
    """Max |Ortho(Adam) - Adam on reference-projected gradients| after 5 steps."""
    torch.manual_seed(0)
    a = torch.nn.Linear(30, 20).to(device)
    b = torch.nn.Linear(30, 20).to(device)
    b.load_state_dict(a.state_dict())
    opt_a = Ortho(torch.optim.Adam(a.parameters(), lr=1e-2))
    opt_b = torch.optim.Adam(b.parameters(), lr=1e-2)
    x = torch.randn(64, 30, device=device)
    for _ in range(5):
        for m in (a, b):
            m.zero_grad()
            m(x).sub(1).pow(2).mean().backward()
        params = list(b.parameters())
        with torch.no_grad():
            orthogonalize_([p.grad for p in params], params, impl="reference")
        opt_a.step()
        opt_b.step()
    pairs = zip(a.parameters(), b.parameters())
    return max(float((p - q).detach().abs().max()) for p, q in pairs)


def timings(device: torch.device, rounds: int, quick: bool = False) -> dict[str, Any]:
    settings = Settings(device=str(device), quick=quick)
    out = {}
    for name, case in CASES.items():
        if not case.cuda or (quick and not case.quick):
            continue
        subject, baseline = case.build(settings)
        m = interleaved(subject, baseline, rounds=rounds)
        out[name] = {"description": case.description, "subject": case.subject,
                     "baseline": case.baseline, "target": case.bound, **m.to_dict()}  # fmt: skip
    return out


def launches(device: torch.device) -> dict[str, int]:
    """CUDA kernels launched by one call of each subject and baseline (after a warm-up call)."""
    from torch.profiler import ProfilerActivity, profile

    out = {}
    settings = Settings(device=str(device))
    for name in ("projection-mlp", "projection-dcgan", "ortho-adam-mlp", "train-step"):
        subject, baseline = CASES[name].build(settings)
        for label, fn in ((CASES[name].subject, subject), (CASES[name].baseline, baseline)):
            fn()
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                fn()
                torch.cuda.synchronize()
            kernels = [e for e in prof.events() if e.device_type.name == "CUDA"]
            out[f"{name}: {label}"] = len(kernels)
    return out


def training(device: torch.device, steps: int = 300) -> dict[str, Any]:
    import ogan

    out = {}
    for workload, opt in (
        ("mog-ring", {"name": "adam", "lr": 1e-3, "betas": [0.5, 0.999], "ortho": "weights"}),
        ("digits", {"name": "extra-adam", "lr": 5e-4, "betas": [0.5, 0.999]}),
    ):
        t0 = time.perf_counter()
        r = ogan.train(workload, opt, steps=steps, eval_every=steps, device=str(device))
        primary = r.summary["target"]["metric"]  # the run's own (options may change it)
        out[workload] = {
            "optimizer": opt,
            "steps": steps,
            "time_per_step": r.summary["time_per_step"],
            "total_s": time.perf_counter() - t0,
            "diverged_at": r.summary["diverged_at"],
            f"final_{primary}": r.summary[f"final_{primary}"],
        }
    return out


def check(
    device: str = "cuda",
    rounds: int = 15,
    quick: bool = False,
    save: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Everything above, correctness first; ``quick`` (for the tests) skips the large cases and
    trains briefly. ``save(result)`` is called after each part with what is done so far
    (``result["complete"]`` False until the end), so a check stopped at a time limit keeps its
    finished parts."""
    from bench.perf.gate import machine

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from bench.errors import BenchError

        raise BenchError("--device cuda: no CUDA device is visible to torch")
    result: dict[str, Any] = {"machine": machine(), "rho": {str(k): v for k, v in RHO.items()},
                              "complete": False}  # fmt: skip
    if dev.type == "cuda":
        import triton

        result["gpu"] = torch.cuda.get_device_name(dev)
        result["triton"] = triton.__version__
    t0 = time.perf_counter()

    def done(part: str, value: Any) -> None:
        result[part] = value
        result["seconds"] = time.perf_counter() - t0
        if save is not None:
            save(result)

    done("correctness", correctness(dev))
    done("graph", {"replay": replay_checks(dev)})
    result["correctness"]["graph_replay_passed"] = result["graph"]["replay"]["passed"]
    result["graph"]["timings"] = graph_timings(dev, quick)
    done("graph", result["graph"])
    done("timings", timings(dev, rounds, quick))
    if dev.type == "cuda":
        done("launches", launches(dev))
    result["complete"] = True
    done("training", training(dev, steps=10 if quick else 300))
    return result


# -- the step as a CUDA graph ------------------------------------------------------------------

GRAPH_WORKLOADS = {
    "mog-ring": ("mog-ring", {}),
    "pacgan": ("mog-ring", {"arch": "pacgan"}),
    "unrolled": ("mog-ring", {"arch": "unrolled"}),
    "digits": ("digits", {}),
}
REPLAY_STEPS = 20
REPLAY_MEMBERS = 4
RTOL, ATOL = 1e-4, 1e-5  # float32 replay vs eager: the same maths, other kernels' rounding


REPLAY_EXTRA = ({"name": "adam", "ortho": "weights"}, {"name": "adam", "surgery": True})
"""Besides every registered optimizer: ⊥Grad and D gradient surgery, through the Triton
projection's cached tables."""


def _configs(workload: str, optimizer: Any, members: int, device: torch.device, **kw: Any):
    from ogan.game import resolve

    return [resolve(workload, optimizer, seed=s, device=str(device), streams="counter", **kw)
            for s in range(members)]  # fmt: skip


def _game(configs, capturable: bool):
    from ogan.game import graph
    from ogan.game.population import PopulationGame

    game = PopulationGame(configs)
    if capturable:  # the graph's arithmetic (device-side step counters), also run eagerly
        graph.make_capturable(game)
    return game


def _params(game) -> list[torch.Tensor]:
    return [p.detach().clone() for p in game.g.params + game.d.params]


def _eager_steps(
    configs, steps: int, capturable: bool
) -> tuple[torch.Tensor, list[torch.Tensor], dict[str, Any]]:
    """(Statistics rows, parameters, :func:`counts`) after ``steps`` eager steps."""
    from ogan.game import graph

    game = _game(configs, capturable)
    run = graph.Execution(game, "eager", "check")
    rows = torch.stack([run.step(i) for i in range(steps)])
    return rows, _params(game), counts(game.state_dict())


def _error(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest |a - b| in units of its tolerance (<= 1 passes); infinite where only one is NaN."""
    a, b = a.detach().float(), b.detach().float()
    same = (a == b) | (torch.isnan(a) & torch.isnan(b))  # also equal infinities
    err = ((a - b).abs() / (ATOL + RTOL * b.abs())).masked_fill(same, 0)
    return float(err.nan_to_num(nan=math.inf).max()) if err.numel() else 0.0


def counts(state: Any, path: str = "") -> dict[str, Any]:
    """The parts of a game's :meth:`state_dict` that count rather than measure, by path: every
    leaf but floating-point tensors, and the optimizers' step counters (float tensors that
    count). Rounding cannot change them, so a replay must leave them exactly as eager does."""
    if isinstance(state, dict):
        return {k: v for key, x in state.items() for k, v in counts(x, f"{path}/{key}").items()}
    if isinstance(state, (list, tuple)):
        return {k: v for i, x in enumerate(state) for k, v in counts(x, f"{path}/{i}").items()}
    if isinstance(state, torch.Tensor):
        if state.is_floating_point() and not path.endswith("/step"):
            return {}
        return {path: state.detach().cpu().clone()}
    return {path: state}


def _differ(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    def same(x: Any, y: Any) -> bool:
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            return x.shape == y.shape and bool(torch.equal(x, y))
        return type(x) is type(y) and x == y

    return sorted(k for k in a.keys() | b.keys() if k not in a or k not in b
                  or not same(a[k], b[k]))  # fmt: skip


def _forced(configs, steps: int) -> tuple[float, float, torch.Tensor, list[torch.Tensor], dict]:
    """The graph's steps each held to one eager step from the same state (teacher forcing):
    before every step an eager twin is given the graphed game's whole state, so each
    comparison is of one step's arithmetic, never of its amplification over the steps before
    (``replay``). Returns the largest rows and parameter errors, then the graphed game's own
    (free-running: it is never given a state) rows, parameters and :func:`counts`."""
    import copy

    from ogan.game import graph

    graphed, twin = _game(configs, False), _game(configs, True)
    run, eager = graph.Graph(graphed, "check"), graph.Execution(twin, "eager", "check")
    rows_error = params_error = 0.0
    rows = []
    for i in range(steps):
        twin.load_state_dict(copy.deepcopy(graphed.state_dict()))
        graph.make_capturable(twin)
        expected = eager.step(i)
        got = run.step(i)
        rows.append(got.clone())
        rows_error = max(rows_error, _error(got, expected))
        params_error = max(params_error, max(_error(g, e) for g, e in
                                             zip(_params(graphed), _params(twin))))  # fmt: skip
    if run.mode != "graph":
        raise RuntimeError(run.reason)
    state = counts(graphed.state_dict())
    return rows_error, params_error, torch.stack(rows), _params(graphed), state


def replay(configs) -> dict[str, Any]:
    """One population's :data:`REPLAY_STEPS` steps as a CUDA graph against eager steps with
    the graph's arithmetic (``capturable=True``: step counters and bias corrections on the
    device). The test (<= 1 passes; errors in units of the tolerance):

    - ``rows_error``, ``params_error``: each step's statistics row and parameters against one
      eager step from the same state (:func:`_forced`);
    - ``state_differs``: what :func:`counts` finds different after the free-running steps
      (step counters, stream positions, Lookahead's phase, gradient evaluations); a counter a
      replay does not advance passes the forced comparison (the twin copies it) but not this.

    Findings, not the test: ``free_rows_error``/``free_params_error``, the graph run free
    against the capturable eager run, and ``default_rows_error``/``default_params_error``,
    against the default arithmetic (host counters). Free-running, runs part by rounding that
    the game amplifies, by how much depending on where the trajectory passes. Measured on the
    CPU with the graphs emulated (tests/graph_replay.py), the study's configuration, 4 members,
    20 steps: against the default arithmetic, surgery's rows differ by 63 tolerances and its
    parameters by 87, ⊥Grad's rows by 2.1, the others' by at most 0.1; one ulp added to one
    weight of one member moved surgery's parameters by 0.016 to 42 tolerances (three seed sets
    × two arithmetics). A free-running test would fail a GPU whose graph rounds
    one GEMM differently from eager, or pass it, by chance. Step by step (forced), the default
    and capturable arithmetic differ by at most 0.023 tolerances, surgery's by 0.001.

    Also the plan's mode and reason; ``mode = "failed"`` where the capture or a step raised."""
    from ogan.game import graph
    from ogan.game.population import PopulationGame

    row: dict[str, Any] = {}
    row["mode"], row["reason"] = graph.plan(PopulationGame(configs))
    if row["mode"] != "graph":
        return row
    try:
        forced = _forced(configs, REPLAY_STEPS)
        row["rows_error"], row["params_error"], free_rows, free_params, free_counts = forced
        eager_rows, eager_params, eager_counts = _eager_steps(configs, REPLAY_STEPS, True)
        default_rows, default_params, _ = _eager_steps(configs, REPLAY_STEPS, False)
    except Exception as exc:  # a capture that fails is a finding, not a crash
        return {"mode": "failed", "reason": f"{type(exc).__name__}: {exc}"[:300]}
    row["state_differs"] = _differ(free_counts, eager_counts)
    for prefix, rows, params in (("free_", eager_rows, eager_params),
                                 ("default_", default_rows, default_params)):  # fmt: skip
        row[f"{prefix}rows_error"] = _error(free_rows, rows)
        row[f"{prefix}params_error"] = max(_error(g, e) for g, e in zip(free_params, params))
    return row


def replay_passed(row: dict[str, Any]) -> bool:
    """A graphed configuration's replay is its eager steps' maths (:func:`replay`)."""
    return max(row["rows_error"], row["params_error"]) <= 1 and not row["state_differs"]


def _verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    graphed = [r for r in rows if r["mode"] == "graph"]
    passed = all(replay_passed(r) for r in graphed)
    failed = [r for r in rows if r["mode"] == "failed"]
    return {"tolerance": {"rtol": RTOL, "atol": ATOL}, "cases": rows,
            "graphed": len(graphed), "failed": len(failed),
            "passed": passed and not failed}  # fmt: skip


def replay_checks(device: torch.device) -> dict[str, Any]:
    """Replay against eager (populations of :data:`REPLAY_MEMBERS`, :data:`REPLAY_STEPS` steps),
    or the reason a configuration runs eagerly, for every registered optimizer and
    :data:`REPLAY_EXTRA`, both schemes, every :data:`GRAPH_WORKLOADS`. Needs CUDA (on a CPU
    everything is eager)."""
    from ogan.errors import ConfigError
    from ogan.game.config import SCHEMES
    from ogan.optim import OPTIMIZERS

    if device.type != "cuda":
        return {"skipped": "CUDA graphs need a CUDA device", "passed": True}
    rows = []
    for name in (*OPTIMIZERS, *REPLAY_EXTRA):
        for scheme in SCHEMES:
            for label, (workload, options) in GRAPH_WORKLOADS.items():
                row: dict[str, Any] = {"optimizer": name, "scheme": scheme, "workload": label}
                rows.append(row)
                try:
                    configs = _configs(workload, name, REPLAY_MEMBERS, device, scheme=scheme,
                                       **options)  # fmt: skip
                except ConfigError as exc:  # e.g. extrapolation is simultaneous only
                    row.update(mode="not run", reason=str(exc))
                    continue
                row.update(replay(configs))
    return _verdict(rows)


def replay_sweep(sweep: Any) -> dict[str, Any]:
    """The same check for each configuration of a sweep exactly as it will run (its workload
    options, optimizer spec and streams; the first :data:`REPLAY_MEMBERS` of its seeds): what a
    study checks on the device before it spends the device's time on graphs. Where the plan
    runs a configuration eagerly (on a CPU, every one) its row gives the reason and no error."""
    from bench.population import optimizer_key
    from ogan.game import resolve

    seeds = list(dict.fromkeys(s.seed for s in sweep.specs))[:REPLAY_MEMBERS]
    rows = []
    for key in dict.fromkeys(optimizer_key(s) for s in sweep.specs):
        kw = key.train_kwargs()
        configs = [resolve(**{**kw, "seed": seed}) for seed in seeds]
        rows.append({"optimizer": key.label, "workload": key.workload, **replay(configs)})
    return _verdict(rows)


def _step_time(configs, mode: str, steps: int) -> tuple[float, str]:
    """(Seconds per population step, how it ran): ``today`` (eager, a torch.Generator per
    member, the rows read back every step, as the landed code ran), ``eager`` (eager, counter
    streams) or ``graph`` (which falls back to eager where a capture fails)."""
    from ogan.game import graph
    from ogan.game.game import Game
    from ogan.game.loop import One
    from ogan.game.population import PopulationGame

    if mode == "today":
        configs = [dataclasses.replace(c, streams="torch") for c in configs]
    game = One(Game(configs[0])) if len(configs) == 1 else PopulationGame(configs)
    run = graph.Graph(game, "timing") if mode == "graph" else graph.Execution(game, mode, "timing")
    sync = game.core.device.type == "cuda"
    for i in range(graph.WARMUP + 2):
        run.step(i)
    if sync:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(graph.WARMUP + 2, graph.WARMUP + 2 + steps):
        rows = run.step(i)
        if mode == "today":  # the landed loop read every step back
            torch.isfinite(rows).all(1).tolist()
    if sync:
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps, run.mode


def _normals_time(device: torch.device, members: int = 256, reps: int = 20) -> dict[str, float]:
    """ms per draw of G's noise for the unrolled protocol (512 × 256 a member): torch ops
    against the Triton kernel."""
    from ogan import _triton_streams
    from ogan.game.streams import Streams, key

    s = Streams(torch.tensor([key(i) for i in range(members)], device=device))
    draws = {"torch": lambda: s._normal((512, 256), torch.float32),
             "triton": lambda: _triton_streams.normal(s.keys, s.position, (512, 256),
                                                      torch.float32)}  # fmt: skip
    out = {}
    for name, draw in draws.items():
        draw()
        torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            draw()
        torch.cuda.synchronize(device)
        out[name] = 1e3 * (time.perf_counter() - t0) / reps
    return out


def graph_timings(device: torch.device, quick: bool = False) -> dict[str, Any]:
    """Population step times (ms), today's path against the graph, and the issue's targets."""
    cuda = device.type == "cuda"
    steps = 30 if cuda else 2
    plan = [  # (protocol, optimizer, members)
        ("unrolled", "adam", 1), ("unrolled", "adam", 64), ("unrolled", "adam", 256),
        ("pacgan", "adam", 1), ("pacgan", "adam", 10), ("pacgan", "adam", 20),
        ("pacgan", {"name": "adam", "ortho": "weights"}, 20),
    ] if cuda else [("mog-ring", "adam", 1), ("mog-ring", "adam", 2)]  # fmt: skip
    rows = []
    for protocol, optimizer, members in plan:
        workload, options = GRAPH_WORKLOADS[protocol]
        configs = _configs(workload, optimizer, members, device, **options)
        row = {"protocol": protocol, "optimizer": optimizer, "members": members}
        for mode in ("today", "graph") if cuda else ("today", "eager"):
            try:
                seconds, row[f"{mode}_ran"] = _step_time(configs, mode, steps)
                row[f"{mode}_ms"] = 1e3 * seconds
            except Exception as exc:  # e.g. ⊥Grad: not capturable; recorded, not a crash
                row[f"{mode}_error"] = f"{type(exc).__name__}: {exc}"[:300]
        rows.append(row)
    out: dict[str, Any] = {"steps": steps, "cases": rows}
    if cuda:
        out["stream_normals_ms"] = _normals_time(device)
        ms = {(r["protocol"], str(r["optimizer"]), r["members"]): r for r in rows}
        get = lambda p, o, m, k="graph_ms": ms[(p, o, m)].get(k, math.nan)  # noqa: E731
        ortho = str({"name": "adam", "ortho": "weights"})
        single = get("unrolled", "adam", 1, "today_ms")
        ortho_ratio = get("pacgan", ortho, 20) / get("pacgan", "adam", 20)
        out["targets"] = {
            "unrolled P=256 adam <= 6 ms": get("unrolled", "adam", 256),
            "pacgan P=10 <= 3 ms": get("pacgan", "adam", 10),
            "pacgan P=1 <= 1.5 ms": get("pacgan", "adam", 1),
            "pacgan P=20 ortho/adam <= 1.3": ortho_ratio,
            "unrolled P=256 member-steps/s vs one eager run >= 100x": (
                256 * single / get("unrolled", "adam", 256)
            ),
        }
    return out


# -- the record as the README's GPU section reads it --------------------------------------------

REFERENCE_GPU = "H200"  # the device the targets (and their "today" figures) come from


def device_slug(name: str | None) -> str:
    """A file name for a GPU model: its first letters-then-digits token ("NVIDIA H100 80GB HBM3"
    -> "h100", "NVIDIA H200" -> "h200", "NVIDIA A100-SXM4-40GB" -> "a100"), else its words
    joined ("NVIDIA GeForce RTX 4090" -> "geforce-rtx-4090"); "gpu" when there is no name.
    The check is saved as ``<slug>-cuda.json``, so one model's figures never pass for another's."""
    words = [w for w in re.split(r"[^a-z0-9]+", (name or "").lower()) if w and w != "nvidia"]
    for word in words:
        if re.fullmatch(r"[a-z]+[0-9]+[a-z]*", word):
            return word
    return "-".join(words) or "gpu"

_BOUND = re.compile(r"(<=|>=)\s*([0-9.]+)")


def target_met(name: str, value: float) -> bool | None:
    """Whether ``value`` meets the bound written in a target's name ("... <= 6 ms", "... >=
    100x"); None where the name states none or the value is missing."""
    found = _BOUND.search(name)
    if found is None or value is None or not math.isfinite(value):
        return None
    bound = float(found.group(2))
    return value <= bound if found.group(1) == "<=" else value >= bound


def _num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def summary(record: dict[str, Any]) -> str:
    """Markdown of a ``bench perf --device cuda`` record (``python -m bench perf --summary``):
    what ran, the correctness and replay verdicts with their worst errors, the graph timings
    against the issue's targets, the interleaved timings and launches."""
    m = record.get("machine", {})
    lines = [f"**{record.get('gpu', m.get('device', '?'))}**, torch {m.get('torch', '?')}, "
             f"Triton {record.get('triton', '—')}; "
             + ("complete" if record.get("complete", True) else "**incomplete** (stopped at a "
                "time limit: the parts below finished)")
             + f", {_num(record.get('seconds'), 3)} s."]  # fmt: skip
    c = record.get("correctness")
    if c:
        worst = max((max(r["fused_vs_device_reference"], r["fused_vs_cpu_reference"])
                     for r in c["cases"]), default=math.nan)  # fmt: skip
        lines.append(
            f"- Projection: {'passed' if c['passed'] else '**failed**'}; worst error "
            f"{_num(worst)} tolerances over {len(c['cases'])} dtype × mode cases, mixed devices "
            f"{_num(c.get('mixed_devices'))}; Ortho(Adam) against Adam on reference-projected "
            f"gradients, 5 steps: max |difference| {_num(c.get('ortho_adam'))}."
        )
    g = record.get("graph", {})
    rp = g.get("replay")
    if rp and "cases" in rp:
        cases = rp["cases"]
        graphed = [r for r in cases if r["mode"] == "graph"]
        worst = lambda key: max((r.get(key, math.nan) for r in graphed), default=math.nan)  # noqa: E731
        differs = [r for r in graphed if r.get("state_differs")]
        lines.append(
            f"- Replay against eager ({REPLAY_STEPS} steps, {REPLAY_MEMBERS} members): "
            f"{'passed' if rp['passed'] else '**failed**'}; {len(graphed)} of {len(cases)} "
            f"configurations graphed, {rp['failed']} captures failed; worst per-step error "
            f"rows {_num(worst('rows_error'))}, parameters {_num(worst('params_error'))} "
            f"tolerances (<= 1 passes); counts differ in {len(differs)}. Free-running "
            f"(a finding): rows {_num(worst('free_rows_error'))}, parameters "
            f"{_num(worst('free_params_error'))}; against the default arithmetic, parameters "
            f"{_num(worst('default_params_error'))}."
        )
        reasons: dict[str, int] = {}
        for r in cases:
            if r["mode"] != "graph":
                why = f"{r['mode']}: {r.get('reason', '')}"[:160]
                reasons[why] = reasons.get(why, 0) + 1
        lines += [f"  - {n}× {why}" for why, n in sorted(reasons.items(), key=lambda x: -x[1])]
    elif rp:
        lines.append(f"- Replay: {rp.get('skipped', 'not run')}.")
    t = g.get("timings")
    if t:
        lines += ["", "| protocol | optimizer | P | today (ms) | graph (ms) | today / graph |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for r in t["cases"]:
            opt = r["optimizer"] if isinstance(r["optimizer"], str) else "+".join(
                str(v) for v in r["optimizer"].values())  # fmt: skip
            today, graph_ms = r.get("today_ms"), r.get("graph_ms", r.get("eager_ms"))
            ratio = today / graph_ms if today and graph_ms else None
            lines.append(f"| {r['protocol']} | {opt} | {r['members']} | {_num(today)} | "
                         f"{_num(graph_ms)}{'' if 'graph_ms' in r else ' (eager)'} | "
                         f"{_num(ratio)} |")  # fmt: skip
        if t.get("targets"):
            gpu = str(record.get("gpu", ""))
            if REFERENCE_GPU.lower() not in gpu.lower():
                lines += ["", f"The targets were set on one {REFERENCE_GPU}; these figures are "
                          f"from {gpu or 'another device'}."]  # fmt: skip
            lines += ["", "| target | measured | met |", "|---|---|---|"]
            for name, value in t["targets"].items():
                met = target_met(name, value)
                lines.append(f"| {name} | {_num(value)} | "
                             f"{'—' if met is None else 'yes' if met else '**no**'} |")  # fmt: skip
        if t.get("stream_normals_ms"):
            n = t["stream_normals_ms"]
            lines.append(f"\nCounter-stream normals, 256 members × 512 × 256: torch ops "
                         f"{_num(n.get('torch'))} ms, Triton {_num(n.get('triton'))} ms.")
    if record.get("timings"):
        from bench.perf.gate import ratio_table

        lines += ["", *ratio_table(record["timings"].values())]
    if record.get("launches"):
        lines.append("\nCUDA kernels per call: " + ", ".join(
            f"{k} {v}" for k, v in record["launches"].items()) + ".")  # fmt: skip
    return "\n".join(lines) + "\n"
