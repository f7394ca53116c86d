"""report.html: self-contained (no network), the run's tables, legend colours, and — in headless Chromium — a
3D view that loads without errors and shows the label colours."""

import base64
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import ball, oblique_affine

from anatomica.guided.figures import write_mosaic
from anatomica.guided.html_report import report_html, sample_extras, write_report
from anatomica.io.colors import color_hex, color_of
from anatomica.io.dataset import write_dataset_json
from anatomica.io.nifti import LabelMap, save_label_map

LABELS = {"heart_ventricle_left": 1, "heart_ventricle_right": 2}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _report(name: str) -> dict:
    return {"sample": int(name[-3:]), "file": f"labelsTr/{name}.nii.gz", "task": "toy", "seed": 0, "reference": None, "guidance": {},
            "seconds": 1.0, "potential": {"final": 0.0123, "final_terms": {}, "calls": []},
            "domains": [{"name": "lv_box", "kind": "volume", "mass_unit": "mL", "domain": {},
                         "measured": {"mass": 12.5, "mass_fraction": 0.1, "centroid_mm": [1.0, 2.0, 3.0], "normalized_covariance": None, "betti": [1, 0, 0]},
                         "target": {"mass": 15.25, "mass_fraction": 0.12, "centroid_mm": [1.5, 2.5, 3.5], "normalized_covariance": None, "betti": [1, 0, 0]},
                         "errors": {"mass": 0.02, "centroid": 0.01, "covariance": 0.03}, "betti_match": [True, True, True]}]}


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> tuple[Path, dict]:
    """A finished guided sample folder in miniature: two 24³ label maps, dataset.json, mosaic, reports."""
    folder = tmp_path_factory.mktemp("run") / "rv"
    shape = (24, 24, 24)
    names = []
    arrays = []
    for i, shift in enumerate((0, 2)):
        a = np.zeros(shape, np.uint8)
        a[ball(shape, (8 + shift, 12, 12), 6)] = 1
        a[ball(shape, (17, 12, 12), 5) & (a == 0)] = 2
        names.append(f"sample_{i:03d}")
        arrays.append(a)
        save_label_map(LabelMap(a, oblique_affine((1.5, 1.5, 2.0)), LABELS), folder / "labelsTr" / f"{names[-1]}.nii.gz")
    write_dataset_json(folder, "guided samples", LABELS, names)
    write_mosaic(np.stack(arrays), folder / "mosaic.png", 3)
    for n in names:
        (folder / "reports").mkdir(exist_ok=True)
        (folder / "reports" / f"{n}.json").write_text(json.dumps(_report(n)))
    summary = {"task": "toy", "model": "m", "seed": 0, "n": 2, "guidance": {"parsing": "l-local", "guidance_scale": 100.0},
               "final_potential": 0.0123, "seconds_per_sample": 1.0,
               "domains": {"lv_box": {"mass_l1": 0.02, "centroid_l1": 0.01, "covariance_l1": 0.03, "betti_accuracy": [1.0, 1.0, 1.0]}}}
    return folder, summary


def test_report_is_self_contained_with_tables_legend_and_data(run_folder):
    folder, summary = run_folder
    page = report_html(folder, summary)
    # no network: nothing is fetched from outside the page
    for attr in ('src="http', "src='http", 'href="http', "<link", "@import", "url(http"):
        assert attr not in page
    assert "niivue" in page and len(page) > 1_000_000  # the viewer is inline
    for name in LABELS:
        assert name in page and color_hex(name) in page
    assert "15.25" in page and "12.5" in page and "lv_box" in page  # targets vs achieved
    nifti = base64.b64encode((folder / "labelsTr" / "sample_000.nii.gz").read_bytes()).decode()
    assert nifti in page and "data:image/png;base64," in page


def test_extras_hook_writes_meshes_viewer_files_and_report(run_folder, tmp_path):
    folder, summary = run_folder
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    sample_extras("stl", True, 1)(copy, summary)
    assert sorted(p.name for p in (copy / "meshes" / "sample_001").iterdir()) == ["heart_ventricle_left.stl", "heart_ventricle_right.stl"]
    assert sorted(p.name for p in (copy / "viewer").iterdir()) == ["anatomica.ctbl", "itksnap_labels.txt", "sample_000.seg.nrrd", "sample_001.seg.nrrd"]
    assert '<option value="sample_001" selected>' in (copy / "report.html").read_text()


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             # WebGL2 without a GPU: ANGLE on SwiftShader (software), which Chromium only allows when asked
             "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--hide-scrollbars",
             "--window-size=800,600", "--virtual-time-budget=5000"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=180)


def test_headless_chromium_loads_the_page_and_renders_label_colours(run_folder, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI must test report.html in Chromium: .ci/run installs Debian's chromium")
        pytest.skip("needs Debian's chromium (apt-get install -y chromium; .ci/run installs it)")
    folder, summary = run_folder
    page = write_report(folder, summary)
    url = page.resolve().as_uri()
    with tempfile.TemporaryDirectory() as profile:
        dom = _chromium(["--dump-dom", url], Path(profile))
    assert dom.returncode == 0, dom.stderr[-2000:]
    status = dom.stdout.split('<p id="status">', 1)[1].split("<", 1)[0]
    assert status == "ready", status  # errors, rejected promises and console.error calls would show here
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        run = _chromium([f"--screenshot={shot}", url], Path(profile))
    assert shot.is_file(), run.stderr[-2000:]
    import matplotlib.image

    img = (matplotlib.image.imread(shot)[..., :3] * 255).astype(int)
    # the viewer's canvas: the 480 px box at the top left below the title
    view = img[90:560, 35:510].reshape(-1, 3)
    assert view.std() > 10  # not blank
    for name in LABELS:
        # volume rendering shades the colour: look for pixels of the label's hue at any brightness
        rgb = np.array(color_of(name), float)
        norm = view / np.maximum(np.linalg.norm(view, axis=1, keepdims=True), 1)
        close = (norm @ (rgb / np.linalg.norm(rgb)) > 0.985) & (view.sum(1) > 60) & (view.std(1) > 15)
        assert close.sum() > 500, (name, int(close.sum()))


def test_demo_report_puts_the_comparison_above_the_guided_run(run_folder, tmp_path):
    from anatomica.cli.demo import _report

    folder, summary = run_folder
    out = tmp_path / "demo_out"
    shutil.copytree(folder, out / "rv_guided")
    unguided = {**summary, "final_potential": 0.5, "domains": {"lv_box": {"mass_l1": 0.25, "centroid_l1": 0.1, "covariance_l1": 0.2}}}
    page = _report(out, {"unguided": unguided, "guided": summary}).read_text()
    assert (out / "report.html").is_file()
    assert page.index("Unguided vs guided") < page.index("Targets and achieved") and "0.2500" in page and "0.0200" in page


def test_mosaics_use_the_name_colours_and_the_folders_label_table(run_folder, tmp_path):
    import matplotlib.image

    folder, _ = run_folder
    img = (matplotlib.image.imread(folder / "mosaic.png")[..., :3] * 255).round().astype(int).reshape(-1, 3)
    for name in LABELS:  # names read from the dataset.json beside the PNG
        assert (np.abs(img - np.array(color_of(name))).sum(1) <= 3).sum() > 50, name
    from anatomica.guided.figures import figure_labels

    assert figure_labels(folder / "mosaic.png", None) == LABELS and figure_labels(tmp_path / "x.png", None) == {}
