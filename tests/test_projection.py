"""The orthogonal projection kernel: every implementation against the reference, and its maths."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from patience import patience

from ogan import _cpu_kernel, orthogonalize_
from ogan.projection import _choose_impl

pytestmark = pytest.mark.numerical  # kernels held to the reference: tests/emulate_cpus.py

SHAPES = [(3, 4), (1,), (7,), (128, 100), (5, 3, 2, 2), (70_000,), (2,), (0,), (64, 3, 4, 4)]
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
FAST = ["foreach", "fused"]
FUSED_CPU = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _pairs(dtype: torch.dtype, seed: int = 0, shapes=SHAPES) -> tuple[list, list]:
    g = torch.Generator().manual_seed(seed)
    grads = [torch.randn(s, generator=g).to(dtype) for s in shapes]
    refs = [torch.randn(s, generator=g).to(dtype) for s in shapes]
    refs[2].zero_()  # a zero reference
    if len(grads) > 6:
        grads[6] = 3 * refs[6]  # parallel to its reference
    return grads, refs


def _tolerance(dtype: torch.dtype) -> float:
    # Half types round each output once; compute is float32 everywhere.
    return {torch.float64: 1e-12, torch.float32: 1e-5}.get(dtype, 2 * torch.finfo(dtype).eps)


def _assert_close_to_reference(out, expected, originals, dtype, stats=None):
    """Equal within the dtype's rounding, plus the amplification by renorm of nearly parallel pairs.

    Renorm divides by ||g - c r||: compute errors of order eps32 ||g|| grow by
    kappa = ||g|| / ||g - c r|| in every implementation, the reference included.
    """
    eps32 = torch.finfo(torch.float32).eps
    for i, (o, e, g) in enumerate(zip(out, expected, originals)):
        if not g.numel():
            continue
        kappa = 1.0
        if stats is not None and float(stats.norm_projected[i]) > 0:
            kappa = float(stats.norm_before[i] / stats.norm_projected[i])
        tol = _tolerance(dtype) + (8 * eps32 * kappa if dtype != torch.float64 else 0.0)
        scale = g.double().abs().max().item()
        err = (o.double() - e.double()).abs().max().item()
        assert err <= tol * max(scale, 1e-30), f"shape {tuple(g.shape)}: error {err:.3g}"


def test_cpu_kernel_is_built():
    assert _cpu_kernel.AVAILABLE, "ogan/_ortho_cpu was not built: reinstall with a C compiler"
    assert {torch.float32, torch.float64, torch.bfloat16} <= _cpu_kernel.SUPPORTED_DTYPES


@pytest.mark.parametrize(
    ("device", "dtype", "ref_dtype", "contiguous", "cpu", "triton", "expected"),
    [
        ("cpu", torch.float32, torch.float32, True, True, False, "fused"),
        ("cpu", torch.float32, torch.float32, True, False, False, "foreach"),
        ("cpu", torch.float32, torch.float32, False, True, False, "foreach"),
        ("cpu", torch.float32, torch.float64, True, True, False, "foreach"),
        ("cpu", torch.bfloat16, torch.bfloat16, True, True, False, "fused"),
        ("cuda", torch.float32, torch.float32, True, False, True, "fused"),
        ("cuda", torch.float16, torch.float16, True, False, False, "foreach"),
        ("cuda", torch.float32, torch.float32, False, False, True, "foreach"),
        ("mps", torch.float32, torch.float32, True, True, True, "foreach"),
    ],
)
def test_choose_impl_picks_fused_only_where_a_kernel_applies(
    device, dtype, ref_dtype, contiguous, cpu, triton, expected
):
    cpu_dtypes = frozenset(FUSED_CPU if cpu else ())
    got = _choose_impl(
        device, dtype, ref_dtype, contiguous, cpu_dtypes=cpu_dtypes, have_triton=triton
    )
    assert got == expected


@pytest.mark.parametrize("impl", FAST)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("renorm", "conflict_only"), [(True, False), (False, False), (False, True), (True, True)]
)
def test_fast_paths_equal_reference(impl, dtype, renorm, conflict_only):
    for seed in range(3):
        grads, refs = _pairs(dtype, seed)
        originals = [g.clone() for g in grads]
        expected = [g.clone() for g in grads]
        s_ref = orthogonalize_(
            expected, refs, renorm=renorm, conflict_only=conflict_only, impl="reference"
        )
        s_out = orthogonalize_(grads, refs, renorm=renorm, conflict_only=conflict_only, impl=impl)
        _assert_close_to_reference(grads, expected, originals, dtype, s_ref if renorm else None)
        torch.testing.assert_close(s_out.norm_before, s_ref.norm_before, rtol=1e-5, atol=1e-6)
        # ||g - c r|| of a parallel pair is rounding noise: compare relative to ||g||.
        torch.testing.assert_close(
            s_out.norm_projected,
            s_ref.norm_projected,
            rtol=1e-4,
            atol=1e-5 * float(s_ref.norm_before.max()),
        )


@pytest.mark.parametrize("impl", ["reference", *FAST])
def test_projection_is_orthogonal_and_keeps_norm(impl):
    grads, refs = _pairs(torch.float64, seed=5, shapes=[(40, 30), (9,), (3, 3, 3), (50_000,)])
    norms = [g.norm() for g in grads]
    orthogonalize_(grads, refs, impl=impl)
    for g, r, n in zip(grads, refs, norms):
        if r.abs().sum() == 0:
            continue
        assert abs(torch.dot(g.flatten(), r.flatten())) <= 1e-12 * n * r.norm()
        torch.testing.assert_close(g.norm(), n, rtol=1e-12, atol=0)


@pytest.mark.parametrize("impl", ["reference", *FAST])
def test_unscaled_rule_removes_exactly_the_component_along_the_reference(impl):
    gen = torch.Generator().manual_seed(1)
    g = torch.randn(20, 10, dtype=torch.float64, generator=gen)
    r = torch.randn(20, 10, dtype=torch.float64, generator=gen)
    expected = g - (g * r).sum() / (r * r).sum() * r  # DESIGN.md formula, eps negligible
    out = g.clone()
    stats = orthogonalize_([out], [r], renorm=False, impl=impl)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(stats.norm_projected[0].double(), expected.norm(), rtol=1e-6, atol=0)
    torch.testing.assert_close(stats.norm_before[0].double(), g.norm(), rtol=1e-6, atol=0)


@pytest.mark.parametrize("impl", ["reference", *FAST])
def test_conflict_only_leaves_non_conflicting_pairs_bit_identical(impl):
    gen = torch.Generator().manual_seed(2)
    refs = [torch.randn(50, generator=gen) for _ in range(6)]
    grads = [
        r * s + 0.5 * torch.randn(50, generator=gen) for r, s in zip(refs, (1, -1, 2, -2, 1, -1))
    ]
    before = [g.clone() for g in grads]
    orthogonalize_(grads, refs, conflict_only=True, renorm=False, impl=impl)
    for g, b, r in zip(grads, before, refs):
        if torch.dot(b, r) >= 0:
            assert torch.equal(g, b)
        else:
            assert not torch.equal(g, b)
            assert abs(torch.dot(g, r)) <= 1e-5 * b.norm() * r.norm()


@pytest.mark.parametrize("impl", ["reference", *FAST])
def test_zero_reference_and_zero_gradient_pass_through_without_nan(impl):
    grads = [torch.randn(4, 4), torch.zeros(3), torch.zeros(5)]
    refs = [torch.zeros(4, 4), torch.randn(3), torch.zeros(5)]
    before = [g.clone() for g in grads]
    stats = orthogonalize_(grads, refs, impl=impl)
    for g, b in zip(grads, before):
        assert torch.equal(g, b)
    assert torch.isfinite(stats.norm_before).all() and torch.isfinite(stats.norm_projected).all()


@pytest.mark.parametrize("impl", ["reference", *FAST])
def test_renorm_of_a_gradient_parallel_to_its_weight_is_zero_not_amplified_noise(impl):
    r = torch.randn(8)
    grads = [torch.tensor([0.7]), 3 * r.clone(), -2 * r.clone()]
    refs = [torch.tensor([-1.3]), r, r]
    orthogonalize_(grads, refs, impl=impl)
    for g in grads:
        assert torch.equal(g, torch.zeros_like(g))


@pytest.mark.parametrize("impl", FAST)
def test_nearly_parallel_pair_keeps_its_true_direction(impl):
    """The closed form ||g||² - <g,r>²/||r||² cancels here; the kernels recompute it exactly."""
    gen = torch.Generator().manual_seed(3)
    r = torch.randn(10_000, generator=gen, dtype=torch.float64)
    u = torch.randn(10_000, generator=gen, dtype=torch.float64)
    u -= (u @ r) / (r @ r) * r
    g = (5 * r + 1e-3 * u / u.norm() * r.norm()).float()  # sin θ ≈ 2e-4
    r = r.float()
    gd, rd = g.double(), r.double()  # the exact answer for the stored float32 values
    residual = gd - (gd @ rd) / (rd @ rd) * rd
    truth = residual / residual.norm() * gd.norm()
    orthogonalize_([g], [r], impl=impl)
    assert (g.double() - truth).norm() <= 2e-3 * truth.norm()


def test_none_gradients_are_skipped_and_stats_follow_input_order():
    grads = [torch.randn(3), None, torch.randn(2, 2)]
    refs = [torch.randn(3), torch.randn(5), torch.randn(2, 2)]
    norms = [grads[0].norm(), grads[2].norm()]
    stats = orthogonalize_(grads, refs)
    assert grads[1] is None
    torch.testing.assert_close(stats.norm_before, torch.stack(norms))


def test_empty_lists_give_empty_stats():
    stats = orthogonalize_([], [])
    assert stats.norm_before.numel() == 0 and stats.norm_projected.numel() == 0


def test_mixed_dtypes_are_grouped_and_each_group_matches_reference():
    grads = [torch.randn(30), torch.randn(4, 5).double(), torch.randn(7).bfloat16(), torch.randn(6)]
    refs = [
        torch.randn(30),
        torch.randn(4, 5).double(),
        torch.randn(7).bfloat16(),
        torch.randn(6).double(),
    ]
    expected = [g.clone() for g in grads]
    s_ref = orthogonalize_(expected, refs, impl="reference")
    out = [g.clone() for g in grads]
    stats = orthogonalize_(out, refs)
    for o, e, g in zip(out, expected, grads):
        assert o.dtype == g.dtype
        torch.testing.assert_close(
            o, e, rtol=0, atol=_tolerance(g.dtype) * float(g.double().abs().max())
        )
    torch.testing.assert_close(stats.norm_before, s_ref.norm_before, rtol=1e-5, atol=0)


def test_non_contiguous_tensors_are_projected_correctly():
    base = torch.randn(40, 30)
    grads = [base.t(), torch.randn(30, 40)[:, ::2]]
    refs = [torch.randn(30, 40), torch.randn(30, 20)]
    expected = [g.clone() for g in grads]
    orthogonalize_(expected, refs, impl="reference")
    orthogonalize_(grads, refs)
    for o, e in zip(grads, expected):
        torch.testing.assert_close(o, e, rtol=1e-5, atol=1e-6)


def test_fused_cpu_kernel_is_bit_identical_for_any_thread_count():
    grads, refs = _pairs(torch.float32, seed=4, shapes=[(300_000,), (1000, 300), (17,)])
    results = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out = [g.clone() for g in grads]
            orthogonalize_(out, refs, impl="fused")
            results.append(out)
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*results):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("grads", "refs", "error"),
    [
        ([torch.randn(3)], [torch.randn(4)], ValueError),
        ([torch.randn(3)], [], ValueError),
        ([torch.ones(3, dtype=torch.int64)], [torch.ones(3, dtype=torch.int64)], TypeError),
    ],
)
def test_bad_input_is_a_clear_error(grads, refs, error):
    with pytest.raises(error):
        orthogonalize_(grads, refs)


def test_unknown_impl_is_rejected():
    with pytest.raises(ValueError, match="impl"):
        orthogonalize_([torch.randn(2)], [torch.randn(2)], impl="magic")


TRITON_SCRIPT = textwrap.dedent(
    """
    import torch
    from ogan import _triton_kernel
    from ogan.projection import RHO, orthogonalize_
    shapes = [(3, 4), (1,), (7,), (128, 100), (20_000,), (2,), (0,)]
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        for renorm, conflict in ((True, False), (False, True)):
            gen = torch.Generator().manual_seed(0)
            grads = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
            refs = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
            refs[2].zero_()
            grads[5] = 3 * refs[5]
            expected = [g.clone() for g in grads]
            orthogonalize_(expected, refs, renorm=renorm, conflict_only=conflict, impl="reference")
            rho = RHO[torch.float64 if dtype == torch.float64 else torch.float32]
            stats = _triton_kernel.orthogonalize_(grads, refs, renorm, conflict, 1e-30, rho)
            tol = {torch.float64: 1e-12, torch.float32: 1e-5}.get(dtype, 2 * torch.finfo(dtype).eps)
            for o, e, g0 in zip(grads, expected, refs):
                if o.numel():
                    scale = max(float(e.double().abs().max()), float(o.double().abs().max()), 1e-30)
                    err = float((o.double() - e.double()).abs().max())
                    assert err <= tol * max(scale, 1.0), (dtype, renorm, conflict, o.shape, err)
            assert stats.shape == (2, len(shapes))
    print("TRITON-OK")
    """
)


def test_triton_kernel_matches_reference_under_the_interpreter():
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", TRITON_SCRIPT], env=env, capture_output=True, text=True,
        timeout=patience(600),
    )
    assert "TRITON-OK" in proc.stdout, proc.stderr[-3000:]


TRITON_CACHE_SCRIPT = textwrap.dedent(
    """
    import torch
    from ogan import _triton_kernel as K
    from ogan.projection import RHO, orthogonalize_
    built = []
    build = K.Tables.__init__
    def counting(self, grads, refs):
        built.append(len(grads))
        build(self, grads, refs)
    K.Tables.__init__ = counting
    gen = torch.Generator().manual_seed(1)
    shapes = [(3, 4), (20_000,), (5,)]
    grads = [torch.empty(s) for s in shapes]
    refs = [torch.randn(s, generator=gen) for s in shapes]
    for step in range(3):  # a step: new gradients in the same tensors
        values = [torch.randn(s, generator=gen) for s in shapes]
        for g, v in zip(grads, values):
            g.copy_(v)
        expected = [v.clone() for v in values]
        orthogonalize_(expected, refs, renorm=True, impl="reference")
        K.orthogonalize_(grads, refs, True, False, 1e-30, RHO[torch.float32])
        for o, e in zip(grads, expected):
            torch.testing.assert_close(o, e, rtol=1e-5, atol=1e-6)
    assert built == [3], built  # built once, then hits: no table copied again
    t = K.tables(grads, refs)
    assert t.g_tab.tolist() == [g.data_ptr() for g in grads]
    assert t.r_tab.tolist() == [r.data_ptr() for r in refs]
    assert t.numel.tolist() == [12, 20_000, 5] and t.seg_chunk0.tolist() == [0, 1, 4, 5]
    assert t.chunk_seg.tolist() == [0, 1, 1, 1, 2]
    assert t.chunk_start.tolist() == [0, 0, 8192, 16384, 0]
    others = [g.clone() for g in grads]  # other tensors: a miss
    assert K.tables(others, refs) is not t and built == [3, 3]
    reshaped = [grads[0].view(12), *grads[1:]]  # the same memory seen as another shape: a miss
    assert K.tables(reshaped, refs) is not t and built == [3, 3, 3]
    assert K.tables(grads, refs) is t and built == [3, 3, 3]
    K.CACHED_TABLES = 2  # eager entries: the least recently used is evicted
    kept = K.tables(grads[:1], refs[:1], capturing=True)  # read by a graph: never evicted
    K.tables(others, refs)
    K.tables(reshaped, refs)
    assert K.tables(grads, refs) is not t  # evicted, rebuilt
    assert K.tables(grads[:1], refs[:1]) is kept
    print("CACHE-OK")
    """
)


def test_triton_pointer_tables_are_cached_per_list_of_tensors_under_the_interpreter():
    """Repeated calls on the same tensors (every step) copy no table; other tensors, or the
    same memory in another shape, get their own; eviction spares what a graph captured."""
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", TRITON_CACHE_SCRIPT], env=env, capture_output=True, text=True,
        timeout=patience(600),
    )  # fmt: skip
    assert "CACHE-OK" in proc.stdout, proc.stderr[-3000:]


@pytest.mark.parametrize("dtype", DTYPES)
def test_tensor_norms_equal_torch_norms_on_every_path(dtype):
    from ogan.projection import tensor_norms

    gen = torch.Generator().manual_seed(6)
    tensors = [torch.randn(s, generator=gen).to(dtype) for s in SHAPES]
    expected = torch.stack([t.double().norm() for t in tensors])
    rtol = 1e-6 if dtype in (torch.float32, torch.float64) else 1e-3
    fused = tensor_norms(tensors)  # contiguous CPU tensors of one dtype: the C kernel
    fallback = tensor_norms([t.t() if t.ndim == 2 else t for t in tensors])  # non-contiguous
    for got in (fused, fallback):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got.double(), expected, rtol=rtol, atol=1e-6)


@pytest.mark.parametrize("renorm", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_norm_applied_is_the_norm_of_the_gradients_left_in_place(renorm, dtype):
    gen = torch.Generator().manual_seed(0)
    refs = [torch.randn(s, generator=gen, dtype=dtype) for s in [(1,), (5, 3), (7,), (4,)]]
    grads = [torch.randn(r.shape, generator=gen, dtype=dtype) for r in refs]
    grads[2] = 0.5 * refs[2]  # parallel: zeroed under renorm
    grads[3] = torch.zeros(4, dtype=dtype)  # no gradient at all
    stats = orthogonalize_(grads, refs, renorm=renorm)
    applied = stats.norm_applied(renorm, dtype)
    actual = torch.stack([g.norm() for g in grads]).float()
    torch.testing.assert_close(applied, actual, rtol=1e-5, atol=1e-6)
    if renorm:  # one element, and parallel: nothing left (not rounding noise scaled up)
        assert applied[0] == 0 and applied[2] == 0
