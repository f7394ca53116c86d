"""Frame: normalized ↔ metric ↔ world, and the one field-of-view check."""

import numpy as np
import pytest
from helpers import oblique_affine

from anatomica.errors import AnatomicaError
from anatomica.frame import Frame


def test_metric_coordinates_are_millimetres_about_the_centre():
    f = Frame((11, 21, 5), oblique_affine(spacing=(1.0, 1.0, 2.5)))
    ijk = np.array([[0, 0, 0], [10, 20, 4], [3, 7, 1]], float)
    q = f.voxels_to_metric(ijk)
    world = ijk @ f.affine[:3, :3].T + f.affine[:3, 3]
    assert np.allclose(q[1] - q[0], world[1] - world[0])  # displacements in mm
    assert np.allclose(f.from_metric(q), f.from_world(world))
    assert np.allclose(f.spacing, [1.0, 1.0, 2.5])
    assert not f.is_metric and Frame((9, 9, 9), np.diag([3, 3, 3, 1.0])).is_metric


def test_same_field_of_view_at_any_resolution_and_one_line_errors():
    fine = Frame((32, 32, 32), np.diag([1.0, 1.0, 1.0, 1.0]))
    coarse = Frame((16, 16, 16), np.array([[31 / 15, 0, 0, 0], [0, 31 / 15, 0, 0], [0, 0, 31 / 15, 0], [0, 0, 0, 1.0]]))
    assert fine.same_field_of_view(coarse) and fine.field_of_view_gap(coarse) < 1e-9
    shifted = Frame((32, 32, 32), np.array([[1.0, 0, 0, 40], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    with pytest.raises(AnatomicaError, match="different field of view") as info:
        shifted.check_same_field_of_view(fine)
    assert "\n" not in str(info.value)
    with pytest.raises(AnatomicaError, match="singular"):
        Frame((4, 4, 4), np.diag([1.0, 0.0, 1.0, 1.0]))
