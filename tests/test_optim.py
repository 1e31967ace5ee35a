"""Every optimizer against its exact update rule, computed independently here in float64 numpy."""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import pytest
import torch

from ogan import optim
from ogan.errors import ConfigError
from ogan.optim import (
    OGDA,
    ExtraAdam,
    ExtraSGD,
    Lookahead,
    MuonWithAdam,
    OptimisticAdam,
    Ortho,
    PastExtraAdam,
    common,
)
from ogan.projection import orthogonalize_

pytestmark = pytest.mark.numerical  # update rules vs float64 references: emulate_cpus.py

STEPS = 6
RNG = np.random.default_rng(0)
A = RNG.normal(size=(5, 5))  # a non-symmetric linear field: F(w) = A w + b
B = RNG.normal(size=5)
W0 = RNG.normal(size=5)


def field(w: np.ndarray) -> np.ndarray:
    return A @ w + B


def _param() -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor(W0, dtype=torch.float64))


def _set_grad(p: torch.Tensor) -> None:
    p.grad = torch.tensor(field(p.detach().numpy()), dtype=torch.float64)


def _run(opt: torch.optim.Optimizer, p: torch.Tensor, steps: int = STEPS) -> np.ndarray:
    """Drive ``opt`` on F with the game protocol (extrapolate, then step, when it extrapolates)."""
    trajectory = []
    for _ in range(steps):
        kind = getattr(opt, "extrapolation", None)
        if kind == "extragradient":
            _set_grad(p)
        if kind is not None:
            opt.extrapolate()
        _set_grad(p)
        opt.step()
        trajectory.append(p.detach().numpy().copy())
    return np.array(trajectory)


def _adam(w, m, v, t, g, lr, b1=0.9, b2=0.999, eps=1e-8):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    d = (m / (1 - b1**t)) / (np.sqrt(v) / np.sqrt(1 - b2**t) + eps)
    return w - lr * d, m, v, d


def expected_sgd(lr):
    w, out = W0.copy(), []
    for _ in range(STEPS):
        w = w - lr * field(w)
        out.append(w)
    return np.array(out)


def expected_adam(lr):
    w, m, v, out = W0.copy(), 0 * W0, 0 * W0, []
    for t in range(1, STEPS + 1):
        w, m, v, _ = _adam(w, m, v, t, field(w), lr)
        out.append(w)
    return np.array(out)


def expected_ogda(lr):
    w, prev, out = W0.copy(), 0 * W0, []
    for _ in range(STEPS):
        g = field(w)
        w = w - 2 * lr * g + lr * prev
        prev = g
        out.append(w)
    return np.array(out)


def expected_optimistic_adam(lr):
    w, m, v, prev, out = W0.copy(), 0 * W0, 0 * W0, 0 * W0, []
    for t in range(1, STEPS + 1):
        _, m, v, d = _adam(w, m, v, t, field(w), lr)
        w = w - 2 * lr * d + lr * prev
        prev = d
        out.append(w)
    return np.array(out)


def expected_extra_sgd(lr):
    w, out = W0.copy(), []
    for _ in range(STEPS):
        half = w - lr * field(w)
        w = w - lr * field(half)
        out.append(w)
    return np.array(out)


def expected_extra_adam(lr):
    w, m, v, t, out = W0.copy(), 0 * W0, 0 * W0, 0, []
    for _ in range(STEPS):
        t += 1
        half, m, v, _ = _adam(w, m, v, t, field(w), lr)
        t += 1  # the moments and the step counter advance at both half-steps
        w, m, v, _ = _adam(w, m, v, t, field(half), lr)
        out.append(w)
    return np.array(out)


def expected_past_extra_adam(lr):
    w, m, v, out = W0.copy(), 0 * W0, 0 * W0, []
    for t in range(STEPS):
        half = w
        if t > 0:
            half = w - lr * (m / (1 - 0.9**t)) / (np.sqrt(v) / np.sqrt(1 - 0.999**t) + 1e-8)
        w, m, v, _ = _adam(w, m, v, t + 1, field(half), lr)
        out.append(w)
    return np.array(out)


def expected_lookahead_sgd(lr, k=3, alpha=0.5):
    w, slow, out = W0.copy(), W0.copy(), []
    for i in range(1, STEPS + 1):
        w = w - lr * field(w)
        if i % k == 0:
            slow = slow + alpha * (w - slow)
            w = slow.copy()
        out.append(w)
    return np.array(out)


RULES = {
    "sgd": (lambda p: torch.optim.SGD([p], lr=0.05), lambda: expected_sgd(0.05)),
    "adam": (lambda p: torch.optim.Adam([p], lr=0.05), lambda: expected_adam(0.05)),
    "ogda": (lambda p: OGDA([p], lr=0.05), lambda: expected_ogda(0.05)),
    "optimistic-adam": (
        lambda p: OptimisticAdam([p], lr=0.05),
        lambda: expected_optimistic_adam(0.05),
    ),
    "extra-sgd": (lambda p: ExtraSGD([p], lr=0.05), lambda: expected_extra_sgd(0.05)),
    "extra-adam": (lambda p: ExtraAdam([p], lr=0.05), lambda: expected_extra_adam(0.05)),
    "past-extra-adam": (
        lambda p: PastExtraAdam([p], lr=0.05),
        lambda: expected_past_extra_adam(0.05),
    ),
    "lookahead": (
        lambda p: Lookahead(torch.optim.SGD([p], lr=0.05), k=3, alpha=0.5),
        lambda: expected_lookahead_sgd(0.05),
    ),
}


@pytest.mark.parametrize("name", RULES)
def test_optimizer_follows_its_exact_update_rule(name):
    make, expected = RULES[name]
    p = _param()
    got = _run(make(p), p)
    np.testing.assert_allclose(got, expected(), rtol=1e-12, atol=1e-12)


def test_lookahead_driven_by_the_game_synchronises_only_when_told():
    p = _param()
    opt = Lookahead(torch.optim.SGD([p], lr=0.05), k=3, auto_sync=False)
    got = []
    for i in range(1, STEPS + 1):
        _set_grad(p)
        opt.step()
        if i % 3 == 0:
            opt.sync()
        got.append(p.detach().numpy().copy())
    np.testing.assert_allclose(np.array(got), expected_lookahead_sgd(0.05), rtol=1e-12, atol=1e-12)


def test_ortho_adam_with_projection_off_equals_torch_adam_bit_for_bit():
    torch.manual_seed(0)
    a = torch.nn.Linear(7, 5)
    b = copy.deepcopy(a)
    opt_a = Ortho(torch.optim.Adam(a.parameters(), lr=1e-2), enabled=False)
    opt_b = torch.optim.Adam(b.parameters(), lr=1e-2)
    x = torch.randn(16, 7)
    for _ in range(STEPS):
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_ortho_adam_is_adam_on_projected_gradients():
    torch.manual_seed(1)
    a = torch.nn.Linear(7, 5)
    b = copy.deepcopy(a)
    opt_a = Ortho(torch.optim.Adam(a.parameters(), lr=1e-2))
    opt_b = torch.optim.Adam(b.parameters(), lr=1e-2)
    x = torch.randn(16, 7)
    for _ in range(STEPS):
        for model in (a, b):
            model.zero_grad()
            model(x).sub(1).pow(2).mean().backward()
        params = list(b.parameters())
        with torch.no_grad():
            orthogonalize_([p.grad for p in params], params, impl="reference")
        opt_a.step()
        opt_b.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def test_ortho_step_leaves_projected_gradients_orthogonal_with_original_norm():
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    opt = Ortho(torch.optim.SGD(model.parameters(), lr=0.0))  # lr 0: weights stay the references
    model(torch.randn(10, 6)).pow(2).sum().backward()
    norms = [p.grad.norm().item() for p in model.parameters()]
    opt.step()
    for p, n in zip(model.parameters(), norms):
        if p.numel() > 1:
            assert abs(torch.dot(p.grad.flatten(), p.detach().flatten())) <= 1e-5 * n * p.norm()
            assert p.grad.norm().item() == pytest.approx(n, rel=1e-5)


def test_ortho_unscaled_rule_option():
    p = torch.nn.Parameter(torch.tensor([1.0, 0.0]))
    p.grad = torch.tensor([1.0, 1.0])
    Ortho(torch.optim.SGD([p], lr=1.0), renorm=False).step()
    torch.testing.assert_close(p.detach(), torch.tensor([1.0, -1.0]))  # g' = (0, 1)
    q = torch.nn.Parameter(torch.tensor([1.0, 0.0]))
    q.grad = torch.tensor([1.0, 1.0])
    Ortho(torch.optim.SGD([q], lr=1.0)).step()
    torch.testing.assert_close(q.detach(), torch.tensor([1.0, -(2**0.5)]))  # rescaled to ||g||


@pytest.mark.parametrize("wrap", [lambda o: Ortho(o), lambda o: Ortho(Lookahead(o, k=5))])
def test_ortho_around_extragradient_projects_the_update_against_the_original_point(wrap):
    w0 = np.array([1.0, 0.0])
    p = torch.nn.Parameter(torch.tensor(w0))
    opt = wrap(ExtraSGD([p], lr=0.5))

    def perp(g, w):  # ⊥Grad by hand: remove the component along w, restore the norm
        gp = g - (g @ w) / (w @ w) * w
        return gp * np.linalg.norm(g) / np.linalg.norm(gp)

    g0, g1 = np.array([1.0, 1.0]), np.array([2.0, -1.0])
    p.grad = torch.tensor(g0)
    opt.extrapolate()
    w_half = w0 - 0.5 * perp(g0, w0)
    np.testing.assert_allclose(p.detach().numpy(), w_half)
    p.grad = torch.tensor(g1)
    opt.step()
    # the update starts from w0, so g1 is projected against w0 (against w_half it would differ)
    np.testing.assert_allclose(p.detach().numpy(), w0 - 0.5 * perp(g1, w0))
    assert not np.allclose(perp(g1, w0), perp(g1, w_half))


# -- torch.optim conventions ------------------------------------------------------------------

NAMES = list(optim.OPTIMIZERS)


def _model() -> torch.nn.Module:
    torch.manual_seed(5)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))


def drive(opt, model, steps, x, guard=contextlib.nullcontext):
    """``steps`` of the game-free protocol on ``model``'s squared output: the extragradient
    methods' extrapolation (at a fresh gradient for extragradient), then the update; ``guard`` is
    entered around every optimizer call (tests/test_capturable.py forbids host reads there)."""
    for _ in range(steps):
        kind = getattr(opt, "extrapolation", None)
        if kind == "extragradient":
            opt.zero_grad()
            model(x).pow(2).mean().backward()
        if kind is not None:
            with guard():
                opt.extrapolate()
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        with guard():
            opt.step()


@pytest.mark.parametrize("ortho", [None, "weights"])
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_resumes_identically(name, ortho):
    x = torch.randn(12, 4, generator=torch.Generator().manual_seed(0))
    hp = {"lr": 0.01, "ortho": ortho, **({"k": 2} if name == "lookahead" else {})}
    model = _model()
    opt = optim.build(name, model.parameters(), **hp)
    drive(opt, model, 3, x)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    drive(opt, model, 4, x)

    resumed = _model()
    resumed.load_state_dict(saved_model)
    opt2 = optim.build(name, resumed.parameters(), **hp)
    opt2.load_state_dict(saved_opt)
    drive(opt2, resumed, 4, x)
    for a, b in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["extra-adam", "extra-sgd", "past-extra-adam"])
def test_state_dict_between_extrapolation_and_update_resumes_identically(name):
    x = torch.randn(12, 4, generator=torch.Generator().manual_seed(1))
    model = _model()
    opt = optim.build(name, model.parameters(), lr=0.01)
    drive(opt, model, 2, x)
    opt.zero_grad()
    model(x).pow(2).mean().backward()
    opt.extrapolate()  # now at w_{t+1/2}; the anchor w_t lives in the state
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())

    def finish(o, m):
        o.zero_grad()
        m(x).pow(2).mean().backward()
        o.step()
        drive(o, m, 2, x)

    finish(opt, model)
    resumed = _model()
    resumed.load_state_dict(saved_model)
    opt2 = optim.build(name, resumed.parameters(), lr=0.01)
    opt2.load_state_dict(saved_opt)
    finish(opt2, resumed)
    for a, b in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["extra-adam", "extra-sgd", "past-extra-adam"])
@pytest.mark.parametrize("ortho", [None, "weights"])
def test_second_extrapolate_before_step_is_refused_and_keeps_the_original_anchor(name, ortho):
    x = torch.randn(12, 4, generator=torch.Generator().manual_seed(2))
    model = _model()
    opt = optim.build(name, model.parameters(), lr=0.01, ortho=ortho)
    drive(opt, model, 2, x)
    w_t = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad()
    model(x).pow(2).mean().backward()
    opt.extrapolate()
    w_half = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(RuntimeError, match=r"extrapolate\(\) called twice"):
        opt.extrapolate()
    assert all(torch.equal(p, h) for p, h in zip(model.parameters(), w_half))  # did not move
    opt.restore_anchor()  # the anchor is still w_t, not the extrapolated point
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), w_t))


@pytest.mark.parametrize("name", NAMES)
def test_closure_is_evaluated_with_grad_enabled_and_its_loss_returned(name):
    model = _model()
    opt = optim.build(name, model.parameters(), lr=0.01)
    x = torch.randn(8, 4)
    before = [p.detach().clone() for p in model.parameters()]

    def closure():
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        return loss

    with torch.no_grad():
        loss = opt.step(closure)
    assert loss is not None and loss.item() > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("name", ["sgd", "adam", "ogda", "optimistic-adam", "extra-adam", "muon"])
def test_param_groups_keep_their_own_learning_rates(name):
    torch.manual_seed(6)
    a, b = torch.nn.Parameter(torch.randn(3, 3)), torch.nn.Parameter(torch.randn(3, 3))
    opt = optim.build(name, [{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.0}], lr=0.05)
    b0 = b.detach().clone()
    a0 = a.detach().clone()
    a.grad, b.grad = torch.ones(3, 3), torch.ones(3, 3)
    opt.step()
    assert torch.equal(b, b0)  # lr 0 group untouched
    assert not torch.equal(a, a0)


@pytest.mark.parametrize(
    ("factory", "kwargs"),
    [
        (OGDA, {"lr": -1.0}),
        (OGDA, {"lr": float("nan")}),
        (OptimisticAdam, {"betas": (1.0, 0.9)}),
        (OptimisticAdam, {"eps": -1.0}),
        (OptimisticAdam, {"weight_decay": -0.1}),
        (PastExtraAdam, {"lr": -1.0}),
        (ExtraAdam, {"betas": (0.5, 1.5)}),
        (OptimisticAdam, {"betas": (0.5,)}),
        (MuonWithAdam, {"momentum": 1.0}),
        (MuonWithAdam, {"eps": -1.0}),
        (MuonWithAdam, {"adjust_lr_fn": "nope"}),
    ],
)
def test_invalid_hyperparameters_raise_value_error(factory, kwargs):
    with pytest.raises(ValueError):
        factory([torch.nn.Parameter(torch.randn(2, 2))], **kwargs)


def test_the_shared_adam_direction_is_the_step_torch_adam_takes():
    torch.manual_seed(7)
    p = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    adam = torch.optim.Adam([p], lr=0.1, betas=(0.5, 0.9), eps=1e-6)
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    for t in range(1, STEPS + 1):
        p.grad = torch.randn(5, dtype=torch.float64)
        common.adam_moments_([m], [v], [p.grad], (0.5, 0.9))
        (d,) = common.adam_direction([m], [v], [t], (0.5, 0.9), 1e-6)
        before = p.detach().clone()
        adam.step()
        torch.testing.assert_close(before - p.detach(), 0.1 * d, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"k": 0}, "k"), ({"alpha": 0.0}, "alpha"), ({"alpha": 1.5}, "alpha")]
)
def test_lookahead_validates(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Lookahead(torch.optim.SGD([torch.nn.Parameter(torch.randn(2))], lr=0.1), **kwargs)


def test_wrappers_refuse_non_optimizers():
    with pytest.raises(TypeError):
        Ortho("adam")


def test_build_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError, match="optimistic-adam"):
        optim.build("adamw-ish", [torch.nn.Parameter(torch.randn(2))])


def test_build_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"lrr.*valid: lr, betas"):
        optim.build("adam", [torch.nn.Parameter(torch.randn(2))], lrr=0.1)


def test_build_wraps_ortho_and_lookahead_bases():
    params = [torch.nn.Parameter(torch.randn(2, 2))]
    opt = optim.build("lookahead", params, base="extra-adam", k=3, lr=0.1, ortho="weights")
    assert isinstance(opt, Ortho) and isinstance(opt.base, Lookahead)
    assert isinstance(opt.base.base, ExtraAdam) and opt.base.k == 3
    assert opt.extrapolation == "extragradient"
    with pytest.raises(ConfigError, match="ortho"):
        optim.build("adam", params, ortho="gradients")


def test_a_resolved_spec_builds_and_is_admitted_without_resolving_its_name_again(monkeypatch):
    calls = []
    real = optim.resolve_name
    monkeypatch.setattr(
        optim, "resolve_name", lambda kind, name: calls.append(name) or real(kind, name)
    )
    spec = optim.resolve(
        "torch.optim:RAdam", {"lr": 1.5e-3, "betas": [0.5, 0.9], "ortho": "weights"}
    )
    assert calls == ["torch.optim:RAdam"]
    g = spec.build([torch.zeros(2, requires_grad=True)])
    d = spec.build([torch.zeros(3, requires_grad=True)], lr=6e-3)  # the other player's lr
    assert isinstance(g, optim.Ortho) and isinstance(d, optim.Ortho)
    assert (g.param_groups[0]["lr"], d.param_groups[0]["lr"]) == (1.5e-3, 6e-3)
    assert g.param_groups[0]["betas"] == (0.5, 0.9)
    assert spec.admission().admitted
    assert spec.sources["optimizer"]["target"] == "torch.optim:RAdam"
    assert calls == ["torch.optim:RAdam"]  # built twice, admitted: resolved once
