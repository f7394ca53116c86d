"""Euler and Heun samplers against the exact probability-flow ODE of Gaussian data."""

import torch

from anatomica.diffusion.edm import karras_sigmas
from anatomica.diffusion.noise import initial_noise
from anatomica.diffusion.sampling import sample_euler, sample_heun

S = 0.8  # data ~ N(0, S² I): the ideal denoiser and the ODE solution are closed-form


def ideal_denoiser(x, sigma):
    return x * S**2 / (S**2 + float(sigma) ** 2)


def exact(x_T, sigma_T, sigma):
    # dx/dσ = (x − D)/σ = x·σ/(S²+σ²)  =>  x(σ) ∝ sqrt(S² + σ²)
    return x_T * ((S**2 + sigma**2) / (S**2 + sigma_T**2)) ** 0.5


def test_heun_and_euler_follow_the_ode_with_their_orders():
    x_T = initial_noise((2, 1, 4, 4, 4), 80.0, seed=0).double()
    target = exact(x_T, 80.0, 0.0)

    def err(sampler, n):
        return float((sampler(ideal_denoiser, x_T, karras_sigmas(n).double()) - target).abs().max() / target.abs().max())

    h12, h24, h48 = (err(sample_heun, n) for n in (12, 24, 48))
    e24, e48 = (err(sample_euler, n) for n in (24, 48))
    assert h48 < 0.01
    assert h24 / h48 > 3.5 and h12 / h24 > 3.5  # second order: halving the step quarters the error
    assert 1.7 < e24 / e48 < 2.3  # first order
    assert h48 < e48 / 5


def test_callback_sees_every_step():
    seen = []
    sigmas = karras_sigmas(5)
    x_T = initial_noise((1, 1, 2, 2, 2), 80.0, seed=1)
    out = sample_heun(ideal_denoiser, x_T, sigmas, callback=seen.append)
    assert [d["i"] for d in seen] == list(range(5))
    assert seen[0]["sigma"] == float(sigmas[0]) and seen[-1]["sigma_next"] == 0.0
    torch.testing.assert_close(seen[-1]["x_next"], out)
    torch.testing.assert_close(seen[2]["denoised"], ideal_denoiser(seen[2]["x"], seen[2]["sigma"]))


def test_initial_noise_is_seeded():
    a, b, c = (initial_noise((2, 3), 80.0, seed=s) for s in (4, 4, 5))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert abs(float(initial_noise((10000,), 2.0, seed=0).std()) - 2.0) < 0.05
