"""EDM preconditioning identities, noise distribution, loss and the σ schedule (Karras et al. 2022)."""

import math

import pytest
import torch

from anatomica.diffusion.edm import EDMPrecond, edm_loss, karras_sigmas, loss_weight, precond_coefficients, sample_training_sigmas


class Linear(torch.nn.Module):
    """F(x, c_noise) = a·x + c_noise (broadcast), to check exactly how D composes F."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(0.7))
        self.calls = []

    def forward(self, x, c_noise):
        self.calls.append((x.clone(), c_noise.clone()))
        return self.a * x + c_noise.reshape(-1, *([1] * (x.ndim - 1)))


@pytest.mark.parametrize("sigma_data", [0.5, 1.0])
def test_preconditioning_identities(sigma_data):
    s = torch.logspace(-3, 2, 50, dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = precond_coefficients(s, sigma_data)
    torch.testing.assert_close(c_in**2 * (s**2 + sigma_data**2), torch.ones_like(s))  # unit-variance network input
    # F's effective target (y − c_skip·(y+n))/c_out has unit variance for Var y = σ_d², Var n = σ² (EDM App. B.6)
    target_var = ((1 - c_skip) ** 2 * sigma_data**2 + c_skip**2 * s**2) / c_out**2
    torch.testing.assert_close(target_var, torch.ones_like(s))
    torch.testing.assert_close(loss_weight(s, sigma_data) * c_out**2, torch.ones_like(s))  # λ·c_out² = 1 (Eq. 8)
    torch.testing.assert_close(c_noise, s.log() / 4)
    assert c_skip[0] > 0.999 and c_out[0] < 0.003  # σ -> 0: D(x) -> x
    assert c_skip[-1] < 1e-4  # σ large: D relies on F


def test_denoiser_composes_network_exactly():
    net = Linear()
    D = EDMPrecond(net, sigma_data=0.5)
    x = torch.randn(3, 2, 4, 4, 4)
    sigma = torch.tensor([0.01, 1.0, 30.0])
    out = D(x, sigma)
    c_skip, c_out, c_in, c_noise = (c.reshape(-1, 1, 1, 1, 1) for c in precond_coefficients(sigma, 0.5))
    expected = c_skip * x + c_out * (0.7 * c_in * x + c_noise)
    torch.testing.assert_close(out, expected)
    x_in, cn = net.calls[-1]
    assert cn.shape == (3,)
    torch.testing.assert_close(x_in, c_in * x)


def test_scalar_and_batched_sigma_agree():
    D = EDMPrecond(Linear())
    x = torch.randn(2, 1, 3, 3, 3)
    torch.testing.assert_close(D(x, 2.5), D(x, torch.tensor([2.5, 2.5])))
    torch.testing.assert_close(D(x, torch.tensor(2.5)), D(x, 2.5))
    with pytest.raises(ValueError, match="3 entries for a batch of 2"):
        D(x, torch.ones(3))


def test_training_sigmas_are_lognormal_and_seeded():
    g = torch.Generator().manual_seed(0)
    s = sample_training_sigmas(40000, P_mean=-1.2, P_std=1.2, generator=g)
    assert abs(float(s.log().mean()) + 1.2) < 0.03 and abs(float(s.log().std()) - 1.2) < 0.03
    a = sample_training_sigmas(5, generator=torch.Generator().manual_seed(3))
    b = sample_training_sigmas(5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_edm_loss_matches_its_definition():
    D = EDMPrecond(Linear(), sigma_data=0.5)
    x0 = torch.randn(4, 2, 3, 3, 3)
    loss = edm_loss(D, x0, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    sigma = sample_training_sigmas(4, generator=g)
    n = torch.randn(x0.shape, generator=g)
    s = sigma.reshape(-1, 1, 1, 1, 1)
    ref = (loss_weight(sigma, 0.5) * ((D(x0 + s * n, sigma) - x0) ** 2).flatten(1).mean(1)).mean()
    torch.testing.assert_close(loss, ref)
    loss.backward()
    assert D.net.a.grad is not None and torch.isfinite(D.net.a.grad)


def test_karras_schedule():
    s = karras_sigmas(10, 0.002, 80.0, 7.0)
    assert s.shape == (11,) and s[-1] == 0
    assert math.isclose(float(s[0]), 80.0, rel_tol=1e-6) and math.isclose(float(s[-2]), 0.002, rel_tol=1e-5)
    assert torch.all(s[1:] < s[:-1])
    # Eq. 5: σ_i^{1/ρ} is linear in i
    r = s[:-1].double() ** (1 / 7)
    torch.testing.assert_close(r[1:] - r[:-1], torch.full((9,), float(r[1] - r[0]), dtype=torch.float64), rtol=1e-4, atol=1e-6)
    assert torch.equal(karras_sigmas(1, sigma_max=5.0), torch.tensor([5.0, 0.0]))
    with pytest.raises(ValueError):
        karras_sigmas(0)
