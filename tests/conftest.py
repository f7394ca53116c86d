"""Shared fixtures: one torch thread per test, and a tiny latent diffusion model trained once per session
(16³ toy label maps, a few seconds on one thread)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from anatomica.io.dataset import write_dataset_json
from anatomica.io.nifti import LabelMap, save_label_map
from anatomica.nn.autoencoder import AutoencoderConfig
from anatomica.nn.unet import UNetConfig


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors run several times faster on one thread than on two oversubscribed ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


AFFINE = np.array([[2.0, 0, 0, -16.0], [0, 2.0, 0, 4.0], [0, 0, 2.0, 20.0], [0, 0, 0, 1]])
LABELS = {"left": 1, "right": 2}
SIZE = 16

GEOMETRIC_TASK = """
name: toy-left-bigger
domains:
  - name: left_box
    labels: [left]
    placement: {kind: box, around: [left], margin: 0.3}
    grid: [12, 12, 12]
    targets: {mass: {scale: 1.5}, centroid: {}, covariance: {}}
weights: {geometry: 1.0, topology: 0.0}
"""

TOPOLOGICAL_TASK = """
name: toy-two-pieces
temperature: 2.0
domains:
  - name: both
    labels: [left, right]
    placement: {kind: global}
    grid: [16, 16, 16]
    targets: {betti: [2, 0, 0]}
weights: {geometry: 0.0, topology: 1.0}
"""


def toy_case(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """Two ellipsoids, 'left' in the lower half of axis 0 and 'right' in the upper half; they may touch."""
    g = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"), -1).astype(float)
    a = np.zeros((size,) * 3, np.uint8)
    for value, lo in ((1, 0.25), (2, 0.6)):
        c = np.array([lo + rng.uniform(0, 0.15), rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6)]) * size
        r = rng.uniform(0.15, 0.25, 3) * size
        a[(((g - c) / r) ** 2).sum(-1) < 1] = value
    return a


def write_cases(folder: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n):
        names.append(f"toy_{i:03d}")
        save_label_map(LabelMap(toy_case(rng), AFFINE, LABELS), folder / "labelsTr" / f"{names[-1]}.nii.gz")
    write_dataset_json(folder, "toy", LABELS, names)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> dict:
    """{'ldm': run folder, 'data': training set, 'references': held-out folder (seed the training set did not use),
    'geometric'/'topological': task YAML files}."""
    from anatomica.training.autoencoder import AutoencoderTrainConfig
    from anatomica.training.diffusion import DiffusionTrainConfig
    from anatomica.training.fit import train_autoencoder, train_diffusion

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("guided")
    data = write_cases(root / "data", 8, seed=0)
    refs = write_cases(root / "references", 2, seed=123)
    ae_cfg = AutoencoderConfig(channels=(8, 8, 8), norm_num_groups=8, field={"features": 16, "hidden": 32, "upsample": 0})
    ae = train_autoencoder(
        data, root / "ae", model=ae_cfg, progress=False,
        train=AutoencoderTrainConfig(steps=100, batch_size=2, lr=1e-2, field_points=1024, checkpoint_every=1000, log_every=50, val_fraction=0.0),
    )
    unet = UNetConfig(channels=(32, 32), attention_levels=(False, False), num_res_blocks=1, num_head_channels=16, norm_num_groups=8)
    ldm = train_diffusion(None, ae, root / "ldm", unet=unet, progress=False,
                          train=DiffusionTrainConfig(steps=30, batch_size=4, lr=1e-3, checkpoint_every=1000, log_every=50))
    (root / "geometric.yaml").write_text(GEOMETRIC_TASK)
    (root / "topological.yaml").write_text(TOPOLOGICAL_TASK)
    return {"root": root, "ldm": ldm, "data": data, "references": refs,
            "geometric": root / "geometric.yaml", "topological": root / "topological.yaml"}
