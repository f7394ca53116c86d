import json

import numpy as np
import pytest
from helpers import ball, oblique_affine, run_cli, solid_torus

from anatomica.io.files import write_json
from anatomica.io.nifti import LabelMap, save_label_map
from anatomica.metrics.label_stats import label_statistics

SHAPE = (20, 23, 26)
LABELS = {"heart_atrium_left": 1, "heart_atrium_right": 2, "aorta": 3}


@pytest.fixture
def case(tmp_path):
    a = np.zeros(SHAPE, np.int32)
    a[ball(SHAPE, (6, 7, 8), 4)] = 1
    a[ball(SHAPE, (13, 15, 17), 4)] = 2
    a[solid_torus(SHAPE, (10, 11, 13), 7, 1.5) & (a == 0)] = 3
    lm = LabelMap(a, oblique_affine(), LABELS)
    folder = tmp_path / "data"
    save_label_map(lm, folder / "labelsTr" / "case.nii.gz")
    write_json({"labels": {"background": 0, **LABELS}}, folder / "dataset.json")
    task = tmp_path / "task.yaml"
    task.write_text(
        f"""
name: check
domains:
  - name: atria
    labels: [heart_atrium_left, heart_atrium_right]
    grid: {list(SHAPE)}
    targets: {{mass: {{value: 1.0}}, betti: [2, 0, 0]}}
  - name: la
    labels: [heart_atrium_left]
    placement: {{kind: box, margin: 0.2}}
    grid: [10, 10, 10]
    targets: {{mass: {{scale: 1.5}}, centroid: {{offset_mm: [3, 0, 0]}}}}
"""
    )
    return lm, folder / "labelsTr" / "case.nii.gz", task


def test_measure_json_agrees_with_stats_and_reports_targets(case, capsys):
    lm, seg, task = case
    code, out, err = run_cli(["measure", seg, "--task", task, "--reference", seg, "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    atria, la = result["domains"]
    stats = label_statistics(lm)
    union = (lm.array == 1) | (lm.array == 2)
    # a global domain sampling every voxel measures what `anatomica stats` measures on the union
    assert atria["kind"] == "volume" and atria["mass_unit"] == "mL"
    assert atria["measured"]["mass"] == pytest.approx(stats["heart_atrium_left"]["volume_ml"] + stats["heart_atrium_right"]["volume_ml"])
    ijk = np.argwhere(union)
    xyz = ijk @ lm.affine[:3, :3].T + lm.affine[:3, 3]
    assert np.allclose(atria["measured"]["centroid_mm"], xyz.mean(0), atol=1e-4)
    assert np.allclose(atria["measured"]["covariance_mm2"], np.cov(xyz.T, bias=True), atol=1e-3)
    assert atria["measured"]["betti"] == [2, 0, 0] and atria["target"]["betti"] == [2, 0, 0]
    assert atria["target"]["mass"] == pytest.approx(1.0)
    assert atria["terms"]["topology"] == pytest.approx(-2.0)  # two preserved components, each 1 -> 0
    # relative targets come back in world units: 1.5 × the reference's mass, centroid moved by 3 mm
    assert la["target"]["mass"] == pytest.approx(1.5 * la["measured"]["mass"], rel=1e-6)
    shift = np.subtract(la["target"]["centroid_mm"], la["measured"]["centroid_mm"])
    assert np.allclose(shift, [3, 0, 0], atol=1e-4)
    assert result["potential"] == pytest.approx(result["geometry"] + result["topology"])


def test_measure_table_and_help(case, capsys):
    _, seg, task = case
    code, out, err = run_cli(["measure", seg, "--task", task, "--reference", seg], capsys)
    assert code == 0, err
    assert "atria" in out and "→1.00 mL" in out and "[2,0,0]→[2,0,0]" in out
    code, out, _ = run_cli(["measure", "--help"], capsys)
    assert code == 0 and "mm²" in out and "Example" in out


def test_measure_errors_are_one_line(case, capsys, tmp_path):
    _, seg, task = case
    code, out, err = run_cli(["measure", seg, "--task", task], capsys)
    assert code == 2
    assert err.strip().startswith("error: domain 'la': placement 'box' is computed from a reference")
    assert len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndomains:\n  - {name: a, labels: [aorta], targets: {betti: [-1, 0, 0]}}\n")
    code, _, err = run_cli(["measure", seg, "--task", bad], capsys)
    assert code == 2 and "betti[0]: Input should be greater than or equal to 0" in err
