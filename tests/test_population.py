"""Population training: every member is its standalone run, and members are independent.

The game-level tests step a population and the standalone games of the same seeds side by side
(no evaluation: fast) and compare every step's record (losses, per-tensor gradient norms before
and after any projection, removed fractions) and the stepped parameters and buffers. Each step
starts both from the standalone games' state (teacher forcing), so what is compared is one step's
arithmetic, to a tolerance derived from it (Tolerance.of): batched kernels add in another order
than the standalone ones, never bit for bit, and GAN dynamics amplify such a difference step by
step (a free-running comparison of 20 steps once failed on a Zen 4 that passed here). Whole runs
are compared free-running only over a few steps, or as distributions over seeds.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch
from test_vision_data import fake_cifar10, fake_mnist
from torch import nn
from torchvision.datasets import CIFAR10

import ogan
from ogan import optim, workloads
from ogan.errors import ConfigError
from ogan.game import Game
from ogan.game.config import resolve
from ogan.game.game import stream_seeds
from ogan.game.loop import torch_threads
from ogan.game.population import PopulationGame
from ogan.metrics.inception import INCEPTION_FILENAME
from ogan.workloads.base import Batch
from ogan.workloads.mog import MoGRing

SEEDS = (0, 1)
STEPS = 20
TINY = {
    "bilinear": {},
    "dirac": {},
    "mog-ring": {"hidden": 16},
    "mog-grid": {"hidden": 16},
    "digits": {"hidden": 16},
    "seed-mlp": {},
    "digits-conv": {"arch": "conv"},  # BatchNorm in G
    "mog-pacgan": {"arch": "pacgan", "packing": 2},  # BatchNorm in G, maxout D on packed input
    "mog-unrolled": {"arch": "unrolled"},
    "mnist": {"width": 8},  # DCGANs: BatchNorm in both players
    "cifar10": {"width": 8},
}
WITHOUT_BATCHNORM = ["bilinear", "dirac", "mog-ring", "digits", "seed-mlp", "mog-unrolled"]
IMAGE_DATA = ("mnist", "cifar10")
ALIASES = {"digits-conv": "digits", "mog-pacgan": "mog-ring", "mog-unrolled": "mog-ring"}
"""Test ids of one workload with other options (TINY's) -> the workload."""


# -- tolerances of one step, from its arithmetic ----------------------------------------------
#
# Every comparison below is of ONE step from the same state (teacher forcing, see force()): the
# population and the standalone game compute the same sums in another order (bmm for mm, a vmapped
# convolution, a summed loss), and nothing else. A sum of n terms rounded to unit roundoff u errs
# by about √n·u relative to its terms (Higham & Mary's probabilistic bound, SIAM J. Sci. Comput.
# 2019; the worst case n·u is not what reordering gives), so the tolerance of a step's records is
#
#     rtol = CONDITION · √n · u,   n = the step's longest reduction (batch × positions, fan-in)
#
# where CONDITION covers what the step does to such an error: a few layers composed, the
# losses' logs, and a projection's cancellation (⊥Grad and surgery subtract a component: the
# remainder's relative error grows by |g| / |g⊥|). Its value, 256, was set on the largest error
# measured under four CPU kernel selections (native AVX-512 + AMX, and the three of
# tests/emulate_cpus.py): see the README's test section. A member mixed up with another, or a
# wrong slice, differs by O(1) relatively: a million times this on float32.
#
# The step's records are float32 whatever the training dtype (the statistics row), so their
# tolerance is at least a few float32 units. A parameter moves by lr times its step direction. For
# SGD-type methods the direction is the gradient, so its error is lr · rtol. Adam-type methods
# divide each element by its root-mean-square plus eps: d(step)/dg ≤ 1/eps, and an element far
# below its tensor's scale (a projection's residue, a near-dead unit) carries the rounding error of
# the tensor's scale (O(1) here), so the bound is lr · rtol / eps, capped at lr / 8: no rounding may
# move an element by a step-sized amount (a member given another's state moves every element by
# ~lr). In float64 that bound is ~1e-4 · lr; in float32 it is the cap. Muon's Newton–Schulz runs in
# bfloat16 whatever the dtype: an input differing in its last bit may round to the neighbouring
# bfloat16 (u = 2⁻⁸), and five cubic iterations amplify that, so one element of an orthogonalised
# update (lr · 0.2√max(A, B) times an entry of an orthogonal matrix, ≤ 1) may differ by a tenth of
# its size (measured on seed-mlp); NS_FLIP = 32 · 2⁻⁸ = 0.125 bounds it. That per-member
# Newton–Schulz is tested exactly, on identical inputs, in test_population_kernels.py.

CONDITION = 256.0
U32 = torch.finfo(torch.float32).eps / 2
NS_FLIP = 32 * 2.0**-8
ADAM_EPS = 1e-8  # every registered Adam-type method's default
NOT_ADAPTIVE = ("sgd", "ogda", "extra-sgd")


@dataclass(frozen=True)
class Tolerance:
    rows: tuple[float, float]  # (rtol, atol) of the step records (float32 by design)
    weights: tuple[float, float]  # of the parameters and buffers after the step

    @classmethod
    def of(cls, game: Game) -> Tolerance:
        """The tolerance of one step of ``game`` (a standalone member) against its population."""
        dtype = next(iter(game.g.module.parameters())).dtype
        u = torch.finfo(dtype).eps / 2
        n = reduction_length(game)
        rel = CONDITION * math.sqrt(n) * u
        rows = max(rel, 4 * U32)
        spec = game.config.optimizer
        lr = spec["lr"] * max(1.0, spec["lr_ratio"])
        base = game.config.hparams.get("base", "adam") if spec["name"] == "lookahead" else None
        if spec["name"] in NOT_ADAPTIVE or base in NOT_ADAPTIVE:
            atol = lr * rel
        else:
            atol = lr * min(1 / 8, rel / ADAM_EPS)
        if spec["name"] == "muon":
            widest = max(max(p.shape) for p in game.g.params + game.d.params)
            flip = lr * 0.2 * math.sqrt(widest) * NS_FLIP
            atol += flip
            # D's update reaches G's records of the same step (alternating): the records move
            # by their sensitivity to the weights (O(1) on these nets) times that difference
            rows += flip
        return cls(rows=(rows, rows * 1e-2), weights=(4 * u, atol))


def reduction_length(game: Game) -> int:
    """The longest sum in one step of ``game``: over a layer's inputs (fan-in) in the forward
    pass, over the batch and output positions in its weight gradient; at least the batch."""
    longest = [game.config.batch_size]

    def hook(module, inputs, output):
        if isinstance(module, nn.Linear):
            fan_in, channels = module.in_features, module.out_features
        else:
            fan_in = module.in_channels * math.prod(module.kernel_size) // module.groups
            channels = module.out_channels
        longest.append(max(fan_in, output.numel() // channels))

    layers = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)
    modules = [m for net in (game.g.module, game.d.module) for m in net.modules()]
    handles = [m.register_forward_hook(hook) for m in modules if isinstance(m, layers)]
    try:
        batch = game.workload.sample(game.config.batch_size, torch.Generator().manual_seed(0))
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            fake = game.g.module(batch.z)
            game.d.module(fake)
    finally:
        for h in handles:
            h.remove()
    return max(longest)


@pytest.fixture(scope="module")
def vision_dir(tmp_path_factory):
    """Tiny MNIST and CIFAR-10 files in torchvision's formats, and a stand-in FID weights file
    (nothing here evaluates: only resolve() checks that the file exists)."""
    root = tmp_path_factory.mktemp("vision")
    fake_mnist(root / "data", n_train=40, n_test=4)
    fake_cifar10(root / "data")
    weights = root / INCEPTION_FILENAME
    weights.write_bytes(b"not really inception")
    return {"data_dir": str(root / "data"), "fid_weights": str(weights)}


@pytest.fixture
def cifar_checksums(monkeypatch, vision_dir):
    """torchvision checks CIFAR-10's md5 sums: register those of the fake files."""
    folder = Path(vision_dir["data_dir"]) / CIFAR10.base_folder

    def md5(name):
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    monkeypatch.setattr(CIFAR10, "train_list", [[n, md5(n)] for n, _ in CIFAR10.train_list])
    monkeypatch.setattr(CIFAR10, "test_list", [[n, md5(n)] for n, _ in CIFAR10.test_list])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5(CIFAR10.meta["filename"])})


@pytest.fixture
def float64(monkeypatch):
    """Make a workload build float64 players and sample float64 batches."""

    def apply(workload: str) -> None:
        cls = workloads.get(ALIASES.get(workload, workload))
        build, sample = cls.build_players, cls.sample

        def build_double(self):
            return tuple(m.double() for m in build(self))

        def sample_double(self, batch_size, generator):
            b = sample(self, batch_size, generator)
            return Batch(*(None if t is None else t.double() for t in (b.real, b.z)))

        monkeypatch.setattr(cls, "build_players", build_double)
        monkeypatch.setattr(cls, "sample", sample_double)

    return apply


def _configs(workload, spec, seeds, vision=None, **kw):
    name = ALIASES.get(workload, workload)
    options = {**TINY[workload], **(vision if workload in IMAGE_DATA else {})}
    kw.setdefault("batch_size", 1 if workload == "bilinear" else 16)
    return [resolve(name, spec, device="cpu", seed=s, threads=1, **options, **kw) for s in seeds]


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _close(actual, expected, tolerance: tuple[float, float], what: str) -> None:
    rtol, atol = tolerance
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, check_dtype=False,
                               msg=lambda s: f"{what}: {s}")


def put_members(population: Any, members: list[Any], size: int) -> Any:
    """A population optimizer's ``state_dict`` with every member's state taken from ``members``
    (the standalone optimizers' state dicts): the inverse of :func:`take_members`.

    A tensor stacked over the members gets each member's tensor; a shared one (a step count) must
    be the same in every member; hyperparameters and the population's own keys stay as they are.
    """
    if isinstance(population, torch.Tensor):
        first = members[0]
        if population.ndim and population.shape == (size, *first.shape):
            return torch.stack(members).to(population)
        for m, tensor in enumerate(members):
            assert torch.equal(tensor, first), f"shared optimizer state differs in member {m}"
        return first.clone().to(population.device)
    if isinstance(population, dict):
        return {
            k: put_members(v, [m[k] for m in members], size)
            if k in members[0] and k != "params" else v
            for k, v in population.items()
        }  # fmt: skip
    if isinstance(population, list | tuple):
        items = [put_members(v, [m[i] for m in members], size) for i, v in enumerate(population)]
        return type(population)(items)
    return population


@torch.no_grad()
def force(population: PopulationGame, games: list[Game]) -> None:
    """Teacher forcing: set every member's parameters, buffers and optimizer state to its
    standalone game's, so that the next step of both starts from the same state. (The batches
    need nothing: each member's generator and its game's have drawn the same numbers.)"""
    for side in ("g", "d"):
        mine, theirs = getattr(population, side), [getattr(game, side) for game in games]
        net = mine.net
        for name, stack in {**net.params, **net.buffers}.items():
            stack.copy_(torch.stack([dict(t.module.state_dict())[name] for t in theirs]))
        members = [t.optimizer.state_dict() for t in theirs]
        state = put_members(mine.optimizer.state_dict(), members, population.size)
        mine.optimizer.load_state_dict(state)


def assert_members_are_standalone(configs, steps=STEPS, tol: Tolerance | None = None):
    """Step a population and each member's standalone game from the same state, step by step.

    Each step starts both from the standalone games' state (teacher forcing, :func:`force`), so
    what is compared is one step's arithmetic, never the amplification of earlier rounding by
    the game's dynamics (chaotic: a last-bit difference grows step by step, faster on some CPUs'
    kernels than others'). The records and the stepped parameters and buffers are compared.
    """
    with torch_threads(1):
        population = PopulationGame(configs)
        games = [Game(c) for c in configs]
        tol = tol or Tolerance.of(games[0])
        for i in range(steps):
            force(population, games)
            rows = population.step(i)
            for m, game in enumerate(games):
                _close(rows[m], game.step(i), tol.rows, f"member {m}, step {i + 1}")
            _compare_weights(population, games, tol, f"step {i + 1}")
    assert population.grad_evals == games[0].grad_evals


def _compare_weights(population: PopulationGame, games: list[Game], tol, when: str) -> None:
    for m, game in enumerate(games):
        for mine, theirs in ((population.g.net, game.g.module), (population.d.net, game.d.module)):
            stacked = {**mine.params, **mine.buffers}
            for name, tensor in _state(theirs).items():
                _close(stacked[name][m].detach(), tensor, tol.weights,
                       f"{name} of member {m} after {when}")  # fmt: skip


# -- every registered optimizer on every workload -----------------------------------------------


# Most of the matrix trains in float64 (the float64 fixture), where a step's rounding is far
# below anything the batching could get wrong. That is the test of the batching on nets whose
# float32 step is ill-conditioned (BatchNorm of small batches, ReLU kinks: a rounding difference
# flips a unit and moves a gradient by 1e-3), and of adaptive methods after a projection without
# renorm (surgery's PCGrad, unscaled ⊥Grad): a one-element tensor (D's output bias) is projected
# down to a rounding residue, which in float32 is the size of Adam's eps and becomes a full step;
# in float64 the residue is far below eps. float32 training as it runs is tested where the step
# is well-conditioned (FLOAT32_WORKLOADS).
LARGE = ("digits-conv", "mog-pacgan", "mog-unrolled", "mnist", "cifar10")
"""Workloads whose 20 float64 steps take seconds: each runs the update paths that differ (an
element-wise method, an extrapolation method; Muon's per-member orthogonalisation on conv
kernels), not the whole registry, to keep make test within its budget."""
MATRIX = [(w, n) for w in TINY if w not in LARGE for n in optim.OPTIMIZERS] + [
    (w, n) for w in LARGE for n in ("adam", "extra-sgd")
] + [("digits-conv", "muon")]  # fmt: skip
# Muon's bfloat16 Newton–Schulz takes another kernel on a CPU with AVX-512 BF16 or AMX
MATRIX = [pytest.param(w, n, marks=pytest.mark.numerical) if n == "muon" else (w, n)
          for w, n in MATRIX]  # fmt: skip


@pytest.mark.parametrize(("workload", "name"), MATRIX)
def test_every_member_equals_its_standalone_run_for_every_optimizer_and_workload(
    workload, name, vision_dir, cifar_checksums, float64
):
    float64(workload)
    spec = {"name": name, "lr": 1e-3}
    assert_members_are_standalone(_configs(workload, spec, SEEDS, vision_dir))


FLOAT32_WORKLOADS = ["bilinear", "mog-ring", "seed-mlp"]
"""float32 training as it runs, every optimizer: a game, an MLP GAN and the seed article's (the
float64 matrix above covers every workload; the runner's tests train populations in float32)."""


@pytest.mark.numerical
@pytest.mark.parametrize("workload", FLOAT32_WORKLOADS)
@pytest.mark.parametrize("name", list(optim.OPTIMIZERS))
def test_every_member_equals_its_standalone_run_in_float32(workload, name):
    assert_members_are_standalone(_configs(workload, {"name": name, "lr": 1e-3}, SEEDS))


@pytest.mark.parametrize("workload", list(TINY))
def test_ortho_projects_each_member_against_its_own_weights(
    workload, vision_dir, cifar_checksums, float64
):
    spec = {"name": "adam", "lr": 1e-3, "ortho": "weights"}
    if workload in WITHOUT_BATCHNORM:
        assert_members_are_standalone(_configs(workload, spec, SEEDS))
    float64(workload)
    assert_members_are_standalone(_configs(workload, spec, SEEDS, vision_dir))


@pytest.mark.numerical
@pytest.mark.parametrize("name", ["sgd", "extra-adam", "past-extra-adam", "lookahead", "muon"])
@pytest.mark.parametrize("renorm", [True, False])
def test_ortho_composes_per_member_with_every_kind_of_base(name, renorm, float64):
    spec = {"name": name, "lr": 1e-3, "ortho": "weights", "ortho_renorm": renorm}
    if not renorm:  # the unscaled rule leaves D's one-element output bias a residue: see MATRIX
        float64("mog-ring")
    assert_members_are_standalone(_configs("mog-ring", spec, (0, 1, 2)))


@pytest.mark.parametrize("players", ["g", "d"])
@pytest.mark.parametrize("name", ["adam", "extra-adam", "lookahead"])
def test_ortho_on_one_player_projects_that_players_members_only(name, players):
    spec = {"name": name, "lr": 1e-3, "ortho": "weights", "ortho_players": players}
    assert_members_are_standalone(_configs("mog-ring", spec, SEEDS))
    population = PopulationGame(_configs("mog-ring", spec, (0, 1, 2)))
    population.keep([0, 2])  # rebuilt players keep ⊥Grad where it was, and only there
    chains = {"g": population.g.ortho, "d": population.d.ortho}
    assert chains.pop(players) is not None and next(iter(chains.values())) is None


@pytest.mark.parametrize(
    ("workload", "name"),
    [("mog-ring", name) for name in optim.OPTIMIZERS]
    + [(w, n) for w in ("digits", "digits-conv", "mnist") for n in ("adam", "extra-sgd")],
)
def test_surgery_projects_each_members_real_and_fake_gradients(
    workload, name, vision_dir, float64
):
    float64(workload)
    spec = {"name": name, "lr": 1e-3, "surgery": True}
    assert_members_are_standalone(_configs(workload, spec, SEEDS, vision_dir))


@pytest.mark.numerical
@pytest.mark.parametrize("name", ["sgd", "ogda", "extra-sgd"])
def test_surgery_of_non_adaptive_methods_equals_the_standalone_one_in_float32(name):
    spec = {"name": name, "lr": 1e-2, "surgery": True, "ortho": "weights"}
    assert_members_are_standalone(_configs("mog-ring", spec, SEEDS))


@pytest.mark.numerical
@pytest.mark.parametrize(
    ("spec", "kw"),
    [
        ("adam", {"scheme": "simultaneous"}),
        ("adam", {"d_steps": 3}),
        ("adam", {"r1": 1.0}),
        ("adam", {"loss": "hinge"}),
        ("adam", {"loss": "wasserstein", "r1": 0.5}),
        ("sgd", {"loss": "minimax"}),
        ("extra-adam", {"fresh_batch": True}),
        ({"name": "lookahead", "base": "optimistic-adam", "k": 3}, {"d_steps": 2}),
        ("ttur", {"scheme": "simultaneous"}),
    ],
)
def test_every_scheme_and_loss_runs_per_member(spec, kw):
    assert_members_are_standalone(_configs("mog-ring", spec, (0, 1, 2), **kw))


def test_dcgan_with_r1_keeps_per_member_batch_statistics(vision_dir, float64):
    float64("mnist")
    assert_members_are_standalone(_configs("mnist", "adam", SEEDS, vision_dir, r1=1.0))


# -- the whole run ------------------------------------------------------------------------------

TIMING = ["wall_time", "step_time"]


def _strip(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=[c for c in TIMING if c in df])


@pytest.mark.numerical
@pytest.mark.parametrize(("workload", "options"), [("mog-ring", {"hidden": 16}),
                                                  ("digits", {"arch": "conv"})])  # fmt: skip
def test_population_results_are_the_standalone_results_in_seed_order(workload, options):
    kw = {"steps": 6, "eval_every": 3, "device": "cpu", "batch_size": 16, "threads": 1, **options}
    spec = {"name": "adam", "lr": 1e-3}
    seeds = [3, 0, 5]
    results = ogan.train_population(workload, spec, seeds=seeds, **kw)
    assert len(results) == len(seeds)
    for index, (seed, result) in enumerate(zip(seeds, results)):
        alone = ogan.train(workload, spec, seed=seed, **kw)
        assert result.config == alone.config  # the member's own resolved config, its own seed
        assert list(result.history.columns) == list(alone.history.columns)
        assert list(result.trace.columns) == list(alone.trace.columns)
        # evaluation in eval mode per member: BatchNorm's running statistics are the member's.
        # The class metrics count argmax decisions of 2048 samples: one decision flipped by a
        # rounding difference moves class_kl by ~3e-4.
        pd.testing.assert_frame_equal(_strip(result.history), _strip(alone.history), rtol=1e-3)
        pd.testing.assert_frame_equal(_strip(result.trace), _strip(alone.trace), rtol=1e-4)
        extra = set(result.summary) - set(alone.summary)
        assert extra == {"population", "admission"} and set(alone.summary) <= set(result.summary)
        assert result.summary["population"]["size"] == len(seeds)
        assert result.summary["population"]["member"] == index


def test_member_time_is_its_share_of_the_population_step():
    results = ogan.train_population("mog-ring", "adam", seeds=[0, 1, 2, 3], steps=5, eval_every=5,
                                    device="cpu", batch_size=16, hidden=16, threads=1)  # fmt: skip
    population = results[0].summary["population"]["step_time"]
    for r in results:
        np.testing.assert_allclose(r.trace["step_time"].to_numpy(),
                                   results[0].trace["step_time"].to_numpy())  # fmt: skip
        assert r.summary["time_per_step"] == pytest.approx(population / 4)
        assert r.summary["wall_time"] == pytest.approx(r.trace["step_time"].sum())


def poison(monkeypatch, seed: int, after: int) -> None:
    """After its first ``after`` batches, one seed's real data is NaN (found by its generator)."""
    target = stream_seeds(seed)[1]
    calls = {"n": 0}
    sample = MoGRing.sample

    def poisoned(self, batch_size, generator):
        batch = sample(self, batch_size, generator)
        if generator.initial_seed() == target:
            calls["n"] += 1
            if calls["n"] > after:
                batch.real.fill_(math.nan)
        return batch

    monkeypatch.setattr(MoGRing, "sample", poisoned)


def test_a_diverging_member_stops_alone_and_the_others_do_not_change(monkeypatch):
    kw = {"steps": 12, "eval_every": 4, "device": "cpu", "batch_size": 16, "hidden": 16,
          "threads": 1}  # fmt: skip
    spec = {"name": "adam", "lr": 1e-3, "ortho": "weights"}
    clean = ogan.train_population("mog-ring", spec, seeds=[0, 1, 2], **kw)
    poison(monkeypatch, seed=1, after=6)  # alternating: one D batch, one G batch a step
    poisoned = ogan.train_population("mog-ring", spec, seeds=[0, 1, 2], **kw)
    monkeypatch.undo()
    poison(monkeypatch, seed=1, after=6)
    alone = ogan.train("mog-ring", spec, seed=1, **kw)

    sick = poisoned[1].summary
    assert sick["diverged_at"] == 4 and sick["steps_completed"] == 4  # its 7th batch: step 4
    assert list(poisoned[1].history["step"]) == [0, 4]  # its final evaluation, at divergence
    assert np.isnan(poisoned[1].trace["loss_d"].iloc[-1])
    assert alone.summary["diverged_at"] == 4  # what the standalone run does with the same data
    pd.testing.assert_frame_equal(_strip(poisoned[1].history), _strip(alone.history), rtol=1e-4)
    for m in (0, 2):  # the others: the same numbers
        assert poisoned[m].summary["diverged_at"] is None
        pd.testing.assert_frame_equal(_strip(poisoned[m].trace), _strip(clean[m].trace))
        pd.testing.assert_frame_equal(_strip(poisoned[m].history), _strip(clean[m].history))


def test_a_member_leaving_the_population_keeps_the_others_optimizer_state():
    for name in ("adam", "lookahead", "extra-adam", "muon"):
        configs = _configs("mog-ring", {"name": name, "lr": 1e-3, "ortho": "weights"}, (0, 1, 2))
        full, part = PopulationGame(configs), PopulationGame(configs)
        for i in range(3):
            full.step(i)
            part.step(i)
        part.keep([0, 2])  # as when member 1 diverges
        for i in range(3, 8):
            expected, got = full.step(i), part.step(i)
            torch.testing.assert_close(got, expected[[0, 2]], rtol=1e-6, atol=1e-7)
        assert part.size == 2 and part.g.optimizer.param_groups[0]["members"] == 2


def test_long_runs_agree_with_standalone_runs_in_distribution_over_seeds():
    # GAN dynamics are chaotic: after 300 steps at this lr most seeds' two runs (population and
    # standalone, which differ only in the order of float sums) have separated, so they are
    # compared as two samples of final distances, not pair by pair.
    kw = {"steps": 300, "eval_every": 300, "device": "cpu", "batch_size": 16, "hidden": 16,
          "threads": 1}  # fmt: skip
    spec = {"name": "adam", "lr": 2e-2, "betas": [0.5, 0.999]}
    seeds = list(range(8))
    results = ogan.train_population("mog-ring", spec, seeds=seeds, **kw)
    population = np.array([r.summary["final_fd"] for r in results])
    alone = np.array([ogan.train("mog-ring", spec, seed=s, **kw).summary["final_fd"]
                      for s in seeds])  # fmt: skip
    assert (np.abs(population - alone) > 1e-2 * alone).sum() >= len(seeds) // 2  # separated
    assert scipy.stats.ks_2samp(population, alone).pvalue > 0.05
    assert scipy.stats.mannwhitneyu(population, alone).pvalue > 0.05


def test_train_population_resolves_its_optimizer_name_once(optimizer_resolutions):
    # an lr no other test uses: the admission check runs here, not from the process's cache
    spec = {"name": "lookahead", "base": "adam", "lr": 1.25e-3, "ortho": "weights"}
    results = ogan.train_population("mog-ring", spec, seeds=[0, 1, 2], steps=2, eval_every=2,
                                    device="cpu", hidden=8, batch_size=8, threads=1)  # fmt: skip
    assert optimizer_resolutions == {"lookahead": 1, "adam": 1}  # 16 and 30 before (3 seeds)
    assert [r.config["seed"] for r in results] == [0, 1, 2]
    assert all(r.summary["steps_completed"] == 2 for r in results)


def test_train_population_records_its_admission_as_bench_run_stores_it():
    spec = {"name": "adam", "lr": 1e-3}
    results = ogan.train_population("mog-ring", spec, seeds=[0, 1], steps=2, eval_every=2,
                                    device="cpu", hidden=8, batch_size=8, threads=1)  # fmt: skip
    stored = optim.admit("adam", spec).to_dict()  # what bench run writes into every run
    assert stored["admitted"] is True and stored["max_difference"] <= 1e-6
    assert stored["reason"].startswith("every member's update equals its standalone run's")
    assert [r.summary["admission"] for r in results] == [stored, stored]
    assert results[0].summary["admission"] is not results[1].summary["admission"]  # own copies


def test_a_population_needs_seeds():
    with pytest.raises(ConfigError, match="seeds"):
        ogan.train_population("mog-ring", "adam", seeds=[])
