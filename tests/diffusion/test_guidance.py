import pytest
import torch

from anatomica.diffusion.guidance import GuidanceTrace, GuidedDenoiser


def gaussian_denoiser(z, sigma):
    """Exact denoiser for unit-Gaussian data: D(z; σ) = z / (1 + σ²)."""
    s = torch.as_tensor(sigma, dtype=z.dtype).reshape(-1, *([1] * (z.ndim - 1)))
    return z / (1 + s**2)


def potential(target):
    return lambda z0: ((z0 - target) ** 2).flatten(1).sum(1)


def test_guided_equals_formula_and_fast_mode_uses_c_skip_as_the_jacobian():
    torch.manual_seed(0)
    z, target, sigma, w = torch.randn(3, 2, 4, 4, 4), torch.randn(1, 2, 4, 4, 4), torch.tensor(1.5), 0.1
    z0 = gaussian_denoiser(z, sigma)
    grad_z0 = 2 * (z0 - target)
    full = GuidedDenoiser(gaussian_denoiser, potential(target), w)(z, sigma)
    fast = GuidedDenoiser(gaussian_denoiser, potential(target), w, mode="fast")(z, sigma)
    torch.testing.assert_close(full, z0 - w * sigma**2 * grad_z0 / (1 + sigma**2))  # chain rule through D
    # for unit-Gaussian data the denoiser is c_skip·z, so the c_skip Jacobian is exact: fast = full
    torch.testing.assert_close(fast, full)
    slow_data = GuidedDenoiser(gaussian_denoiser, potential(target), w, mode="fast", sigma_data=0.5)(z, sigma)
    torch.testing.assert_close(slow_data, z0 - w * sigma**2 * grad_z0 * 0.25 / (sigma**2 + 0.25))


def test_guidance_lowers_the_potential_and_respects_the_window():
    torch.manual_seed(1)
    z, target = torch.randn(2, 1, 6, 6, 6), torch.full((1, 1, 6, 6, 6), 0.5)
    L = potential(target)
    trace = GuidanceTrace()
    guided = GuidedDenoiser(gaussian_denoiser, L, 0.2, sigma_max=2.0, trace=trace)
    plain = gaussian_denoiser(z, torch.tensor(1.0))
    assert (L(guided(z, torch.tensor(1.0))) < L(plain)).all()
    torch.testing.assert_close(guided(z, torch.tensor(5.0)), gaussian_denoiser(z, torch.tensor(5.0)))  # outside window
    assert len(trace.sigmas) == 1 and trace.potentials[0].shape == (2,)


def test_bad_options():
    with pytest.raises(ValueError, match="mode"):
        GuidedDenoiser(gaussian_denoiser, potential(0), 1.0, mode="slow")
    with pytest.raises(ValueError, match=">= 0"):
        GuidedDenoiser(gaussian_denoiser, potential(0), -1.0)


def test_normalized_step_has_rms_rho_times_the_posterior_sd_and_is_zero_without_gradient():
    torch.manual_seed(2)
    z, target, sigma, rho = torch.randn(2, 1, 4, 4, 4), torch.randn(1, 1, 4, 4, 4), 3.0, 0.2
    out = GuidedDenoiser(gaussian_denoiser, potential(target), 1.0, normalize=rho)(z, torch.tensor(sigma))
    shift = gaussian_denoiser(z, torch.tensor(sigma)) - out
    rms = shift.flatten(1).pow(2).mean(1).sqrt()
    torch.testing.assert_close(rms, torch.full((2,), rho * sigma / (1 + sigma**2) ** 0.5))
    flat = GuidedDenoiser(gaussian_denoiser, lambda z0: z0.sum((1, 2, 3, 4)) * 0, 1.0, normalize=rho)(z, torch.tensor(sigma))
    torch.testing.assert_close(flat, gaussian_denoiser(z, torch.tensor(sigma)))


def test_recurrence_re_denoises_at_the_same_sigma_reproducibly():
    torch.manual_seed(3)
    z, target = torch.randn(2, 1, 4, 4, 4), torch.zeros(1, 1, 4, 4, 4)
    calls = []

    def counting(x, s):
        calls.append(float(torch.as_tensor(s)))
        return gaussian_denoiser(x, s)

    trace = GuidanceTrace()
    runs = [GuidedDenoiser(counting, potential(target), 0.1, recurrence=2, trace=trace, generator=torch.Generator().manual_seed(5))(z, torch.tensor(2.0))
            for _ in range(2)]
    assert calls == [2.0] * 6 and len(trace.sigmas) == 2  # 1 + 2 denoiser calls per guided call, one trace entry each
    torch.testing.assert_close(runs[0], runs[1])
    assert not torch.allclose(runs[0], GuidedDenoiser(gaussian_denoiser, potential(target), 0.1)(z, torch.tensor(2.0)))


def test_bad_normalize_and_recurrence():
    with pytest.raises(ValueError, match="normalize"):
        GuidedDenoiser(gaussian_denoiser, potential(0), 1.0, normalize=0.0)
    with pytest.raises(ValueError, match="recurrence"):
        GuidedDenoiser(gaussian_denoiser, potential(0), 1.0, recurrence=-1)


def test_clip_caps_large_steps_and_keeps_small_ones():
    torch.manual_seed(4)
    z, target, sigma = torch.randn(2, 1, 4, 4, 4), torch.randn(1, 1, 4, 4, 4), torch.tensor(2.0)
    plain = GuidedDenoiser(gaussian_denoiser, potential(target), 1e-3)(z, sigma)
    torch.testing.assert_close(GuidedDenoiser(gaussian_denoiser, potential(target), 1e-3, clip=10.0)(z, sigma), plain)  # small: unchanged
    big = GuidedDenoiser(gaussian_denoiser, potential(target), 1e3, clip=0.1)(z, sigma)
    rms = (gaussian_denoiser(z, sigma) - big).flatten(1).pow(2).mean(1).sqrt()
    torch.testing.assert_close(rms, torch.full((2,), 0.1 * 2.0 / 5**0.5))
    with pytest.raises(ValueError, match="not both"):
        GuidedDenoiser(gaussian_denoiser, potential(target), 1.0, clip=0.1, normalize=0.1)
