"""Target errors of geometric control in the paper's normalized units, and Betti accuracy."""

import numpy as np
import pytest
import torch

from anatomica.control.domain import place_global
from anatomica.control.moments import GeometryTarget, moments
from anatomica.control.potential import DomainTask, Task
from anatomica.metrics.geometry import betti_accuracy, geometry_errors, task_errors


def block(shape, lo, hi):
    a = np.zeros(shape, np.uint8)
    a[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = 1
    return a


def test_errors_of_a_shifted_and_grown_block():
    shape = (17, 17, 17)
    dom = place_global(shape, "all")
    ref = torch.from_numpy(block(shape, (4, 4, 4), (8, 10, 12))).double()[None]
    m = moments(ref, dom.points(torch.float64))
    target = GeometryTarget(mass=m.mass[0], centroid=m.centroid[0], covariance=m.normalized_covariance[0])
    moved = torch.from_numpy(block(shape, (6, 4, 4), (10, 10, 12))).double()[None]  # 2 voxels along axis 0
    e = geometry_errors(moved, dom.points(torch.float64), target)
    assert e["mass"][0] == pytest.approx(0.0, abs=1e-12) and e["covariance"][0] == pytest.approx(0.0, abs=1e-12)
    assert e["centroid"][0] == pytest.approx((2 / 16) / 3)  # 2 of 16 steps in [0, 1] units, mean over 3 axes
    thick = torch.from_numpy(block(shape, (4, 4, 4), (12, 10, 12))).double()[None]  # twice as many voxels
    e = geometry_errors(thick, dom.points(torch.float64), GeometryTarget(mass=m.mass[0]))
    assert set(e) == {"mass"} and e["mass"][0] == pytest.approx(float(m.mass[0]))


def test_task_errors_report_betti_and_matches():
    shape = (12, 12, 12)
    two = block(shape, (1, 1, 1), (4, 4, 4)) + block(shape, (7, 7, 7), (10, 10, 10))
    task = Task("t", [DomainTask("d", (1,), place_global(shape, "d"), betti=(2, 0, 0))], shape=shape, affine=np.eye(4))
    out = task_errors(task, two)
    assert out["d"] == {"betti": [2, 0, 0], "betti_match": [True, True, True]}
    assert task_errors(task, block(shape, (1, 1, 1), (10, 10, 10)))["d"]["betti_match"] == [False, True, True]


def test_betti_accuracy():
    assert betti_accuracy([[2, 0, 0], [1, 0, 0], [2, 1, 0], [2, 0, 0]], [2, 0, 0]) == [0.75, 0.75, 1.0]
    assert all(np.isnan(betti_accuracy([], [1, 0, 0])))
