"""`anatomica sample --task`: files, reports, mosaic, pairing with references, and one-line errors."""

import json

import nibabel as nib
import numpy as np
import pytest
from helpers import run_cli

from anatomica.io.nifti import LabelMap, save_label_map


@pytest.fixture(scope="module")
def guided_run(tiny_model, tmp_path_factory):
    """A guided CLI run of 3 samples with a folder of 2 references (sample i pairs with reference i mod 2)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    args = ["sample", "--model", tiny_model["ldm"], "--task", tiny_model["geometric"], "--reference", tiny_model["references"],
            "--n", 3, "--steps", 4, "--seed", 5, "--out", out, "--guidance-scale", 50, "--resolution", "med", "--batch-size", 2]
    return args, out


def test_guided_sample_writes_samples_reports_and_mosaic(guided_run, capsys):
    args, out = guided_run
    code, stdout, stderr = run_cli(args, capsys)
    assert code == 0, stderr
    files = sorted(p.name for p in (out / "labelsTr").iterdir())
    assert files == [f"sample_{i:03d}.nii.gz" for i in range(3)]
    assert (out / "mosaic.png").stat().st_size > 1000 and (out / "dataset.json").is_file()
    img = nib.load(out / "labelsTr" / "sample_000.nii.gz")
    assert img.shape == (16, 16, 16) and np.allclose(img.affine[0, 0], 2.0)
    reports = [json.loads((out / "reports" / f"sample_{i:03d}.json").read_text()) for i in range(3)]
    assert [r["reference"].endswith(name) for r, name in zip(reports, ["toy_000.nii.gz", "toy_001.nii.gz", "toy_000.nii.gz"])] == [True] * 3
    rep = reports[0]
    assert rep["guidance"]["parsing"] == "l-local" and rep["guidance"]["resolution"] == "med" and rep["guidance"]["guidance_scale"] == 50
    calls = rep["potential"]["calls"]
    # unguided calls (here the last one, σ < 0.05) only denoise: the curve holds the guided calls
    assert 0 < len(calls) < 2 * 4 - 1 and all(c["guided"] and c["sigma"] >= 0.05 for c in calls)
    assert np.isfinite(rep["potential"]["final"])
    dom = rep["domains"][0]
    assert dom["name"] == "left_box" and dom["mass_unit"] == "mL"
    assert set(dom["errors"]) == {"mass", "centroid", "covariance"}
    assert dom["target"]["mass"] > 0 and len(dom["target"]["centroid_mm"]) == 3
    # samples 0 and 2 share reference 0, so their targets are equal; sample 1's come from reference 1
    assert reports[0]["domains"][0]["target"] == reports[2]["domains"][0]["target"] != reports[1]["domains"][0]["target"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 3 and set(summary["domains"]["left_box"]) == {"mass_l1", "centroid_l1", "covariance_l1"}
    assert "left_box" in stdout


def test_guided_sample_refuses_to_overwrite_and_is_reproducible(guided_run, capsys):
    args, out = guided_run
    before = (out / "labelsTr" / "sample_001.nii.gz").read_bytes()
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "not empty" in err and "--overwrite" in err
    code, _, err = run_cli([*args, "--overwrite"], capsys)
    assert code == 0, err
    assert (out / "labelsTr" / "sample_001.nii.gz").read_bytes() == before


def test_topological_task_reports_betti_numbers(tiny_model, tmp_path, capsys):
    out = tmp_path / "topo"
    code, stdout, err = run_cli(["sample", "--model", tiny_model["ldm"], "--task", tiny_model["topological"], "--n", 2, "--steps", 3,
                                 "--parsing", "v", "--out", out], capsys)
    assert code == 0, err
    rep = json.loads((out / "reports" / "sample_001.json").read_text())
    assert rep["reference"] is None
    assert rep["guidance"]["guidance_scale"] == 1e4  # a task without its own default gets the CLI's
    assert rep["domains"][0]["target"]["betti"] == [2, 0, 0] and len(rep["domains"][0]["measured"]["betti"]) == 3
    assert len(json.loads((out / "summary.json").read_text())["domains"]["both"]["betti_accuracy"]) == 3


def test_the_task_default_guidance_scale_applies_unless_the_option_is_given(tiny_model, tmp_path, capsys):
    task = tmp_path / "with_default.yaml"
    task.write_text(tiny_model["topological"].read_text() + "guidance: {scale: 7}\n")
    for extra, expected in (([], 7.0), (["--guidance-scale", 3], 3.0), (["--guidance-scale", 0], 0.0)):
        out = tmp_path / f"run_{expected:g}"
        code, _, err = run_cli(["sample", "--model", tiny_model["ldm"], "--task", task, "--n", 1, "--steps", 2, "--out", out, *extra], capsys)
        assert code == 0, err
        rep = json.loads((out / "reports" / "sample_000.json").read_text())
        assert rep["guidance"]["guidance_scale"] == expected
        assert any(c["guided"] for c in rep["potential"]["calls"]) == (expected > 0)


def test_the_task_names_the_parsing_unless_the_option_is_given(tiny_model, tmp_path, capsys):
    task = tmp_path / "with_parsing.yaml"
    task.write_text(tiny_model["topological"].read_text() + "guidance: {scale: 7, parsing: l-coarse, resolution: med}\n")
    for extra, expected in (([], ("l-coarse", "med")), (["--parsing", "v"], ("v", None)), (["--resolution", "low"], ("l-coarse", "low"))):
        out = tmp_path / f"run_{len(extra)}_{expected[0]}"
        code, _, err = run_cli(["sample", "--model", tiny_model["ldm"], "--task", task, "--n", 1, "--steps", 2, "--out", out, *extra], capsys)
        assert code == 0, err
        rep = json.loads((out / "reports" / "sample_000.json").read_text())
        assert (rep["guidance"]["parsing"], rep["guidance"]["resolution"]) == expected


def test_every_bad_task_or_option_is_one_clear_line(tiny_model, tmp_path, capsys):
    ldm, geo = tiny_model["ldm"], tiny_model["geometric"]
    ref = tiny_model["references"] / "labelsTr" / "toy_000.nii.gz"
    other_fov = tmp_path / "other_fov.nii.gz"
    save_label_map(LabelMap(np.ones((16, 16, 16), np.uint8), np.diag([5.0, 5.0, 5.0, 1.0]), {"left": 1, "right": 2}), other_fov)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: x\ndomains:\n  - name: a\n    labels: [left]\n    targets: {mass: {scale: 0}}\n")
    unknown_label = tmp_path / "unknown.yaml"
    unknown_label.write_text("name: x\ndomains:\n  - name: a\n    labels: [liver]\n")
    relative = tmp_path / "relative.yaml"
    relative.write_text("name: x\ndomains:\n  - name: a\n    labels: [left]\n    placement: {kind: global}\n    targets: {mass: {scale: 1.2}}\n")
    bad_default = tmp_path / "bad_default.yaml"
    bad_default.write_text("name: x\ndomains:\n  - name: a\n    labels: [left]\nguidance: {scale: -5}\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["sample", "--model", ldm, "--n", 1, "--steps", 2, "--out", tmp_path / "out"]
    cases = [
        (["--task", "no-such-task"], "no such task file (packaged tasks: aortic-trunk"),
        (["--task", bad_yaml], "domains[0].targets.mass.scale: Input should be greater than 0"),
        (["--task", unknown_label], "unknown label 'liver'"),
        (["--task", bad_default], "guidance.scale: Input should be greater than or equal to 0"),
        (["--task", geo], "is computed from a reference segmentation; give one (--reference)"),
        (["--task", relative], "a relative target (mass scale, centroid {}/offset_mm or covariance {}) needs a reference"),
        (["--task", geo, "--reference", tmp_path / "missing.nii.gz"], "no such reference file or folder"),
        (["--task", geo, "--reference", empty], "no .nii or .nii.gz label maps found"),
        (["--task", geo, "--reference", bad_yaml], "must be a .nii/.nii.gz label map"),
        (["--task", geo, "--reference", other_fov], "different field of view"),
        (["--task", geo, "--reference", ref, "--parsing", "x"], "--parsing must be one of v, l-local, l-coarse"),
        (["--task", geo, "--reference", ref, "--parsing", "v", "--resolution", "low"], "L-parsing only"),
        (["--task", geo, "--reference", ref, "--resolution", "ultra"], "--resolution must be one of low, med, high"),
        (["--task", geo, "--reference", ref, "--guidance-scale", "-1"], "--guidance-scale must be a finite number >= 0"),
        (["--task", geo, "--reference", ref, "--sigma-window", "5"], "--sigma-window: expected two numbers"),
        (["--reference", ref], "guide a --task"),
        (["--parsing", "v"], "guide a --task"),
        (["--task", geo, "--reference", ref, "--model", tmp_path], "config.json"),
    ]
    for extra, message in cases:
        code, _, err = run_cli([*base, *extra], capsys)
        assert code == 2, (extra, err)
        assert message in err, (extra, err)
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, (extra, err)
    assert not (tmp_path / "out").exists()
