"""Populations of your own GAN and optimizer: which optimizers may train a population, and a
user's workload, optimizer and schedule-free modes through one, member by member."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from schedulefree import AdamWScheduleFree

import ogan
from ogan import optim
from ogan.errors import ConfigError
from ogan.game import Game, resolve
from ogan.game.population import PopulationGame
from ogan.optim.wrappers import GradNormProbe

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
KW = {"steps": 6, "eval_every": 3, "device": "cpu", "hidden": 8, "batch_size": 16, "threads": 1}
TIMING = ["wall_time", "step_time"]


@pytest.fixture
def moons(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import moons

    return moons


class ElementwiseScheduleFree(AdamWScheduleFree):
    """schedule-free AdamW, declared element-wise (its update is; it divides .grad in place)."""

    elementwise = True


class NormScaled(torch.optim.SGD):
    """SGD whose step is scaled by each tensor's gradient norm: it would mix members."""

    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.div_(p.grad.norm().clamp_min(1e-12))
        return super().step(closure)


@pytest.mark.parametrize(
    ("name", "hparams", "expected"),
    [
        *[(name, None, True) for name in optim.OPTIMIZERS],
        ("torch.optim:RAdam", None, True),
        ("torch.optim:AdamW", None, True),
        ("torch.optim:Adafactor", None, False),  # per-tensor RMS and factored moments
        ("torch.optim:Muon", None, False),  # one orthogonalisation per tensor
        ("lookahead", {"base": "torch.optim:RAdam"}, True),
        ("lookahead", {"base": "torch.optim:Adafactor"}, False),
        (ElementwiseScheduleFree, None, True),
        (AdamWScheduleFree, None, False),  # element-wise, but it does not say so
        (NormScaled, None, False),  # a subclass of an element-wise class is not trusted
    ],
)
def test_only_optimizers_known_to_act_per_member_train_populations(name, hparams, expected):
    assert optim.acts_per_member(name, hparams) is expected


def test_a_population_refuses_an_optimizer_that_may_mix_members():
    with pytest.raises(ConfigError, match=r"--population 1.*elementwise = True"):
        ogan.train_population("mog-ring", {"name": NormScaled, "lr": 1e-2}, seeds=[0, 1], **KW)


def _same(population, alone, rtol=1e-4):
    for a, b in zip(population, alone):
        assert a.config == b.config
        for frame in ("history", "trace"):
            x, y = getattr(a, frame), getattr(b, frame)
            pd.testing.assert_frame_equal(x.drop(columns=[c for c in TIMING if c in x]),
                                          y.drop(columns=[c for c in TIMING if c in y]),
                                          rtol=rtol, atol=1e-6)  # fmt: skip


def test_schedule_free_members_are_their_standalone_runs_with_eval_mode_and_the_probe():
    # the probe records each member's gradient before schedule-free rewrites .grad; evaluation
    # switches every member to its averaged iterate (and back)
    spec = {"name": ElementwiseScheduleFree, "lr": 1e-2}
    seeds = [2, 0, 1]
    population = ogan.train_population("mog-ring", spec, seeds=seeds, **KW)
    _same(population, [ogan.train("mog-ring", spec, seed=s, **KW) for s in seeds])
    game = PopulationGame([resolve("mog-ring", spec, seed=s, **KW) for s in seeds])
    assert isinstance(game.g.optimizer, GradNormProbe)
    game.step(0)
    assert game.g.probe.last_norms.shape == (len(seeds) * len(game.g.params),)


def test_a_users_workload_and_import_path_optimizer_train_as_a_population(moons):
    spec = {"name": "torch.optim:RAdam", "lr": 1e-2, "ortho": "weights"}
    seeds = [0, 1, 2]
    population = ogan.train_population(moons.TwoMoons, spec, seeds=seeds, **KW)
    _same(population, [ogan.train(moons.TwoMoons, spec, seed=s, **KW) for s in seeds])
    assert population[0].config["sources"] == ogan.train(moons.TwoMoons, spec, **KW).config[
        "sources"
    ]


def test_a_parameter_no_loss_reaches_stays_untouched_in_every_member(moons):
    from test_byo import _with_unused_parameters

    spare_cls = _with_unused_parameters(moons)
    for spec in ({"name": "adam", "lr": 1e-2, "surgery": True, "weight_decay": 0.1},
                 {"name": "adam", "lr": 1e-2, "ortho": "weights"}):  # fmt: skip
        configs = [resolve(spare_cls, spec, seed=s, device="cpu", hidden=8, batch_size=16)
                   for s in (0, 1)]  # fmt: skip
        population, games = PopulationGame(configs), [Game(c) for c in configs]
        before = {k: v.detach().clone() for k, v in population.d.net.params.items()}
        for i in range(2):
            rows = population.step(i)
            for m, game in enumerate(games):
                torch.testing.assert_close(rows[m], game.step(i), rtol=1e-4, atol=1e-6)
        for name in ("spare.weight", "spare.bias"):
            assert torch.equal(population.d.net.params[name], before[name])
            assert population.d.net.params[name].grad is None
