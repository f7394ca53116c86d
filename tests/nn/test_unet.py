"""The MONAI UNet adapter: EDM call signature, 2D/3D, cross-attention context, noise-level conditioning."""

import pytest
import torch

from anatomica.diffusion.edm import EDMPrecond
from anatomica.nn.unet import DenoiserUNet, UNetConfig


def randomized(net):
    # MONAI zero-initializes the output convolution (a good start for training); tests need a non-trivial map
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net


TINY = dict(channels=(32, 32), attention_levels=(False, True), num_res_blocks=1, num_head_channels=16, norm_num_groups=8)


def test_3d_shapes_and_noise_conditioning():
    torch.manual_seed(0)
    net = randomized(DenoiserUNet(UNetConfig(in_channels=4, **TINY)))
    x = torch.randn(2, 4, 8, 8, 8)
    a = net(x, torch.tensor([0.0, 0.0]))
    b = net(x, torch.tensor([-1.0, 1.0]))
    assert a.shape == x.shape
    assert (a - b).abs().max() > 1e-4  # c_noise reaches the network
    assert torch.equal(net(x, torch.tensor(0.3)), net(x, torch.tensor([0.3, 0.3])))
    D = EDMPrecond(net)
    assert D(x, 1.0).shape == x.shape


def test_2d_with_context():
    net = randomized(DenoiserUNet(UNetConfig(spatial_dims=2, in_channels=3, with_conditioning=True, cross_attention_dim=8, **TINY)))
    x = torch.randn(2, 3, 16, 16)
    ctx = torch.randn(2, 5, 8)
    out = net(x, torch.zeros(2), context=ctx)
    assert out.shape == x.shape
    assert (out - net(x, torch.zeros(2), context=ctx + 1)).abs().max() > 1e-5


def test_bad_input_sizes():
    net = DenoiserUNet(UNetConfig(in_channels=2, **TINY))
    with pytest.raises(ValueError, match="divisible by 2"):
        net(torch.randn(1, 2, 5, 8, 8), torch.zeros(1))
    with pytest.raises(ValueError, match="expected a"):
        net(torch.randn(1, 2, 8, 8), torch.zeros(1))
    with pytest.raises(ValueError, match="unknown UNet config"):
        UNetConfig.from_dict({"bogus": 1})
