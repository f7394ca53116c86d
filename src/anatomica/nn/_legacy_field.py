"""TEMPORARY (issue 11): the previous grid-net field, kept only so the old packaged heart32 loads until it is
re-shipped with the bounded-receptive-field decoder of ``nn/field.py``; deleted then.

Neural-field decoder F: latent grid + query points (normalized coords) -> class logits at those points.

The latent z (B, c, x, y, z) first goes through a few convolutions to a feature grid (at the latent
resolution, optionally upsampled ×2 per ``upsample`` level); the features are trilinearly sampled at the
query points (``anatomica.coords.sample_points``), concatenated with Fourier features of the point's
position inside its latent cell, and mapped by a point-wise MLP to logits. Because sin/cos(2πk·u) with u
in latent-cell units is periodic with period one cell, these features equal those of the *offset* inside
the cell and are still continuous across cell borders.

One code path serves both uses (the point of L-parsing): ``query(z, points)`` at any point set and
``decode_grid(z, shape)`` = ``query`` on ``coords.grid_points(shape)``, in chunks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from monai.networks.blocks import Convolution, ResidualUnit
from torch import Tensor, nn

from anatomica.coords import grid_points, sample_points


@dataclass
class GridFieldConfig:
    latent_channels: int = 4
    out_channels: int = 8  # classes incl. background
    features: int = 64
    upsample: int = 1  # ×2 feature-grid upsamplings (0 = at the latent resolution)
    fourier_bands: int = 3  # frequencies 1..bands cycles per latent cell
    hidden: int = 96
    mlp_layers: int = 3

    def to_dict(self) -> dict:
        return asdict(self)


def cell_fourier_features(points: Tensor, latent_shape: Sequence[int], bands: int) -> Tensor:
    """(B, N, 3) normalized points -> (B, 6·bands, N): sin/cos(2πk·u), u = position in latent-cell units."""
    half = torch.as_tensor([(max(int(s) - 1, 1)) / 2.0 for s in latent_shape], dtype=points.dtype, device=points.device)
    u = (points + 1.0) * half  # latent voxel index, align_corners=True like coords.normalized_to_voxel
    k = torch.arange(1, bands + 1, dtype=points.dtype, device=points.device)
    ang = 2.0 * math.pi * u[..., None] * k  # (B, N, 3, bands)
    feats = torch.cat([ang.sin(), ang.cos()], dim=-1).flatten(2)  # (B, N, 6·bands)
    return feats.transpose(1, 2)


class GridFieldDecoder(nn.Module):
    """F(z, X) -> logits (B, C, N); see the module docstring."""

    def __init__(self, config: GridFieldConfig):
        super().__init__()
        self.config = cfg = config
        layers: list[nn.Module] = [
            Convolution(3, cfg.latent_channels, cfg.features, kernel_size=3, act="SWISH", norm=None),
            ResidualUnit(3, cfg.features, cfg.features, subunits=2, act="SWISH", norm=("GROUP", {"num_groups": 8})),
        ]
        for _ in range(cfg.upsample):
            layers += [
                Convolution(3, cfg.features, cfg.features, strides=2, kernel_size=3, is_transposed=True, act="SWISH", norm=None),
                ResidualUnit(3, cfg.features, cfg.features, subunits=2, act="SWISH", norm=("GROUP", {"num_groups": 8})),
            ]
        self.grid_net = nn.Sequential(*layers)
        dims = [cfg.features + 6 * cfg.fourier_bands] + [cfg.hidden] * (cfg.mlp_layers - 1)
        mlp: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            mlp += [nn.Conv1d(a, b, 1), nn.SiLU()]
        mlp.append(nn.Conv1d(dims[-1], cfg.out_channels, 1))
        self.mlp = nn.Sequential(*mlp)

    def features(self, z: Tensor) -> Tensor:
        """The feature grid the points read from; compute once per z when querying several point sets."""
        return self.grid_net(z)

    def query_features(self, feats: Tensor, latent_shape: Sequence[int], points: Tensor) -> Tensor:
        if points.ndim == 2:
            points = points.expand(feats.shape[0], *points.shape)
        sampled = sample_points(feats, points.to(feats.dtype), padding_mode="border")
        pe = cell_fourier_features(points.to(feats.dtype), latent_shape, self.config.fourier_bands)
        return self.mlp(torch.cat([sampled, pe], dim=1))

    def query(self, z: Tensor, points: Tensor) -> Tensor:
        """Logits (B, C, N) at normalized ``points`` (B, N, 3) or (N, 3) shared by the batch."""
        return self.query_features(self.features(z), z.shape[2:], points)

    def decode_grid(self, z: Tensor, shape: Sequence[int], chunk: int = 65536) -> Tensor:
        """Logits (B, C, *shape) on every voxel centre of ``shape``: :meth:`query` on ``grid_points`` in chunks."""
        feats = self.features(z)
        pts = grid_points(shape, dtype=z.dtype, device=z.device)
        out = [self.query_features(feats, z.shape[2:], pts[i : i + chunk]) for i in range(0, pts.shape[0], chunk)]
        return torch.cat(out, dim=2).reshape(z.shape[0], self.config.out_channels, *shape)
