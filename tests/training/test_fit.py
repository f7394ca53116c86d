"""Training end to end on a toy 16³ dataset: loss falls, resume is exact, DDP runs, samples are reproducible,
damaged or mismatched runs fail with one line."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from helpers import run_cli

from anatomica.data.datasets import load_label_dataset
from anatomica.errors import AnatomicaError
from anatomica.guided.run import prior_latents
from anatomica.io.checkpoint import load_tree, load_weights
from anatomica.io.dataset import write_dataset_json
from anatomica.io.nifti import LabelMap, save_label_map
from anatomica.model import load_model
from anatomica.nn.autoencoder import AutoencoderConfig
from anatomica.nn.unet import UNetConfig
from anatomica.training.autoencoder import AutoencoderTrainConfig
from anatomica.training.diffusion import DiffusionTrainConfig
from anatomica.training.fit import train_autoencoder, train_diffusion

AFFINE = np.array([[2.0, 0, 0, -20.0], [0, 2.0, 0, 5.0], [0, 0, 2.0, 30.0], [0, 0, 0, 1]])
AE = AutoencoderConfig(channels=(8, 8, 8), norm_num_groups=8, field={"features": 8, "hidden": 16, "upsample": 0})
AE_TRAIN = dict(batch_size=2, lr=3e-3, field_points=256, checkpoint_every=2, log_every=1)
UNET = UNetConfig(channels=(32, 32), attention_levels=(False, True), num_res_blocks=1, num_head_channels=16, norm_num_groups=8)
LDM_TRAIN = dict(batch_size=2, checkpoint_every=2, log_every=1)
QUIET = dict(progress=False)


def make_dataset(out: Path, n: int = 6, size: int = 16, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    g = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"), -1).astype(float)
    cases = []
    for i in range(n):
        a = np.zeros((size,) * 3, np.uint8)
        for v in (1, 2):
            c, r = rng.uniform(0.3, 0.7, 3) * size, rng.uniform(0.15, 0.25, 3) * size
            a[(((g - c) / r) ** 2).sum(-1) < 1] = v
        cases.append(f"toy_{i:03d}")
        save_label_map(LabelMap(a, AFFINE), out / "labelsTr" / f"{cases[-1]}.nii.gz")
    write_dataset_json(out, "toy", {"left": 1, "right": 2}, cases)
    return out


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("train")
    data = make_dataset(root / "data")
    ae = train_autoencoder(data, root / "ae", model=AE, train=AutoencoderTrainConfig(steps=6, **AE_TRAIN), **QUIET)
    ldm = train_diffusion(None, ae, root / "ldm", unet=UNET, train=DiffusionTrainConfig(steps=5, **LDM_TRAIN), **QUIET)
    return {"root": root, "data": data, "ae": ae, "ldm": ldm}


def logged_losses(run: Path) -> list[float]:
    with open(run / "logs" / "csv" / "metrics.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r.get("loss")]


def assert_same_weights(a: Path, b: Path) -> None:
    A, _ = load_weights(a)
    B, _ = load_weights(b)
    assert A.keys() == B.keys()
    assert all(torch.equal(A[k], B[k]) for k in A)


def test_dataset_resampling_keeps_world_geometry(work):
    full = load_label_dataset(work["data"])
    half = load_label_dataset(work["data"], size=8)
    assert full.shape == (16, 16, 16) and half.shape == (8, 8, 8) and len(half) == 6
    assert half.label_table == {"left": 1, "right": 2} and half.num_classes == 3
    assert np.allclose(np.linalg.norm(half.affine[:3, :3], axis=0), 4.0)
    centre = lambda aff, n: aff[:3, :3] @ np.full(3, (n - 1) / 2) + aff[:3, 3]  # noqa: E731
    assert np.allclose(centre(half.affine, 8), centre(full.affine, 16))  # same field of view
    assert half.onehot([0, 1]).shape == (2, 3, 8, 8, 8)
    train, val = full.split(0.2)
    assert len(train) == 4 and val.cases == ["toy_004", "toy_005"]


def test_dataset_errors(tmp_path):
    data = make_dataset(tmp_path / "d", n=1)
    (data / "dataset.json").unlink()
    with pytest.raises(AnatomicaError, match="no dataset.json"):
        load_label_dataset(data)
    write_dataset_json(data, "toy", {"left": 1}, ["toy_000"])
    with pytest.raises(AnatomicaError, match=r"label values \[2\] are not in dataset.json"):
        load_label_dataset(data)


def test_autoencoder_loss_falls_and_metrics_written(work):
    losses = logged_losses(work["ae"])
    assert len(losses) == 6
    assert np.mean(losses[-2:]) < np.mean(losses[:2])
    m = json.loads((work["ae"] / "metrics.json").read_text())
    assert set(m["dice"]) == {"conv", "field"} and set(m["dice"]["conv"]) == {"left", "right"}


def test_autoencoder_resume_reproduces_uninterrupted_run(work):
    root = work["root"]
    part = train_autoencoder(work["data"], root / "ae_part", model=AE, train=AutoencoderTrainConfig(steps=3, **AE_TRAIN), **QUIET)
    assert load_tree(part / "checkpoints" / "last.safetensors")["global_step"] == 3
    train_autoencoder(resume=part, steps=6, **QUIET)
    assert_same_weights(part, work["ae"])
    assert np.allclose(logged_losses(part), logged_losses(work["ae"]))  # the CSV log continues, not restarts


def test_diffusion_resume_reproduces_uninterrupted_run(work):
    root = work["root"]
    part = train_diffusion(None, work["ae"], root / "ldm_part", unet=UNET, train=DiffusionTrainConfig(steps=2, **LDM_TRAIN), **QUIET)
    train_diffusion(resume=part, steps=5, **QUIET)
    assert_same_weights(part, work["ldm"])  # EMA weights included


def test_bundle_geometry_and_seeded_sampling(work):
    b = load_model(work["ldm"])
    assert b.latent_shape == (4, 4, 4, 4) and b.shape == (16, 16, 16)
    assert b.labels == {"left": 1, "right": 2} and np.allclose(b.affine, AFFINE)
    assert torch.equal(b.initial_noise(3, seed=5)[2:], b.initial_noise(1, seed=5, start=2))
    z1, z2, z3 = prior_latents(b, [0, 1], 1, 3), prior_latents(b, [0, 1], 1, 3), prior_latents(b, [0, 1], 2, 3)
    assert torch.equal(z1, z2) and not torch.equal(z1, z3)
    z = z1.clone().requires_grad_(True)  # guidance differentiates through the denoiser and the decoders
    with torch.enable_grad():
        (b.denoiser(z, 1.0).sum() + b.query(z, torch.zeros(5, 3)).sum() + b.decode(z).sum()).backward()
    assert z.grad.abs().sum() > 0
    assert b.decode(z1).shape == b.decode_field(z1).shape == (2, 3, 16, 16, 16)


def test_sample_cli_writes_reproducible_label_maps(work, capsys):
    out1, out2 = work["root"] / "s1", work["root"] / "s2"
    args = ["sample", "--model", work["ldm"], "--n", 3, "--steps", 2, "--seed", 4, "--batch-size", 2]
    assert run_cli([*args, "--out", out1], capsys)[0] == 0
    assert run_cli([*args, "--out", out2, "--batch-size", 3], capsys)[0] == 0
    files = sorted((out1 / "labelsTr").glob("*.nii.gz"))
    assert len(files) == 3 and (out1 / "mosaic.png").stat().st_size > 0
    img = nib.load(files[0])
    assert np.allclose(img.affine, AFFINE)
    assert json.loads((out1 / "dataset.json").read_text())["labels"] == {"background": 0, "left": 1, "right": 2}
    for f in files:
        assert np.array_equal(nib.load(f).get_fdata(), nib.load(out2 / "labelsTr" / f.name).get_fdata())
    code, _, err = run_cli([*args, "--out", out1], capsys)
    assert code == 2 and err.strip().startswith("error:") and "--overwrite" in err and len(err.strip().splitlines()) == 1


def test_damaged_or_mismatched_runs_fail_with_one_line(work, capsys, tmp_path):
    import shutil

    bad = tmp_path / "ldm"
    shutil.copytree(work["ldm"], bad)
    weights = bad / "model.safetensors"
    raw = weights.read_bytes()
    weights.write_bytes(raw[: len(raw) // 2])
    code, _, err = run_cli(["sample", "--model", bad, "--n", 1, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "truncated" in err and len(err.strip().splitlines()) == 1
    weights.write_bytes(raw)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["model"]["unet"]["channels"] = [64, 64]
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(AnatomicaError, match="has shape"):
        load_model(bad)
    cfg["model"]["unet"]["channels"] = [32, 32, 32]
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(AnatomicaError, match="does not match the configured model|invalid model configuration"):
        load_model(bad)
    with pytest.raises(AnatomicaError, match="holds a 'autoencoder' model"):
        load_model(work["ae"])
    # resume from a truncated checkpoint
    part = tmp_path / "ae"
    shutil.copytree(work["ae"], part)
    last = part / "checkpoints" / "last.safetensors"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(AnatomicaError, match="truncated|corrupted"):
        train_autoencoder(resume=part, steps=8, **QUIET)
    with pytest.raises(AnatomicaError, match="already trained for 6 steps"):
        train_autoencoder(resume=work["ae"], **QUIET)
    code, _, err = run_cli(["train", "autoencoder", "--data", work["data"], "--out", work["ae"]], capsys)
    assert code == 2 and "exists and is not empty" in err


def test_two_process_ddp_run(work, tmp_path):
    exe = Path(sys.executable).parent / "anatomica"
    cmd = [str(exe), "train", "autoencoder", "--data", str(work["data"]), "--out", str(tmp_path / "ddp"), "--steps", "2",
           "--batch-size", "1", "--channels", "8,8,8", "--field-features", "8", "--field-points", "128", "--threads", "1"]
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_PORT")}
    proc = subprocess.run([*cmd, "--devices", "2"], capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "MEMBER: 2/2" in proc.stderr + proc.stdout
    assert load_tree(tmp_path / "ddp" / "checkpoints" / "last.safetensors")["global_step"] == 2
    assert (tmp_path / "ddp" / "model.safetensors").is_file()


def test_edm_loss_falls_with_the_unet():
    from anatomica.diffusion.edm import EDMPrecond, edm_loss
    from anatomica.nn.unet import DenoiserUNet

    torch.manual_seed(0)
    D = EDMPrecond(DenoiserUNet(UNET))
    x0 = torch.randn(4, 4, 4, 4, 4)
    opt = torch.optim.Adam(D.parameters(), lr=2e-3)
    losses = []
    for _ in range(8):
        loss = edm_loss(D, x0, generator=torch.Generator().manual_seed(0))  # same σ and noise: a pure fit
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]
