"""Parsing: from class probabilities (or logits) to a substructure S_k on a control domain's template grid.

Channel c of a probability or logit tensor is the class with label value c (channel 0 = background), the
layout of a one-hot label map.

- subset U[u]: the union of classes u as the sum of their probabilities (classes are exclusive, so the sum
  is the probability of the union);
- structural slicing T^s[X]: trilinear samples of a (B, 1, X, Y, Z) volume at the domain points X_k;
- V-parsing: softmax(logits/τ) on the full grid, subset, slice;
- L-parsing: logits already evaluated at the domain points (a neural-field decoder's ``query``), softmax(·/τ), subset.

τ is the softmax temperature: τ > 1 softens saturated probabilities so that gradients still pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from anatomica.control.domain import ControlDomain, DomainBatch
from anatomica.coords import sample_points
from anatomica.errors import AnatomicaError


def _check_channels(channels: Sequence[int], num: int) -> list[int]:
    idx = [int(c) for c in channels]
    if not idx:
        raise AnatomicaError("subset needs at least one channel")
    bad = [c for c in idx if not 0 <= c < num]
    if bad:
        raise AnatomicaError(f"channel(s) {bad} out of range for {num} classes")
    return idx


def subset(probs: torch.Tensor, channels: Sequence[int]) -> torch.Tensor:
    """U[u]: (B, C, …) class probabilities -> (B, 1, …) probability of the union of ``channels``."""
    return probs[:, _check_channels(channels, probs.shape[1])].sum(dim=1, keepdim=True)


def slice_domain(volume: torch.Tensor, domain: ControlDomain | DomainBatch) -> torch.Tensor:
    """T^s[X]: (B, 1, X, Y, Z) volume sampled (trilinear, zero outside) at the domain points -> S_k (B, α, β, γ);
    with a :class:`DomainBatch`, sample b at its own domain's points."""
    if volume.ndim != 5 or volume.shape[1] != 1:
        raise AnatomicaError(f"slice_domain expects a (B, 1, X, Y, Z) volume, got {tuple(volume.shape)}")
    if isinstance(domain, DomainBatch) and len(domain) != volume.shape[0]:
        raise AnatomicaError(f"domain {domain.name!r} holds {len(domain)} samples' domains, got a batch of {volume.shape[0]}")
    if domain.samples_voxels_of(volume.shape[2:]):
        return volume[:, 0]  # trilinear sampling at the voxel centres is the identity: skip it
    pts = domain.points(volume.dtype, volume.device)
    out = sample_points(volume, pts if pts.ndim == 3 else pts[None].expand(volume.shape[0], -1, -1))
    return out[:, 0].reshape(volume.shape[0], *domain.size)


def softmax_t(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """softmax(logits / τ) over the class axis 1."""
    if temperature <= 0:
        raise AnatomicaError(f"temperature must be > 0, got {temperature}")
    return torch.softmax(logits / temperature, dim=1)


def parse_volume(logits: torch.Tensor, channels: Sequence[int], domain: ControlDomain | DomainBatch, temperature: float = 1.0) -> torch.Tensor:
    """V-parsing: full-grid logits (B, C, X, Y, Z) -> S_k (B, α, β, γ)."""
    return slice_domain(subset(softmax_t(logits, temperature), channels), domain)


def parse_point_logits(logits: torch.Tensor, channels: Sequence[int], domain: ControlDomain | DomainBatch, temperature: float = 1.0) -> torch.Tensor:
    """L-parsing: logits at the domain points (B, C, N), as a decoder's ``query(z, domain.points())`` returns
    them -> S_k (B, α, β, γ)."""
    if logits.ndim != 3 or logits.shape[2] != domain.num_points:
        raise AnatomicaError(f"expected logits (B, C, {domain.num_points}) for domain {domain.name!r}, got {tuple(logits.shape)}")
    return subset(softmax_t(logits, temperature), channels)[:, 0].reshape(logits.shape[0], *domain.size)


def label_union(array: np.ndarray | torch.Tensor, values: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(X, Y, Z) label array -> (1, 1, X, Y, Z) one-hot probability of the union of label ``values``.

    Equal to ``subset(one_hot(array), values)`` without building all C channels.
    """
    arr = torch.as_tensor(np.asarray(array))
    mask = torch.isin(arr, torch.as_tensor(list(values), dtype=arr.dtype))
    return mask.to(dtype)[None, None]
