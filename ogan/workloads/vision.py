"""DCGAN workloads on MNIST and CIFAR-10 from the user's disk, scored by Inception FID.

Data in torchvision's on-disk formats, never downloaded (:mod:`ogan.data.vision`); FID from
pytorch-fid's InceptionV3 weights, found locally (:mod:`ogan.metrics.inception`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ogan.workloads import nets
from ogan.workloads.images import (
    INCEPTION_METRICS,
    ImageGAN,
    check_vision,
    inception_fid,
    inception_info,
    vision_train,
)


@dataclass(frozen=True)
class VisionOptions:
    data_dir: str | None = None
    """Dataset location (default: $OGAN_DATA_DIR, else ./data); never downloaded."""
    fid_weights: str | None = None
    """pt_inception-2015-12-05-6726825d.pth (default: the torch hub cache)."""
    z_dim: int = 100
    width: int = 64
    """Channels of the widest-resolution layer (DCGAN's ngf = ndf)."""


class _VisionGAN(ImageGAN):
    dataset: ClassVar[str]
    channels: ClassVar[int]
    size: ClassVar[int]
    output = "tanh"
    metrics = INCEPTION_METRICS
    primary_metric = "fid"
    Options = VisionOptions
    default_steps = 5000
    default_eval_every = 1000

    @classmethod
    def check_options(cls, options: Any) -> None:
        check_vision(cls.dataset, options.data_dir, options.fid_weights)

    def _train_images(self) -> Tensor:
        return vision_train(self.dataset, self.options.data_dir)

    def build_players(self) -> tuple[nn.Module, nn.Module]:
        o = self.options
        G, D = nets.dcgan_players(self.channels, self.size, o.z_dim, o.width)
        return G.to(self.device), D.to(self.device)

    def evaluate(self, G: nn.Module, D: nn.Module, generator: torch.Generator) -> dict[str, float]:
        o = self.options
        return self._finite_or_nan(G, generator) or inception_fid(
            self.dataset, o.data_dir, o.fid_weights, self.device, self._sampler(G, generator)
        )

    def metric_info(self) -> dict[str, Any]:
        return inception_info(self.options.fid_weights, self.device)


class MNIST(_VisionGAN):
    name = "mnist"
    description = "MNIST from a local path (torchvision format), DCGAN G/D; metric: Inception FID"
    dataset, channels, size = "mnist", 1, 28
    target = 30.0


class CIFAR10(_VisionGAN):
    name = "cifar10"
    description = (
        "CIFAR-10 from a local path (torchvision format), DCGAN G/D; metric: Inception FID"
    )
    dataset, channels, size = "cifar10", 3, 32
    target = 60.0
