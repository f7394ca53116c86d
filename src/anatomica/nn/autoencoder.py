"""The label-map autoencoder: a KL-regularized 3D conv encoder with two decoders trained together.

- encoder + convolutional decoder: MONAI ``AutoencoderKL`` (full volume; used by V-parsing);
- neural-field decoder :class:`~anatomica.nn.field.FieldDecoder` (any point set; used by L-parsing), with a
  bounded receptive field (``receptive_field`` latent cells) and no global normalization.

With ``upscale`` = s > 1 the autoencoder works on a label map s× finer per axis than its MONAI core: the encoder
reads the map mode-pooled by s (the majority label of each s³ block, the coarse map the core was trained on), and
the conv decoder's logits are upsampled by s and refined at full resolution (:class:`UpscaleHead`); the field
reads the same latent cells at the finer voxel centres. So a prior trained on the core's latents decodes at the
finer grid (``heart64``: heart32's encoder and prior, decoders trained on 64³ maps; docs/pretrained.md).

Interfaces the guidance code relies on: ``encode(x_onehot) -> (mean, logvar)``, ``decode(z) -> logits
(B, C, X, Y, Z)``, ``query(z, points) -> logits (B, C, N)`` and ``decode_field(z, shape)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from monai.networks.nets import AutoencoderKL
from torch import Tensor, nn

from anatomica.nn.field import FieldConfig, FieldDecoder


@dataclass
class AutoencoderConfig:
    """Rebuilds an :class:`Autoencoder`; stored in the run's config.json."""

    num_classes: int = 8  # channels of the one-hot input, background included
    latent_channels: int = 4
    channels: Sequence[int] = (32, 64, 64)  # len - 1 halvings: (a, b, c) -> ×4 downsampling
    num_res_blocks: int = 1
    norm_num_groups: int = 16
    field: dict = field(default_factory=dict)  # FieldConfig overrides (latent/out channels are filled in)
    upscale: int = 1  # label-map voxels per core voxel and axis (see the module docstring)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> AutoencoderConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown autoencoder config keys: {sorted(unknown)}")
        config = cls(**d)
        if int(config.upscale) < 1:
            raise ValueError(f"autoencoder upscale must be >= 1, got {config.upscale}")
        return config

    @property
    def downsampling(self) -> int:
        """Label-map voxels per latent cell and axis."""
        return 2 ** (len(self.channels) - 1) * int(self.upscale)

    def field_config(self) -> FieldConfig:
        return FieldConfig(**{**self.field, "latent_channels": self.latent_channels, "out_channels": self.num_classes,
                              "downsampling": self.downsampling})


def mode_pool(x_onehot: Tensor, factor: int) -> Tensor:
    """One-hot (B, C, *S) -> one-hot (B, C, *S/factor): each factor³ block's majority label (ties: lowest label)."""
    pooled = F.avg_pool3d(x_onehot, factor)
    return F.one_hot(pooled.argmax(1), x_onehot.shape[1]).movedim(-1, 1).to(x_onehot.dtype)


class UpscaleHead(nn.Module):
    """Logits (B, C, *S) -> logits (B, C, *S·s): trilinear ×s, plus a residual of three 3×3×3 convolutions at the
    fine grid (SiLU, no normalization; the last one starts at zero, so training starts from plain upsampling)."""

    def __init__(self, classes: int, factor: int, width: int = 16):
        super().__init__()
        self.factor = int(factor)
        self.convs = nn.Sequential(
            nn.Conv3d(classes, width, 3, padding=1), nn.SiLU(),
            nn.Conv3d(width, width, 3, padding=1), nn.SiLU(),
            nn.Conv3d(width, classes, 3, padding=1),
        )
        nn.init.zeros_(self.convs[-1].weight)
        nn.init.zeros_(self.convs[-1].bias)

    def forward(self, logits: Tensor) -> Tensor:
        up = F.interpolate(logits, scale_factor=self.factor, mode="trilinear", align_corners=False)
        return up + self.convs(up)


class Autoencoder(nn.Module):
    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        if config.num_classes < 2:
            raise ValueError(f"need at least 2 classes (background + one label), got {config.num_classes}")
        self.config = config
        self.kl = AutoencoderKL(
            spatial_dims=3,
            in_channels=config.num_classes,
            out_channels=config.num_classes,
            channels=tuple(config.channels),
            attention_levels=(False,) * len(config.channels),
            latent_channels=config.latent_channels,
            num_res_blocks=config.num_res_blocks,
            norm_num_groups=config.norm_num_groups,
            with_encoder_nonlocal_attn=False,
            with_decoder_nonlocal_attn=False,
        )
        self.field = FieldDecoder(config.field_config())
        self.refine = UpscaleHead(config.num_classes, config.upscale) if config.upscale > 1 else None

    def latent_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        f = self.config.downsampling
        bad = [s for s in shape if s % f]
        if bad:
            raise ValueError(f"volume size {tuple(shape)} must be divisible by {f}")
        return (self.config.latent_channels, *[s // f for s in shape])

    def encode(self, x_onehot: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, logvar) of the diagonal Gaussian posterior q(z | x)."""
        if self.refine is not None:
            x_onehot = mode_pool(x_onehot, self.refine.factor)
        mean, sigma = self.kl.encode(x_onehot)
        return mean, 2.0 * sigma.log()

    @staticmethod
    def sample_posterior(mean: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=generator.device if generator else mean.device)
        return mean + (0.5 * logvar).exp() * eps.to(mean.device)

    @staticmethod
    def kl_divergence(mean: Tensor, logvar: Tensor) -> Tensor:
        """KL(q(z|x) ‖ N(0, I)) per latent element, averaged: ½·mean(μ² + σ² − ln σ² − 1)."""
        return 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1.0).mean()

    @property
    def receptive_field(self) -> int:
        """The field's receptive-field radius in latent cells: ``query`` logits at a point in latent-cell
        coordinates u depend only on latent cells n with |n − u| < receptive_field per axis."""
        return self.field.receptive_field

    def decode(self, z: Tensor) -> Tensor:
        """Full-volume logits (B, C, X, Y, Z) from the convolutional decoder."""
        logits = self.kl.decode(z)
        return logits if self.refine is None else self.refine(logits)

    def query(self, z: Tensor, points: Tensor) -> Tensor:
        """Neural-field logits (B, C, N) at normalized points (B, N, 3) or (N, 3), from the crop of z the points
        can see (points' latent box ⊕ receptive field), so the cost grows with the points, not the volume."""
        return self.field.query(z, points)

    def decode_field(self, z: Tensor, shape: Sequence[int], chunk: int = 65536) -> Tensor:
        """Neural-field logits on the full grid of ``shape`` (same code path as :meth:`query`)."""
        return self.field.decode_grid(z, shape, chunk=chunk)
