"""Whether an optimizer may train a population: measured, not declared.

A population (``ogan.train_population``) stacks its members' tensors along a leading dimension
and hands one optimizer the stacked tensors. That trains every member correctly only if the
optimizer updates each member's slice exactly as it would that member alone. Element-wise rules
(SGD, Adam, Lion) do; anything that takes a norm, a factorisation or a statistic over a whole
tensor (SOAP's preconditioners, Prodigy's global step size, LAMB's trust ratio) couples the
members, and a population of them would be silently wrong. No attribute or allow-list can be
trusted for that (a third-party class cannot say, and a subclass may break what its base did),
so :func:`check` measures it on the optimizer itself:

* stacked copies of small random tensors, shaped like a player's parameters (a matrix, a bias,
  a convolution kernel), :data:`MEMBERS` members of deliberately different scales (an update
  that mixes members then shows at once), and the population's parameter group carries
  ``members`` as ``ogan``'s population does (⊥Grad and Muon act per member through it);
* :data:`STEPS` steps on a quadratic whose gradient depends on the weights (so the optimizer's
  state and the weights feed back, as in training), with the extrapolation protocol
  (``extrapolate`` then ``step``) where the optimizer has one and schedule-free modes switched
  to training;
* each member's update against the same optimizer's on that member alone, in float64
  (:data:`DTYPES`); admitted when every tensor's update agrees to :data:`RTOL` of its size (the
  stacked kernels sum in another order, nothing more).

The whole check takes milliseconds; callers cache it per optimizer spec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from math import inf
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

MEMBERS = 3
"""Members of the trial population: two could pass by symmetry; three of unequal scale do not."""
SHAPES: tuple[tuple[int, ...], ...] = ((6, 4), (6,), (3, 2, 3, 3))
"""A linear layer's weight and bias and a convolution's kernel: the tensors a player holds."""
STEPS = 20
"""Momentum, bias correction and lookahead's 5-step synchronisation show within a few steps;
step-size estimators couple members later (pytorch_optimizer's DAdaptLion: between 16 and 20
steps; AdaNorm, AdaShift, SWATS, FAdam: after 6). A coupling that starts later still (a
preconditioner first computed after thousands of steps) escapes any short trial: the check is
evidence, not proof. Its cost is the optimizer's: up to 7 trial runs at each of 3 learning
rates (measured at 30 steps on this project's loaded 2-core machine: Adam 0.4 s; Muon 34 s,
its bfloat16 Newton-Schulz taking ~0.1 s a call on this CPU)."""
SCALES = (1.0, 30.0, 0.03)
"""Each member's weights and gradients are scaled by its own factor (see the module docstring)."""
DTYPES = (torch.float64, torch.float32)
"""The trial's precision: float64, so that an update far below a weight's float32 resolution
(Prodigy's first steps, d0 * lr ~ 1e-9) is still compared and reordered sums cannot look like
mixing; float32 for an optimizer that cannot run in float64 (pytorch_optimizer's FAdam)."""
RTOL = {torch.float64: 1e-6, torch.float32: 1e-4}
NOISE_FACTOR = 10
"""Beyond :data:`RTOL`, a difference is still rounding if it is within this factor of what a
population of *one* member differs by (which cannot mix members): Muon's bfloat16
Newton-Schulz differs by ~2e-4 in both, an optimizer that mixes by orders of magnitude more
than its population of one (AdamS: 3e-4 against 0)."""
ROUNDING_MAX = 1e-3
"""The most a population of one may differ by and still count as rounding (bfloat16's unit is
8e-3): more means the stacked layout changes the optimizer's maths itself (SOAP preconditions
a (1, 6, 4) tensor as a 3-D one), so it cannot excuse a population's difference."""
"""Admitted when every member's update (weights after minus before) equals its standalone
run's to this fraction of the update's largest element (reordering: ~1e-15 in float64)."""


@dataclass(frozen=True)
class Admission:
    """The outcome of :func:`check`, recorded with every run of a sweep."""

    admitted: bool
    reason: str  # one phrase, said to the user when a population is refused
    max_difference: float  # the largest |population - standalone| over members and tensors

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check(build: Callable[[Any], Optimizer]) -> Admission:
    """Run ``build(param_groups)`` on a trial population and on each member alone; compare.

    ``build`` makes the optimizer under test from parameters or parameter groups (its
    hyperparameters, the learning rate included, bound).
    An exception while the population trains is a refusal (its message is the reason); one
    while a member trains alone propagates: the optimizer fails as a standalone run too.
    """
    for dtype in DTYPES:
        problem = _problem(dtype)
        try:
            alone = [_train(build, problem, m, stacked=False) for m in range(MEMBERS)]
            break
        except Exception:
            if dtype == DTYPES[-1]:
                raise  # it fails in float32 too: its own error, not the trial's precision
    try:
        together = _train(build, problem, list(range(MEMBERS)), stacked=True)
    except Exception as exc:  # any error of an optimizer on stacked tensors: it is not admitted
        return Admission(False, f"it fails on stacked tensors ({type(exc).__name__}: {exc})",
                         float("nan"))  # fmt: skip
    largest, worst = _compare(together, alone, range(MEMBERS))
    if largest <= RTOL[dtype]:
        return Admission(True, "every member's update equals its standalone run's", largest)
    # A population of one cannot mix members: what it differs by is the stacked layout's
    # rounding (Muon's Newton-Schulz runs in bfloat16), the floor a population is held to.
    floor = max(
        _compare(_train(build, problem, [m], stacked=True), [alone[m]], [0])[0]
        for m in range(MEMBERS)
    )
    if largest <= NOISE_FACTOR * min(floor, ROUNDING_MAX):
        return Admission(
            True,
            f"every member's update equals its standalone run's to {largest:.2g}, within "
            f"{NOISE_FACTOR}x what a population of one differs by ({floor:.2g})",
            largest,
        )
    diff, m, i = worst
    return Admission(
        False,
        f"member {m}'s update differs from the same optimizer's on it alone by {diff:.3g} "
        f"of its size (tensor of shape {SHAPES[i]}, {STEPS} steps, {MEMBERS} members)",
        largest,
    )


def _compare(
    together: list[Tensor], alone: list[list[Tensor]], members: Any
) -> tuple[float, tuple[float, int, int]]:
    """The largest relative difference of a stacked run's slices from the standalone runs,
    and where it is: (difference, member, tensor)."""
    worst = (0.0, 0, 0)
    for slot, m in enumerate(members):
        for i, (a, b) in enumerate(zip(together, alone[slot])):
            worst = max(worst, (_relative_difference(a[slot], b), m, i))
    return worst[0], worst


def _relative_difference(a: Tensor, b: Tensor) -> float:
    """max |a - b| / max |b| (inf where only one is non-finite, 0 where both updates are 0)."""
    if not torch.equal(a.isfinite(), b.isfinite()):
        return inf
    a, b = a[b.isfinite()], b[b.isfinite()]
    scale = float(b.abs().max()) if b.numel() else 0.0
    diff = float((a - b).abs().max()) if b.numel() else 0.0
    return 0.0 if diff == 0.0 else diff / scale if scale > 0 else inf


Tensors = list[list[Tensor]]  # per member, per shape


def _problem(dtype: torch.dtype) -> tuple[Tensors, Tensors, Tensors]:
    """Per member: initial weights, the quadratic's minimum and curvature (fixed seed)."""
    gen = torch.Generator().manual_seed(20260)
    inits, targets, curvatures = [], [], []
    for scale in SCALES:
        inits.append([scale * torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES])
        targets.append([scale * torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES])
        curvatures.append([0.5 + torch.rand(s, generator=gen, dtype=dtype) for s in SHAPES])
    return inits, targets, curvatures


def _train(
    build: Callable[[Any], Optimizer],
    problem: tuple[Tensors, Tensors, Tensors],
    members: int | list[int],
    *,
    stacked: bool,
) -> list[Tensor]:
    """STEPS steps of the optimizer on the quadratic; the updates (weights after - before).

    ``stacked``: ``members`` (a list) as one population, each slice with its own quadratic,
    in a parameter group with ``members`` set; else the one member ``members`` alone.
    """
    from ogan.optim.wrappers import set_mode

    inits, targets, curvatures = problem
    group: dict[str, Any] = {}
    if stacked:
        assert isinstance(members, list)
        tensors, target, curve = (
            [torch.stack([per[m][i] for m in members]) for i in range(len(SHAPES))]
            for per in (inits, targets, curvatures)
        )
        group["members"] = len(members)
    else:
        assert isinstance(members, int)
        tensors, target, curve = inits[members], targets[members], curvatures[members]
    leaves = [t.clone().requires_grad_(True) for t in tensors]
    opt = build([{"params": leaves, **group}])
    set_mode(opt, "train")

    def grads() -> None:
        with torch.no_grad():
            for p, t, c in zip(leaves, target, curve):
                p.grad = c * (p - t)  # the gradient of sum(c (p - t)^2 / 2)

    extrapolation = getattr(opt, "extrapolation", None)
    for _ in range(STEPS):
        if extrapolation is not None:
            if extrapolation == "extragradient":
                grads()
            opt.extrapolate()
        grads()
        opt.step()
    set_mode(opt, "eval")  # schedule-free: compare the points a run is evaluated at
    return [p.detach() - t for p, t in zip(leaves, tensors)]
