r"""Muon for matrix-shaped weights and Adam for the rest, as one optimizer object.

The maths is torch's: ``torch.optim._muon.muon`` (the functional behind :class:`torch.optim.Muon`,
Jordan et al. 2024: Newton–Schulz orthogonalised momentum) and ``torch.optim.adam.adam``.
What this class adds is the routing: :class:`torch.optim.Muon` refuses anything that is not 2-D,
so convolution kernels (out, in, kh, kw) are handed to it as their (out, in·kh·kw) views, which
is the usual way to apply Muon to convolutions. The update lands in the original tensor because
the view shares its storage. Biases, norms' scales and other 1-D/0-D tensors use Adam.

Populations: a parameter group with ``"members": P`` holds P independent models stacked along the
leading dimension (``ogan.train_population``). Its matrices are (P, out, in) and each member's
matrix is orthogonalised separately (:func:`newton_schulz`, torch's iteration batched), with
torch's learning-rate adjustment for the member's matrix shape. Every other operation of
Muon and Adam acts element by element, so on stacked tensors it is exactly per member.

The default ``adjust_lr_fn="match_rms_adamw"`` (Liu et al. 2025, *Muon is Scalable*) scales each
Muon update to the RMS of an AdamW update, so one ``lr`` suits both halves and a learning-rate
grid is comparable with Adam's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim._muon import (
    DEFAULT_A,
    DEFAULT_B,
    DEFAULT_C,
    DEFAULT_NS_STEPS,
    EPS,
    _adjust_lr,
    muon,
)
from torch.optim.adam import adam

from ogan.optim.common import call_closure, check_hyperparameters


def _as_matrix(t: Tensor, members: bool = False) -> Tensor:
    """(out, -1): a matrix, or with ``members`` one matrix per member, (P, out, -1)."""
    return t.view(*t.shape[: 2 if members else 1], -1)


def newton_schulz(
    G: Tensor, coefficients: tuple[float, float, float], steps: int, eps: float
) -> Tensor:
    """torch's ``_zeropower_via_newtonschulz`` on a stack of matrices (P, A, B), each alone.

    Written out because torch's version takes one matrix, and under ``torch.vmap`` its fused
    bfloat16 ``addmm`` becomes a multiply and an add rounded separately; with ``baddbmm`` every
    operation (and every bfloat16 rounding) is torch's, matrix by matrix.
    """
    a, b, c = coefficients
    X = G.bfloat16()
    tall = G.size(-2) > G.size(-1)
    if tall:
        X = X.mT
    X = X / X.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)  # spectral norm at most 1
    for _ in range(steps):
        gram = X @ X.mT
        update = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)
        X = torch.baddbmm(X, update, X, beta=a)
    return X.mT if tall else X


def _population_muon(
    params: list[Tensor], grads: list[Tensor], bufs: list[Tensor], *, lr: float,
    weight_decay: float, momentum: float, nesterov: bool, ns_coefficients: tuple[float, ...],
    eps: float, ns_steps: int, adjust_lr_fn: str | None, has_complex: bool,
) -> None:  # fmt: skip
    """torch's ``_single_tensor_muon`` on (P, A, B) stacks, each member's matrix on its own."""
    if has_complex:
        raise ValueError("Complex parameters are not supported")
    for param, grad, buf in zip(params, grads, bufs):
        buf.lerp_(grad, 1 - momentum)
        update = grad.lerp(buf, momentum) if nesterov else buf
        update = newton_schulz(update, ns_coefficients, ns_steps, eps)
        param.mul_(1 - lr * weight_decay)
        param.add_(update, alpha=-_adjust_lr(lr, adjust_lr_fn, param.shape[1:]))


class MuonWithAdam(Optimizer):
    """Muon on every parameter with ``ndim >= 2`` (viewed as (out, -1)), Adam on the others.

    Args:
        params: parameters or parameter groups; each group is split in two (``use_muon``), as
            are the groups :meth:`add_param_group` adds later.
        lr: learning rate of both parts (default 1e-3).
        momentum: Muon momentum (default 0.95, torch's).
        nesterov: Nesterov momentum for Muon (default True).
        ns_steps: Newton–Schulz iterations (default 5).
        adjust_lr_fn: Muon's per-shape lr adjustment (default ``"match_rms_adamw"``).
        betas, eps: Adam's, for the non-matrix parameters (defaults (0.9, 0.999), 1e-8).
        weight_decay: decoupled for Muon (as torch.optim.Muon), L2 for Adam (default 0).
        capturable: Adam's step counters on the parameters' device, its bias corrections
            computed there (torch.optim.Adam's ``capturable``), so that no step reads a value
            back to the host and it can be captured in a CUDA graph (default False). The Muon
            part keeps no counter and reads nothing back either way.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_steps: int = DEFAULT_NS_STEPS,
        adjust_lr_fn: str | None = "match_rms_adamw",
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        capturable: bool = False,
    ):
        check_hyperparameters(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, momentum=momentum
        )
        if adjust_lr_fn not in (None, "original", "match_rms_adamw", "spectral_unclamped"):
            raise ValueError(f"Adjust learning rate function {adjust_lr_fn} is not supported")
        defaults = {
            "lr": lr, "momentum": momentum, "nesterov": nesterov, "ns_steps": ns_steps,
            "adjust_lr_fn": adjust_lr_fn, "betas": tuple(betas), "eps": eps,
            "weight_decay": weight_decay, "ns_coefficients": (DEFAULT_A, DEFAULT_B, DEFAULT_C),
            "capturable": capturable,
        }  # fmt: skip
        super().__init__(params, defaults)  # each group goes through add_param_group

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:  # a state saved before the flag existed
            group.setdefault("capturable", False)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group, split in two: Muon for its ``ndim >= 2`` tensors, Adam for the others.

        A group that already says ``use_muon`` is kept whole: ``False`` puts matrices on Adam
        (e.g. embeddings); ``True`` is refused for a tensor Muon cannot orthogonalise. In a
        population's group (``members`` set) each tensor's first dimension is the member, so a
        member's matrix is a tensor of ``ndim >= 3``.
        """
        params = param_group["params"]
        lead = 1 if param_group.get("members") is not None else 0  # the member dimension
        params = [params] if isinstance(params, Tensor) else list(params)
        if "use_muon" in param_group:
            if param_group["use_muon"] and any(p.ndim - lead < 2 for p in params):
                raise ValueError("use_muon=True needs ndim >= 2 tensors; set it False for the rest")
            super().add_param_group({**param_group, "params": params})
            return
        for use_muon in (True, False):
            chosen = [p for p in params if (p.ndim - lead >= 2) == use_muon]
            if chosen:
                super().add_param_group({**param_group, "params": chosen, "use_muon": use_muon})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = call_closure(closure)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if group["use_muon"]:
                self._muon_step(group, params)
            else:
                self._adam_step(group, params)
        return loss

    def _muon_step(self, group: dict[str, Any], params: list[Tensor]) -> None:
        members = group.get("members") is not None
        bufs = []
        for p in params:
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(_as_matrix(p.grad, members))
            bufs.append(state["momentum_buffer"])
        (_population_muon if members else muon)(
            [_as_matrix(p, members) for p in params],
            [_as_matrix(p.grad, members) for p in params],
            bufs,
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            nesterov=group["nesterov"],
            ns_coefficients=group["ns_coefficients"],
            eps=EPS,  # torch.optim.Muon's default
            ns_steps=group["ns_steps"],
            adjust_lr_fn=group["adjust_lr_fn"],
            has_complex=False,
        )

    def _adam_step(self, group: dict[str, Any], params: list[Tensor]) -> None:
        exp_avgs, exp_avg_sqs, steps = [], [], []
        for p in params:
            state = self.state[p]
            if "step" not in state:
                # torch.optim.Adam's counter: a host (CPU) tensor, or on the device if capturable
                state["step"] = (
                    torch.zeros((), dtype=torch.float32, device=p.device)
                    if group["capturable"]
                    else torch.tensor(0.0)
                )
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])
        beta1, beta2 = group["betas"]
        adam(
            params, [p.grad for p in params], exp_avgs, exp_avg_sqs, [], steps,
            amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"],
            weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
            capturable=group["capturable"],
        )  # fmt: skip
