"""1-NNA on surface point clouds: surface sampling, Chamfer distance, and the leave-one-out accuracy's extremes."""

import numpy as np
import pytest
from helpers import ball, oblique_affine

from anatomica.errors import AnatomicaError
from anatomica.metrics.nna import chamfer_distance, one_nna, one_nna_from_distances, one_nna_label_maps, surface_points


def test_surface_points_lie_on_the_boundary_in_world_mm():
    shape, centre, r = (20, 22, 24), np.array([10.0, 11.0, 12.0]), 6.0
    mask = ball(shape, centre, r)
    pts = surface_points(mask, n=100000)
    d = np.linalg.norm(pts - centre, axis=1)
    assert d.max() <= r + 1e-9 and d.min() > r - 1.8  # one voxel shell (6-neighbourhood boundary)
    assert len(pts) < mask.sum()
    A = oblique_affine()
    world = surface_points(mask, A, n=50, seed=3)
    assert len(world) == 50
    np.testing.assert_allclose(world, surface_points(mask, A, n=50, seed=3))  # seeded subset
    ijk = np.linalg.solve(A[:3, :3], (world - A[:3, 3]).T).T
    assert np.allclose(ijk, np.rint(ijk)) and mask[tuple(np.rint(ijk).astype(int).T)].all()
    assert len(surface_points(np.zeros(shape, bool))) == 0
    with pytest.raises(AnatomicaError, match="3D mask"):
        surface_points(np.ones((4, 4), bool))


def test_chamfer_distance_is_symmetric_and_measures_a_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 3))
    a[:, 2] = 0.0  # a flat cloud shifted along its normal: every nearest neighbour is the shifted twin
    assert chamfer_distance(a, a) == 0.0
    b = a + np.array([0.0, 0.0, 50.0])
    assert chamfer_distance(a, b) == pytest.approx(50.0) and chamfer_distance(b, a) == chamfer_distance(a, b)
    assert chamfer_distance(np.zeros((0, 3)), np.zeros((0, 3))) == 0.0
    assert chamfer_distance(a, np.zeros((0, 3))) > 1e20


def test_one_nna_extremes():
    shape = (24, 24, 24)
    small = [ball(shape, (12, 12, 12 + k * 0.3), 4) for k in range(4)]
    large = [ball(shape, (12, 12, 12 + k * 0.3), 9) for k in range(4)]
    assert one_nna_label_maps(small, large, [1]) == 1.0  # two clearly different populations
    pts = [surface_points(m) for m in small]
    assert one_nna(pts, [p.copy() for p in pts]) == 0.0  # each real shape's nearest is its generated copy
    D = np.array([[0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1], [3, 2, 1, 0]], float)
    assert one_nna_from_distances(D, [True, False, True, False]) == 0.0
    assert one_nna_from_distances(D, [True, True, False, False]) == 1.0
    with pytest.raises(AnatomicaError, match="at least one real and one generated"):
        one_nna(pts, [])
    with pytest.raises(AnatomicaError, match="does not match"):
        one_nna_from_distances(D, [True, False])
