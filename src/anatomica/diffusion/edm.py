"""EDM: preconditioning, training noise levels, loss weight and the σ schedule (Karras et al. 2022).

Equation and table numbers refer to "Elucidating the Design Space of Diffusion-Based Generative
Models" (Karras, Aittala, Aila, Laine; NeurIPS 2022), Table 1, column "Ours".

A denoiser ``D(x, sigma) -> x0_hat`` is the only interface samplers and guidance see; this module
builds one from a raw network ``F`` via :class:`EDMPrecond`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _sigma_like(sigma: Tensor | float, x: Tensor) -> Tensor:
    """σ as a (B, 1, ..., 1) tensor broadcastable against ``x`` (accepts a float, a 0-d or a (B,) tensor)."""
    s = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
    if s.ndim == 0:
        s = s.expand(x.shape[0])
    s = s.reshape(-1)
    if s.shape[0] != x.shape[0]:
        raise ValueError(f"sigma has {s.shape[0]} entries for a batch of {x.shape[0]}")
    return s.reshape(-1, *([1] * (x.ndim - 1)))


def precond_coefficients(sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(c_skip, c_out, c_in, c_noise) of Table 1 (EDM column), elementwise in σ.

    c_skip = σ_d² / (σ² + σ_d²), c_out = σ·σ_d / √(σ² + σ_d²), c_in = 1 / √(σ² + σ_d²), c_noise = ¼ ln σ.
    """
    sd2 = sigma_data**2
    denom = sigma**2 + sd2
    c_skip = sd2 / denom
    c_out = sigma * sigma_data / denom.sqrt()
    c_in = 1.0 / denom.sqrt()
    c_noise = sigma.log() / 4.0
    return c_skip, c_out, c_in, c_noise


class EDMPrecond(torch.nn.Module):
    """D(x; σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x; c_noise(σ), **kwargs)   (Eq. 7, Table 1).

    ``net`` is called as ``net(x_in, c_noise, **net_kwargs)`` with ``c_noise`` of shape (B,) and must
    return a tensor shaped like ``x``. ``sigma`` may be a float, a 0-d tensor or a (B,) tensor.
    """

    def __init__(self, net: torch.nn.Module, sigma_data: float = 1.0):
        super().__init__()
        if sigma_data <= 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data}")
        self.net = net
        self.sigma_data = float(sigma_data)

    def forward(self, x: Tensor, sigma: Tensor | float, **net_kwargs) -> Tensor:
        s = _sigma_like(sigma, x)
        c_skip, c_out, c_in, c_noise = precond_coefficients(s, self.sigma_data)
        dtype = x.dtype
        F_x = self.net((c_in * x).to(dtype), c_noise.reshape(-1), **net_kwargs)
        if F_x.shape != x.shape:
            raise ValueError(f"network returned shape {tuple(F_x.shape)} for input {tuple(x.shape)}")
        return (c_skip * x + c_out * F_x.to(torch.float32)).to(dtype)


class ConditionedDenoiser(torch.nn.Module):
    """D(x; σ | c) = c_skip·x + c_out·F([c_in·x, c]; c_noise): a conditional :class:`EDMPrecond` with its
    conditioning channels ``cond`` (B or 1, C_cond, …) fixed, concatenated unscaled with the preconditioned
    latent (the conditional baselines of the Anatomica paper). Called as ``D(x, sigma)``, like any denoiser."""

    def __init__(self, denoiser: EDMPrecond, cond: Tensor):
        super().__init__()
        self.denoiser = denoiser
        self.sigma_data = denoiser.sigma_data
        self.register_buffer("cond", cond, persistent=False)

    def forward(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        return self.denoiser(x, sigma, cond=self.cond.to(x.device))


def sample_training_sigmas(
    batch: int, P_mean: float = -1.2, P_std: float = 1.2, generator: torch.Generator | None = None, device=None
) -> Tensor:
    """Training noise levels ln σ ~ N(P_mean, P_std²) (Table 1, "noise distribution"), shape (batch,)."""
    gen_device = generator.device if generator is not None else device
    eps = torch.randn(batch, generator=generator, device=gen_device)
    return (P_mean + P_std * eps).exp().to(device if device is not None else eps.device)


def loss_weight(sigma: Tensor, sigma_data: float) -> Tensor:
    """λ(σ) = (σ² + σ_d²) / (σ·σ_d)²  (Table 1, "loss weighting"), which gives the network F unit-weight targets."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def edm_loss(
    denoiser: EDMPrecond,
    x0: Tensor,
    P_mean: float = -1.2,
    P_std: float = 1.2,
    generator: torch.Generator | None = None,
    **net_kwargs,
) -> Tensor:
    """E_σ,n [ λ(σ) ‖D(x0 + n; σ) − x0‖² ] with n ~ N(0, σ²I)  (Eq. 2 and Eq. 8), averaged over elements.

    The mean (not the sum) over elements keeps the scale independent of the latent size; only the
    learning rate notices. ``generator`` fixes σ and n for reproducible steps.
    """
    B = x0.shape[0]
    sigma = sample_training_sigmas(B, P_mean, P_std, generator=generator, device=x0.device)
    gen_device = generator.device if generator is not None else x0.device
    noise = torch.randn(x0.shape, generator=generator, device=gen_device, dtype=torch.float32).to(x0.device, x0.dtype)
    s = sigma.reshape(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
    denoised = denoiser(x0 + s * noise, sigma, **net_kwargs)
    w = loss_weight(sigma, denoiser.sigma_data).to(x0.dtype)
    per_sample = ((denoised - x0) ** 2).flatten(1).mean(1)
    return (w * per_sample).mean()


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, device=None) -> Tensor:
    """σ_i = (σ_max^{1/ρ} + i/(n−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ for i < n, and σ_n = 0  (Eq. 5), shape (n+1,).

    ``n`` is the number of sampling steps; a single step goes straight from σ_max to 0.
    """
    if n < 1:
        raise ValueError(f"the number of steps must be >= 1, got {n}")
    if not 0 < sigma_min <= sigma_max:
        raise ValueError(f"need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
    if n == 1:
        steps = torch.tensor([sigma_max], dtype=torch.float64)
    else:
        ramp = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
        lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
        steps = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([steps, steps.new_zeros(1)]).to(dtype=torch.float32, device=device)

