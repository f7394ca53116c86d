"""Lightning task for the autoencoder: Dice + cross-entropy on both decoders plus a small KL term.

loss = DiceCE(conv decoder on the full volume) + DiceCE(neural field at sampled voxel centres)
       + kl_weight · KL(q(z|x) ‖ N(0, I))

The field's points are drawn uniformly, or a share ``boundary_fraction`` of them among voxels whose label
differs from a 6-neighbour's (where its errors are). ``trainable="decoders"`` trains both decoders on a frozen
encoder and ``"field"`` the neural field alone (``init``: the autoencoder run to start from), so the latents,
and any diffusion prior trained on them, stay valid; the loss then drops the KL term (and the conv term).
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

TRAINABLE = ("all", "decoders", "field")


def frozen_prefixes(trainable: str) -> tuple[str, ...]:
    """State-dict prefixes that stay fixed: the encoder (and its posterior head) unless everything trains; the conv
    decoder too when only the field trains. A frozen encoder keeps the latents, and a prior trained on them, valid."""
    encoder = ("kl.encoder.", "kl.quant_conv_mu.", "kl.quant_conv_log_sigma.")
    return {"all": (), "decoders": encoder, "field": encoder + ("kl.decoder.", "kl.post_quant_conv.", "refine.")}[trainable]


def apply_trainable(model: torch.nn.Module, trainable: str) -> None:
    """``requires_grad`` off for the frozen parts (see :func:`frozen_prefixes`)."""
    frozen = frozen_prefixes(trainable)
    for name, p in model.named_parameters():
        p.requires_grad_(not name.startswith(frozen))


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
    boundary_fraction: float = 0.0  # share of field points drawn among label-boundary voxels
    trainable: str = "all"  # "all"; "decoders": both decoders on a frozen encoder; "field": the field alone
    init: str | None = None  # autoencoder run (or packaged model) whose weights start training

    def __post_init__(self) -> None:
        if self.trainable not in TRAINABLE:
            raise ValueError(f"trainable must be one of {', '.join(TRAINABLE)}, got {self.trainable!r}")
        if not 0.0 <= self.boundary_fraction <= 1.0:
            raise ValueError(f"boundary_fraction must be in [0, 1], got {self.boundary_fraction}")

    def to_dict(self) -> dict:
        return asdict(self)


def random_voxels(shape: tuple[int, ...], batch: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """(B, N) flat indices of voxel centres drawn uniformly with replacement."""
    return torch.randint(0, int(np.prod(shape)), (batch, n), generator=generator)


def boundary_voxels(labels: torch.Tensor, batch_n: int, generator: torch.Generator) -> torch.Tensor:
    """(B, n) flat indices drawn uniformly among each case's label-boundary voxels (label differs from a
    6-neighbour); a case without boundaries draws uniformly."""
    lab = labels.long()
    edge = torch.zeros_like(lab, dtype=torch.bool)
    for d in (1, 2, 3):
        diff = lab.narrow(d, 1, lab.shape[d] - 1) != lab.narrow(d, 0, lab.shape[d] - 1)
        edge.narrow(d, 1, lab.shape[d] - 1).logical_or_(diff)
        edge.narrow(d, 0, lab.shape[d] - 1).logical_or_(diff)
    flat = edge.flatten(1).float() + 1e-6  # never an all-zero row
    return torch.multinomial(flat, batch_n, replacement=True, generator=generator)


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
        field_only = self.tc.trainable == "field"
        with torch.set_grad_enabled(self.tc.trainable == "all"):
            mean, logvar = self.model.encode(x)
            z = self.model.sample_posterior(mean, logvar, generator=g)
        conv_loss = x.new_zeros(()) if field_only else self.loss_fn(self.model.decode(z), x)
        n_edge = int(round(self.tc.boundary_fraction * self.tc.field_points))
        flat = random_voxels(self.data.shape, x.shape[0], self.tc.field_points - n_edge, g)
        if n_edge:
            flat = torch.cat([flat, boundary_voxels(labels.cpu(), n_edge, g)], dim=1)
        flat = flat.to(self.device)
        pts = flat_to_points(flat, self.data.shape)
        target = torch.gather(x.flatten(2), 2, flat[:, None, :].expand(-1, x.shape[1], -1))
        field_loss = self.loss_fn(self.model.query(z, pts), target)
        kl = self.model.kl_divergence(mean, logvar)
        loss = field_loss + conv_loss + (self.tc.kl_weight * kl if self.tc.trainable == "all" else 0.0)
        self.log_dict({"loss": loss, "conv": conv_loss, "field": field_loss, "kl": kl}, prog_bar=True, on_step=True, sync_dist=False)
        return loss

    def configure_optimizers(self):
        apply_trainable(self.model, self.tc.trainable)
        params = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.tc.lr, weight_decay=0.0)

    def init_from(self, state: dict[str, torch.Tensor]) -> list[str]:
        """Start from a trained autoencoder's weights (every tensor whose name and shape match: a field of another
        architecture starts fresh); the frozen parts must all be there. Returns the keys taken."""
        own = self.model.state_dict()
        take = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        missing = [k for k in own if k.startswith(frozen_prefixes(self.tc.trainable)) and k not in take]
        if missing:
            raise ValueError(f"init weights lack {len(missing)} tensors of the frozen part (e.g. {missing[0]})")
        self.model.load_state_dict({**own, **take})
        apply_trainable(self.model, self.tc.trainable)
        return sorted(take)


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
