"""The lumbar spine phantom: labels, anatomy, and ground-truth topology flags against measured Betti numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from anatomica.data.phantoms import spine
from anatomica.data.phantoms.shapes import dilate26
from anatomica.errors import AnatomicaError
from anatomica.homology import betti_numbers

COLUMN_VALUES = [spine.LABELS[name] for name in spine.COLUMN]


def _case(seed: int, size: int):
    return spine.generate(np.random.default_rng(seed), size)


def _betti_cropped(mask: np.ndarray) -> list[int]:
    """Betti numbers on the bounding box (plus a background margin): same numbers, much less work."""
    ijk = np.argwhere(mask)
    lo, hi = np.maximum(ijk.min(0) - 1, 0), ijk.max(0) + 2
    return betti_numbers(mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]])


def _expected_betti(flags: dict) -> list[int]:
    return [1 + len(flags["disc_gaps"]), 5 - len(flags["broken_arches"]), 0]


def test_label_table_and_system():
    assert sorted(spine.LABELS.values()) == list(range(1, 7))
    assert spine.SYSTEM.labels is spine.LABELS and spine.SYSTEM.fov_mm == spine.FOV_MM
    checks = {c.name: c for c in spine.SYSTEM.topology_checks}
    assert checks["column connected"].betti == {0: 1}
    assert checks["all foramina intact"].betti == {1: 5}
    assert checks["vertebrae connectivity"].betti == {0: 1, 1: 5}
    for c in checks.values():
        assert sorted(c.labels) == sorted(spine.VERTEBRAE + ["intervertebral_disc"])


def test_case_contents_and_anatomy():
    lm, flags = _case(0, 48)
    a = lm.array
    assert a.shape == (48,) * 3 and a.dtype == np.uint8
    assert set(np.unique(a)) == {0, *spine.LABELS.values()}
    assert lm.labels == spine.LABELS
    h = spine.FOV_MM / 48
    np.testing.assert_allclose(np.diag(lm.affine)[:3], h)
    json.dumps(flags)
    # Nothing reaches the border of the field of view.
    edges = [a[0], a[-1], a[:, 0], a[:, -1], a[:, :, 0], a[:, :, -1]]
    assert not any(e.any() for e in edges)

    # L1 on top, L5 at the bottom, along the superior axis of the world (RAS+, axis 2 here).
    z = [np.argwhere(a == spine.LABELS[n])[:, 2].mean() * h for n in spine.VERTEBRAE]
    assert all(np.diff(z) < 0)
    pitch = -np.diff(z)
    assert np.all((pitch > 28) & (pitch < 50)), pitch  # a body (25–30 mm) plus a disc (8–12 mm)
    for name in spine.VERTEBRAE:
        ijk = np.argwhere(a == spine.LABELS[name])
        span = (ijk.max(0) - ijk.min(0) + 1) * h
        assert 70 < span[0] < 130, (name, span)  # transverse processes tip to tip
        assert 65 < span[1] < 130, (name, span)  # body front to spinous tip
    # Neighbouring vertebrae never touch (processes included); the discs lie between them.
    for upper, lower in zip(spine.VERTEBRAE[:-1], spine.VERTEBRAE[1:]):
        assert not (dilate26(a == spine.LABELS[upper]) & (a == spine.LABELS[lower])).any()
    disc_z = np.argwhere(a == spine.LABELS["intervertebral_disc"])[:, 2] * h
    assert z[-1] < disc_z.min() and disc_z.max() < z[0]


@pytest.mark.parametrize(("size", "seeds"), [(32, range(10)), (48, range(100, 103))])
def test_flags_agree_with_betti_numbers(size, seeds):
    for seed in seeds:
        lm, flags = _case(seed, size)
        a = lm.array
        assert flags["column_connected"] == (not flags["disc_gaps"])
        assert _betti_cropped(np.isin(a, COLUMN_VALUES)) == _expected_betti(flags), (seed, flags)
        for name in spine.VERTEBRAE:  # each vertebra one piece, its arch a loop unless broken
            b1 = 0 if name in flags["broken_arches"] else 1
            assert _betti_cropped(a == spine.LABELS[name]) == [1, b1, 0], (seed, name)
        assert _betti_cropped(a == spine.LABELS["intervertebral_disc"]) == [4, 0, 0], seed


def test_flags_cover_both_outcomes_of_every_check():
    flags = [_flags_only(s) for s in range(300)]
    connected = np.mean([f["column_connected"] for f in flags])
    intact = np.mean([not f["broken_arches"] for f in flags])
    both = np.mean([f["column_connected"] and not f["broken_arches"] for f in flags])
    assert 0.2 < connected < 0.4 and 0.6 < intact < 0.75 and 0.1 < both < 0.9
    levels = {lvl for f in flags for lvl in f["disc_gaps"]}
    broken = {v for f in flags for v in f["broken_arches"]}
    assert levels == set(spine.LEVELS) and broken == set(spine.VERTEBRAE)


def _flags_only(seed: int) -> dict:
    """The flags a case would get, from the drawn parameters alone (no voxels)."""
    p = spine._draw(np.random.default_rng(seed))
    gaps = [spine.LEVELS[k] for k in range(4) if p["gaps"][k]]
    return {
        "column_connected": not gaps,
        "broken_arches": [spine.VERTEBRAE[p["broken_level"]]] if p["broken"] else [],
        "disc_gaps": gaps,
    }


def test_flags_only_matches_generate():
    for seed in range(3):
        assert _case(seed, 32)[1] == _flags_only(seed)


def test_deterministic_and_size_independent_anatomy():
    a1, f1 = _case(7, 32)
    a2, f2 = _case(7, 32)
    assert np.array_equal(a1.array, a2.array) and f1 == f2
    assert not np.array_equal(a1.array, _case(8, 32)[0].array)
    assert _case(7, 40)[1] == f1  # the same seed draws the same anatomy at every size


@pytest.mark.parametrize("size", [31, 129, 32.0, True])
def test_rejects_unsupported_sizes(size):
    with pytest.raises(AnatomicaError):
        spine.generate(np.random.default_rng(0), size)
