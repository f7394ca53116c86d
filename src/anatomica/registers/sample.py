"""Mask-free sampling: EDM steps in latent space, decode, and the head's mask at low noise.

The initial noise of all ``n`` samples is drawn at once from the seed, so a sample does not depend on
the batch size, and an edited bank sampled with the same seed starts from the same noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from anatomica.diffusion.edm import karras_sigmas
from anatomica.diffusion.noise import initial_noise
from anatomica.diffusion.sampling import SAMPLERS
from anatomica.errors import AnatomicaError
from anatomica.registers.train import RegisterLDM

SIGMA_MAX = 80.0


@dataclass
class Samples:
    images: Tensor  # (N, 1, *S) in [-1, 1]
    masks: Tensor | None  # (N, *S) predicted by the segmentation head; None without a head
    latents: Tensor


def _edit_kwargs(model: RegisterLDM, registers: Tensor | None, drop: Sequence[int]) -> dict:
    if (registers is not None or drop) and not model.has_registers:
        raise AnatomicaError("cannot edit the registers of a model that has none")
    if not model.has_registers:
        return {}
    return {"registers": registers, "drop": tuple(int(c) for c in drop)}


@torch.no_grad()
def head_masks(model: RegisterLDM, latents: Tensor, registers: Tensor | None = None, batch: int = 64, drop: Sequence[int] = ()) -> Tensor:
    """Label maps of finished latents read by the segmentation head at σ = ``mask_sigma``, on the image
    grid (the head's own ×2 stages, bilinear for any remaining factor)."""
    if not model.has_registers:
        raise AnatomicaError("this model has no segmentation head (it is an LDM without registers)")
    size = (model.config.image_size,) * model.config.spatial_dims
    out = []
    for i in range(0, len(latents), batch):
        aux: dict = {}
        model.precond(latents[i : i + batch], model.config.mask_sigma, aux=aux, **_edit_kwargs(model, registers, drop))
        logits = aux["seg_logits"]
        if tuple(logits.shape[2:]) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear" if len(size) == 2 else "trilinear", align_corners=False)
        out.append(logits.argmax(1))
    return torch.cat(out)


@torch.no_grad()
def attention_maps(model: RegisterLDM, latents: Tensor, sigma: float | None = None) -> list[tuple[Tensor, tuple[int, ...]]]:
    """Per cross-attention layer: (B, *shape, C) attention mass each position gives each class's registers,
    read at noise level ``sigma`` (default the mask level) from the given latents."""
    if not model.has_registers:
        raise AnatomicaError("this model has no registers to attend to")
    aux: dict = {}
    model.precond(latents, model.config.mask_sigma if sigma is None else sigma, aux=aux)
    return [(p.reshape(p.shape[0], *shape, p.shape[-1]), shape) for p, shape in aux["attention"]]


@torch.no_grad()
def sample_images(
    model: RegisterLDM,
    n: int,
    steps: int = 20,
    seed: int = 0,
    batch: int = 64,
    registers: Tensor | None = None,
    sampler: str = "heun",
    progress: bool = True,
    drop: Sequence[int] = (),
) -> Samples:
    """``n`` images (and, with a head, their masks); ``registers`` replaces the trained bank and ``drop``
    removes classes' tokens from the context (edits)."""
    if n < 1 or steps < 1 or batch < 1:
        raise AnatomicaError(f"n, steps and batch must be >= 1, got {n}, {steps}, {batch}")
    kwargs = _edit_kwargs(model, registers, drop)
    step_fn = SAMPLERS.get(sampler)
    if step_fn is None:
        raise AnatomicaError(f"unknown sampler {sampler!r} (choose {' or '.join(SAMPLERS)})")
    sigmas = karras_sigmas(steps, sigma_max=SIGMA_MAX)
    noise = initial_noise((n, *model.config.latent_shape), SIGMA_MAX, seed)
    denoiser = lambda x, s: model.precond(x, s, **kwargs)  # noqa: E731
    latents = []
    bar = tqdm(total=((n + batch - 1) // batch) * steps, desc="sampling", disable=not progress)
    for i in range(0, n, batch):
        latents.append(step_fn(denoiser, noise[i : i + batch], sigmas, callback=lambda info: bar.update(1)))
    bar.close()
    z = torch.cat(latents)
    images = model.codec.decode(z)
    masks = head_masks(model, z, registers, batch, drop) if model.has_registers else None
    return Samples(images, masks, z)
