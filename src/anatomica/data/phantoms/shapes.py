"""Shared primitives for procedural phantoms: the case grid, a random pose and smooth warp, implicit shapes.

Every phantom is drawn in a *template* frame in millimetres (x right, y anterior, z superior, RAS+).
Each voxel centre of the output grid is mapped into that frame once per case (similarity pose, then a
smooth random displacement), and shapes are evaluated there as vectorised boolean tests. The random
parameters of a case never depend on the grid size, so one seed gives the same anatomy at 32³ and 128³;
only the voxel-sized safeguards (minimum thicknesses, gaps) depend on the size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.interpolate import CubicSpline
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

CUBE = np.ones((3, 3, 3), dtype=bool)  # 26-neighbourhood: the foreground connectivity of closed voxel cubes


def matvec(m: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(3, 3) matrix times a (3, ...) field of vectors, as nine fused multiply-adds (no BLAS call per case)."""
    m = np.asarray(m, dtype=np.float32)
    return np.stack([m[i, 0] * x[0] + m[i, 1] * x[1] + m[i, 2] * x[2] for i in range(3)])


def dot(v, x: np.ndarray) -> np.ndarray:
    """Dot product of a 3-vector with a (3, ...) field of vectors."""
    v = np.asarray(v, dtype=np.float32)
    return v[0] * x[0] + v[1] * x[1] + v[2] * x[2]


# --- the output grid ---------------------------------------------------------------------------------


def grid_affine(size: int, fov_mm: float, centre_mm: np.ndarray) -> np.ndarray:
    """RAS+ affine of an isotropic size³ grid covering ``fov_mm`` centred on ``centre_mm`` (world mm)."""
    h = fov_mm / size
    affine = np.diag([h, h, h, 1.0])
    affine[:3, 3] = np.asarray(centre_mm, dtype=np.float64) - h * (size - 1) / 2.0
    return affine


def grid_offsets(size: int, fov_mm: float) -> np.ndarray:
    """(3, S, S, S) voxel-centre positions in mm relative to the grid centre, component d along axis d."""
    h = fov_mm / size
    axis = (np.arange(size, dtype=np.float32) - (size - 1) / 2.0) * np.float32(h)
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"))


# --- per-case pose and smooth deformation ------------------------------------------------------------


def rotation(rotvec_deg: np.ndarray | list[float]) -> np.ndarray:
    """3x3 rotation matrix from a rotation vector in degrees."""
    return Rotation.from_rotvec(np.asarray(rotvec_deg, dtype=np.float64), degrees=True).as_matrix()


def random_rotation(rng: np.random.Generator, sd_deg: float, max_deg: float) -> np.ndarray:
    """A small random rotation: each rotation-vector component ~ N(0, sd), clipped to ±max."""
    return rotation(np.clip(rng.normal(0.0, sd_deg, 3), -max_deg, max_deg))


@dataclass(frozen=True)
class Warp:
    """Smooth displacement u(y) = Σ_k a_k sin(ω_k·y + φ_k): a few random low-frequency modes (mm)."""

    amplitudes: np.ndarray  # (K, 3) mm
    frequencies: np.ndarray  # (K, 3) rad/mm
    phases: np.ndarray  # (K,)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        out = y.copy()
        for a, w, phi in zip(self.amplitudes, self.frequencies, self.phases):
            s = np.sin(dot(w, y) + np.float32(phi))
            out += a.astype(np.float32)[:, None, None, None] * s
        return out


def random_warp(rng: np.random.Generator, amplitude_mm: float, wavelength_mm: tuple[float, float] = (70.0, 160.0), modes: int = 4) -> Warp:
    """Random smooth warp with RMS amplitude about ``amplitude_mm`` and wavelengths in the given range."""
    direction = rng.normal(size=(modes, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    wavelength = rng.uniform(*wavelength_mm, size=modes)
    amp = rng.normal(size=(modes, 3)) * amplitude_mm / np.sqrt(modes)
    return Warp(amp, direction * (2 * np.pi / wavelength)[:, None], rng.uniform(0, 2 * np.pi, modes))


@dataclass(frozen=True)
class Placement:
    """Where a template sits in the grid: world = s·R·(template − anchor) + t, then a smooth warp."""

    rotation: np.ndarray
    translation: np.ndarray  # mm, relative to the grid centre
    scale: float
    anchor: np.ndarray  # template point shown at the grid centre (before translation)
    warp: Warp

    def template_grid(self, size: int, fov_mm: float) -> tuple[np.ndarray, float]:
        """Template coordinates of every voxel centre of a size³ grid over ``fov_mm`` and the voxel size in
        template mm (a generator draws its anatomy in template mm, then rasterizes at this resolution)."""
        return self.template_coords(grid_offsets(size, fov_mm)), fov_mm / size / self.scale

    def template_coords(self, offsets: np.ndarray) -> np.ndarray:
        """(3, S, S, S) template coordinates (mm) of the voxel centres given by ``grid_offsets``."""
        q = offsets - self.translation.astype(np.float32)[:, None, None, None]
        y = matvec(self.rotation.T / self.scale, q)
        y += self.anchor.astype(np.float32)[:, None, None, None]
        return self.warp(y)


def random_placement(
    rng: np.random.Generator,
    anchor: np.ndarray,
    base_rotation: np.ndarray | None = None,
    rot_sd_deg: float = 5.0,
    rot_max_deg: float = 10.0,
    shift_mm: float = 6.0,
    scale_range: tuple[float, float] = (0.92, 1.08),
    warp_mm: float = 2.5,
) -> Placement:
    """Case pose: a fixed anatomical orientation times a small random rotation, shift, scale and warp."""
    r = random_rotation(rng, rot_sd_deg, rot_max_deg)
    if base_rotation is not None:
        r = r @ base_rotation
    t = rng.uniform(-shift_mm, shift_mm, 3)
    s = float(rng.uniform(*scale_range))
    return Placement(r, t, s, np.asarray(anchor, dtype=np.float64), random_warp(rng, warp_mm))


# --- implicit shapes on template coordinates x (3, S, S, S) -------------------------------------------


def in_frame(x: np.ndarray, origin, rot: np.ndarray | None = None) -> np.ndarray:
    """Coordinates of x in a frame with the given origin and axes (columns of ``rot``)."""
    d = x - np.asarray(origin, dtype=np.float32)[:, None, None, None]
    if rot is None:
        return d
    return matvec(np.asarray(rot).T, d)


def ellipsoid(x: np.ndarray, centre, radii, rot: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the solid ellipsoid with semi-axes ``radii`` along the frame axes."""
    d = in_frame(x, centre, rot)
    r = np.asarray(radii, dtype=np.float32)
    return (d[0] / r[0]) ** 2 + (d[1] / r[1]) ** 2 + (d[2] / r[2]) ** 2 <= 1.0


def ellipse_level(u: np.ndarray, v: np.ndarray, a: float, b: float) -> np.ndarray:
    """(u/a)² + (v/b)²: < 1 inside a 2D ellipse (used for extruded cross-sections)."""
    return (u / a) ** 2 + (v / b) ** 2


@dataclass(frozen=True)
class Curve:
    """A densely resampled centreline with a radius and arc length at every sample (mm)."""

    points: np.ndarray  # (M, 3)
    radii: np.ndarray  # (M,)
    arclength: np.ndarray  # (M,)

    @property
    def length(self) -> float:
        return float(self.arclength[-1])

    def at(self, s: float) -> tuple[np.ndarray, np.ndarray]:
        """Point and unit tangent at arc length ``s``."""
        i = int(np.clip(np.searchsorted(self.arclength, s), 1, len(self.points) - 1))
        t = self.points[i] - self.points[i - 1]
        return self.points[i], t / max(np.linalg.norm(t), 1e-9)


def spline_curve(control: np.ndarray, radii, step: float = 0.5) -> Curve:
    """Interpolating cubic spline through ``control`` points (chord-length parameter), resampled every ``step`` mm.

    ``radii`` is one radius or one per control point (interpolated linearly along the curve).
    """
    control = np.asarray(control, dtype=np.float64)
    chord = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(control, axis=0), axis=1))]
    if len(control) > 2:
        spline = CubicSpline(chord, control, bc_type="natural")
    else:
        spline = lambda t: control[0] + (control[1] - control[0]) * (np.asarray(t)[:, None] / chord[-1])  # noqa: E731
    t = np.linspace(0.0, chord[-1], max(int(np.ceil(chord[-1] / step)) + 1, 2))
    pts = spline(t)
    arclength = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))]
    r = np.broadcast_to(np.asarray(radii, dtype=np.float64), (len(control),))
    return Curve(pts, np.interp(t, chord, r), arclength)


def tube(x: np.ndarray, curve: Curve, min_radius: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Voxels within the (tapered) radius of a centreline, and their arc-length position along it.

    Returns (mask, s) with ``s`` the arc length of the nearest centreline sample (NaN outside the tube).
    ``min_radius`` keeps thin vessels at least this wide (in mm; pass a voxel multiple for robustness).
    """
    radii = np.maximum(curve.radii, min_radius)
    pts = x.reshape(3, -1)
    rmax = float(radii.max())
    lo = curve.points.min(axis=0) - rmax
    hi = curve.points.max(axis=0) + rmax
    cand = np.ones(pts.shape[1], dtype=bool)
    for d in range(3):
        cand &= (pts[d] >= lo[d]) & (pts[d] <= hi[d])
    idx = np.flatnonzero(cand)
    mask = np.zeros(pts.shape[1], dtype=bool)
    s = np.full(pts.shape[1], np.nan, dtype=np.float32)
    if idx.size:
        dist, j = cKDTree(curve.points).query(pts[:, idx].T, distance_upper_bound=rmax)
        ok = np.isfinite(dist)
        ok[ok] = dist[ok] <= radii[j[ok]]
        mask[idx[ok]] = True
        s[idx[ok]] = curve.arclength[j[ok]]
    shape = x.shape[1:]
    return mask.reshape(shape), s.reshape(shape)


# --- voxel-level topology safeguards ------------------------------------------------------------------
# Shift-based morphology: the cube is separable into three 1D passes, the cross is six shifts. Much
# faster than generic structuring elements, and outside the array counts as background.


def _shift_or(mask: np.ndarray, axis: int) -> np.ndarray:
    out = mask.copy()
    lo = [slice(None)] * 3
    hi = [slice(None)] * 3
    lo[axis], hi[axis] = slice(0, -1), slice(1, None)
    out[tuple(lo)] |= mask[tuple(hi)]
    out[tuple(hi)] |= mask[tuple(lo)]
    return out


def dilate26(mask: np.ndarray) -> np.ndarray:
    """One-voxel dilation with the full 3x3x3 cube (what a 26-connected neighbour can reach)."""
    out = mask
    for axis in range(3):
        out = _shift_or(out, axis)
    return out


def erode26(mask: np.ndarray) -> np.ndarray:
    """One-voxel erosion with the 3x3x3 cube (voxels whose whole neighbourhood is inside)."""
    return ~dilate26(~mask)


def _dilate6(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    for axis in range(3):
        out |= _shift_or(mask, axis)
    return out


def touching(a: np.ndarray, b: np.ndarray) -> bool:
    """True when some voxel of ``b`` is in ``a`` or 26-adjacent to it (closed cubes share a point)."""
    return bool((dilate26(a) & b).any())


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of ``mask`` (``mask`` itself when it has at most one)."""
    comp, n = ndimage.label(mask, structure=CUBE)
    if n <= 1:
        return mask
    sizes = np.bincount(comp.ravel())
    sizes[0] = 0
    return comp == int(sizes.argmax())


def solid(mask: np.ndarray) -> np.ndarray:
    """Largest component of ``mask`` after removing parts thinner than about two voxels.

    Where two curved surfaces meet at a shallow angle (the tips of a crescent) their voxelisation is a
    sparse sheet full of pinholes; an opening with the 6-neighbourhood cross blunts such tips so the
    shape keeps the topology of its continuous model.
    """
    eroded = ~_dilate6(~mask)
    return largest_component(_dilate6(eroded) & mask)


def sealed(mask: np.ndarray) -> np.ndarray:
    """``mask`` with pinholes filled: a closing with the 3x3x3 cube.

    Where tubes branch at an acute angle, the voxels of the two tubes can meet corner to corner around a
    background voxel, a spurious loop of the cubical complex; closing fills such one-voxel gaps.
    """
    padded = np.pad(mask, 1)
    closed = erode26(dilate26(padded))[1:-1, 1:-1, 1:-1]
    return closed | mask


def paint(volume: np.ndarray, mask: np.ndarray, value: int) -> None:
    """Write ``value`` into ``volume`` where ``mask`` holds (later paints win)."""
    volume[mask] = value
