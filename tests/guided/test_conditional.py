"""Conditional baselines end to end on the tiny model's autoencoder: a 2-step conditional run records its condition and
loads, resumes exactly, and `anatomica sample --task --reference` on it writes finite label maps and reports,
reproducibly; wrong requests fail with one line."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_cli

from anatomica.io.checkpoint import load_weights
from anatomica.model import load_model
from anatomica.nn.unet import UNetConfig
from anatomica.training.diffusion import DiffusionTrainConfig
from anatomica.training.fit import train_diffusion

UNET = UNetConfig(channels=(16, 16), attention_levels=(False, False), num_res_blocks=1, num_head_channels=16, norm_num_groups=8)
TRAIN = dict(batch_size=2, lr=1e-3, checkpoint_every=2, log_every=1)


@pytest.fixture(scope="module")
def runs(tiny_model, tmp_path_factory) -> dict:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("conditional")
    ae = tiny_model["root"] / "ae"
    explicit = train_diffusion(None, ae, root / "explicit", unet=UNET, train=DiffusionTrainConfig(steps=2, **TRAIN), progress=False,
                               condition="explicit", task=tiny_model["geometric"])
    return {"root": root, "ae": ae, "explicit": explicit, **{k: tiny_model[k] for k in ("geometric", "topological", "references", "ldm", "data")}}


def test_conditional_run_records_its_condition_and_loads(runs):
    config = json.loads((runs["explicit"] / "config.json").read_text())
    cond = config["condition"]
    assert cond["kind"] == "explicit" and cond["task"] == "toy-left-bigger" and cond["domains"] == ["left_box"]
    assert cond["channels"] == 13 and len(cond["mean"]) == len(cond["std"]) == 13 and min(cond["std"]) > 0
    assert config["model"]["unet"]["in_channels"] == 4 + 13 and config["model"]["unet"]["out_channels"] == 4
    bundle = load_model(runs["explicit"])
    assert bundle.condition == cond
    z = torch.zeros(2, *bundle.latent_shape)
    out = bundle.denoiser(z, 1.0, cond=torch.zeros(1, 13, 1, 1, 1))
    assert out.shape == z.shape and torch.isfinite(out).all()


def test_resume_continues_exactly(runs):
    half = train_diffusion(None, runs["ae"], runs["root"] / "resumed", unet=UNET, train=DiffusionTrainConfig(steps=2, **TRAIN),
                           progress=False, condition="explicit", task=runs["geometric"])
    train_diffusion(resume=half, steps=4, progress=False)
    whole = train_diffusion(None, runs["ae"], runs["root"] / "whole", unet=UNET, train=DiffusionTrainConfig(steps=4, **TRAIN),
                            progress=False, condition="explicit", task=runs["geometric"])
    A, ca = load_weights(half)
    B, cb = load_weights(whole)
    assert ca["condition"] == cb["condition"] and all(torch.equal(A[k], B[k]) for k in A)


def test_sampling_a_conditional_model_writes_finite_reports_reproducibly(runs, tmp_path, capsys):
    args = ["sample", "--model", runs["explicit"], "--task", runs["geometric"], "--reference", runs["references"],
            "--n", 3, "--steps", 3, "--seed", 4, "--batch-size", 2, "--threads", 1]
    code, _, err = run_cli([*args, "--out", tmp_path / "a"], capsys)
    assert code == 0, err
    assert any(line.startswith("note:") and "without guidance" in line for line in err.splitlines())
    out = tmp_path / "a"
    files = sorted(p.name for p in (out / "labelsTr").iterdir())
    assert files == [f"sample_{i:03d}.nii.gz" for i in range(3)]
    rep = json.loads((out / "reports" / "sample_002.json").read_text())
    assert rep["guidance"]["conditioning"] == "explicit" and rep["guidance"]["guidance_scale"] == 0
    assert rep["reference"].endswith("toy_000.nii.gz") and np.isfinite(rep["potential"]["final"])
    assert set(rep["domains"][0]["errors"]) == {"mass", "centroid", "covariance"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "toy-left-bigger" and summary["n"] == 3 and (out / "report.html").is_file()
    code, _, err = run_cli([*args, "--out", tmp_path / "b"], capsys)
    assert code == 0, err
    for f in files:
        assert (out / "labelsTr" / f).read_bytes() == (tmp_path / "b" / "labelsTr" / f).read_bytes()


def test_implicit_baseline_through_the_cli(runs, tmp_path, capsys):
    run = tmp_path / "implicit"
    code, _, err = run_cli(["train", "diffusion", "--autoencoder", runs["ae"], "--out", run, "--condition", "implicit",
                              "--task", runs["geometric"], "--steps", 2, "--batch-size", 2, "--unet-channels", "32,32",
                              "--attention", "0,0", "--res-blocks", 1, "--threads", 1], capsys)
    assert code == 0, err
    cond = json.loads((run / "config.json").read_text())["condition"]
    assert cond["kind"] == "implicit" and cond["channels"] == 1
    code, _, err = run_cli(["sample", "--model", run, "--task", runs["geometric"], "--reference", runs["references"] / "labelsTr" / "toy_001.nii.gz",
                            "--n", 1, "--steps", 2, "--out", tmp_path / "s", "--threads", 1], capsys)
    assert code == 0, err
    import nibabel as nib

    labels = np.asarray(nib.load(tmp_path / "s" / "labelsTr" / "sample_000.nii.gz").dataobj)
    assert labels.shape == (16, 16, 16) and set(np.unique(labels)) <= {0, 1, 2}


@pytest.mark.parametrize("extra, message", [
    ([], "give --task toy-left-bigger --reference"),
    (["--task", "{geometric}"], "give --task toy-left-bigger --reference"),
    (["--task", "{topological}", "--reference", "{references}"], "trained for task 'toy-left-bigger'"),
    (["--task", "{geometric}", "--reference", "{references}", "--guidance-scale", "10"], "not guided, drop --guidance-scale"),
])
def test_wrong_requests_to_a_conditional_model_fail_with_one_line(runs, tmp_path, capsys, extra, message):
    fmt = {k: runs[k] for k in ("geometric", "topological", "references")}
    argv = ["sample", "--model", runs["explicit"], "--n", 1, "--steps", 2, "--out", tmp_path / "o", "--threads", 1,
            *[str(a).format(**fmt) for a in extra]]
    code, _, err = run_cli(argv, capsys)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("warning:", "note:"))]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not Path(tmp_path / "o").exists()


def test_a_warm_started_baseline_begins_as_the_prior_and_keeps_its_units(runs, tmp_path):
    """--init: the conditional denoiser starts equal to the prior for every condition (zero-weight condition
    channels), and trains in the prior's latent normalization on the prior's autoencoder."""
    from anatomica.training.diffusion import DiffusionTask

    prior_state, prior_config = load_weights(runs["ldm"])
    prior = load_model(runs["ldm"])
    uc = UNetConfig.from_dict({**prior_config["model"]["unet"], "in_channels": 4 + 13, "out_channels": 4})
    task = DiffusionTask(uc, DiffusionTrainConfig(steps=1), torch.zeros(2, *prior.latent_shape), cond=torch.zeros(2, 13, 1, 1, 1))
    task.init_from(prior_state)
    x, sigma = torch.randn(2, *prior.latent_shape, generator=torch.Generator().manual_seed(0)), torch.tensor([0.7, 3.0])
    c = torch.randn(2, 13, *prior.latent_shape[1:], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(task.ema(x, sigma, cond=c), prior.denoiser(x, sigma), atol=1e-5)
    widened = [k for k, v in task.denoiser.state_dict().items() if v.shape != prior_state[k].shape]
    assert len(widened) == 1
    w = task.denoiser.state_dict()[widened[0]]
    assert torch.equal(w[:, :4], prior_state[widened[0]]) and not w[:, 4:].any()

    run = train_diffusion(runs["data"], None, tmp_path / "warm", train=DiffusionTrainConfig(steps=2, init=str(runs["ldm"]), **TRAIN),
                          progress=False, condition="explicit", task=runs["geometric"])
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["init"] == str(runs["ldm"]) and config["condition"]["kind"] == "explicit"
    for k in ("latent_shift", "latent_scale", "latent_shape"):
        assert config["model"][k] == prior_config["model"][k]
    assert config["model"]["unet"]["channels"] == prior_config["model"]["unet"]["channels"]
    assert (run / "autoencoder.safetensors").read_bytes() == (Path(runs["ldm"]) / "autoencoder.safetensors").read_bytes()


@pytest.mark.parametrize("extra, message", [
    (["--autoencoder", "{ae}"], "drop --autoencoder"),
    ([], "a conditional model"),
])
def test_wrong_warm_starts_fail_with_one_line(runs, tmp_path, capsys, extra, message):
    source = runs["ldm"] if extra else runs["explicit"]
    argv = ["train", "diffusion", "--init", source, "--out", tmp_path / "o", "--steps", 2, "--threads", 1,
            "--condition", "explicit", "--task", runs["geometric"], *[str(a).format(ae=runs["ae"]) for a in extra]]
    code, _, err = run_cli(argv, capsys)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("warning:", "note:"))]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not Path(tmp_path / "o").exists()
