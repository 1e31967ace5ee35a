r"""The orthogonal projection kernel behind ⊥Grad and D gradient surgery.

For every pair (gradient :math:`g_i`, reference :math:`r_i`), in place on :math:`g_i`:

.. math::

    c_i &= \langle g_i, r_i\rangle / (\langle r_i, r_i\rangle + \epsilon)
        \qquad (\epsilon = 10^{-30}, \text{as in the OrthoGrad reference code}) \\
    g_i' &= g_i - c_i r_i \\
    \text{conflict-only:}\quad & c_i = 0 \text{ where } \langle g_i, r_i\rangle \ge 0 \\
    \text{renorm:}\quad & g_i' \mathrel{*}= \lVert g_i\rVert / (\lVert g_i'\rVert + \epsilon)

Two rules make the edge cases well defined in every implementation:

* where :math:`c_i = 0` (a zero reference, or a non-conflicting pair in conflict-only mode) the
  gradient is left untouched, bit for bit;
* with renorm, where :math:`g_i` is parallel to :math:`r_i` within the compute precision
  (:math:`\lVert g_i'\rVert \le \rho\lVert g_i\rVert`, :math:`\rho` = 128 ulps of the compute type),
  :math:`g_i' = 0`. Rescaling that residue would turn rounding noise into a full-size step
  (every one-element tensor, such as the bias of a one-unit output layer, is in this case).

Reductions run in float32 for 16- and 32-bit tensors and in float64 for float64 tensors.

Implementations (one signature, chosen per (device, dtype) group by :func:`_choose_impl`):

``reference``  a plain per-tensor loop; the definition every fast path is tested against.
``foreach``    multi-tensor torch ops on flat buffers; runs on any device.
``fused``      two passes over memory whatever the number of tensors: a C kernel on CPU
               (``ogan/_csrc``), Triton kernels on CUDA (``ogan/_triton_kernel.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from ogan import _cpu_kernel

EPS = 1e-30
"""Denominator guard of the OrthoGrad reference implementation (Prieto et al. 2025)."""

# 128 ulps of the compute type; the C and Triton kernels use the same constants.
RHO = {torch.float32: 2.0**-16, torch.float64: 2.0**-45}

Impl = Literal["auto", "reference", "foreach", "fused"]
_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class ProjectionStats:
    """Per-tensor norms from the kernel's own reductions (float32, one entry per projected pair).

    ``norm_before`` is ||g||; ``norm_projected`` is ||g - c r|| before any renorm, so the
    fraction of the squared norm removed is ``1 - norm_projected**2 / norm_before**2``.
    """

    norm_before: torch.Tensor
    norm_projected: torch.Tensor

    def norm_applied(self, renorm: bool, dtype: torch.dtype) -> torch.Tensor:
        """||g'|| as left in place for gradients of ``dtype``: the projected norm, or under renorm
        the original norm, except 0 where the gradient was parallel to its reference (``RHO``)."""
        if not renorm:
            return self.norm_projected
        parallel = self.norm_projected <= RHO[_compute_dtype(dtype)] * self.norm_before
        return torch.where(parallel, torch.zeros_like(self.norm_before), self.norm_before)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


@functools.cache
def _have_triton() -> bool:
    try:
        from ogan import _triton_kernel  # noqa: F401
    except Exception:  # ImportError, or a Triton that cannot initialise on this machine
        return False
    return True


def _choose_impl(
    device_type: str,
    dtype: torch.dtype,
    ref_dtype: torch.dtype,
    contiguous: bool,
    *,
    cpu_dtypes: frozenset[torch.dtype],
    have_triton: bool,
) -> Literal["foreach", "fused"]:
    """Which implementation runs a group of (gradient, reference) pairs.

    The fused kernels address raw memory: they need contiguous tensors of one floating dtype.
    CPU uses the C kernel for the dtypes it was built with (``cpu_dtypes``, empty when it was
    not built); CUDA uses Triton when it imports. Anything else (other devices, mixed or
    non-contiguous tensors) takes the portable multi-tensor path.
    """
    if not contiguous or dtype != ref_dtype or dtype not in _FUSED_DTYPES:
        return "foreach"
    if device_type == "cpu" and dtype in cpu_dtypes:
        return "fused"
    if device_type == "cuda" and have_triton:
        return "fused"
    return "foreach"


def _single_tensor_orthogonalize_(
    grads: Sequence[torch.Tensor],
    refs: Sequence[torch.Tensor],
    renorm: bool,
    conflict_only: bool,
    eps: float,
) -> torch.Tensor:
    norms = []
    for g, r in zip(grads, refs, strict=True):
        cd = _compute_dtype(g.dtype)
        gf, rf = g.to(cd), r.to(cd)
        dot = (gf * rf).sum()
        n0 = gf.norm()
        c = dot / ((rf * rf).sum() + eps)
        if conflict_only and dot >= 0:
            c = torch.zeros_like(c)
        if c == 0:
            norms.append(torch.stack([n0, n0]))
            continue
        gp = gf - c * rf
        n1 = gp.norm()
        if renorm:
            gp = torch.zeros_like(gp) if n1 <= RHO[cd] * n0 else gp * (n0 / (n1 + eps))
        g.copy_(gp)
        norms.append(torch.stack([n0, n1]))
    return torch.stack(norms, 1).float()


def _multi_tensor_orthogonalize_(
    grads: Sequence[torch.Tensor],
    refs: Sequence[torch.Tensor],
    renorm: bool,
    conflict_only: bool,
    eps: float,
) -> torch.Tensor:
    # Every step is a foreach op; per-tensor coefficients stay 0-d tensors (no host sync).
    cd = _compute_dtype(grads[0].dtype)
    gf, rf = list(grads), list(refs)
    if grads[0].dtype != cd or refs[0].dtype != cd:  # one cast of all tensors, no Python loop
        gf = torch._C._nn.unflatten_dense_tensors(torch._C._nn.flatten_dense_tensors(gf).to(cd), gf)
        rf = torch._C._nn.unflatten_dense_tensors(torch._C._nn.flatten_dense_tensors(rf).to(cd), rf)

    # Norms accumulate in float64 (as the fused kernels add their partial sums): the renorm
    # divides by ||g - c r||, which magnifies every error of c when g is nearly parallel to r.
    def norms(xs: list[torch.Tensor], ord: int = 2) -> torch.Tensor:
        return torch.stack(torch._foreach_norm(xs, ord, dtype=torch.float64))

    # torch has no foreach sum; a signed sum is 2 * sum(max(p, 0)) - sum(|p|), two L1 norms.
    scratch = torch._foreach_mul(gf, rf)  # the only model-sized allocation
    l1 = norms(scratch, 1)
    torch._foreach_clamp_min_(scratch, 0.0)
    dot = 2 * norms(scratch, 1) - l1
    n0 = norms(gf)
    c = dot / (norms(rf) ** 2 + eps)
    if conflict_only:
        c = torch.where(dot >= 0, torch.zeros_like(c), c)
    skip = c == 0
    torch._foreach_copy_(scratch, rf)
    torch._foreach_mul_(scratch, list(c.to(cd).unbind()))
    torch._foreach_sub_(gf, scratch)  # c == 0 gives g - 0 r == g: skipped pairs stay bit-identical
    n1 = torch.where(skip, n0, norms(gf))
    if renorm:
        scale = torch.where(n1 <= RHO[cd] * n0, torch.zeros_like(n0), n0 / (n1 + eps))
        torch._foreach_mul_(gf, list(torch.where(skip, 1.0, scale).to(cd).unbind()))
    if gf[0] is not grads[0]:
        torch._foreach_copy_(list(grads), gf)
    return torch.stack([n0, n1]).float()


def _fused_orthogonalize_(
    grads: Sequence[torch.Tensor],
    refs: Sequence[torch.Tensor],
    renorm: bool,
    conflict_only: bool,
    eps: float,
) -> torch.Tensor:
    if grads[0].device.type == "cpu":
        return _cpu_kernel.orthogonalize_(grads, refs, renorm, conflict_only, eps)
    from ogan import _triton_kernel

    rho = RHO[_compute_dtype(grads[0].dtype)]
    return _triton_kernel.orthogonalize_(grads, refs, renorm, conflict_only, eps, rho)


_IMPLS = {
    "reference": _single_tensor_orthogonalize_,
    "foreach": _multi_tensor_orthogonalize_,
    "fused": _fused_orthogonalize_,
}


def orthogonalize_(
    grads: Sequence[torch.Tensor | None],
    refs: Sequence[torch.Tensor],
    *,
    renorm: bool = True,
    conflict_only: bool = False,
    eps: float = EPS,
    impl: Impl = "auto",
) -> ProjectionStats:
    """Remove from each gradient its component along its reference, in place.

    Args:
        grads: gradients, modified in place; ``None`` entries (parameters without a gradient)
            are skipped together with their reference.
        refs: one reference per gradient, of the same shape and device (read only).
        renorm: rescale each projected gradient to its original norm (⊥Grad's official code).
        conflict_only: project only pairs with a negative inner product (PCGrad).
        eps: denominator guard.
        impl: ``"auto"`` picks per (device, dtype) group; ``"reference"``, ``"foreach"`` or
            ``"fused"`` force one implementation (``"fused"`` raises where none exists).

    Returns:
        :class:`ProjectionStats` for the pairs that had a gradient, in input order.
    """
    if len(grads) != len(refs):
        raise ValueError(f"got {len(grads)} gradients but {len(refs)} references; pass one each")
    if impl not in ("auto", *_IMPLS):
        raise ValueError(f"Invalid impl: {impl!r}; expected one of auto, {', '.join(_IMPLS)}")
    gs: list[torch.Tensor] = []
    rs: list[torch.Tensor] = []
    for g, r in zip(grads, refs):
        if g is not None:
            gs.append(g)
            rs.append(r)
    if not gs:
        empty = torch.empty(0)
        return ProjectionStats(empty, empty)
    if [g.shape for g in gs] != [r.shape for r in rs]:
        i = next(i for i, (g, r) in enumerate(zip(gs, rs)) if g.shape != r.shape)
        raise ValueError(
            f"gradient {i} has shape {tuple(gs[i].shape)} but its reference has shape "
            f"{tuple(rs[i].shape)}; each gradient needs a reference of its own shape"
        )
    # Grouped by the gradients' (device, dtype) in C++; references must share the device.
    results = []
    for (device, dtype), ((g_sub, r_sub), idx) in torch._C._group_tensors_by_device_and_dtype(
        [gs, rs], True
    ).items():
        ref_dtypes = {r.dtype for r in r_sub}
        if not dtype.is_floating_point or not all(d.is_floating_point for d in ref_dtypes):
            raise TypeError(
                f"orthogonalize_ needs floating-point tensors, got gradients of dtype {dtype} "
                f"and references of dtype(s) {', '.join(sorted(map(str, ref_dtypes)))}"
            )
        if len(ref_dtypes) == 1:
            subgroups = [(ref_dtypes.pop(), g_sub, r_sub, idx)]
        else:  # rare: one gradient dtype against references of several dtypes
            subgroups = [
                (
                    rd,
                    *map(
                        list,
                        zip(*[(g, r, i) for g, r, i in zip(g_sub, r_sub, idx) if r.dtype == rd]),
                    ),
                )
                for rd in ref_dtypes
            ]
        for ref_dtype, g_part, r_part, i_part in subgroups:
            contiguous = all(g.is_contiguous() for g in g_part) and all(
                r.is_contiguous() for r in r_part
            )
            auto = _choose_impl(
                device.type, dtype, ref_dtype, contiguous,
                cpu_dtypes=_cpu_kernel.SUPPORTED_DTYPES, have_triton=_have_triton(),
            )  # fmt: skip
            if impl == "fused" and auto != "fused":
                raise RuntimeError(
                    f"no fused kernel for {device.type} tensors of dtype {dtype} "
                    f"(reference dtype {ref_dtype}, contiguous={contiguous}); use impl='auto'"
                )
            chosen = auto if impl == "auto" else impl
            results.append((i_part, _IMPLS[chosen](g_part, r_part, renorm, conflict_only, eps)))

    if len(results) == 1:
        stats = results[0][1]
    else:
        device = results[0][1].device
        stats = torch.empty(2, len(gs), dtype=torch.float32, device=device)
        for idx, s in results:
            stats[:, idx] = s.to(device)
    return ProjectionStats(stats[0], stats[1])


def member_slices(stacks: Sequence[torch.Tensor], members: int) -> list[torch.Tensor]:
    """Stacks of a population's tensors (each (P, ...)) cut into member slices, member by member.

    The slices are views (contiguous where the stack is), so the fused kernels read and write
    them in place as more segments of the same call: every member is projected, or measured,
    against its own slice only.
    """
    cut = [t.unbind() for t in stacks]
    return [c[m] for m in range(members) for c in cut]


def tensor_norms(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of every tensor, as one float32 vector (the gradient statistics' reduction).

    Contiguous CPU tensors of one dtype take the fused C kernel (one call, one read of the data);
    anything else takes ``torch._foreach_norm`` (a multi-tensor kernel on CUDA), accumulating
    16-bit tensors in float32.
    """
    if not tensors:
        return torch.empty(0)
    first = tensors[0]
    one_dtype = all(t.dtype == first.dtype and t.device == first.device for t in tensors)
    if (
        one_dtype
        and first.device.type == "cpu"
        and first.dtype in _cpu_kernel.SUPPORTED_DTYPES
        and all(t.is_contiguous() for t in tensors)
    ):
        out = torch.empty(len(tensors), dtype=torch.float32)
        _cpu_kernel.norms(tensors, out)
        return out
    if one_dtype:
        wide = torch.float32 if first.dtype in (torch.float16, torch.bfloat16) else None
        return torch.stack(torch._foreach_norm(list(tensors), dtype=wide)).float()
    return torch.stack([torch.linalg.vector_norm(t, dtype=torch.float64).float() for t in tensors])
