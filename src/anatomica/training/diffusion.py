"""Lightning task for EDM latent diffusion on precomputed, unit-variance autoencoder latents, with EMA weights."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import lightning as L
import torch

from anatomica.data.datasets import LabelDataset
from anatomica.diffusion.edm import EDMPrecond, edm_loss
from anatomica.diffusion.ema import ema_decay_at, ema_update
from anatomica.nn.autoencoder import Autoencoder
from anatomica.nn.unet import DenoiserUNet, UNetConfig
from anatomica.training.steps import step_batch_indices, step_generator, step_loader


@dataclass
class DiffusionTrainConfig:
    steps: int = 4000
    batch_size: int = 16
    lr: float = 2e-4
    ema_decay: float = 0.999
    P_mean: float = -1.2
    P_std: float = 1.2
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 10
    init: str | None = None  # a trained unconditional prior to start from (run folder or packaged name)

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def encode_dataset(ae: Autoencoder, data: LabelDataset, batch_size: int = 8) -> torch.Tensor:
    """Posterior means of every case, (N, c, x, y, z)."""
    ae.eval()
    out = [ae.encode(data.onehot(range(i, min(i + batch_size, len(data)))))[0] for i in range(0, len(data), batch_size)]
    return torch.cat(out)


def latent_normalization(latents: torch.Tensor) -> tuple[list[float], float]:
    """(per-channel shift, global scale) so that (z − shift)·scale has zero mean per channel and unit variance."""
    shift = latents.mean(dim=(0, 2, 3, 4))
    scale = 1.0 / float((latents - shift.reshape(1, -1, 1, 1, 1)).std())
    return [float(s) for s in shift], scale


class DiffusionTask(L.LightningModule):
    """``self.denoiser`` is trained; ``self.ema`` holds its exponential moving average (saved in checkpoints).

    With ``cond`` (N, C_cond, …), one case's normalized conditioning channels per latent, the denoiser learns
    D(x; σ | c) (a conditional baseline, ``control.conditioning``); the batches and noise are those of the
    unconditional run."""

    def __init__(self, unet_config: UNetConfig, train_config: DiffusionTrainConfig, latents: torch.Tensor, sigma_data: float = 1.0,
                 cond: torch.Tensor | None = None):
        super().__init__()
        self.tc = train_config
        self.latents = latents  # already normalized to unit variance
        if cond is not None and len(cond) != len(latents):
            raise ValueError(f"{len(cond)} conditioning tensors for {len(latents)} latents")
        self.cond = cond
        self.denoiser = EDMPrecond(DenoiserUNet(unet_config), sigma_data=sigma_data)
        self.ema = copy.deepcopy(self.denoiser).requires_grad_(False)

    def train_dataloader(self):
        return step_loader(len(self.latents), self.tc.batch_size, self.trainer.world_size)

    def training_step(self, _token, _batch_idx):
        step, rank, world = self.global_step, self.global_rank, self.trainer.world_size
        idx = step_batch_indices(len(self.latents), self.tc.batch_size, step, self.tc.seed, rank, world)
        x0 = self.latents[idx].to(self.device)
        g = step_generator(self.tc.seed, step, rank, stream=1)
        kwargs = {} if self.cond is None else {"cond": self.cond[idx].to(self.device)}
        loss = edm_loss(self.denoiser, x0, P_mean=self.tc.P_mean, P_std=self.tc.P_std, generator=g, **kwargs)
        self.log("loss", loss, prog_bar=True, on_step=True)
        return loss

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        # Here, not in on_train_batch_end: checkpoint callbacks run before the module's batch-end hook, so an
        # EMA updated there would be saved one step stale and a resumed run would drift from an uninterrupted one.
        self.update_ema()

    @torch.no_grad()
    def init_from(self, state: dict[str, torch.Tensor]) -> None:
        """Start denoiser and EMA from a trained unconditional prior's weights. A conditional denoiser's input
        convolution also reads the condition channels, concatenated after the latent's (``ConditionedDenoiser``):
        it takes the prior's weights for the latent channels and zeros for the others, so at step 0
        D(x; σ | c) = D(x; σ) for every c and training only has to learn what the condition adds."""
        own = self.denoiser.state_dict()
        if set(own) != set(state):
            raise ValueError(f"the prior's weights do not match this network: {len(set(own) ^ set(state))} tensor names differ")
        new, widened = {}, []
        for k, mine in own.items():
            w = state[k].to(mine.dtype)
            if w.shape != mine.shape:
                if w.ndim != mine.ndim or w.ndim < 2 or w.shape[0] != mine.shape[0] or w.shape[2:] != mine.shape[2:] or w.shape[1] > mine.shape[1]:
                    raise ValueError(f"{k}: the prior has shape {tuple(w.shape)}, this network {tuple(mine.shape)}")
                w = torch.cat([w, w.new_zeros(w.shape[0], mine.shape[1] - w.shape[1], *w.shape[2:])], dim=1)
                widened.append(k)
            new[k] = w
        if len(widened) > 1:  # only the first convolution sees the condition channels
            raise ValueError(f"the prior differs from this network in more than the input convolution: {', '.join(widened)}")
        self.denoiser.load_state_dict(new)
        self.ema.load_state_dict(new)

    @torch.no_grad()
    def update_ema(self) -> None:
        ema_update(self.ema, self.denoiser, ema_decay_at(self.global_step, self.tc.ema_decay))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.denoiser.parameters(), lr=self.tc.lr, weight_decay=0.0)
