import numpy as np
import pytest
from helpers import ball, oblique_affine, solid_torus

from anatomica.io.nifti import LabelMap
from anatomica.metrics.label_stats import label_statistics, summarize, union_has_betti, world_moments


def test_moments_against_numpy_with_oblique_affine():
    A = oblique_affine()
    rng = np.random.default_rng(1)
    mask = rng.random((9, 11, 13)) > 0.7
    c, cov = world_moments(mask, A)
    i, j, k = np.nonzero(mask)
    xyz = (A @ np.stack([i, j, k, np.ones_like(i)]).astype(float))[:3]
    np.testing.assert_allclose(c, xyz.mean(axis=1))
    np.testing.assert_allclose(cov, np.cov(xyz, bias=True))


def test_label_statistics_fields_and_units():
    shape = (20, 24, 18)
    arr = np.zeros(shape, np.int32)
    arr[ball(shape, (10, 12, 9), 5)] = 1
    arr[solid_torus(shape, (10, 12, 9), 8, 1.5) & (arr == 0)] = 4
    A = np.diag([2.0, 1.5, 3.0, 1.0])
    stats = label_statistics(LabelMap(arr, A, {"core": 1}))
    assert list(stats) == ["core", "label_4"]
    core = stats["core"]
    n = int((arr == 1).sum())
    assert core["index"] == 1 and core["voxels"] == n
    assert core["volume_ml"] == pytest.approx(n * 2 * 1.5 * 3 / 1000)
    np.testing.assert_allclose(core["centroid_mm"], [20.0, 18.0, 27.0], atol=1e-9)  # symmetric ball at voxel (10,12,9)
    assert core["betti"] == [1, 0, 0] and stats["label_4"]["betti"] == [1, 1, 0]


def test_union_property_and_summary():
    shape = (16, 30, 16)
    arr = np.zeros(shape, np.int32)
    arr[ball(shape, (8, 8, 8), 4)] = 1
    arr[ball(shape, (8, 21, 8), 4)] = 2
    lm = LabelMap(arr, np.eye(4), {"a": 1, "b": 2})
    assert union_has_betti(lm, ["a", "b"], {0: 2})
    assert not union_has_betti(lm, ["a", "b"], {0: 1})
    assert not union_has_betti(lm, ["a", "missing"], {0: 2})
    files = [{"labels": label_statistics(lm)}, {"labels": label_statistics(LabelMap(np.where(arr == 2, 0, arr), np.eye(4), {"a": 1}))}]
    s = summarize(files, {"separate": [True, False]})
    assert s["n_files"] == 2 and s["topology_rates"]["separate"] == 0.5
    assert s["labels"]["a"]["present_rate"] == 1.0 and s["labels"]["b"]["present_rate"] == 0.5
