"""The population's stacked networks (ogan/game/stacked.py): the linear layer's own backward, the
products it computes another way on the CPU, and the forward whose gradient goes to its input
only. tests/test_population.py holds whole members to their standalone runs."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck, gradgradcheck

from ogan.game.config import resolve
from ogan.game.population import PopulationGame
from ogan.game.stacked import NARROW, Stacked, StackedLinear, bmm
from ogan.workloads.nets import mlp

P = 3


@pytest.mark.parametrize(
    ("m", "k", "n"),
    [(5, 1, 7), (6, 4, 1), (6, 4, 2), (4, 3, NARROW - 1), (4, 3, NARROW), (4, 20, 24)],
)
@pytest.mark.parametrize("transposed", [False, True])
def test_bmm_is_torchs_product_whichever_way_it_computes_it(m, k, n, transposed):
    gen = torch.Generator().manual_seed(m * 100 + k * 10 + n)
    a = torch.randn(P, m, k, generator=gen, dtype=torch.float64)
    b = (torch.randn(P, n, k, generator=gen, dtype=torch.float64).mT if transposed
         else torch.randn(P, k, n, generator=gen, dtype=torch.float64))  # fmt: skip
    expected = torch.bmm(a, b)
    got = bmm(a, b)
    assert got.shape == expected.shape
    if k == 1:  # an outer product: the same single multiplication per element
        assert torch.equal(got, expected)
    torch.testing.assert_close(got, expected, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize(("fan_in", "fan_out"), [(2, 5), (5, 1), (5, 2), (17, 18)])
@pytest.mark.parametrize("bias", [True, False])
def test_stacked_linear_first_and_second_derivatives_are_right(fan_in, fan_out, bias):
    # second derivatives: the R1 penalty differentiates D's input gradient again
    gen = torch.Generator().manual_seed(fan_in * fan_out)

    def leaf(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=gen, dtype=torch.float64).requires_grad_()

    inputs = (leaf(P, 4, fan_in), leaf(P, fan_out, fan_in), leaf(P, fan_out) if bias else None)
    assert gradcheck(StackedLinear.apply, inputs)
    assert gradgradcheck(StackedLinear.apply, inputs)


def test_stacked_linears_weight_gradient_alone_is_right_and_in_the_weights_layout():
    x = torch.randn(P, 4, NARROW, dtype=torch.float64)  # data: no gradient
    weight = torch.randn(P, 2, NARROW, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(P, 2, dtype=torch.float64)  # frozen
    (grad,) = torch.autograd.grad(StackedLinear.apply(x, weight, bias).square().sum(), weight)
    expected = torch.func.grad(lambda w: (x @ w.mT + bias[:, None]).square().sum())(weight)
    torch.testing.assert_close(grad, expected, rtol=1e-14, atol=1e-14)
    assert grad.is_contiguous()  # in the weight's own layout: no transposing copy


def _members(sizes: list[int]) -> list[nn.Module]:
    torch.manual_seed(0)
    return [mlp(sizes).double() for _ in range(P)]


@pytest.mark.parametrize("sizes", [[2, 16, 16, 1], [16, 16, 2], [3, 20, 5]])
def test_each_members_gradients_are_its_own_modules(sizes):
    members = _members(sizes)
    net = Stacked(members)
    x = torch.randn(P, 32, sizes[0], dtype=torch.float64)
    grads = torch.autograd.grad(net(x).square().sum(), net.trainable)
    for m, module in enumerate(members):
        own = torch.autograd.grad(module(x[m]).square().sum(), list(module.parameters()))
        assert len(own) == len(grads)
        for stacked_grad, alone in zip(grads, own):
            assert stacked_grad[m].shape == alone.shape
            torch.testing.assert_close(stacked_grad[m], alone, rtol=1e-12, atol=1e-12)


def test_a_frozen_forward_sends_the_gradient_to_its_input_only():
    net = Stacked(_members([2, 8, 8, 1]))
    x = torch.randn(P, 5, 2, dtype=torch.float64, requires_grad=True)
    out = net(x)
    (expected,) = torch.autograd.grad(out.sum(), x)
    x2 = x.detach().clone().requires_grad_()
    frozen = net(x2, frozen=True)
    assert torch.equal(frozen, out)
    frozen.sum().backward()
    assert torch.equal(x2.grad, expected)
    assert all(p.grad is None for p in net.params.values())


def test_a_populations_generator_step_computes_no_discriminator_weight_gradient(monkeypatch):
    # `backward(inputs=G's parameters)` already keeps D's .grad empty; what the frozen pass
    # through D saves is computing D's weight gradients at all, which only its layers' backward
    # calls show
    asked = []
    original = StackedLinear.backward

    def recording(ctx, grad):
        _, weight = ctx.saved_tensors
        asked.append((weight.data_ptr(), ctx.needs_input_grad[1:]))
        return original(ctx, grad)

    monkeypatch.setattr(StackedLinear, "backward", staticmethod(recording))
    configs = [resolve("mog-ring", "adam", seed=s, batch_size=32) for s in range(P)]
    game = PopulationGame(configs)
    batch = game._sample()
    game._g_backward(game.g.module(batch.z))
    d_layers = [need for ptr, need in asked if ptr in {p.data_ptr() for p in game.d.params}]
    g_layers = [need for ptr, need in asked if ptr in {p.data_ptr() for p in game.g.params}]
    assert d_layers == [(False, False)] * 3  # D: 2 -> hidden -> hidden -> 1
    assert g_layers == [(True, True)] * 3
    assert all(p.grad is None for p in game.d.params)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in game.g.params)
