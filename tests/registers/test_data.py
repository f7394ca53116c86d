import numpy as np
import pytest
import torch

from anatomica.errors import AnatomicaError
from anatomica.registers.data import (
    DataSpec,
    Volume,
    augment,
    load_pairs,
    mni152_volume,
    prepare,
    render_ct,
    volumes_to_pairs,
    write_pairs,
)

LABELS = {"inner": 1, "outer": 2}


def toy_volumes(n=2, size=20, seed=0):
    rng = np.random.default_rng(seed)
    g = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij")).astype(float)
    out = []
    for i in range(n):
        r = np.sqrt(((g - size / 2 + rng.uniform(-1, 1, (3, 1, 1, 1))) ** 2).sum(0))
        lab = np.where(r < 4, 1, np.where(r < 8, 2, 0)).astype(np.int32)
        img = (0.3 * (lab == 2) + 0.9 * (lab == 1) + 0.05 * rng.random(lab.shape)).astype(np.float32)
        out.append(Volume(f"toy_{i:03d}", img, lab, np.diag([1.5, 1.5, 2.0, 1.0])))
    return out


def test_write_load_slices_split(tmp_path):
    write_pairs(tmp_path / "d", toy_volumes(), LABELS, "toy", "CT")
    assert (tmp_path / "d" / "imagesTr" / "toy_000_0000.nii.gz").is_file()
    with pytest.raises(AnatomicaError, match="overwrite"):
        write_pairs(tmp_path / "d", toy_volumes(), LABELS, "toy", "CT")
    vols, labels = load_pairs(tmp_path / "d")
    assert labels == LABELS and len(vols) == 2 and vols[0].image.max() <= 1.0
    pairs = volumes_to_pairs(vols, labels, 16)
    assert pairs.images.shape[1:] == (1, 16, 16) and pairs.masks.shape[1:] == (16, 16)
    assert pairs.images.min() >= -1 and pairs.images.max() <= 1
    assert set(pairs.masks.unique().tolist()) == {0, 1, 2} and pairs.n_classes == 3
    # bright image where the label is inner: image and mask stay aligned through crop and resize
    assert pairs.images[:, 0][pairs.masks == 1].mean() > pairs.images[:, 0][pairs.masks == 0].mean() + 0.5
    vol3 = volumes_to_pairs(vols, labels, 16, spatial_dims=3)
    assert vol3.images.shape == (2, 1, 16, 16, 16)
    train, test = prepare(DataSpec(str(tmp_path / "d"), 16, block=2))
    assert len(train) + len(test) == len(pairs) and len(test) > 0
    assert not set(zip(train.groups, train.positions)) & set(zip(test.groups, test.positions))


def test_load_errors(tmp_path):
    with pytest.raises(AnatomicaError, match="no such"):
        load_pairs(tmp_path / "missing")
    (tmp_path / "e" / "labelsTr").mkdir(parents=True)
    with pytest.raises(AnatomicaError, match="imagesTr"):
        load_pairs(tmp_path / "e")


def test_augment_is_deterministic_and_keeps_labels():
    pairs = volumes_to_pairs(toy_volumes(), LABELS, 16)
    a, b, c = augment(pairs, 6, seed=3), augment(pairs, 6, seed=3), augment(pairs, 6, seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert not torch.equal(a.images, c.images)
    assert set(a.masks.unique().tolist()) <= {0, 1, 2} and a.images.abs().max() <= 1


def test_render_ct_is_seeded_and_shows_contrast():
    lab = np.zeros((16, 16, 16), np.int32)
    lab[4:12, 4:12, 4:12] = 1
    lab[6:10, 6:10, 6:10] = 2
    names = {"heart_myocardium": 1, "aorta": 2}
    a = render_ct(lab, names, np.random.default_rng(0))
    assert np.array_equal(a, render_ct(lab, names, np.random.default_rng(0)))
    assert 0 <= a.min() and a.max() <= 1
    assert a[lab == 2].mean() > a[lab == 1].mean() > a[lab == 0].mean()


def test_mni152_ships_with_nilearn():
    v = mni152_volume()
    assert v.image.shape == v.label.shape == (197, 233, 189)
    counts = np.bincount(v.label.ravel(), minlength=4)
    assert counts.shape == (4,) and counts[1:].min() > 50_000  # csf, grey and white matter all present
    assert 0 <= v.image.min() and v.image.max() <= 1


def test_paired_structures_share_one_attenuation():
    labels = {"heart_atrium_left": 1, "heart_atrium_right": 2, "aorta": 3}
    lab = np.zeros((24, 24, 24), np.int32)
    lab[2:10, 2:10, 2:10], lab[14:22, 2:10, 2:10], lab[2:10, 14:22, 14:22] = 1, 2, 3
    swapped = np.where(lab == 1, 2, np.where(lab == 2, 1, lab))  # left and right exchanged
    moved = np.where(lab == 3, 1, np.where(lab == 1, 3, lab))  # aorta and left atrium exchanged
    for seed in range(3):
        img = render_ct(lab, labels, np.random.default_rng(seed))
        # the jitter is per tissue, not per label: exchanging the sides leaves the image unchanged
        np.testing.assert_array_equal(render_ct(swapped, labels, np.random.default_rng(seed)), img)
        assert not np.array_equal(render_ct(moved, labels, np.random.default_rng(seed)), img)
