"""Aorta phantom: ascending aorta, arch and descending aorta with the three arch branches (TotalSegmentator labels).

Template frame (mm, RAS+): the origin is the arch's centre of curvature. The arch lies in an oblique
plane spanned by the vertical and a horizontal axis ``e_u`` pointing anteriorly and to the right, so the
ascending aorta rises anterior-right of the origin and the descending aorta falls posterior-left of it
(the "left anterior oblique" view opens the arch). The brachiocephalic trunk, left common carotid and
left subclavian arteries leave the top of the arch in that order and diverge as they rise, so no two
branches ever meet outside the aorta: the tree has no loop (b1 = 0).

Topological variability: the tree (union of the four labels) is one piece in about half of the cases;
otherwise one branch, sometimes two, misses a segment (a gap of at least two voxels cut across the branch
away from its root), so b0 = 1 + number of broken branches. The gaps are enforced on the voxels, so
``flags`` always agrees with the Betti numbers of the array.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from anatomica.data.phantoms.shapes import CUBE, dilate26, grid_affine, largest_component, paint, random_placement, spline_curve, tube
from anatomica.data.phantoms.system import PhantomSystem, TopologyCheck, check_size
from anatomica.io.nifti import LabelMap

LABELS = {
    "aorta": 1,
    "brachiocephalic_trunk": 2,
    "common_carotid_artery_left": 3,
    "subclavian_artery_left": 4,
}
BRANCHES = ["brachiocephalic_trunk", "common_carotid_artery_left", "subclavian_artery_left"]
# 144 mm holds the arch (≈ 2·35 mm + wall) with 40–50 mm of branches above it and the aortic root below;
# 144/96 = 1.5 mm, TotalSegmentator's resolution.
FOV_MM = 144.0
CENTRE_MM = np.array([-5.0, 0.0, 40.0])  # world RAS+: upper mediastinum, just left of the midline
ANCHOR = np.array([0.0, 0.0, 30.0])  # template point at the grid centre: above the arch's centre of curvature
P_CONNECTED = 0.52
P_TWO_BROKEN = 0.25  # given that the tree is broken
# The arch plane turns about 35° from sagittal: ascending aorta anterior-right, descending posterior-left.
E_U = np.array([np.sin(np.radians(35.0)), np.cos(np.radians(35.0)), 0.0])
E_Z = np.array([0.0, 0.0, 1.0])
E_N = np.cross(E_Z, E_U)
# Mean branch origins on the arch (degrees from the ascending end, 90° = top) and initial directions:
# the brachiocephalic trunk rises to the right, the carotid straight up, the subclavian to the left.
BRANCH_ANGLE_DEG = np.array([58.0, 90.0, 122.0])
BRANCH_DIR = np.array([[0.45, 0.05, 1.0], [-0.1, 0.0, 1.0], [-0.45, -0.1, 1.0]])
BRANCH_RADIUS = np.array([6.0, 3.75, 4.75])  # mm: diameters ≈ 12, 7.5, 9.5
# Aortic radius along the control points: ascending ≈ 30 mm diameter → arch ≈ 27 → descending ≈ 22.
AORTA_RADIUS = np.array([15.0, 15.0, 14.5, 14.0, 13.5, 12.5, 11.5, 11.0, 11.0])


def _draw(rng: np.random.Generator) -> dict:
    """All random parameters of one case (a fixed number of draws, independent of the grid size)."""
    u = rng.uniform
    connected = bool(rng.random() < P_CONNECTED)
    n_broken = 0 if connected else (2 if rng.random() < P_TWO_BROKEN else 1)
    order = rng.permutation(len(BRANCHES))
    return {
        "placement": random_placement(rng, ANCHOR),
        "R": u(30.0, 38.0),  # arch radius of curvature
        "height": u(0.9, 1.05),  # arch height relative to R (taller or flatter arches)
        "ascending": u(38.0, 48.0),  # root below the arch's centre
        "bow": u(-4.0, 4.0),  # out-of-plane bow of the arch (the arch is not quite planar)
        "jitter": rng.normal(0.0, 1.5, (9, 3)),
        "aorta_scale": u(0.9, 1.1),
        "angles": BRANCH_ANGLE_DEG + u(-3.0, 3.0, 3),
        "directions": BRANCH_DIR + rng.normal(0.0, 0.06, (3, 3)),
        "bends": rng.normal(0.0, 0.12, (3, 3)),
        "lengths": u(40.0, 50.0, 3),  # outside the aortic wall
        "branch_scale": u(0.9, 1.1, 3),
        "broken": sorted(int(i) for i in order[:n_broken]),
        "cut_at": u(0.2, 0.4, 3),  # start of the missing segment, fraction of the branch length
        "gaps": u(3.0, 8.0, 3),  # mm
    }


def _arch_point(p: dict, theta_deg: float) -> np.ndarray:
    """Template point of the arch's (elliptical) centreline at an angle from the ascending end."""
    t = np.radians(theta_deg)
    R = p["R"]
    return R * np.cos(t) * E_U + p["height"] * R * np.sin(t) * E_Z + p["bow"] * np.sin(t) * E_N


def _aorta_control(p: dict) -> np.ndarray:
    """Control points root → ascending → arch (five angles) → descending (leaving the field of view below)."""
    R, asc = p["R"], p["ascending"]
    pts = [R * E_U - asc * E_Z, R * E_U - 0.5 * asc * E_Z]
    pts += [_arch_point(p, a) for a in (0.0, 45.0, 90.0, 135.0, 180.0)]
    pts += [-R * E_U - 40.0 * E_Z, -R * E_U - 95.0 * E_Z]
    return np.array(pts) + p["jitter"]


def _branch_control(p: dict, i: int) -> tuple[np.ndarray, float]:
    """Centreline from inside the arch outwards, and the arc length at which it leaves the aortic wall."""
    root = _arch_point(p, p["angles"][i])
    d1 = p["directions"][i] / np.linalg.norm(p["directions"][i])
    d2 = d1 + p["bends"][i]
    d2 /= np.linalg.norm(d2)
    wall = 13.5 * p["aorta_scale"]  # arch radius near the branch origins
    total = wall + p["lengths"][i]
    return np.array([root, root + 0.5 * total * d1, root + 0.5 * total * (d1 + d2)]), wall


def generate(rng: np.random.Generator, size: int) -> tuple[LabelMap, dict]:
    """One aorta case at size³: (label map, {"broken_branches": [names], "connected": bool})."""
    size = check_size(size)
    p = _draw(rng)
    pl = p["placement"]
    x, h = pl.template_grid(size, FOV_MM)  # h: voxel size in template mm
    step = min(h, 4.0) / 2
    # Thin branches at least ~one voxel in radius, so their voxels stay a 26-connected chain at 32³.
    min_r = 1.1 * h

    aorta = tube(x, spline_curve(_aorta_control(p), AORTA_RADIUS * p["aorta_scale"], step))[0]
    vol = np.zeros(x.shape[1:], dtype=np.uint8)
    cuts: dict[int, np.ndarray] = {}
    for i, name in enumerate(BRANCHES):
        control, wall = _branch_control(p, i)
        r = BRANCH_RADIUS[i] * p["branch_scale"][i]
        branch, s = tube(x, spline_curve(control, [r, r, 0.9 * r], step), min_radius=min_r)
        if i in p["broken"]:
            # A missing segment away from the root: the stub stays on the arch, the distal part floats.
            start = wall + p["cut_at"][i] * p["lengths"][i]
            gap = max(p["gaps"][i], 2.5 * h)
            cuts[i] = branch & (s > start + gap)
            branch &= ~((s >= start) & (s <= start + gap))
        paint(vol, branch, LABELS[name])
    paint(vol, aorta, LABELS["aorta"])

    # Voxel-level guarantees. Each floating segment keeps two empty voxels to everything else and is one
    # piece; everything else is the aorta's component (strays a coarse grid might leave are dropped).
    distal = np.zeros_like(aorta)
    for i, cut in cuts.items():
        piece = cut & (vol == LABELS[BRANCHES[i]])
        rest = (vol > 0) & ~piece & ~distal
        piece = largest_component(piece & ~dilate26(dilate26(rest)))
        vol[cut & ~piece] = 0
        distal |= piece
    comp, _ = ndimage.label((vol > 0) & ~distal, structure=CUBE)
    main = np.bincount(comp[vol == LABELS["aorta"]]).argmax()
    vol[(comp != main) & ~distal] = 0

    broken = [BRANCHES[i] for i in p["broken"]]
    flags = {"broken_branches": broken, "connected": not broken}
    return LabelMap(vol, grid_affine(size, FOV_MM, CENTRE_MM), dict(LABELS)), flags


SYSTEM = PhantomSystem(
    name="aorta",
    labels=LABELS, fov_mm=FOV_MM, generate=generate,
    topology_checks=[
        TopologyCheck("aortic tree connected", list(LABELS), {0: 1}),
    ],
    description="ascending aorta, arch, descending aorta and the three arch branches; a branch may miss a segment",
)
