"""Lightning task for the autoencoder: Dice + cross-entropy on both decoders plus a small KL term.

loss = DiceCE(conv decoder on the full volume) + DiceCE(neural field at random voxel centres)
       + kl_weight · KL(q(z|x) ‖ N(0, I))
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import lightning as L
import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.metrics import compute_dice

from anatomica.coords import voxel_to_normalized
from anatomica.data.datasets import LabelDataset, to_onehot
from anatomica.nn.autoencoder import Autoencoder, AutoencoderConfig
from anatomica.training.steps import step_batch_indices, step_generator, step_loader


@dataclass
class AutoencoderTrainConfig:
    steps: int = 2000
    batch_size: int = 4
    lr: float = 5e-4
    kl_weight: float = 1e-4
    field_points: int = 8192  # voxel centres per case for the field loss
    seed: int = 0
    val_fraction: float = 0.1
    checkpoint_every: int = 250
    log_every: int = 10

    def to_dict(self) -> dict:
        return asdict(self)


def random_voxels(shape: tuple[int, ...], batch: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """(B, N) flat indices of voxel centres drawn uniformly with replacement."""
    return torch.randint(0, int(np.prod(shape)), (batch, n), generator=generator)


def flat_to_points(flat: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """(B, N) C-order flat indices -> (B, N, 3) normalized coordinates of those voxel centres."""
    X, Y, Z = shape
    ijk = torch.stack([flat // (Y * Z), (flat // Z) % Y, flat % Z], dim=-1).float()
    return voxel_to_normalized(ijk, shape)


class AutoencoderTask(L.LightningModule):
    def __init__(self, model_config: AutoencoderConfig, train_config: AutoencoderTrainConfig, data: LabelDataset):
        super().__init__()
        self.model = Autoencoder(model_config)
        self.tc = train_config
        self.data = data
        self.loss_fn = DiceCELoss(softmax=True, batch=True)

    def train_dataloader(self):
        return step_loader(len(self.data), self.tc.batch_size, self.trainer.world_size)

    def training_step(self, _token, _batch_idx):
        step, rank, world = self.global_step, self.global_rank, self.trainer.world_size
        idx = step_batch_indices(len(self.data), self.tc.batch_size, step, self.tc.seed, rank, world)
        labels = self.data.labels[idx].to(self.device)
        x = to_onehot(labels, self.data.num_classes)
        g = step_generator(self.tc.seed, step, rank)
        mean, logvar = self.model.encode(x)
        z = self.model.sample_posterior(mean, logvar, generator=g)
        conv_loss = self.loss_fn(self.model.decode(z), x)
        flat = random_voxels(self.data.shape, x.shape[0], self.tc.field_points, g).to(self.device)
        pts = flat_to_points(flat, self.data.shape)
        target = torch.gather(x.flatten(2), 2, flat[:, None, :].expand(-1, x.shape[1], -1))
        field_loss = self.loss_fn(self.model.query(z, pts), target)
        kl = self.model.kl_divergence(mean, logvar)
        loss = conv_loss + field_loss + self.tc.kl_weight * kl
        self.log_dict({"loss": loss, "conv": conv_loss, "field": field_loss, "kl": kl}, prog_bar=True, on_step=True, sync_dist=False)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.model.parameters(), lr=self.tc.lr, weight_decay=0.0)


@torch.no_grad()
def reconstruction_dice(model: Autoencoder, data: LabelDataset, batch_size: int = 4) -> dict[str, dict[str, float]]:
    """Mean Dice per foreground label over the cases, for the conv decoder and the field decoder (posterior mean)."""
    model.eval()
    C = data.num_classes
    per = {"conv": [], "field": []}
    for i in range(0, len(data), batch_size):
        x = data.onehot(range(i, min(i + batch_size, len(data))))
        z, _ = model.encode(x)
        for name, logits in (("conv", model.decode(z)), ("field", model.decode_field(z, data.shape))):
            pred = to_onehot(logits.argmax(1), C)
            per[name].append(compute_dice(pred, x, include_background=False, ignore_empty=True))
    out = {}
    for name, chunks in per.items():
        d = torch.cat(chunks)  # (N, C-1), NaN where a label is absent from both
        out[name] = {lname: float(np.nanmean(d[:, v - 1].numpy())) for lname, v in data.label_table.items()}
    return out
