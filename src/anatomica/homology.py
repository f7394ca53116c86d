"""Betti numbers of binary masks, by persistent homology with Cubical Ripser.

Convention (shared with the topological potential): the cubical complex of *closed voxel cubes*
(Cubical Ripser's T-construction), so the foreground is 26-connected and the background 6-connected.
A binary mask is the sublevel set {-mask <= -1/2} of the filtration -mask; its Betti numbers are the
persistence intervals alive at that level.
"""

from __future__ import annotations

import cripser
import numpy as np

MAX_DIM = 2


def persistence_t(values: np.ndarray, maxdim: int | None = None) -> np.ndarray:
    """Sublevel persistence of a 1D/2D/3D ``values`` on closed voxel cubes: rows [dim, birth, death, b_ijk, d_ijk].

    Birth/death cells are given by array indices (always three columns, zero-padded below 3D; -1 for
    an essential class's death). Essential classes have ``death = inf``.
    """
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if not 1 <= arr.ndim <= 3:
        raise ValueError(f"persistence needs a 1D, 2D or 3D array, got shape {arr.shape}")
    if maxdim is None:
        maxdim = arr.ndim - 1
    ph = cripser.computePH_T(arr, maxdim=maxdim)
    ph = np.asarray(ph, dtype=np.float64).reshape(-1, 9)
    ph[ph[:, 2] > 1e300, 2] = np.inf
    return ph


def betti_numbers(mask: np.ndarray) -> list[int]:
    """[b0, b1, b2] of a binary 3D (or 1D/2D, padded with zeros) mask; empty mask gives [0, 0, 0]."""
    mask = np.asarray(mask) > 0
    out = [0] * (MAX_DIM + 1)
    if not mask.any():
        return out
    ph = persistence_t(-mask.astype(np.float64))
    alive = (ph[:, 1] <= -0.5) & (ph[:, 2] > -0.5)
    for d in ph[alive, 0].astype(int):
        out[d] += 1
    return out


def betti_of_labels(array: np.ndarray, values: list[int] | tuple[int, ...]) -> list[int]:
    """Betti numbers of the union of the given label values (the subset operator U[u] on a label map)."""
    return betti_numbers(np.isin(array, list(values)))
