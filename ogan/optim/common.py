r"""What the optimizers here share: Adam's arithmetic, hyperparameter checks, closure handling.

Adam's update is reused in parts: :class:`~ogan.optim.OptimisticAdam` applies the Adam direction
with optimism, :class:`~ogan.optim.PastExtraAdam` moves along it without updating the moments.
The arithmetic is torch's (``torch.optim.adam``, foreach form) in the same order, so a direction
equals the one ``torch.optim.Adam`` would step along:

.. math::
    m \leftarrow \beta_1 m + (1-\beta_1) g, \quad v \leftarrow \beta_2 v + (1-\beta_2) g^2,
    \qquad d = \frac{m/(1-\beta_1^t)}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


def adam_direction(
    exp_avgs: list[Tensor],
    second_moments: list[Tensor],
    steps: Sequence[float],
    betas: Sequence[float],
    eps: float,
) -> list[Tensor]:
    """The bias-corrected Adam direction d per tensor (new tensors), at each tensor's step t.

    ``second_moments`` is ``exp_avg_sq``, or ``max_exp_avg_sq`` for AMSGrad.
    """
    beta1, beta2 = betas
    denom = torch._foreach_sqrt(second_moments)
    torch._foreach_div_(denom, [(1 - beta2**t) ** 0.5 for t in steps])
    torch._foreach_add_(denom, eps)
    direction = torch._foreach_div(exp_avgs, denom)
    torch._foreach_div_(direction, [1 - beta1**t for t in steps])
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
