"""Seeded noise: every stream is a pure function of integers, so sample i of a run depends only on (seed, i)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# Salts keep the per-sample noise stream apart from other streams drawn from the same user seed.
SAMPLE_NOISE_SALT = 104729

def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (NumPy SeedSequence), for independent streams per step, rank, sample."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def initial_noise(shape: tuple[int, ...], sigma_max: float, seed: int, device=None, dtype=torch.float32) -> Tensor:
    """x_0 ~ N(0, σ_max² I) from a seed alone, on CPU first so every device draws identical noise."""
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    return (torch.randn(shape, generator=g, dtype=torch.float32) * sigma_max).to(device=device, dtype=dtype)


def sample_noise(latent_shape: tuple[int, ...], sigma_max: float, seed: int, indices) -> Tensor:
    """(len(indices), *latent_shape) noise at σ_max; sample i depends only on (seed, i), whatever the batching."""
    return torch.cat([initial_noise((1, *latent_shape), sigma_max, derive_seed(seed, int(i), SAMPLE_NOISE_SALT)) for i in indices])
