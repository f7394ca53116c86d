"""The aorta phantom: label invariants, anatomy, flags that match the measured Betti numbers, determinism."""

import json
from functools import lru_cache

import numpy as np
import pytest
from scipy import ndimage

from anatomica.data.phantoms import aorta
from anatomica.data.phantoms.shapes import CUBE, dilate26
from anatomica.errors import AnatomicaError
from anatomica.homology import betti_numbers

SEEDS_32 = range(10)
SEEDS_48 = range(3)


@lru_cache(maxsize=None)
def case(seed: int, size: int):
    return aorta.generate(np.random.default_rng(seed), size)


def world_centroid(label_map, value: int) -> np.ndarray:
    ijk = np.argwhere(label_map.array == value).mean(axis=0)
    return label_map.affine[:3, :3] @ ijk + label_map.affine[:3, 3]


def test_labels_are_contiguous_and_the_topology_check_names_the_whole_tree():
    assert sorted(aorta.LABELS.values()) == list(range(1, len(aorta.LABELS) + 1))
    assert aorta.SYSTEM.name == "aorta" and aorta.SYSTEM.labels == aorta.LABELS
    (check,) = aorta.SYSTEM.topology_checks
    assert sorted(check.labels) == sorted(aorta.LABELS) and check.betti == {0: 1}


@pytest.mark.parametrize("seed", SEEDS_32)
def test_every_label_present_on_an_isotropic_grid_of_the_fixed_field_of_view(seed):
    lm, flags = case(seed, 32)
    assert lm.array.shape == (32, 32, 32) and lm.array.dtype == np.uint8
    assert set(np.unique(lm.array)) == {0, *aorta.LABELS.values()}
    assert lm.labels == aorta.LABELS
    assert np.allclose(np.diag(lm.affine)[:3], aorta.FOV_MM / 32)
    json.dumps(flags)


@pytest.mark.parametrize("size,seed", [(32, s) for s in SEEDS_32] + [(48, s) for s in SEEDS_48])
def test_flags_agree_with_the_betti_numbers_of_the_tree(size, seed):
    lm, flags = case(seed, size)
    assert flags["connected"] == (not flags["broken_branches"])
    assert betti_numbers(lm.array > 0) == [1 + len(flags["broken_branches"]), 0, 0]


def test_both_topologies_occur():
    flags = [case(s, 32)[1] for s in SEEDS_32]
    assert {f["connected"] for f in flags} == {True, False}


@pytest.mark.parametrize("seed", SEEDS_32)
def test_branches_leave_the_top_of_the_arch_right_to_left(seed):
    lm, flags = case(seed, 32)
    a = lm.array
    ao = a == aorta.LABELS["aorta"]
    centres = [world_centroid(lm, aorta.LABELS[b]) for b in aorta.BRANCHES]
    assert all(c[2] > world_centroid(lm, aorta.LABELS["aorta"])[2] + 20.0 for c in centres)
    assert centres[0][0] > centres[1][0] > centres[2][0]  # RAS+: brachiocephalic right, subclavian left
    for name in aorta.BRANCHES:
        branch = a == aorta.LABELS[name]
        pieces, n = ndimage.label(branch, structure=CUBE)
        assert n == (2 if name in flags["broken_branches"] else 1)
        # Every branch keeps its root on the arch; a broken one's distal segment touches nothing else.
        on_arch = np.unique(pieces[dilate26(ao) & branch])
        assert len(on_arch) == 1
        if n == 2:
            distal = (pieces > 0) & (pieces != on_arch[0])
            assert not (dilate26(dilate26(distal)) & (a > 0) & ~distal).any()


def test_same_seed_same_case_and_same_anatomy_at_every_size():
    a, fa = case(3, 32)
    b, fb = aorta.generate(np.random.default_rng(3), 32)
    assert np.array_equal(a.array, b.array) and np.array_equal(a.affine, b.affine) and fa == fb
    assert case(3, 48)[1] == fa
    assert not np.array_equal(case(4, 32)[0].array, a.array)


@pytest.mark.parametrize("size", [16, 31, 129, 32.0, True])
def test_sizes_outside_the_tested_range_are_refused(size):
    with pytest.raises(AnatomicaError, match="size"):
        aorta.generate(np.random.default_rng(0), size)
