import numpy as np
import pytest
from scipy import ndimage

from anatomica.data.phantoms import coronary
from anatomica.data.phantoms.coronary import FOV_MM, LABELS, SYSTEM, generate
from anatomica.data.phantoms.shapes import CUBE, dilate26
from anatomica.errors import AnatomicaError
from anatomica.homology import betti_numbers

SEEDS_32 = range(10)
SEEDS_48 = range(10, 13)


def betti(mask: np.ndarray) -> list[int]:
    """``betti_numbers`` on the mask's bounding box padded by one voxel (the same homology, far fewer cubes)."""
    if not mask.any():
        return betti_numbers(mask)
    box = tuple(slice(i.min(), i.max() + 1) for i in np.nonzero(mask))
    return betti_numbers(np.pad(mask[box], 1))


@pytest.fixture(scope="module")
def cases():
    out = {(s, 32): generate(np.random.default_rng(s), 32) for s in SEEDS_32}
    out.update({(s, 48): generate(np.random.default_rng(s), 48) for s in SEEDS_48})
    return out


def test_system_table():
    assert sorted(LABELS.values()) == list(range(1, len(LABELS) + 1))
    assert {"coronary_artery_left", "coronary_artery_right", "coronary_calcium"} <= set(LABELS)
    assert SYSTEM.name == "coronary" and SYSTEM.labels == LABELS and SYSTEM.fov_mm == FOV_MM
    (check,) = SYSTEM.topology_checks
    assert check.labels == ["coronary_calcium"] and check.betti == {0: 2}


def test_label_map_invariants(cases):
    for (seed, size), (lm, flags) in cases.items():
        a = lm.array
        assert a.shape == (size,) * 3 and lm.labels == LABELS
        assert set(np.unique(a)) <= {0, *LABELS.values()}
        for name in ("heart", "coronary_artery_left", "coronary_artery_right"):
            assert (a == LABELS[name]).any(), (seed, size, name)
        np.testing.assert_allclose(np.diag(lm.affine)[:3], FOV_MM / size)
        centre = lm.affine[:3, :3] @ np.full(3, (size - 1) / 2) + lm.affine[:3, 3]
        np.testing.assert_allclose(centre, coronary.CENTRE_MM)
        assert set(flags) == {"calcium_deposits"} and isinstance(flags["calcium_deposits"], int)


def test_anatomical_relations(cases):
    for (seed, size), (lm, flags) in cases.items():
        a = lm.array
        heart = a == LABELS["heart"]
        left, right = a == LABELS["coronary_artery_left"], a == LABELS["coronary_artery_right"]
        arteries = left | right
        # The arteries run on the heart's surface: nearly all their voxels touch it.
        assert (dilate26(heart) & arteries).sum() > 0.7 * arteries.sum(), (seed, size)
        # LM + LAD + LCx are longer than the RCA; the left tree lies to the patient's left (lower RAS x).
        assert left.sum() > right.sum()
        assert np.argwhere(left)[:, 0].mean() < np.argwhere(right)[:, 0].mean()
        # Every deposit sits on a vessel wall and is at least ~2 voxels across.
        comp, n = ndimage.label(a == LABELS["coronary_calcium"], structure=CUBE)
        for i in range(1, n + 1):
            blob = comp == i
            assert (dilate26(blob) & arteries).any(), (seed, size, i)
            assert np.ptp(np.argwhere(blob), axis=0).max() >= 1


def test_flags_agree_with_betti_numbers(cases):
    assert betti_numbers(cases[(0, 32)][0].array == LABELS["coronary_artery_left"])[0] == 1  # the crop is exact
    counts = []
    for (seed, size), (lm, flags) in cases.items():
        a = lm.array
        assert betti(a == LABELS["coronary_calcium"])[0] == flags["calcium_deposits"], (seed, size)
        assert betti(a == LABELS["coronary_artery_left"])[0] == 1, (seed, size)
        assert betti(a == LABELS["coronary_artery_right"])[0] == 1, (seed, size)
        counts.append(flags["calcium_deposits"])
    assert len(set(counts)) > 2  # the cases do vary in their calcium count


def test_deposits_are_kept_two_voxels_apart(cases):
    for (seed, size), (lm, flags) in cases.items():
        comp, n = ndimage.label(lm.array == LABELS["coronary_calcium"], structure=CUBE)
        for i in range(1, n + 1):
            near = dilate26(dilate26(comp == i))
            assert set(np.unique(comp[near])) <= {0, i}, (seed, size)


def test_deposit_count_distribution():
    n = np.array([coronary._draw(np.random.default_rng(s))["n_deposits"] for s in range(200)])
    assert 0.15 <= (n == 2).mean() <= 0.30
    assert (n == 0).any() and n.max() <= 4


def test_same_anatomy_at_every_size(cases):
    for seed in SEEDS_48:
        assert generate(np.random.default_rng(seed), 32)[1] == cases[(seed, 48)][1]


def test_deterministic_and_seed_dependent(cases):
    lm, flags = generate(np.random.default_rng(3), 32)
    np.testing.assert_array_equal(lm.array, cases[(3, 32)][0].array)
    assert flags == cases[(3, 32)][1]
    assert not np.array_equal(cases[(3, 32)][0].array, cases[(4, 32)][0].array)


@pytest.mark.parametrize("size", [16, 129, 32.0])
def test_rejects_unsupported_sizes(size):
    with pytest.raises(AnatomicaError):
        generate(np.random.default_rng(0), size)
