"""Coronary phantom: left and right coronary trees on an ellipsoidal heart, with calcified deposits.

Template frame (mm): the heart is an ellipsoid centred at the origin with its long axis along z (base up,
apex at -z); azimuth φ is measured from +x (right) towards +y (anterior). The atrioventricular (AV)
groove is a ring at height ``z_av``. The left main (LM, ~10 mm, 4–5 mm across) leaves the aortic root
above the base and splits into the LAD, down the anterior interventricular groove towards the apex, and
the circumflex (LCx), round the left AV groove to the back. The right coronary (RCA) runs round the
right AV groove. The same fixed tilt as the heart phantom points the apex left, anterior and inferior.

Topological variability: 0–4 calcium deposits per case (two in about a quarter of cases), each a small
blob on the vessel wall. Deposits sit in distinct slots along the tree, are kept at least two voxels
apart and one 26-connected piece each on the voxels, and never cut the vessel's core, so the calcium
label has b0 = ``calcium_deposits`` and each artery label b0 = 1 at every size from 32³ to 128³.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from anatomica.data.phantoms.shapes import (
    Curve,
    dilate26,
    ellipsoid,
    grid_affine,
    largest_component,
    paint,
    random_placement,
    rotation,
    sealed,
    spline_curve,
    tube,
)
from anatomica.data.phantoms.system import PhantomSystem, TopologyCheck, check_size
from anatomica.io.nifti import LabelMap

LABELS = {
    "heart": 1,
    "coronary_artery_left": 2,
    "coronary_artery_right": 3,
    "coronary_calcium": 4,
}
# Heart-centred and tighter than the heart phantom's 160 mm, so 3–5 mm arteries are ~1 voxel wide at 32³
# and a few voxels at 64³ (anatomy_facts.md: LM 4–5 mm, LAD/LCx/RCA 3–4 mm proximally).
FOV_MM = 120.0
CENTRE_MM = np.array([-20.0, 15.0, -60.0])  # world RAS+: the heart, left of the midline in the anterior chest
TILT = rotation([0.0, 25.0, 0.0]) @ rotation([18.0, 0.0, 0.0])  # as heart.py: apex left, anterior, inferior
ANCHOR = np.array([0.0, 0.0, -4.0])
P_DEPOSITS = np.array([0.2, 0.3, 0.25, 0.15, 0.1])  # P(0..4 calcium deposits)
MIN_RADIUS_VOXELS = 1.2  # vessels at least this wide (radius) so a tube is a 26-connected voxel chain
MIN_BLOB_VOXELS = 1.25  # deposit semi-axes at least this many voxels: ≥ 2 voxels across at 32³
# Deposit slots: (segment, first, last arc length in mm from the segment's start). Slots are far enough
# apart (≥ ~18 mm, also across the bifurcation) that deposits a few mm wide never meet.
SEGMENTS = ("lm", "lad", "lcx", "rca")
SLOTS = (
    ("lm", 1.5, 4.5),
    ("lad", 15.0, 25.0),
    ("lad", 42.0, 52.0),
    ("lcx", 18.0, 28.0),
    ("lcx", 44.0, 54.0),
    ("rca", 12.0, 22.0),
    ("rca", 45.0, 55.0),
    ("rca", 78.0, 88.0),
)
MAX_DEPOSITS = len(P_DEPOSITS) - 1
STRIDE = 4  # coarse sampling used to find the voxels near the vessels


def _surface(radii: np.ndarray, phi_deg, z_frac, lift: float) -> np.ndarray:
    """Points (N, 3) on the heart ellipsoid at azimuth φ and height z = z_frac·r_z, lifted along the normal."""
    phi = np.deg2rad(np.atleast_1d(phi_deg).astype(float))
    zf = np.atleast_1d(z_frac).astype(float)
    ring = np.sqrt(np.clip(1.0 - zf**2, 0.0, 1.0))
    p = np.stack([radii[0] * ring * np.cos(phi), radii[1] * ring * np.sin(phi), radii[2] * zf], axis=1)
    n = p / radii**2
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    return p + lift * n


def _outward(radii: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Unit normal of the heart ellipsoid's level set through ``point``."""
    n = point / radii**2
    return n / np.linalg.norm(n)


def _draw(rng: np.random.Generator) -> dict:
    """All random parameters of one case (a fixed number of draws, independent of the grid size)."""
    u = rng.uniform
    radii = np.array([u(38.0, 44.0), u(32.0, 38.0), u(45.0, 52.0)])
    z_av = u(0.35, 0.45)
    lift = u(0.5, 1.5)  # vessels run in the epicardial fat, half sunk into the groove
    # Left main: from the bifurcation on the base up and inwards to the aortic root.
    phi_b = u(115.0, 130.0)
    bif = _surface(radii, phi_b, z_av + u(0.05, 0.1), lift)[0]
    to_root = np.array([-np.cos(np.deg2rad(phi_b)), -np.sin(np.deg2rad(phi_b)), 0.0]) * 0.6 + [0.0, 0.0, 0.8]
    to_root += rng.normal(0.0, 0.1, 3)
    to_root /= np.linalg.norm(to_root)
    ostium_l = bif + u(9.5, 11.0) * to_root
    lm = np.vstack([ostium_l, 0.5 * (ostium_l + bif) + rng.normal(0.0, 0.7, 3), bif])
    # LAD: down the anterior interventricular groove, curling slightly left near the apex.
    phi_lad = u(98.0, 112.0)
    lad_z = np.array([0.15, -0.25, -0.6, -0.86]) + rng.normal(0.0, 0.03, 4)
    lad_phi = phi_lad + np.array([0.0, 3.0, 8.0, 18.0]) + rng.normal(0.0, 3.0, 4)
    lad = np.vstack([bif, _surface(radii, lad_phi, lad_z, lift)])
    # LCx: round the left AV groove towards the back.
    lcx_end = u(225.0, 245.0)
    lcx_phi = phi_b + (lcx_end - phi_b) * np.array([0.25, 0.5, 0.75, 1.0]) + rng.normal(0.0, 2.0, 4)
    lcx = np.vstack([bif, _surface(radii, lcx_phi, z_av + rng.normal(0.0, 0.03, 4), lift)])
    # RCA: from the right sinus down into the right AV groove, round to the back.
    phi_r = u(60.0, 75.0)
    rca_end = u(-90.0, -65.0)
    ostium_r = _surface(radii, phi_r, z_av + u(0.12, 0.18), lift + u(4.0, 7.0))
    rca_phi = phi_r + (rca_end - phi_r) * np.array([0.12, 0.35, 0.6, 0.8, 1.0]) + rng.normal(0.0, 2.0, 5)
    rca = np.vstack([ostium_r, _surface(radii, rca_phi, z_av + rng.normal(0.0, 0.03, 5), lift)])
    r_lm = u(2.0, 2.5)
    taper = u(0.45, 0.6, 3)
    r_prox = u(1.5, 2.0, 3)
    n_dep = int(rng.choice(len(P_DEPOSITS), p=P_DEPOSITS))
    return {
        "placement": random_placement(rng, ANCHOR, TILT, shift_mm=5.0, warp_mm=2.0),
        "radii": radii,
        "lm": lm,
        "lad": lad,
        "lcx": lcx,
        "rca": rca,
        "r_lm": np.array([r_lm, r_lm, 0.95 * r_lm]),
        "r_lad": r_prox[0] * np.linspace(1.0, taper[0], len(lad)),
        "r_lcx": r_prox[1] * np.linspace(1.0, taper[1], len(lcx)),
        "r_rca": r_prox[2] * np.r_[1.0, np.linspace(1.0, taper[2], len(rca) - 1)],
        "slots": rng.permutation(len(SLOTS))[:MAX_DEPOSITS],
        "n_deposits": n_dep,
        "slot_pos": u(0.0, 1.0, MAX_DEPOSITS),  # where in its slot each deposit sits
        "dep_radius": u(1.5, 3.0, MAX_DEPOSITS),  # mm: lesions ~3–6 mm across
        "dep_length": u(1.0, 1.6, MAX_DEPOSITS),  # elongation along the vessel
        "dep_angle": u(-60.0, 60.0, MAX_DEPOSITS),  # degrees from the outward normal, round the vessel
    }


def _deposit(x: np.ndarray, p: dict, curves: dict[str, Curve], k: int, h: float, r_min: float) -> np.ndarray:
    """Deposit ``k``: an ellipsoidal blob on the outer wall of its slot's vessel (elongated along it)."""
    seg, lo, hi = SLOTS[p["slots"][k]]
    curve = curves[seg]
    s = min(lo + p["slot_pos"][k] * (hi - lo), 0.9 * curve.length)
    point, t = curve.at(s)
    i = int(np.clip(np.searchsorted(curve.arclength, s), 0, len(curve.radii) - 1))
    out = _outward(p["radii"], point)
    out -= (out @ t) * t
    out /= np.linalg.norm(out)
    side = rotation(p["dep_angle"][k] * t) @ out  # rotate round the vessel axis, staying on the outer side
    rc = max(p["dep_radius"][k], MIN_BLOB_VOXELS * h)
    length = max(p["dep_radius"][k] * p["dep_length"][k], MIN_BLOB_VOXELS * h)
    centre = point + side * (max(curve.radii[i], r_min) + 0.3 * rc)
    frame = np.stack([t, side, np.cross(t, side)], axis=1)
    return ellipsoid(x, centre, [length, rc, rc], frame)


def _near(x: np.ndarray, curves: dict[str, Curve], reach: float, h: float, stretch: float) -> np.ndarray:
    """Flat indices of (at least) the voxels within ``reach`` template mm of a centreline.

    Decided on every ``STRIDE``-th voxel, then spread to the voxels nearest to each: a voxel is at most
    ``STRIDE/2``·√3 voxels from its coarse neighbour, i.e. that many ``h`` times the warp's ``stretch``.
    """
    coarse = [np.unique(np.r_[np.arange(0, n, STRIDE), n - 1]) for n in x.shape[1:]]
    xc = x[:, coarse[0]][:, :, coarse[1]][:, :, :, coarse[2]].reshape(3, -1)
    centres = np.concatenate([c.points for c in curves.values()])
    slack = STRIDE / 2 * np.sqrt(3.0) * h * stretch
    dist, _ = cKDTree(centres).query(xc.T, distance_upper_bound=reach + slack)
    marked = np.isfinite(dist).reshape([len(c) for c in coarse])
    # Each voxel's nearest coarse sample, per axis.
    nearest = [np.abs(np.arange(n)[:, None] - c[None, :]).argmin(axis=1) for n, c in zip(x.shape[1:], coarse)]
    return np.flatnonzero(marked[np.ix_(*nearest)])


def _scatter(shape: tuple[int, ...], idx: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Full boolean volume that holds ``values`` (computed on the voxels ``idx``) and is False elsewhere."""
    out = np.zeros(int(np.prod(shape)), dtype=bool)
    out[idx] = values.ravel()
    return out.reshape(shape)


def _largest(mask: np.ndarray) -> np.ndarray:
    """``largest_component`` computed in the bounding box of a small mask."""
    if not mask.any():
        return mask
    box = tuple(slice(i.min(), i.max() + 1) for i in np.nonzero(mask))
    out = np.zeros_like(mask)
    out[box] = largest_component(mask[box])
    return out


def generate(rng: np.random.Generator, size: int) -> tuple[LabelMap, dict]:
    """One coronary case at size³: (label map, {"calcium_deposits": int}); see the module docstring."""
    size = check_size(size)
    p = _draw(rng)
    pl = p["placement"]
    x, h = pl.template_grid(size, FOV_MM)  # h: voxel size in template mm
    shape = x.shape[1:]
    r_min = MIN_RADIUS_VOXELS * h
    step = h / 4  # sample spacing well below a voxel so the tube test sees a continuous centreline
    curves = {seg: spline_curve(p[seg], p[f"r_{seg}"], step) for seg in SEGMENTS}
    # Vessels and deposits are evaluated only near the centrelines (a few % of the grid): much faster.
    blob_reach = 1.3 * max(p["dep_radius"].max() * 1.6, MIN_BLOB_VOXELS * h)
    warp = pl.warp
    stretch = 1.0 + float((np.linalg.norm(warp.amplitudes, axis=1) * np.linalg.norm(warp.frequencies, axis=1)).sum())
    reach = max(max(c.radii.max() for c in curves.values()), r_min) + blob_reach + h
    idx = _near(x, curves, reach, h, stretch)
    xn = x.reshape(3, -1)[:, idx][:, :, None, None]
    # Cores: the inner 60 % of each lumen, at least the centreline's voxel chain; deposits never overwrite
    # them, so each tree stays one piece.
    tubes, core = {}, np.zeros(shape, dtype=bool)
    for seg, c in curves.items():
        inside = tube(xn, c, r_min)[0].ravel()
        tubes[seg] = _scatter(shape, idx, inside)
        sub = idx[inside]
        thin = Curve(c.points, 0.6 * c.radii, c.arclength)
        core |= _scatter(shape, sub, tube(xn[:, inside], thin, r_min)[0])
    left = sealed(tubes["lm"] | tubes["lad"] | tubes["lcx"])

    vol = np.zeros(shape, dtype=np.uint8)
    paint(vol, ellipsoid(x, (0.0, 0.0, 0.0), p["radii"]), LABELS["heart"])
    paint(vol, left, LABELS["coronary_artery_left"])
    paint(vol, tubes["rca"], LABELS["coronary_artery_right"])

    calcium = np.zeros(shape, dtype=bool)
    n = 0
    for k in range(p["n_deposits"]):
        # At least two background voxels from earlier deposits, one 26-connected piece: b0 counts deposits.
        blob = _scatter(shape, idx, _deposit(xn, p, curves, k, h, r_min))
        blob = _largest(blob & ~core & ~dilate26(dilate26(calcium)))
        if blob.any():
            calcium |= blob
            n += 1
    paint(vol, calcium, LABELS["coronary_calcium"])
    # Safeguard (not seen in practice): a sliver of vessel wall pinched off beside the core by a deposit is
    # cleared, not merged into calcium where it might bridge two deposits; each artery stays one piece.
    for name in ("coronary_artery_left", "coronary_artery_right"):
        artery = vol == LABELS[name]
        paint(vol, artery & ~largest_component(artery), 0)
    return LabelMap(vol, grid_affine(size, FOV_MM, CENTRE_MM), dict(LABELS)), {"calcium_deposits": n}


SYSTEM = PhantomSystem(
    name="coronary",
    labels=LABELS, fov_mm=FOV_MM, generate=generate,
    topology_checks=[
        TopologyCheck("two calcium deposits", ["coronary_calcium"], {0: 2}),
    ],
    description="left (LM, LAD, LCx) and right coronary arteries on an ellipsoidal heart; 0–4 calcium deposits",
)
