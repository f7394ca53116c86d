"""Placement geometry: control domains computed from a reference label mask, in millimetres.

Every placement works in the reference's *metric* coordinates q = L·u (``anatomica.frame``: mm, world
orientation, origin at the volume centre): principal axes, plane normals, arc lengths, ray angles, radii and
reach are measured there, and the result is mapped back to normalized coordinates through L⁻¹. The domain is
then a general affine map X = L⁻¹·R_mm·diag(s_mm)·X_temp + t (``ControlDomain.from_matrix``), orthogonal in mm
on anisotropic, non-cubic volumes; when spacing × (shape − 1) is the same on every axis L is a scaled rotation
and the map keeps the paper's R·diag(s) form.

- ``box``: around a mask; axis-aligned with the array axes (computed in normalized coordinates directly:
  per-axis extents and relative margins mean the same in any frame), or along the mask's principal axes in mm;
- ``planes``: perpendicular (in mm) to the mask's centerline at arc-length fractions;
- ``lines``: rays from a centroid, in given directions or evenly spaced (equal angles in mm) around a normal.

Without a frame a mask is measured in voxel units (unit spacing, identity affine).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree
from skimage.morphology import skeletonize

from anatomica.control.domain import ControlDomain, place_global
from anatomica.coords import voxel_to_normalized
from anatomica.errors import AnatomicaError
from anatomica.frame import Frame

__all__ = [
    "centerline", "complete_basis", "contact_region", "place_box", "place_global", "place_lines", "place_planes", "principal_axes",
]


def _frame(mask: np.ndarray, frame: Frame | None) -> Frame:
    if frame is None:
        return Frame(mask.shape, np.eye(4))
    if tuple(frame.shape) != tuple(mask.shape):
        raise AnatomicaError(f"placement: the mask's shape {list(mask.shape)} is not its frame's {list(frame.shape)}")
    return frame


def _normalized_points(ijk: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    return voxel_to_normalized(torch.from_numpy(np.asarray(ijk, dtype=np.float64)), shape).numpy()


def _voxel_step(shape: Sequence[int]) -> np.ndarray:
    """Normalized distance between neighbouring voxel centres along each array axis."""
    return 2.0 / np.array([max(int(n) - 1, 1) for n in shape], dtype=np.float64)


def _mask_voxels(mask: np.ndarray, what: str) -> np.ndarray:
    ijk = np.argwhere(mask)
    if len(ijk) == 0:
        raise AnatomicaError(f"{what}: the reference has no voxel of it")
    return ijk


def _array_axes_mm(frame: Frame, v: Sequence[float]) -> np.ndarray:
    """A vector given by components along the array axes (in mm) -> its world direction: Σ v_i · (unit axis i)."""
    axes = frame.affine[:3, :3] / frame.spacing
    return axes @ np.asarray(v, dtype=np.float64)


def _domain_mm(size, R: np.ndarray, half: np.ndarray, centre_q: np.ndarray, frame: Frame, name: str) -> ControlDomain:
    """The domain q = R·diag(half)·X_temp + centre_q (metric) as a normalized affine map."""
    return ControlDomain.from_matrix(size, frame.inverse_linear @ R @ np.diag(half), frame.from_metric(centre_q), name)


def place_explicit_mm(size, centre_mm: Sequence[float], half_size_mm: Sequence[float], axes: np.ndarray, frame: Frame,
                      name: str = "explicit") -> ControlDomain:
    """A domain given in world millimetres: centre (world mm), half extents (mm) along ``axes`` (rows: orthonormal
    world directions of the template axes); mapped to normalized coordinates through ``frame``, so it stays
    orthogonal in mm on anisotropic, non-cubic volumes."""
    q = np.asarray(centre_mm, dtype=np.float64) - frame.to_world(np.zeros(3))  # metric: origin at the volume centre
    return _domain_mm(size, np.asarray(axes, dtype=np.float64).T, np.asarray(half_size_mm, dtype=np.float64), q, frame, name)


def complete_basis(first: np.ndarray | None = None, third: np.ndarray | None = None) -> np.ndarray:
    """A proper rotation whose column 0 is ``first`` (or, if ``third`` is given, whose column 2 is ``third``)."""
    axis = np.asarray(third if third is not None else first, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    helper = np.eye(3)[int(np.argmin(np.abs(axis)))]  # the axis least aligned with ``axis``
    u = helper - (helper @ axis) * axis
    u /= np.linalg.norm(u)
    w = np.cross(axis, u)
    return np.stack([u, w, axis], axis=1) if third is not None else np.stack([axis, u, w], axis=1)


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


def place_box(mask: np.ndarray, size: Sequence[int], margin: float = 0.1, oriented: bool = False, name: str = "box",
              frame: Frame | None = None) -> ControlDomain:
    """Box around the voxels of ``mask``; each half-extent grows by ``margin`` (0.1 = 10 % larger).

    Axis-aligned with the array axes, or along the mask's principal axes in mm when ``oriented`` (box axes
    orthogonal in mm). Half a voxel is added so the box covers the voxels, not only their centres.
    """
    ijk = _mask_voxels(mask, f"domain {name!r}")
    if not oriented:
        pts = _normalized_points(ijk, mask.shape)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        half = ((hi - lo) / 2.0 + _voxel_step(mask.shape) / 2.0) * (1.0 + margin)
        return ControlDomain(tuple(size), np.eye(3), half, (hi + lo) / 2.0, name)
    frame = _frame(mask, frame)
    q = frame.voxels_to_metric(ijk)
    R = principal_axes(q)
    local = q @ R  # mm along the box axes
    lo, hi = local.min(axis=0), local.max(axis=0)
    # half a voxel along each box axis: the voxel's edges L·(step_i e_i) projected on it
    edges = frame.linear * _voxel_step(mask.shape)
    half_voxel = np.abs(R.T @ edges).sum(axis=1) / 2.0
    half = ((hi - lo) / 2.0 + half_voxel) * (1.0 + margin)
    return _domain_mm(size, R, half, R @ ((hi + lo) / 2.0), frame, name)


def contact_region(mask_a: np.ndarray, mask_b: np.ndarray, radius: int = 1) -> np.ndarray:
    """Voxels of either mask within ``radius`` voxels (26-neighbourhood steps) of the other: where two labels touch."""
    structure = np.ones((3, 3, 3), dtype=bool)
    near_b = ndimage.binary_dilation(mask_b, structure, iterations=radius)
    near_a = ndimage.binary_dilation(mask_a, structure, iterations=radius)
    return (mask_a & near_b) | (mask_b & near_a)


def centerline(mask: np.ndarray, spacing: Sequence[float] | None = None) -> np.ndarray:
    """(P, 3) voxel coordinates of the longest path through the skeleton of ``mask``'s largest part, in order.

    Skeleton by scikit-image (Lee's 3D thinning); the path is the skeleton graph's diameter found by two
    Dijkstra sweeps over 26-neighbour edges weighted by their length (in mm with ``spacing``).
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
    sp = np.ones(3) if spacing is None else np.asarray(spacing, dtype=np.float64)
    w = np.linalg.norm((ijk[pairs[:, 0]] - ijk[pairs[:, 1]]) * sp, axis=1)
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
    frame: Frame | None = None,
) -> list[ControlDomain]:
    """Planes perpendicular (in mm) to ``mask``'s centerline at arc-length ``fractions`` (0 = start, 1 = end).

    The template's size-1 axis is the normal (use a grid [α, β, 1]). The half-width is the local radius of the
    mask (distance transform in mm at the centerline point) × (1 + ``margin``). Fraction 0 is the centerline end
    nearest ``start_near`` (normalized point) if given, else the end with the smaller index along the array
    axis where the two ends differ most.
    """
    if list(size)[2] != 1 or min(size[0], size[1]) < 1:
        raise AnatomicaError(f"domain {name!r}: planes need a grid [α, β, 1], got {list(size)}")
    if np.count_nonzero(mask) == 0:
        raise AnatomicaError(f"domain {name!r}: the reference has no voxel of it")
    frame = _frame(mask, frame)
    ijk = centerline(mask, frame.spacing)
    if start_near is not None:
        near = frame.to_metric(start_near)
        ends = frame.voxels_to_metric(ijk[[0, -1]])
        flip = np.linalg.norm(ends[1] - near) < np.linalg.norm(ends[0] - near)
    else:
        axis = int(np.argmax(np.abs(ijk[-1] - ijk[0])))
        flip = ijk[-1, axis] < ijk[0, axis]
    if flip:
        ijk = ijk[::-1]
    path = frame.voxels_to_metric(ijk)  # mm
    radius = ndimage.distance_transform_edt(mask, sampling=frame.spacing)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    total = arc[-1]
    if total <= 0:
        raise AnatomicaError(f"domain {name!r}: the reference's centerline is a single point, cannot place planes")
    voxel = float(frame.spacing.max())
    window = max(0.05 * total, 2.0 * voxel)
    voxels = frame.voxels_to_metric(np.argwhere(mask))
    out = []
    for i, f in enumerate(fractions):
        s = float(f) * total
        at = lambda x: np.array([np.interp(x, arc, path[:, d]) for d in range(3)])  # noqa: E731
        centre, ahead, behind = at(s), at(min(s + window, total)), at(max(s - window, 0.0))
        vox = np.clip(np.rint([np.interp(s, arc, ijk[:, d]) for d in range(3)]), 0, np.array(mask.shape) - 1).astype(int)
        r = max(float(radius[tuple(vox)]), voxel)
        # the tangent: the principal axis (mm) of the mask's voxels within a ball around the centre point, long
        # enough (2.5 local radii) for the axis to dominate. A skeleton on an anisotropic grid is a staircase
        # whose chords and local fits tilt by several degrees; the voxels of a tube segment average that out.
        tangent = ahead - behind
        near = voxels[np.linalg.norm(voxels - centre, axis=1) <= max(2.0 * window, 2.5 * r)]
        if len(near) >= 4:
            axis = principal_axes(near)[:, 0]
            tangent = axis if axis @ tangent >= 0 else -axis
        n = tangent / np.linalg.norm(tangent)
        offset = near - centre
        slab = offset[np.abs(offset @ n) <= voxel / 2.0]
        if len(slab):  # centre the plane on the cross-section it cuts, not on the (staircase) skeleton
            mean = slab.mean(axis=0)
            centre = centre + mean - (mean @ n) * n
        R = complete_basis(third=n)
        half = r * (1.0 + margin)
        # the normal axis's scale is unused (template coordinate 0); the half-width keeps the map well conditioned
        out.append(_domain_mm(size, R, np.array([half, half, half]), centre, frame, _indexed(name, i, len(fractions))))
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
    frame: Frame | None = None,
) -> list[ControlDomain]:
    """Rays from the centroid of ``centre_mask``, in given ``directions`` or ``count`` at equal angles (in mm) in
    the plane ⟂ ``normal``.

    Directions and ``normal`` are 3-vectors of components along the array axes, in mm (so [1, 1, 0] is 45°
    between the first two axes whatever the spacing); ``normal`` defaults to the long (first principal, in mm)
    axis of ``centre_mask``. A ray spans [c, c + L·d] with L = ``length_mm`` or the reach of ``extent_mask``
    along the ray × (1 + ``margin``). The template's first axis runs along the ray (use a grid [n, 1, 1]).
    ``affine`` (older signature) is the reference's affine when no ``frame`` is given.
    """
    if list(size)[1:] != [1, 1]:
        raise AnatomicaError(f"domain {name!r}: lines need a grid [n, 1, 1], got {list(size)}")
    if frame is None and affine is not None:
        frame = Frame(extent_mask.shape, affine)
    frame = _frame(extent_mask, frame)
    q = frame.voxels_to_metric(_mask_voxels(centre_mask, f"domain {name!r}"))
    centre = q.mean(axis=0)
    if directions is None:
        if not count or count < 1:
            raise AnatomicaError(f"domain {name!r}: lines need 'directions' or a 'count' >= 1")
        n = principal_axes(q)[:, 0] if normal is None else _array_axes_mm(frame, normal)
        if np.linalg.norm(n) == 0:
            raise AnatomicaError(f"domain {name!r}: the plane normal must be nonzero")
        R = complete_basis(third=n)
        angles = np.deg2rad(start_angle_deg) + 2 * np.pi * np.arange(count) / count
        dirs = [np.cos(a) * R[:, 0] + np.sin(a) * R[:, 1] for a in angles]
    else:
        dirs = []
        for i, d in enumerate(directions):
            d = np.asarray(d, dtype=np.float64)
            if d.shape != (3,) or np.linalg.norm(d) == 0:
                raise AnatomicaError(f"domain {name!r}: direction {i} must be a nonzero 3-vector, got {d.tolist()}")
            dirs.append(_array_axes_mm(frame, d))
    ext = frame.voxels_to_metric(np.argwhere(extent_mask)) - centre
    tol = float(frame.spacing.max())  # one voxel: how far off the ray a voxel centre may lie and still count
    out = []
    for i, d in enumerate(dirs):
        d = d / np.linalg.norm(d)
        if length_mm is not None:
            L = float(length_mm)
        else:
            along = ext @ d
            perp = np.linalg.norm(ext - along[:, None] * d, axis=1)
            hit = along[(perp <= tol) & (along > 0)]
            if len(hit) == 0:
                raise AnatomicaError(f"domain {name!r}: ray {i} does not meet the reference labels, give a 'length_mm'")
            L = (float(hit.max()) + tol / 2.0) * (1.0 + margin)
        out.append(_domain_mm(size, complete_basis(d), np.full(3, L / 2.0), centre + d * L / 2.0, frame, _indexed(name, i, len(dirs))))
    return out


def _indexed(name: str, i: int, n: int) -> str:
    return name if n == 1 else f"{name}_{i}"
