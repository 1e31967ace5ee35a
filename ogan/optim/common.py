r"""What the optimizers here share: Adam's arithmetic, hyperparameter checks, closure handling.

Adam's update is reused in parts: :class:`~ogan.optim.OptimisticAdam` applies the Adam direction
with optimism, :class:`~ogan.optim.PastExtraAdam` moves along it without updating the moments.
The arithmetic is torch's (``torch.optim.adam``, foreach form) in the same order, so a direction
equals the one ``torch.optim.Adam`` would step along:

.. math::
    m \leftarrow \beta_1 m + (1-\beta_1) g, \quad v \leftarrow \beta_2 v + (1-\beta_2) g^2,
    \qquad d = \frac{m/(1-\beta_1^t)}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}

The step counter t is a Python number by default (torch's ``capturable=False``: the bias
corrections are host arithmetic, today's exact numbers). With ``capturable=True`` it is a 0-d
float32 tensor on the parameter's device and the bias corrections are device ops
(:func:`adam_steps_`, :func:`adam_direction` given tensors), as in torch's capturable branch of
``_multi_tensor_adam``: nothing in the step reads a value back to the host, so the step can be
captured in a CUDA graph and replayed with the counter advancing on the device. The two differ
by float rounding only (:math:`\beta^t` in float32 on the device, in float64 on the host).
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

import torch
from torch import Tensor


def adam_moments_(
    exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor], grads: list[Tensor], betas: Sequence[float]
) -> None:
    """Advance Adam's first and second moments with ``grads``, in place."""
    beta1, beta2 = betas
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)


def step_counter(param: Tensor, capturable: bool, count: float | Tensor = 0) -> float | Tensor:
    """A step counter for ``param``'s state: a Python number, or with ``capturable`` a 0-d
    float32 tensor on ``param``'s device (torch.optim's dtype for it), holding ``count``.

    Converting an existing counter reads it once (a switch of ``capturable`` happens before the
    first step the graph path captures, never inside one).
    """
    if not capturable:
        return int(count) if isinstance(count, Tensor) else count
    if isinstance(count, Tensor) and count.device == param.device:
        return count.to(torch.float32)
    return torch.tensor(float(count), dtype=torch.float32, device=param.device)


def adam_steps_(
    states: Sequence[MutableMapping[str, Any]], capturable: bool
) -> list[float | Tensor]:
    """Advance the ``"step"`` counter of each Adam state by one; returns the counters.

    Counters follow ``capturable`` (:func:`step_counter`): host numbers advanced on the host, or
    device tensors advanced by one foreach add, which reads nothing back.
    """
    for state in states:
        if isinstance(state["step"], Tensor) != capturable:  # switched since the last step
            state["step"] = step_counter(state["exp_avg"], capturable, state["step"])
    if not capturable:
        for state in states:
            state["step"] += 1
        return [state["step"] for state in states]
    steps = [state["step"] for state in states]
    torch._foreach_add_(steps, 1)
    return steps


def _one_minus_powers(beta: float, steps: list[Tensor]) -> list[Tensor]:
    """1 - beta**t for every device-side counter t, on the device."""
    powers = torch._foreach_pow(beta, steps)
    torch._foreach_neg_(powers)
    torch._foreach_add_(powers, 1)
    return powers


def adam_direction(
    exp_avgs: list[Tensor],
    second_moments: list[Tensor],
    steps: Sequence[float | Tensor],
    betas: Sequence[float],
    eps: float,
) -> list[Tensor]:
    """The bias-corrected Adam direction d per tensor (new tensors), at each tensor's step t.

    ``second_moments`` is ``exp_avg_sq``, or ``max_exp_avg_sq`` for AMSGrad. ``steps`` are host
    numbers, or device tensors (``capturable``): the bias corrections are then computed on the
    device, with no host read.
    """
    beta1, beta2 = betas
    denom = torch._foreach_sqrt(second_moments)
    if steps and isinstance(steps[0], Tensor):
        counters = list(steps)
        corrections2 = _one_minus_powers(beta2, counters)
        torch._foreach_sqrt_(corrections2)
        torch._foreach_div_(denom, corrections2)
        corrections1: list[Tensor] | list[float] = _one_minus_powers(beta1, counters)
    else:
        torch._foreach_div_(denom, [(1 - beta2**t) ** 0.5 for t in steps])
        corrections1 = [1 - beta1**t for t in steps]
    torch._foreach_add_(denom, eps)
    direction = torch._foreach_div(exp_avgs, denom)
    torch._foreach_div_(direction, corrections1)
    return direction


def check_hyperparameters(
    *,
    lr: float | None = None,
    betas: Sequence[float] | None = None,
    eps: float | None = None,
    weight_decay: float | None = None,
    momentum: float | None = None,
) -> None:
    """Raise ValueError, in torch.optim's words, for the first invalid value (None: unchecked).

    The comparisons are written so that NaN fails them.
    """
    if lr is not None and not lr >= 0.0:
        raise ValueError(f"Invalid learning rate: {lr}")
    if eps is not None and not eps >= 0.0:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if betas is not None:
        if len(betas) != 2:
            raise ValueError(f"Invalid beta parameters: {betas}; expected (beta1, beta2)")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
    if momentum is not None and not 0.0 <= momentum < 1.0:
        raise ValueError(f"Invalid momentum value: {momentum}")
    if weight_decay is not None and not weight_decay >= 0.0:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")


def call_closure(closure: Callable[[], float] | None) -> float | None:
    """``step(closure)``'s first act: re-evaluate the loss with gradients on (None: no closure)."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()
