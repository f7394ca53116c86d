import json

import numpy as np
from helpers import ball, oblique_affine, run_cli

from anatomica.data.phantoms import generate_dataset
from anatomica.io.dataset import write_dataset_json
from anatomica.io.nifti import LabelMap, save_label_map


def make_dataset(root, n=3):
    shape = (18, 22, 20)
    (root / "labelsTr").mkdir(parents=True)
    for i in range(n):
        arr = np.zeros(shape, np.int32)
        arr[ball(shape, (9, 6 + i, 10), 4)] = 1
        arr[ball(shape, (9, 16, 10), 3)] = 2
        save_label_map(LabelMap(arr, oblique_affine()), root / "labelsTr" / f"c{i}.nii.gz")
    write_dataset_json(root, "toy", {"left": 1, "right": 2}, [f"c{i}" for i in range(n)])
    return root


def test_stats_json_single_file_has_every_field(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds")
    code, out, err = run_cli(["stats", root / "labelsTr" / "c0.nii.gz", "--json"], capsys)
    assert code == 0, err
    res = json.loads(out)
    (f,) = res["files"]
    assert f["shape"] == [18, 22, 20] and len(f["spacing"]) == 3
    left = f["labels"]["left"]
    assert set(left) == {"index", "voxels", "volume_ml", "centroid_mm", "covariance_mm2", "betti"}
    assert left["betti"] == [1, 0, 0] and np.asarray(left["covariance_mm2"]).shape == (3, 3)


def test_stats_folder_summary_and_label_override(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds")
    (tmp_path / "names.json").write_text(json.dumps({"alpha": 1, "beta": 2}))
    code, out, _ = run_cli(["stats", root, "--json", "--labels", tmp_path / "names.json"], capsys)
    res = json.loads(out)
    assert code == 0 and res["summary"]["n_files"] == 3
    assert set(res["summary"]["labels"]) == {"alpha", "beta"}
    assert res["summary"]["labels"]["alpha"]["volume_ml"]["mean"] > 0
    code, out, _ = run_cli(["stats", root], capsys)
    assert code == 0 and "left" in out and "per-label volume" in out


def test_stats_reports_phantom_topology_rates(tmp_path, capsys):
    data = generate_dataset("heart", n=6, size=32, seed=3, out=tmp_path / "heart", progress=False)
    meta = json.loads((data / "dataset.json").read_text())
    expected = np.mean([not c["atria_touching"] for c in meta["cases"].values()])
    code, out, _ = run_cli(["stats", data, "--json"], capsys)
    assert code == 0
    assert json.loads(out)["summary"]["topology_rates"]["atria separate"] == expected


def test_unlabelled_map_gets_generic_names(tmp_path, capsys):
    arr = np.zeros((8, 9, 10), np.int32)
    arr[2:5, 2:5, 2:5] = 7
    save_label_map(LabelMap(arr, np.eye(4)), tmp_path / "x.nii.gz")
    code, out, _ = run_cli(["stats", tmp_path / "x.nii.gz", "--json"], capsys)
    assert code == 0 and list(json.loads(out)["files"][0]["labels"]) == ["label_7"]
