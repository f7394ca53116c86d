"""1-NNA: leave-one-out 1-nearest-neighbour accuracy of telling real from generated shapes (paper's tables).

Every shape is a point cloud sampled on its surface (the boundary voxels of a label union, in world mm);
shapes are compared by the symmetric Chamfer distance. Each shape of the pooled set is classified by its
nearest *other* shape; 1-NNA is the share classified correctly. 0.5 means the two sets cannot be told
apart (ideal); 1.0 means every shape's nearest neighbour is from its own set (e.g. memorized or collapsed
samples are far from the real ones).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from anatomica.errors import AnatomicaError

EMPTY_DISTANCE = 1e30  # between an empty and a non-empty cloud: farther than any real pair, still comparable


def surface_points(mask: np.ndarray, affine: np.ndarray | None = None, n: int = 2048, seed: int = 0) -> np.ndarray:
    """(≤ n, 3) points on the surface of a binary 3D mask: centres of its boundary voxels (6-neighbourhood),
    in world mm through ``affine`` (voxel units without), a seeded random subset when there are more than n."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise AnatomicaError(f"surface points need a 3D mask, got shape {mask.shape}")
    if n < 1:
        raise AnatomicaError(f"the number of surface points must be >= 1, got {n}")
    inner = ndimage.binary_erosion(np.pad(mask, 1), ndimage.generate_binary_structure(3, 1))[1:-1, 1:-1, 1:-1]
    ijk = np.argwhere(mask & ~inner).astype(np.float64)
    if len(ijk) > n:
        ijk = ijk[np.sort(np.random.default_rng(seed).choice(len(ijk), n, replace=False))]
    if affine is None:
        return ijk
    A = np.asarray(affine, dtype=np.float64)
    return ijk @ A[:3, :3].T + A[:3, 3]


def chamfer_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Chamfer distance: the mean of (mean nearest-point distance a→b, b→a); 0 for two empty clouds."""
    if len(a) == 0 or len(b) == 0:
        return 0.0 if len(a) == len(b) else EMPTY_DISTANCE
    d_ab, _ = cKDTree(b).query(a)
    d_ba, _ = cKDTree(a).query(b)
    return 0.5 * (float(d_ab.mean()) + float(d_ba.mean()))


def distance_matrix(clouds: Sequence[np.ndarray]) -> np.ndarray:
    """Pairwise Chamfer distances (symmetric, zero diagonal)."""
    n = len(clouds)
    D = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            D[i, j] = D[j, i] = chamfer_distance(clouds[i], clouds[j])
    return D


def one_nna_from_distances(D: np.ndarray, is_real: Sequence[bool]) -> float:
    """Leave-one-out 1-NN accuracy from a pooled distance matrix and the set each row belongs to."""
    D = np.array(D, dtype=np.float64)
    real = np.asarray(is_real, dtype=bool)
    if D.shape != (len(real), len(real)):
        raise AnatomicaError(f"distance matrix {D.shape} does not match {len(real)} set labels")
    if real.all() or not real.any():
        raise AnatomicaError("1-NNA needs at least one real and one generated shape")
    np.fill_diagonal(D, np.inf)
    nearest = np.argmin(D, axis=1)
    return float(np.mean(real[nearest] == real))


def one_nna(real: Sequence[np.ndarray], generated: Sequence[np.ndarray]) -> float:
    """1-NNA of two sets of point clouds (0.5 ideal)."""
    clouds = list(real) + list(generated)
    return one_nna_from_distances(distance_matrix(clouds), [True] * len(real) + [False] * len(generated))


def one_nna_label_maps(
    real: Sequence[np.ndarray],
    generated: Sequence[np.ndarray],
    values: Sequence[int],
    affine: np.ndarray | None = None,
    n_points: int = 2048,
    seed: int = 0,
) -> float:
    """1-NNA of two sets of label arrays on the surface of the union of label ``values`` (world mm with ``affine``)."""
    if not values:
        raise AnatomicaError("1-NNA needs at least one label value")

    def cloud(arr: np.ndarray, i: int) -> np.ndarray:
        return surface_points(np.isin(arr, list(values)), affine, n_points, seed + i)

    return one_nna([cloud(a, i) for i, a in enumerate(real)], [cloud(a, len(real) + i) for i, a in enumerate(generated)])
