"""Optimizers that wrap another optimizer: ⊥Grad (:class:`Ortho`), :class:`Lookahead` and
:class:`GradNormProbe`.

A wrapper shares the base optimizer's ``param_groups`` (the same dicts), so learning-rate
schedulers and ``zero_grad`` act on both. Its ``state_dict`` nests the base's, and it forwards
``train()``/``eval()`` to a base that has modes (schedule-free optimizers: see :func:`set_mode`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from ogan.optim.common import call_closure
from ogan.projection import EPS, ProjectionStats, member_slices, orthogonalize_, tensor_norms


def set_mode(optimizer: Optimizer, mode: str) -> None:
    """Call ``optimizer.train()`` or ``optimizer.eval()`` where it has them.

    Schedule-free optimizers (Defazio et al. 2024, the ``schedulefree`` package) keep the
    weights at a training point and must be switched to their evaluation point, the averaged
    iterate, before evaluating (``eval()``) and back before the next step (``train()``);
    torch.optim's optimizers have no modes, and this is a no-op for them.
    """
    if mode not in ("train", "eval"):
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
    method = getattr(optimizer, mode, None)
    if callable(method):
        method()


class _Wrapper(Optimizer):
    """Common plumbing: shared param groups, closure handling, extrapolation forwarding."""

    def __init__(self, base: Optimizer):
        if not isinstance(base, Optimizer):
            raise TypeError(f"expected a torch.optim.Optimizer to wrap, got {type(base).__name__}")
        self.base = base
        # Empty defaults: the base's groups stay exactly as they are (only shared).
        super().__init__(base.param_groups, {})
        self.param_groups = base.param_groups

    @property
    def extrapolation(self) -> str | None:
        """``"extragradient"``, ``"past"`` or None: how the base optimizer extrapolates."""
        return getattr(self.base, "extrapolation", None)

    def extrapolate(self) -> None:
        if self.extrapolation is None:
            raise TypeError(f"{type(self.base).__name__} has no extrapolation step")
        self.base.extrapolate()

    def restore_anchor(self) -> None:
        """Return the parameters to the point the pending extrapolation started from, if any."""
        restore = getattr(self.base, "restore_anchor", None)
        if restore is not None:
            restore()

    def train(self) -> None:
        """Put the base optimizer in training mode, if it has modes (see :func:`set_mode`)."""
        set_mode(self.base, "train")

    def eval(self) -> None:
        """Put the base optimizer in evaluation mode, if it has modes (see :func:`set_mode`)."""
        set_mode(self.base, "eval")

    def _params_with_grad(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"] if p.grad is not None]

    def _members(self) -> int | None:
        """A population's member count (its groups' ``members`` key), None for one model."""
        members = {group.get("members") for group in self.param_groups}
        if len(members) != 1:
            raise ValueError(f"parameter groups of one population differ in 'members': {members}")
        (count,) = members
        return count

    def _own_state(self) -> dict[str, Any]:
        return {}

    def _load_own_state(self, state: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {"base": self.base.state_dict(), **self._own_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base.load_state_dict(state_dict["base"])
        self.param_groups = self.base.param_groups  # load_state_dict made new group dicts
        self._load_own_state(state_dict)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base!r})"


class Ortho(_Wrapper):
    r"""⊥Grad around any optimizer.

    Prieto et al. 2025, *Grokking at the Edge of Numerical Stability*, eq. 11–12 and the
    official ``orthograd.py``.

    Before every step of the base optimizer, each parameter's gradient loses its component along
    that parameter's current weights (the fused kernel :func:`ogan.orthogonalize_`):

    .. math::
        g' = g - \frac{\langle g, w\rangle}{\langle w, w\rangle + \epsilon} w, \qquad
        g' \leftarrow g' \, \frac{\lVert g\rVert}{\lVert g'\rVert + \epsilon} \ \text{(renorm)}

    Args:
        base: the optimizer to wrap (any ``torch.optim.Optimizer``).
        renorm: rescale to the original norm, as the official ``orthograd.py`` does (default);
            ``False`` gives the paper's unscaled rule (eq. 11–12).
        eps: the denominator guard (1e-30, the reference code's value).
        enabled: project (default); ``False`` makes the wrapper a pass-through, for ablations.
        impl: the kernel implementation (``"auto"``; see :func:`ogan.orthogonalize_`).

    What happens to ``.grad``: the projection is applied **in place**, so after :meth:`step`
    (or :meth:`extrapolate`) each ``p.grad`` holds the projected gradient that the base optimizer
    used. This saves a copy of every gradient per step; call ``zero_grad()`` as usual.
    The per-tensor norms of the last projection are in :attr:`last_stats`.

    Populations: a parameter group with ``"members": P`` holds P independent models stacked along
    the leading dimension of each of its tensors (``ogan.train_population``). Each member's slice
    is projected against that member's own weights (the slices are just more segments of the one
    fused kernel call), and :attr:`last_stats` lists the slices member by member. Every group
    must then hold the same members (a wrapped optimizer may split them into several groups).
    """

    def __init__(
        self,
        base: Optimizer,
        *,
        renorm: bool = True,
        eps: float = EPS,
        enabled: bool = True,
        impl: str = "auto",
    ):
        if not eps >= 0.0:
            raise ValueError(f"Invalid eps: {eps}")
        super().__init__(base)
        self.renorm = renorm
        self.eps = eps
        self.enabled = enabled
        self.impl = impl
        self.last_stats: ProjectionStats | None = None

    def project(self) -> ProjectionStats | None:
        """Project the current gradients against the current weights (in place)."""
        if not self.enabled:
            self.last_stats = None
            return None
        with torch.no_grad():
            grads, refs = self._pairs()
            self.last_stats = orthogonalize_(
                grads, refs, renorm=self.renorm, eps=self.eps, impl=self.impl
            )
        return self.last_stats

    def _pairs(self) -> tuple[list[Tensor], list[Tensor]]:
        """(gradients, references) to project: whole tensors, or each member's slices in turn."""
        params, count = self._params_with_grad(), self._members()
        if count is None:
            return [p.grad for p in params], params
        return member_slices([p.grad for p in params], count), member_slices(params, count)

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = call_closure(closure)
        # After an extrapolation the update starts from w_t, not from the extrapolated point where
        # the gradients were taken: w_t is the reference to project against.
        self.restore_anchor()
        self.project()  # under no_grad; the base step has its own
        self.base.step()
        return loss

    def extrapolate(self) -> None:
        # "past" extrapolation reuses the stored previous gradient: nothing fresh to project.
        if self.extrapolation == "extragradient":
            self.project()
        super().extrapolate()

    def __repr__(self) -> str:
        return f"Ortho({self.base!r}, renorm={self.renorm}, enabled={self.enabled})"


class Lookahead(_Wrapper):
    r"""Lookahead (Zhang et al. 2019), for games as lookahead-minmax (Chavdarova et al. 2021).

    The base optimizer takes ``k`` fast steps; then the slow weights move toward the fast ones
    and the fast weights restart from them; the base optimizer's own state is kept:

    .. math::
        \phi \leftarrow \phi + \alpha(\theta - \phi), \qquad \theta \leftarrow \phi

    Args:
        base: the inner optimizer.
        k: fast steps per synchronisation (default 5).
        alpha: slow-weight step size in (0, 1] (default 0.5).
        auto_sync: synchronise after every ``k`` calls of :meth:`step` (default). A two-player
            game passes ``False`` and calls :meth:`sync` on both players together every ``k``
            game steps, so that both synchronise at the same point whatever ``d_steps`` is.
    """

    def __init__(self, base: Optimizer, *, k: int = 5, alpha: float = 0.5, auto_sync: bool = True):
        if not (isinstance(k, int) and k >= 1):
            raise ValueError(f"Invalid k: {k}; expected an integer >= 1")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"Invalid alpha: {alpha}; expected 0 < alpha <= 1")
        super().__init__(base)
        self.k = k
        self.alpha = alpha
        self.auto_sync = auto_sync
        self.fast_steps = 0
        for p in self._all_params():
            self.state[p]["slow"] = p.detach().clone()

    def _all_params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = self.base.step(closure)
        self.fast_steps += 1
        if self.auto_sync and self.fast_steps % self.k == 0:
            self.sync()
        return loss

    @torch.no_grad()
    def sync(self) -> None:
        """slow <- slow + alpha (fast - slow); fast <- slow, for every parameter."""
        params = self._all_params()
        slow = [self.state[p]["slow"] for p in params]
        torch._foreach_lerp_(slow, params, self.alpha)
        torch._foreach_copy_(params, slow)

    def _own_state(self) -> dict[str, Any]:
        return {
            "lookahead": {
                "k": self.k,
                "alpha": self.alpha,
                "fast_steps": self.fast_steps,
                "slow": [self.state[p]["slow"].clone() for p in self._all_params()],
            }
        }

    def _load_own_state(self, state: dict[str, Any]) -> None:
        own = state["lookahead"]
        self.k, self.alpha, self.fast_steps = own["k"], own["alpha"], own["fast_steps"]
        params = self._all_params()
        if len(own["slow"]) != len(params):
            raise ValueError(
                f"state has slow weights for {len(own['slow'])} parameters, "
                f"this optimizer has {len(params)}"
            )
        for p, slow in zip(params, own["slow"]):
            self.state[p]["slow"] = slow.to(device=p.device, dtype=p.dtype).clone()

    def __repr__(self) -> str:
        return f"Lookahead({self.base!r}, k={self.k}, alpha={self.alpha})"


class GradNormProbe(_Wrapper):
    """Records the gradients' per-tensor norms just before each step of the base optimizer.

    torch.optim's optimizers never write ``.grad``; others may (schedule-free AdamW divides it
    by its second-moment estimate in place), so what ``.grad`` holds after their step is not the
    gradient they used. :attr:`last_norms` is: the norms of the parameters that had a gradient,
    in parameter-group order (an empty vector when none had); for a population (``members``
    groups), each member's slices in turn, member by member.
    """

    def __init__(self, base: Optimizer):
        super().__init__(base)
        self.last_norms: Tensor | None = None

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = call_closure(closure)
        params, count = self._params_with_grad(), self._members()
        if params:
            grads = [p.grad for p in params]
            self.last_norms = tensor_norms(grads if count is None else member_slices(grads, count))
        else:
            device = self.param_groups[0]["params"][0].device
            self.last_norms = torch.empty(0, device=device)
        self.base.step()
        return loss
