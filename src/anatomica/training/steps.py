"""Batches and noise as pure functions of (seed, global step, rank).

A resumed run restores the global step from its checkpoint, so it draws exactly the batches and noise an
uninterrupted run would: no data-loader position or global RNG state needs saving. Each epoch is a
fresh permutation of the cases (seeded by the epoch); rank r of W takes its slice of each global batch,
which is what a ``DistributedSampler`` would do.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from anatomica.diffusion.noise import derive_seed

EPOCH_ORDER_SALT = 7919  # the per-epoch case permutation's stream


def step_generator(seed: int, step: int, rank: int = 0, stream: int = 0) -> torch.Generator:
    """A CPU generator for the randomness of one training step on one process."""
    return torch.Generator().manual_seed(derive_seed(seed, step, rank, stream))


def steps_per_epoch(n: int, batch_size: int, world: int = 1) -> int:
    return max(n // (batch_size * world), 1)


def step_batch_indices(n: int, batch_size: int, step: int, seed: int, rank: int = 0, world: int = 1) -> torch.Tensor:
    """Case indices of this process's batch at ``step`` (drop-last epochs; cases repeat if n < global batch)."""
    spe = steps_per_epoch(n, batch_size, world)
    epoch, within = divmod(step, spe)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, epoch, EPOCH_ORDER_SALT)))
    global_batch = batch_size * world
    start = within * global_batch + rank * batch_size
    pos = torch.arange(start, start + batch_size) % n
    return perm[pos]


def step_loader(n: int, batch_size: int, world: int = 1) -> DataLoader:
    """The data loader Lightning iterates: one token per step; ``training_step`` builds the batch from the step."""
    return DataLoader(range(steps_per_epoch(n, batch_size, world)), batch_size=None, shuffle=False)

