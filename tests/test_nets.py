"""ogan.workloads.nets: the networks the workloads train and bench perf times."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ogan.workloads import nets


def _count(*modules: nn.Module) -> tuple[int, int]:
    params = [p for m in modules for p in m.parameters()]
    return len(params), sum(p.numel() for p in params)


def test_mlp_puts_the_activation_between_layers_only():
    net = nets.mlp([3, 5, 7, 2], nn.Tanh)
    assert [type(m) for m in net] == [nn.Linear, nn.Tanh, nn.Linear, nn.Tanh, nn.Linear]
    assert [(m.in_features, m.out_features) for m in net[::2]] == [(3, 5), (5, 7), (7, 2)]


def test_the_seed_mlp_at_mnist_size_has_the_perf_cases_size():
    G, D = nets.seed_mlp_players(784)
    assert _count(G, D) == (14, 238_645)
    assert G(torch.randn(2, 100)).shape == (2, 784) and D(torch.randn(2, 784)).shape == (2, 1)


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32), (3, 64), (1, 8)])
def test_dcgan_maps_noise_to_images_in_tanh_range_and_images_to_one_logit(channels, size):
    torch.manual_seed(0)
    G, D = nets.dcgan_players(channels, size, z_dim=16, w=8)
    x = G(torch.randn(3, 16))
    assert x.shape == (3, channels, size, size) and x.abs().max() <= 1
    assert D(x).shape == (3, 1)


def test_dcgan_64_is_radford_et_al_with_conv_biases():
    G, D = nets.dcgan_players(3, 64, z_dim=100, w=64)
    g_convs = [(m.in_channels, m.out_channels) for m in G if isinstance(m, nn.ConvTranspose2d)]
    assert g_convs == [(100, 512), (512, 256), (256, 128), (128, 64), (64, 3)]
    d_convs = [(m.in_channels, m.out_channels) for m in D if isinstance(m, nn.Conv2d)]
    assert d_convs == [(3, 64), (64, 128), (128, 256), (256, 512), (512, 1)]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in D) == 3  # none on the first layer
    assert _count(G, D) == (34, 6_344_196)


@pytest.mark.parametrize("size", [4, 12, 48])
def test_dcgan_refuses_sizes_it_cannot_build(size):
    with pytest.raises(ValueError, match="28 or 4·2"):
        nets.dcgan_players(3, size, z_dim=16, w=8)
