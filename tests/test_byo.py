"""Bring your own GAN and optimizer: import paths, objects, entry points, modes, provenance."""

from __future__ import annotations

import hashlib
import importlib.metadata
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import torch
from torch import nn

import ogan
from ogan import optim
from ogan.errors import ConfigError
from ogan.game import Game
from ogan.game.config import resolve
from ogan.optim.wrappers import GradNormProbe, Lookahead, Ortho
from ogan.registry import resolve_name

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TINY = {"steps": 4, "eval_every": 2, "device": "cpu", "hidden": 8, "batch_size": 16}


@pytest.fixture
def moons(monkeypatch):
    """The example's workload module, importable as ``moons``."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import moons

    return moons


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Writes a module under a fresh name into a directory on sys.path; returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(source: str) -> str:
        name = f"user_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.delitem(sys.modules, name, raising=False)
        return name

    return write


def test_an_import_path_workload_and_optimizer_train_and_the_class_itself_is_the_same_run(moons):
    by_path = ogan.train("moons:TwoMoons", {"name": "torch.optim:RAdam", "lr": 1e-3}, **TINY)
    by_object = ogan.train(moons.TwoMoons, {"name": torch.optim.RAdam, "lr": 1e-3}, **TINY)
    assert list(by_path.history["step"]) == [0, 2, 4]
    assert by_path.history["swd"].notna().all()
    cols = ["swd", "grad_norm_g", "grad_norm_d", "loss_d"]
    assert by_path.history[cols].equals(by_object.history[cols])  # same code, same numbers
    assert by_path.config["workload"] == "moons:TwoMoons"
    assert by_object.config["workload"] == "moons:TwoMoons"
    assert by_object.config["optimizer"]["name"] == "torch.optim.radam:RAdam"


def test_user_objects_compose_with_ortho_surgery_lookahead_and_lr_ratio(moons):
    spec = {"name": "lookahead", "base": "torch.optim:RAdam", "lr": 1e-3, "lr_ratio": 4,
            "ortho": "weights", "surgery": True, "k": 2, "betas": [0.5, 0.9]}  # fmt: skip
    game = Game(resolve("moons:TwoMoons", spec, device="cpu", hidden=8))
    for player, lr in ((game.g, 1e-3), (game.d, 4e-3)):
        assert isinstance(player.optimizer, Ortho)
        inner = player.optimizer.base
        assert isinstance(inner, Lookahead) and isinstance(inner.base, torch.optim.RAdam)
        assert inner.base.param_groups[0]["lr"] == pytest.approx(lr)
        assert inner.base.param_groups[0]["betas"] == (0.5, 0.9)
    result = ogan.train("moons:TwoMoons", spec, **TINY)
    assert (result.trace["removed_frac_d"] > 0).all()  # surgery, then ⊥Grad, both remove
    assert (result.trace["removed_frac_g"] > 0).all()  # ⊥Grad on G
    assert result.summary["diverged_at"] is None


def test_a_factory_takes_the_hyperparameters_of_its_signature_and_unknown_keys_list_them(
    user_module,
):
    name = user_module(
        """
        import torch

        def sgd_with_nesterov(params, lr=0.01, momentum=0.9, *, dampening=0.0):
            "SGD with Nesterov momentum, as a factory."
            return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True)
        """
    )
    path = f"{name}:sgd_with_nesterov"
    assert optim.hyperparameters(path) == ("lr", "momentum", "dampening", "ortho", "ortho_renorm")
    assert resolve_name("optimizer", path).description.startswith("SGD with Nesterov momentum")
    opt = optim.build(path, [torch.zeros(2, requires_grad=True)], lr=0.5, momentum=0.5)
    assert opt.param_groups[0]["nesterov"] and opt.param_groups[0]["momentum"] == 0.5
    with pytest.raises(ConfigError, match=r"Unknown hyperparameter\(s\) beta .* valid: lr, moment"):
        optim.build(path, [torch.zeros(2, requires_grad=True)], beta=0.9)
    assert resolve("bilinear", path, device="cpu").optimizer["lr"] == 0.01  # its own default
    with pytest.raises(ConfigError, match="Unknown key"):
        resolve("bilinear", {"name": path, "lr": 0.1, "betas": [0.5, 0.9]}, device="cpu")


@pytest.mark.parametrize(
    ("kind", "name", "source", "message"),
    [
        ("workload", "no_such_module_xyz:GAN", None, "cannot import module 'no_such_module_xyz'"),
        ("optimizer", "{mod}:Missing", "X = 1\n", "has no attribute 'Missing'"),
        ("workload", "{mod}:X", "X = 1\n", "is an int, not a subclass of ogan.workloads.Workload"),
        ("workload", "{mod}", "X = 1\n", "Unknown workload .*, or an import path 'package.mod"),
        ("workload", "{mod}:1x", "X = 1\n", "not an import path; write 'package.module:Attr"),
        ("optimizer", "{mod}:C", "class C: pass\n", "not a torch.optim.Optimizer subclass"),
        ("optimizer", "{mod}:f", "def f(params, lr=1.0): return 3\n", "returned int"),
        ("optimizer", "{mod}:f", "def f(params, momentum=1.0): pass\n", "has no lr argument"),
        ("optimizer", "{mod}:X", "X = 1\n", "is an int; name a torch.optim.Optimizer subclass"),
        ("workload", "{mod}:W", "raise RuntimeError('boom')\n", "failed: RuntimeError: boom"),
        ("workload", "{mod}:W", "import missing_dep_xyz\n", "it imports 'missing_dep_xyz'"),
        (
            "workload",
            "{mod}:W",
            "from ogan.workloads import Workload\nclass W(Workload):\n    pass\n",
            "does not implement build_players, evaluate, sample",
        ),
    ],
)
def test_a_bad_import_path_is_one_config_error_naming_the_problem_and_fix(
    user_module, kind, name, source, message
):
    if source is not None:
        name = name.format(mod=user_module(source))
    optimizer = {"name": name, "lr": 0.1} if kind == "optimizer" else "adam"
    workload = name if kind == "workload" else "bilinear"
    with pytest.raises(ConfigError, match=message) as info:
        resolve(workload, optimizer, device="cpu")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "schedulefree:AdamWScheduleFree", "lr": 1e-2},
        {"name": "schedulefree:AdamWScheduleFree", "lr": 1e-2, "ortho": "weights"},
        {"name": "lookahead", "base": "schedulefree:SGDScheduleFree", "lr": 1e-2},
    ],
)
def test_schedule_free_is_in_train_mode_for_steps_and_eval_mode_for_evaluation(spec):
    game = Game(resolve("mog-ring", spec, device="cpu", hidden=8, batch_size=16))
    for i in range(3):
        game.step(i)  # schedule-free refuses to step in eval mode

    def modes() -> list[bool]:
        optimizers = [game.g.optimizer, game.d.optimizer]
        return [g["train_mode"] for o in optimizers for g in o.param_groups]

    assert modes() == [True, True]
    training_point = [p.detach().clone() for p in game.g.params]
    seen = {}

    def evaluate(G, D, generator):
        seen["modes"] = modes()
        seen["params"] = [p.detach().clone() for p in G.parameters()]
        return {m: 0.0 for m in game.workload.metrics}

    game.workload.evaluate = evaluate
    game.evaluate()
    assert seen["modes"] == [False, False]
    # evaluated at the averaged iterate x, not at the training point y
    assert any(not torch.equal(a, b) for a, b in zip(seen["params"], training_point))
    assert modes() == [True, True]  # and back, at the training point again
    for a, b in zip(game.g.params, training_point):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_eval_mode_weights_are_schedule_frees_own_averaged_iterate():
    game = Game(resolve("mog-ring", {"name": "schedulefree:AdamWScheduleFree", "lr": 1e-2},
                         device="cpu", hidden=8, batch_size=16))  # fmt: skip
    for i in range(3):
        game.step(i)
    beta1 = game.g.optimizer.param_groups[0]["betas"][0]
    state = game.g.optimizer.base.state
    # schedule-free's x from its training point y and its z (Defazio et al. 2024, eq. 1)
    expected = [p.detach().lerp(state[p]["z"], 1 - 1 / beta1) for p in game.g.params]
    captured: list[torch.Tensor] = []

    def capture(G, D, generator):
        captured.extend(p.detach().clone() for p in G.parameters())
        return {m: 0.0 for m in game.workload.metrics}

    game.workload.evaluate = capture
    game.evaluate()
    assert len(captured) == len(expected)
    for got, want in zip(captured, expected):
        torch.testing.assert_close(got, want)


def test_gradient_statistics_of_an_optimizer_that_writes_grad_are_the_gradients_it_used():
    # D's first update sees the same gradient whatever the optimizer (same init, same batch);
    # schedule-free AdamW divides .grad in place, so reading .grad after its step would differ
    common = {"steps": 2, "eval_every": 2, "device": "cpu", "hidden": 8, "batch_size": 16}
    adam = ogan.train("mog-ring", {"name": "adam", "lr": 1e-2}, **common)
    free = ogan.train("mog-ring", {"name": "schedulefree:AdamWScheduleFree", "lr": 1e-2}, **common)
    for column in ("grad_norm_d", "layer_min_d", "layer_max_d"):
        assert free.trace[column].iloc[0] == pytest.approx(adam.trace[column].iloc[0], rel=1e-6)
    game = Game(resolve("mog-ring", "schedulefree:AdamWScheduleFree", device="cpu", hidden=8))
    assert isinstance(game.g.optimizer, GradNormProbe)
    assert not isinstance(Game(resolve("mog-ring", "adam", device="cpu")).g.optimizer,
                          GradNormProbe)  # fmt: skip


class _Unused(nn.Module):
    """A player with a parameter that no loss reaches."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.spare = nn.Linear(3, 3)  # built last: the used layers' initialisation is unchanged

    def forward(self, x):
        return self.inner(x)


def _with_unused_parameters(moons):
    class SpareParams(moons.TwoMoons):
        def build_players(self):
            G, D = super().build_players()
            return _Unused(G), _Unused(D)

    return SpareParams


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "adam", "lr": 1e-2},
        {"name": "adam", "lr": 1e-2, "ortho": "weights"},
        {"name": "adam", "lr": 1e-2, "surgery": True, "weight_decay": 0.1},
        {"name": "schedulefree:AdamWScheduleFree", "lr": 1e-2},
        {"name": "extra-adam", "lr": 1e-2, "ortho": "weights"},
    ],
)
def test_a_parameter_without_gradient_is_skipped_and_left_out_of_the_statistics(moons, spec):
    kw = {"steps": 3, "eval_every": 3, "device": "cpu", "hidden": 8, "batch_size": 16}
    plain = ogan.train(moons.TwoMoons, spec, **kw)
    spare_cls = _with_unused_parameters(moons)
    spare = ogan.train(spare_cls, spec, **kw)
    # the same training: the unused parameters change nothing, and are left out of the norms
    cols = ["grad_norm_g", "grad_norm_d", "layer_min_g", "layer_min_d", "layer_max_d", "loss_d"]
    for col in cols:
        torch.testing.assert_close(
            torch.tensor(spare.trace[col].to_numpy()), torch.tensor(plain.trace[col].to_numpy())
        )
    assert spare.history["swd"].equals(plain.history["swd"])
    game = Game(resolve(spare_cls, spec, device="cpu", hidden=8, batch_size=16))
    before = [p.detach().clone() for p in game.d.module.spare.parameters()]
    for i in range(2):
        game.step(i)
    for a, b in zip(game.d.module.spare.parameters(), before):  # skipped, as torch.optim does
        assert torch.equal(a, b) and a.grad is None


def test_the_record_says_where_each_names_code_came_from(user_module, moons):
    name = user_module("from moons import TwoMoons as Moons\n")
    result = ogan.train(f"{name}:Moons", {"name": "schedulefree:AdamWScheduleFree"}, **TINY)
    sources = result.config["sources"]
    workload = sources["workload"]
    assert workload["via"] == "import path" and workload["distribution"] is None
    digest = hashlib.sha256(Path(moons.__file__).read_bytes()).hexdigest()
    assert workload["target"] == f"{name}:Moons" and workload["sha256"] == digest
    assert workload["file"] == moons.__file__  # the file that defines the class
    opt = sources["optimizer"]
    assert (opt["distribution"], opt["version"]) == (
        "schedulefree",
        importlib.metadata.version("schedulefree"),
    )
    lookahead = ogan.train("bilinear", {"name": "lookahead", "base": "torch.optim:RAdam"},
                           steps=2, eval_every=2, device="cpu").config["sources"]  # fmt: skip
    assert lookahead["optimizer"]["via"] == "registered"
    assert lookahead["optimizer"]["distribution"] == "ogan"
    assert lookahead["optimizer.base"]["target"] == "torch.optim:RAdam"
    assert lookahead["optimizer.base"]["version"] == importlib.metadata.version("torch")
