"""`anatomica import slicer|meshes`: data people have → a training-set folder (labelsTr/ + dataset.json), and one
error line (exit 2) for every bad input."""

import json

import meshio
import numpy as np
import pytest
import slicerio
import trimesh
from helpers import ball, oblique_affine, run_cli
from scipy.spatial import Delaunay

from anatomica.io.dataset import list_label_files, read_label_table
from anatomica.io.mesh import export_label_map_meshes
from anatomica.io.nifti import LabelMap, load_label_map

SAMPLE = slicerio.get_testdata_file("Segmentation.seg.nrrd")
OVERLAPPING = slicerio.get_testdata_file("SegmentationOverlapping.seg.nrrd")
SHAPE = (20, 18, 16)


def test_import_slicer_keeps_names_values_and_geometry(tmp_path, capsys):
    out = tmp_path / "data"
    code, _, stderr = run_cli(["import", "slicer", SAMPLE, "--out", out], capsys)
    assert code == 0, stderr
    seg = slicerio.read_segmentation(SAMPLE)
    assert read_label_table(out / "dataset.json") == {s["name"]: s["labelValue"] for s in seg["segments"]}
    lm = load_label_map(out / "labelsTr" / "Segmentation.nii.gz")
    assert np.array_equal(lm.array, seg["voxels"])
    assert np.allclose(np.diag([-1, -1, 1, 1]) @ lm.affine, seg["ijkToLPS"])  # RAS in NIfTI, LPS in Slicer
    code, _, stderr = run_cli(["import", "slicer", OVERLAPPING, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "overlap" in stderr and "--overlap first" in stderr and not (tmp_path / "o").exists()
    code, _, stderr = run_cli(["import", "slicer", OVERLAPPING, "--overlap", "last", "--out", tmp_path / "o"], capsys)
    assert code == 0 and "overlapping sphere" in read_label_table(tmp_path / "o" / "dataset.json")


def _cohort(root):
    """Two cases as folders of STL parts (one per label), made from label maps on an oblique grid."""
    maps = []
    for i in range(2):
        a = np.zeros(SHAPE, np.uint8)
        a[ball(SHAPE, (6 + i, 9, 8), 4.5)] = 1
        a[ball(SHAPE, (14, 9, 8), 3.5) & (a == 0)] = 2
        lm = LabelMap(a, oblique_affine(), {"heart_ventricle_left": 1, "heart_ventricle_right": 2})
        export_label_map_meshes(lm, root / f"case_{i}", "stl")
        maps.append(lm)
    return maps


def test_import_meshes_from_a_folder_of_cases_into_a_training_set(tmp_path, capsys):
    maps = _cohort(tmp_path / "cohort")
    ref = tmp_path / "ref.nii.gz"
    from anatomica.io.nifti import save_label_map

    save_label_map(maps[0], ref)
    table = tmp_path / "labels.json"
    table.write_text(json.dumps({"heart_ventricle_left": 1, "heart_ventricle_right": 2}))
    out = tmp_path / "data"
    code, stdout, stderr = run_cli(["import", "meshes", tmp_path / "cohort", "--reference", ref, "--labels", table, "--out", out], capsys)
    assert code == 0, stderr
    files = list_label_files(out)
    assert [f.name for f in files] == ["case_0.nii.gz", "case_1.nii.gz"]
    for f, lm in zip(files, maps):
        back = load_label_map(f)
        assert np.array_equal(back.array, lm.array) and np.allclose(back.affine, lm.affine)
        assert back.labels == lm.labels  # names from the part files, values from --labels
    # an axis-aligned grid from a spacing: one shape for the cohort, the labels' volumes kept
    code, stdout, stderr = run_cli(["import", "meshes", tmp_path / "cohort" / "case_0", tmp_path / "cohort" / "case_1",
                                    "--spacing", "1.0", "--out", tmp_path / "iso"], capsys)
    assert code == 0, stderr
    shapes = {load_label_map(f).array.shape for f in list_label_files(tmp_path / "iso")}
    assert len(shapes) == 1
    iso = load_label_map(tmp_path / "iso" / "labelsTr" / "case_0.nii.gz")
    mm3 = abs(np.linalg.det(maps[0].affine[:3, :3]))
    for name, v in maps[0].labels.items():
        mesh_volume = trimesh.load(tmp_path / "cohort" / "case_0" / f"{name}.stl").volume
        assert (iso.array == iso.labels[name]).sum() == pytest.approx(mesh_volume, rel=0.1)
        assert mesh_volume == pytest.approx((maps[0].array == v).sum() * mm3, rel=0.05)


def test_import_meshes_from_vtu_part_ids(tmp_path, capsys):
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
    tets = Delaunay(corners).simplices
    a, b = corners * [8, 6, 6], corners * [6, 6, 6] + [8, 0, 0]
    meshio.Mesh(np.concatenate([a, b]), [("tetra", np.concatenate([tets, tets + 8]))],
                cell_data={"gmsh:physical": [np.r_[[1] * len(tets), [2] * len(tets)]]}).write(tmp_path / "boxes.vtu")
    code, _, stderr = run_cli(["import", "meshes", tmp_path / "boxes.vtu", "--spacing", "0.5", "--out", tmp_path / "data"], capsys)
    assert code == 0, stderr
    lm = load_label_map(tmp_path / "data" / "labelsTr" / "boxes.nii.gz")
    assert lm.labels == {"part_1": 1, "part_2": 2}
    assert (lm.array == 1).sum() * 0.125 == pytest.approx(288, rel=0.05)
    assert (lm.array == 2).sum() * 0.125 == pytest.approx(216, rel=0.05)


@pytest.mark.parametrize("args, message", [
    (["import", "meshes", "{cohort}", "--out", "{out}"], "give the grid"),
    (["import", "meshes", "{cohort}", "--spacing", "0", "--out", "{out}"], "--spacing"),
    (["import", "meshes", "{cohort}", "--spacing", "1", "--shape", "8,8", "--out", "{out}"], "--shape"),
    (["import", "meshes", "{cohort}", "--spacing", "1", "--shape", "6,6,6", "--out", "{out}"], "reaches outside the grid"),
    (["import", "meshes", "{cohort}", "--spacing", "1", "--overlap", "maybe", "--out", "{out}"], "--overlap must be one of"),
    (["import", "meshes", "{overlapping}", "--spacing", "1", "--out", "{out}"], "overlap in"),
    (["import", "meshes", "{open}", "--spacing", "1", "--out", "{out}"], "not a closed surface"),
    (["import", "meshes", "{empty}", "--spacing", "1", "--out", "{out}"], "holds no mesh cases"),
    (["import", "meshes", "{missing}", "--spacing", "1", "--out", "{out}"], "no such file"),
    (["import", "meshes", "{cohort}", "--spacing", "1", "--labels", "{badlabels}", "--out", "{out}"], "not in the --labels table"),
    (["import", "slicer", "{junk}", "--out", "{out}"], "not a Slicer segmentation"),
    (["import", "slicer", "{badnrrd}", "--out", "{out}"], "not a readable segmentation"),
    (["import", "slicer", "{sample}", "--out", "{nonempty}"], "--overwrite"),
])
def test_bad_inputs_are_one_error_line(tmp_path, capsys, args, message):
    _cohort(tmp_path / "cohort")
    (tmp_path / "overlapping").mkdir()
    for name, x in (("a", 0.0), ("b", 3.0)):
        s = trimesh.creation.icosphere(radius=4)
        s.apply_translation((x, 0, 0))
        s.export(tmp_path / "overlapping" / f"{name}.stl")
    (tmp_path / "open").mkdir()
    s = trimesh.creation.icosphere(radius=4)
    s.update_faces(np.arange(len(s.faces)) > 2)
    s.export(tmp_path / "open" / "cup.stl")
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk.txt").write_text("x")
    (tmp_path / "bad.seg.nrrd").write_bytes(b"\x00garbage")
    (tmp_path / "badlabels.json").write_text(json.dumps({"liver": 1}))
    (tmp_path / "nonempty").mkdir()
    (tmp_path / "nonempty" / "keep.txt").write_text("keep")
    fill = {"cohort": tmp_path / "cohort", "out": tmp_path / "out", "overlapping": tmp_path / "overlapping", "open": tmp_path / "open",
            "empty": tmp_path / "empty", "missing": tmp_path / "nope", "junk": tmp_path / "junk.txt", "badnrrd": tmp_path / "bad.seg.nrrd",
            "badlabels": tmp_path / "badlabels.json", "sample": SAMPLE, "nonempty": tmp_path / "nonempty"}
    code, stdout, stderr = run_cli([str(a).format(**fill) for a in args], capsys)
    assert code == 2 and stderr.startswith("error:") and message in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and (tmp_path / "nonempty" / "keep.txt").read_text() == "keep"
