"""Training-free guidance: a denoiser wrapper that steers samples down an anatomical potential.

Anatomica's guided denoiser (paper, Sec. "Guidance"):  D^w(z_σ; σ) = D(z_σ; σ) − w·σ²·∇_{z_σ} L(ẑ0),
with ẑ0 = D(z_σ; σ). The gradient flows back through the denoiser (``mode="full"``), or, in the fast mode,
stops at ẑ0 and the denoiser Jacobian ∂ẑ0/∂z_σ is replaced by c_skip(σ)·I = σ_d²/(σ² + σ_d²)·I (``mode="fast"``:
one forward pass instead of forward + backward). c_skip·I is the exact Jacobian of the posterior mean when the
latent is Gaussian with variance σ_d² (Karras et al. 2022, Table 1: D = c_skip·z + c_out·F, and F → 0 for
Gaussian data); dropping the Jacobian altogether (factor 1) over-steps by 1/c_skip, up to ~6400× at σ = 80.

Two options for potentials whose gradient is sparse and badly scaled (topological ones: a few birth/death cells
at full strength, Anatomica CVPR 2026 "Topological guidance"; issue 11 item 9):

- ``normalize=ρ``: per sample, the shift w·σ²·∇L is replaced by ρ·s(σ)·∇L / rms(∇L), s(σ) = σ·σ_d/√(σ² + σ_d²)
  the posterior standard deviation of ẑ0 given z_σ for Gaussian data: a step whose RMS per latent element is the
  fraction ρ of what ẑ0 is still uncertain about (0 where ∇L = 0); ``scale`` then only switches guidance on.
- ``clip=ρ``: the shift stays w·σ²·∇L but its RMS is capped at ρ·s(σ) (a small gradient keeps its small step).
- ``recurrence=r``: r more times per guided call, re-noise the guided estimate to the same σ,
  z' = D^w(z; σ) + σ·ε (fresh ε), and denoise again, D^w(z'; σ) (Bansal et al. 2023, "self-recurrence"):
  the prior gets r chances to pull a guided estimate back onto the data manifold. Costs (r + 1) calls.

Any potential callable ``L(z0_hat) -> (B,)`` works; this module knows nothing about anatomy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Potential = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class GuidanceTrace:
    """Potential value per sample at every guided call, for reports (σ, L(ẑ0) of shape (B,))."""

    sigmas: list[float] = field(default_factory=list)
    potentials: list[torch.Tensor] = field(default_factory=list)

    def as_lists(self) -> tuple[list[float], list[list[float]]]:
        """(σ per call, potential per sample per call) as plain Python lists."""
        return self.sigmas, [p.tolist() for p in self.potentials]


class GuidedDenoiser:
    """Wrap ``denoiser`` so that it returns D^w; guidance is active for σ in [sigma_min, sigma_max]."""

    def __init__(
        self,
        denoiser: Denoiser,
        potential: Potential,
        scale: float,
        sigma_min: float = 0.0,
        sigma_max: float = float("inf"),
        mode: str = "full",
        trace: GuidanceTrace | None = None,
        sigma_data: float = 1.0,
        normalize: float | None = None,
        recurrence: int = 0,
        clip: float | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if normalize is not None and not (normalize > 0 and normalize < float("inf")):
            raise ValueError(f"guidance normalize must be a finite number > 0, got {normalize}")
        if clip is not None and not (clip > 0 and clip < float("inf")):
            raise ValueError(f"guidance clip must be a finite number > 0, got {clip}")
        if normalize is not None and clip is not None:
            raise ValueError("guidance takes normalize or clip, not both")
        self.clip = None if clip is None else float(clip)
        if int(recurrence) != recurrence or recurrence < 0:
            raise ValueError(f"guidance recurrence must be an integer >= 0, got {recurrence}")
        self.normalize, self.recurrence = (None if normalize is None else float(normalize)), int(recurrence)
        self.generator = generator
        if mode not in ("full", "fast"):
            raise ValueError(f"guidance mode must be 'full' or 'fast', got {mode!r}")
        if scale < 0:
            raise ValueError(f"guidance scale must be >= 0, got {scale}")
        self.denoiser, self.potential, self.scale = denoiser, potential, float(scale)
        self.sigma_min, self.sigma_max, self.mode = float(sigma_min), float(sigma_max), mode
        self.trace = trace
        self.sigma_data = float(sigma_data)

    def active(self, sigma: torch.Tensor) -> bool:
        s = float(torch.as_tensor(sigma).flatten()[0])
        return self.scale > 0 and self.sigma_min <= s <= self.sigma_max

    def __call__(self, z: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if not self.active(sigma):
            with torch.no_grad():
                return self.denoiser(z, sigma)
        out, loss = self.guided_step(z, sigma)
        if self.trace is not None:  # L(ẑ0) at the sampler's own z, once per call
            self.trace.sigmas.append(float(torch.as_tensor(sigma).flatten()[0]))
            self.trace.potentials.append(loss.detach().cpu())
        if self.recurrence:
            s = float(torch.as_tensor(sigma).flatten()[0])
            for _ in range(self.recurrence):  # self-recurrence: re-noise to the same σ, denoise again (guided)
                eps = torch.randn(z.shape, generator=self.generator, dtype=z.dtype, device="cpu").to(z.device)
                out, _ = self.guided_step(out + s * eps, sigma)
        return out

    def guided_step(self, z: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One D^w(z; σ) = D(z; σ) − w·σ²·∇_z L (or the normalized step ρ·s(σ)·∇L/rms(∇L))."""
        sig = torch.as_tensor(sigma, dtype=z.dtype, device=z.device).reshape(-1)
        sig = sig.expand(z.shape[0]) if sig.numel() == 1 else sig
        with torch.enable_grad():
            if self.mode == "full":
                z_in = z.detach().requires_grad_(True)
                z0 = self.denoiser(z_in, sigma)
                loss = self.potential(z0)
                (grad,) = torch.autograd.grad(loss.sum(), z_in)
            else:
                with torch.no_grad():
                    z0 = self.denoiser(z, sigma)
                z0_in = z0.detach().requires_grad_(True)
                loss = self.potential(z0_in)
                (grad,) = torch.autograd.grad(loss.sum(), z0_in)
                c_skip = self.sigma_data**2 / (sig**2 + self.sigma_data**2)
                grad = c_skip.reshape(-1, *([1] * (z.ndim - 1))) * grad
        view = (-1, *([1] * (z.ndim - 1)))
        post_sd = (sig * self.sigma_data / torch.sqrt(sig**2 + self.sigma_data**2)).reshape(view)
        if self.normalize is not None:
            rms = grad.flatten(1).pow(2).mean(1).sqrt().reshape(view)
            shift = self.normalize * post_sd * torch.where(rms > 0, grad / rms.clamp_min(1e-30), torch.zeros_like(grad))
        else:
            shift = self.scale * sig.reshape(view) ** 2 * grad
            if self.clip is not None:
                rms = shift.flatten(1).pow(2).mean(1).sqrt().reshape(view)
                shift = shift * torch.clamp(self.clip * post_sd / rms.clamp_min(1e-30), max=1.0)
        return (z0.detach() - shift).detach(), loss
