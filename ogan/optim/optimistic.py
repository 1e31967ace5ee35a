r"""Optimistic methods (Daskalakis et al. 2018, *Training GANs with Optimism*).

Both add a correction from the previous step, which is stored **by value** in the state (a copy,
never a reference to a ``.grad`` that autograd may overwrite or free). Before the first step the
stored previous term is zero, as in the authors' code.

Both take ``capturable`` (default False), as torch.optim's Adam does: with it, optimistic Adam's
step counter is a device tensor and its bias corrections device ops (:mod:`ogan.optim.common`),
so a step reads nothing back to the host and can be captured in a CUDA graph. OGDA keeps no
counter and reads nothing back either way; it accepts the flag so that one spec can set it for
any of ogan's optimizers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from ogan.optim.common import (
    adam_direction,
    adam_moments_,
    adam_steps_,
    call_closure,
    check_hyperparameters,
    step_counter,
)


class _Optimistic(Optimizer):
    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:  # a state saved before the flag existed
            group.setdefault("capturable", False)

    def _direction(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]
    ) -> list[Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = call_closure(closure)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["weight_decay"] != 0:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            direction = self._direction(group, params, grads)
            previous = []
            for p in params:
                state = self.state[p]
                if "previous" not in state:
                    state["previous"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                previous.append(state["previous"])
            lr = group["lr"]
            torch._foreach_add_(params, direction, alpha=-2 * lr)
            torch._foreach_add_(params, previous, alpha=lr)
            torch._foreach_copy_(previous, direction)
        return loss


class OGDA(_Optimistic):
    r"""Optimistic gradient descent (OGDA):

    .. math:: w_{t+1} = w_t - 2\eta\, g_t + \eta\, g_{t-1}, \qquad g_{-1} = 0.

    Args:
        params: parameters or parameter groups.
        lr: step size :math:`\eta` (default 1e-3).
        weight_decay: L2 penalty added to the gradient (default 0).
        capturable: accepted for uniformity; OGDA's step is device work only either way
            (default False).
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        *,
        capturable: bool = False,
    ):
        check_hyperparameters(lr=lr, weight_decay=weight_decay)
        defaults = {"lr": lr, "weight_decay": weight_decay, "capturable": capturable}
        super().__init__(params, defaults)

    def _direction(self, group, params, grads):
        return grads


class OptimisticAdam(_Optimistic):
    r"""Optimistic Adam (Daskalakis et al. 2018, Alg. 1): optimism on the Adam-normalised step.

    .. math::
        m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
        d_t &= \frac{m_t/(1-\beta_1^t)}{\sqrt{v_t/(1-\beta_2^t)} + \epsilon} \\
        w_t &= w_{t-1} - 2\eta\, d_t + \eta\, d_{t-1}, \qquad d_0 = 0.

    Args:
        params: parameters or parameter groups.
        lr: :math:`\eta` (default 1e-3).
        betas: :math:`(\beta_1, \beta_2)` (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0).
        capturable: keep the step counter on the parameters' device and compute the bias
            corrections there, so that the step can be captured in a CUDA graph (default False:
            host arithmetic; the two differ by float rounding).
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        capturable: bool = False,
    ):
        check_hyperparameters(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "capturable": capturable}  # fmt: skip
        super().__init__(params, defaults)

    def _direction(self, group, params, grads):
        states = []
        for p in params:
            state = self.state[p]
            if "step" not in state:
                state["step"] = step_counter(p, group["capturable"])
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            states.append(state)
        steps = adam_steps_(states, group["capturable"])
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]
        adam_moments_(exp_avgs, exp_avg_sqs, grads, group["betas"])
        return adam_direction(exp_avgs, exp_avg_sqs, steps, group["betas"], group["eps"])
