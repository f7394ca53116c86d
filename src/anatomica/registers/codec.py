"""The image codec of the register-bank latent diffusion: MONAI AutoencoderKL, or the identity (pixel space).

Latents are the encoder means scaled to unit variance over the training images (Rombach et al.
2022, §4.3.2), so EDM's σ_data = 1 fits them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from monai.networks.nets import AutoencoderKL
from torch import Tensor
from tqdm.auto import tqdm

from anatomica.errors import AnatomicaError
from anatomica.io.checkpoint import load_module_state, load_weights, save_weights
from anatomica.nn.autoencoder import Autoencoder

KIND = "image-autoencoder"


@dataclass
class CodecConfig:
    spatial_dims: int = 2
    channels: Sequence[int] = (8, 16, 32)
    latent_channels: int = 3
    num_res_blocks: int = 1
    norm_num_groups: int = 8

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @property
    def downsampling(self) -> int:
        return 2 ** (len(self.channels) - 1)


def build_codec_network(cfg: CodecConfig) -> AutoencoderKL:
    return AutoencoderKL(
        spatial_dims=cfg.spatial_dims,
        in_channels=1,
        out_channels=1,
        channels=tuple(cfg.channels),
        latent_channels=cfg.latent_channels,
        num_res_blocks=cfg.num_res_blocks,
        norm_num_groups=cfg.norm_num_groups,
        attention_levels=(False,) * len(cfg.channels),
        with_encoder_nonlocal_attn=False,
        with_decoder_nonlocal_attn=False,
    )


class Codec(torch.nn.Module):
    """encode(images in [-1, 1]) -> scaled latents; decode(latents) -> images. ``ae=None`` is pixel space."""

    def __init__(self, ae: AutoencoderKL | None = None, scale: float = 1.0, downsampling: int = 1):
        super().__init__()
        self.ae = ae
        self.scale = float(scale)
        self.downsampling = int(downsampling)

    @property
    def is_pixel(self) -> bool:
        return self.ae is None

    @torch.no_grad()
    def encode(self, images: Tensor, batch: int = 64) -> Tensor:
        if self.ae is None:
            return images.clone()
        return torch.cat([self.ae.encode(images[i : i + batch])[0] for i in range(0, len(images), batch)]) * self.scale

    @torch.no_grad()
    def decode(self, latents: Tensor, batch: int = 64) -> Tensor:
        if self.ae is None:
            return latents.clamp(-1, 1)
        out = [self.ae.decode(latents[i : i + batch] / self.scale) for i in range(0, len(latents), batch)]
        return torch.cat(out).clamp(-1, 1)


def train_codec(
    images: Tensor, cfg: CodecConfig, steps: int, batch: int = 16, lr: float = 5e-4, kl_weight: float = 1e-6, seed: int = 0, progress: bool = True
) -> tuple[Codec, list[dict]]:
    """L1 reconstruction + a small KL term (Rombach et al. 2022, without the adversarial and perceptual
    terms, which need pretrained weights); returns the codec with its latent scale and the loss log."""
    if images.shape[-1] % cfg.downsampling:
        raise AnatomicaError(f"image size {images.shape[-1]} must be divisible by {cfg.downsampling} for this autoencoder")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    ae = build_codec_network(cfg)
    opt = torch.optim.Adam(ae.parameters(), lr=lr)
    log = []
    bar = tqdm(range(steps), desc="codec", disable=not progress)
    for step in bar:
        x = images[torch.randint(0, len(images), (batch,), generator=g)]
        mu, sigma = ae.encode(x)
        z = mu + sigma * torch.randn(mu.shape, generator=g)
        rec = ae.decode(z)
        l1 = (rec - x).abs().mean()
        # the label-map family's KL (mean per latent element) times the elements per image: the per-image
        # sum that kl_weight was tuned for
        kl = Autoencoder.kl_divergence(mu, 2 * torch.log(sigma.clamp_min(1e-8))) * mu[0].numel()
        loss = l1 + kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log.append({"step": step, "l1": l1.item(), "kl": kl.item()})
        bar.set_postfix(l1=f"{l1.item():.4f}")
    ae.eval()
    codec = Codec(ae, 1.0, cfg.downsampling)
    lat = codec.encode(images)
    codec.scale = float(1.0 / lat.std().clamp_min(1e-6))
    return codec, log


def save_codec(folder: str | Path, codec: Codec, cfg: CodecConfig, extra: dict | None = None) -> Path:
    return save_weights(folder, codec.ae, {"autoencoder": cfg.to_dict(), "scale": codec.scale, **(extra or {})}, KIND)


def load_codec(folder: str | Path) -> tuple[Codec, dict]:
    state, config = load_weights(folder, KIND)
    try:
        cfg = CodecConfig(**config["autoencoder"])
    except (KeyError, TypeError) as e:
        raise AnatomicaError(f"{folder}: bad autoencoder config ({e})") from None
    ae = build_codec_network(cfg)
    load_module_state(ae, state, str(folder))
    ae.eval()
    return Codec(ae, float(config["scale"]), cfg.downsampling), config
