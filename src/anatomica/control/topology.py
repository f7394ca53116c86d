"""Differentiable persistent homology of a substructure S_k and the topological loss L_topo.

The filtration is the *superlevel* filtration of S_k (a class is born where S is high), computed as the
sublevel filtration of −S by Cubical Ripser's T-construction (``anatomica.metrics.betti.persistence_t``:
closed voxel cubes, foreground 26-connected — the convention of ``anatomica stats``). Size-1 axes are
squeezed, so planes and lines get 2D and 1D homology. Birth and death values are read back from S at the
birth/death voxels Cubical Ripser reports, so gradients flow by indexing (paper, "Topological guidance").

Essential classes (infinite death, e.g. the component that survives to the end): their death value is 0,
as if S were surrounded by zero probability (the value ``slice_domain`` reads outside the volume). Then the
Betti numbers at level 1/2 — classes with S(b) ≥ 1/2 > S(d) — are exactly those of the mask {S ≥ 1/2}
counted by ``betti_numbers``, and suppressing an essential class drives S to 0 (no component at all)
rather than to a constant.

L_topo (paper): with a prior B = (B0, B1, B2), the B_d most persistent classes of dimension d (set Y) are
kept and pushed apart, the others (Z) collapsed:  L_topo = −Σ_Y (S(b) − S(d))² + Σ_Z (S(b) − S(d))².
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from anatomica.metrics.betti import persistence_t


def squeeze_domain(S: torch.Tensor) -> torch.Tensor:
    """(α, β, γ) -> the same values with size-1 axes removed (a line keeps one axis)."""
    kept = [n for n in S.shape if n > 1] or [1]
    return S.reshape(kept)


@dataclass
class Diagram:
    """Superlevel persistence diagram of one S: dims (P,), births S(b) and deaths S(d) (P,) differentiable;
    birth/death voxel indices (P, ndim) into the squeezed S, death −1 for essential classes."""

    dims: np.ndarray
    births: torch.Tensor
    deaths: torch.Tensor
    birth_index: np.ndarray
    death_index: np.ndarray

    @property
    def persistence(self) -> torch.Tensor:
        return self.births - self.deaths


def _pairs(S: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]]:
    """Cubical Ripser on −S: (dims, flat birth index, flat death index (N = essential), persistence S(b) − S(d),
    birth/death voxel indices, squeezed shape)."""
    values = squeeze_domain(S.detach())
    shape = tuple(values.shape)
    ph = persistence_t(-values.cpu().double().numpy())
    nd = len(shape)
    dims = ph[:, 0].astype(np.int64)
    b_ijk = ph[:, 3 : 3 + nd].astype(np.int64)
    d_ijk = ph[:, 6 : 6 + nd].astype(np.int64)
    essential = ~np.isfinite(ph[:, 2])
    n = int(np.prod(shape))
    b_flat = np.ravel_multi_index(tuple(b_ijk.T), shape) if len(ph) else np.zeros(0, np.int64)
    d_flat = np.full(len(ph), n, dtype=np.int64)  # index n reads the appended zero: death of essential classes
    if (~essential).any():
        d_flat[~essential] = np.ravel_multi_index(tuple(d_ijk[~essential].T), shape)
    d_ijk[essential] = -1
    persistence = np.where(essential, -ph[:, 1], ph[:, 2] - ph[:, 1])
    return dims, b_flat, d_flat, persistence, np.concatenate([b_ijk, d_ijk], axis=1), shape


def _with_zero(S: torch.Tensor) -> torch.Tensor:
    flat = S.reshape(-1)
    return torch.cat([flat, flat.new_zeros(1)])


def superlevel_diagram(S: torch.Tensor) -> Diagram:
    """Persistence diagram of the superlevel filtration of one S (α, β, γ), differentiable in S."""
    dims, b_flat, d_flat, _, ijk, shape = _pairs(S)
    ext = _with_zero(S)
    nd = len(shape)
    return Diagram(
        dims=dims,
        births=ext[torch.from_numpy(b_flat).to(S.device)],
        deaths=ext[torch.from_numpy(d_flat).to(S.device)],
        birth_index=ijk[:, :nd],
        death_index=ijk[:, nd:],
    )


def betti_from_diagram(diagram: Diagram, level: float = 0.5) -> list[int]:
    """[b0, b1, b2] of {S ≥ level}: classes with S(b) ≥ level > S(d)."""
    b = diagram.births.detach().cpu().numpy()
    d = diagram.deaths.detach().cpu().numpy()
    alive = (b >= level) & (d < level)
    return [int(np.sum(alive & (diagram.dims == k))) for k in range(3)]


def _split(dims: np.ndarray, persistence: np.ndarray, prior: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the B_d most persistent classes of each dimension d (kept) and of all others (suppressed)."""
    keep, drop = [], []
    for d in range(3):
        idx = np.flatnonzero(dims == d)
        order = idx[np.argsort(-persistence[idx], kind="stable")]
        b = int(prior[d]) if d < len(prior) else 0
        keep.append(order[:b])
        drop.append(order[b:])
    return np.concatenate(keep).astype(np.int64), np.concatenate(drop).astype(np.int64)


def topology_loss_single(S: torch.Tensor, prior: Sequence[int]) -> torch.Tensor:
    """L_topo of one S (α, β, γ) for the Betti prior (B0, B1, B2); a 0-dim tensor."""
    dims, b_flat, d_flat, persistence, _, _ = _pairs(S)
    ext = _with_zero(S)
    keep, drop = _split(dims, persistence, prior)
    # one gather for all the classes that count; births/deaths are entries of S (or the appended 0)
    b = torch.from_numpy(b_flat).to(S.device)
    d = torch.from_numpy(d_flat).to(S.device)
    k, z = torch.from_numpy(keep).to(S.device), torch.from_numpy(drop).to(S.device)
    pk = ext[b[k]] - ext[d[k]]
    pz = ext[b[z]] - ext[d[z]]
    return (pz**2).sum() - (pk**2).sum()


def topology_loss(S: torch.Tensor, prior: Sequence[int]) -> torch.Tensor:
    """L_topo (B,) of a batch of substructures S (B, α, β, γ) against the Betti prior (B0, B1, B2)."""
    return torch.stack([topology_loss_single(s, prior) for s in S])
