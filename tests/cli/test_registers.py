import json
import sys

import nibabel as nib
import numpy as np
import pytest

import anatomica.cli.app as cli
from anatomica.io.dataset import write_dataset_json
from anatomica.io.nifti import LabelMap, save_label_map

LABELS = {"heart_myocardium": 1, "aorta": 2}


@pytest.fixture
def run(monkeypatch, capsys):
    def _run(*args):
        monkeypatch.setattr(sys, "argv", ["anatomica", *map(str, args)])
        code = 0
        try:
            cli.main()
        except SystemExit as e:
            code = e.code
        out, err = capsys.readouterr()
        return code, out, err

    return _run


def phantom_folder(path, n=5, size=20):
    g = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij")).astype(float)
    cases = []
    for i in range(n):
        r = np.sqrt(((g - size / 2 - i % 2) ** 2).sum(0))
        lab = np.where(r < 3 + i % 2, 2, np.where(r < 7, 1, 0)).astype(np.int32)
        save_label_map(LabelMap(lab, np.diag([2.0, 2.0, 2.0, 1.0]), LABELS), path / "labelsTr" / f"heart_{i:03d}.nii.gz")
        cases.append(f"heart_{i:03d}")
    write_dataset_json(path, "heart", LABELS, cases)
    return path


def test_cli_end_to_end(tmp_path, run):
    ph = phantom_folder(tmp_path / "ph")
    d, reg, base = tmp_path / "ct", tmp_path / "reg", tmp_path / "base"
    code, out, err = run("registers", "data", "--source", "phantoms", "--phantoms", ph, "--out", d, "--seed", 1)
    assert code == 0, err
    assert len(list((d / "imagesTr").iterdir())) == 5
    net = ["--data", d, "--autoencoder", "none", "--size", 32, "--steps", 2, "--batch-size", 4, "--n-aug", 8, "--channels", "8,16",
           "--attention", "0,1", "--head-channels", 8, "--registers-per-class", 2, "--register-dim", 8, "--seed", 0]
    assert run("registers", "train", *net, "--out", reg)[0] == 0
    assert run("registers", "train", *net, "--out", base, "--baseline")[0] == 0
    wide = tmp_path / "wide"
    assert run("registers", "train", *net, "--out", wide, "--baseline", "--widen")[0] == 0
    reg_n = json.loads((reg / "config.json").read_text())["meta"]["parameters"]["total"]
    base_n = json.loads((base / "config.json").read_text())["meta"]["parameters"]["total"]
    wide_n = json.loads((wide / "config.json").read_text())["meta"]["parameters"]["total"]
    assert abs(wide_n - reg_n) < abs(base_n - reg_n)  # widened towards the register model's size
    code, out, err = run("registers", "train", *net, "--out", tmp_path / "bad", "--widen")
    assert code == 2 and "--baseline" in err
    # a model without a head writes images only: no all-zero masks passed off as labels
    code, out, err = run("registers", "sample", "--model", base, "--n", 2, "--steps", 2, "--out", tmp_path / "sb")
    assert code == 0, err
    assert (tmp_path / "sb" / "imagesTr" / "sample_0001_0000.nii.gz").is_file() and not (tmp_path / "sb" / "labelsTr").exists()
    for out_dir in ("s1", "s2"):
        code, out, err = run("registers", "sample", "--model", reg, "--n", 2, "--steps", 2, "--seed", 3, "--out", tmp_path / out_dir)
        assert code == 0, err
    a, b = (nib.load(str(tmp_path / s / "imagesTr" / "sample_0001_0000.nii.gz")).get_fdata() for s in ("s1", "s2"))
    assert a.shape == (32, 32, 1) and np.array_equal(a, b)  # same seed, same image
    assert (tmp_path / "s1" / "labelsTr" / "sample_0001.nii.gz").is_file() and (tmp_path / "s1" / "samples.png").is_file()
    code, out, err = run("registers", "sample", "--model", reg, "--n", 2, "--out", tmp_path / "s1")
    assert code == 2 and err.count("\n") == 1 and "--overwrite" in err
    code, out, err = run("registers", "edit", "--model", reg, "--edit", "scale:aorta:3", "--n", 2, "--steps", 2, "--out", tmp_path / "e")
    assert code == 0, err
    effect = json.loads((tmp_path / "e" / "effect.json").read_text())
    assert effect["classes"] == ["background", "heart_myocardium", "aorta"] and len(effect["head_area_after"]) == 3
    code, out, err = run("registers", "edit", "--model", reg, "--edit", "scale:liver:3", "--out", tmp_path / "e2")
    assert code == 2 and "unknown class" in err
    code, out, err = run("registers", "edit", "--model", base, "--edit", "zero:aorta", "--out", tmp_path / "e3")
    assert code == 2 and "baseline" in err
    code, out, err = run("registers", "edit", "--model", reg, "--edit", "swap:aorta", "--other", reg, "--n", 2, "--steps", 2, "--out", tmp_path / "e4")
    assert code == 0, err
    effect = json.loads((tmp_path / "e4" / "effect.json").read_text())
    assert effect["head_area_before"] == effect["head_area_after"]  # swapping with an identical bank is a no-op
    code, out, err = run("registers", "edit", "--model", reg, "--edit", "swap:aorta", "--other", base, "--out", tmp_path / "e5")
    assert code == 2 and "not a register model" in err
    code, out, err = run("registers", "edit", "--model", reg, "--edit", "drop:aorta", "--n", 2, "--steps", 2, "--out", tmp_path / "e6")
    assert code == 0, err
    reg1 = tmp_path / "reg1"
    assert run("registers", "train", *net[:-1], 1, "--out", reg1)[0] == 0
    ev = ["--n", 4, "--steps", 1, "--seg-steps", 1, "--tstr-steps", 1, "--n-real", 4, "--n-boot", 5]
    code, out, err = run("registers", "evaluate", "--model", f"reg={reg}", "--model", f"reg={reg1}", "--baseline", base, *ev, "--out", tmp_path / "ev")
    assert code == 0, err
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert set(res["runs"]) == {"reg", "baseline"} and set(res["runs"]["reg"]) == {"0", "1"}
    assert "consistency_dice" in res["runs"]["reg"]["0"] and "consistency_dice" not in res["runs"]["baseline"]["0"]
    assert res["comparison"]["reference_arm"] == "reg" and "fmd_judge" in res["comparison"]["paired"]["baseline"]
    assert res["data"]["judge_independent"] is False
    assert "Seed-paired differences" in (tmp_path / "ev" / "table.md").read_text()
    assert (tmp_path / "ev" / "segmenter" / "config.json").is_file() and (tmp_path / "ev" / "samples.png").is_file()
    code, out, err = run("registers", "evaluate", "--model", f"reg={reg}", "--model", f"reg={reg}", *ev, "--out", tmp_path / "ev2")
    assert code == 2 and "share training seed" in err
