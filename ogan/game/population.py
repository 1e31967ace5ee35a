"""The population game: the seeds of one run trained as one batched program.

Member i *is* the standalone run ``ogan.train(..., seed=seeds[i])``: its networks come from that
seed's initialisation stream, its batches from its own data generator, its evaluation noise from
its own evaluation seed (:func:`~ogan.game.game.stream_seeds`). What the members share is the
program: one vmapped forward pass of all of them (:class:`~ogan.game.stacked.Stacked`), one
backward pass of their summed losses, one optimizer step on the stacked tensors. Element-wise
optimizers (SGD, Adam, the optimistic and extrapolation methods, Lookahead) are thereby exactly
per member; ⊥Grad and Muon act per member through the parameter group's ``members`` key
(:class:`ogan.optim.Ortho`, :class:`ogan.optim.MuonWithAdam`); D gradient surgery projects each
member's slices.

The step is :class:`ogan.game.Game`'s own: every piece of its maths is written once, in
:class:`~ogan.game.game.TwoPlayerGame`, over the population's layout
(:class:`ogan.game.batching.Members`); this class builds the members and draws their batches.
tests/test_population.py holds each member to its standalone run's numbers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ogan import _allocator, workloads
from ogan.game.batching import Members
from ogan.game.config import TrainConfig
from ogan.game.game import Player, TwoPlayerGame, stream_seeds
from ogan.game.stacked import Stacked, take_members
from ogan.game.streams import Streams, key
from ogan.workloads.base import Batch, Workload


def _stack(tensors: list[Tensor | None]) -> Tensor | None:
    return None if tensors[0] is None else torch.stack(tensors)  # type: ignore[arg-type]


class PopulationGame(TwoPlayerGame):
    """Members of one configuration that differ only by seed (``configs[i].seed``)."""

    def __init__(self, configs: list[TrainConfig]):
        self.config = config = configs[0]
        self.device = torch.device(config.device)
        if self.device.type == "cpu":  # megabyte tensors every step: reuse, do not page-fault
            _allocator.retain_freed_memory()
        self.batching = Members(self.device, len(configs))
        cls = workloads.get(config.workload)
        self.workload: Workload = cls(cls.parse_options(**config.options), self.device)
        players, self.gens, self.eval_seeds, keys = [], [], [], []
        for member in configs:
            init_seed, data_seed, eval_seed = stream_seeds(member.seed)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(init_seed)
                players.append(self.workload.build_players())
            self.gens.append(torch.Generator(self.device).manual_seed(data_seed))
            self.eval_seeds.append(eval_seed)
            keys.append(key(data_seed))
        self.eval_gen = torch.Generator(self.device)
        if config.streams == "counter":  # every member's batch in one draw
            self.streams = Streams(torch.tensor(keys, device=self.device))
        self._setup(Stacked([G for G, _ in players]), Stacked([D for _, D in players]))

    @property
    def size(self) -> int:
        """Members still training."""
        return self.g.net.size

    def _trainable(self, net: Stacked) -> tuple[list[Tensor], list[Any]]:
        return net.trainable, [{"params": net.trainable, "members": net.size}]

    def _sample(self) -> Batch:
        """Each member's batch from its own stream: counter-based, all at once; or from its
        own generator, one by one, stacked."""
        if self.streams is not None:
            return self.workload.sample_streams(self.config.batch_size, self.streams)
        batches = [self.workload.sample(self.config.batch_size, gen) for gen in self.gens]
        return Batch(real=_stack([b.real for b in batches]), z=_stack([b.z for b in batches]))

    def _networks(self, slot: int) -> tuple[nn.Module, nn.Module]:
        return self.g.net.load(slot), self.d.net.load(slot)

    def _member_params(self, slot: int) -> list[Tensor]:
        return [p[slot] for p in self.g.params + self.d.params]

    # -- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything a step reads that training changes, for the members still training."""
        return {
            "modules": [{**p.net.params, **p.net.buffers} for p in (self.g, self.d)],
            "optimizers": [self.g.optimizer.state_dict(), self.d.optimizer.state_dict()],
            "generators": [gen.get_state() for gen in self.gens],
            "streams": None if self.streams is None else self.streams.state_dict(),
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
        if self.streams is not None:
            self.streams.load_state_dict(state["streams"])
        self.grad_evals[:] = state["grad_evals"]

    # -- members ----------------------------------------------------------------------------

    def keep(self, slots: list[int]) -> None:
        """Continue with the members at ``slots`` only (the others stopped): their parameters,
        buffers, generators and optimizer state are carried over unchanged."""
        index = torch.tensor(slots, dtype=torch.int64, device=self.device)
        before = self.size
        for name in ("g", "d"):
            old: Player = getattr(self, name)
            state = old.optimizer.state_dict()
            old.net.keep(index)
            new = self._player(old.net, old.lr, name)
            new.optimizer.load_state_dict(take_members(state, index, before))
            setattr(self, name, new)
        self.batching = Members(self.device, len(slots))
        self.gens = [self.gens[s] for s in slots]
        if self.streams is not None:
            self.streams.keep(index)
        self.eval_seeds = [self.eval_seeds[s] for s in slots]
