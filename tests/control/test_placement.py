"""Placement in a metric frame: domains orthogonal in mm on anisotropic, non-cubic volumes (issue 11, item 4)."""

import numpy as np
import pytest
import torch

from anatomica.control.domain import ControlDomain
from anatomica.control.placement import place_box, place_lines, place_planes, principal_axes
from anatomica.frame import Frame

SPACING = (1.0, 1.0, 2.5)
SHAPE = (40, 32, 40)  # non-cubic: spacing × (shape − 1) = 39, 31, 97.5 mm
FRAME = Frame(SHAPE, np.diag([*SPACING, 1.0]))


def world_axes(d: ControlDomain, frame: Frame = FRAME) -> np.ndarray:
    """The domain's template axes in mm (columns): L·A."""
    return frame.linear @ d.matrix


def angle_deg(a, b) -> float:
    c = abs(np.dot(a, b)) / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def mm_grid(shape=SHAPE, spacing=SPACING):
    return np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij"), -1)


def tube(direction_mm, radius_mm=3.0, centre_mm=(19.5, 15.5, 48.75), half_length_mm=18.0) -> np.ndarray:
    """A straight solid cylinder in mm along ``direction_mm`` through ``centre_mm``."""
    d = np.asarray(direction_mm, float) / np.linalg.norm(direction_mm)
    r = mm_grid() - np.asarray(centre_mm)
    along = r @ d
    perp = np.linalg.norm(r - along[..., None] * d, axis=-1)
    return (perp <= radius_mm) & (np.abs(along) <= half_length_mm)


def test_oriented_box_axes_are_orthogonal_in_mm_and_follow_the_rod():
    rod = tube((1.0, 0.0, 1.0), radius_mm=2.0)
    d = place_box(rod, (8, 4, 4), margin=0.1, oriented=True, frame=FRAME)
    axes = world_axes(d)
    G = axes.T @ axes
    off = G / np.sqrt(np.outer(np.diag(G), np.diag(G)))
    for i, j in ((0, 1), (0, 2), (1, 2)):
        assert abs(90.0 - np.degrees(np.arccos(abs(off[i, j])))) < 1e-6  # orthogonal in mm
    assert angle_deg(axes[:, 0], (1.0, 0.0, 1.0)) < 2.0  # the long axis is the rod's, in mm
    # the same box built in normalized coordinates (the old way) is far from orthogonal in mm
    u = FRAME.from_metric(FRAME.voxels_to_metric(np.argwhere(rod)))
    R_norm = principal_axes(u)
    old = FRAME.linear @ R_norm
    assert max(abs(90 - angle_deg(old[:, i], old[:, j])) for i, j in ((0, 1), (0, 2), (1, 2))) > 5.0
    # every voxel centre of the rod lies in the box
    local = d.template_coordinates(u)
    assert np.all(np.abs(local) <= 1.0 + 1e-9)


@pytest.mark.parametrize("direction", [(1.0, 0.4, 1.0), (0.0, 1.0, 1.0), (1.0, 1.0, 0.3)])
def test_plane_is_perpendicular_to_an_oblique_tube_within_one_degree(direction):
    mask = tube(direction)
    (p,) = place_planes(mask, (9, 9, 1), [0.5], margin=1.0, frame=FRAME)
    axes = world_axes(p)
    normal = np.cross(axes[:, 0], axes[:, 1])  # the plane's normal in mm
    assert angle_deg(normal, direction) < 1.0
    # its half-width is the tube's radius (3 mm) × 2 in mm along both in-plane axes
    assert np.allclose(np.linalg.norm(axes[:, :2], axis=0), 6.0, atol=1.5)
    # the plane's points lie in the tube's middle cross-section, centred on the axis
    pts_mm = FRAME.to_world(p.points(torch.float64).numpy())
    centre = np.array([19.5, 15.5, 48.75])
    d = np.asarray(direction) / np.linalg.norm(direction)
    assert np.abs((pts_mm - centre) @ d).max() < 3.0
    assert np.linalg.norm(pts_mm.mean(0) - centre - ((pts_mm.mean(0) - centre) @ d) * d) < 1.0


def test_rays_are_at_equal_angles_in_mm_and_as_long_as_asked():
    centre = np.zeros(SHAPE, bool)
    centre[18:22, 14:18, 18:21] = True
    lines = place_lines(centre, centre, (12, 1, 1), count=6, normal=[0, 0, 1], length_mm=10.0, frame=FRAME)
    dirs = np.array([world_axes(d)[:, 0] for d in lines])
    lengths = np.linalg.norm(dirs, axis=1) * 2.0  # template spans [-1, 1]: the ray is 2·|L·A e0| long
    assert np.allclose(lengths, 10.0)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    assert np.allclose(dirs[:, 2], 0.0, atol=1e-12)  # in the plane ⟂ the normal, in mm
    cos = dirs @ np.roll(dirs, -1, axis=0).T
    assert np.allclose(np.diag(cos), np.cos(np.pi / 3))  # 60° between neighbours
    # given directions are components along the array axes in mm: [1, 0, 1] is 45° in mm, not in voxels
    (ray,) = place_lines(centre, centre, (12, 1, 1), directions=[[1, 0, 1]], length_mm=10.0, frame=FRAME)
    assert angle_deg(world_axes(ray)[:, 0], (1, 0, 1)) < 1e-9


def test_an_isotropic_cubic_frame_keeps_the_papers_form():
    """When spacing × (shape − 1) is equal on every axis, a domain placed in mm is R·diag(s) (no shear)."""
    frame = Frame((33, 33, 33), np.diag([2.0, 2.0, 2.0, 1.0]))
    rod = np.zeros(frame.shape, bool)
    for k in range(-10, 11):
        rod[16 + k, 16 + k // 2, 15:18] = True
    d = place_box(rod, (8, 4, 4), oriented=True, frame=frame)
    assert d.shear is None
    (p,) = place_planes(rod, (5, 5, 1), [0.5], frame=frame)
    assert p.shear is None


def test_general_affine_domains_round_trip_and_keep_their_points():
    A = np.array([[0.3, 0.1, 0.0], [0.0, 0.2, 0.05], [0.02, 0.0, 0.4]])
    d = ControlDomain.from_matrix((4, 3, 5), A, [0.1, -0.2, 0.0], "sheared")
    assert np.allclose(d.matrix, A)
    back = ControlDomain.from_yaml(d.to_yaml())
    assert np.allclose(back.points(torch.float64), d.points(torch.float64))
    # a left-handed map reverses one template axis: the same set of points
    flipped = ControlDomain.from_matrix((4, 3, 1), A @ np.diag([1, 1, -1]), [0, 0, 0])
    ref = ControlDomain.from_matrix((4, 3, 1), A, [0, 0, 0])
    assert np.linalg.det(flipped.rotation) > 0
    assert np.allclose(np.sort(flipped.points(torch.float64).numpy(), 0), np.sort(ref.points(torch.float64).numpy(), 0))


@pytest.mark.parametrize("bad", [np.zeros((3, 3)), np.full((3, 3), np.nan)])
def test_singular_or_non_finite_affines_are_refused(bad):
    from anatomica.errors import AnatomicaError

    with pytest.raises(AnatomicaError, match="affine matrix"):
        ControlDomain.from_matrix((3, 3, 3), bad, [0, 0, 0])


def test_explicit_placement_in_mm_is_orthogonal_and_where_asked():
    """`kind: explicit` with centre_mm / half_size_mm / axes: a box oblique in mm on the anisotropic, non-cubic
    frame, its centre at the world point, its half extents in mm along the given directions; no reference."""
    from anatomica.control.spec import parse_task, resolve_task

    c, s = float(np.cos(np.radians(30))), float(np.sin(np.radians(30)))
    axes = [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]]
    text = ("name: t\ndomains:\n  - name: a\n    labels: [blob]\n    grid: [8, 8, 8]\n"
            f"    placement: {{kind: explicit, centre_mm: [20, 15, 50], half_size_mm: [10, 5, 20], axes: {axes}}}\n")
    task = resolve_task(parse_task(text), None, {"blob": 1}, SHAPE, FRAME.affine)
    d = task.domains[0].domain
    A = world_axes(d)
    assert np.allclose(np.linalg.norm(A, axis=0), [10, 5, 20])
    assert angle_deg(A[:, 0], A[:, 1]) == pytest.approx(90.0, abs=1e-6) and angle_deg(A[:, 0], A[:, 2]) == pytest.approx(90.0, abs=1e-6)
    assert np.allclose(A[:, 0] / 10, axes[0]) and np.allclose(A[:, 1] / 5, axes[1])
    centre = FRAME.to_world(d.points(torch.float64).numpy().mean(0))
    assert np.allclose(centre, [20, 15, 50])


@pytest.mark.parametrize("fields, message", [
    ("scale: [0.5, 0.5, 0.5], centre_mm: [1, 1, 1], half_size_mm: [2, 2, 2]", "not both"),
    ("centre_mm: [1, 1, 1]", "needs both centre_mm and half_size_mm"),
    ("translation: [0, 0, 0]", "needs scale"),
    ("centre_mm: [1, 1, 1], half_size_mm: [2, 0, 2]", "must be > 0"),
])
def test_explicit_placement_takes_one_form(fields, message):
    from anatomica.control.spec import parse_task
    from anatomica.errors import AnatomicaError

    with pytest.raises(AnatomicaError, match=message):
        parse_task(f"name: t\ndomains:\n  - name: a\n    labels: [blob]\n    placement: {{kind: explicit, {fields}}}\n")
