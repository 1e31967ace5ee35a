"""GAN losses on discriminator outputs (logits or critic scores), and the R1 penalty.

Each loss gives the discriminator's loss as two terms, one from real data and one from fakes,
because D gradient surgery projects their gradients against each other. Every term is a mean
over the batch; the discriminator minimises ``real + fake``, the generator minimises ``g``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class GANLoss:
    name: str
    description: str
    real: Callable[[Tensor], Tensor]
    """D's loss term on real outputs."""
    fake: Callable[[Tensor], Tensor]
    """D's loss term on (detached) fake outputs."""
    g: Callable[[Tensor], Tensor]
    """G's loss on D's outputs for its fakes."""


LOSSES: dict[str, GANLoss] = {
    "non-saturating": GANLoss(
        "non-saturating",
        "D: -log σ(D(x)) - log(1-σ(D(G(z)))); G: -log σ(D(G(z))) (Goodfellow et al. 2014)",
        real=lambda d: F.softplus(-d).mean(),
        fake=lambda d: F.softplus(d).mean(),
        g=lambda d: F.softplus(-d).mean(),
    ),
    "minimax": GANLoss(
        "minimax",
        "D as non-saturating; G: log(1-σ(D(G(z)))), the zero-sum game",
        real=lambda d: F.softplus(-d).mean(),
        fake=lambda d: F.softplus(d).mean(),
        g=lambda d: -F.softplus(d).mean(),
    ),
    "hinge": GANLoss(
        "hinge",
        "D: relu(1-D(x)) + relu(1+D(G(z))); G: -D(G(z)) (Lim & Ye 2017)",
        real=lambda d: F.relu(1 - d).mean(),
        fake=lambda d: F.relu(1 + d).mean(),
        g=lambda d: -d.mean(),
    ),
    "wasserstein": GANLoss(
        "wasserstein",
        "D: -D(x) + D(G(z)); G: -D(G(z)) (Arjovsky et al. 2017; no clipping: add r1)",
        real=lambda d: -d.mean(),
        fake=lambda d: d.mean(),
        g=lambda d: -d.mean(),
    ),
}


def r1_penalty(d_real: Tensor, real: Tensor, gamma: float) -> Tensor:
    r"""R1 (Mescheder et al. 2018): :math:`\frac{\gamma}{2}\mathbb{E}\lVert\nabla_x D(x)\rVert^2`.

    The expectation is over real data.

    ``real`` must require grad and ``d_real = D(real)``; the graph is kept for D's backward.
    """
    (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
    return r1_from_gradient(grad, gamma)


def r1_from_gradient(grad: Tensor, gamma: float) -> Tensor:
    r"""The R1 penalty from :math:`\nabla_x D(x)` on a batch of real samples (a population takes
    the gradient of all its members at once, then this per member)."""
    return 0.5 * gamma * grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()
