"""MuonWithAdam: torch's Muon on matrices, torch's Adam on the rest, and the torch API under it."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.optim._muon as torch_muon

from ogan.optim import MuonWithAdam
from ogan.optim import muon as ogan_muon

pytestmark = pytest.mark.numerical  # bfloat16 Newton–Schulz vs torch.optim.Muon: emulate_cpus.py

STEPS = 6


def test_muon_path_equals_torch_muon_on_matrices_and_torch_adam_on_the_rest():
    torch.manual_seed(3)
    w = torch.randn(6, 4)
    bias = torch.randn(6)
    ours = [torch.nn.Parameter(w.clone()), torch.nn.Parameter(bias.clone())]
    ref_w, ref_b = torch.nn.Parameter(w.clone()), torch.nn.Parameter(bias.clone())
    opt = MuonWithAdam(ours, lr=0.02, weight_decay=0.01, adjust_lr_fn=None)
    muon = torch.optim.Muon([ref_w], lr=0.02, weight_decay=0.01)
    adam = torch.optim.Adam([ref_b], lr=0.02, weight_decay=0.01)
    for step in range(STEPS):
        gw, gb = torch.randn(6, 4), torch.randn(6)
        ours[0].grad, ours[1].grad = gw.clone(), gb.clone()
        ref_w.grad, ref_b.grad = gw.clone(), gb.clone()
        opt.step()
        muon.step()
        adam.step()
        assert torch.equal(ours[0], ref_w), step
        assert torch.equal(ours[1], ref_b), step


def test_muon_treats_conv_kernels_as_out_by_rest_matrices():
    torch.manual_seed(4)
    kernel = torch.nn.Parameter(torch.randn(8, 3, 3, 3))
    flat = torch.nn.Parameter(kernel.detach().reshape(8, -1).clone())
    opt = MuonWithAdam([kernel], lr=0.02)
    ref = torch.optim.Muon([flat], lr=0.02, weight_decay=0.0, adjust_lr_fn="match_rms_adamw")
    for _ in range(STEPS):
        g = torch.randn(8, 3, 3, 3)
        kernel.grad = g.clone()
        flat.grad = g.reshape(8, -1).clone()
        opt.step()
        ref.step()
    assert torch.equal(kernel.detach().reshape(8, -1), flat.detach())


def test_add_param_group_routes_matrices_to_muon_and_the_rest_to_adam():
    torch.manual_seed(5)
    first = torch.nn.Parameter(torch.randn(3, 3))
    opt = MuonWithAdam([first], lr=0.02, adjust_lr_fn=None)
    w, b = torch.nn.Parameter(torch.randn(6, 4)), torch.nn.Parameter(torch.randn(6))
    opt.add_param_group({"params": [w, b], "lr": 0.01})
    assert [(g["use_muon"], len(g["params"])) for g in opt.param_groups] == [
        (True, 1), (True, 1), (False, 1)
    ]  # fmt: skip
    ref_w, ref_b = torch.nn.Parameter(w.detach().clone()), torch.nn.Parameter(b.detach().clone())
    muon = torch.optim.Muon([ref_w], lr=0.01, weight_decay=0.0)
    adam = torch.optim.Adam([ref_b], lr=0.01)
    for _ in range(STEPS):
        gw, gb = torch.randn(6, 4), torch.randn(6)
        first.grad = torch.randn(3, 3)
        w.grad, b.grad, ref_w.grad, ref_b.grad = gw.clone(), gb.clone(), gw.clone(), gb.clone()
        opt.step()
        muon.step()
        adam.step()
    assert torch.equal(w, ref_w) and torch.equal(b, ref_b)


def test_add_param_group_refuses_muon_for_a_vector():
    opt = MuonWithAdam([torch.nn.Parameter(torch.randn(2, 2))])
    with pytest.raises(ValueError, match="use_muon"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.randn(3))], "use_muon": True})


def test_torch_private_muon_api_is_the_one_muon_with_adam_calls(monkeypatch):
    """``torch.optim._muon`` is private: a torch upgrade that changes it must fail here, by name."""
    coefficients = (torch_muon.DEFAULT_A, torch_muon.DEFAULT_B, torch_muon.DEFAULT_C)
    assert coefficients == (3.4445, -4.7750, 2.0315), "torch.optim._muon's coefficients changed"
    assert torch_muon.DEFAULT_NS_STEPS == 5, "torch.optim._muon.DEFAULT_NS_STEPS changed"
    calls = []
    monkeypatch.setattr(ogan_muon, "muon", lambda *a, **kw: calls.append((a, kw)))
    p = torch.nn.Parameter(torch.randn(4, 3))
    p.grad = torch.randn(4, 3)
    MuonWithAdam([p]).step()
    (args, kwargs), = calls
    try:
        inspect.signature(torch_muon.muon).bind(*args, **kwargs)
    except TypeError as e:
        pytest.fail(f"torch.optim._muon.muon no longer takes what MuonWithAdam passes: {e}")
