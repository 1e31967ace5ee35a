"""Populations of your own GAN and optimizer: which optimizers may train a population, and a
user's workload, optimizer and schedule-free modes through one, member by member."""

from __future__ import annotations

import re
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


class DeclaredNormScaled(NormScaled):
    """Says it is element-wise, and is not: the measurement wins, with an error."""

    elementwise = True


@pytest.mark.parametrize(
    ("name", "hparams", "expected"),
    [
        *[(name, None, True) for name in optim.OPTIMIZERS],
        ("torch.optim:RAdam", None, True),
        ("torch.optim:AdamW", None, True),
        ("torch.optim:Adafactor", None, False),  # per-tensor RMS and factored moments
        ("lookahead", {"base": "torch.optim:RAdam"}, True),
        ("lookahead", {"base": "torch.optim:Adafactor"}, False),
        ("adam", {"ortho": "weights"}, True),  # ⊥Grad projects each member's slice
        (ElementwiseScheduleFree, None, True),
        (AdamWScheduleFree, None, True),  # element-wise: measured, no declaration needed
        (NormScaled, None, False),  # a subclass of an element-wise class is measured too
    ],
)
def test_populations_admit_exactly_the_optimizers_that_pass_the_member_check(
    name, hparams, expected
):
    admission = optim.admit(name, hparams)
    assert admission.admitted is expected
    assert optim.acts_per_member(name, hparams) is expected
    if expected and name == "muon":  # bfloat16 Newton-Schulz: a population of one differs too
        assert 1e-6 < admission.max_difference < 1e-3
        assert re.fullmatch(r"every member's update equals its standalone run's to \S+, within "
                            r"10x what a population of one differs by \(\S+\) \(closest at "
                            r"lr=\S+\)", admission.reason)
    elif expected:
        assert admission.max_difference <= 1e-6
        assert admission.reason.startswith("every member's update equals its standalone run's")
    else:
        assert admission.max_difference > 1e-6
        assert re.fullmatch(r"at lr=\S+, member \d's update differs from the same optimizer's on "
                            r"it alone by \S+ of its size \(tensor of shape .*\)", admission.reason)


def test_the_member_check_runs_once_per_optimizer_spec(monkeypatch):
    calls = []
    real = optim.check
    monkeypatch.setattr(optim, "check", lambda build: calls.append(1) or real(build))
    spec = {"lr": 3.25e-3, "betas": (0.5, 0.9)}
    first = optim.admit("torch.optim:NAdam", spec)
    assert optim.admit("torch.optim:NAdam", dict(spec)) is first
    assert len(calls) == 3  # the spec's lr and the two trial lrs, once
    optim.admit("torch.optim:NAdam", {**spec, "lr": 2.5e-3})
    assert len(calls) == 6  # another spec: checked again


def test_an_optimizer_that_cannot_take_a_players_tensors_is_an_error():
    with pytest.raises(ConfigError, match=r"^optimizer 'torch.optim:Muon' fails a trial step: "
                       r"ValueError: Muon only supports 2D parameters"):  # fmt: skip
        optim.admit("torch.optim:Muon")


def test_a_declared_elementwise_optimizer_that_mixes_members_is_an_error():
    with pytest.raises(ConfigError, match=r"declares elementwise = True, but at lr=\S+, "
                       r"member \d's update differs .* by \S+ of its size.*remove the "
                       r"attribute"):  # fmt: skip
        optim.admit(DeclaredNormScaled, {"lr": 1e-2})


def test_a_population_refuses_an_optimizer_that_mixes_members():
    with pytest.raises(ConfigError, match=r"cannot train a population: at lr=0.01, member \d's "
                       r"update differs.*bench run --population 1"):  # fmt: skip
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
