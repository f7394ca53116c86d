import numpy as np
import pytest
import torch

from anatomica.errors import AnatomicaError
from anatomica.metrics.images import nearest_distances
from anatomica.registers.data import PairSet
from anatomica.registers.evaluate import (
    EvalSettings,
    Measures,
    RealSets,
    betti_distance,
    betti_table,
    compare,
    label_groups,
    markdown_tables,
    measure,
    metrics,
    strip_replicates,
)
from anatomica.registers.segmenter import SegmenterConfig, build_segmenter

LABELS = {"left": 1, "right": 2}


def masks(n=6, size=32, seed=0):
    rng = np.random.default_rng(seed)
    m = np.zeros((n, size, size), dtype=np.int64)
    for i in range(n):
        x = rng.integers(4, 10)
        m[i, x : x + 8, 8:20] = 1
        m[i, x + 12 : x + 20, 8:20] = 2
    return m


def test_groups_betti_and_distance():
    g = label_groups(LABELS, [["left", "right"], ["left", "liver"]])
    assert g == [("left", [1]), ("right", [2]), ("left+right", [1, 2])]  # unions of unknown labels are skipped
    m = masks(3)
    m[0, 0:2, 0:2] = 1  # a second piece of "left" in image 0
    b = betti_table(m, g)
    assert b.shape == (3, 3, 2) and b[0, 0, 0] == 2 and b[1, 0, 0] == 1 and b[1, 2, 0] == 2 and b[:, :, 1].sum() == 0
    assert betti_distance(b, b) == 0.0 and 0 < betti_distance(b[:1], b[1:]) <= 1


def test_nearest_distances():
    pool = torch.zeros(3, 1, 4, 4)
    pool[1] += 1.0
    d = nearest_distances(torch.stack([pool[1], pool[0] + 0.5]), pool)
    np.testing.assert_allclose(d, [0.0, 2.0])  # sqrt(16 * 0.25)
    with pytest.raises(AnatomicaError):
        nearest_distances(torch.zeros(1, 1, 4, 4), torch.zeros(2, 1, 3, 3))


@pytest.fixture
def real():
    torch.manual_seed(0)
    m = masks(8)
    ps = PairSet(torch.as_tensor(m, dtype=torch.float32)[:, None] - 1.0, torch.as_tensor(m), dict(LABELS), np.arange(8), np.zeros(8, int))
    judge = build_segmenter(SegmenterConfig(2, 3, (8, 8, 8, 8, 8, 8)))
    groups = label_groups(LABELS, [["left", "right"]])
    from anatomica.metrics.fmd import feature_matrix
    from anatomica.registers.segmenter import encoder_features

    return RealSets(LABELS, 2, judge, ps, ps.subset(np.arange(4)), ps, groups, False,
                    ref_morph=feature_matrix(m, LABELS), ref_feats=encoder_features(judge, ps.images).numpy(),
                    ref_betti=betti_table(m, groups), floor_nn=nearest_distances(ps.images[:4], ps.images) + 1.0)


def test_measure_metrics_compare_and_tables(real, tmp_path):
    s = EvalSettings(n=4, tstr_steps=1, tstr_features=(8, 8, 8, 8, 8, 8), seg_batch=2, n_boot=10)
    images = real.reference.images[:4] + 0.1 * torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with_own = measure(images, real.reference.masks[:4], real, s, "a", progress=False)
    without = measure(images, None, real, s, "b", progress=False)
    with_own.save(tmp_path / "m.npz")
    back = Measures.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.consistency, with_own.consistency)
    assert without.consistency is None and without.tstr_own is None
    ma, mb = metrics(with_own, real, s), metrics(without, real, s)
    assert {"fmd_own", "tstr_own", "consistency_dice"} <= set(ma) and "consistency_dice" not in mb
    assert ma["fmd_judge"]["value"] == pytest.approx(mb["fmd_judge"]["value"])  # same images, same judge
    for b in ma.values():
        assert len(b["ci95"]) == 2 and len(b["replicates"]) == 10
    res = compare({"reg": {0: ma, 1: ma}, "plain": {0: mb, 1: mb}}, "reg")
    assert res["summary"]["reg"]["fmd_judge"]["sd"] == 0.0 and res["paired"]["plain"]["fmd_judge"]["mean"] == pytest.approx(0.0)
    assert "consistency_dice" not in res["paired"]["plain"]
    with pytest.raises(AnatomicaError):
        compare({"plain": {0: mb}}, "reg")
    text = markdown_tables(strip_replicates({"comparison": res, "floor": ma}))
    assert "Seed-paired differences" in text and "Memorisation" in text
