"""Spine phantom: the lumbar vertebrae L1–L5 and the intervertebral discs between them.

Template frame (mm): x right, y anterior, z superior. The column's centreline is a circular arc in the
sagittal plane (lumbar lordosis: the middle bows anteriorly); each vertebra has its own frame (x right,
y anterior, z along the centreline) with the body centred at its origin and the arch behind it: two
pedicles and a lamina around the vertebral foramen (one loop per vertebra, closed in front by the
body), a spinous process pointing back and two transverse processes pointing sideways.

Topological variability of the union of the vertebrae and the discs ("vertebrae connectivity"):

- in about a third of cases one vertebra (most often L5, as spondylolysis is) has a unilateral defect of
  the lamina at least 2.5 voxels wide: its arch is open (b1 = 0 for that vertebra);
- in about 30 % of cases every disc bridges its two vertebrae (one connected column); otherwise one or
  two disc levels are separated from a neighbouring vertebra by a gap of at least 2.5 voxels, and the
  column falls into 1 + (number of such levels) components.

Consecutive vertebrae live on either side of a slab around each disc (at least two voxels thick), so no
process meets its neighbour, and each disc is a flat slab resting inside the rims of its bodies, so it
closes no loop: b1 of the union counts exactly the intact arches, b0 the open levels plus one. Every
gap is also enforced on the voxels, so the flags hold at every grid size from 32³ to 128³.
"""

from __future__ import annotations

import numpy as np

from anatomica.data.phantoms.shapes import dilate26, ellipse_level, grid_affine, in_frame, largest_component, paint, random_placement
from anatomica.data.phantoms.system import PhantomSystem, TopologyCheck, check_size
from anatomica.io.nifti import LabelMap

VERTEBRAE = ["vertebrae_L1", "vertebrae_L2", "vertebrae_L3", "vertebrae_L4", "vertebrae_L5"]
LABELS = {**{name: i + 1 for i, name in enumerate(VERTEBRAE)}, "intervertebral_disc": 6}
LEVELS = [f"{a[-2:]}-{b[-2:]}" for a, b in zip(VERTEBRAE[:-1], VERTEBRAE[1:])]  # "L1-L2", ...
# Five lumbar bodies (25–30 mm) and four discs (8–12 mm) span about 180 mm; the margin keeps the
# column inside the grid under the random pose.
FOV_MM = 224.0
CENTRE_MM = np.array([0.0, -60.0, -330.0])  # world RAS+: midline, posterior abdomen, about L3 level
P_COLUMN_CONNECTED = 0.3
P_BROKEN_ARCH = 0.33
P_EXTRA_GAP = 0.25  # chance of each further disc level opening once the column is broken
BROKEN_ARCH_LEVEL_P = np.array([0.05, 0.05, 0.1, 0.2, 0.6])  # pars defects are mostly L5, then L4


def _frame(kappa: float, s: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Point and frame (columns x, y, z = tangent) of the lordotic arc at arc length ``s`` (mm, upward).

    The arc bends with curvature ``kappa`` about a centre behind the column, so above and below its
    middle (s = 0) the column leans back.
    """
    a = kappa * s
    point = np.array([0.0, (np.cos(a) - 1.0) / kappa, np.sin(a) / kappa])
    rot = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(a), -np.sin(a)], [0.0, np.sin(a), np.cos(a)]])
    return point, rot


def _draw(rng: np.random.Generator) -> dict:
    """All random parameters of one case (a fixed number of draws, independent of the grid size)."""
    u = rng.uniform
    n = len(VERTEBRAE)
    width = u(40.0, 45.0) + u(0.0, 1.25) * np.arange(n)  # bodies grow caudally, L5 at most 50 mm
    depth = u(30.0, 32.0) + u(0.0, 0.75) * np.arange(n)
    height = u(25.0, 30.0, n)
    disc = u(8.0, 12.0, n - 1)
    lordosis = np.deg2rad(u(15.0, 30.0))  # angle between the L1 and L5 axes

    # Arc length (upward) of each body centre and each disc middle, centred on the column's middle.
    top = np.cumsum(np.r_[height[::-1][:1], [d + hh for d, hh in zip(disc[::-1], height[::-1][1:])]])
    centre_s = (top - height[::-1] / 2)[::-1]
    disc_s = (top[:-1] + disc[::-1] / 2)[::-1]
    mid = top[-1] / 2
    centre_s, disc_s = centre_s - mid, disc_s - mid
    kappa = lordosis / (centre_s[0] - centre_s[-1])

    p = {
        "width": width,
        "depth": depth,
        "height": height,
        "disc": disc,
        "kappa": kappa,
        "centre_s": centre_s,
        "disc_s": disc_s,
        "waist": u(0.03, 0.08, n),
        "arch_z": u(0.05, 0.15, n) * height,  # pedicles leave the upper half of the body
        "arch_half": u(6.0, 8.0, n),
        "foramen_a": u(9.0, 12.0, n),  # half-width: the canal is 18–24 mm across
        "foramen_b": u(7.5, 9.5, n),
        "pedicle": u(7.0, 10.0, n),
        "lamina": u(5.0, 7.0, n),
        "spinous_len": u(30.0, 40.0, n),
        "spinous_half_h": u(7.0, 9.0, n),
        "spinous_half_w": u(2.5, 4.0, n),
        "spinous_tilt": np.deg2rad(u(5.0, 15.0, n)),
        "transverse_len": u(30.0, 40.0, n),  # from the pedicle–lamina junction to the tip
        "transverse_half_w": u(4.0, 6.0, n),
        "transverse_half_h": u(4.0, 5.5, n),
        "transverse_angle": np.deg2rad(u(0.0, 20.0, n)),  # pointing slightly backwards
        "broken": bool(rng.random() < P_BROKEN_ARCH),
        "broken_level": int(rng.choice(n, p=BROKEN_ARCH_LEVEL_P)),
        "broken_side": 1.0 if rng.random() < 0.5 else -1.0,
        "cut_angle": np.deg2rad(u(40.0, 60.0)),  # posterolateral: on the lamina, between the processes
        "cut_mm": u(2.0, 4.0),
        "connected": bool(rng.random() < P_COLUMN_CONNECTED),
        "gap_draw": rng.random(n - 1),
        "gap_upper": rng.random(n - 1) < 0.5,  # the disc lets go of the vertebra above (else below)
        "gap_mm": u(2.0, 4.0, n - 1),
    }
    # Open levels never share a vertebra: one vertebra between two gaps would be too thin at 32³.
    gaps = np.zeros(n - 1, dtype=bool)
    if not p["connected"]:
        for rank, k in enumerate(np.argsort(p["gap_draw"])):
            if rank == 0 or (p["gap_draw"][k] < P_EXTRA_GAP and not gaps[max(k - 1, 0) : k + 2].any()):
                gaps[k] = True
    p["gaps"] = gaps

    # Anchor: the middle of the column's bounding box, so it sits centred in the field of view.
    back = depth.max() / 2 + 1.7 * p["foramen_b"].max() + p["lamina"].max() + p["spinous_len"].max()
    sag = (1.0 - np.cos(kappa * centre_s[0])) / kappa
    anchor = np.array([0.0, (depth.max() / 2 - back) / 2 - sag / 2, 0.0])
    p["placement"] = random_placement(
        rng, anchor, rot_sd_deg=3.0, rot_max_deg=6.0, shift_mm=4.0, scale_range=(0.95, 1.05), warp_mm=1.5
    )
    return p


def _disc_space(p: dict, k: int, h: float) -> tuple[float, float, float]:
    """(space between the bodies, gap between disc and vertebra, space between the arches) at level ``k``, mm.

    The arches are at least two voxels apart, so neighbouring vertebrae never touch; an open level
    widens the space between the bodies to hold a disc of at least 1.25 voxels beside a gap of at
    least 2.5 voxels.
    """
    d = float(p["disc"][k])
    apart = max(d, 2.0 * h)
    if not p["gaps"][k]:
        return apart, 0.0, apart
    gap = max(float(p["gap_mm"][k]), 2.5 * h)
    return max(d, gap + 1.25 * h), gap, apart


def _vertebra(
    x: np.ndarray, p: dict, i: int, h: float, inside: np.ndarray, near: np.ndarray
) -> np.ndarray:
    """Vertebra ``i`` (body, arch and processes; one component).

    ``inside`` is the region the vertebra may occupy, ``near`` (a part of it) the region its body and
    everything within a voxel of the body may occupy: beside an open disc level the bodies give up room
    for the gap, while the arch keeps its full height.
    """
    centre, rot = _frame(p["kappa"], p["centre_s"][i])
    q = in_frame(x, centre, rot)
    qx, qy, qz = q[0], q[1], q[2]
    half_w, half_d = p["width"][i] / 2, p["depth"][i] / 2
    # An elliptic cylinder whose front is slightly concave (waisted), full size at the endplates. The
    # back stays straight: a waist there would groove the body under the pedicles, a tunnel at 32³.
    waist = 1.0 - p["waist"][i] * (1.0 - np.minimum((qz / np.float32(p["height"][i] / 2)) ** 2, 1.0))
    body = near & (ellipse_level(qx, qy / np.where(qy > 0, waist, np.float32(1.0)), half_w, half_d) <= 1.0)
    allowed = inside & (near | (ellipse_level(qx, qy, half_w + h, half_d + h) > 1.0))

    # Arch: an elliptic ring around the canal; its front dips into the body, which closes the loop.
    # Minimum sizes in voxels keep the loop (and the hole inside it) at coarse grids.
    a, b = max(p["foramen_a"][i], 1.5 * h), max(p["foramen_b"][i], 1.25 * h)
    tp, tl = max(p["pedicle"][i], 1.5 * h), max(p["lamina"][i], 1.5 * h)
    y_f = -p["depth"][i] / 2 - 0.7 * b
    dz = qz - np.float32(p["arch_z"][i])
    level = max(p["arch_half"][i], 1.1 * h)
    slab = np.abs(dz) <= level
    ry = qy - np.float32(y_f)
    inner = ellipse_level(qx, ry, a, b) <= 1.0
    band = slab & (ellipse_level(qx, ry, a + tp, b + tl) <= 1.0) & ~inner

    # Spinous process: a tapered plate from the middle of the lamina, backwards and a little down.
    c, s = np.cos(p["spinous_tilt"][i]), np.sin(p["spinous_tilt"][i])
    back = np.float32(y_f - b - 0.5 * tl) - qy
    along = c * back - s * dz
    across = s * back + c * dz
    length = p["spinous_len"][i] + 0.5 * tl
    half_hs = max(p["spinous_half_h"][i], 1.1 * h) * (1.0 - 0.35 * along / np.float32(length))
    spinous = (along >= 0) & (along <= length) & (np.abs(across) <= half_hs)
    spinous &= (np.abs(qx) <= max(p["spinous_half_w"][i], h)) & (ry <= -b)  # never inside the canal

    # Transverse processes: bars from the pedicle–lamina junction (the middle of the ring half-way
    # behind the canal's centre), sideways and slightly back. They stay clear of the body by more than a
    # voxel diagonal: at coarse grids the bars are thick, and one touching the body corner to corner
    # would close a second loop around the pedicle.
    arch = band | spinous
    ca, sa = np.cos(p["transverse_angle"][i]), np.sin(p["transverse_angle"][i])
    w_t, h_t = max(p["transverse_half_w"][i], h), max(p["transverse_half_h"][i], h)
    root_x = 0.5 * (a * np.sqrt(0.75) + (a + tp) * np.sqrt(1.0 - (0.5 * b / (b + tl)) ** 2))
    rt = ry + np.float32(0.5 * b)
    clear = (ellipse_level(qx, qy, half_w + 1.8 * h, half_d + 1.8 * h) > 1.0) & ~inner & (np.abs(dz) <= h_t)
    for side in (1.0, -1.0):
        along = side * ca * (qx - np.float32(side * root_x)) - sa * rt
        across = sa * side * (qx - np.float32(side * root_x)) + ca * rt
        arch |= clear & (along >= 0) & (along <= p["transverse_len"][i]) & (np.abs(across) <= w_t)
    arch &= allowed

    if p["broken"] and p["broken_level"] == i:
        # A unilateral defect of the lamina: a strip along a posterolateral ray from the canal's centre.
        side, psi = p["broken_side"], p["cut_angle"]
        rx, ry_dir = side * np.cos(psi), -np.sin(psi)
        gap = max(p["cut_mm"], 2.5 * h)
        along = rx * qx + ry_dir * ry
        across = rx * ry - ry_dir * qx
        cut = (along > 0) & (np.abs(across) < gap / 2)
        arch &= ~cut
        # Voxel guarantee: the two ends of the lamina share no voxel corner.
        ahead = arch & (across > 0) & (along > 0)
        arch &= ~(dilate26(arch & (across < 0) & (along > 0)) & ahead & ~body)
    return largest_component(body | arch)  # x is already cropped to this vertebra


def _extent(p: dict, i: int, h: float) -> tuple[np.ndarray, np.ndarray]:
    """A box (lo, hi corners, mm, in the vertebra's frame) that holds vertebra ``i`` at voxel size ``h``."""
    a, b = max(p["foramen_a"][i], 1.5 * h), max(p["foramen_b"][i], 1.25 * h)
    tp, tl = max(p["pedicle"][i], 1.5 * h), max(p["lamina"][i], 1.5 * h)
    side = max(p["width"][i] / 2, a + tp + p["transverse_len"][i] + max(p["transverse_half_w"][i], h))
    back = p["depth"][i] / 2 + 1.7 * b + tl + p["spinous_len"][i] + max(p["spinous_half_h"][i], 1.1 * h)
    # Between the disc planes, which tilt away from the vertebra's axis by the lordosis between them.
    below = p["height"][i] / 2 + (p["disc"][i] / 2 if i < len(p["height"]) - 1 else 0.0)
    above = p["height"][i] / 2 + (p["disc"][i - 1] / 2 if i > 0 else 0.0)
    lean = back * np.tan(p["kappa"] * max(below, above))
    margin = 2.0 + h
    return (
        np.array([-side - margin, -back - margin, -below - lean - margin]),
        np.array([side + margin, p["depth"][i] / 2 + margin, above + lean + margin]),
    )


def _disc(x: np.ndarray, p: dict, k: int, h: float, space: float, gap: float) -> np.ndarray:
    """The disc at level ``k`` (between vertebrae k and k+1): an elliptic slab in the disc's own frame.

    Its rim stays at least 0.75 voxel inside both bodies' rims, so every voxel of its top and bottom
    faces has body right above or below it: the contact is the whole face, and the differently tilted
    rims of disc and body cannot interleave into small tunnels.
    """
    centre, rot = _frame(p["kappa"], p["disc_s"][k])
    q = in_frame(x, centre, rot)
    r_x = min(p["width"][k : k + 2].min() / 2 - 0.75 * h, 0.95 * p["width"][k : k + 2].mean() / 2)
    r_y = min(p["depth"][k : k + 2].min() / 2 - 0.75 * h, 0.95 * p["depth"][k : k + 2].mean() / 2)
    lo, hi = -space / 2, space / 2
    if gap:
        if p["gap_upper"][k]:
            hi -= gap
        else:
            lo += gap
    return (q[2] >= lo) & (q[2] <= hi) & (ellipse_level(q[0], q[1], r_x, r_y) <= 1.0)


def generate(rng: np.random.Generator, size: int) -> tuple[LabelMap, dict]:
    """One lumbar spine at size³: (label map, {"column_connected", "broken_arches", "disc_gaps"})."""
    size = check_size(size)
    p = _draw(rng)
    pl = p["placement"]
    x, h = pl.template_grid(size, FOV_MM)  # h: voxel size in template mm
    n = len(VERTEBRAE)

    spaces = [_disc_space(p, k, h) for k in range(n - 1)]
    planes = [_frame(p["kappa"], s_k) for s_k in p["disc_s"]]  # middle plane of each disc level

    # Each part is drawn on the sub-box of the grid that holds it, so the work per part does not grow
    # with the whole field of view.
    vertebrae = []
    for i in range(n):
        c, r = _frame(p["kappa"], p["centre_s"][i])
        half_h = p["height"][i] / 2
        box = _grid_box(pl, size, c, r, *_extent(p, i, h))
        xb = x[(slice(None), *box)]
        # Signed distances to the disc planes (positive upwards): the arch keeps two voxels from its
        # neighbours, the body (and a voxel around it) also the room an open disc level needs.
        if i == 0:
            inside = near = _plane(xb, c, r[:, 2]) <= half_h
        else:
            above = _plane(xb, planes[i - 1][0], planes[i - 1][1][:, 2])
            inside, near = above < -spaces[i - 1][2] / 2, above < -spaces[i - 1][0] / 2
        if i == n - 1:
            end = _plane(xb, c, r[:, 2]) >= -half_h
        else:
            below = _plane(xb, planes[i][0], planes[i][1][:, 2])
            end = below > spaces[i][2] / 2
            near = near & (below > spaces[i][0] / 2)
        v = np.zeros(x.shape[1:], dtype=bool)
        v[box] = _vertebra(xb, p, i, h, inside & end, near & end)
        vertebrae.append(v)
    # Voxel guarantee: neighbours share no voxel corner (the slabs already keep them 2 voxels apart).
    for i in range(1, n):
        vertebrae[i] = _largest(vertebrae[i] & ~dilate26(vertebrae[i - 1]))

    discs = []
    for k in range(n - 1):
        c, r = planes[k]
        reach = np.array([30.0, 22.0, spaces[k][0] / 2 + 2 * h])
        box = _grid_box(pl, size, c, r, -reach, reach)
        d = np.zeros(x.shape[1:], dtype=bool)
        d[box] = _disc(x[(slice(None), *box)], p, k, h, *spaces[k][:2])
        if p["gaps"][k]:
            apart = vertebrae[k] if p["gap_upper"][k] else vertebrae[k + 1]
            d &= ~dilate26(dilate26(apart))  # at least two background voxels, whatever the pose
        discs.append(_largest(d))

    vol = np.zeros(x.shape[1:], dtype=np.uint8)
    for d in discs:
        paint(vol, d, LABELS["intervertebral_disc"])
    for name, v in zip(VERTEBRAE, vertebrae):
        paint(vol, v, LABELS[name])

    flags = {
        "column_connected": not bool(p["gaps"].any()),
        "broken_arches": [VERTEBRAE[p["broken_level"]]] if p["broken"] else [],
        "disc_gaps": [LEVELS[k] for k in range(n - 1) if p["gaps"][k]],
    }
    return LabelMap(vol, grid_affine(size, FOV_MM, CENTRE_MM), dict(LABELS)), flags


def _grid_box(pl, size: int, origin: np.ndarray, rot: np.ndarray, lo, hi) -> tuple[slice, slice, slice]:
    """Index box of the grid voxels whose template coordinates can fall in a box of a local frame.

    The local box [lo, hi] (mm, frame ``rot`` at ``origin``) is mapped to the grid through the case
    pose, padded by the largest displacement of the warp and a voxel.
    """
    corners = np.array([[u, v, w] for u in (lo[0], hi[0]) for v in (lo[1], hi[1]) for w in (lo[2], hi[2])])
    pts = origin + corners @ np.asarray(rot).T - pl.anchor
    world = pl.scale * pts @ pl.rotation.T + pl.translation  # mm from the grid centre
    hw = FOV_MM / size
    pad = (pl.scale * np.linalg.norm(pl.warp.amplitudes, axis=1).sum()) / hw + 1.0
    first = np.floor(world.min(axis=0) / hw + (size - 1) / 2 - pad).astype(int)
    last = np.ceil(world.max(axis=0) / hw + (size - 1) / 2 + pad).astype(int)
    return tuple(slice(max(int(f), 0), min(int(t) + 1, size)) for f, t in zip(first, last))


def _box(mask: np.ndarray) -> tuple[slice, slice, slice]:
    """Bounding box of the true voxels of ``mask`` (empty slices when there are none)."""
    out = []
    for d in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != d)))
        out.append(slice(int(hit[0]), int(hit[-1]) + 1) if hit.size else slice(0, 0))
    return tuple(out)


def _largest(mask: np.ndarray) -> np.ndarray:
    """``largest_component`` computed on the bounding box of ``mask`` only."""
    box = _box(mask)
    out = np.zeros_like(mask)
    out[box] = largest_component(mask[box])
    return out


def _plane(x: np.ndarray, point: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Signed distance (mm) of every point of x to the plane through ``point`` with unit ``normal``."""
    nrm = np.asarray(normal, dtype=np.float32)
    pt = np.asarray(point, dtype=np.float32)
    return nrm[0] * (x[0] - pt[0]) + nrm[1] * (x[1] - pt[1]) + nrm[2] * (x[2] - pt[2])


COLUMN = [*VERTEBRAE, "intervertebral_disc"]
SYSTEM = PhantomSystem(
    name="spine",
    labels=LABELS, fov_mm=FOV_MM, generate=generate,
    topology_checks=[
        TopologyCheck("column connected", COLUMN, {0: 1}),
        TopologyCheck("all foramina intact", COLUMN, {1: 5}),
        TopologyCheck("vertebrae connectivity", COLUMN, {0: 1, 1: 5}),
    ],
    description="lumbar vertebrae L1–L5 with discs; arches intact or one broken, discs bridging or a level open",
)
