import gzip
import json

import nibabel as nib
import numpy as np
import pytest
from helpers import ball, oblique_affine, run_cli

from anatomica.errors import AnatomicaError
from anatomica.io.dataset import list_label_files, read_label_table, write_dataset_json
from anatomica.io.nifti import LabelMap, load_label_map, save_label_map


def test_round_trip_preserves_labels_affine_spacing(tmp_path):
    A = oblique_affine(spacing=(0.7, 1.25, 2.5))
    arr = np.zeros((10, 13, 7), np.int32)
    arr[2:5, 3:9, 1:4] = 3
    arr[6:9, 1:4, 2:6] = 300  # needs more than uint8
    path = save_label_map(LabelMap(arr, A, {"liver": 3, "tumour": 300}), tmp_path / "a.nii.gz")
    back = load_label_map(path)
    np.testing.assert_array_equal(back.array, arr)
    np.testing.assert_allclose(back.affine, A, atol=1e-5)
    np.testing.assert_allclose(back.spacing, (0.7, 1.25, 2.5), atol=1e-5)
    assert back.voxel_volume_ml == pytest.approx(0.7 * 1.25 * 2.5 / 1000, rel=1e-5)


def test_never_overwrites_without_permission(tmp_path):
    lm = LabelMap(np.ones((4, 4, 4), np.int32), np.eye(4))
    p = save_label_map(lm, tmp_path / "x.nii.gz")
    with pytest.raises(AnatomicaError, match="exists"):
        save_label_map(lm, p)
    save_label_map(lm, p, overwrite=True)
    assert [f.name for f in tmp_path.iterdir()] == ["x.nii.gz"]  # no temporary files left behind


def test_dataset_json_and_label_tables(tmp_path):
    write_dataset_json(tmp_path, "demo", {"a": 1, "b": 2}, ["c0", "c1"])
    meta = json.loads((tmp_path / "dataset.json").read_text())
    assert meta["numTraining"] == 2 and meta["labels"]["background"] == 0
    assert read_label_table(tmp_path / "dataset.json") == {"a": 1, "b": 2}
    (tmp_path / "msd.json").write_text(json.dumps({"labels": {"0": "background", "1": "edema", "2": "core"}}))
    assert read_label_table(tmp_path / "msd.json") == {"edema": 1, "core": 2}
    (tmp_path / "labelsTr").mkdir()
    save_label_map(LabelMap(np.eye(3, dtype=np.int32)[..., None].repeat(3, 2), np.eye(4)), tmp_path / "labelsTr" / "c0.nii.gz")
    lm = load_label_map(tmp_path / "labelsTr" / "c0.nii.gz")
    assert lm.labels == {"a": 1, "b": 2}
    assert list_label_files(tmp_path)[0].name == "c0.nii.gz"


def _write(path, data, affine=None):
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def bad_inputs(tmp_path):
    good = _write(tmp_path / "good.nii.gz", ball((12, 12, 12), (6, 6, 6), 4).astype(np.uint8))
    raw = good.read_bytes()
    cases = {
        "missing": (tmp_path / "nope.nii.gz", "no such file"),
        "empty folder": (tmp_path / "emptydir", "no .nii"),
        "random bytes": (tmp_path / "random.nii.gz", "gzip"),
        "gzipped non-nifti": (tmp_path / "text.nii.gz", "not a NIfTI"),
        "truncated": (tmp_path / "trunc.nii.gz", "truncated"),
        "fractional": (_write(tmp_path / "frac.nii.gz", np.full((5, 5, 5), 1.5, np.float32)), "fractional"),
        "negative": (_write(tmp_path / "neg.nii.gz", -np.ones((5, 5, 5), np.int16)), "negative"),
        "nan": (_write(tmp_path / "nan.nii.gz", np.full((5, 5, 5), np.nan, np.float32)), "NaN"),
        "2d": (_write(tmp_path / "flat.nii.gz", np.ones((5, 5), np.uint8)), "3D"),
        "4d": (_write(tmp_path / "time.nii.gz", np.ones((5, 5, 5, 3), np.uint8)), "3D"),
    }
    (tmp_path / "emptydir").mkdir()
    (tmp_path / "random.nii.gz").write_bytes(np.random.default_rng(0).bytes(4000))
    (tmp_path / "text.nii.gz").write_bytes(gzip.compress(b"this is not an image\n" * 50))
    (tmp_path / "trunc.nii.gz").write_bytes(raw[: len(raw) // 2])
    return cases


BAD = ["missing", "empty folder", "random bytes", "gzipped non-nifti", "truncated", "fractional", "negative", "nan", "2d", "4d"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_raises_one_clear_error(tmp_path, case):
    path, words = bad_inputs(tmp_path)[case]
    with pytest.raises(AnatomicaError, match=words):
        if case == "empty folder":
            list_label_files(path)
        else:
            load_label_map(path)


@pytest.mark.parametrize("case", BAD)
def test_bad_input_cli_exits_2_with_one_line(tmp_path, case, capsys):
    path, words = bad_inputs(tmp_path)[case]
    code, out, err = run_cli(["stats", path], capsys)
    assert code == 2
    assert err.strip().count("\n") == 0 and err.startswith("error:") and words in err
    assert "Traceback" not in err + out
