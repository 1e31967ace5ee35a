"""The performance cases: each a subject timed against a baseline, with the issue's target ratio.

Every case is built fresh by ``build(settings)`` and returns two zero-argument callables. Cases
run on CPU by default and on CUDA with ``device="cuda"`` where they make sense there.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ogan.optim import Ortho
from ogan.projection import orthogonalize_
from ogan.registry import resolve_name
from ogan.workloads import nets

Pair = tuple[Callable[[], object], Callable[[], object]]


@dataclass(frozen=True)
class Settings:
    device: str = "cpu"
    quick: bool = False
    force_impl: str | None = None  # e.g. "reference": a deliberate slowdown the gate must catch
    threads: int | None = None  # torch's intra-op threads (None: torch's default, the cores)


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    subject: str
    baseline: str
    bound: float
    """The target: subject time / baseline time must stay at or below this."""
    build: Callable[[Settings], Pair] = field(repr=False)
    quick: bool = True
    """Part of the quick gate that ``make test`` runs."""
    cuda: bool = True
    """Meaningful on CUDA too."""
    heavy: bool = False
    """Allocates hundreds of MB: the gate runs these last, as the memory they leave behind being
    reclaimed by the kernel disturbs the next case's timings."""


# -- models -------------------------------------------------------------------------------------


def seed_mlp() -> nn.Module:
    """The seed article's G and D at MNIST size: 14 tensors, 238,645 parameters."""
    return nn.ModuleList(nets.seed_mlp_players(784))


def dcgan64() -> nn.Module:
    """Radford et al.'s 64×64 DCGAN G and D, with conv biases: 34 tensors, ~6.3 M parameters."""
    return nn.ModuleList(nets.dcgan_players(channels=3, size=64, z_dim=100, w=64))


MODELS = {"mlp": seed_mlp, "dcgan": dcgan64}


def _params_and_grads(model: str, device: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    torch.manual_seed(0)
    params = [p.detach().to(device) for p in MODELS[model]().parameters()]
    grads = [1e-2 * torch.randn_like(p) for p in params]
    return params, grads


def _two_copies(model: str, device: str) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """The model's parameters twice, each copy with the same gradients: subject and baseline."""
    refs, grads = _params_and_grads(model, device)
    a = [nn.Parameter(p.clone()) for p in refs]
    b = [nn.Parameter(p.clone()) for p in refs]
    for p, q, g in zip(a, b, grads):
        p.grad, q.grad = g.clone(), g.clone()
    return a, b


def _sync(device: str) -> Callable[[], None]:
    return torch.cuda.synchronize if device.startswith("cuda") else lambda: None


# -- projection ---------------------------------------------------------------------------------


def _projection_vs(
    model: str, baseline_op: Callable[[list, list], object]
) -> Callable[[Settings], Pair]:
    """The projection (auto, or the forced impl) vs ``baseline_op(grads, refs)`` on a copy."""

    def build(s: Settings) -> Pair:
        refs, grads = _params_and_grads(model, s.device)
        other = [g.clone() for g in grads]
        sync = _sync(s.device)
        impl = s.force_impl or "auto"

        def subject() -> None:
            orthogonalize_(grads, refs, impl=impl)
            sync()

        def baseline() -> None:
            baseline_op(other, refs)
            sync()

        return subject, baseline

    return build


def projection_vs_reference(model: str) -> Callable[[Settings], Pair]:
    return _projection_vs(model, lambda g, r: orthogonalize_(g, r, impl="reference"))


def projection_vs_foreach_add(model: str) -> Callable[[Settings], Pair]:
    # one read of two lists, one write: the floor of any projection
    return _projection_vs(model, torch._foreach_add_)


def ortho_adam_vs_adam(model: str) -> Callable[[Settings], Pair]:
    def build(s: Settings) -> Pair:
        a, b = _two_copies(model, s.device)
        ortho = Ortho(torch.optim.Adam(a, lr=1e-5, foreach=True), impl=s.force_impl or "auto")
        adam = torch.optim.Adam(b, lr=1e-5, foreach=True)
        sync = _sync(s.device)

        def subject() -> None:
            ortho.step()
            sync()

        def baseline() -> None:
            adam.step()
            sync()

        return subject, baseline

    return build


def optimizer_vs_adam(name: str, model: str) -> Callable[[Settings], Pair]:
    """One update of an ogan optimizer vs one torch Adam step (Extra-*: both half-steps vs two)."""

    def build(s: Settings) -> Pair:

        a, b = _two_copies(model, s.device)
        factory = resolve_name("optimizer", name).obj
        # torch.optim picks its for-loop implementation on CPU unless asked for foreach
        multi = {"foreach": True} if "foreach" in inspect.signature(factory).parameters else {}
        opt = factory(a, lr=1e-5, **multi)
        adam = torch.optim.Adam(b, lr=1e-5, foreach=True)
        extrapolates = getattr(opt, "extrapolation", None) is not None
        sync = _sync(s.device)

        def subject() -> None:
            if extrapolates:
                opt.extrapolate()
            opt.step()
            sync()

        def baseline() -> None:
            adam.step()
            if extrapolates:
                adam.step()
            sync()

        return subject, baseline

    return build


# -- the runner ----------------------------------------------------------------------------------

RUNNER_SWEEP = """
[sweep]
name = "perf-runner"
seeds = [0, 1]
[[workload]]
name = "bilinear"
steps = 200
eval_every = 50
[[optimizer]]
name = "adam"
lr = 0.01
"""


def runner_vs_direct(s: Settings) -> Pair:
    """A sweep through the runner (in-process, one job, results written) vs plain ogan.train:
    the runner's own cost, so one run per process (populations have their own cases)."""
    import atexit
    import shutil
    import tempfile
    from pathlib import Path

    import ogan
    from bench.config import load_sweep
    from bench.runner import run_sweep

    folder = Path(tempfile.mkdtemp(prefix="ogan-perf-runner-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # cases run in their own process
    config = folder / "perf-runner.toml"
    config.write_text(RUNNER_SWEEP)
    specs = load_sweep(str(config), device=s.device).specs

    def runner() -> None:
        run_sweep(config, out=folder / "out", jobs=1, force=True, device=s.device, population=1,
                  echo=lambda *args, **kwargs: None)  # fmt: skip

    def direct() -> None:
        for spec in specs:
            ogan.train(**spec.train_kwargs(), threads=1)

    return runner, direct


# -- the training step --------------------------------------------------------------------------


def _seed_mlp_game(s: Settings, record_stats: bool = True):
    from ogan.game import Game
    from ogan.game.config import resolve

    config = resolve("seed-mlp", {"name": "adam", "lr": 2e-4, "betas": [0.5, 0.999]},
                     device=s.device, batch_size=64)  # fmt: skip
    return Game(config, record_stats=record_stats)


def _kernel_step(game) -> Callable[[], None]:
    """What ogan.train does per step: the step, the finiteness check, the trace row."""
    trace = torch.zeros(64, game.layout.width if game.record_stats else 2)
    counter = [0]

    def step() -> None:
        i = counter[0]
        row = game.step(i)
        bool(torch.isfinite(row).all())
        trace[i % 64] = row.cpu()
        counter[0] = i + 1

    return step


def train_step_vs_hand_loop(s: Settings) -> Pair:
    game = _seed_mlp_game(s)
    G, D = copy.deepcopy(game.g.module), copy.deepcopy(game.d.module)
    data = game.workload._data
    gen = torch.Generator(s.device).manual_seed(1)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    g_params = list(G.parameters())

    def hand() -> None:  # the minimal loop a user would write for the same maths
        real = data[torch.randint(len(data), (64,), generator=gen, device=s.device)].flatten(1)
        z = torch.randn(64, 100, generator=gen, device=s.device)
        with torch.no_grad():
            fake = G(z)
        d_loss = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        z = torch.randn(64, 100, generator=gen, device=s.device)
        g_loss = F.softplus(-D(G(z))).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward(inputs=g_params)
        opt_g.step()
        bool(torch.isfinite(g_loss))  # it too must notice a diverged run

    return _kernel_step(game), hand


def stats_on_vs_off(s: Settings) -> Pair:
    return _kernel_step(_seed_mlp_game(s, True)), _kernel_step(_seed_mlp_game(s, False))


# -- populations --------------------------------------------------------------------------------

POPULATION = 8
"""Members of the population cases."""


def _one_thread(fn: Callable[[], object]) -> Callable[[], object]:
    from ogan.game.loop import torch_threads

    def call() -> object:
        with torch_threads(1):
            return fn()

    return call


def _population_stepper(configs: list) -> Callable[[], object]:
    """One population step of ``configs`` per call, with the per-step read-back
    ``train_population`` does on the CPU (the finite check and the rows to the host), one
    thread."""
    from ogan.game.population import PopulationGame

    with torch.random.fork_rng():  # building players seeds the global generator
        population = PopulationGame(configs)
    counter = [0]

    def call() -> None:
        rows = population.step(counter[0])
        torch.isfinite(rows).all(1).tolist()
        rows.cpu()
        counter[0] += 1

    return _one_thread(call)


def population_vs_single_runs(
    workload: str, optimizer: dict, **options: object
) -> Callable[[Settings], Pair]:
    """One population step of 8 members vs one step of each of 8 standalone runs, one thread,
    statistics on: the ratio is the time of a member-step over that of a standalone step."""

    def build(s: Settings) -> Pair:
        from ogan.game import Game
        from ogan.game.config import resolve

        configs = [resolve(workload, optimizer, device=s.device, seed=seed, **options)
                   for seed in range(POPULATION)]  # fmt: skip
        members = _population_stepper(configs)
        with torch.random.fork_rng():
            singles = [_kernel_step(Game(c)) for c in configs]

        def standalone() -> None:
            for step in singles:
                step()

        return members, _one_thread(standalone)

    return build


def population_counter_vs_torch_streams(
    workload: str, optimizer: dict, members: int, **options: object
) -> Callable[[Settings], Pair]:
    """One population step with counter streams vs the same population with torch generators
    (one thread): what drawing every member's batch at once costs, or saves, on this device."""

    def build(s: Settings) -> Pair:
        from ogan.game.config import resolve
        from ogan.game.population import PopulationGame

        def step(streams: str) -> Callable[[], object]:
            configs = [resolve(workload, optimizer, device=s.device, seed=seed, streams=streams,
                               **options) for seed in range(members)]  # fmt: skip
            with torch.random.fork_rng():
                population = PopulationGame(configs)
            counter = [0]

            def call() -> None:
                population.step(counter[0]).cpu()
                counter[0] += 1

            return _one_thread(call)

        return step("counter"), step("torch")

    return build


def population_subnormal_flushed_vs_not(s: Settings) -> Pair:
    """A population step of ⊥Grad on D only from weights a sixth of which in D's second layer are
    subnormal (as default-ring-25k-players-b's populations had them at step 10,000), with
    ``flush_denormal`` vs without (one thread). Each call starts from that state again, so every
    step meets the subnormals. Intel cores compute on subnormals through microcode assists; the
    target says only that flushing never costs (its gain depends on the CPU)."""
    from ogan.game.config import resolve
    from ogan.game.loop import flush_denormals
    from ogan.game.population import PopulationGame

    spec = {"name": "adam", "lr": 5e-3, "betas": [0.5, 0.999], "ortho": "weights",
            "ortho_players": "d"}  # fmt: skip

    def step(flush: bool) -> Callable[[], object]:
        configs = [resolve("mog-ring", spec, device=s.device, seed=seed, batch_size=256, threads=1,
                           flush_denormal=flush) for seed in range(POPULATION)]  # fmt: skip
        with torch.random.fork_rng():
            population = PopulationGame(configs)
            weight = population.d.net.params["2.weight"]  # (members, 128, 128)
            tiny = torch.rand(weight.shape) < 1 / 6
        with torch.no_grad():
            weight[tiny] *= 1e-38  # |w| ~ 1e-40 to 1e-38: subnormal in float32
        state = {k: v.clone() for k, v in population.d.net.params.items()}
        counter = [0]

        def call() -> None:
            with torch.no_grad():
                for name, value in state.items():
                    population.d.net.params[name].copy_(value)
            with flush_denormals(flush):
                population.step(counter[0]).cpu()
            counter[0] += 1

        return _one_thread(call)

    return step(True), step(False)


STUDY = "unrolled-ring-gpu"
"""The sweep whose arms the ``arm-*`` cases time: issue 22's six optimizers on the unrolled-GAN
ring protocol (the CPU samples' sweeps hold the same arms)."""


def arm_vs_adam(label: str, members: int = POPULATION) -> Callable[[Settings], Pair]:
    """What one of the unrolled-ring study's optimizers costs: a population step of ``members``
    seeds of the arm labelled ``label`` vs the same seeds with Adam, both exactly as the study's
    sweep file specifies them (game, counter streams), statistics on, one thread, with the
    per-step read-back ``train_population`` does on the CPU. The ratio is the arm's wall-clock
    price per step on this device: the cost side of the study's verdicts, which the sweeps' own
    time columns are not when other work shared the cores."""

    def build(s: Settings) -> Pair:
        from bench.config import load_sweep
        from ogan.game.config import resolve

        arms = {spec.label: spec for spec in load_sweep(STUDY, device=s.device).specs}

        def step(arm: str) -> Callable[[], object]:
            kwargs = arms[arm].train_kwargs()
            return _population_stepper([resolve(**{**kwargs, "seed": seed})
                                        for seed in range(members)])  # fmt: skip

        return step(label), step("adam")

    return build


def counter_normals_blocked_vs_reference(s: Settings) -> Pair:
    """The counter streams' normals on the CPU, in cache-sized blocks (what ``Streams.normal``
    does there) vs the reference torch ops over whole temporaries: 10 members x 512 x 256, the
    unrolled protocol's noise, one thread."""
    from ogan.game.streams import Streams, key

    keys = torch.tensor([key(seed) for seed in range(10)], device=s.device)
    blocked, reference = Streams(keys.clone()), Streams(keys.clone())
    return (_one_thread(lambda: blocked._normal_blocked((512, 256), torch.float32)),
            _one_thread(lambda: reference._normal((512, 256), torch.float32)))  # fmt: skip


# -- Fréchet distance ---------------------------------------------------------------------------


def frechet_vs_pytorch_fid(s: Settings) -> Pair:
    from pytorch_fid.fid_score import calculate_frechet_distance

    from ogan.metrics.frechet import frechet_distance, gaussian_stats

    d = 256 if s.quick else 2048
    rng = np.random.default_rng(0)
    mu1, sigma1 = gaussian_stats(rng.normal(size=(d + 500, d)))
    mu2, sigma2 = gaussian_stats(rng.normal(size=(d + 500, d)) * 1.1 + 0.1)
    return (lambda: frechet_distance(mu1, sigma1, mu2, sigma2),
            lambda: calculate_frechet_distance(mu1, sigma1, mu2, sigma2))  # fmt: skip


CASES: dict[str, Case] = {
    c.name: c
    for c in [
        Case("projection-mlp", "fused vs reference projection, seed MLP G+D (14 tensors, 239k)",
             "fused", "reference", 1 / 3, projection_vs_reference("mlp")),
        Case("projection-dcgan", "fused vs reference projection, DCGAN-64 G+D (34 tensors, 6.3M)",
             "fused", "reference", 1 / 5, projection_vs_reference("dcgan"), quick=False,
             heavy=True),
        Case("floor-mlp", "fused projection vs one torch._foreach_add_ (the floor), seed MLP",
             "fused", "foreach_add_", 3.0, projection_vs_foreach_add("mlp")),
        Case("floor-dcgan", "fused projection vs one torch._foreach_add_ (the floor), DCGAN-64",
             "fused", "foreach_add_", 3.0, projection_vs_foreach_add("dcgan"), quick=False,
             heavy=True),
        Case("ortho-adam-mlp", "Ortho(Adam) step vs Adam(foreach=True) step, seed MLP",
             "Ortho(Adam)", "Adam", 1.3, ortho_adam_vs_adam("mlp")),
        Case("ortho-adam-dcgan", "Ortho(Adam) step vs Adam(foreach=True) step, DCGAN-64",
             "Ortho(Adam)", "Adam", 1.3, ortho_adam_vs_adam("dcgan"), quick=False, heavy=True),
        Case("optimistic-adam-mlp", "OptimisticAdam step vs Adam(foreach=True) step, seed MLP",
             "OptimisticAdam", "Adam", 1.5, optimizer_vs_adam("optimistic-adam", "mlp"),
             quick=False),
        # two Adam steps plus saving and restoring w_t: two more passes over the weights
        Case("extra-adam-mlp", "ExtraAdam extrapolate + step vs two Adam steps, seed MLP",
             "ExtraAdam", "2× Adam", 1.3, optimizer_vs_adam("extra-adam", "mlp"), quick=False),
        Case("runner", "bench runner, 2 bilinear runs stored, vs the same runs by ogan.train",
             "runner", "ogan.train", 1.5, runner_vs_direct, quick=False, cuda=False),
        Case("train-step", "ogan training step (seed-mlp, Adam, statistics on) vs a hand loop",
             "ogan step", "hand loop", 1.10, train_step_vs_hand_loop),
        Case("stats", "training step with vs without gradient statistics (seed-mlp, Adam)",
             "stats on", "stats off", 1.05, stats_on_vs_off),
        # ratio = time of a member-step / time of a standalone step: 1 / 1.4 is 1.4x the throughput
        Case("population-mog-ring", f"{POPULATION}-member population step vs {POPULATION} "
             "standalone steps (mog-ring, Adam, statistics on, one thread)", "population",
             "standalone", 1 / 1.4, population_vs_single_runs(
                 "mog-ring", {"name": "adam", "lr": 2e-4}, batch_size=256)),
        Case("population-ortho", f"{POPULATION}-member population step vs {POPULATION} "
             "standalone steps (mog-ring, Adam+⊥Grad, statistics on, one thread)", "population",
             "standalone", 1 / 1.4, population_vs_single_runs(
                 "mog-ring", {"name": "adam", "lr": 2e-4, "ortho": "weights"}, batch_size=256)),
        Case("population-seed-mlp", f"{POPULATION}-member population step vs {POPULATION} "
             "standalone steps (seed-mlp, Adam, statistics on, one thread)", "population",
             "standalone", 1 / 1.2, population_vs_single_runs(
                 "seed-mlp", {"name": "adam", "lr": 2e-4}), quick=False),
        Case("population-digits", f"{POPULATION}-member population step vs {POPULATION} "
             "standalone steps (digits, Adam, statistics on, one thread)", "population",
             "standalone", 1 / 1.2, population_vs_single_runs(
                 "digits", {"name": "adam", "lr": 2e-4}), quick=False),
        # counter streams on the CPU: the draw itself, then what it costs a population step
        Case("counter-normals", "counter-stream normals in cache-sized blocks vs the reference "
             "torch ops, 10 x 512 x 256 (one thread)", "blocked", "reference", 1 / 1.5,
             counter_normals_blocked_vs_reference, cuda=False),
        Case("streams-unrolled", "population step of 5 with counter vs torch streams (unrolled "
             "ring protocol, 512 x 256 noise a member, one thread)", "counter", "torch", 1.6,
             population_counter_vs_torch_streams(
                 "mog-ring", {"name": "adam", "lr": 1e-3, "betas": [0.5, 0.999]}, 5,
                 arch="unrolled", batch_size=512), quick=False, cuda=False),
        Case("streams-mog-ring", f"population step of {POPULATION} with counter vs torch streams "
             "(mog-ring, Adam, one thread)", "counter", "torch", 1.3,
             population_counter_vs_torch_streams("mog-ring", {"name": "adam", "lr": 2e-4},
                                                 POPULATION, batch_size=256),
             quick=False, cuda=False),
        # the unrolled-ring study's optimizers, each a population step against Adam's (issue 22's
        # cost side); targets from the arithmetic: a projection or a second D backward pass adds
        # well under a third, a second gradient evaluation (Extra-Adam) just under twice
        *(Case(f"arm-{name}", f"unrolled ring, {POPULATION}-member population step: {label} vs "
               f"Adam, as {STUDY}.toml has them (statistics on, one thread)", label, "adam",
               bound, arm_vs_adam(label), quick=False, cuda=False)
          for name, label, bound in [
              ("ortho", "adam+ortho", 1.3),
              ("surgery", "adam+surgery", 1.3),
              ("optimistic-adam", "optimistic-adam", 1.3),
              ("extra-adam", "extra-adam", 2.3),
              ("lookahead", "lookahead(adam)", 1.2),
          ]),
        Case("subnormal-flush", f"{POPULATION}-member population step of adam+ortho(d) from D "
             "weights a sixth subnormal: flush_denormal vs not (mog-ring, one thread)",
             "flushed", "not flushed", 1.1, population_subnormal_flushed_vs_not, quick=False,
             cuda=False),
        Case("frechet", "ogan Fréchet distance vs pytorch-fid's, d = 2048 (256 in quick mode)",
             "ogan", "pytorch-fid", 1 / 5, frechet_vs_pytorch_fid, quick=False, cuda=False,
             heavy=True),
    ]
}  # fmt: skip
