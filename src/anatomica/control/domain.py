"""Control domains: where a substructure is measured (placement geometry: ``control.placement``).

A control domain is data: a template grid of α×β×γ points X_temp (each axis spans [-1, 1], or is 0 when its
size is 1, so a domain can be a volume, a plane or a line) mapped into the volume by an affine map

    X = A · X_temp + t,   A = R · H · diag(s)                 (paper: X_k = R·diag(s)·X_temp + t)

in *normalized* volume coordinates (``anatomica.coords``: component d along array axis d, [-1, 1] from the
first to the last voxel centre), with R orthonormal (det +1), s > 0 and H unit upper-triangular. H = I is the
paper's form; a domain placed in millimetres on an anisotropic or non-cubic volume (orthogonal in mm, see
``anatomica.frame``) is a general affine map in normalized coordinates, and :meth:`ControlDomain.from_matrix`
stores it with the QR factors (R, H·diag(s)) of A. Normalized coordinates make a domain independent of the
grid resolution; millimetres come in through a :class:`~anatomica.frame.Frame`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import torch
import yaml

from anatomica.coords import grid_points, normalized_scale_mm, normalized_to_world
from anatomica.errors import AnatomicaError
from anatomica.frame import Frame

ORTHO_TOL = 1e-4
KINDS = {0: "point", 1: "line", 2: "plane", 3: "volume"}
MASS_UNITS = {3: "mL", 2: "mm²", 1: "mm"}


@dataclass(frozen=True, eq=False)
class ControlDomain:
    """Template size (α, β, γ), rotation R (3, 3), scale s (3,), translation t (3,) in normalized coordinates, and
    an optional unit upper-triangular shear H (3, 3; None = I) for domains that are orthogonal in mm only.

    Frozen (do not edit the arrays in place either): its points are computed once, since guidance asks for
    them at every sampling step.
    """

    size: tuple[int, int, int]
    rotation: np.ndarray
    scale: np.ndarray
    translation: np.ndarray
    name: str = "domain"
    shear: np.ndarray | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen dataclass: normalize the fields once, here
        set_(self, "size", tuple(int(n) for n in self.size))
        set_(self, "rotation", np.asarray(self.rotation, dtype=np.float64))
        set_(self, "scale", np.asarray(self.scale, dtype=np.float64).reshape(-1))
        set_(self, "translation", np.asarray(self.translation, dtype=np.float64).reshape(-1))
        where = f"domain {self.name!r}"
        if len(self.size) != 3 or min(self.size) < 1:
            raise AnatomicaError(f"{where}: grid must be three sizes >= 1, got {list(self.size)}")
        if self.rotation.shape != (3, 3) or self.scale.shape != (3,) or self.translation.shape != (3,):
            raise AnatomicaError(f"{where}: rotation must be 3x3, scale and translation 3 numbers")
        if not (np.all(np.isfinite(self.rotation)) and np.all(np.isfinite(self.scale)) and np.all(np.isfinite(self.translation))):
            raise AnatomicaError(f"{where}: rotation, scale and translation must be finite numbers")
        if np.any(self.scale <= 0):
            raise AnatomicaError(f"{where}: scale must be > 0 on every axis, got {self.scale.tolist()}")
        err = np.abs(self.rotation.T @ self.rotation - np.eye(3)).max()
        if err > ORTHO_TOL:
            raise AnatomicaError(f"{where}: rotation is not orthonormal (max |RᵀR − I| = {err:.3g})")
        if np.linalg.det(self.rotation) < 0:
            raise AnatomicaError(f"{where}: rotation has determinant −1 (a reflection), use a proper rotation")
        if self.shear is not None:
            H = np.asarray(self.shear, dtype=np.float64)
            if H.shape != (3, 3) or not np.all(np.isfinite(H)) or np.any(np.tril(H, -1)) or not np.allclose(np.diag(H), 1.0):
                raise AnatomicaError(f"{where}: shear must be a finite unit upper-triangular 3x3 matrix")
            set_(self, "shear", None if np.array_equal(H, np.eye(3)) else H)

    @classmethod
    def from_matrix(cls, size: Sequence[int], matrix: np.ndarray, translation: np.ndarray, name: str = "domain") -> ControlDomain:
        """The domain X = A·X_temp + t for any invertible A (normalized coordinates).

        A = R·H·diag(s) by QR with a positive diagonal; when A's columns are orthogonal H = I exactly. A left-handed
        A (det < 0) has one template axis reversed — a size-1 axis if there is one, else the last — which lists the
        same points in another order (moments and homology do not depend on it).
        """
        A = np.array(matrix, dtype=np.float64)
        size = tuple(int(n) for n in size)
        if A.shape != (3, 3) or not np.all(np.isfinite(A)):
            raise AnatomicaError(f"domain {name!r}: the affine matrix must be a finite 3x3 matrix")
        det = np.linalg.det(A)
        if not abs(det) > 1e-300:
            raise AnatomicaError(f"domain {name!r}: the affine matrix is singular")
        if det < 0:
            flat = [a for a in range(3) if size[a] == 1]
            A[:, flat[0] if flat else 2] *= -1.0
        G = A.T @ A
        off = np.abs(G - np.diag(np.diag(G))).max()
        if off <= 1e-12 * float(np.diag(G).max()):
            s = np.linalg.norm(A, axis=0)  # exact for a diagonal A: the paper's R·diag(s), no shear
            return cls(size, A / s, s, translation, name)
        Q, T = np.linalg.qr(A)
        signs = np.sign(np.diag(T))
        Q, T = Q * signs, T * signs[:, None]
        s = np.diag(T).copy()
        return cls(size, Q, s, translation, name, shear=T / s)

    @property
    def num_points(self) -> int:
        return int(np.prod(self.size))

    @property
    def dim(self) -> int:
        """1 for a line, 2 for a plane, 3 for a volume (0 for a single point)."""
        return sum(n > 1 for n in self.size)

    @property
    def kind(self) -> str:
        return KINDS[self.dim]

    @property
    def mass_unit(self) -> str:
        """The physical unit of mass on this domain: mL (volume), mm² (plane) or mm (line)."""
        return MASS_UNITS.get(self.dim, "points")

    @property
    def matrix(self) -> np.ndarray:
        """A = R · H · diag(s): template -> normalized displacement."""
        if self.shear is None:
            return self.rotation @ np.diag(self.scale)
        return self.rotation @ self.shear @ np.diag(self.scale)

    @cached_property
    def _points64(self) -> torch.Tensor:
        template = grid_points(self.size, dtype=torch.float64)
        return template @ torch.from_numpy(self.matrix).T + torch.from_numpy(self.translation)

    def points(self, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        """(α·β·γ, 3) normalized coordinates of the domain points, C order over the template grid."""
        return self._points64.to(dtype=dtype, device=device)

    def with_size(self, size: Sequence[int]) -> ControlDomain:
        """The same map (R, H, s, t) on another template grid."""
        return replace(self, size=tuple(int(n) for n in size))

    def is_identity(self) -> bool:
        """Whether the map is the identity (a global domain: the whole field of view)."""
        return (self.shear is None and np.array_equal(self.rotation, np.eye(3)) and np.array_equal(self.scale, np.ones(3))
                and not self.translation.any())

    def samples_voxels_of(self, shape: Sequence[int]) -> bool:
        """Whether the points are exactly the voxel centres of a volume of ``shape`` (identity map, same grid)."""
        return tuple(self.size) == tuple(int(n) for n in shape) and self.is_identity()

    def to_world(self, affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
        """(α·β·γ, 3) world coordinates in mm of the domain points, for a volume of ``shape`` and ``affine``."""
        return normalized_to_world(self.points(torch.float64), affine, shape).numpy()

    def cell_measure(self, affine: np.ndarray, shape: Sequence[int]) -> float:
        """Length (mm), area (mm²) or volume (mm³) one domain point stands for, by the domain's dimension."""
        axes = [d for d in range(3) if self.size[d] > 1]
        if not axes:
            return 1.0
        step = np.array([2.0 / (self.size[d] - 1) for d in axes])
        J = normalized_scale_mm(affine, shape) @ self.matrix[:, axes] * step  # mm per template step
        return float(np.sqrt(abs(np.linalg.det(J.T @ J))))

    def mass_scale(self, frame: Frame) -> float:
        """Physical mass (mL / mm² / mm, :attr:`mass_unit`) of the fully occupied domain: mass fraction × this =
        the physical mass (the one mL ↔ mass-fraction factor; paper's m = 1ᵀΩ over N points)."""
        value = self.num_points * self.cell_measure(frame.affine, frame.shape)
        return value / 1000.0 if self.dim == 3 else value  # mm³ -> mL for volume domains

    def template_coordinates(self, u: np.ndarray) -> np.ndarray:
        """(M, 3) normalized points -> (M, 3) their coordinates along the template axes: A⁻¹(u − t) on axes of
        size > 1 (|x| <= 1 spans the points), and on size-1 axes the normalized distance from the plane or line
        along its normal (the direction orthogonal to the other template axes)."""
        d = np.asarray(u, dtype=np.float64) - self.translation
        Ainv = np.linalg.inv(self.matrix)
        x = d @ Ainv.T
        for a in range(3):
            if self.size[a] == 1:
                n = Ainv[a] / np.linalg.norm(Ainv[a])  # row a of A⁻¹ is orthogonal to the other template axes
                x[:, a] = d @ n
        return x

    def contains(self, u: np.ndarray, shape: Sequence[int]) -> np.ndarray:
        """(M,) whether normalized points of a volume of ``shape`` lie in the domain's cells: within half a
        template step beyond [-1, 1] on axes of size > 1, within half a voxel diagonal of it on size-1 axes."""
        x = self.template_coordinates(u)
        step = 2.0 / max(max(int(n) - 1, 1) for n in shape)
        inside = np.ones(len(x), dtype=bool)
        for a in range(3):
            if self.size[a] > 1:
                inside &= np.abs(x[:, a]) <= 1.0 + 1.0 / (self.size[a] - 1)
            else:
                inside &= np.abs(x[:, a]) <= 0.5 * np.sqrt(3.0) * step
        return inside

    def inside_fraction(self) -> float:
        """Share of the domain points inside the volume (normalized coordinates within [-1, 1])."""
        pts = self.points(torch.float64).numpy()
        return float(np.mean(np.all(np.abs(pts) <= 1.0 + 1e-9, axis=1)))

    def to_dict(self) -> dict:
        out = {
            "name": self.name,
            "size": list(self.size),
            "rotation": [[float(v) for v in row] for row in self.rotation],
            "scale": [float(v) for v in self.scale],
            "translation": [float(v) for v in self.translation],
        }
        if self.shear is not None:
            out["shear"] = [[float(v) for v in row] for row in self.shear]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ControlDomain:
        try:
            return cls(data["size"], data["rotation"], data["scale"], data["translation"], data.get("name", "domain"), data.get("shear"))
        except KeyError as e:
            raise AnatomicaError(f"control domain: missing field {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:
            if isinstance(e, AnatomicaError):
                raise
            raise AnatomicaError(f"control domain: malformed field ({e})") from None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> ControlDomain:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise AnatomicaError(f"control domain: malformed YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise AnatomicaError("control domain: expected a YAML mapping")
        return cls.from_dict(data)


@dataclass(frozen=True, eq=False)
class DomainBatch:
    """One control domain per sample of a batch (same name and template size): sample b is measured on
    ``domains[b]``, so samples paired with different references share one batch (``potential.stack_tasks``)."""

    domains: tuple[ControlDomain, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "domains", tuple(self.domains))
        if not self.domains:
            raise AnatomicaError("a domain batch needs at least one domain")
        sizes = {d.size for d in self.domains}
        if len(sizes) != 1:
            raise AnatomicaError(f"domain {self.domains[0].name!r}: the samples' domains differ in grid size ({sorted(sizes)})")

    def __len__(self) -> int:
        return len(self.domains)

    def __getitem__(self, b: int) -> ControlDomain:
        return self.domains[b]

    @property
    def name(self) -> str:
        return self.domains[0].name

    @property
    def size(self) -> tuple[int, int, int]:
        return self.domains[0].size

    @property
    def num_points(self) -> int:
        return self.domains[0].num_points

    @property
    def dim(self) -> int:
        return self.domains[0].dim

    @cached_property
    def _points64(self) -> torch.Tensor:
        return torch.stack([d.points(torch.float64) for d in self.domains])

    def points(self, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        """(B, α·β·γ, 3) normalized coordinates of every sample's domain points."""
        return self._points64.to(dtype=dtype, device=device)

    def with_size(self, size: Sequence[int]) -> DomainBatch:
        return DomainBatch(tuple(d.with_size(size) for d in self.domains))

    def samples_voxels_of(self, shape: Sequence[int]) -> bool:
        return all(d.samples_voxels_of(shape) for d in self.domains)

    def is_identity(self) -> bool:
        return all(d.is_identity() for d in self.domains)


def domain_mask(domain: ControlDomain, shape: Sequence[int]) -> np.ndarray:
    """Boolean (X, Y, Z): the voxels of a volume of ``shape`` whose centres lie in the domain (:meth:`ControlDomain.contains`),
    on that volume's own grid — where a label map's Betti numbers in the domain are counted."""
    u = grid_points(shape, torch.float64).numpy()
    return domain.contains(u, shape).reshape(tuple(int(s) for s in shape))


def place_global(size: Sequence[int], name: str = "global") -> ControlDomain:
    """The whole volume: identity rotation, unit scale, no translation (grid = volume shape samples every voxel)."""
    return ControlDomain(tuple(size), np.eye(3), np.ones(3), np.zeros(3), name)


def __getattr__(name: str):
    """Placement helpers moved to ``control.placement``; importing them from here keeps working."""
    from anatomica.control import placement

    if name in placement.__all__:
        return getattr(placement, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
