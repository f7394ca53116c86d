"""Denoiser backbones: MONAI's ``DiffusionModelUNet`` adapted to the EDM call ``net(x_in, c_noise, **kwargs)``.

EDM's ``c_noise = ln(σ)/4`` lies in about [-1.6, 1.1] for σ in [0.002, 80]. MONAI's sinusoidal timestep
embedding (Ho et al. 2020) was built for integer timesteps 0..1000: its highest frequency is 1 rad per
unit, so such a narrow range would barely rotate most of its channels. We multiply c_noise by
``NOISE_SCALE = 250`` before the embedding, which spreads the σ range over about 680 "timesteps" -
the same span DDPM-style UNets see. The choice is recorded in the config so checkpoints stay consistent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from monai.networks.nets import DiffusionModelUNet
from torch import Tensor

NOISE_SCALE = 250.0


@dataclass
class UNetConfig:
    """Everything needed to rebuild a :class:`DenoiserUNet`; serialized as JSON beside the weights."""

    spatial_dims: int = 3
    in_channels: int = 4
    out_channels: int | None = None  # defaults to in_channels
    channels: Sequence[int] = (32, 64, 64)
    attention_levels: Sequence[bool] = (False, False, True)
    num_res_blocks: int = 2
    num_head_channels: int = 32
    norm_num_groups: int = 32
    with_conditioning: bool = False
    cross_attention_dim: int | None = None
    noise_scale: float = NOISE_SCALE

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["attention_levels"] = list(self.attention_levels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown UNet config keys: {sorted(unknown)}")
        return cls(**d)


class DenoiserUNet(torch.nn.Module):
    """The raw network F of EDM (Eq. 7): ``forward(x_in, c_noise, context=None, cond=None)``, shaped like x_in
    (``out_channels``).

    2D or 3D (``spatial_dims``); with ``with_conditioning=True`` every attention level cross-attends to
    ``context`` of shape (B, tokens, cross_attention_dim), e.g. a register bank. ``cond`` (B or 1, C_cond, …)
    is concatenated with x_in along the channels (the conditional baselines of the Anatomica paper), so such
    a network has in_channels = latent + C_cond and out_channels = latent.
    """

    def __init__(self, config: UNetConfig | None = None, **overrides):
        super().__init__()
        cfg = config or UNetConfig()
        if overrides:
            cfg = UNetConfig(**{**cfg.to_dict(), **overrides})
        if len(cfg.channels) != len(cfg.attention_levels):
            raise ValueError(f"channels {list(cfg.channels)} and attention_levels {list(cfg.attention_levels)} differ in length")
        self.config = cfg
        self.unet = DiffusionModelUNet(
            spatial_dims=cfg.spatial_dims,
            in_channels=cfg.in_channels,
            out_channels=cfg.out_channels or cfg.in_channels,
            channels=tuple(cfg.channels),
            attention_levels=tuple(cfg.attention_levels),
            num_res_blocks=cfg.num_res_blocks,
            num_head_channels=cfg.num_head_channels,
            norm_num_groups=cfg.norm_num_groups,
            with_conditioning=cfg.with_conditioning,
            cross_attention_dim=cfg.cross_attention_dim,
        )

    @property
    def downsampling(self) -> int:
        """Spatial sizes must be divisible by this (one halving per level after the first)."""
        return 2 ** (len(self.config.channels) - 1)

    def forward(self, x: Tensor, c_noise: Tensor, context: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        if cond is not None:  # constant channels may come as (…, 1, 1, 1): broadcast them to the grid
            x = torch.cat([x, cond.to(x.dtype).expand(x.shape[0], -1, *x.shape[2:])], dim=1)
        if x.shape[1] != self.config.in_channels:
            raise ValueError(f"the network takes {self.config.in_channels} input channels, got {x.shape[1]}"
                             f"{' (latent + conditioning)' if cond is not None else ''}")
        if x.ndim != self.config.spatial_dims + 2:
            raise ValueError(f"expected a (B, C, {'X, Y, Z' if self.config.spatial_dims == 3 else 'H, W'}) input, got {tuple(x.shape)}")
        bad = [s for s in x.shape[2:] if s % self.downsampling]
        if bad:
            raise ValueError(f"spatial size {tuple(x.shape[2:])} must be divisible by {self.downsampling}")
        t = c_noise.reshape(-1).to(torch.float32) * self.config.noise_scale
        if t.shape[0] == 1 and x.shape[0] > 1:
            t = t.expand(x.shape[0])
        return self.unet(x, timesteps=t, context=context)
