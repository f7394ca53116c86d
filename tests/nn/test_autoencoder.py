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
