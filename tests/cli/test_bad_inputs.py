"""Bad input, as a new user would type it, for every command and option family.

Each case must end with exit 2, one ``error: …`` line on stderr, no traceback, and a pre-existing ``--out``
(passed with ``--overwrite`` where the command writes one, so only the bad input can stop it) left byte for
byte as it was.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

from anatomica.io.dataset import write_dataset_json
from anatomica.io.nifti import LabelMap, save_label_map

TOY = {"left": 1, "right": 2}
TOY_AFFINE = np.array([[2.0, 0, 0, -16.0], [0, 2.0, 0, 4.0], [0, 0, 2.0, 20.0], [0, 0, 0, 1]])  # the tiny model's frame


@pytest.fixture(scope="module")
def env(tiny_model, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("bad")
    (root / "a_file.txt").write_text("not a folder\n")
    (root / "random.nii.gz").write_bytes(os.urandom(300))
    (root / "bad.json").write_text("{not json")
    arr = np.zeros((16, 16, 16), np.uint8)
    arr[3:7, 3:7, 3:7], arr[9:13, 9:13, 9:13] = 1, 2
    save_label_map(LabelMap(arr, np.diag([2.0, 2, 2, 1]), TOY), root / "seg" / "labelsTr" / "case.nii.gz")
    write_dataset_json(root / "seg", "toy", TOY, ["case"])
    save_label_map(LabelMap(arr, np.diag([2.0, 2, 2, 1]), {}), root / "plain.nii.gz")
    # a reference whose table names other organs: value 1 is not 'left'
    save_label_map(LabelMap(arr, TOY_AFFINE, {}), root / "stomach" / "labelsTr" / "s.nii.gz")
    write_dataset_json(root / "stomach", "other", {"stomach": 1, "liver": 2}, ["s"])
    tasks = root / "tasks"
    tasks.mkdir()
    for name, text in TASKS.items():
        (tasks / f"{name}.yaml").write_text(text)
    return {"root": root, "ldm": tiny_model["ldm"], "data": tiny_model["data"], "refs": tiny_model["references"],
            "task": tiny_model["geometric"], "topo": tiny_model["topological"], "tasks": tasks}


def _task(targets: str = "{mass: {scale: 1.2}}", weights: str = "{geometry: 1.0, topology: 0.0}", grid: str = "[8, 8, 8]",
          placement: str = "{kind: global}", extra: str = "") -> str:
    return f"""name: bad
{extra}domains:
  - name: d
    labels: [left]
    placement: {placement}
    grid: {grid}
    targets: {targets}
weights: {weights}
"""


TASKS = {
    "mass_inf": _task("{mass: {value: .inf}}"),
    "mass_nan": _task("{mass: {value: .nan}}"),
    "mass_neg": _task("{mass: {value: -3}}"),
    "scale_nan": _task("{mass: {scale: .nan}}"),
    "scale_inf": _task("{mass: {scale: .inf}}"),
    "scale_neg": _task("{mass: {scale: -1}}"),
    "centroid_offset_nan": _task("{centroid: {offset_mm: [.nan, 0, 0]}}"),
    "centroid_offset_inf": _task("{centroid: {offset_mm: [0, .inf, 0]}}"),
    "centroid_value_nan": _task("{centroid: {value_mm: [.nan, 0, 0]}}"),
    "weights_nan": _task(weights="{geometry: .nan, topology: 0.0}"),
    "weights_inf": _task(weights="{geometry: .inf, topology: 0.0}"),
    "weights_neg": _task(weights="{geometry: -1, topology: 0.0}"),
    "grid_huge": _task(grid="[100000, 100000, 100000]"),
    "grid_zero": _task(grid="[0, 8, 8]"),
    "betti_neg": _task("{betti: [-1, 0, 0]}"),
    "temperature_nan": _task(extra="temperature: .nan\n"),
    "temperature_zero": _task(extra="temperature: 0\n"),
    "unknown_label": _task().replace("labels: [left]", "labels: [spleen]"),
    "no_domains": "name: bad\ndomains: []\nweights: {geometry: 1.0, topology: 0.0}\n",
    "not_yaml": "name: [unclosed\n",
    "unknown_key": _task(extra="colour: red\n"),
}


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    if not path.exists():
        return "absent"
    for p in sorted(path.rglob("*")):
        h.update(str(p.relative_to(path)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


S = ["sample", "--model", "{ldm}", "--n", "1", "--steps", "2", "--out", "{out}", "--overwrite"]
G = [*S, "--task", "{task}", "--reference", "{refs}"]
AE = ["train", "autoencoder", "--data", "{data}", "--out", "{out}", "--overwrite", "--steps", "1"]
DF = ["train", "diffusion", "--autoencoder", "{ae}", "--out", "{out}", "--overwrite", "--steps", "1"]
PH = ["phantoms", "--system", "heart", "--n", "1", "--size", "32", "--out", "{out}", "--overwrite"]
ME = ["measure", "{seg}/labelsTr/case.nii.gz", "--task", "{task}"]
RD = ["registers", "data", "--out", "{out}", "--overwrite"]
RA = ["registers", "autoencoder", "--data", "{root}/nothing", "--out", "{out}", "--overwrite"]
RT = ["registers", "train", "--data", "{root}/nothing", "--autoencoder", "none", "--out", "{out}", "--overwrite"]
RS = ["registers", "sample", "--model", "{root}/nothing", "--out", "{out}", "--overwrite"]
RE = ["registers", "evaluate", "--model", "a={root}/nothing", "--out", "{out}", "--overwrite"]

CASES: list[tuple[str, list[str], str]] = [
    # --- usage errors: typer's own, as one line
    ("unknown command", ["sampl"], "No such command"),
    ("unknown option", [*S, "--colour", "red"], "No such option"),
    ("not an integer", [*S, "--n", "two"], "--n"),
    ("not a number", [*G, "--guidance-scale", "big"], "--guidance-scale"),
    ("missing --out", ["sample", "--model", "{ldm}"], "--out"),
    ("missing --model", ["sample", "--out", "{out}"], "--model"),
    ("missing argument", ["measure"], "'seg'"),
    ("stats without path", ["stats"], "'path'"),
    ("train without stage", ["train", "fit"], "No such command"),
    ("registers unknown", ["registers", "fly"], "No such command"),
    # --- phantoms
    ("phantoms system", [*PH, "--system", "liver"], "unknown phantom system"),
    ("phantoms n 0", [*PH, "--n", "0"], "--n"),
    ("phantoms n neg", [*PH, "--n", "-3"], "--n"),
    ("phantoms size small", [*PH, "--size", "7"], "size"),
    ("phantoms size huge", [*PH, "--size", "100000"], "size"),
    ("phantoms seed neg", [*PH, "--seed", "-1"], "--seed"),
    ("phantoms out is file", ["phantoms", "--n", "1", "--size", "32", "--out", "{file}"], "not a folder"),
    ("phantoms out below file", ["phantoms", "--n", "1", "--size", "32", "--out", "{file}/sub"], "which is a file"),
    ("phantoms out not empty", ["phantoms", "--n", "1", "--size", "32", "--out", "{out}"], "not empty"),
    ("phantoms replace non-dataset", ["phantoms", "--n", "1", "--size", "32", "--out", "{foreign}", "--overwrite"], "refusing"),
    # --- stats
    ("stats missing", ["stats", "{root}/nothing"], "no such file"),
    ("stats random bytes", ["stats", "{root}/random.nii.gz"], "gzip"),
    ("stats not nifti", ["stats", "{file}"], "not a NIfTI"),
    ("stats bad labels json", ["stats", "{seg}", "--labels", "{root}/bad.json"], "not valid JSON"),
    ("stats labels missing", ["stats", "{seg}", "--labels", "{root}/none.json"], "no such file"),
    ("stats empty folder", ["stats", "{emptydir}"], "no .nii"),
    # --- train autoencoder
    ("ae data missing", [*AE, "--data", "{root}/nothing"], "no such file"),
    ("ae data is file", [*AE, "--data", "{file}"], "not a folder"),
    ("ae data without dataset.json", [*AE, "--data", "{root}/bare"], "dataset.json"),
    ("ae steps 0", [*AE, "--steps", "0"], "--steps"),
    ("ae batch 0", [*AE, "--batch-size", "0"], "--batch-size"),
    ("ae lr nan", [*AE, "--lr", "nan"], "--lr"),
    ("ae lr inf", [*AE, "--lr", "inf"], "--lr"),
    ("ae lr neg", [*AE, "--lr", "-1"], "--lr"),
    ("ae lr 0", [*AE, "--lr", "0"], "--lr"),
    ("ae kl nan", [*AE, "--kl-weight", "nan"], "--kl-weight"),
    ("ae kl neg", [*AE, "--kl-weight", "-0.1"], "--kl-weight"),
    ("ae kl inf", [*AE, "--kl-weight", "inf"], "--kl-weight"),
    ("ae field points 0", [*AE, "--field-points", "0"], "--field-points"),
    ("ae latent channels 0", [*AE, "--latent-channels", "0"], "--latent-channels"),
    ("ae field features 0", [*AE, "--field-features", "0"], "--field-features"),
    ("ae channels text", [*AE, "--channels", "a,b"], "--channels"),
    ("ae channels zero", [*AE, "--channels", "0,8"], "--channels"),
    ("ae channels odd", [*AE, "--channels", "12,20"], "multiples of 8"),
    ("ae val fraction 1", [*AE, "--val-fraction", "1"], "--val-fraction"),
    ("ae val fraction nan", [*AE, "--val-fraction", "nan"], "--val-fraction"),
    ("ae val fraction neg", [*AE, "--val-fraction", "-0.5"], "--val-fraction"),
    ("ae size 3", [*AE, "--size", "3"], "--size"),
    ("ae size odd", [*AE, "--size", "18"], "divisible"),
    ("ae checkpoint 0", [*AE, "--checkpoint-every", "0"], "--checkpoint-every"),
    ("ae seed neg", [*AE, "--seed", "-1"], "--seed"),
    ("ae threads 0", [*AE, "--threads", "0"], "--threads"),
    ("ae threads neg", [*AE, "--threads", "-2"], "--threads"),
    ("ae devices 0", [*AE, "--devices", "0"], "--devices"),
    ("ae nodes 0", [*AE, "--nodes", "0"], "--nodes"),
    ("ae accelerator", [*AE, "--accelerator", "tpu"], "--accelerator"),
    ("ae no data", ["train", "autoencoder", "--out", "{out}"], "--data"),
    ("ae out is file", ["train", "autoencoder", "--data", "{data}", "--out", "{file}"], "not a folder"),
    ("ae out below file", ["train", "autoencoder", "--data", "{data}", "--out", "{file}/run"], "which is a file"),
    ("ae out not empty", ["train", "autoencoder", "--data", "{data}", "--out", "{out}"], "not empty"),
    ("ae resume missing", ["train", "autoencoder", "--resume", "{root}/nothing"], "no such run folder"),
    ("ae resume not a run", ["train", "autoencoder", "--resume", "{emptydir}"], "not a run folder"),
    # --- train diffusion
    ("df autoencoder missing", [*DF, "--autoencoder", "{root}/nothing"], "no such run folder"),
    ("df autoencoder wrong kind", [*DF, "--autoencoder", "{ldm}"], "expected 'autoencoder'"),
    ("df steps 0", [*DF, "--steps", "0"], "--steps"),
    ("df batch 0", [*DF, "--batch-size", "0"], "--batch-size"),
    ("df lr nan", [*DF, "--lr", "nan"], "--lr"),
    ("df lr neg", [*DF, "--lr", "-1e-3"], "--lr"),
    ("df ema 1", [*DF, "--ema-decay", "1"], "--ema-decay"),
    ("df ema nan", [*DF, "--ema-decay", "nan"], "--ema-decay"),
    ("df ema neg", [*DF, "--ema-decay", "-0.1"], "--ema-decay"),
    ("df unet channels", [*DF, "--unet-channels", "33,64,64"], "multiples of 32"),
    ("df unet channels text", [*DF, "--unet-channels", "x"], "--unet-channels"),
    ("df attention mismatch", [*DF, "--attention", "0,1"], "--attention"),
    ("df attention text", [*DF, "--attention", "yes,no,no"], "--attention"),
    ("df res blocks 0", [*DF, "--res-blocks", "0"], "--res-blocks"),
    ("df seed neg", [*DF, "--seed", "-5"], "--seed"),
    ("df threads 0", [*DF, "--threads", "0"], "--threads"),
    ("df data missing", [*DF, "--data", "{root}/nothing"], "no such file"),
    ("df no autoencoder", ["train", "diffusion", "--out", "{out}"], "--autoencoder"),
    ("df packaged without data", [*DF, "--autoencoder", "{packaged_ae}"], "--data"),
    ("df out is file", ["train", "diffusion", "--autoencoder", "{ae}", "--out", "{file}"], "not a folder"),
    # --- sample, unguided
    ("sample model missing", [*S, "--model", "{root}/nothing"], "no such run folder"),
    ("sample model unknown name", [*S, "--model", "heart999"], "packaged"),
    ("sample model is file", [*S, "--model", "{file}"], "not a model run folder"),
    ("sample model wrong kind", [*S, "--model", "{ae}"], "expected 'latent_diffusion'"),
    ("sample n 0", [*S, "--n", "0"], "--n"),
    ("sample n neg", [*S, "--n", "-1"], "--n"),
    ("sample steps 0", [*S, "--steps", "0"], "--steps"),
    ("sample batch 0", [*S, "--batch-size", "0"], "--batch-size"),
    ("sample sampler", [*S, "--sampler", "ddim"], "--sampler"),
    ("sample decoder", [*S, "--decoder", "mesh"], "--decoder"),
    ("sample threads 0", [*S, "--threads", "0"], "--threads"),
    ("sample seed neg", [*S, "--seed", "-1"], "--seed"),
    ("sample seed huge", [*S, "--seed", str(2**64)], "--seed"),
    ("sample reference without task", [*S, "--reference", "{refs}"], "guide a --task"),
    ("sample scale without task", [*S, "--guidance-scale", "10"], "guide a --task"),
    ("sample parsing without task", [*S, "--parsing", "v"], "guide a --task"),
    ("sample recurrence without task", [*S, "--recurrence", "1"], "--recurrence: these guide a --task"),
    ("sample resolution without task", [*S, "--resolution", "low"], "--resolution: these guide a --task"),
    ("sample out is file", ["sample", "--model", "{ldm}", "--n", "1", "--steps", "2", "--out", "{file}"], "not a folder"),
    ("sample out below file", ["sample", "--model", "{ldm}", "--n", "1", "--steps", "2", "--out", "{file}/x"], "which is a file"),
    ("sample out not empty", ["sample", "--model", "{ldm}", "--n", "1", "--steps", "2", "--out", "{out}"], "not empty"),
    # --- sample, guided
    ("guided task missing", [*S, "--task", "{root}/nothing.yaml"], "no such task"),
    ("guided task unknown name", [*S, "--task", "left-kidney"], "no such task"),
    ("guided reference missing", [*G, "--reference", "{root}/nothing"], "no such"),
    ("guided reference not nifti", [*G, "--reference", "{file}"], "must be a .nii"),
    ("guided reference random", [*G, "--reference", "{root}/random.nii.gz"], "gzip"),
    ("guided reference other organs", [*G, "--reference", "{root}/stomach"], "'left'"),
    ("guided reference empty folder", [*G, "--reference", "{emptydir}"], "no .nii"),
    ("guided scale nan", [*G, "--guidance-scale", "nan"], "--guidance-scale"),
    ("guided scale inf", [*G, "--guidance-scale", "inf"], "--guidance-scale"),
    ("guided scale neg", [*G, "--guidance-scale", "-1"], "--guidance-scale"),
    ("guided scale diverges", [*G, "--guidance-scale", "1e30"], "diverged"),
    ("guided parsing", [*G, "--parsing", "w"], "--parsing"),
    ("guided resolution", [*G, "--resolution", "ultra"], "--resolution"),
    ("guided v with resolution", [*G, "--parsing", "v", "--resolution", "low"], "L-parsing only"),
    ("guided window text", [*G, "--sigma-window", "low,high"], "--sigma-window"),
    ("guided window one", [*G, "--sigma-window", "1"], "--sigma-window"),
    ("guided window reversed", [*G, "--sigma-window", "5,1"], "--sigma-window"),
    ("guided window nan", [*G, "--sigma-window", "nan,1"], "--sigma-window"),
    ("guided window neg", [*G, "--sigma-window", "-1,1"], "--sigma-window"),
    ("guided window nan max", [*G, "--sigma-window", "0,nan"], "--sigma-window"),
    ("guided decoder", [*G, "--decoder", "x"], "--decoder"),
    ("guided n 0", [*G, "--n", "0"], "--n"),
    ("guided steps 0", [*G, "--steps", "0"], "--steps"),
    ("guided threads 0", [*G, "--threads", "0"], "--threads"),
    # --- measure
    ("measure seg missing", ["measure", "{root}/nothing.nii.gz", "--task", "{task}"], "no such file"),
    ("measure seg random", ["measure", "{root}/random.nii.gz", "--task", "{task}"], "gzip"),
    ("measure seg folder", ["measure", "{seg}", "--task", "{task}"], "is a folder"),
    ("measure task missing", [*ME, "--task", "{root}/nothing.yaml"], "no such task"),
    ("measure labels bad json", [*ME, "--labels", "{root}/bad.json"], "not valid JSON"),
    ("measure no labels", ["measure", "{root}/plain.nii.gz", "--task", "{task}"], "no label names"),
    ("measure reference missing", [*ME, "--reference", "{root}/nothing.nii.gz"], "no such file"),
    ("measure reference random", [*ME, "--reference", "{root}/random.nii.gz"], "gzip"),
    # --- models
    ("models extra argument", ["models", "heart32"], "unexpected extra argument"),
    # --- registers (the image LDM family)
    ("reg data source", [*RD, "--source", "xray"], "--source"),
    ("reg data seed neg", [*RD, "--seed", "-1"], "--seed"),
    ("reg data phantoms missing", [*RD, "--source", "phantoms"], "--phantoms"),
    ("reg data out is file", ["registers", "data", "--out", "{file}"], "not a folder"),
    ("reg ae steps 0", [*RA, "--steps", "0"], "--steps"),
    ("reg ae batch 0", [*RA, "--batch-size", "0"], "--batch-size"),
    ("reg ae n-aug 0", [*RA, "--n-aug", "0"], "--n-aug"),
    ("reg ae latent channels 0", [*RA, "--latent-channels", "0"], "--latent-channels"),
    ("reg ae seed neg", [*RA, "--seed", "-1"], "--seed"),
    ("reg ae threads 0", [*RA, "--threads", "0"], "--threads"),
    ("reg ae data missing", RA, "no such"),
    ("reg train lambda nan", [*RT, "--lambda", "nan"], "--lambda"),
    ("reg train lambda neg", [*RT, "--lambda", "-1"], "--lambda"),
    ("reg train ema nan", [*RT, "--ema", "nan"], "--ema"),
    ("reg train ema 1", [*RT, "--ema", "1"], "--ema"),
    ("reg train lr nan", [*RT, "--lr", "nan"], "--lr"),
    ("reg train lr 0", [*RT, "--lr", "0"], "--lr"),
    ("reg train start nan", [*RT, "--start", "nan"], "--start"),
    ("reg train end inf", [*RT, "--end", "inf"], "--end"),
    ("reg train ground weight inf", [*RT, "--ground-weight", "inf"], "--ground-weight"),
    ("reg train anat sigma 0", [*RT, "--anat-sigma-max", "0"], "--anat-sigma-max"),
    ("reg train per class 0", [*RT, "--registers-per-class", "0"], "--registers-per-class"),
    ("reg train register dim 0", [*RT, "--register-dim", "0"], "--register-dim"),
    ("reg train n-aug 0", [*RT, "--n-aug", "0"], "--n-aug"),
    ("reg train steps 0", [*RT, "--steps", "0"], "--steps"),
    ("reg train batch 0", [*RT, "--batch-size", "0"], "--batch-size"),
    ("reg train seed neg", [*RT, "--seed", "-1"], "--seed"),
    ("reg train spatial dims", [*RT, "--spatial-dims", "4"], "--spatial-dims"),
    ("reg train axis", [*RT, "--axis", "5"], "--axis"),
    ("reg sample n 0", [*RS, "--n", "0"], "--n"),
    ("reg sample steps 0", [*RS, "--steps", "0"], "--steps"),
    ("reg sample batch 0", [*RS, "--batch-size", "0"], "--batch-size"),
    ("reg sample seed neg", [*RS, "--seed", "-1"], "--seed"),
    ("reg sample model missing", RS, "no such run folder"),
    ("reg edit n 0", ["registers", "edit", "--model", "{root}/nothing", "--edit", "zero:csf", "--out", "{out}", "--overwrite", "--n", "0"], "--n"),
    ("reg edit model missing", ["registers", "edit", "--model", "{root}/nothing", "--edit", "zero:csf", "--out", "{out}", "--overwrite"], "no such run folder"),
    ("reg evaluate n 0", [*RE, "--n", "0"], "--n"),
    ("reg evaluate n-real 0", [*RE, "--n-real", "0"], "--n-real"),
    ("reg evaluate n-boot 0", [*RE, "--n-boot", "0"], "--n-boot"),
    ("reg evaluate model missing", RE, "no such run folder"),
]
# every bad task file, through `sample --task` (validated before the model runs) and through `measure --task`
CASES += [(f"task {name} (sample)", [*S, "--task", f"{{tasks}}/{name}.yaml", "--guidance-scale", "1"], "") for name in TASKS]
CASES += [(f"task {name} (measure)", [*ME, "--task", f"{{tasks}}/{name}.yaml"], "") for name in TASKS]


def test_the_suite_covers_enough_cases():
    assert len(CASES) >= 150


@pytest.mark.parametrize("name, args, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line_and_keeps_out(env, tmp_path, capsys, name, args, message, request):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("an earlier result\n")
    (out / "dataset.json").write_text("{}\n")  # so phantoms --overwrite would be allowed to replace it
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "bare").mkdir()
    ae_run = Path(env["ldm"]).parent / "ae"
    from anatomica.pretrained import ROOT

    fmt = {"ldm": env["ldm"], "data": env["data"], "refs": env["refs"], "task": env["task"], "tasks": env["tasks"],
           "out": out, "file": env["root"] / "a_file.txt", "root": env["root"], "seg": env["root"] / "seg",
           "emptydir": tmp_path / "empty", "foreign": foreign, "ae": ae_run, "packaged_ae": _packaged_ae(ROOT, tmp_path)}
    (env["root"] / "bare").mkdir(exist_ok=True)
    (env["root"] / "bare" / "x.nii.gz").write_bytes((env["root"] / "plain.nii.gz").read_bytes())
    argv = [str(a).format(**fmt) for a in args]
    before = {p: _digest(p) for p in (out, foreign, env["root"] / "a_file.txt")}
    code, stdout, err = run_cli(argv, capsys)
    assert code == 2, (argv, stdout[-500:], err[-2000:])
    # progress bars (a run that fails mid-way has shown some) and warnings/notes are not the error
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("warning:", "note:")) and "%|" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert "Traceback" not in err and "Traceback" not in stdout
    assert message in lines[0], lines[0]
    for p, digest in before.items():
        assert _digest(p) == digest, f"{p} changed"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith((".tmp-", ".old-"))]
    assert not leftovers, leftovers


def _packaged_ae(root: Path, tmp: Path) -> Path:
    """An autoencoder run folder in the packaged style: config without a data path (as shipped models have)."""
    import json

    folder = tmp / "packaged_ae"
    if not folder.exists():
        folder.mkdir()
        cfg = json.loads((root / "heart32" / "config.json").read_text())
        ae = {"kind": "autoencoder", "format_version": cfg["format_version"], **cfg["autoencoder"]["config"]}
        (folder / "config.json").write_text(json.dumps(ae))
        (folder / "model.safetensors").write_bytes((root / "heart32" / "autoencoder.safetensors").read_bytes())
    return folder
