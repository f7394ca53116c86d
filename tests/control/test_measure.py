"""One measurement of a domain (control.measure): units, targets, and Betti numbers of the label map itself."""

import numpy as np
import pytest
import torch
from helpers import ball, oblique_affine, solid_torus

from anatomica.control.domain import ControlDomain, domain_mask, place_global
from anatomica.control.measure import label_map_betti, measure_label_map
from anatomica.control.moments import GeometryTarget
from anatomica.control.potential import DomainTask, Task
from anatomica.frame import Frame
from anatomica.metrics.geometry import substructure_betti, task_errors

SHAPE = (64, 64, 64)


def deposit_task(grid=(48, 48, 48)) -> Task:
    """A global domain on a grid coarser than the map, as the packaged calcium-count task on 64³ phantoms."""
    return Task("calcium", [DomainTask("calcium", (5,), place_global(grid, "calcium"), betti=(2, 0, 0))],
                shape=SHAPE, affine=np.diag([1.5, 1.5, 1.5, 1.0]))


@pytest.mark.parametrize("ijk", [(0, 0, 0), (10, 20, 30), (31, 31, 32), (33, 17, 5), (63, 63, 63), (1, 62, 40), (47, 48, 49), (20, 21, 22)])
def test_a_single_voxel_deposit_is_one_component_wherever_it_lies(ijk):
    a = np.zeros(SHAPE, np.uint8)
    a[ijk] = 5
    task = deposit_task()
    assert task_errors(task, a)["calcium"]["betti"] == [1, 0, 0]
    (m,) = measure_label_map(task, a)
    assert m.betti == [1, 0, 0] and "label map" in m.betti_source


def test_the_resampled_grid_loses_deposits_the_label_map_keeps():
    """Issue 11: on a 48³ grid over a 64³ map, trilinear slicing of one-hot labels loses single voxels."""
    task = deposit_task()
    lost = 0
    for ijk in [(10, 20, 30), (33, 17, 5), (1, 62, 40), (20, 21, 22), (5, 9, 13)]:
        a = np.zeros(SHAPE, np.uint8)
        a[ijk] = 5
        (S,) = task.parse_label_array(a, torch.float64)
        lost += substructure_betti(S)[0][0] == 0
    assert lost >= 2  # what reports used to say
    three = np.zeros(SHAPE, np.uint8)
    for ijk in [(10, 20, 30), (40, 41, 42), (50, 12, 33)]:
        three[ijk] = 5
    assert task_errors(task, three)["calcium"]["betti"] == [3, 0, 0]


def test_a_box_counts_the_voxels_whose_centres_fall_in_it():
    a = np.zeros((30, 30, 30), np.uint8)
    a[ball(a.shape, (8, 15, 15), 3)] = 1
    a[ball(a.shape, (22, 15, 15), 3)] = 1
    frame = Frame(a.shape, np.eye(4))
    box = ControlDomain((10, 10, 10), np.eye(3), [0.3, 0.6, 0.6], [-0.45, 0.0, 0.0], "left")  # covers the first ball
    assert label_map_betti(a, (1,), box) == [1, 0, 0]
    assert label_map_betti(a, (1,), place_global((12, 12, 12))) == [2, 0, 0]
    mask = domain_mask(box, a.shape)
    assert mask[8, 15, 15] and not mask[22, 15, 15]
    task = Task("t", [DomainTask("left", (1,), box, betti=(1, 0, 0))], shape=frame.shape, affine=frame.affine)
    (m,) = measure_label_map(task, a)
    assert m.betti_match == [True, True, True]


def test_a_plane_through_a_ring_reads_the_map_at_its_points():
    shape = (21, 31, 31)
    a = np.zeros(shape, np.uint8)
    a[solid_torus(shape, (10, 15, 15), 8, 2.5)] = 3  # ring around axis 0, in the plane x = 10
    plane = ControlDomain((40, 40, 1), np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], float), [1.0, 1.0, 1.0], [0, 0, 0], "cut")
    assert label_map_betti(a, (3,), plane) == [1, 1, 0]
    line = ControlDomain((40, 1, 1), np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], float), [1.0, 1.0, 1.0], [0, 0, 0], "ray")
    assert label_map_betti(a, (3,), line) == [2, 0, 0]  # a diameter crosses the ring twice


def test_measure_gives_units_and_targets_in_the_same_units():
    A = oblique_affine(spacing=(1.0, 1.0, 2.5))
    shape = (20, 22, 12)
    a = np.zeros(shape, np.uint8)
    a[ball(shape, (10, 11, 6), 4)] = 2
    dom = place_global(shape, "all")
    frame = Frame(shape, A)
    target = GeometryTarget(mass=torch.tensor(0.5, dtype=torch.float64), centroid=torch.zeros(3, dtype=torch.float64),
                            covariance=torch.eye(3, dtype=torch.float64) / 3)
    task = Task("t", [DomainTask("all", (2,), dom, target, (1, 0, 0))], shape=shape, affine=A)
    (m,) = measure_label_map(task, a)
    n = int((a == 2).sum())
    assert m.kind == "volume" and m.mass_unit == "mL"
    assert m.mass == pytest.approx(n * frame.voxel_volume_mm3 / 1000.0)
    assert m.mass_fraction == pytest.approx(n / a.size)
    assert m.target.mass == pytest.approx(0.5 * a.size * frame.voxel_volume_mm3 / 1000.0)  # the same factor
    assert np.allclose(m.target.centroid_mm, frame.to_world(np.zeros(3)))
    xyz = np.argwhere(a == 2) @ A[:3, :3].T + A[:3, 3]
    assert np.allclose(m.centroid_mm, xyz.mean(0)) and np.allclose(m.covariance_mm2, np.cov(xyz.T, bias=True))
    assert m.size_mm2 == pytest.approx(np.trace(m.covariance_mm2)) and m.shape.sum() == pytest.approx(1.0)
    assert set(m.errors) == {"mass", "centroid", "covariance"} and m.betti == [1, 0, 0]
