"""The two-player step: schemes, detaching, evaluation, determinism, statistics, divergence."""

from __future__ import annotations

import math
import multiprocessing

import numpy as np
import pandas as pd
import pytest
import torch

import ogan
from ogan import optim
from ogan.errors import ConfigError
from ogan.game import Game
from ogan.game.config import resolve
from ogan.projection import orthogonalize_
from ogan.workloads.mog import MoGRing

TOY = ["bilinear", "dirac", "mog-ring", "mog-grid"]
TIMING = ["wall_time", "step_time"]


def game(workload="mog-ring", optimizer="adam", **kw) -> Game:
    return Game(resolve(workload, optimizer, device="cpu", **kw))


def _strip(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=[c for c in TIMING if c in df])


@pytest.mark.parametrize("workload", TOY)
@pytest.mark.parametrize("name", list(optim.OPTIMIZERS))
def test_every_optimizer_trains_every_toy_workload(workload, name):
    result = ogan.train(workload, {"name": name, "lr": 1e-3}, steps=4, eval_every=2, device="cpu",
                        batch_size=16)  # fmt: skip
    assert list(result.history["step"]) == [0, 2, 4]
    assert len(result.trace) == 4
    assert result.summary["steps_completed"] == 4 and result.summary["diverged_at"] is None
    metric = result.summary["target"]["metric"]
    assert np.isfinite(result.history[metric]).all()
    assert (
        np.isfinite(result.trace["grad_norm_g"]).all() and (result.trace["grad_norm_d"] > 0).all()
    )


@pytest.mark.parametrize(
    "variant", [{"ortho": "weights"}, {"surgery": True}, {"ortho": "weights", "surgery": True}]
)
@pytest.mark.parametrize("name", ["adam", "extra-adam", "lookahead"])
def test_ortho_and_surgery_compose_with_every_kind_of_base(name, variant):
    result = ogan.train("mog-ring", {"name": name, "lr": 1e-3, **variant}, steps=3, eval_every=3,
                        device="cpu", batch_size=16)  # fmt: skip
    removed = result.trace["removed_frac_d"]
    assert ((removed >= 0) & (removed <= 1)).all()
    if variant.get("surgery"):
        # at initialisation D's real and fake terms conflict: surgery removes part of them
        assert (removed > 0).all()
    if variant.get("ortho"):
        assert (result.trace["removed_frac_g"] > 0).all()
        # renorm keeps the norm: after == before for G
        np.testing.assert_allclose(
            result.trace["grad_norm_g"], result.trace["grad_norm_g_pre"], rtol=1e-5
        )


def test_discriminator_step_sends_no_gradient_to_the_generator():
    g = game()
    batch = g.workload.sample(32, g.gen)
    fake = g.g.module(batch.z)  # carries G's graph
    g._d_backward(batch, fake)
    assert all(p.grad is None for p in g.g.params)
    assert all(p.grad is not None for p in g.d.params)


def test_generator_step_sends_no_gradient_to_the_discriminator():
    g = game()
    batch = g.workload.sample(32, g.gen)
    g._g_backward(g.g.module(batch.z))
    assert all(p.grad is None for p in g.d.params)
    assert all(p.grad is not None for p in g.g.params)


def test_evaluation_runs_in_eval_mode_without_grad_and_restores_train_mode(monkeypatch):
    seen = []
    original = MoGRing.evaluate

    def spy(self, G, D, generator):
        seen.append((G.training, D.training, torch.is_grad_enabled()))
        return original(self, G, D, generator)

    monkeypatch.setattr(MoGRing, "evaluate", spy)
    g = game()
    g.evaluate()
    assert seen == [(False, False, False)]
    assert g.g.module.training and g.d.module.training


def test_evaluating_more_often_does_not_change_training():
    a = ogan.train("mog-ring", "adam", steps=20, eval_every=1, device="cpu", batch_size=32)
    b = ogan.train("mog-ring", "adam", steps=20, eval_every=20, device="cpu", batch_size=32)
    pd.testing.assert_frame_equal(_strip(a.trace), _strip(b.trace))
    assert a.history["fd"].iloc[-1] == b.history["fd"].iloc[-1]


def _run_for_determinism(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    r = ogan.train("mog-ring", {"name": "adam", "lr": 1e-3, "ortho": "weights"}, steps=15,
                   eval_every=5, seed=seed, device="cpu", batch_size=32, threads=1)  # fmt: skip
    return _strip(r.history), _strip(r.trace)


def test_same_seed_is_bit_identical_in_process_and_in_a_worker_process():
    h1, t1 = _run_for_determinism(3)
    h2, t2 = _run_for_determinism(3)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        h3, t3 = pool.apply(_run_for_determinism, (3,))
    for h in (h2, h3):
        pd.testing.assert_frame_equal(h1, h, check_exact=True)
    for t in (t2, t3):
        pd.testing.assert_frame_equal(t1, t, check_exact=True)
    h4, _ = _run_for_determinism(4)
    assert not h1["fd"].equals(h4["fd"])


@pytest.mark.parametrize(
    ("optimizer", "kw", "per_step"),
    [
        ("sgd", {"scheme": "simultaneous"}, (1, 1)),
        ("sgd", {"scheme": "alternating", "d_steps": 3}, (1, 3)),
        ("extra-sgd", {}, (2, 2)),
        ("past-extra-adam", {}, (1, 1)),
    ],
)
def test_gradient_evaluations_are_counted_per_player(optimizer, kw, per_step):
    r = ogan.train("dirac", optimizer, steps=5, eval_every=5, device="cpu", **kw)
    assert (r.summary["grad_evals_g"], r.summary["grad_evals_d"]) == (
        5 * per_step[0],
        5 * per_step[1],
    )
    assert list(r.history["grad_evals"]) == [0, 5 * sum(per_step)]


def test_simultaneous_step_uses_both_gradients_at_the_same_point():
    g = game("bilinear", {"name": "sgd", "lr": 0.1}, dim=3)
    x0, y0 = g.g.module.w.detach().clone(), g.d.module.w.detach().clone()
    A = g.d.module.A
    g.step(0)
    torch.testing.assert_close(g.g.module.w.detach(), x0 - 0.1 * (A @ y0))
    torch.testing.assert_close(g.d.module.w.detach(), y0 + 0.1 * (A.T @ x0))


def test_alternating_step_updates_d_first_then_g_against_the_new_d():
    g = game("bilinear", {"name": "sgd", "lr": 0.1}, dim=3, scheme="alternating")
    x0, y0 = g.g.module.w.detach().clone(), g.d.module.w.detach().clone()
    A = g.d.module.A
    g.step(0)
    y1 = y0 + 0.1 * (A.T @ x0)
    torch.testing.assert_close(g.d.module.w.detach(), y1)
    torch.testing.assert_close(g.g.module.w.detach(), x0 - 0.1 * (A @ y1))


def test_extragradient_evaluates_both_players_at_the_extrapolated_point():
    g = game("bilinear", {"name": "extra-sgd", "lr": 0.1}, dim=3)
    x0, y0 = g.g.module.w.detach().clone(), g.d.module.w.detach().clone()
    A = g.d.module.A
    g.step(0)
    xh, yh = x0 - 0.1 * (A @ y0), y0 + 0.1 * (A.T @ x0)
    torch.testing.assert_close(g.g.module.w.detach(), x0 - 0.1 * (A @ yh))
    torch.testing.assert_close(g.d.module.w.detach(), y0 + 0.1 * (A.T @ xh))


def test_lookahead_synchronises_both_players_every_k_game_steps():
    g = game("mog-ring", {"name": "lookahead", "base": "adam", "k": 3, "lr": 1e-2}, batch_size=16,
             scheme="alternating", d_steps=2)  # fmt: skip
    for i in range(3):
        g.step(i)
    for player in (g.g, g.d):
        la = player.lookahead
        assert la.fast_steps == (3 if player is g.g else 6)  # D stepped twice per game step
        for p in player.params:
            assert torch.equal(p.detach(), la.state[p]["slow"])  # just synchronised


def test_surgery_applies_the_sum_of_pcgrad_projected_real_and_fake_gradients():
    g = game("mog-ring", {"name": "sgd", "lr": 1e-3, "surgery": True}, batch_size=64)
    batch = g.workload.sample(64, g.gen)
    with torch.no_grad():
        fake = g.g.module(batch.z)
    D, params = g.d.module, g.d.params
    real_term = g.loss.real(D(batch.real))
    fake_term = g.loss.fake(D(fake))
    a = list(torch.autograd.grad(real_term, params))
    b = list(torch.autograd.grad(fake_term, params))
    expected = []
    for ga, gb in zip(a, b):
        dot = torch.dot(ga.flatten(), gb.flatten())
        if dot < 0:
            ga, gb = ga - dot / gb.square().sum() * gb, gb - dot / ga.square().sum() * ga
        expected.append(ga + gb)
    g._d_backward(batch, fake)
    for p, e in zip(params, expected):
        torch.testing.assert_close(p.grad, e, rtol=1e-5, atol=1e-7)


def test_gradient_statistics_match_an_independent_computation():
    spec = {"name": "adam", "lr": 1e-3, "ortho": "weights"}
    g = game("mog-ring", spec, batch_size=32, scheme="simultaneous")
    twin = game("mog-ring", spec, batch_size=32, scheme="simultaneous")  # same seed, same batch
    batch = twin.workload.sample(32, twin.gen)
    loss = twin.loss.g(twin.d.module(twin.g.module(batch.z)))
    grads = [x.detach() for x in torch.autograd.grad(loss, twin.g.params)]
    pre = math.sqrt(sum(float(x.square().sum()) for x in grads))
    projected = [x.clone() for x in grads]
    orthogonalize_(projected, [p.detach() for p in twin.g.params], renorm=False, impl="reference")
    kept = sum(float(x.square().sum()) for x in projected)

    row = g.step(0)
    stats = {k: float(v[0]) for k, v in g.layout.columns(row.unsqueeze(0)).items()}
    assert stats["loss_g"] == pytest.approx(float(loss.detach()), rel=1e-6)
    assert stats["grad_norm_g_pre"] == pytest.approx(pre, rel=1e-5)
    assert stats["grad_norm_g"] == pytest.approx(pre, rel=1e-5)  # renorm keeps every layer's norm
    assert stats["removed_frac_g"] == pytest.approx(1 - kept / pre**2, rel=1e-4)
    layer = [float(x.norm()) for x in grads]
    assert stats["layer_min_g"] == pytest.approx(min(layer), rel=1e-5)
    assert stats["layer_max_g"] == pytest.approx(max(layer), rel=1e-5)


def test_divergence_stops_the_run_records_the_step_and_never_raises():
    r = ogan.train("bilinear", {"name": "sgd", "lr": 1e5}, steps=200, eval_every=50, device="cpu")
    d = r.summary["diverged_at"]
    assert d is not None and 1 < d < 200
    assert r.summary["steps_completed"] == d == len(r.trace)
    assert r.history["step"].iloc[-1] == d
    assert not np.isfinite(
        r.trace.iloc[-1][["grad_norm_g", "grad_norm_d", "loss_g"]].to_numpy()
    ).all()


def test_summary_reports_cost_and_gradient_norm_summaries():
    r = ogan.train("mog-ring", "adam", steps=10, eval_every=5, device="cpu", batch_size=32)
    s = r.summary
    assert s["wall_time"] == pytest.approx(r.trace["step_time"].sum())
    assert s["time_per_step"] == pytest.approx(s["wall_time"] / 10)
    assert s["grad_norm_g_median"] == pytest.approx(float(np.median(r.trace["grad_norm_g"])))
    assert s["grad_norm_d_max"] == pytest.approx(float(r.trace["grad_norm_d"].max()))
    assert s["final_fd"] == r.history["fd"].iloc[-1]
    assert 0 <= s["grad_norm_g_vanishing_frac"] <= 1
    expected = {"step", "grad_evals", "wall_time", "grad_norm_g", "grad_norm_d", "fd", "modes",
                "high_quality", "reverse_kl"}  # fmt: skip
    assert set(r.history.columns) >= expected


def test_time_to_target_is_the_first_evaluation_reaching_it():
    r = ogan.train(
        "bilinear", {"name": "extra-sgd", "lr": 0.5}, steps=200, eval_every=10, device="cpu"
    )
    target = r.summary["target"]["value"]
    hit = r.history[(r.history["distance"] <= target) & (r.history["step"] > 0)].iloc[0]
    assert r.summary["steps_to_target"] == hit["step"]
    assert r.summary["grad_evals_to_target"] == hit["grad_evals"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"workload": "mog-rings"}, "valid names: bilinear"),
        ({"optimizer": "adamw"}, "valid names"),
        ({"optimizer": {"name": "adam", "lrr": 1}}, "lrr"),
        ({"optimizer": {"name": "adam", "lr": -1}}, "lr"),
        ({"optimizer": {"name": "adam", "lr": float("nan")}}, "lr"),
        ({"optimizer": {"name": "adam", "betas": [1.5, 0.9]}}, "beta"),
        ({"optimizer": "extra-adam", "scheme": "alternating"}, "simultaneous"),
        ({"scheme": "simultaneous", "d_steps": 2}, "d_steps"),
        ({"scheme": "sideways"}, "scheme"),
        ({"loss": "hinge2"}, "loss"),
        ({"workload": "bilinear", "loss": "hinge"}, "fixed objective"),
        ({"workload": "bilinear", "optimizer": {"name": "adam", "surgery": True}}, "no real data"),
        ({"z_dim": 0}, "z_dim"),
        ({"colour": "red"}, "colour"),
        ({"steps": 0}, "steps"),
    ],
)
def test_bad_configuration_is_a_config_error_naming_the_problem(kwargs, match):
    kw = {"workload": "mog-ring", "optimizer": "adam", **kwargs}
    with pytest.raises(ConfigError, match=match):
        ogan.train(**kw, device="cpu")


def test_each_loss_is_its_closed_form():
    from ogan.game.losses import LOSSES

    d = torch.tensor([-3.0, -0.5, 0.0, 0.7, 2.0], dtype=torch.float64)
    sig = 1 / (1 + np.exp(-d.numpy()))
    x = d.numpy()
    expected = {  # (real, fake, g), written out from the papers' definitions
        "non-saturating": (-np.log(sig), -np.log(1 - sig), -np.log(sig)),
        "minimax": (-np.log(sig), -np.log(1 - sig), np.log(1 - sig)),
        "hinge": (np.maximum(0, 1 - x), np.maximum(0, 1 + x), -x),
        "wasserstein": (-x, x, -x),
    }
    assert set(LOSSES) == set(expected)
    for name, (real, fake, g) in expected.items():
        loss = LOSSES[name]
        got = [loss.real(d).item(), loss.fake(d).item(), loss.g(d).item()]
        np.testing.assert_allclose(got, [real.mean(), fake.mean(), g.mean()], rtol=1e-12,
                                   err_msg=name)  # fmt: skip


@pytest.mark.parametrize("loss", ["non-saturating", "minimax", "hinge", "wasserstein"])
def test_every_loss_trains_with_r1(loss):
    r = ogan.train("mog-ring", "adam", loss=loss, r1=0.1, steps=3, eval_every=3, device="cpu",
                   batch_size=16)  # fmt: skip
    assert np.isfinite(r.trace["loss_d"]).all()


RATIOS = [("ttur", 4.0), ({"name": "adam", "lr_ratio": 2.5}, 2.5), ("adam", 1.0)]


@pytest.mark.parametrize(("spec", "ratio"), RATIOS)
def test_discriminator_learning_rate_is_lr_times_lr_ratio(spec, ratio):
    g = game("mog-ring", spec if isinstance(spec, dict) else {"name": spec, "lr": 2e-4})
    lr = g.config.optimizer["lr"]
    assert g.g.optimizer.param_groups[0]["lr"] == lr
    assert g.d.optimizer.param_groups[0]["lr"] == pytest.approx(lr * ratio)


def test_each_history_row_summarises_only_the_steps_since_the_previous_evaluation():
    r = ogan.train("dirac", "sgd", steps=250, eval_every=100, device="cpu")
    assert r.history["step"].tolist() == [0, 100, 200, 250]
    for row, (lo, hi) in zip(r.history.itertuples(), [(0, 0), (0, 100), (100, 200), (200, 250)]):
        window = r.trace[(r.trace["step"] > lo) & (r.trace["step"] <= hi)]
        if hi == 0:
            assert math.isnan(row.loss_g)
            continue
        assert row.loss_g == pytest.approx(window["loss_g"].mean(), rel=1e-12)
        assert row.grad_norm_d == pytest.approx(window["grad_norm_d"].median(), rel=1e-12)


def test_recorded_norm_after_the_projection_is_that_of_the_gradients_applied():
    # D's one-unit output bias is parallel to its own weight: ⊥Grad leaves it no gradient
    config = resolve("mog-ring", {"name": "sgd", "lr": 1e-3, "ortho": "weights"}, batch_size=16,
                     steps=1, device="cpu")  # fmt: skip
    game = Game(config)
    cols = game.layout.columns(game.step(0)[None])
    applied = torch.stack([p.grad.norm() for p in game.d.params]).norm()
    assert cols["grad_norm_d"][0] == pytest.approx(applied.item(), rel=1e-5)
    assert cols["grad_norm_d"][0] < cols["grad_norm_d_pre"][0]


@pytest.mark.parametrize(
    ("optimizer", "names"),
    [
        ({"name": "adam", "lr": 1e-3}, {"adam": 1}),
        (  # a wrapper, its base by import path, ⊥Grad around both
            {"name": "lookahead", "base": "torch.optim:RAdam", "lr": 1e-3, "ortho": "weights"},
            {"lookahead": 1, "torch.optim:RAdam": 1},
        ),
    ],
)
def test_train_resolves_its_optimizer_name_once(optimizer, names, optimizer_resolutions):
    # TrainConfig carries the resolved spec: both players' builds and the sources use it
    result = ogan.train("mog-ring", optimizer, steps=2, eval_every=2, device="cpu", hidden=8,
                        batch_size=8, threads=1)  # fmt: skip
    assert optimizer_resolutions == names
    assert result.summary["steps_completed"] == 2
    assert "resolved" not in result.config  # the record stays plain data
    assert result.config["sources"]["optimizer"]["via"] == "registered"


def test_train_refuses_an_optimizer_whose_step_needs_a_closure_before_any_run():
    spec = {"name": "torch.optim:LBFGS", "lr": 0.1}
    expected = (
        "optimizer 'torch.optim:LBFGS' needs a closure in step() (it re-evaluates the loss: "
        "TypeError: LBFGS.step() missing 1 required positional argument: 'closure'); ogan's "
        "two-player step has none to give, choose another optimizer"
    )
    with pytest.raises(ConfigError) as at_resolve:  # the configuration: nothing is built
        resolve("mog-ring", spec, device="cpu")
    assert str(at_resolve.value) == expected
    with pytest.raises(ConfigError) as at_train:
        ogan.train("mog-ring", spec, steps=2, device="cpu")
    assert str(at_train.value) == expected
    with pytest.raises(ConfigError) as at_admission:  # where bench run found it: the same text
        optim.admit("torch.optim:LBFGS", spec)
    assert str(at_admission.value) == expected


def test_step_times_trains_the_same_steps_without_evaluating(monkeypatch):
    """bench's standalone timing beside a population: the steps of ogan.train, no metrics (an
    Inception FID on the CPU would cost more than the steps it times)."""
    from ogan.game.game import Game
    from ogan.game.train import step_times

    spec = {"name": "adam", "lr": 1e-3}
    trained = ogan.train("mog-ring", spec, steps=6, seed=3, eval_every=6, threads=1)

    def refuse(self, slot=0):
        raise AssertionError("step_times evaluated the workload")

    monkeypatch.setattr(Game, "evaluate", refuse)
    times = step_times("mog-ring", spec, steps=6, seed=3, threads=1)
    assert len(times) == len(trained.trace) == 6
    assert bool((times > 0).all()) and bool(np.isfinite(times).all())
