r"""Extrapolation methods for games (Gidel et al. 2019, *A Variational Inequality Perspective*).

Each update of a player is two half-steps driven by the game, which evaluates **both** players'
gradients at the extrapolated point before either updates:

.. math::
    w_{t+1/2} = w_t - \eta F(w_t) \quad\text{(extrapolate)}, \qquad
    w_{t+1} = w_t - \eta F(w_{t+1/2}) \quad\text{(step, from the original point)}

Protocol: set ``.grad`` to :math:`F(w_t)`, call :meth:`extrapolate`; set ``.grad`` to
:math:`F(w_{t+1/2})`, call :meth:`step`. The original point is stored by value, and
``state_dict`` carries it (``"anchors"``), so a checkpoint taken between the two half-steps
resumes exactly. ``step`` without a preceding ``extrapolate`` is a plain step of the underlying
method; a second ``extrapolate`` before ``step`` is an error (it would move the anchor).

Both half-steps are device work only (foreach copies and the base method's update), so with the
base's ``capturable=True`` (Adam's device-side step counters) an update can be captured in a CUDA
graph; the anchors' bookkeeping is host logic that runs identically at every step, so the
captured graph replays it faithfully.

The attribute ``extrapolation`` tells the game what :meth:`extrapolate` needs: ``"extragradient"``
needs fresh gradients at :math:`w_t` (two gradient evaluations per update); ``"past"`` reuses the
stored previous one (one evaluation per update).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar

import torch
from torch import Tensor
from torch.optim import SGD, Adam

from ogan.optim.common import adam_direction, call_closure


class _Anchored:
    """Stores w_t before extrapolating and restores it before the real step.

    Anchors live outside ``self.state``: torch's SGD and Adam initialise a parameter's state
    when it is empty, and an extra key there would look like initialised state. ``state_dict``
    carries the pending anchors under ``"anchors"`` (one entry per parameter, None if none).
    """

    param_groups: list[dict]

    def _params(self, with_grad: bool) -> list[Tensor]:
        return [
            p
            for group in self.param_groups
            for p in group["params"]
            if p.grad is not None or not with_grad
        ]

    @property
    def _anchors(self) -> dict[Tensor, Tensor]:
        """Pending anchors: parameter -> its value before the extrapolation."""
        return self.__dict__.setdefault("_anchor_map", {})

    def _save_anchor(self, params: list[Tensor]) -> None:
        if self._anchors:
            # A second extrapolation would anchor at w_{t+1/2} and the step would start there.
            raise RuntimeError(
                "extrapolate() called twice before step(); call step() (or restore_anchor()) "
                "between two extrapolations"
            )
        buffers = self.__dict__.setdefault("_anchor_buffers", {})
        for p in params:
            if p not in buffers:
                buffers[p] = torch.empty_like(p, memory_format=torch.preserve_format)
        anchors = [buffers[p] for p in params]
        torch._foreach_copy_(anchors, [p.detach() for p in params])
        self._anchors.update(zip(params, anchors))

    @torch.no_grad()
    def restore_anchor(self) -> None:
        """Return to w_t if an extrapolation is pending (a no-op otherwise)."""
        if self._anchors:
            params = list(self._anchors)
            torch._foreach_copy_(params, [self._anchors[p] for p in params])
            self._anchors.clear()

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Return to the anchor w_t if an extrapolation is pending, then step the base method."""
        loss = call_closure(closure)
        self.restore_anchor()
        super().step()  # type: ignore[misc]
        return loss

    def state_dict(self) -> dict:
        state = super().state_dict()  # type: ignore[misc]
        anchors = self._anchors
        state["anchors"] = [
            anchors[p].clone() if p in anchors else None for p in self._params(with_grad=False)
        ]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        anchors = state_dict.pop("anchors", None)
        super().load_state_dict(state_dict)  # type: ignore[misc]
        self._anchors.clear()
        if anchors is not None:
            params = self._params(with_grad=False)
            if len(anchors) != len(params):
                raise ValueError(f"state has {len(anchors)} anchors for {len(params)} parameters")
            for p, a in zip(params, anchors):
                if a is not None:
                    self._anchors[p] = a.to(device=p.device, dtype=p.dtype).clone()


class _Extragradient(_Anchored):
    """Extrapolation by one full step of the base method from w_t (fresh gradients at w_t)."""

    extrapolation: ClassVar[str] = "extragradient"

    @torch.no_grad()
    def extrapolate(self) -> None:
        self._save_anchor(self._params(with_grad=True))
        # The base method's step (SGD's, Adam's), skipping _Anchored.step's return to the anchor.
        super(_Anchored, self).step()  # type: ignore[misc]


class ExtraSGD(_Extragradient, SGD):
    r"""Extragradient with SGD half-steps (Korpelevich 1976; Gidel et al. 2019, Alg. 1).

    ``extrapolate``: :math:`w_{t+1/2} = w_t - \eta g(w_t)`;
    ``step``: :math:`w_{t+1} = w_t - \eta g(w_{t+1/2})`. Arguments are those of
    :class:`torch.optim.SGD`, whose update each half-step is (with momentum, its buffer advances
    at both half-steps).
    """


class ExtraAdam(_Extragradient, Adam):
    r"""Extra-Adam (Gidel et al. 2019, Alg. 4): both half-steps are full Adam steps.

    ``extrapolate`` updates the moments with :math:`g(w_t)` and moves to
    :math:`w_{t+1/2} = w_t - \eta\hat m/(\sqrt{\hat v}+\epsilon)`; ``step`` updates them again with
    :math:`g(w_{t+1/2})` and moves from :math:`w_t`. The step counter (bias correction) advances at
    both half-steps, as in the authors' code. Arguments are those of :class:`torch.optim.Adam`,
    whose implementation performs each half-step.
    """


class PastExtraAdam(_Anchored, Adam):
    r"""Extrapolation from the past with Adam (Popov 1980; Gidel et al. 2019, PastExtraAdam).

    ``extrapolate`` needs no new gradient: it moves along the Adam direction of the current
    moments, which last absorbed the previous half-step's gradient :math:`g(w_{t-1/2})`,

    .. math:: w_{t+1/2} = w_t - \eta\,\hat m_{t}/(\sqrt{\hat v_{t}}+\epsilon),

    without changing them (a no-op before the first step); ``step`` then performs one Adam
    update from :math:`w_t` with :math:`g(w_{t+1/2})`. One gradient evaluation per update.
    Arguments are those of :class:`torch.optim.Adam` (the coupled-weight-decay ones), and its
    ``capturable``: the step counters on the device, so that both half-steps read nothing back
    to the host (the extrapolation's bias corrections too).
    """

    extrapolation: ClassVar[str] = "past"

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        capturable: bool = False,
    ):
        super().__init__(
            params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
            maximize=maximize, capturable=capturable,
        )  # fmt: skip

    @torch.no_grad()
    def extrapolate(self) -> None:
        self._save_anchor(self._params(with_grad=False))
        for group in self.param_groups:
            params = [p for p in group["params"] if "exp_avg" in self.state[p]]
            if not params:
                continue
            states = [self.state[p] for p in params]
            second = "max_exp_avg_sq" if group["amsgrad"] else "exp_avg_sq"
            # capturable: the device-side counters themselves (no host read)
            steps = [s["step"] if group["capturable"] else float(s["step"]) for s in states]
            direction = adam_direction(
                [s["exp_avg"] for s in states], [s[second] for s in states], steps,
                group["betas"], group["eps"],
            )  # fmt: skip
            torch._foreach_add_(params, direction, alpha=-group["lr"])
