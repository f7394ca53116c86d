"""Autoencoder shapes and interfaces: encode -> (mean, logvar), decode, query, decode_field."""

import pytest
import torch

from anatomica.nn.autoencoder import Autoencoder, AutoencoderConfig

CFG = AutoencoderConfig(num_classes=3, latent_channels=4, channels=(8, 8, 8), norm_num_groups=8, field={"features": 8, "hidden": 16, "upsample": 0})


def test_shapes():
    torch.manual_seed(0)
    ae = Autoencoder(CFG).requires_grad_(False)
    x = torch.nn.functional.one_hot(torch.randint(0, 3, (2, 16, 16, 16)), 3).movedim(-1, 1).float()
    mean, logvar = ae.encode(x)
    assert mean.shape == logvar.shape == (2, 4, 4, 4, 4) == (2, *ae.latent_shape((16, 16, 16)))
    z = ae.sample_posterior(mean, logvar, generator=torch.Generator().manual_seed(0))
    assert ae.decode(z).shape == (2, 3, 16, 16, 16)
    assert ae.decode_field(z, (16, 16, 16)).shape == (2, 3, 16, 16, 16)
    assert ae.query(z, torch.zeros(7, 3)).shape == (2, 3, 7)
    assert float(ae.kl_divergence(mean, logvar)) >= 0
    assert float(ae.kl_divergence(torch.zeros(3), torch.zeros(3))) == 0.0


def test_errors():
    with pytest.raises(ValueError, match="divisible by 4"):
        Autoencoder(CFG).latent_shape((16, 16, 10))
    with pytest.raises(ValueError, match="at least 2 classes"):
        Autoencoder(AutoencoderConfig(num_classes=1))
    with pytest.raises(ValueError, match="unknown autoencoder config"):
        AutoencoderConfig.from_dict({"channelz": 1})


def test_upscale_decodes_a_finer_grid_from_the_core_latent():
    """upscale = 2: the encoder reads the map mode-pooled to the core's grid (same latent as the core on the coarse
    map), both decoders give the fine grid, and a fresh refinement head starts as plain trilinear upsampling."""
    from dataclasses import replace

    from anatomica.nn.autoencoder import mode_pool

    torch.manual_seed(0)
    core = Autoencoder(CFG).requires_grad_(False)
    fine = Autoencoder(replace(CFG, upscale=2)).requires_grad_(False)
    fine.load_state_dict({**fine.state_dict(), **core.state_dict()})
    assert fine.latent_shape((32, 32, 32)) == (4, 4, 4, 4) and fine.config.field_config().downsampling == 8
    lab = torch.randint(0, 3, (1, 16, 16, 16)).repeat_interleave(2, 1).repeat_interleave(2, 2).repeat_interleave(2, 3)
    x = torch.nn.functional.one_hot(lab, 3).movedim(-1, 1).float()  # each 2³ block one label: pooling is exact
    coarse = torch.nn.functional.one_hot(lab[:, ::2, ::2, ::2], 3).movedim(-1, 1).float()
    assert torch.equal(mode_pool(x, 2), coarse)
    assert torch.equal(fine.encode(x)[0], core.encode(coarse)[0])
    z = fine.encode(x)[0]
    up = torch.nn.functional.interpolate(core.decode(z), scale_factor=2, mode="trilinear", align_corners=False)
    assert torch.allclose(fine.decode(z), up)
    assert fine.decode_field(z, (32, 32, 32)).shape == (1, 3, 32, 32, 32)
    with pytest.raises(ValueError, match="upscale"):
        AutoencoderConfig.from_dict({**CFG.to_dict(), "upscale": 0})
