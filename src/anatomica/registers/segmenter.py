"""The downstream segmenter that judges generated images: a MONAI BasicUNet trained with Dice + CE.

Its encoder (the four down-sampling stages) also provides the features for FID, so no downloaded
network is involved anywhere in the evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from monai.losses import DiceCELoss
from monai.networks.nets import BasicUNet
from torch import Tensor
from tqdm.auto import tqdm

from anatomica.errors import AnatomicaError
from anatomica.io.checkpoint import load_module_state, load_weights, save_weights

KIND = "segmenter"


@dataclass
class SegmenterConfig:
    spatial_dims: int = 2
    n_classes: int = 4
    features: Sequence[int] = (16, 16, 32, 64, 128, 16)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["features"] = list(self.features)
        return d


def build_segmenter(cfg: SegmenterConfig) -> BasicUNet:
    return BasicUNet(spatial_dims=cfg.spatial_dims, in_channels=1, out_channels=cfg.n_classes, features=tuple(cfg.features))


def train_segmenter(
    images: Tensor, masks: Tensor, cfg: SegmenterConfig, steps: int, batch: int = 16, lr: float = 1e-3, seed: int = 0, progress: bool = True, desc: str = "segmenter"
) -> BasicUNet:
    """Dice + cross-entropy (MONAI DiceCELoss) with Adam on (images (N,1,*S), masks (N,*S))."""
    if min(images.shape[2:]) < 32 or any(s % 16 for s in images.shape[2:]):
        raise AnatomicaError(f"the downstream segmenter needs image sides that are multiples of 16 and >= 32, got {tuple(images.shape[2:])}")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = build_segmenter(cfg)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    bar = tqdm(range(steps), desc=desc, disable=not progress)
    for _ in bar:
        idx = torch.randint(0, len(images), (batch,), generator=g)
        loss = loss_fn(net(images[idx]), masks[idx][:, None])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    net.eval()
    return net


@torch.no_grad()
def predict(net: BasicUNet, images: Tensor, batch: int = 64) -> Tensor:
    """Label maps (N, *S) predicted for images (N, 1, *S)."""
    net.eval()
    return torch.cat([net(images[i : i + batch]).argmax(1) for i in range(0, len(images), batch)])


@torch.no_grad()
def encoder_features(net: BasicUNet, images: Tensor, batch: int = 64) -> Tensor:
    """(N, features[3] + features[4]): spatial means of the two deepest encoder stages."""
    net.eval()
    out = []
    for i in range(0, len(images), batch):
        x1 = net.down_1(net.conv_0(images[i : i + batch]))
        x3 = net.down_3(net.down_2(x1))
        x4 = net.down_4(x3)
        out.append(torch.cat([x3.flatten(2).mean(-1), x4.flatten(2).mean(-1)], dim=1))
    return torch.cat(out)


def save_segmenter(folder: str | Path, net: BasicUNet, cfg: SegmenterConfig, extra: dict | None = None) -> Path:
    return save_weights(folder, net, {"segmenter": cfg.to_dict(), **(extra or {})}, KIND)


def load_segmenter(folder: str | Path) -> tuple[BasicUNet, dict]:
    state, config = load_weights(folder, KIND)
    cfg = SegmenterConfig(**config["segmenter"])
    net = build_segmenter(cfg)
    load_module_state(net, state, str(folder))
    net.eval()
    return net, config
