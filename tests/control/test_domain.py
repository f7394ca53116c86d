import numpy as np
import pytest
import torch
from helpers import ball, oblique_affine

from anatomica.control.domain import ControlDomain, place_global
from anatomica.control.placement import centerline, contact_region, place_box, place_lines, place_planes
from anatomica.coords import grid_points, normalized_to_world, voxel_to_normalized
from anatomica.errors import AnatomicaError

SHAPE = (21, 25, 29)  # non-cubic on purpose


def rot(axis: int, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    i, j = [k for k in range(3) if k != axis]
    R = np.eye(3)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    return R


def norm_pts(ijk, shape=SHAPE) -> np.ndarray:
    return voxel_to_normalized(torch.as_tensor(np.asarray(ijk, dtype=np.float64)), shape).numpy()


def test_points_follow_the_affine_map_and_flatten_size_one_axes():
    R = rot(2, 0.3) @ rot(0, -0.7)
    d = ControlDomain((4, 3, 1), R, [0.2, 0.5, 0.9], [0.1, -0.2, 0.3])
    pts = d.points(torch.float64).numpy()
    template = grid_points((4, 3, 1), torch.float64).numpy()
    assert np.allclose(template[:, 2], 0.0)
    assert np.allclose(pts, template @ (R @ np.diag([0.2, 0.5, 0.9])).T + [0.1, -0.2, 0.3])
    assert d.dim == 2 and d.num_points == 12


def test_global_domain_samples_every_voxel_centre():
    d = place_global(SHAPE)
    ijk = np.argwhere(np.ones(SHAPE, bool))
    assert np.allclose(d.points(torch.float64).numpy(), norm_pts(ijk))


def test_yaml_round_trip_and_world_coordinates():
    d = ControlDomain((5, 1, 3), rot(1, 0.4), [0.3, 1.0, 0.2], [0.0, 0.1, -0.1], name="plane")
    back = ControlDomain.from_yaml(d.to_yaml())
    assert back.name == "plane" and back.size == d.size
    assert np.allclose(back.points(torch.float64), d.points(torch.float64))
    A = oblique_affine()
    expected = normalized_to_world(d.points(torch.float64), A, SHAPE).numpy()
    assert np.allclose(d.to_world(A, SHAPE), expected)


def test_cell_measure_is_voxel_volume_area_or_length():
    A = oblique_affine()
    assert np.isclose(place_global(SHAPE).cell_measure(A, SHAPE), abs(np.linalg.det(A[:3, :3])))
    # an axis-aligned plane through voxel centres on axes 0 and 1: one cell = the parallelogram of two columns
    plane = ControlDomain((SHAPE[0], SHAPE[1], 1), np.eye(3), [1, 1, 1], [0, 0, 0])
    assert np.isclose(plane.cell_measure(A, SHAPE), np.linalg.norm(np.cross(A[:3, 0], A[:3, 1])))
    line = ControlDomain((SHAPE[2], 1, 1), rot(1, np.pi / 2), [1, 1, 1], [0, 0, 0])  # runs along axis 2
    assert np.isclose(line.cell_measure(A, SHAPE), np.linalg.norm(A[:3, 2]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rotation=np.diag([1.0, 2.0, 1.0])), "not orthonormal"),
        (dict(rotation=np.diag([1.0, 1.0, -1.0])), "reflection"),
        (dict(scale=[1.0, 0.0, 1.0]), "scale must be > 0"),
        (dict(scale=[1.0, -1.0, 1.0]), "scale must be > 0"),
        (dict(size=(4, 0, 2)), "grid must be"),
    ],
)
def test_bad_domains_are_rejected(kwargs, message):
    args = dict(size=(3, 3, 3), rotation=np.eye(3), scale=[1.0, 1.0, 1.0], translation=[0.0, 0.0, 0.0])
    args.update(kwargs)
    with pytest.raises(AnatomicaError, match=message):
        ControlDomain(**args)


def test_malformed_domain_yaml():
    with pytest.raises(AnatomicaError, match="malformed YAML"):
        ControlDomain.from_yaml("size: [3, 3\nrotation: x")
    with pytest.raises(AnatomicaError, match="missing field 'scale'"):
        ControlDomain.from_yaml("size: [3, 3, 3]\nrotation: [[1,0,0],[0,1,0],[0,0,1]]\ntranslation: [0,0,0]")


def test_axis_aligned_box_covers_the_label_with_margin():
    mask = np.zeros(SHAPE, bool)
    mask[4:9, 10:20, 3:6] = True
    d = place_box(mask, (6, 6, 6), margin=0.0)
    lo, hi = norm_pts([4, 10, 3]), norm_pts([8, 19, 5])
    step = 2.0 / (np.array(SHAPE) - 1)
    assert np.allclose(d.translation, (lo + hi) / 2)
    assert np.allclose(d.scale, (hi - lo) / 2 + step / 2)  # to the voxels' outer faces
    d2 = place_box(mask, (6, 6, 6), margin=0.5)
    assert np.allclose(d2.scale, 1.5 * d.scale)


def test_oriented_box_follows_the_principal_axes():
    # a thin rod along the direction (1, 1, 0) in voxel steps
    mask = np.zeros((31, 31, 31), bool)
    for k in range(-10, 11):
        mask[15 + k, 15 + k, 14:17] = True
    d = place_box(mask, (8, 4, 4), margin=0.1, oriented=True)
    assert abs(abs(d.rotation[:, 0] @ np.array([1, 1, 0]) / np.sqrt(2)) - 1) < 1e-6
    assert d.scale[0] > 3 * d.scale[1]
    # every voxel centre of the rod is inside the box
    pts = norm_pts(np.argwhere(mask), (31, 31, 31))
    local = (pts - d.translation) @ d.rotation
    assert np.all(np.abs(local) <= d.scale + 1e-9)


def test_contact_region_is_the_interface_of_two_labels():
    a = np.zeros(SHAPE, bool)
    b = np.zeros(SHAPE, bool)
    a[2:10, 5:15, 5:15] = True
    b[10:18, 5:15, 5:15] = True
    c = contact_region(a, b)
    assert set(np.unique(np.argwhere(c)[:, 0])) == {9, 10}
    assert not contact_region(a, np.roll(b, 3, axis=0)).any()


def test_centerline_of_a_straight_tube_runs_end_to_end():
    mask = np.zeros(SHAPE, bool)
    x, y, z = np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij")
    mask[((x - 10) ** 2 + (y - 12) ** 2 <= 9) & (z >= 3) & (z <= 25)] = True
    path = centerline(mask)
    assert np.ptp(path[:, 2]) >= 18  # thinning shortens the ends a little
    assert np.abs(path[:, 0] - 10).max() <= 1 and np.abs(path[:, 1] - 12).max() <= 1
    assert np.all(np.linalg.norm(np.diff(path, axis=0), axis=1) <= np.sqrt(3) + 1e-9)


def test_planes_are_perpendicular_to_a_curved_centerline():
    # a quarter torus tube in the (0, 1) plane centred at voxel (0, 0, 14), radius 15, tube radius 3
    shape = (24, 24, 29)
    x, y, z = np.meshgrid(*[np.arange(s, dtype=float) for s in shape], indexing="ij")
    r = np.sqrt(x**2 + y**2)
    mask = (r - 15) ** 2 + (z - 14) ** 2 <= 9
    planes = place_planes(mask, (9, 9, 1), [0.25, 0.5, 0.75], margin=1.0, name="arch")
    assert [p.name for p in planes] == ["arch_0", "arch_1", "arch_2"]
    step = 2.0 / (np.array(shape) - 1)
    for p in planes:
        centre = (p.translation + 1) / step  # back to voxel units (cubic-enough grid for the angle check)
        radial = np.array([centre[0], centre[1], 0.0]) / np.hypot(centre[0], centre[1])
        tangent = np.array([-radial[1], radial[0], 0.0])
        normal = p.rotation[:, 2] / step  # normalized -> voxel direction
        normal /= np.linalg.norm(normal)
        assert abs(abs(normal @ tangent) - 1) < 0.05
        assert abs(np.hypot(centre[0], centre[1]) - 15) < 1.5 and abs(centre[2] - 14) < 1.0
        # half-width = local tube radius (3 voxels) × (1 + margin)
        assert 2 * 2.0 * step.min() <= p.scale[0] <= 2 * 4.5 * step.max()
    # fraction 0 starts where the default rule says, and a grid with a third axis > 1 is refused
    with pytest.raises(AnatomicaError, match=r"grid \[α, β, 1\]"):
        place_planes(mask, (9, 9, 2), [0.5])


def test_lines_radiate_from_the_centroid():
    c = (10, 12, 14)
    centre_mask = ball(SHAPE, c, 3)
    extent = ball(SHAPE, c, 8)
    lines = place_lines(centre_mask, extent, (16, 1, 1), count=4, normal=[0, 0, 1], margin=0.0, name="wall")
    assert len(lines) == 4
    cn = norm_pts(c)
    dirs = []
    for d in lines:
        pts = d.points(torch.float64).numpy()
        assert np.allclose(pts[0], cn, atol=1e-9)  # starts at the centroid
        reach_vox = np.linalg.norm((pts[-1] - cn) / (2.0 / (np.array(SHAPE) - 1)))
        assert 7.5 <= reach_vox <= 9.0  # the ball's radius, plus half a voxel
        dirs.append(d.rotation[:, 0])
    dirs = np.array(dirs)
    assert np.allclose(dirs[:, 2], 0.0)
    assert np.allclose(dirs @ dirs.T, [[1, 0, -1, 0], [0, 1, 0, -1], [-1, 0, 1, 0], [0, -1, 0, 1]], atol=1e-9)
    given = place_lines(centre_mask, extent, (8, 1, 1), directions=[[0, 1, 0]], length_mm=10.0, affine=np.diag([2.0, 2.0, 2.0, 1.0]))
    pts = given[0].points(torch.float64).numpy()
    assert np.isclose(np.linalg.norm((pts[-1] - pts[0]) / (2.0 / (np.array(SHAPE) - 1))) * 2.0, 10.0)


def test_placement_helpers_still_import_from_domain():
    from anatomica.control import domain, placement

    assert domain.place_box is placement.place_box and domain.centerline is placement.centerline
