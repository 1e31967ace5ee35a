"""The training kernel against closed-form results on the bilinear game and the Dirac-GAN."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ogan
from ogan.game import Game
from ogan.game.config import resolve


def distances(optimizer: str, eta: float, s: float, steps: int, **kw) -> np.ndarray:
    result = ogan.train(
        "bilinear", optimizer, lr=eta, dim=4, singular_values=[s], steps=steps, eval_every=1,
        device="cpu", **kw,
    )  # fmt: skip
    return result.history["distance"].to_numpy()


@pytest.mark.parametrize(("eta", "s"), [(0.1, 1.0), (0.05, 3.0), (0.2, 0.5)])
def test_simultaneous_gda_grows_the_distance_by_sqrt_1_plus_eta2_s2_every_step(eta, s):
    d = distances("sgd", eta, s, 30)
    np.testing.assert_allclose(d[1:] / d[:-1], math.sqrt(1 + eta**2 * s**2), rtol=2e-6)


@pytest.mark.parametrize(("eta", "s"), [(0.1, 1.0), (0.05, 3.0), (0.3, 2.0)])
def test_extragradient_shrinks_the_distance_by_sqrt_1_minus_eta2s2_plus_eta4s4(eta, s):
    d = distances("extra-sgd", eta, s, 30)
    a = eta * s
    np.testing.assert_allclose(d[1:] / d[:-1], math.sqrt(1 - a**2 + a**4), rtol=2e-6)


@pytest.mark.parametrize("a", [0.1, 0.3, 0.45])
def test_ogda_contracts_at_the_rate_of_its_dominant_root(a):
    d = distances("ogda", a, 1.0, 200)
    rate = (d[200] / d[100]) ** (1 / 100)
    assert rate == pytest.approx(math.sqrt((1 + math.sqrt(1 - 4 * a**2)) / 2), rel=1e-4)


@pytest.mark.parametrize(
    ("a", "converges"), [(0.55, True), (0.57, True), (0.59, False), (0.65, False)]
)
def test_ogda_converges_below_one_over_sqrt3_and_diverges_above(a, converges):
    d = distances("ogda", a, 1.0, 1500)
    assert (d[-1] < 1e-3 * d[0]) if converges else (d[-1] > 10 * d[0])


@pytest.mark.parametrize("a", [0.5, 1.0, 1.9])
def test_alternating_gda_is_bounded_and_conserves_its_invariant(a):
    """D then G: y' = y + ηAᵀx, x' = x − ηAy'. Conserved: |x|² + |y|² + η xᵀAy.

    (This is x² + y² + ηs·xy per singular direction; updating G first flips the sign of the
    cross term, giving the x² + y² − ηs·xy form.)
    """
    eta, s = a / 1.5, 1.5
    config = resolve("bilinear", "sgd", lr=eta, dim=3, singular_values=[s], scheme="alternating",
                     steps=600, device="cpu")  # fmt: skip
    game = Game(config)
    A = game.d.module.A.double()

    def state():
        x, y = game.g.module.w.detach().double(), game.d.module.w.detach().double()
        return float(x @ x + y @ y + eta * (x @ A @ y)), float(torch.cat([x, y]).norm())

    q0, d0 = state()
    qs, ds = [], []
    for i in range(config.steps):
        game.step(i)
        q, d = state()
        qs.append(q)
        ds.append(d)
    np.testing.assert_allclose(qs, q0, rtol=2e-5)
    bound = math.sqrt((1 + a / 2) / (1 - a / 2))  # the invariant's condition number
    assert max(ds) <= bound * d0 * 1.01 and min(ds) >= d0 / bound / 1.01


def test_alternating_gda_diverges_for_eta_s_above_2():
    d = distances("sgd", 2.2, 1.0, 200, scheme="alternating")
    assert d[-1] > 1e3 * d[0]


def dirac(optimizer: str, lr: float, steps: int, **kw) -> np.ndarray:
    r = ogan.train("dirac", optimizer, lr=lr, steps=steps, eval_every=10, device="cpu", **kw)
    return r.history["distance"].to_numpy()


def test_dirac_gan_simultaneous_gradient_descent_diverges():
    d = dirac("sgd", 0.1, 2000, scheme="simultaneous")
    assert np.all(np.diff(d) > 0)  # spirals outwards at every evaluation
    assert d[-1] > 1.5 * d[0]


def test_dirac_gan_alternating_gradient_descent_cycles():
    d = dirac("sgd", 0.1, 3000, scheme="alternating")
    assert d.min() > 0.5 * d[0] and d.max() < 2.0 * d[0]  # neither converges nor escapes


@pytest.mark.parametrize("scheme", ["simultaneous", "alternating"])
def test_dirac_gan_with_r1_converges(scheme):
    d = dirac("sgd", 0.1, 2000, scheme=scheme, r1=1.0)
    assert d[-1] < 1e-2 * d[0]


def test_r1_penalty_on_dirac_is_gamma_over_2_psi_squared():
    from ogan.game.losses import r1_penalty

    psi = torch.tensor(1.7, requires_grad=True)
    x = torch.zeros(4, 1, requires_grad=True)
    penalty = r1_penalty(x * psi, x, gamma=0.6)
    assert penalty.item() == pytest.approx(0.5 * 0.6 * 1.7**2)
    (grad,) = torch.autograd.grad(penalty, psi)
    assert grad.item() == pytest.approx(0.6 * 1.7)
