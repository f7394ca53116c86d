"""benchmarks/bench_target_fmd.py: the similarity edit meets the right-ventricle task's targets on a phantom."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from anatomica.control.spec import load_task
from anatomica.data.phantoms import heart
from anatomica.guided.run import resolve_per_reference
from anatomica.metrics.geometry import task_errors


def test_similarity_edit_meets_the_targets(bench_script):
    bench = bench_script("bench_target_fmd")
    lm = heart.generate(np.random.default_rng([1, 0]), 32)[0]
    rv = lm.labels["heart_ventricle_right"]
    edited = bench.similarity_edit(lm, "heart_ventricle_right", 1.3 ** (1 / 3), np.array([5.0, 0.0, 0.0]))
    before, after = lm.array == rv, edited == rv
    assert 1.2 < after.sum() / before.sum() < 1.4
    to_mm = lambda m: lm.affine[:3, :3] @ np.array(ndimage.center_of_mass(m)) + lm.affine[:3, 3]
    np.testing.assert_allclose(to_mm(after) - to_mm(before), [5.0, 0.0, 0.0], atol=0.8)
    assert set(np.unique(edited)) <= set(np.unique(lm.array))  # only the RV moved; nothing new was painted
    spec = load_task("right-ventricle")
    (task,) = resolve_per_reference(spec, [("ref", lm)], lm.labels, lm.array.shape, lm.affine)
    e0, e1 = task_errors(task, lm.array)["rv"], task_errors(task, edited)["rv"]
    assert e1["mass"] < 0.4 * e0["mass"] and e1["centroid"] < 0.5 * e0["centroid"]
