"""One run's two-player game: :class:`Game`, stepped and evaluated one generator update at a time.

One *step* is one generator update. Per scheme:

* ``simultaneous``: both players' gradients at the same point (one minibatch), then both update;
* ``alternating``: ``d_steps`` discriminator updates, each on a fresh minibatch, then one
  generator update on fresh noise against the updated discriminator;
* extrapolation methods (extra-*, past-extra-adam): both players extrapolate, both are evaluated
  at the extrapolated point, both update from the original point (Gidel et al. 2019).

Design rules against the usual GAN bugs: fakes are detached for D; the G step back-propagates
into G's parameters only, so D never receives a gradient from it; evaluation runs in eval mode
under ``no_grad`` with its own, re-seeded noise, so evaluating never changes training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ogan import workloads
from ogan.game import stats as gstats
from ogan.game.batching import Single
from ogan.game.config import TrainConfig
from ogan.game.losses import LOSSES, r1_from_gradient
from ogan.game.streams import Streams, key
from ogan.optim.wrappers import GradNormProbe, Lookahead, Ortho, set_mode
from ogan.projection import orthogonalize_, tensor_norms
from ogan.workloads.base import Batch, Workload

TINY = torch.finfo(torch.float32).tiny  # guards 0/0 in removed fractions of zero gradients


@dataclass
class Player:
    """One player of a game: its network, the parameters it trains, its optimizer chain.

    ``module`` is the player's ``nn.Module`` in one run and its members' :class:`Stacked`
    networks in a population (``net`` names it there). ``ortho``, ``lookahead`` and ``probe``
    are the :class:`Ortho` / :class:`Lookahead` / :class:`GradNormProbe` links of the chain
    (None where absent), found once so the step does not search the chain every time.
    """

    module: Any  # nn.Module, or a population's Stacked
    params: list[Tensor]
    optimizer: torch.optim.Optimizer
    ortho: Ortho | None
    lookahead: Lookahead | None
    probe: GradNormProbe | None  # optimizers that may write .grad: the norms before their step
    lr: float = math.nan

    @property
    def net(self) -> Any:
        """The population's stacked networks (the same object as ``module``)."""
        return self.module


def _may_write_grad(sources: Mapping[str, Any]) -> bool:
    """Whether an optimizer's code is other than ogan's and torch's, which never write .grad."""
    targets = [s["target"] for k, s in sources.items() if k.startswith("optimizer")]
    return any(not t.startswith(("ogan.", "torch.")) for t in targets)


def _find(opt: torch.optim.Optimizer, kind: type) -> Any:
    while opt is not None:
        if isinstance(opt, kind):
            return opt
        opt = getattr(opt, "base", None)
    return None


def stream_seeds(seed: int) -> tuple[int, int, int]:
    """Independent seeds for initialisation, training batches and evaluation noise."""
    init, data, evaluation = np.random.SeedSequence(seed).generate_state(3)
    return int(init), int(data), int(evaluation)


class TwoPlayerGame:
    """The step, written once, for one run (:class:`Game`) and for a population
    (:class:`ogan.game.population.PopulationGame`).

    Every piece of the step's maths is here: the update schedule (the module docstring's
    schemes), both players' backward passes, D gradient surgery, the projection statistics,
    the step's record, the evaluation. How a per-member quantity is held — one run, or a
    leading member dimension — is ``self.batching`` (:mod:`ogan.game.batching`). A subclass
    builds the networks and supplies the batches (:meth:`_sample`), which parameters a player
    trains (:meth:`_trainable`) and one member's networks for evaluation (:meth:`_networks`).
    """

    config: TrainConfig
    device: torch.device
    workload: Workload
    batching: Single
    eval_gen: torch.Generator
    eval_seeds: list[int]
    streams: Streams | None = None  # counter-based training streams (config.streams)
    record_stats: bool = True  # off only to measure what the statistics cost (bench perf)

    def _setup(self, G: Any, D: Any) -> None:
        """The players and what the step needs besides the networks ``G`` and ``D``."""
        spec = self.config.optimizer
        self.g = self._player(G, spec["lr"], "g")
        self.d = self._player(D, spec["lr"] * spec["lr_ratio"], "d")
        self.extrapolation: str | None = getattr(self.g.optimizer, "extrapolation", None)
        self.loss = LOSSES[self.config.loss] if self.config.loss else None
        self.surgery = bool(spec["surgery"])
        self.grad_evals = [0, 0]  # G, D (per member in a population)
        self.layout = gstats.RowLayout(len(self.g.params), len(self.d.params))
        self._surgery_stats: tuple[Tensor, Tensor] | None = None  # (removed, norms before)

    @property
    def core(self) -> TwoPlayerGame:
        """The game itself (what :mod:`ogan.game.graph` inspects; the loop's one-run adapter
        holds a :class:`Game` under the same name)."""
        return self

    def _sample(self) -> Batch:
        raise NotImplementedError

    def _trainable(self, module: Any) -> tuple[list[Tensor], list[Any]]:
        """(the parameters a player trains, the parameter groups its optimizer is built on)."""
        raise NotImplementedError

    def _networks(self, slot: int) -> tuple[nn.Module, nn.Module]:
        """The member at ``slot`` as a pair of plain modules, and its parameters."""
        raise NotImplementedError

    def _member_params(self, slot: int) -> list[Tensor]:
        raise NotImplementedError

    def _player(self, module: Any, lr: float, role: str) -> Player:
        """Player ``role`` ("g" or "d"): its optimizer chain built on ``module``'s parameters."""
        params, groups = self._trainable(module)
        players = self.config.optimizer.get("ortho_players", "both")
        opt = self.config.optimizer_resolved.build(groups, lr=lr, ortho=players in ("both", role))
        lookahead = _find(opt, Lookahead)
        if lookahead is not None:
            lookahead.auto_sync = False  # both players synchronise together (see step)
        ortho = _find(opt, Ortho)  # ⊥Grad records the norms before the step itself
        if ortho is None and _may_write_grad(self.config.sources):
            opt = GradNormProbe(opt)
        set_mode(opt, "train")  # schedule-free optimizers start in eval mode
        return Player(module, params, opt, ortho, lookahead, _find(opt, GradNormProbe), lr)

    # -- gradients --------------------------------------------------------------------------

    def _generate(self, z: Tensor) -> Tensor:
        return self.g.module(z)

    def _d_backward(self, batch: Batch, fake: Tensor) -> Tensor:
        """D's gradients into .grad (fakes detached); returns D's loss (per member)."""
        D, params, b = self.d.module, self.d.params, self.batching
        d_fake = D(fake.detach())
        if self.loss is None:
            loss, _ = b.per_member(self.workload.objective)(d_fake)
            b.total(loss).backward(inputs=params)
            return loss.detach()
        real = batch.real
        if self.config.r1:
            real = real.detach().requires_grad_(True)
        d_real = D(real)
        real_term = b.per_member(self.loss.real)(d_real)
        if self.config.r1:  # d_real[m] depends on real[m] only: one gradient for all members
            (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
            real_term = real_term + b.per_member(r1_from_gradient, (0, None))(grad, self.config.r1)
        fake_term = b.per_member(self.loss.fake)(d_fake)
        loss = real_term + fake_term
        if self.surgery:
            self._surgery(real_term, fake_term, params)
        else:
            b.total(loss).backward(inputs=params)
        return loss.detach()

    def _surgery(self, real_term: Tensor, fake_term: Tensor, params: list[Tensor]) -> None:
        """PCGrad between D's real-data and fake-data gradients, per tensor (per member);
        applies their sum."""
        b = self.batching
        g_real = list(torch.autograd.grad(b.total(real_term), params, allow_unused=True))
        g_fake = list(torch.autograd.grad(b.total(fake_term), params, allow_unused=True))
        # a parameter neither term reaches keeps no gradient, as without surgery
        unused = [x is None and y is None for x, y in zip(g_real, g_fake)]
        g_real = [torch.zeros_like(p) if g is None else g for p, g in zip(params, g_real)]
        g_fake = [torch.zeros_like(p) if g is None else g for p, g in zip(params, g_fake)]
        before = b.norms(torch._foreach_add(g_real, g_fake))  # unprojected
        original_real = torch._foreach_mul(g_real, 1.0)
        s_real = orthogonalize_(b.segments(g_real), b.segments(g_fake),
                                renorm=False, conflict_only=True)  # fmt: skip
        s_fake = orthogonalize_(b.segments(g_fake), b.segments(original_real),
                                renorm=False, conflict_only=True)  # fmt: skip
        torch._foreach_add_(g_real, g_fake)
        for p, g, none in zip(params, g_real, unused):
            p.grad = None if none else g
        kept = b.squares(s_real.norm_projected) + b.squares(s_fake.norm_projected)
        total = b.squares(s_real.norm_before) + b.squares(s_fake.norm_before)
        self._surgery_stats = (1 - kept / total.clamp_min(TINY), before)

    def _g_backward(self, fake: Tensor) -> Tensor:
        b = self.batching
        d_out = b.through(self.d.module, fake)
        if self.loss is not None:
            loss = b.per_member(self.loss.g)(d_out)
        else:
            loss = b.per_member(self.workload.objective)(d_out)[1]
        b.total(loss).backward(inputs=self.g.params)  # D's parameters get no gradient
        return loss.detach()

    def _both_grads(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Both players' gradients at the current point, from one batch; returns their losses."""
        self.g.optimizer.zero_grad(set_to_none=True)
        self.d.optimizer.zero_grad(set_to_none=True)
        fake = self._generate(batch.z)
        loss_d = self._d_backward(batch, fake)
        loss_g = self._g_backward(fake)
        self.grad_evals[0] += 1
        self.grad_evals[1] += 1
        return loss_g, loss_d

    # -- one step ---------------------------------------------------------------------------

    def step(self, index: int) -> Tensor:
        """One generator update (and its discriminator updates); returns the step's record
        (one row per member in a population)."""
        g, d = self.g, self.d
        if self.extrapolation is not None:
            batch = self._sample()
            if self.extrapolation == "extragradient":
                self._both_grads(batch)
                self._surgery_stats = None  # the update's gradients are the ones recorded
            d.optimizer.extrapolate()
            g.optimizer.extrapolate()
            if self.config.fresh_batch:
                batch = self._sample()
            loss_g, loss_d = self._both_grads(batch)
            d.optimizer.step()
            g.optimizer.step()
        elif self.config.scheme == "simultaneous":
            loss_g, loss_d = self._both_grads(self._sample())
            d.optimizer.step()
            g.optimizer.step()
        else:
            for _ in range(self.config.d_steps):
                batch = self._sample()
                d.optimizer.zero_grad(set_to_none=True)
                with torch.no_grad():
                    fake = self._generate(batch.z)
                loss_d = self._d_backward(batch, fake)
                self.grad_evals[1] += 1
                d.optimizer.step()
            batch = self._sample()
            g.optimizer.zero_grad(set_to_none=True)
            loss_g = self._g_backward(self._generate(batch.z))
            self.grad_evals[0] += 1
            g.optimizer.step()
        if g.lookahead is not None and (index + 1) % g.lookahead.k == 0:
            g.lookahead.sync()
            d.lookahead.sync()
        return self._record(loss_g, loss_d)

    def _projection_norms(self, player: Player, surgery: tuple[Tensor, Tensor] | None) -> tuple:
        """(removed fraction, norms after, norms before) of a player's last update.

        ``after`` is None when it must be read from the current gradients (no ⊥Grad: the
        gradients the optimizer used are still in ``.grad``).
        """
        b, ortho, n = self.batching, player.ortho, len(player.params)
        if ortho is None or ortho.last_stats is None:
            probe = player.probe
            after = None if probe is None else b.rows(probe.last_norms, n)
            if surgery is None:
                return None, after, after
            return surgery[0], after, surgery[1]
        s = ortho.last_stats  # member by member in a population (Ortho's members group)
        removed = 1 - b.squares(s.norm_projected) / b.squares(s.norm_before).clamp_min(TINY)
        after = b.rows(s.norm_applied(ortho.renorm, player.params[0].dtype), n)
        if surgery is None:
            return removed, after, b.rows(s.norm_before, n)
        # surgery, then ⊥Grad: the norm before both; the removed fractions compose
        return 1 - (1 - surgery[0]) * (1 - removed), after, surgery[1]

    def _record(self, loss_g: Tensor, loss_d: Tensor) -> Tensor:
        """The step's raw record (see ``RowLayout``; one row per member): one fused norm call
        and a few small ops."""
        if not self.record_stats:
            return torch.stack([loss_g, loss_d], -1)
        b, players = self.batching, (self.g, self.d)
        parts = [self._projection_norms(self.g, None),
                 self._projection_norms(self.d, self._surgery_stats)]  # fmt: skip
        self._surgery_stats = None
        unread = [p for p, (_, after, _) in zip(players, parts) if after is None]
        if unread:  # the gradients still in .grad are the ones the optimizers used
            grads = {id(p): [q.grad for q in p.params if q.grad is not None] for p in unread}
            # one fused call for every member's tensors
            current = tensor_norms([s for p in unread for s in b.segments(grads[id(p)])])
            start = 0
            for i, (player, (removed, after, before)) in enumerate(zip(players, parts)):
                if after is None:
                    k = b.count * len(grads[id(player)])
                    after = b.rows(current[start : start + k], len(player.params))
                    start += k
                    parts[i] = (removed, after, after if before is None else before)
        (removed_g, after_g, before_g), (removed_d, after_d, before_d) = parts
        zero = b.zero
        head = torch.stack([
            loss_g, loss_d,
            zero if removed_g is None else removed_g, zero if removed_d is None else removed_d,
        ], -1)  # fmt: skip
        return torch.cat([head.float(), after_g, before_g, after_d, before_d], -1)

    # -- evaluation -------------------------------------------------------------------------

    def evaluate(self, slot: int = 0) -> dict[str, float]:
        """The workload's metrics of the member at ``slot`` (a run is a member at slot 0), at
        its current point (all NaN if a parameter is not finite)."""
        if not all(torch.isfinite(p).all() for p in self._member_params(slot)):
            return {key: math.nan for key in self.workload.metrics}
        # schedule-free: the evaluation point (the averaged iterate) before reading the networks
        set_mode(self.g.optimizer, "eval")
        set_mode(self.d.optimizer, "eval")
        try:
            G, D = self._networks(slot)
            self.eval_gen.manual_seed(self.eval_seeds[slot])  # the same noise at every evaluation
            modes = G.training, D.training
            G.eval()
            D.eval()
            try:
                with torch.no_grad():
                    return self.workload.evaluate(G, D, self.eval_gen)
            finally:
                G.train(modes[0])
                D.train(modes[1])
        finally:
            set_mode(self.g.optimizer, "train")
            set_mode(self.d.optimizer, "train")


class Game(TwoPlayerGame):
    """The two-player game of one run, stepped and evaluated one generator update at a time.

    :func:`ogan.train` drives it (timing, divergence, history); it is public so that code which
    needs the step on its own — the perf cases that time it, the tests that check its maths
    against closed forms — builds the exact game a run trains rather than a copy of it.

    Args:
        config: a resolved configuration (:func:`ogan.game.resolve`).
        record_stats: False skips the per-step gradient statistics (the record is then just the
            two losses); only to measure what the statistics cost.

    Attributes:
        workload: the workload instance, built from ``config.options``.
        g, d: the generator's and the discriminator's :class:`Player`.
        layout: the column layout of the raw record :meth:`step` returns.
        grad_evals: gradient evaluations so far, ``[G, D]``.
    """

    def __init__(self, config: TrainConfig, record_stats: bool = True):
        self.config = config
        self.record_stats = record_stats
        self.device = torch.device(config.device)
        self.batching = Single(self.device)
        cls = workloads.get(config.workload)
        self.workload = cls(cls.parse_options(**config.options), self.device)
        init_seed, data_seed, eval_seed = stream_seeds(config.seed)
        self.eval_seeds = [eval_seed]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            G, D = self.workload.build_players()
        self.gen = torch.Generator(self.device).manual_seed(data_seed)
        self.eval_gen = torch.Generator(self.device)
        if config.streams == "counter":
            self.streams = Streams(torch.tensor(key(data_seed), device=self.device))
        self._setup(G, D)

    def _trainable(self, module: nn.Module) -> tuple[list[Tensor], list[Any]]:
        params = [p for p in module.parameters() if p.requires_grad]
        return params, params

    def _sample(self) -> Batch:
        if self.streams is not None:
            return self.workload.sample_streams(self.config.batch_size, self.streams)
        return self.workload.sample(self.config.batch_size, self.gen)

    def _networks(self, slot: int) -> tuple[nn.Module, nn.Module]:
        return self.g.module, self.d.module

    def _member_params(self, slot: int) -> list[Tensor]:
        return self.g.params + self.d.params

    # -- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything a step reads that training changes (see :mod:`ogan.game.checkpoint`)."""
        return {
            "modules": [self.g.module.state_dict(), self.d.module.state_dict()],
            "optimizers": [self.g.optimizer.state_dict(), self.d.optimizer.state_dict()],
            "generators": [self.gen.get_state()],
            "streams": None if self.streams is None else self.streams.state_dict(),
            "grad_evals": list(self.grad_evals),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for player, module, opt in zip((self.g, self.d), state["modules"], state["optimizers"]):
            player.module.load_state_dict(module)
            player.optimizer.load_state_dict(opt)
        self.gen.set_state(state["generators"][0])
        if self.streams is not None:
            self.streams.load_state_dict(state["streams"])
        self.grad_evals[:] = state["grad_evals"]
