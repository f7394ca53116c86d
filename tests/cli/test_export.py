"""`anatomica export mesh|slicer|itksnap` and `sample --mesh/--viewer-files`: the files, and one error line
(exit 2) for every bad input, nothing overwritten without --overwrite."""

import numpy as np
import pytest
import slicerio
import trimesh
from helpers import ball, oblique_affine, run_cli

from anatomica.io.colors import color_float, color_of
from anatomica.io.dataset import write_dataset_json
from anatomica.io.nifti import LabelMap, save_label_map
from anatomica.io.slicer import parse_ctbl, parse_itksnap

LABELS = {"heart_ventricle_left": 1, "heart_ventricle_right": 2}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("export") / "data"
    shape = (20, 18, 16)
    names = []
    for i in range(2):
        a = np.zeros(shape, np.uint8)
        a[ball(shape, (6 + i, 9, 8), 4.5)] = 1
        a[ball(shape, (14, 9, 8), 3.5) & (a == 0)] = 2
        names.append(f"case_{i}")
        save_label_map(LabelMap(a, oblique_affine(), LABELS), root / "labelsTr" / f"case_{i}.nii.gz")
    write_dataset_json(root, "toy", LABELS, names)
    return root


def test_export_mesh_writes_closed_stl_in_mm_per_case_and_label(dataset, tmp_path, capsys):
    out = tmp_path / "meshes"
    code, stdout, stderr = run_cli(["export", "mesh", dataset, "--format", "stl", "--out", out], capsys)
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["case_0", "case_1"]
    mesh = trimesh.load(out / "case_0" / "heart_ventricle_left.stl")
    assert mesh.is_watertight and mesh.volume > 0
    assert (out / "case_0" / "heart_ventricle_left.stl").read_bytes().startswith(b"SPACE=RAS")  # how Slicer learns it is RAS
    # world mm: the centroid is the voxels' centroid through the affine
    from anatomica.io.nifti import load_label_map

    lm = load_label_map(dataset / "labelsTr" / "case_0.nii.gz")
    ijk = np.argwhere(lm.array == 1).mean(0)
    assert np.allclose(mesh.center_mass, lm.affine[:3, :3] @ ijk + lm.affine[:3, 3], atol=0.3)
    code, _, stderr = run_cli(["export", "mesh", dataset, "--out", out], capsys)
    assert code == 2 and stderr.startswith("error:") and "--overwrite" in stderr and len(stderr.strip().splitlines()) == 1
    code, _, stderr = run_cli(["export", "mesh", dataset / "labelsTr" / "case_1.nii.gz", "--labels", "heart_ventricle_right",
                               "--format", "ply", "--smooth", "5", "--out", out, "--overwrite"], capsys)
    assert code == 0, stderr
    assert [p.name for p in (out / "case_1").iterdir()] == ["heart_ventricle_right.ply"] and not (out / "case_0").exists()


def test_export_slicer_and_itksnap_carry_names_values_and_colours(dataset, tmp_path, capsys):
    code, _, stderr = run_cli(["export", "slicer", dataset, "--out", tmp_path / "slicer"], capsys)
    assert code == 0, stderr
    seg = slicerio.read_segmentation(str(tmp_path / "slicer" / "case_0.seg.nrrd"))
    assert {s["name"]: s["labelValue"] for s in seg["segments"]} == LABELS
    assert all(np.allclose(s["color"], color_float(s["name"]), atol=1e-5) for s in seg["segments"])
    assert parse_ctbl((tmp_path / "slicer" / "anatomica.ctbl").read_text()) == {n: (v, color_of(n)) for n, v in LABELS.items()}
    code, _, stderr = run_cli(["export", "itksnap", dataset, "--out", tmp_path / "snap"], capsys)
    assert code == 0, stderr
    assert sorted(p.name for p in (tmp_path / "snap").iterdir()) == ["case_0.nii.gz", "case_1.nii.gz", "itksnap_labels.txt"]
    assert parse_itksnap((tmp_path / "snap" / "itksnap_labels.txt").read_text()) == {n: (v, color_of(n)) for n, v in LABELS.items()}


@pytest.mark.parametrize("args, message", [
    (["export", "mesh", "{missing}", "--out", "{out}"], "no such file"),
    (["export", "mesh", "{data}", "--format", "step", "--out", "{out}"], "--format must be one of"),
    (["export", "mesh", "{data}", "--labels", "liver", "--out", "{out}"], "unknown label"),
    (["export", "mesh", "{data}", "--smooth", "-2", "--out", "{out}"], "--smooth"),
    (["export", "mesh", "{junk}", "--out", "{out}"], "not a NIfTI"),
    (["export", "slicer", "{data}", "--out", "{file}"], "not a folder"),
    (["export", "itksnap", "{empty}", "--out", "{out}"], "no .nii"),
    (["export", "slicer", "--out", "{out}"], "Missing argument"),
])
def test_bad_inputs_are_one_error_line(dataset, tmp_path, capsys, args, message):
    (tmp_path / "junk.txt").write_text("x")
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    fill = {"missing": tmp_path / "nope.nii.gz", "out": tmp_path / "out", "data": dataset, "junk": tmp_path / "junk.txt",
            "file": tmp_path / "file", "empty": tmp_path / "empty"}
    code, stdout, stderr = run_cli([str(a).format(**fill) for a in args], capsys)
    assert code == 2 and stderr.startswith("error:") and message in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_sample_writes_meshes_viewer_files_and_report(tiny_model, tmp_path, capsys):
    out = tmp_path / "samples"
    code, _, stderr = run_cli(["sample", "--model", tiny_model["ldm"], "--n", 1, "--steps", 2, "--seed", 0, "--out", out,
                               "--mesh", "obj", "--viewer-files"], capsys)
    assert code == 0, stderr
    assert (out / "report.html").stat().st_size > 1_000_000
    assert sorted(p.name for p in (out / "viewer").iterdir()) == ["anatomica.ctbl", "itksnap_labels.txt", "sample_000.seg.nrrd"]
    assert all(trimesh.load(p, force="mesh").is_watertight for p in (out / "meshes" / "sample_000").iterdir())
    code, _, stderr = run_cli(["sample", "--model", tiny_model["ldm"], "--n", 1, "--out", tmp_path / "x", "--mesh", "step"], capsys)
    assert code == 2 and "--mesh must be one of" in stderr and not (tmp_path / "x").exists()
    code, _, stderr = run_cli(["sample", "--model", tiny_model["ldm"], "--n", 1, "--out", tmp_path / "x", "--report-sample", "3"], capsys)
    assert code == 2 and "--report-sample" in stderr and not (tmp_path / "x").exists()


def test_phantoms_viewer_files(tmp_path, capsys):
    out = tmp_path / "heart"
    code, stdout, stderr = run_cli(["phantoms", "--system", "heart", "--n", 1, "--size", 32, "--seed", 3, "--out", out, "--viewer-files"], capsys)
    assert code == 0, stderr
    seg = slicerio.read_segmentation(str(out / "viewer" / "heart_000.seg.nrrd"))
    from anatomica.data.phantoms import SYSTEMS

    assert {s["name"]: s["labelValue"] for s in seg["segments"]} == SYSTEMS["heart"].labels
    assert parse_itksnap((out / "viewer" / "itksnap_labels.txt").read_text())["aorta"] == (SYSTEMS["heart"].labels["aorta"], color_of("aorta"))
