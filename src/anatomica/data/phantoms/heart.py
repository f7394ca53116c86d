"""Heart phantom: four chambers, LV myocardium, aortic root and pulmonary trunk (TotalSegmentator heart labels).

Template frame (mm): the LV long axis is the z axis with the base (atrioventricular) plane at z = 0 and
the apex below; ventricles and myocardium lie below the base plane, atria and great vessels above it
(so the aorta leaves the LV and the pulmonary trunk the RV at the valve plane). The myocardium is an
ellipsoidal shell (8–11 mm, thinner at the apex) around the LV cavity; the RV is an ellipsoid minus the
LV epicardium, a crescent against the septum. A fixed tilt points the apex to the left, anteriorly and
inferiorly, as in the chest.

Topological variability: the two atria touch across a thin septum (the common case) or are separated
by a gap (``atria_touching = False``, about 20 % of cases). The gap is at least 2.5 voxels wide and is
enforced on the voxels, so the union of the atria has b0 = 2 exactly when the flag says separate, at
every grid size; every label is one piece.
"""

from __future__ import annotations

import numpy as np

from anatomica.data.phantoms.shapes import (
    dilate26,
    dot,
    ellipsoid,
    grid_affine,
    largest_component,
    paint,
    random_placement,
    rotation,
    sealed,
    solid,
    spline_curve,
    tube,
)
from anatomica.data.phantoms.system import PhantomSystem, TopologyCheck, check_size
from anatomica.io.nifti import LabelMap

LABELS = {
    "heart_myocardium": 1,
    "heart_atrium_left": 2,
    "heart_ventricle_left": 3,
    "heart_atrium_right": 4,
    "heart_ventricle_right": 5,
    "aorta": 6,
    "pulmonary_artery": 7,
}
FOV_MM = 160.0
CENTRE_MM = np.array([-20.0, 15.0, -60.0])  # world RAS+: left of the midline, anterior chest
P_ATRIA_TOUCHING = 0.8
# Apex to the left (rotation about y) and anterior (about x): the heart's long axis is oblique in the chest.
TILT = rotation([0.0, 25.0, 0.0]) @ rotation([18.0, 0.0, 0.0])
ANCHOR = np.array([6.0, 2.0, -18.0])


def _draw(rng: np.random.Generator) -> dict:
    """All random parameters of one case (a fixed number of draws, independent of the grid size)."""
    u = rng.uniform
    r_lv, a_lv = u(24.0, 28.0), u(76.0, 90.0)
    wall = u(8.0, 11.0)
    return {
        "placement": random_placement(rng, ANCHOR, TILT),
        "r_lv": r_lv,
        "a_lv": a_lv,
        "wall": wall,
        "apex_wall": wall * u(0.6, 0.8),
        "rv_centre": np.array([0.85 * r_lv, 0.55 * r_lv, -0.3 * a_lv]) + rng.normal(0, 1.5, 3),
        "rv_radii": np.array([r_lv + 14.0, r_lv + 6.0, 0.66 * a_lv]) * u(0.93, 1.07, 3),
        "la_centre": np.array([-3.0, -20.0, 21.0]) + rng.normal(0, 1.5, 3),
        "la_radii": np.array([28.0, 21.0, 23.0]) * u(0.9, 1.1, 3),
        "ra_centre": np.array([34.0, -8.0, 19.0]) + rng.normal(0, 1.5, 3),
        "ra_radii": np.array([26.0, 23.0, 24.0]) * u(0.9, 1.1, 3),
        "septum_shift": u(-2.0, 2.0),
        "atria_touching": bool(rng.random() < P_ATRIA_TOUCHING),
        "septal_gap": u(2.0, 5.0),
        "aorta": np.array([[6, 9, -6], [8, 12, 20], [7, 11, 50], [4, 8, 92]], float) + rng.normal(0, 1.5, (4, 3)),
        "aorta_r": np.array([14.0, 15.0, 14.5, 14.0]) * u(0.9, 1.1),
        "pa": np.array([[22, 34, -8], [14, 36, 16], [-2, 32, 34], [-10, 20, 43]], float) + rng.normal(0, 1.5, (4, 3)),
        "lpa": np.array([[-34, 16, 44], [-50, 2, 39]], float) + rng.normal(0, 1.5, (2, 3)),
        "rpa": np.array([[-14, 0, 45], [-2, -16, 46], [24, -22, 45]], float) + rng.normal(0, 1.5, (3, 3)),
        "pa_r": u(11.0, 13.0),
    }


def _septum(p: dict) -> tuple[np.ndarray, np.ndarray]:
    """The atrial septal plane (normal from LA to RA, horizontal) through the middle of the atria's overlap."""
    d = p["ra_centre"] - p["la_centre"]
    d[2] = 0.0
    dist = float(np.linalg.norm(d))
    n = d / dist
    reach_la = 1.0 / np.sqrt(((n / p["la_radii"]) ** 2).sum())  # LA extent along n
    reach_ra = 1.0 / np.sqrt(((n / p["ra_radii"]) ** 2).sum())
    mid = 0.5 * (reach_la + dist - reach_ra) + p["septum_shift"]
    return n, p["la_centre"] + mid * n


def generate(rng: np.random.Generator, size: int) -> tuple[LabelMap, dict]:
    """One heart case at size³: (label map, {"atria_touching": bool, "septal_gap_mm": float})."""
    size = check_size(size)
    p = _draw(rng)
    pl = p["placement"]
    x, h = pl.template_grid(size, FOV_MM)  # h: voxel size in template mm
    below, above = x[2] <= 0.0, x[2] > 0.0

    # Walls at least two voxels thick, so the septum separates the ventricles at every resolution.
    wall, apex_wall = max(p["wall"], 2.0 * h), max(p["apex_wall"], 2.0 * h)
    r, a = p["r_lv"], p["a_lv"]
    lv_radii = np.array([r, 0.95 * r, a])
    cavity = ellipsoid(x, (0, 0, 0), lv_radii) & below
    epicardium = ellipsoid(x, (0, 0, 0), lv_radii + [wall, wall, apex_wall]) & below
    rv = solid(ellipsoid(x, p["rv_centre"], p["rv_radii"]) & below & ~epicardium)

    n, point = _septum(p)
    side = dot(n, x) - np.float32(n @ point)
    e_la = ellipsoid(x, p["la_centre"], p["la_radii"]) & above
    e_ra = ellipsoid(x, p["ra_centre"], p["ra_radii"]) & above
    if p["atria_touching"]:
        # Only the overlap is split by the septal plane, so the union stays one ball (no notch pockets).
        gap = 0.0
        la = e_la & ~(e_ra & (side >= 0))
        ra = e_ra & ~la
    else:
        gap = max(p["septal_gap"], 2.5 * h)
        la = e_la & (side < -gap / 2)
        ra = e_ra & (side > gap / 2)

    step = min(h, 4.0) / 2
    # The great vessels start at the valve plane, on top of their ventricle (never inside it: a vessel
    # pushed into a cavity would make the cavity a ring).
    aorta = tube(x, spline_curve(p["aorta"], p["aorta_r"], step))[0] & above
    pr = p["pa_r"]
    bif = p["pa"][-1]
    pa = tube(x, spline_curve(p["pa"], [pr, pr, 0.95 * pr, 0.9 * pr], step))[0]
    pa |= tube(x, spline_curve(np.vstack([bif, p["lpa"]]), 0.75 * pr, step))[0]
    pa |= tube(x, spline_curve(np.vstack([bif, p["rpa"]]), [0.75 * pr, 0.7 * pr, 0.65 * pr, 0.65 * pr], step))[0]
    pa = sealed(pa) & above

    vol = np.zeros(x.shape[1:], dtype=np.uint8)
    paint(vol, epicardium, LABELS["heart_myocardium"])
    paint(vol, cavity, LABELS["heart_ventricle_left"])
    paint(vol, rv, LABELS["heart_ventricle_right"])
    paint(vol, la, LABELS["heart_atrium_left"])
    paint(vol, ra, LABELS["heart_atrium_right"])
    paint(vol, pa, LABELS["pulmonary_artery"])
    paint(vol, aorta, LABELS["aorta"])

    # Voxel-level guarantees: the RV never touches the LV cavity (what touches it is septum), and
    # separated atria share no voxel corner.
    lv = vol == LABELS["heart_ventricle_left"]
    paint(vol, (vol == LABELS["heart_ventricle_right"]) & dilate26(lv), LABELS["heart_myocardium"])
    if not p["atria_touching"]:
        la_now = vol == LABELS["heart_atrium_left"]
        paint(vol, (vol == LABELS["heart_atrium_right"]) & dilate26(la_now), 0)
    # Later paints can nick earlier structures into a large part and a crumb; keep every label one piece.
    for value in LABELS.values():
        mask = vol == value
        paint(vol, mask & ~largest_component(mask), 0)

    flags = {"atria_touching": p["atria_touching"], "septal_gap_mm": 0.0 if p["atria_touching"] else round(float(gap * pl.scale), 2)}
    return LabelMap(vol, grid_affine(size, FOV_MM, CENTRE_MM), dict(LABELS)), flags


SYSTEM = PhantomSystem(
    name="heart",
    labels=LABELS, fov_mm=FOV_MM, generate=generate,
    topology_checks=[
        TopologyCheck("atria separate", ["heart_atrium_left", "heart_atrium_right"], {0: 2}),
    ],
    description="four chambers, LV myocardium, aortic root, pulmonary trunk; atria touch or are separate",
)
