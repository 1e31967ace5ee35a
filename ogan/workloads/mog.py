"""Mixtures of Gaussians in 2-D: the classic mode-collapse tests, with their published protocols.

Geometry (all three ``arch`` values; it is the same in every source): the ring is 8 modes at
angles 2πk/8 on the unit circle with std 0.01, the grid 25 modes on {-4,-2,0,2,4}² with std
0.05 (PacGAN ``2DRing_GAN&PacGAN/config.py`` and ``2DGrid_GAN&PacGAN/config.py``: ``MEANS``,
``VARIANCES``; unrolled demo ``sample_mog(n_mixture=8, std=0.01, radius=1.0)``).

``arch`` selects the players, noise and evaluation sample count of one source:

* ``"default"``: ogan's own small game (two ReLU layers of ``hidden`` units, z ~ N(0, I_16),
  torch's default init); 2,500 evaluation samples.
* ``"pacgan"`` (Lin et al. 2018, fjxmlzn/PacGAN ``synthetic_data_experiments``): z ~ N(0, I₂)
  (config.py ``num_zdim = 2``, ``z_mode_std = 1``); players in
  :func:`ogan.workloads.nets.pacgan_players`; 2,500 evaluation samples from one fixed noise
  draw, G in inference mode (``GraphLogger(num_samples=2500)`` on ``decoder.apply`` outside the
  batch-norm context). The sweep files set the rest: simultaneous updates (``ali_algorithm``
  takes both gradients at one point), the non-saturating loss (``PacGAN.compute_losses``: D
  softplus(-D(x)) + softplus(D(G(z))), G softplus(-D(G(z)))), Adam, batch 100 packs.
* ``"unrolled"`` (Metz et al. 2017, the authors' demo poolio/unrolled_gan, ring only):
  z ~ N(0, I₂₅₆) (``params["z_dim"]``); players in
  :func:`ogan.workloads.nets.unrolled_players`; 5,120 evaluation samples (the demo draws
  ``n_batches_viz = 10`` batches of 512 at each visualisation). The demo has 7 distinct modes:
  ``np.linspace(0, 2π, 8)`` repeats its first angle at 2π; ours are its 8 intended ones.

``packing = m`` (PacGAN-m): D sees m samples concatenated, reals and fakes packed the same way
(:func:`ogan.workloads.nets.pack`); a batch of ``batch_size`` is ``batch_size`` packs, so
``batch_size · m`` points and noise vectors, as in PacGAN (``create_packing_gaussian_mixture_
data_streams(batch_size=100)`` with one noise tensor of the batch size per pack slot).
Evaluation does not depend on m.

Choices the sources leave open, or where ogan differs from them (stated so that nobody has to
guess):

* Data: every batch is drawn fresh from the mixture. PacGAN draws 100,000 points once
  (``num_sample``) and shuffles them each epoch; packs are drawn with replacement from that set.
  The demo samples fresh batches, as here.
* Batch norm (PacGAN): ``torch.nn.BatchNorm1d(eps=1e-4, momentum=0.05)``. blocks uses the same
  epsilon and a 0.05 moving average, but averages the minibatch *standard deviation* (biased
  variance + eps, square-rooted) where torch averages the unbiased variance; with m > 1, PacGAN
  averages the m slices' statistics into one update where torch updates once per slice. Both
  only change the population statistics that evaluation uses, by about 1% at batch 100.
* Adam (PacGAN, blocks' ``Adam``): the step is lr·√(1−β₂ᵗ)/(1−β₁ᵗ)·m/(√v + ε); torch's adds ε to
  the bias-corrected √v̂. The two differ only when √v̂ is near ε = 1e-8.
* The unrolled demo trains G through 5 unrolled D steps on the minimax loss; the protocol here
  is its vanilla-GAN baseline (no unrolling, the non-saturating loss), which is what an optimizer
  comparison needs: the demo's players, noise, batch, learning rates and length.
* Metrics for every arch are PacGAN's (:mod:`ogan.metrics.modes`); the demo computes none.

Primary metric: ``modes`` (modes captured, higher is better). It measures the failure these
games exist to expose (mode collapse), it is the first column of the literature's tables, and it
is defined for every generator. The high-quality fraction cannot see collapse (all samples on
one mode score 100%); the reverse KL is undefined when no sample is high quality and, being
computed over high-quality samples only, scores a generator that spreads 1% of its mass evenly
over all modes and 99% far from any of them as perfect. The Fréchet distance of the 2-D moments
stays as a secondary metric: a smeared ring can match two moments. Targets for "time to target":
every mode on the ring (8 of 8), all but one on the grid (24 of 25).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ogan.errors import ConfigError
from ogan.metrics.frechet import frechet_distance, gaussian_stats
from ogan.metrics.modes import mixture_stats, mode_metrics
from ogan.workloads import nets
from ogan.workloads.base import Batch, Metric, Workload

EVAL_SAMPLES = 2500
"""Evaluation samples of the default and PacGAN archs (PacGAN GraphLogger ``num_samples``)."""
ARCHS: dict[str, dict[str, int]] = {
    "default": {"eval_samples": EVAL_SAMPLES},
    "pacgan": {"z_dim": 2, "eval_samples": EVAL_SAMPLES},
    "unrolled": {"z_dim": 256, "eval_samples": 10 * 512},
}
"""Each arch's fixed noise dimension and evaluation sample count (see the module docstring)."""
DEFAULT_Z_DIM, DEFAULT_HIDDEN = 16, 128


@dataclass(frozen=True)
class MoGOptions:
    arch: str = "default"
    """Players, noise and evaluation of one source: "default", "pacgan" or "unrolled"."""
    packing: int = 1
    """PacGAN-m: D sees this many samples concatenated (1: an ordinary GAN)."""
    z_dim: int | None = None
    """Generator noise dimension (default arch only; 16 when not given)."""
    hidden: int | None = None
    """Width of the two hidden layers of G and D (default arch only; 128 when not given)."""

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        for key in ("packing", "z_dim", "hidden"):
            value = getattr(self, key)
            if value is not None and not (
                isinstance(value, int) and not isinstance(value, bool) and value >= 1
            ):
                raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
        if self.arch == "default":
            # frozen: fill the defaults in so that the run record holds the values used
            object.__setattr__(self, "z_dim", self.z_dim or DEFAULT_Z_DIM)
            object.__setattr__(self, "hidden", self.hidden or DEFAULT_HIDDEN)
            return
        fixed = ARCHS[self.arch]["z_dim"]
        if self.hidden is not None or self.z_dim not in (None, fixed):
            raise ValueError(
                f"arch {self.arch!r} fixes the players (z_dim = {fixed}); remove z_dim and hidden"
            )
        object.__setattr__(self, "z_dim", fixed)


def mog_metrics(n_modes: int) -> dict[str, Metric]:
    """The mixtures' metrics, their bounds (``n_modes`` modes at most) and declared margins.

    The margins are what a GAN paper would call "no difference": half a mode (a count moves in
    whole modes, so ±0.5 accepts only a mean difference below one mode), 5 points of
    high-quality fraction, 0.05 nats of reverse KL (log 8 ≈ 2.08 is total collapse onto one
    mode of eight), 10% of the Fréchet distance.
    """
    return {
        "modes": Metric(
            "modes holding ≥ 1 sample within 3 std (PacGAN's mode coverage)",
            True,
            (0, n_modes),
            margin=0.5,
        ),
        "high_quality": Metric(
            "fraction of samples within 3 std of the nearest mode", True, (0, 1), margin=0.05
        ),
        # not log-scale: a perfectly even histogram gives exactly 0
        "reverse_kl": Metric(
            "KL(high-quality samples' mode histogram ‖ uniform)", bounds=(0, None), margin=0.05
        ),
        "fd": Metric(
            "Fréchet distance between the samples and the mixture (exact stats)",
            bounds=(0, None),
            log_scale=True,
            margin=0.1,
        ),
    }


class _MoG(Workload):
    std: ClassVar[float]
    archs: ClassVar[tuple[str, ...]] = tuple(ARCHS)
    primary_metric = "modes"
    Options = MoGOptions
    default_steps = 2000
    default_eval_every = 200
    default_batch_size = 256

    @classmethod
    def check_options(cls, options: MoGOptions) -> None:
        if options.arch not in cls.archs:
            raise ConfigError(
                f"workload {cls.name!r}: arch {options.arch!r} has no published protocol here; "
                f"use one of {', '.join(cls.archs)}"
            )

    @staticmethod
    def centers() -> np.ndarray:
        raise NotImplementedError

    @cached_property
    def _centers(self) -> torch.Tensor:
        return torch.tensor(self.centers(), dtype=torch.float32, device=self.device)

    @property
    def eval_samples(self) -> int:
        return ARCHS[self.options.arch]["eval_samples"]

    def build_players(self) -> tuple[nn.Module, nn.Module]:
        o = self.options
        if o.arch == "pacgan":
            G, D = nets.pacgan_players(o.packing)
        elif o.arch == "unrolled":
            G, D = nets.unrolled_players(o.packing)
        else:
            G, D = nets.default_players(o.z_dim, o.hidden, o.packing)
        return G.to(self.device), D.to(self.device)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        n = batch_size * self.options.packing
        idx = torch.randint(len(self._centers), (n,), generator=generator, device=self.device)
        noise = torch.randn(n, 2, generator=generator, device=self.device)
        real = self._centers[idx] + self.std * noise
        z = torch.randn(n, self.options.z_dim, generator=generator, device=self.device)
        return Batch(real=real, z=z)

    def sample_streams(self, batch_size: int, streams: Any) -> Batch:
        n = batch_size * self.options.packing
        idx = streams.randint(len(self._centers), (n,))
        real = self._centers[idx] + self.std * streams.normal((n, 2))
        return Batch(real=real, z=streams.normal((n, self.options.z_dim)))

    def evaluate(self, G: nn.Module, D: nn.Module, generator: torch.Generator) -> dict[str, float]:
        n = self.eval_samples
        z = torch.randn(n, self.options.z_dim, generator=generator, device=self.device)
        samples = G(z).double().cpu().numpy()
        if not np.isfinite(samples).all():
            return {key: math.nan for key in self.metrics}
        out = mode_metrics(samples, self.centers(), self.std)
        out["fd"] = frechet_distance(
            *gaussian_stats(samples), *mixture_stats(self.centers(), self.std)
        )
        return out

    def metric_info(self) -> dict[str, object]:
        return {
            "eval_samples": self.eval_samples,
            "mode_metrics": "PacGAN MetricLogger: nearest mode, high quality < 3 std",
            "fd_reference": "exact mixture mean and covariance",
        }


class MoGRing(_MoG):
    name = "mog-ring"
    description = "8 Gaussians on a circle of radius 1, std 0.01 (mode collapse test)"
    std = 0.01
    target = 8.0
    metrics = mog_metrics(8)

    @staticmethod
    def centers() -> np.ndarray:
        # 8 distinct angles: linspace(0, 2π, 8) would repeat the first mode at 2π.
        angles = 2 * np.pi * np.arange(8) / 8
        return np.stack([np.cos(angles), np.sin(angles)], 1)


class MoGGrid(_MoG):
    name = "mog-grid"
    description = "25 Gaussians on the grid {-4,-2,0,2,4}², std 0.05 (mode collapse test)"
    std = 0.05
    target = 24.0
    metrics = mog_metrics(25)
    archs = ("default", "pacgan")  # the unrolled demo has only the ring

    @staticmethod
    def centers() -> np.ndarray:
        xs = np.arange(-4.0, 5.0, 2.0)
        return np.stack(np.meshgrid(xs, xs, indexing="ij"), -1).reshape(-1, 2)
