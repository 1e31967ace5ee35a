"""The population game: the seeds of one run trained as one batched program.

Member i *is* the standalone run ``ogan.train(..., seed=seeds[i])``: its networks come from that
seed's initialisation stream, its batches from its own data generator, its evaluation noise from
its own evaluation seed (``_seeds``). What the members share is the program: one vmapped forward
pass of all of them (:class:`~ogan.game.stacked.Stacked`), one backward pass of their summed
losses, one optimizer step on the stacked tensors. Element-wise optimizers (SGD, Adam, the
optimistic and extrapolation methods, Lookahead) are thereby exactly per member; ⊥Grad and Muon
act per member through the parameter group's ``members`` key (:class:`ogan.optim.Ortho`,
:class:`ogan.optim.MuonWithAdam`); D gradient surgery projects each member's slices here.

The step is :class:`ogan.game.Game`'s own (their shared ``_Schedule``), with per-member
batches, losses and statistics; tests/test_population.py holds the two to the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from ogan import optim, workloads
from ogan.game import stats as gstats
from ogan.game.config import TrainConfig
from ogan.game.game import TINY, _find, _may_write_grad, _Schedule, _seeds
from ogan.game.losses import LOSSES, r1_from_gradient
from ogan.game.stacked import Stacked, take_members
from ogan.optim.wrappers import GradNormProbe, Lookahead, Ortho, set_mode
from ogan.projection import member_slices, orthogonalize_, tensor_norms
from ogan.workloads.base import Batch, Workload


@dataclass
class _Player:
    """A population's :class:`ogan.game.Player`: the members' stacked networks and one optimizer."""

    net: Stacked
    lr: float
    optimizer: Optimizer
    ortho: Ortho | None
    lookahead: Lookahead | None
    probe: GradNormProbe | None

    @property
    def params(self) -> list[Tensor]:
        return self.net.trainable


def _rows(norms: Tensor, members: int, n: int) -> Tensor:
    """Per-tensor norms of every member's tensors that had a gradient, member by member, as one
    row per member over the player's ``n`` tensors (``gstats.pad``: the others are missing)."""
    return torch.stack([gstats.pad(row, n) for row in norms.view(members, -1)])


def _stack(tensors: list[Tensor | None]) -> Tensor | None:
    return None if tensors[0] is None else torch.stack(tensors)  # type: ignore[arg-type]


class PopulationGame(_Schedule):
    """Members of one configuration that differ only by seed (``configs[i].seed``)."""

    def __init__(self, configs: list[TrainConfig]):
        self.config = config = configs[0]
        self.device = torch.device(config.device)
        cls = workloads.get(config.workload)
        self.workload: Workload = cls(cls.parse_options(**config.options), self.device)
        players, self.gens, self.eval_seeds = [], [], []
        for member in configs:
            init_seed, data_seed, eval_seed = _seeds(member.seed)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(init_seed)
                players.append(self.workload.build_players())
            self.gens.append(torch.Generator(self.device).manual_seed(data_seed))
            self.eval_seeds.append(eval_seed)
        self.eval_gen = torch.Generator(self.device)
        spec = config.optimizer
        self.g = self._player(Stacked([G for G, _ in players]), spec["lr"])
        self.d = self._player(Stacked([D for _, D in players]), spec["lr"] * spec["lr_ratio"])
        self.extrapolation: str | None = getattr(self.g.optimizer, "extrapolation", None)
        self.loss = LOSSES[config.loss] if config.loss else None
        self.surgery = bool(spec["surgery"])
        self.grad_evals = [0, 0]  # G, D, per member
        self.layout = gstats.RowLayout(len(self.g.params), len(self.d.params))
        self._surgery_stats: tuple[Tensor, Tensor] | None = None  # (removed (P,), before (P, n))

    @property
    def size(self) -> int:
        """Members still training."""
        return self.g.net.size

    def _player(self, net: Stacked, lr: float) -> _Player:
        groups = [{"params": net.trainable, "members": net.size}]
        opt = optim.build(self.config.optimizer["name"], groups, lr=lr, **self.config.hparams)
        lookahead = _find(opt, Lookahead)
        if lookahead is not None:
            lookahead.auto_sync = False  # both players synchronise together (see step)
        ortho = _find(opt, Ortho)
        if ortho is None and _may_write_grad(self.config.sources):
            opt = GradNormProbe(opt)
        set_mode(opt, "train")  # schedule-free optimizers start in eval mode
        return _Player(net, lr, opt, ortho, lookahead, _find(opt, GradNormProbe))

    def _sample(self) -> Batch:
        """Each member's batch from its own generator, stacked."""
        batches = [self.workload.sample(self.config.batch_size, gen) for gen in self.gens]
        return Batch(real=_stack([b.real for b in batches]), z=_stack([b.z for b in batches]))

    def _generate(self, z: Tensor) -> Tensor:
        return self.g.net(z)

    # -- gradients (the members' losses are summed: each member gets its own gradient) ---------

    def _d_backward(self, batch: Batch, fake: Tensor) -> Tensor:
        """D's gradients into .grad (fakes detached); returns each member's D loss."""
        D, params = self.d.net, self.d.params
        d_fake = D(fake.detach())
        if self.loss is None:
            loss, _ = torch.vmap(self.workload.objective)(d_fake)
            loss.sum().backward(inputs=params)
            return loss.detach()
        real = batch.real
        if self.config.r1:
            real = real.detach().requires_grad_(True)
        d_real = D(real)
        real_term = torch.vmap(self.loss.real)(d_real)
        if self.config.r1:  # d_real[m] depends on real[m] only: one gradient for all members
            (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
            real_term = real_term + torch.vmap(r1_from_gradient, (0, None))(grad, self.config.r1)
        fake_term = torch.vmap(self.loss.fake)(d_fake)
        loss = real_term + fake_term
        if self.surgery:
            self._surgery(real_term, fake_term, params)
        else:
            loss.sum().backward(inputs=params)
        return loss.detach()

    def _surgery(self, real_term: Tensor, fake_term: Tensor, params: list[Tensor]) -> None:
        """PCGrad between each member's real-data and fake-data gradients, per tensor."""
        g_real = list(torch.autograd.grad(real_term.sum(), params, allow_unused=True))
        g_fake = list(torch.autograd.grad(fake_term.sum(), params, allow_unused=True))
        # a parameter neither term reaches keeps no gradient, as without surgery
        unused = [a is None and b is None for a, b in zip(g_real, g_fake)]
        g_real = [torch.zeros_like(p) if g is None else g for p, g in zip(params, g_real)]
        g_fake = [torch.zeros_like(p) if g is None else g for p, g in zip(params, g_fake)]
        P = self.size
        before = tensor_norms(member_slices(torch._foreach_add(g_real, g_fake), P)).view(P, -1)
        original_real = torch._foreach_mul(g_real, 1.0)
        s_real = orthogonalize_(member_slices(g_real, P), member_slices(g_fake, P),
                                renorm=False, conflict_only=True)  # fmt: skip
        s_fake = orthogonalize_(member_slices(g_fake, P), member_slices(original_real, P),
                                renorm=False, conflict_only=True)  # fmt: skip
        torch._foreach_add_(g_real, g_fake)
        for p, g, none in zip(params, g_real, unused):
            p.grad = None if none else g

        def squares(norms: Tensor) -> Tensor:
            return norms.view(P, -1).square().sum(1)

        kept = squares(s_real.norm_projected) + squares(s_fake.norm_projected)
        total = squares(s_real.norm_before) + squares(s_fake.norm_before)
        self._surgery_stats = (1 - kept / total.clamp_min(TINY), before)

    def _g_backward(self, fake: Tensor) -> Tensor:
        d_out = self.d.net(fake)
        if self.loss is not None:
            loss = torch.vmap(self.loss.g)(d_out)
        else:
            loss = torch.vmap(self.workload.objective)(d_out)[1]
        loss.sum().backward(inputs=self.g.params)  # D's parameters get no gradient
        return loss.detach()

    # -- one step ---------------------------------------------------------------------------

    def _projection_norms(self, player: _Player, surgery: tuple[Tensor, Tensor] | None) -> tuple:
        """Per member (removed (P,), after (P, n), before (P, n)); see :class:`ogan.game.Game`."""
        ortho, P, n = player.ortho, self.size, len(player.params)
        if ortho is None or ortho.last_stats is None:
            probe = player.probe
            after = None if probe is None else _rows(probe.last_norms, P, n)
            if surgery is None:
                return None, after, after
            return surgery[0], after, surgery[1]
        s = ortho.last_stats  # member by member (Ortho's members group)
        projected, before = s.norm_projected.view(P, -1), s.norm_before.view(P, -1)
        removed = 1 - projected.square().sum(1) / before.square().sum(1).clamp_min(TINY)
        after = _rows(s.norm_applied(ortho.renorm, player.params[0].dtype), P, n)
        if surgery is None:
            return removed, after, _rows(before, P, n)
        return 1 - (1 - surgery[0]) * (1 - removed), after, surgery[1]

    def _record(self, loss_g: Tensor, loss_d: Tensor) -> Tensor:
        """The step's raw records, one row per member (see ``RowLayout``)."""
        P = self.size
        players = (self.g, self.d)
        parts = [self._projection_norms(self.g, None),
                 self._projection_norms(self.d, self._surgery_stats)]  # fmt: skip
        self._surgery_stats = None
        unread = [p for p, (_, after, _) in zip(players, parts) if after is None]
        if unread:  # the gradients still in .grad are the ones the optimizers used
            grads = {id(p): [q.grad for q in p.params if q.grad is not None] for p in unread}
            current = tensor_norms(  # one fused call for every member's tensors
                [s for p in unread for s in member_slices(grads[id(p)], P)]
            )
            start = 0
            for i, (player, (removed, after, before)) in enumerate(zip(players, parts)):
                if after is None:
                    k = P * len(grads[id(player)])
                    after = _rows(current[start : start + k], P, len(player.params))
                    start += k
                    parts[i] = (removed, after, after if before is None else before)
        (removed_g, after_g, before_g), (removed_d, after_d, before_d) = parts
        zero = torch.zeros(P, device=self.device)
        head = torch.stack([
            loss_g, loss_d,
            zero if removed_g is None else removed_g, zero if removed_d is None else removed_d,
        ], 1)  # fmt: skip
        return torch.cat([head.float(), after_g, before_g, after_d, before_d], 1)

    # -- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything a step reads that training changes, for the members still training."""
        return {
            "modules": [{**p.net.params, **p.net.buffers} for p in (self.g, self.d)],
            "optimizers": [self.g.optimizer.state_dict(), self.d.optimizer.state_dict()],
            "generators": [gen.get_state() for gen in self.gens],
            "grad_evals": list(self.grad_evals),
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load :meth:`state_dict` into a game holding the same members (``keep`` first)."""
        for player, tensors, opt in zip((self.g, self.d), state["modules"], state["optimizers"]):
            for name, tensor in {**player.net.params, **player.net.buffers}.items():
                tensor.copy_(tensors[name])  # in place: the optimizer holds these tensors
            player.optimizer.load_state_dict(opt)
        for gen, gen_state in zip(self.gens, state["generators"], strict=True):
            gen.set_state(gen_state)
        self.grad_evals[:] = state["grad_evals"]

    # -- members ----------------------------------------------------------------------------

    def evaluate(self, slot: int) -> dict[str, float]:
        """The metrics of the member at ``slot``, as a plain module pair in eval mode."""
        if not all(torch.isfinite(p[slot]).all() for p in self.g.params + self.d.params):
            return {key: math.nan for key in self.workload.metrics}
        # schedule-free: the members' evaluation point (the averaged iterate) before loading
        set_mode(self.g.optimizer, "eval")
        set_mode(self.d.optimizer, "eval")
        try:
            G, D = self.g.net.load(slot), self.d.net.load(slot)
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

    def keep(self, slots: list[int]) -> None:
        """Continue with the members at ``slots`` only (the others stopped): their parameters,
        buffers, generators and optimizer state are carried over unchanged."""
        index = torch.tensor(slots, dtype=torch.int64, device=self.device)
        before = self.size
        for name in ("g", "d"):
            old: _Player = getattr(self, name)
            state = old.optimizer.state_dict()
            old.net.keep(index)
            new = self._player(old.net, old.lr)
            new.optimizer.load_state_dict(take_members(state, index, before))
            setattr(self, name, new)
        self.gens = [self.gens[s] for s in slots]
        self.eval_seeds = [self.eval_seeds[s] for s in slots]
