"""Control domains: where a substructure is measured, and how to place them on a reference segmentation.

A control domain is data: a template grid of α×β×γ points X_temp (each axis spans [-1, 1], or is 0 when its
size is 1, so a domain can be a volume, a plane or a line) mapped into the volume by

    X = R · diag(s) · X_temp + t                              (paper: X_k = R·diag(s)·X_temp + t)

with R orthonormal (det +1), s > 0 and t in *normalized* volume coordinates (``anatomica.coords``: component d
along array axis d, [-1, 1] from the first to the last voxel centre). Normalized coordinates make a domain
independent of the grid resolution; world millimetres only appear through :meth:`ControlDomain.to_world`.

Placements compute a domain from a reference label mask (boolean (X, Y, Z) array), all in normalized
coordinates: ``global`` (identity), ``box`` (around a mask, optionally along its principal axes),
``planes`` (perpendicular to the mask's centerline at arc-length fractions) and ``lines`` (rays from a
centroid). Orthogonality is meant in normalized coordinates, which equals orthogonality in mm when
spacing × (shape − 1) is the same on every axis (a cubic field of view).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import yaml
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree
from skimage.morphology import skeletonize

from anatomica.coords import grid_points, normalized_scale_mm, normalized_to_world, voxel_to_normalized
from anatomica.errors import AnatomicaError

ORTHO_TOL = 1e-4


@dataclass(frozen=True, eq=False)
class ControlDomain:
    """Template size (α, β, γ), rotation R (3, 3), scale s (3,), translation t (3,) in normalized coordinates.

    Frozen (do not edit the arrays in place either): its points are computed once, since guidance asks for
    them at every sampling step.
    """

    size: tuple[int, int, int]
    rotation: np.ndarray
    scale: np.ndarray
    translation: np.ndarray
    name: str = "domain"

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

    @property
    def num_points(self) -> int:
        return int(np.prod(self.size))

    @property
    def dim(self) -> int:
        """1 for a line, 2 for a plane, 3 for a volume (0 for a single point)."""
        return sum(n > 1 for n in self.size)

    @property
    def matrix(self) -> np.ndarray:
        """R · diag(s): template -> normalized displacement."""
        return self.rotation @ np.diag(self.scale)

    @cached_property
    def _points64(self) -> torch.Tensor:
        template = grid_points(self.size, dtype=torch.float64)
        return template @ torch.from_numpy(self.matrix).T + torch.from_numpy(self.translation)

    def points(self, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        """(α·β·γ, 3) normalized coordinates of the domain points, C order over the template grid."""
        return self._points64.to(dtype=dtype, device=device)

    def samples_voxels_of(self, shape: Sequence[int]) -> bool:
        """Whether the points are exactly the voxel centres of a volume of ``shape`` (identity map, same grid)."""
        return (
            tuple(self.size) == tuple(int(n) for n in shape)
            and np.array_equal(self.rotation, np.eye(3))
            and np.array_equal(self.scale, np.ones(3))
            and not self.translation.any()
        )

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

    def inside_fraction(self) -> float:
        """Share of the domain points inside the volume (normalized coordinates within [-1, 1])."""
        pts = self.points(torch.float64).numpy()
        return float(np.mean(np.all(np.abs(pts) <= 1.0 + 1e-9, axis=1)))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "size": list(self.size),
            "rotation": [[float(v) for v in row] for row in self.rotation],
            "scale": [float(v) for v in self.scale],
            "translation": [float(v) for v in self.translation],
        }

    @classmethod
    def from_dict(cls, data: dict) -> ControlDomain:
        try:
            return cls(data["size"], data["rotation"], data["scale"], data["translation"], data.get("name", "domain"))
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


# --- placement helpers (reference masks in, normalized coordinates out) ------------------------------------


def _normalized_points(ijk: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    return voxel_to_normalized(torch.from_numpy(np.asarray(ijk, dtype=np.float64)), shape).numpy()


def _voxel_step(shape: Sequence[int]) -> np.ndarray:
    """Normalized distance between neighbouring voxel centres along each array axis."""
    return 2.0 / np.array([max(int(n) - 1, 1) for n in shape], dtype=np.float64)


def _mask_points(mask: np.ndarray, what: str) -> np.ndarray:
    ijk = np.argwhere(mask)
    if len(ijk) == 0:
        raise AnatomicaError(f"{what}: the reference has no voxel of it")
    return _normalized_points(ijk, mask.shape)


def complete_basis(first: np.ndarray | None = None, third: np.ndarray | None = None) -> np.ndarray:
    """A proper rotation whose column 0 is ``first`` (or, if ``third`` is given, whose column 2 is ``third``)."""
    axis = np.asarray(third if third is not None else first, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    helper = np.eye(3)[int(np.argmin(np.abs(axis)))]  # the array axis least aligned with ``axis``
    u = helper - (helper @ axis) * axis
    u /= np.linalg.norm(u)
    w = np.cross(axis, u)
    R = np.stack([u, w, axis], axis=1) if third is not None else np.stack([axis, u, w], axis=1)
    return R


def principal_axes(points: np.ndarray) -> np.ndarray:
    """Proper rotation whose columns are the principal axes of ``points`` (N, 3), largest variance first."""
    centred = points - points.mean(axis=0)
    evals, evecs = np.linalg.eigh(centred.T @ centred / max(len(points), 1))
    R = evecs[:, ::-1].copy()
    for k in range(3):  # a deterministic sign: the largest component of each axis is positive
        if R[np.argmax(np.abs(R[:, k])), k] < 0:
            R[:, k] *= -1
    if np.linalg.det(R) < 0:
        R[:, 2] *= -1
    return R


def place_global(size: Sequence[int], name: str = "global") -> ControlDomain:
    """The whole volume: identity rotation, unit scale, no translation (grid = volume shape samples every voxel)."""
    return ControlDomain(tuple(size), np.eye(3), np.ones(3), np.zeros(3), name)


def place_box(mask: np.ndarray, size: Sequence[int], margin: float = 0.1, oriented: bool = False, name: str = "box") -> ControlDomain:
    """Box around the voxels of ``mask``; each half-extent grows by ``margin`` (0.1 = 10 % larger).

    Axis-aligned, or along the mask's principal axes when ``oriented``. Half a voxel is added so the box covers
    the voxels, not only their centres.
    """
    pts = _mask_points(mask, f"domain {name!r}")
    R = principal_axes(pts) if oriented else np.eye(3)
    local = pts @ R  # coordinates along the box axes
    lo, hi = local.min(axis=0), local.max(axis=0)
    half_voxel = np.abs(R).T @ _voxel_step(mask.shape) / 2.0
    half = ((hi - lo) / 2.0 + half_voxel) * (1.0 + margin)
    return ControlDomain(tuple(size), R, half, R @ ((hi + lo) / 2.0), name)


def contact_region(mask_a: np.ndarray, mask_b: np.ndarray, radius: int = 1) -> np.ndarray:
    """Voxels of either mask within ``radius`` voxels (26-neighbourhood steps) of the other: where two labels touch."""
    structure = np.ones((3, 3, 3), dtype=bool)
    near_b = ndimage.binary_dilation(mask_b, structure, iterations=radius)
    near_a = ndimage.binary_dilation(mask_a, structure, iterations=radius)
    return (mask_a & near_b) | (mask_b & near_a)


def centerline(mask: np.ndarray) -> np.ndarray:
    """(P, 3) voxel coordinates of the longest path through the skeleton of ``mask``'s largest part, in order.

    Skeleton by scikit-image (Lee's 3D thinning); the path is the skeleton graph's diameter found by two
    Dijkstra sweeps over 26-neighbour edges weighted by their length.
    """
    skel = skeletonize(mask.astype(bool))
    labels, n = ndimage.label(skel, structure=np.ones((3, 3, 3)))
    if n == 0:
        return np.argwhere(mask)[:1].astype(np.float64)
    largest = 1 + int(np.argmax(ndimage.sum_labels(skel, labels, index=np.arange(1, n + 1))))
    ijk = np.argwhere(labels == largest).astype(np.float64)
    if len(ijk) == 1:
        return ijk
    pairs = cKDTree(ijk).query_pairs(r=np.sqrt(3.0) + 1e-6, output_type="ndarray")
    w = np.linalg.norm(ijk[pairs[:, 0]] - ijk[pairs[:, 1]], axis=1)
    graph = coo_matrix((w, (pairs[:, 0], pairs[:, 1])), shape=(len(ijk), len(ijk))).tocsr()
    d0 = dijkstra(graph, directed=False, indices=0)
    a = int(np.argmax(np.where(np.isfinite(d0), d0, -1)))
    da, pred = dijkstra(graph, directed=False, indices=a, return_predecessors=True)
    b = int(np.argmax(np.where(np.isfinite(da), da, -1)))
    path = [b]
    while path[-1] != a:
        path.append(int(pred[path[-1]]))
    return ijk[path[::-1]]


def place_planes(
    mask: np.ndarray,
    size: Sequence[int],
    fractions: Sequence[float],
    margin: float = 1.0,
    start_near: np.ndarray | None = None,
    name: str = "plane",
) -> list[ControlDomain]:
    """Planes perpendicular to ``mask``'s centerline at arc-length ``fractions`` (0 = start, 1 = end).

    The template's size-1 axis is the normal (use a grid [α, β, 1]). The half-width is the local radius of the
    mask (distance transform at the centerline point) × (1 + ``margin``). Fraction 0 is the centerline end
    nearest ``start_near`` (normalized point) if given, else the end with the smaller coordinate along the
    axis where the two ends differ most.
    """
    if list(size)[2] != 1 or min(size[0], size[1]) < 1:
        raise AnatomicaError(f"domain {name!r}: planes need a grid [α, β, 1], got {list(size)}")
    if np.count_nonzero(mask) == 0:
        raise AnatomicaError(f"domain {name!r}: the reference has no voxel of it")
    path = _normalized_points(centerline(mask), mask.shape)
    if start_near is not None:
        flip = np.linalg.norm(path[-1] - start_near) < np.linalg.norm(path[0] - start_near)
    else:
        axis = int(np.argmax(np.abs(path[-1] - path[0])))
        flip = path[-1, axis] < path[0, axis]
    if flip:
        path = path[::-1]
    step = _voxel_step(mask.shape)
    radius = ndimage.distance_transform_edt(mask, sampling=step)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    total = arc[-1]
    if total <= 0:
        raise AnatomicaError(f"domain {name!r}: the reference's centerline is a single point, cannot place planes")
    window = max(0.05 * total, 2.0 * float(step.max()))
    out = []
    for i, f in enumerate(fractions):
        s = float(f) * total
        centre = np.array([np.interp(s, arc, path[:, d]) for d in range(3)])
        ahead = np.array([np.interp(min(s + window, total), arc, path[:, d]) for d in range(3)])
        behind = np.array([np.interp(max(s - window, 0.0), arc, path[:, d]) for d in range(3)])
        R = complete_basis(third=ahead - behind)
        vox = np.clip(np.rint((centre + 1.0) / step), 0, np.array(mask.shape) - 1).astype(int)
        r = max(float(radius[tuple(vox)]), float(step.max()))
        half = r * (1.0 + margin)
        out.append(ControlDomain(tuple(size), R, np.array([half, half, 1.0]), centre, _indexed(name, i, len(fractions))))
    return out


def place_lines(
    centre_mask: np.ndarray,
    extent_mask: np.ndarray,
    size: Sequence[int],
    directions: Sequence[Sequence[float]] | None = None,
    count: int | None = None,
    normal: Sequence[float] | None = None,
    start_angle_deg: float = 0.0,
    length_mm: float | None = None,
    affine: np.ndarray | None = None,
    margin: float = 0.2,
    name: str = "line",
) -> list[ControlDomain]:
    """Rays from the centroid of ``centre_mask``, in given ``directions`` or ``count`` evenly in the plane ⟂ ``normal``.

    Directions and ``normal`` are in the normalized frame (components along the array axes); ``normal``
    defaults to the long (first principal) axis of ``centre_mask``. A ray spans [c, c + L·d] with L from
    ``length_mm`` (needs the reference ``affine``) or the reach of ``extent_mask`` along the ray
    × (1 + ``margin``). The template's first axis runs along the ray (use a grid [n, 1, 1]).
    """
    if list(size)[1:] != [1, 1]:
        raise AnatomicaError(f"domain {name!r}: lines need a grid [n, 1, 1], got {list(size)}")
    pts = _mask_points(centre_mask, f"domain {name!r}")
    centre = pts.mean(axis=0)
    if directions is None:
        if not count or count < 1:
            raise AnatomicaError(f"domain {name!r}: lines need 'directions' or a 'count' >= 1")
        n = principal_axes(pts)[:, 0] if normal is None else np.asarray(normal, dtype=np.float64)
        if np.linalg.norm(n) == 0:
            raise AnatomicaError(f"domain {name!r}: the plane normal must be nonzero")
        R = complete_basis(third=n)
        angles = np.deg2rad(start_angle_deg) + 2 * np.pi * np.arange(count) / count
        directions = [np.cos(a) * R[:, 0] + np.sin(a) * R[:, 1] for a in angles]
    dirs = [np.asarray(d, dtype=np.float64) for d in directions]
    ext = _normalized_points(np.argwhere(extent_mask), extent_mask.shape) - centre
    tol = float(_voxel_step(extent_mask.shape).max())
    out = []
    for i, d in enumerate(dirs):
        if d.shape != (3,) or np.linalg.norm(d) == 0:
            raise AnatomicaError(f"domain {name!r}: direction {i} must be a nonzero 3-vector, got {d.tolist()}")
        d = d / np.linalg.norm(d)
        if length_mm is not None:
            L = length_mm / float(np.linalg.norm(normalized_scale_mm(affine, extent_mask.shape) @ d))
        else:
            along = ext @ d
            perp = np.linalg.norm(ext - along[:, None] * d, axis=1)
            hit = along[(perp <= tol) & (along > 0)]
            if len(hit) == 0:
                raise AnatomicaError(f"domain {name!r}: ray {i} does not meet the reference labels, give a 'length_mm'")
            L = (float(hit.max()) + tol / 2.0) * (1.0 + margin)
        out.append(ControlDomain(tuple(size), complete_basis(d), np.array([L / 2.0, 1.0, 1.0]), centre + d * L / 2.0, _indexed(name, i, len(dirs))))
    return out


def _indexed(name: str, i: int, n: int) -> str:
    return name if n == 1 else f"{name}_{i}"
