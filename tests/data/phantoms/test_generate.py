"""Phantoms: the registry contract for every system, the heart's anatomy and topology, the dataset writer, the CLI."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from helpers import run_cli
from scipy import ndimage

from anatomica.data.phantoms import SYSTEMS, case_rng, generate_dataset, heart
from anatomica.data.phantoms.shapes import dilate26, touching
from anatomica.errors import AnatomicaError
from anatomica.homology import betti_numbers
from anatomica.io.dataset import list_label_files
from anatomica.io.nifti import load_label_map

SIZE = 32
H = heart.LABELS


# --- every registered system ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_system_contract(name):
    spec = SYSTEMS[name]
    assert spec.name == name and spec.fov_mm > 0
    assert sorted(spec.labels.values()) == list(range(1, len(spec.labels) + 1)), "label values must be 1..C"
    for check in spec.topology_checks:
        assert check.labels and set(check.labels) <= set(spec.labels), check
    lm, flags = spec.generate(case_rng(0, 0), SIZE)
    assert lm.array.shape == (SIZE,) * 3 and np.issubdtype(lm.array.dtype, np.integer)
    assert set(np.unique(lm.array)) <= set(range(len(spec.labels) + 1))
    assert lm.labels == spec.labels
    np.testing.assert_allclose(lm.spacing, [spec.fov_mm / SIZE] * 3)
    assert np.allclose(lm.affine[:3, :3], np.diag(lm.spacing)), "RAS+ axis-aligned affine expected"
    json.dumps(flags)  # flags go to dataset.json


@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_system_is_deterministic_per_generator(name):
    gen = SYSTEMS[name].generate
    a, fa = gen(np.random.default_rng(5), SIZE)
    b, fb = gen(np.random.default_rng(5), SIZE)
    c, _ = gen(np.random.default_rng(6), SIZE)
    assert np.array_equal(a.array, b.array) and fa == fb
    assert not np.array_equal(a.array, c.array)


@pytest.mark.parametrize("size", [20, 129, 64.0])
def test_sizes_outside_the_designed_range_are_refused(size):
    with pytest.raises(AnatomicaError, match="size"):
        heart.generate(np.random.default_rng(0), size)


# --- the heart: anatomy and ground-truth topology -----------------------------------------------------


@pytest.fixture(scope="module")
def heart_cases():
    return [heart.generate(case_rng(11, i), SIZE) for i in range(14)]


def _centroid_mm(lm, mask):
    ijk = np.argwhere(mask).mean(axis=0)
    return lm.affine[:3, :3] @ ijk + lm.affine[:3, 3]


def test_heart_has_every_label_as_one_piece(heart_cases):
    for lm, _ in heart_cases:
        for name, v in H.items():
            # b0 of closed voxel cubes = number of 26-connected components (cheaper than full persistence).
            assert ndimage.label(lm.array == v, structure=np.ones((3, 3, 3)))[1] == 1, name


def test_heart_myocardium_wraps_the_left_ventricle(heart_cases):
    for lm, _ in heart_cases:
        a = lm.array
        lv = a == H["heart_ventricle_left"]
        rim = dilate26(lv) & ~lv
        # Only the valve plane (atrium, aorta) is open; the rest of the cavity is walled by myocardium.
        assert (a[rim] == H["heart_myocardium"]).mean() > 0.6
        assert not touching(lv, a == H["heart_ventricle_right"]), "the septum must separate the ventricles"
        # The wall is a shell several mm thick around the cavity, not a film.
        myo = a == H["heart_myocardium"]
        assert myo.sum() * lm.voxel_volume_ml > 0.5 * lv.sum() * lm.voxel_volume_ml


def test_heart_atria_sit_above_their_ventricles_and_vessels_leave_the_right_chamber(heart_cases):
    for lm, _ in heart_cases:
        a = lm.array
        z = {name: _centroid_mm(lm, a == v)[2] for name, v in H.items()}  # world z is superior (RAS+)
        assert z["heart_atrium_left"] > z["heart_ventricle_left"]
        assert z["heart_atrium_right"] > z["heart_ventricle_right"]
        assert touching(a == H["aorta"], a == H["heart_ventricle_left"])
        assert touching(a == H["pulmonary_artery"], a == H["heart_ventricle_right"])


def test_heart_atria_flags_match_measured_betti_numbers(heart_cases):
    outcomes = set()
    for lm, flags in heart_cases:
        atria = np.isin(lm.array, [H["heart_atrium_left"], H["heart_atrium_right"]])
        expected = [1, 0, 0] if flags["atria_touching"] else [2, 0, 0]
        assert betti_numbers(atria) == expected, flags
        outcomes.add(flags["atria_touching"])
    assert outcomes == {True, False}, "the sample should hold both touching and separate atria"


@pytest.mark.parametrize("size", [48, 64])
def test_heart_separate_atria_stay_separate_at_finer_grids(size):
    # The first separate-atria case of the 32³ sample: its gap must survive at finer grids too.
    for i in range(14):
        if not heart._draw(case_rng(11, i))["atria_touching"]:
            lm, flags = heart.generate(case_rng(11, i), size)
            atria = np.isin(lm.array, [H["heart_atrium_left"], H["heart_atrium_right"]])
            assert betti_numbers(atria)[0] == 2 and not flags["atria_touching"]
            return
    pytest.fail("no separate-atria case among the first 14")


def test_heart_same_case_at_two_sizes_is_the_same_anatomy():
    small, f_small = heart.generate(case_rng(3, 1), 32)
    large, f_large = heart.generate(case_rng(3, 1), 64)
    assert f_small["atria_touching"] == f_large["atria_touching"]
    for v in H.values():
        # Centroids agree to about a coarse voxel: only the sampling differs, not the draw.
        d = np.linalg.norm(_centroid_mm(small, small.array == v) - _centroid_mm(large, large.array == v))
        assert d < 6.0


# --- the dataset writer ------------------------------------------------------------------------------


def _arrays(folder):
    return [np.asanyarray(nib.load(str(p)).dataobj) for p in list_label_files(folder)]


def test_dataset_layout_and_metadata(tmp_path):
    out = generate_dataset("heart", n=3, size=SIZE, seed=4, out=tmp_path / "heart", progress=False)
    files = sorted(p.name for p in (out / "labelsTr").iterdir())
    assert files == ["heart_000.nii.gz", "heart_001.nii.gz", "heart_002.nii.gz"]
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["system"] == "heart" and meta["numTraining"] == 3
    assert meta["labels"] == {"background": 0, **H}
    assert [t["label"] for t in meta["training"]] == [f"./labelsTr/heart_00{i}.nii.gz" for i in range(3)]
    assert set(meta["cases"]) == {"heart_000", "heart_001", "heart_002"}
    assert all(isinstance(c["atria_touching"], bool) for c in meta["cases"].values())
    lm = load_label_map(out / "labelsTr" / "heart_001.nii.gz")
    assert lm.labels == H and lm.array.shape == (SIZE,) * 3
    np.testing.assert_allclose(lm.spacing, [heart.FOV_MM / SIZE] * 3)
    # The written flags are the truth of the written file.
    atria = np.isin(lm.array, [H["heart_atrium_left"], H["heart_atrium_right"]])
    assert betti_numbers(atria)[0] == (1 if meta["cases"]["heart_001"]["atria_touching"] else 2)


def test_dataset_is_deterministic_and_case_i_does_not_depend_on_n(tmp_path):
    a = _arrays(generate_dataset("heart", n=3, size=SIZE, seed=9, out=tmp_path / "a", progress=False))
    b = _arrays(generate_dataset("heart", n=5, size=SIZE, seed=9, out=tmp_path / "b", progress=False))
    c = _arrays(generate_dataset("heart", n=3, size=SIZE, seed=10, out=tmp_path / "c", progress=False))
    assert len(b) == 5
    assert all(np.array_equal(x, y) and x.tobytes() == y.tobytes() for x, y in zip(a, b[:3]))
    assert not any(np.array_equal(x, y) for x, y in zip(a, c))
    assert not np.array_equal(a[0], a[1]), "cases of one dataset differ"


def test_dataset_refuses_a_non_empty_folder_without_overwrite(tmp_path):
    out = generate_dataset("heart", n=1, size=SIZE, seed=0, out=tmp_path / "d", progress=False)
    with pytest.raises(AnatomicaError, match="overwrite"):
        generate_dataset("heart", n=1, size=SIZE, seed=1, out=out, progress=False)
    generate_dataset("heart", n=2, size=SIZE, seed=1, out=out, overwrite=True, progress=False)
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 2
    with pytest.raises(AnatomicaError, match="n"):
        generate_dataset("heart", n=0, size=SIZE, seed=0, out=tmp_path / "e", progress=False)


# --- the command ----------------------------------------------------------------------------------------


def test_cli_writes_the_layout_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "ds"
    args = ["phantoms", "--system", "heart", "--n", "2", "--size", "32", "--seed", "1", "--out", out]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert (out / "dataset.json").is_file() and len(list((out / "labelsTr").glob("heart_*.nii.gz"))) == 2
    code, _, err = run_cli(args, capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error:") and "--overwrite" in err
    code, _, err = run_cli([*args, "--overwrite"], capsys)
    assert code == 0, err


@pytest.mark.parametrize(("option", "value", "word"), [("--size", "16", "size"), ("--system", "liver", "liver"), ("--n", "0", "n")])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, option, value, word):
    args = {"--system": "heart", "--n": "1", "--size": "32"}
    args[option] = value
    flat = ["phantoms", *[t for kv in args.items() for t in kv], "--out", tmp_path / "x"]
    code, out, err = run_cli(flat, capsys)
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1 and word in err
    assert not (tmp_path / "x").exists()
