"""The one place where coordinates change frame.

Frames:
- voxel index ``ijk``: array axes (0, 1, 2) of a (X, Y, Z) volume, voxel centres at integers;
- normalized ``u`` in [-1, 1]^3, component d along array axis d, -1 and +1 at the centres of the first
  and last voxel (``align_corners=True``); used inside every model and control domain;
- world ``xyz`` in mm through the NIfTI affine: ``xyz = A[:3,:3] @ ijk + A[:3,3]``.

``sample_points`` is trilinear interpolation of a (B, C, X, Y, Z) volume at normalized points; it is
differentiable in both the volume and the points.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def _shape_tensor(shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor([max(int(s) - 1, 1) for s in shape], dtype=like.dtype, device=like.device)


def voxel_to_normalized(ijk: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """(…, 3) voxel indices -> normalized coordinates for a volume of spatial ``shape``."""
    return 2.0 * ijk / _shape_tensor(shape, ijk) - 1.0


def normalized_to_voxel(u: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """(…, 3) normalized coordinates -> (fractional) voxel indices."""
    return (u + 1.0) * 0.5 * _shape_tensor(shape, u)


def world_to_normalized(xyz: torch.Tensor, affine: np.ndarray | torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """(…, 3) world mm -> normalized coordinates, through the inverse affine."""
    A = torch.as_tensor(np.asarray(affine), dtype=xyz.dtype, device=xyz.device)
    ijk = (xyz - A[:3, 3]) @ torch.linalg.inv(A[:3, :3]).T
    return voxel_to_normalized(ijk, shape)


def normalized_to_world(u: torch.Tensor, affine: np.ndarray | torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """(…, 3) normalized coordinates -> world mm."""
    A = torch.as_tensor(np.asarray(affine), dtype=u.dtype, device=u.device)
    return normalized_to_voxel(u, shape) @ A[:3, :3].T + A[:3, 3]


def normalized_scale_mm(affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """3x3 linear map from a normalized displacement to a world displacement in mm."""
    half = np.array([max(int(s) - 1, 1) for s in shape], dtype=np.float64) / 2.0
    return np.asarray(affine)[:3, :3] @ np.diag(half)


def grid_points(shape: Sequence[int], dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Normalized coordinates of every voxel centre of ``shape``, as (X*Y*Z, 3) in C order."""
    axes = [torch.linspace(-1.0, 1.0, int(s), dtype=dtype, device=device) if s > 1 else torch.zeros(1, dtype=dtype, device=device) for s in shape]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack(mesh, dim=-1).reshape(-1, len(shape))


def sample_points(volume: torch.Tensor, points: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Trilinear samples of ``volume`` (B, C, X, Y, Z) at normalized ``points`` (B, N, 3) -> (B, C, N).

    Points outside [-1, 1] read zeros (``padding_mode='zeros'``) or the nearest border value ('border').
    """
    if volume.ndim != 5 or points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"expected volume (B,C,X,Y,Z) and points (B,N,3), got {tuple(volume.shape)} and {tuple(points.shape)}")
    # grid_sample wants (x, y, z) = (last, middle, first) axis order; our components follow array axes.
    grid = points.flip(-1).to(volume.dtype)[:, :, None, None, :]
    out = F.grid_sample(volume, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)
    return out[:, :, :, 0, 0]
