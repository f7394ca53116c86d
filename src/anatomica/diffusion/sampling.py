"""Samplers as short pure functions (k-diffusion style) on the probability-flow ODE of EDM.

A denoiser is any callable ``D(x, sigma) -> x0_hat``; samplers call it with ``sigma`` as a Python
float (one noise level for the whole batch). The ODE is dx/dσ = (x − D(x; σ)) / σ  (Karras et al.
2022, Eq. 3 with σ(t) = t, s(t) = 1). Guidance wraps a denoiser and returns a denoiser, so these
functions never change for it.

``callback(info)`` runs after every step with ``info`` holding:
``i`` (step index), ``x`` (state at ``sigma``, the step's input, k-diffusion's convention),
``x_next`` (state after the step, at ``sigma_next``), ``sigma``, ``sigma_next`` and ``denoised``
(D(x; σ) at the step's input).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from anatomica.errors import AnatomicaError

Denoiser = Callable[[Tensor, float], Tensor]


def to_d(x: Tensor, sigma: float, denoised: Tensor) -> Tensor:
    """ODE derivative dx/dσ = (x − D(x; σ)) / σ  (Eq. 3)."""
    return (x - denoised) / sigma


def _check(x: Tensor, sigmas: Tensor) -> list[float]:
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError(f"sigmas must be a 1-D schedule with at least 2 entries, got shape {tuple(sigmas.shape)}")
    return [float(s) for s in sigmas]


def sample_euler(denoiser: Denoiser, x: Tensor, sigmas: Tensor, callback: Callable[[dict], None] | None = None) -> Tensor:
    """First-order Euler steps along the σ schedule; ``x`` starts at noise level ``sigmas[0]``."""
    s = _check(x, sigmas)
    for i in range(len(s) - 1):
        sigma, sigma_next = s[i], s[i + 1]
        denoised = denoiser(x, sigma)
        x_next = x + to_d(x, sigma, denoised) * (sigma_next - sigma)
        if callback is not None:
            callback(dict(i=i, x=x, x_next=x_next, sigma=sigma, sigma_next=sigma_next, denoised=denoised))
        x = x_next
    return x


def sample_heun(denoiser: Denoiser, x: Tensor, sigmas: Tensor, callback: Callable[[dict], None] | None = None) -> Tensor:
    """Heun's 2nd-order method (Algorithm 1, deterministic, no churn); Euler on the last step to σ = 0."""
    s = _check(x, sigmas)
    for i in range(len(s) - 1):
        sigma, sigma_next = s[i], s[i + 1]
        denoised = denoiser(x, sigma)
        d = to_d(x, sigma, denoised)
        x_next = x + d * (sigma_next - sigma)
        if sigma_next > 0:
            d_next = to_d(x_next, sigma_next, denoiser(x_next, sigma_next))
            x_next = x + 0.5 * (d + d_next) * (sigma_next - sigma)
        if callback is not None:
            callback(dict(i=i, x=x, x_next=x_next, sigma=sigma, sigma_next=sigma_next, denoised=denoised))
        x = x_next
    return x


SAMPLERS: dict[str, Callable[..., Tensor]] = {"heun": sample_heun, "euler": sample_euler}


def finite_steps(callback: Callable[[dict], None] | None = None, hint: str = "") -> Callable[[dict], None]:
    """A step callback that stops sampling the moment the state turns non-finite, naming the step and σ
    (so a diverged run never decodes NaN into an empty label map), then calls ``callback``."""

    def check(info: dict) -> None:
        if not torch.isfinite(info["x_next"]).all():
            raise AnatomicaError(f"sampling diverged at step {info['i'] + 1} (σ = {info['sigma']:.4g} → {info['sigma_next']:.4g}): "
                                 f"the latent is no longer finite{hint}")
        if callback is not None:
            callback(info)

    return check
