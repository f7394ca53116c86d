"""benchmarks/package_model.py and model_card.py on the tiny model: a packaged copy loads in half precision and
samples like the run; its card holds finite figures in range and the task-topology rates of samples and data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from anatomica.guided.run import prior_latents
from anatomica.io.checkpoint import load_tensors, read_config
from anatomica.model import load_model


def test_package_then_card(tmp_path, tiny_model, bench_script):
    torch.set_num_threads(1)
    package = bench_script("package_model")
    assert package.main(["tiny", "--prior", str(tiny_model["ldm"]), "--anatomy", "toy", "--recipe", "8 toy cases",
                         "--root", str(tmp_path), "--logs", str(tmp_path / "logs")]) == 0
    folder = tmp_path / "tiny"
    config = read_config(folder)
    assert config["anatomy"] == "toy" and config["data"]["path"] is None and config["autoencoder"]["source"] is None
    state, _ = load_tensors(folder / "model.safetensors")
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    a, b = load_model(tiny_model["ldm"]), load_model(folder)
    za, zb = prior_latents(a, [0, 1], 0, 3), prior_latents(b, [0, 1], 0, 3)
    assert torch.allclose(za, zb, atol=0.05)  # half-precision weights, fp32 modules

    card = bench_script("model_card")
    assert card.main([str(folder), "--test", str(tiny_model["references"]), "--task", str(tiny_model["topological"]),
                      "--n", "2", "--steps", "2", "--boot", "20", "--batch", "2"]) == 0
    c = json.loads((folder / "card.json").read_text())
    nna = c["one_nna_all_foreground"]
    assert 0.0 <= nna["ci95"][0] <= nna["ci95"][1] <= 1.0 and 0.0 <= nna["one_nna"] <= 1.0
    assert np.isfinite(c["fmd"]["fmd"]) and c["fmd"]["ci95"][0] >= 0.0
    for who in ("samples", "data"):
        assert 0.0 <= c["task_topology"][who]["rate"] <= 1.0 and c["task_topology"][who]["n"] == 2
    dice = json.loads((folder / "autoencoder_metrics.json").read_text())["mean_foreground_dice"]
    assert set(dice) == {"conv", "field"} and all(0.0 <= v <= 1.0 for v in dice.values())


def test_package_with_finer_decoders_writes_their_grid(tmp_path, tiny_model, bench_script):
    """heart64's recipe on the tiny model: decoders trained at 2× the grid on the prior's frozen encoder
    (``--upscale 2``); the packaged model keeps the prior's latents and writes label maps on the finer grid."""
    from conftest import AFFINE, LABELS

    from anatomica.io.dataset import list_label_files, write_dataset_json
    from anatomica.io.nifti import LabelMap, load_label_map, save_label_map
    from anatomica.nn.autoencoder import AutoencoderConfig
    from anatomica.training.autoencoder import AutoencoderTrainConfig
    from anatomica.training.fit import train_autoencoder

    torch.set_num_threads(1)
    fine_affine = AFFINE.copy()
    fine_affine[:3, :3] /= 2.0
    fine_affine[:3, 3] -= 0.5  # the same field of view: fine voxel 0's centre half a fine voxel before the coarse one's
    names = []
    for path in list_label_files(tiny_model["data"]):
        m = load_label_map(path)
        fine = m.array.repeat(2, 0).repeat(2, 1).repeat(2, 2)
        names.append(Path(path).name.split(".")[0])
        save_label_map(LabelMap(fine, fine_affine, LABELS), tmp_path / "fine" / "labelsTr" / f"{names[-1]}.nii.gz")
    write_dataset_json(tmp_path / "fine", "toy", LABELS, names)
    tc = AutoencoderTrainConfig(steps=2, batch_size=2, field_points=256, checkpoint_every=1000, log_every=1, val_fraction=0.0,
                                trainable="decoders", init=str(tiny_model["ldm"]))
    ae = train_autoencoder(tmp_path / "fine", tmp_path / "ae2", model=AutoencoderConfig(upscale=2), train=tc, progress=False)
    package = bench_script("package_model")
    assert package.main(["tiny2", "--prior", str(tiny_model["ldm"]), "--autoencoder", str(ae), "--anatomy", "toy",
                         "--recipe", "8 toy cases at 2× the grid", "--root", str(tmp_path), "--logs", str(tmp_path / "logs")]) == 0
    coarse, fine = load_model(tiny_model["ldm"]), load_model(tmp_path / "tiny2")
    assert fine.shape == tuple(2 * s for s in coarse.shape) and fine.latent_shape == coarse.latent_shape
    assert np.allclose(fine.affine, fine_affine)
    assert read_config(tmp_path / "tiny2")["prior_data"]["shape"] == list(coarse.shape)
    z = prior_latents(fine, [0], 0, 2)
    assert fine.decode(z).shape[2:] == fine.shape and fine.decode_field(z).shape[2:] == fine.shape
