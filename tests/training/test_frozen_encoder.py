"""Training the decoders (or the field alone) on a frozen encoder: the encoder's weights, hence the latents and any
prior trained on them, stay bit-identical; the trained parts move; boundary-weighted field points."""

from pathlib import Path

import numpy as np
import pytest
import torch

from anatomica.io.checkpoint import load_weights
from anatomica.io.dataset import write_dataset_json
from anatomica.io.nifti import LabelMap, save_label_map
from anatomica.nn.autoencoder import AutoencoderConfig
from anatomica.training.autoencoder import AutoencoderTrainConfig, boundary_voxels
from anatomica.training.fit import train_autoencoder

AE = AutoencoderConfig(channels=(8, 8, 8), norm_num_groups=8, field={"features": 8, "hidden": 16, "conv_layers": 1})
TRAIN = dict(batch_size=2, lr=3e-3, field_points=128, checkpoint_every=10, log_every=1)


def _data(out: Path, n: int = 4, size: int = 16) -> Path:
    rng = np.random.default_rng(0)
    g = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"), -1).astype(float)
    names = []
    for i in range(n):
        a = np.zeros((size,) * 3, np.uint8)
        c, r = rng.uniform(0.4, 0.6, 3) * size, rng.uniform(0.2, 0.3, 3) * size
        a[(((g - c) / r) ** 2).sum(-1) < 1] = 1
        names.append(f"toy_{i:03d}")
        save_label_map(LabelMap(a, np.diag([2.0, 2.0, 2.0, 1.0])), out / "labelsTr" / f"{names[-1]}.nii.gz")
    write_dataset_json(out, "toy", {"blob": 1}, names)
    return out


@pytest.mark.parametrize("trainable", ["decoders", "field"])
def test_frozen_encoder_keeps_latents(tmp_path, trainable):
    torch.set_num_threads(1)
    data = _data(tmp_path / "data")
    first = train_autoencoder(data, tmp_path / "ae", model=AE, train=AutoencoderTrainConfig(steps=2, **TRAIN), progress=False)
    tc = AutoencoderTrainConfig(steps=2, trainable=trainable, init=str(first), boundary_fraction=0.5, **TRAIN)
    second = train_autoencoder(data, tmp_path / "ae2", model=AE, train=tc, progress=False)
    a, _ = load_weights(first, "autoencoder")
    b, _ = load_weights(second, "autoencoder")
    moved = {k for k in a if not torch.equal(a[k], b[k])}
    assert moved and all(k.startswith("field.") or (trainable == "decoders" and k.startswith(("kl.decoder.", "kl.post_quant_conv."))) for k in moved)
    assert any(k.startswith("field.") for k in moved)
    if trainable == "decoders":
        assert any(k.startswith("kl.decoder.") for k in moved)


def test_boundary_voxels_lie_on_label_borders():
    lab = torch.zeros(1, 8, 8, 8, dtype=torch.uint8)
    lab[0, 2:6, 2:6, 2:6] = 1
    flat = boundary_voxels(lab, 200, torch.Generator().manual_seed(0))
    ijk = np.stack(np.unravel_index(flat[0].numpy(), (8, 8, 8)), -1)
    inside = lab[0].numpy()[tuple(ijk.T)] == 1
    core = np.all((ijk >= 3) & (ijk <= 4), axis=1)
    shell = np.all((ijk >= 1) & (ijk <= 6), axis=1)
    assert shell.all() and not (inside & core).any()  # borders only, on both sides of the surface
    with pytest.raises(ValueError, match="trainable"):
        AutoencoderTrainConfig(trainable="encoder")


def test_cli_fine_tunes_the_field_of_a_run_with_its_own_architecture(tmp_path, capsys):
    """`train autoencoder --init AE --trainable field`: the init run's architecture wins over the --channels default."""
    from helpers import run_cli

    data = _data(tmp_path / "data")
    first = train_autoencoder(data, tmp_path / "ae", model=AE, train=AutoencoderTrainConfig(steps=2, **TRAIN), progress=False)
    code, _, err = run_cli(["train", "autoencoder", "--data", data, "--out", tmp_path / "ft", "--init", first, "--trainable", "field",
                            "--boundary-fraction", "0.5", "--steps", "2", "--batch-size", "2", "--field-points", "64", "--threads", "1"], capsys)
    assert code == 0, err
    a, _ = load_weights(first, "autoencoder")
    b, cfg = load_weights(tmp_path / "ft", "autoencoder")
    assert cfg["model"]["channels"] == [8, 8, 8] and cfg["train"]["boundary_fraction"] == 0.5
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("kl.encoder."))


def test_cli_upscale_trains_finer_decoders_on_the_coarse_encoder(tmp_path, capsys):
    """`--init AE --upscale 2 --trainable decoders` on maps twice as fine: the encoder stays bit-identical (a prior on
    its latents stays valid), the config records upscale 2, and the new refinement head and both decoders train."""
    from helpers import run_cli

    first = train_autoencoder(_data(tmp_path / "d16"), tmp_path / "ae", model=AE, train=AutoencoderTrainConfig(steps=2, **TRAIN), progress=False)
    code, _, err = run_cli(["train", "autoencoder", "--data", _data(tmp_path / "d32", size=32), "--out", tmp_path / "up", "--init", first,
                            "--upscale", "2", "--trainable", "decoders", "--steps", "2", "--batch-size", "2", "--field-points", "64",
                            "--lr", "3e-3", "--threads", "1"], capsys)
    assert code == 0, err
    a, _ = load_weights(first, "autoencoder")
    b, cfg = load_weights(tmp_path / "up", "autoencoder")
    assert cfg["model"]["upscale"] == 2 and cfg["data"]["shape"] == [32, 32, 32]
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith(("kl.encoder.", "kl.quant_conv")))
    assert any(k.startswith("refine.") and not torch.all(b[k] == 0) for k in b if k.endswith("convs.4.weight"))
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("field."))


@pytest.mark.parametrize("args, message", [
    (["--upscale", "0"], "--upscale must be >= 1"),
    (["--trainable", "field"], "pass --init"),
    (["--trainable", "encoder"], "--trainable must be one of"),
    (["--boundary-fraction", "1.5"], "--boundary-fraction must be <= 1"),
])
def test_cli_fine_tuning_options_are_checked(tmp_path, capsys, args, message):
    from helpers import run_cli

    data = _data(tmp_path / "data", n=2)
    code, _, err = run_cli(["train", "autoencoder", "--data", data, "--out", tmp_path / "r", "--steps", "1", *args], capsys)
    assert code != 0 and message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
