"""The two-player training kernel: ``ogan.train``.

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
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ogan import optim, workloads
from ogan.game import stats as gstats
from ogan.game.config import TrainConfig, resolve
from ogan.game.losses import LOSSES, r1_penalty
from ogan.optim.wrappers import Lookahead, Ortho
from ogan.projection import orthogonalize_
from ogan.workloads.base import Batch, Workload


@dataclass
class TrainResult:
    """What a run produced.

    Attributes:
        history: one row per evaluation: ``step``, ``grad_evals``, ``wall_time`` (training seconds
            so far, evaluation excluded), ``loss_g``/``loss_d`` and ``grad_norm_g``/``grad_norm_d``
            (means and medians over the steps since the previous evaluation), then the
            workload's metric columns.
        trace: one row per step: losses, per-player gradient statistics, step time.
        summary: final metrics, gradient-norm summaries, divergence, cost (JSON-serialisable).
        config: the resolved configuration (:class:`TrainConfig` as a dict).
    """

    history: Any  # pandas.DataFrame
    trace: Any  # pandas.DataFrame
    summary: dict[str, Any]
    config: dict[str, Any]


@dataclass
class _Player:
    module: nn.Module
    params: list[Tensor]
    optimizer: torch.optim.Optimizer
    ortho: Ortho | None
    lookahead: Lookahead | None


def _find(opt: torch.optim.Optimizer, kind: type) -> Any:
    while opt is not None:
        if isinstance(opt, kind):
            return opt
        opt = getattr(opt, "base", None)
    return None


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _seeds(seed: int) -> tuple[int, int, int]:
    """Independent seeds for initialisation, training batches and evaluation noise."""
    init, data, evaluation = np.random.SeedSequence(seed).generate_state(3)
    return int(init), int(data), int(evaluation)


class _Game:
    def __init__(self, config: TrainConfig, record_stats: bool = True):
        self.config = config
        # Off only to measure what the statistics cost (bench perf); the trainer always records.
        self.record_stats = record_stats
        self.device = torch.device(config.device)
        cls = workloads.get(config.workload)
        self.workload: Workload = cls(cls.parse_options(**config.options), self.device)
        init_seed, data_seed, self.eval_seed = _seeds(config.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            G, D = self.workload.build_players()
        self.gen = torch.Generator(self.device).manual_seed(data_seed)
        self.eval_gen = torch.Generator(self.device)
        spec = config.optimizer
        lr_d = spec["lr"] * spec["lr_ratio"]
        self.g = self._player(G, spec["name"], spec["lr"])
        self.d = self._player(D, spec["name"], lr_d)
        probe = self.g.optimizer
        self.extrapolation: str | None = getattr(probe, "extrapolation", None)
        self.loss = LOSSES[config.loss] if config.loss else None
        self.surgery = bool(spec["surgery"])
        self.grad_evals = [0, 0]  # G, D

    def _player(self, module: nn.Module, name: str, lr: float) -> _Player:
        params = [p for p in module.parameters() if p.requires_grad]
        opt = optim.build(name, params, lr=lr, **self.config.hparams)
        lookahead = _find(opt, Lookahead)
        if lookahead is not None:
            lookahead.auto_sync = False  # both players synchronise together (see step)
        return _Player(module, params, opt, _find(opt, Ortho), lookahead)

    # -- gradients --------------------------------------------------------------------------

    def _d_backward(self, batch: Batch, fake: Tensor) -> tuple[Tensor, Tensor]:
        """D's gradients into .grad (fakes detached). Returns (loss, per-player stats)."""
        D, params = self.d.module, self.d.params
        d_fake = D(fake.detach())
        if self.loss is None:
            loss, _ = self.workload.objective(d_fake)
            loss.backward(inputs=params)
            return loss.detach(), self._grad_norms(params)
        real = batch.real
        if self.config.r1:
            real = real.detach().requires_grad_(True)
        d_real = D(real)
        real_term = self.loss.real(d_real)
        if self.config.r1:
            real_term = real_term + r1_penalty(d_real, real, self.config.r1)
        fake_term = self.loss.fake(d_fake)
        loss = real_term + fake_term
        if not self.surgery:
            loss.backward(inputs=params)
            return loss.detach(), self._grad_norms(params)
        return loss.detach(), self._surgery(real_term, fake_term, params)

    def _surgery(self, real_term: Tensor, fake_term: Tensor, params: list[Tensor]) -> Tensor:
        """PCGrad between D's real-data and fake-data gradients, per tensor; applies their sum."""
        kw = {"allow_unused": True, "materialize_grads": True}
        g_real = list(torch.autograd.grad(real_term, params, **kw))
        g_fake = list(torch.autograd.grad(fake_term, params, **kw))
        before = torch.stack(torch._foreach_norm(torch._foreach_add(g_real, g_fake)))
        original_real = torch._foreach_mul(g_real, 1.0)
        s_real = orthogonalize_(g_real, g_fake, renorm=False, conflict_only=True)
        s_fake = orthogonalize_(g_fake, original_real, renorm=False, conflict_only=True)
        torch._foreach_add_(g_real, g_fake)
        for p, g in zip(params, g_real):
            p.grad = g
        after = torch.stack(torch._foreach_norm(g_real))
        kept = s_real.norm_projected.square().sum() + s_fake.norm_projected.square().sum()
        total = s_real.norm_before.square().sum() + s_fake.norm_before.square().sum()
        removed = 1 - kept / total.clamp_min(torch.finfo(torch.float32).tiny)
        return gstats.player_stats(before, after, removed)

    def _g_backward(self, fake: Tensor) -> Tensor:
        d_out = self.d.module(fake)
        loss = self.loss.g(d_out) if self.loss is not None else self.workload.objective(d_out)[1]
        loss.backward(inputs=self.g.params)  # D's parameters get no gradient
        return loss.detach()

    def _grad_norms(self, params: list[Tensor]) -> Tensor:
        if not self.record_stats:
            return torch.zeros(len(gstats.PLAYER_STATS), device=self.device)
        norms = torch.stack(torch._foreach_norm([p.grad for p in params]))
        return gstats.player_stats(norms, norms, None)

    def _both_grads(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Both players' gradients at the current point, from one batch."""
        self.g.optimizer.zero_grad(set_to_none=True)
        self.d.optimizer.zero_grad(set_to_none=True)
        fake = self.g.module(batch.z)
        loss_d, stats_d = self._d_backward(batch, fake)
        loss_g = self._g_backward(fake)
        self.grad_evals[0] += 1
        self.grad_evals[1] += 1
        stats_g = self._grad_norms(self.g.params)
        return loss_g, loss_d, stats_g, stats_d

    # -- one step ---------------------------------------------------------------------------

    def _after_step(self, player: _Player, stats: Tensor) -> Tensor:
        if player.ortho is None or player.ortho.last_stats is None or not self.record_stats:
            return stats
        s = player.ortho.last_stats
        after = s.norm_before if player.ortho.renorm else s.norm_projected
        removed = 1 - s.norm_projected.square().sum() / s.norm_before.square().sum().clamp_min(
            torch.finfo(torch.float32).tiny
        )
        ortho = gstats.player_stats(s.norm_before, after, removed)
        # Surgery then ⊥Grad: keep the norm before both; compose the removed fractions.
        ortho[gstats.PRE] = stats[gstats.PRE]
        ortho[gstats.REMOVED] = 1 - (1 - stats[gstats.REMOVED]) * (1 - removed)
        return ortho

    def step(self, index: int) -> Tensor:
        """One generator update (and its discriminator updates); returns the step's statistics."""
        g, d = self.g, self.d
        if self.extrapolation is not None:
            batch = self.workload.sample(self.config.batch_size, self.gen)
            if self.extrapolation == "extragradient":
                self._both_grads(batch)
            d.optimizer.extrapolate()
            g.optimizer.extrapolate()
            if self.config.fresh_batch:
                batch = self.workload.sample(self.config.batch_size, self.gen)
            loss_g, loss_d, stats_g, stats_d = self._both_grads(batch)
            d.optimizer.step()
            g.optimizer.step()
        elif self.config.scheme == "simultaneous":
            batch = self.workload.sample(self.config.batch_size, self.gen)
            loss_g, loss_d, stats_g, stats_d = self._both_grads(batch)
            d.optimizer.step()
            g.optimizer.step()
        else:
            for _ in range(self.config.d_steps):
                batch = self.workload.sample(self.config.batch_size, self.gen)
                d.optimizer.zero_grad(set_to_none=True)
                with torch.no_grad():
                    fake = g.module(batch.z)
                loss_d, stats_d = self._d_backward(batch, fake)
                self.grad_evals[1] += 1
                d.optimizer.step()
            batch = self.workload.sample(self.config.batch_size, self.gen)
            g.optimizer.zero_grad(set_to_none=True)
            loss_g = self._g_backward(g.module(batch.z))
            self.grad_evals[0] += 1
            stats_g = self._grad_norms(g.params)
            g.optimizer.step()
        if g.lookahead is not None and (index + 1) % g.lookahead.k == 0:
            g.lookahead.sync()
            d.lookahead.sync()
        stats_g = self._after_step(g, stats_g)
        stats_d = self._after_step(d, stats_d)
        return torch.cat([torch.stack([loss_g, loss_d]).float(), stats_g, stats_d])

    # -- evaluation -------------------------------------------------------------------------

    def evaluate(self) -> dict[str, float]:
        G, D = self.g.module, self.d.module
        params = self.g.params + self.d.params
        if not all(torch.isfinite(p).all() for p in params):
            return {key: math.nan for key in self.workload.metrics}
        self.eval_gen.manual_seed(self.eval_seed)  # the same noise at every evaluation
        modes = G.training, D.training
        G.eval()
        D.eval()
        try:
            with torch.no_grad():
                return self.workload.evaluate(G, D, self.eval_gen)
        finally:
            G.train(modes[0])
            D.train(modes[1])


def train(
    workload: str,
    optimizer: str | Mapping[str, Any],
    *,
    steps: int | None = None,
    seed: int = 0,
    eval_every: int | None = None,
    device: str | None = None,
    **options: Any,
) -> TrainResult:
    """Train a two-player game with a registered optimizer and record what it cost.

    Args:
        workload: a name from ``ogan.workloads.WORKLOADS``.
        optimizer: a name, or a spec ``{"name": ..., "lr": ..., <hyperparameters>}``; the spec
            may also hold ``ortho="weights"`` (⊥Grad), ``lr_ratio`` (lr_D = lr * lr_ratio) and
            ``surgery=True`` (D gradient surgery).
        steps: generator updates (workload default if None).
        seed: seeds initialisation, batches and evaluation noise (bit-identical reruns on CPU
            for the same thread count).
        eval_every: steps between evaluations (also evaluated at step 0 and at the end).
        device: "cpu" or "cuda[:N]" (default: cuda when available).
        **options: game options (``scheme``, ``d_steps``, ``loss``, ``r1``, ``surgery``,
            ``batch_size``, ``fresh_batch``, ``threads``) and the workload's own options.

    A non-finite loss or gradient stops the run: ``summary["diverged_at"]`` holds that step
    and the run returns normally.
    """
    config = resolve(workload, optimizer, steps=steps, seed=seed, eval_every=eval_every,
                     device=device, **options)  # fmt: skip
    with _threads(config.threads):
        return _run(config)


def _run(config: TrainConfig) -> TrainResult:
    import pandas as pd

    game = _Game(config)
    sync = game.device.type == "cuda"
    trace = torch.full((config.steps, len(gstats.TRACE_COLUMNS) - 1), math.nan)
    step_times = np.full(config.steps, math.nan)
    rows: list[dict[str, Any]] = []
    wall = 0.0
    eval_time = 0.0
    diverged_at: int | None = None
    done = 0

    def record(step: int) -> None:
        nonlocal eval_time
        t0 = time.perf_counter()
        metrics = game.evaluate()
        eval_time += time.perf_counter() - t0
        window = trace[max(0, step - config.eval_every) : step]
        row = {
            "step": step,
            "grad_evals": sum(game.grad_evals),
            "wall_time": wall,
            **gstats.window_summary(window),
            **metrics,
        }
        rows.append(row)

    record(0)
    for i in range(config.steps):
        t0 = time.perf_counter()
        row = game.step(i)
        finite = bool(torch.isfinite(row).all())  # also waits for the device
        if sync:
            torch.cuda.synchronize(game.device)
        dt = time.perf_counter() - t0
        trace[i] = row.cpu()
        step_times[i] = dt
        wall += dt
        done = i + 1
        if not finite:
            diverged_at = done
            break
        if done % config.eval_every == 0 or done == config.steps:
            record(done)
    if diverged_at is not None:
        record(done)

    history = pd.DataFrame(rows)
    trace_df = pd.DataFrame(trace[:done].double().numpy(), columns=gstats.TRACE_COLUMNS[1:])
    trace_df.insert(0, "step", np.arange(1, done + 1))
    trace_df["step_time"] = step_times[:done]
    summary = gstats.run_summary(
        history=history,
        trace=trace_df,
        workload=game.workload,
        diverged_at=diverged_at,
        wall_time=wall,
        eval_time=eval_time,
        grad_evals=game.grad_evals,
    )
    summary["metric_info"] = game.workload.metric_info()
    return TrainResult(history=history, trace=trace_df, summary=summary, config=config.to_dict())
