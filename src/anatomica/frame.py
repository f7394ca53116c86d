"""The frame of a volume: its grid ``shape`` and voxel-to-world ``affine`` (mm), and what follows from them.

A frame is the one place that says how normalized coordinates (``anatomica.coords``: [-1, 1] from the first
to the last voxel centre along each array axis) relate to millimetres, and whether two volumes cover the same
field of view (then normalized coordinates mean the same point in both, whatever their resolution).

Geometry that means something in space — principal axes, plane normals, ray angles, margins — is computed in
*metric* coordinates q = L·u (``L = linear``, mm per normalized unit along each axis, world orientation,
origin at the volume's centre) and mapped back with L⁻¹, so it holds on anisotropic, non-cubic volumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from anatomica.coords import normalized_scale_mm, normalized_to_world, voxel_to_normalized, world_to_normalized
from anatomica.errors import AnatomicaError


@dataclass(frozen=True, eq=False)
class Frame:
    """Grid ``shape`` (X, Y, Z) and 4×4 ``affine`` (voxel index -> world mm)."""

    shape: tuple[int, int, int]
    affine: np.ndarray

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalize the fields once
        set_(self, "shape", tuple(int(n) for n in self.shape))
        set_(self, "affine", np.asarray(self.affine, dtype=np.float64))
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise AnatomicaError(f"a frame needs three sizes >= 1, got {list(self.shape)}")
        if self.affine.shape != (4, 4) or not np.all(np.isfinite(self.affine)):
            raise AnatomicaError(f"a frame's affine must be a finite 4x4 matrix, got shape {self.affine.shape}")
        if abs(np.linalg.det(self.affine[:3, :3])) < 1e-12:
            raise AnatomicaError("a frame's affine is singular (zero voxel size along some axis)")

    @classmethod
    def of(cls, volume) -> Frame:
        """The frame of anything with ``.array`` and ``.affine`` (a ``LabelMap``)."""
        return cls(volume.array.shape, volume.affine)

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm along each array axis (column norms of the affine)."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def voxel_volume_mm3(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    @cached_property
    def linear(self) -> np.ndarray:
        """L (3, 3): a normalized displacement -> a world displacement in mm."""
        return normalized_scale_mm(self.affine, self.shape)

    @cached_property
    def inverse_linear(self) -> np.ndarray:
        """L⁻¹: a world displacement in mm -> a normalized displacement."""
        return np.linalg.inv(self.linear)

    @property
    def is_metric(self) -> bool:
        """Whether normalized coordinates are already metric up to one scale (L = c·orthogonal): then angles and
        orthogonality in normalized coordinates equal those in mm."""
        G = self.linear.T @ self.linear
        return bool(np.allclose(G, G[0, 0] * np.eye(3), rtol=1e-9, atol=0.0))

    def to_metric(self, u: np.ndarray) -> np.ndarray:
        """(…, 3) normalized -> metric coordinates q = L·u (mm, world orientation, origin at the volume centre)."""
        return np.asarray(u, dtype=np.float64) @ self.linear.T

    def from_metric(self, q: np.ndarray) -> np.ndarray:
        """(…, 3) metric coordinates -> normalized (the inverse of :meth:`to_metric`)."""
        return np.asarray(q, dtype=np.float64) @ self.inverse_linear.T

    def voxels_to_metric(self, ijk: np.ndarray) -> np.ndarray:
        """(…, 3) voxel indices -> metric coordinates."""
        u = voxel_to_normalized(torch.from_numpy(np.array(ijk, dtype=np.float64)), self.shape).numpy()
        return self.to_metric(u)

    def to_world(self, u: np.ndarray | torch.Tensor) -> np.ndarray:
        """(…, 3) normalized -> world mm."""
        return normalized_to_world(torch.as_tensor(np.asarray(u, dtype=np.float64)), self.affine, self.shape).numpy()

    def from_world(self, xyz: np.ndarray | torch.Tensor) -> np.ndarray:
        """(…, 3) world mm -> normalized."""
        return world_to_normalized(torch.as_tensor(np.asarray(xyz, dtype=np.float64)), self.affine, self.shape).numpy()

    def field_of_view_gap(self, other: Frame) -> float:
        """Largest distance (mm) between corresponding corners of the two frames' fields of view (first and
        last voxel centres along each axis): 0 when normalized coordinates mean the same point in both."""
        corners = np.array(np.meshgrid([-1.0, 1.0], [-1.0, 1.0], [-1.0, 1.0], indexing="ij")).reshape(3, -1).T
        return float(np.abs(self.to_world(corners) - other.to_world(corners)).max())

    def same_field_of_view(self, other: Frame) -> bool:
        """Whether both cover the same region, within one voxel of the coarser of the two."""
        return self.field_of_view_gap(other) <= max(float(self.spacing.max()), float(other.spacing.max()))

    def check_same_field_of_view(self, other: Frame, what: str = "the reference", whose: str = "the volume") -> None:
        """Raise a one-line error unless :meth:`same_field_of_view`."""
        if not self.same_field_of_view(other):
            raise AnatomicaError(
                f"{what} covers a different field of view than {whose} (corners differ by up to "
                f"{self.field_of_view_gap(other):.1f} mm); control domains live in normalized coordinates, so both "
                "must span the same region"
            )

    def describe(self) -> dict:
        return {"shape": list(self.shape), "spacing_mm": [round(float(s), 6) for s in self.spacing]}


def as_frame(shape: Sequence[int] | None, affine: np.ndarray | None) -> Frame | None:
    """``Frame(shape, affine)``, or None when either is missing (a task resolved without a volume frame)."""
    if shape is None or affine is None:
        return None
    return Frame(tuple(shape), affine)
