"""One network for a whole population: every member's tensors stacked along a leading dimension.

The members are built one by one, each exactly as a standalone run builds its network, then
stacked (``torch.func.stack_module_state``). The forward pass is each module's own ``forward``
through ``torch.func.functional_call`` under ``torch.vmap``, so any module works unchanged,
BatchNorm included: each member normalises with its own batch statistics and updates its own
running statistics (vmap writes them into the stacked buffers). No operation mixes members, so
the gradient of the members' summed losses is, member by member, the gradient of its own loss.

One fast path, because small MLPs are what populations are for: inside an ``nn.Sequential``, a
``nn.Linear`` is one ``torch.baddbmm`` over the stacks (:class:`StackedLinear`, whose backward
computes each product the way the CPU does fast) and an element-wise activation runs on the
stacked activations directly. Under vmap a linear layer becomes a batched matmul plus a
separate broadcast add of the bias, and every layer pays vmap's own dispatch.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state

ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Identity)
"""Modules that act element by element: the same on stacked activations as on each member's."""


class Stacked:
    """P networks of one architecture as stacked leaf tensors, callable on (P, batch, ...) inputs.

    The first module is kept as the template whose ``forward`` runs with each member's tensors;
    its own tensors are only a scratch copy, overwritten by :meth:`load` to evaluate one member.
    """

    def __init__(self, modules: Sequence[nn.Module]):
        self.template = modules[0]
        self.params, self.buffers = stack_module_state(list(modules))
        self._calls: dict[tuple[str, bool], tuple[list[str], list[str], Any]] = {}

    def __call__(self, x: Tensor | None, frozen: bool = False) -> Tensor:
        """Every member's output; ``frozen``: a backward pass will want the gradient of ``x``
        and none of the parameters' (the generator's step through the discriminator)."""
        return self._forward(self.template, "", x, frozen)

    def _forward(self, module: nn.Module, prefix: str, x: Tensor | None, frozen: bool) -> Tensor:
        if isinstance(module, nn.Sequential) and x is not None:
            for name, child in module.named_children():
                x = self._forward(child, f"{prefix}{name}.", x, frozen)
            return x
        if type(module) is nn.Linear and x is not None:
            weight = self.params[f"{prefix}weight"]
            bias = self.params.get(f"{prefix}bias")
            if frozen:  # autograd's own ops skip the gradients a backward pass does not ask
                weight = weight.detach()  # for; a Function computes what needs_input_grad says
                bias = None if bias is None else bias.detach()
            flat = x.reshape(x.shape[0], -1, x.shape[-1])  # (P, everything else, in)
            out = StackedLinear.apply(flat, weight, bias)
            return out.view(*x.shape[:-1], out.shape[-1])
        if type(module) in ELEMENTWISE:
            return module(x)
        return self._vmapped(module, prefix, x)

    def _vmapped(self, module: nn.Module, prefix: str, x: Tensor | None) -> Tensor:
        """``module`` (the template's submodule at ``prefix``) on every member, through vmap."""
        key = (prefix, x is None)
        if key not in self._calls:  # built once: vmap's own cost per call is what remains
            params = [k for k in self.params if k.startswith(prefix)]
            buffers = [k for k in self.buffers if k.startswith(prefix)]
            names = [k[len(prefix) :] for k in params + buffers]
            split = len(params)

            def call(inputs: Any, *tensors: Tensor) -> Tensor:
                p = dict(zip(names[:split], tensors[:split]))
                b = dict(zip(names[split:], tensors[split:]))
                return functional_call(module, (p, b), (inputs,))

            # x None: a player that takes no input (the bilinear game's points)
            in_dims = (None if x is None else 0, *[0] * len(names))
            self._calls[key] = (params, buffers, torch.vmap(call, in_dims=in_dims))
        params, buffers, run = self._calls[key]
        return run(x, *(self.params[k] for k in params), *(self.buffers[k] for k in buffers))

    @property
    def size(self) -> int:
        """The number of members."""
        return next(iter(self.params.values())).shape[0]

    @property
    def trainable(self) -> list[Tensor]:
        """The stacked parameters that train, in the module's parameter order."""
        return [p for p in self.params.values() if p.requires_grad]

    @torch.no_grad()
    def load(self, member: int) -> nn.Module:
        """The template holding one member's parameters and buffers: that member as a module."""
        named = itertools.chain(self.template.named_parameters(), self.template.named_buffers())
        for name, tensor in named:
            stack = self.params[name] if name in self.params else self.buffers[name]
            tensor.copy_(stack[member])
        return self.template

    @torch.no_grad()
    def keep(self, index: Tensor) -> None:
        """Keep only the members at ``index``; the parameters are new leaves (a new optimizer
        must be built for them, see :func:`take_members`)."""
        self.params = {
            k: p.index_select(0, index).requires_grad_(p.requires_grad)
            for k, p in self.params.items()
        }
        self.buffers = {k: b.index_select(0, index) for k, b in self.buffers.items()}


NARROW = 16
"""A right-hand factor with fewer columns than this makes a product that :func:`bmm` computes
transposed on the CPU."""


def bmm(a: Tensor, b: Tensor) -> Tensor:
    """``torch.bmm(a, b)``, computed another way on the CPU where torch's is slow: an outer
    product (``a`` of one column) as a broadcast multiplication, and a product whose right factor
    is row-major with few columns as ``(bᵀ aᵀ)ᵀ``.

    The second is the weight gradient of a layer with few outputs (an MLP discriminator's last
    layer has 1, a ring generator's 2) and the input gradient of a layer with few inputs (2 in
    a ring discriminator's first). torch's CPU bmm (torch 2.14.1, MKL 2024.2) spends about
    300 µs on (8, 128, 256) @ (8, 256, 2) and about 50 µs on (8, 2, 256) @ (8, 256, 128), the
    same products transposed (one thread, the 2-core AMD EPYC, 2026-12-06: ``python
    scripts/narrow_bmm.py``, results/perf/cpu-populations-narrow-epyc.txt).
    """
    if a.device.type == "cpu":
        if a.shape[-1] == 1:  # one multiplication per element, no sum
            return a * b
        if b.shape[-1] < NARROW and b.stride(-1) == 1:
            return torch.bmm(b.mT, a.mT).mT
    return torch.bmm(a, b)


class StackedLinear(torch.autograd.Function):
    """``x @ weightᵀ + bias`` for stacked members: ``x`` (P, rows, in), ``weight`` (P, out,
    in), ``bias`` (P, out) or None.

    The forward is the ``torch.baddbmm`` autograd would otherwise differentiate; the backward
    is written here so that each product is computed the fast way (:func:`bmm`) and the
    weight's gradient arrives in the weight's own layout, (P, out, in): autograd's formula gives
    it as (P, in, out), which then costs a transposing copy. The backward is made of
    differentiable ops, so double backward (the R1 penalty's ``create_graph``) goes through
    it. The old-style ``forward(ctx, ...)``: with ``setup_context`` a forward and backward of a
    tiny layer took about 120 µs on this CPU, against 75-83 µs old-style and 66-73 µs for
    autograd's own ``baddbmm``.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        if bias is None:
            return torch.bmm(x, weight.mT)
        return torch.baddbmm(bias[:, None], x, weight.mT)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        need_x, need_weight, need_bias = ctx.needs_input_grad
        grad_x = bmm(grad, weight) if need_x else None
        grad_weight = bmm(grad.mT, x) if need_weight else None
        grad_bias = grad.sum(1) if need_bias else None  # False for a None bias
        return grad_x, grad_weight, grad_bias


def take_members(state: Any, index: Tensor, members: int) -> Any:
    """An optimizer's ``state_dict`` restricted to the members at ``index``.

    Every tensor stacked over the ``members`` (a leading dimension of that size: per-parameter
    state such as moments, slow weights, anchors) is sliced; scalars (step counts) and
    hyperparameters are kept; parameter groups say their new number of members. This holds for
    optimizers whose state is per parameter or scalar, as every registered one's is.
    """
    if isinstance(state, Tensor):
        if state.ndim and state.shape[0] == members:
            return state.index_select(0, index.to(state.device))
        return state
    if isinstance(state, dict):
        out = {k: take_members(v, index, members) for k, v in state.items()}
        if "params" in out and "members" in out:  # a parameter group
            out["members"] = len(index)
        return out
    if isinstance(state, list | tuple):
        return type(state)(take_members(v, index, members) for v in state)
    return state
