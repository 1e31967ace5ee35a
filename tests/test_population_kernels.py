"""Kernels and optimizers on a population's stacked tensors: each member's slice on its own.

Member slices are views into the stacks, passed to the fused kernels as more segments of one
call; every result is checked against the per-tensor reference run on each member alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from patience import patience
from torch.optim._muon import DEFAULT_A, DEFAULT_B, DEFAULT_C, _zeropower_via_newtonschulz

from ogan import _cpu_kernel
from ogan.game.stacked import take_members
from ogan.optim import MuonWithAdam, Ortho
from ogan.optim.muon import newton_schulz
from ogan.projection import member_slices, orthogonalize_, tensor_norms

pytestmark = pytest.mark.numerical  # per-member kernels vs the reference: emulate_cpus.py

P = 3
SHAPES = [(5, 4), (1,), (7,), (16, 3, 2, 2), (40_000,)]  # one above the C kernel's chunk size


def _stacks(seed: int = 0, dtype=torch.float32) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    grads = [torch.randn((P, *s), generator=gen, dtype=dtype) for s in SHAPES]
    weights = [torch.randn((P, *s), generator=gen, dtype=dtype) for s in SHAPES]
    grads[2][1] = -2 * weights[2][1]  # one member's slice parallel (and conflicting) to its ref
    weights[0][2].zero_()  # one member's reference zero: that slice stays untouched
    return grads, weights


def test_member_slices_are_views_member_by_member():
    grads, _ = _stacks()
    slices = member_slices(grads, P)
    assert len(slices) == P * len(SHAPES)
    for m in range(P):
        for k, g in enumerate(grads):
            s = slices[m * len(SHAPES) + k]
            assert s.data_ptr() == g[m].data_ptr() and s.shape == g.shape[1:] and s.is_contiguous()


@pytest.mark.skipif(not _cpu_kernel.AVAILABLE, reason="the fused C kernel is not built")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("renorm", "conflict_only"), [(True, False), (False, False), (False, True)]
)
def test_fused_kernel_projects_each_member_slice_as_the_reference_does_alone(
    dtype, renorm, conflict_only
):
    grads, weights = _stacks(dtype=dtype)
    expected = [g.clone() for g in grads]
    stats = orthogonalize_(member_slices(grads, P), member_slices(weights, P), renorm=renorm,
                           conflict_only=conflict_only, impl="fused")  # one call  # fmt: skip
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 0}
    for m in range(P):  # the reference, on each member's tensors alone
        alone = [e[m].clone() for e in expected]
        ref = orthogonalize_(alone, [w[m] for w in weights], renorm=renorm,
                             conflict_only=conflict_only, impl="reference")  # fmt: skip
        for k, g in enumerate(grads):
            torch.testing.assert_close(g[m], alone[k], **tol)
        n = len(SHAPES)
        torch.testing.assert_close(stats.norm_before[m * n : (m + 1) * n], ref.norm_before)
        torch.testing.assert_close(stats.norm_projected[m * n : (m + 1) * n], ref.norm_projected,
                                   rtol=1e-4, atol=1e-6)  # fmt: skip
    assert torch.equal(grads[0][2], expected[0][2])  # zero reference: that member untouched


def test_foreach_path_projects_member_slices_like_the_fused_one():
    grads, weights = _stacks()
    other = [g.clone() for g in grads]
    orthogonalize_(member_slices(grads, P), member_slices(weights, P), impl="foreach")
    orthogonalize_(member_slices(other, P), member_slices(weights, P), impl="reference")
    for a, b in zip(grads, other):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_tensor_norms_of_member_slices_are_each_members_norms():
    grads, _ = _stacks()
    norms = tensor_norms(member_slices(grads, P)).view(P, -1)
    expected = torch.stack([torch.stack([g[m].double().norm() for g in grads]) for m in range(P)])
    torch.testing.assert_close(norms.double(), expected, rtol=1e-6, atol=1e-7)


TRITON_SCRIPT = textwrap.dedent(
    """
    import torch
    from ogan import _triton_kernel
    from ogan.projection import RHO, member_slices, orthogonalize_
    P = 3
    shapes = [(5, 4), (1,), (7,), (300, 40)]
    gen = torch.Generator().manual_seed(0)
    for renorm, conflict in ((True, False), (False, True)):
        grads = [torch.randn((P, *s), generator=gen) for s in shapes]
        refs = [torch.randn((P, *s), generator=gen) for s in shapes]
        grads[2][1] = 3 * refs[2][1]
        expected = [g.clone() for g in grads]
        _triton_kernel.orthogonalize_(member_slices(grads, P), member_slices(refs, P), renorm,
                                      conflict, 1e-30, RHO[torch.float32])
        for m in range(P):
            alone = [e[m].clone() for e in expected]
            orthogonalize_(alone, [r[m] for r in refs], renorm=renorm, conflict_only=conflict,
                           impl="reference")
            for g, a in zip(grads, alone):
                torch.testing.assert_close(g[m], a, rtol=1e-5, atol=1e-6)
    print("TRITON-MEMBERS-OK")
    """
)


def test_triton_kernel_projects_member_slices_like_the_reference_under_the_interpreter():
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", TRITON_SCRIPT], env=env, capture_output=True, text=True,
        timeout=patience(600),
    )
    assert "TRITON-MEMBERS-OK" in proc.stdout, proc.stderr[-3000:]


# -- optimizers ---------------------------------------------------------------------------------


def _members_and_alone(shapes, seed=0):
    """Stacked leaf parameters and, per member, independent copies of its slices."""
    gen = torch.Generator().manual_seed(seed)
    stacks = [torch.randn((P, *s), generator=gen).requires_grad_() for s in shapes]
    alone = [[s[m].detach().clone().requires_grad_() for s in stacks] for m in range(P)]
    return stacks, alone


def _set_grads(stacks, alone, gen):
    for k, s in enumerate(stacks):
        g = torch.randn(s.shape, generator=gen)
        s.grad = g.clone()
        for m in range(P):
            alone[m][k].grad = g[m].clone()


@pytest.mark.parametrize("renorm", [True, False])
def test_ortho_on_a_population_is_ortho_on_each_member_alone(renorm):
    shapes = [(6, 4), (6,), (1,)]
    stacks, alone = _members_and_alone(shapes)
    opt = Ortho(torch.optim.Adam([{"params": stacks, "members": P}], lr=1e-2), renorm=renorm)
    refs = [Ortho(torch.optim.Adam(ps, lr=1e-2), renorm=renorm) for ps in alone]
    gen = torch.Generator().manual_seed(1)
    for _ in range(4):
        _set_grads(stacks, alone, gen)
        opt.step()
        for r in refs:
            r.step()
    for m in range(P):
        for s, a in zip(stacks, alone[m]):
            torch.testing.assert_close(s[m], a, rtol=1e-5, atol=1e-6)
        n = len(shapes)
        torch.testing.assert_close(opt.last_stats.norm_before[m * n : (m + 1) * n],
                                   refs[m].last_stats.norm_before)  # member by member  # fmt: skip


def test_ortho_refuses_groups_with_different_members():
    a = torch.zeros(2, 3, requires_grad=True)
    b = torch.zeros(3, 3, requires_grad=True)
    opt = Ortho(torch.optim.SGD([{"params": [a], "members": 2}, {"params": [b], "members": 3}],
                                lr=0.1))  # fmt: skip
    a.grad, b.grad = torch.ones_like(a), torch.ones_like(b)
    with pytest.raises(ValueError, match="members"):
        opt.step()


def test_batched_newton_schulz_is_torchs_on_each_matrix():
    gen = torch.Generator().manual_seed(0)
    coefficients = (DEFAULT_A, DEFAULT_B, DEFAULT_C)
    for shape in [(P, 7, 5), (P, 4, 9), (P, 6, 6)]:  # tall, wide, square
        X = torch.randn(shape, generator=gen)
        got = newton_schulz(X, coefficients, 5, 1e-7)
        for m in range(P):
            expected = _zeropower_via_newtonschulz(X[m], coefficients, 5, 1e-7)
            torch.testing.assert_close(got[m], expected)


@pytest.mark.parametrize("ortho", [False, True])
def test_muon_on_a_population_is_torch_muon_and_adam_on_each_member_alone(ortho):
    gen = torch.Generator().manual_seed(0)
    # a matrix, a conv kernel (Muon sees it as (out, in·kh·kw)), a bias (Adam)
    shapes = [(8, 5), (4, 3, 2, 2), (8,)]
    stacks = [torch.randn((P, *s), generator=gen).requires_grad_() for s in shapes]
    alone = [[stacks[0][m].detach().clone().requires_grad_(),
              stacks[1][m].detach().reshape(4, -1).clone().requires_grad_(),
              stacks[2][m].detach().clone().requires_grad_()] for m in range(P)]  # fmt: skip
    kw = {"lr": 1e-2, "weight_decay": 0.1}
    opt = MuonWithAdam([{"params": stacks, "members": P}], **kw)
    assert [(g["use_muon"], len(g["params"])) for g in opt.param_groups] == [(True, 2), (False, 1)]
    if ortho:
        opt = Ortho(opt)
    refs = [(torch.optim.Muon([w, c], adjust_lr_fn="match_rms_adamw", **kw),
             torch.optim.Adam([b], **kw)) for w, c, b in alone]  # fmt: skip
    for _ in range(4):
        for k, s in enumerate(stacks):
            s.grad = torch.randn(s.shape, generator=gen)
            for m in range(P):
                alone[m][k].grad = s.grad[m].reshape(alone[m][k].shape).clone()
        opt.step()
        for ps, (muon, adam) in zip(alone, refs):
            if ortho:  # what Ortho does to this member, on its own tensors
                orthogonalize_([p.grad for p in ps], [p.detach() for p in ps])
            muon.step()
            adam.step()
    for m in range(P):
        for s, a in zip(stacks, alone[m]):
            torch.testing.assert_close(s[m].reshape(a.shape), a, rtol=1e-5, atol=1e-6)


def test_state_of_the_members_kept_is_their_state_unchanged():
    stacks, _ = _members_and_alone([(4, 3), (4,)])
    opt = torch.optim.Adam([{"params": stacks, "members": P}], lr=1e-2)
    for p in stacks:
        p.grad = torch.randn_like(p)
    opt.step()
    index = torch.tensor([0, 2])
    state = take_members(opt.state_dict(), index, P)
    assert state["param_groups"][0]["members"] == 2
    for k, p in enumerate(stacks):
        before = opt.state_dict()["state"][k]
        assert torch.equal(state["state"][k]["exp_avg"], before["exp_avg"][index])
        assert torch.equal(state["state"][k]["step"], before["step"])  # a scalar: kept
        assert p.shape[0] == P  # the optimizer's own tensors are not touched
