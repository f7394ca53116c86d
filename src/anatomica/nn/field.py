"""Neural-field decoder F with a bounded receptive field: latent z + query points -> class logits at the points.

Partial decoding (Anatomica, CVPR 2026, "L-parsing"): the logits at a point depend only on the latent cells
within a fixed neighbourhood of it, and nothing is normalized over the volume, so a query decodes exactly its
points from a crop of ẑ0 and its cost grows with the points, not with the volume.

Per point x (normalized [-1, 1] coordinates of a volume of ``downsampling``·L voxels per axis):

1. Local cell features: a stack of ``conv_layers`` 3×3×3 convolutions at the latent resolution (SiLU,
   residual, *no* normalization), so the feature of cell c reads the cells within ``conv_layers`` of c;
   a 1×1×1 convolution then splits every cell into 2×2×2 sub-cells (pixel shuffle, ``upsample`` = 1),
   giving a feature grid at twice the latent resolution that still reads only from its own cell's features.
2. Point features: trilinear interpolation of the cell features and of the sub-cell features at x
   (exact latent-cell geometry: latent cell j covers voxels f·j … f·j + f − 1), plus Fourier features
   sin/cos(2πk·u) of the point's position u in latent-cell units (periodic: the offset inside its cell).
3. A per-point MLP maps the concatenation to C logits.

Receptive field (``receptive_field``, in latent cells, per axis): trilinear reads the two cells around u
(``floor(u)`` and ``floor(u)+1``, at most one cell away), each reading ``conv_layers`` cells around it, so the
logits at x depend only on cells n with ``floor(u) − conv_layers ≤ n ≤ floor(u) + 1 + conv_layers``, i.e.
``|n − u| < conv_layers + 1``. :meth:`FieldDecoder.query` crops z to the points' cell box ⊕ ``conv_layers``
(clamped to the latent) before the convolutions; the crop gives the same logits as the full latent.

``decode_grid(z, shape)`` is :meth:`query` on ``coords.grid_points(shape)``, in chunks (one code path).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anatomica.coords import grid_points


@dataclass
class FieldConfig:
    latent_channels: int = 4
    out_channels: int = 8  # classes incl. background
    features: int = 32  # channels of the local cell-feature convolutions
    conv_layers: int = 3  # 3×3×3 convolutions at the latent resolution (receptive field = conv_layers + 1 cells)
    upsample: int = 1  # 0: cell features only; 1: plus 2×2×2 sub-cell features (pixel shuffle of a 1×1×1 conv)
    fourier_bands: int = 3  # frequencies 1..bands cycles per latent cell
    hidden: int = 128
    mlp_layers: int = 4  # linear layers of the per-point MLP (the last one gives the logits)
    downsampling: int = 4  # voxels per latent cell and axis (filled in by the autoencoder)

    def to_dict(self) -> dict:
        return asdict(self)

    def __post_init__(self) -> None:
        if self.upsample not in (0, 1):
            raise ValueError(f"field upsample must be 0 or 1, got {self.upsample}")
        if self.conv_layers < 1 or self.mlp_layers < 1 or self.downsampling < 1:
            raise ValueError("field conv_layers, mlp_layers and downsampling must be >= 1")

    @property
    def sub_features(self) -> int:
        return max(self.features // 2, 1) if self.upsample else 0


def latent_coordinates(points: Tensor, latent_shape: Sequence[int], downsampling: int) -> Tensor:
    """(…, 3) normalized points -> (…, 3) positions in latent-cell units (cell j's centre at j).

    Voxel index v = (x + 1)/2·(f·L − 1); latent cell j covers voxels f·j … f·j + f − 1, centre f·j + (f − 1)/2.
    """
    f = float(downsampling)
    vmax = torch.as_tensor([f * int(s) - 1.0 for s in latent_shape], dtype=points.dtype, device=points.device)
    return ((points + 1.0) * 0.5 * vmax - (f - 1.0) / 2.0) / f


def cell_fourier_features(u: Tensor, bands: int) -> Tensor:
    """(B, N, 3) positions in latent-cell units -> (B, N, 6·bands): sin/cos(2πk·u), periodic in the cell."""
    k = torch.arange(1, bands + 1, dtype=u.dtype, device=u.device)
    ang = 2.0 * math.pi * u[..., None] * k  # (B, N, 3, bands)
    return torch.cat([ang.sin(), ang.cos()], dim=-1).flatten(2)


_CORNERS = torch.tensor([[(c >> (2 - d)) & 1 for d in range(3)] for c in range(8)])  # (8, 3) of {0, 1}


def trilinear_gather(grid: Tensor, g: Tensor, full_shape: Sequence[int], origin: Sequence[int]) -> Tensor:
    """Trilinear samples (B, N, C) of ``grid`` (B, C, *crop) at ``g`` (B, N, 3), given in the index units of the
    *full* grid of ``full_shape`` whose index ``origin`` is the crop's first cell. Border-clamped on the full grid,
    so a crop that holds the two cells around every point gives exactly the full grid's values."""
    B, C = grid.shape[:2]
    crop = torch.as_tensor(grid.shape[2:], device=g.device)
    hi = torch.as_tensor([float(s - 1) for s in full_shape], dtype=g.dtype, device=g.device)
    g = torch.minimum(torch.maximum(g, torch.zeros_like(hi)), hi)
    i0 = torch.minimum(g.floor(), (hi - 1).clamp(min=0))  # so that i0 + 1 stays inside when the axis has > 1 cell
    w1 = g - i0  # (B, N, 3)
    corners = _CORNERS.to(g.device)
    idx = (i0.long() - torch.as_tensor(list(origin), device=g.device))[:, :, None, :] + corners  # (B, N, 8, 3)
    idx = torch.minimum(idx.clamp(min=0), crop - 1)
    lin = (idx[..., 0] * crop[1] + idx[..., 1]) * crop[2] + idx[..., 2]  # (B, N, 8)
    w = torch.where(corners.bool(), w1[:, :, None, :], 1.0 - w1[:, :, None, :]).prod(-1)  # (B, N, 8)
    flat = grid.reshape(B, C, -1).transpose(1, 2)  # (B, cells, C)
    vals = torch.gather(flat, 1, lin.reshape(B, -1, 1).expand(-1, -1, C)).reshape(B, lin.shape[1], 8, C)
    return (vals * w[..., None]).sum(2)


class FieldDecoder(nn.Module):
    """F(z, X) -> logits (B, C, N); see the module docstring for the architecture and its receptive field."""

    def __init__(self, config: FieldConfig):
        super().__init__()
        self.config = cfg = config
        self.stem = nn.Conv3d(cfg.latent_channels, cfg.features, 3, padding=1)
        self.convs = nn.ModuleList(nn.Conv3d(cfg.features, cfg.features, 3, padding=1) for _ in range(cfg.conv_layers - 1))
        self.sub = nn.Conv3d(cfg.features, 8 * cfg.sub_features, 1) if cfg.upsample else None
        dims = [cfg.features + cfg.sub_features + 6 * cfg.fourier_bands] + [cfg.hidden] * (cfg.mlp_layers - 1)
        mlp: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            mlp += [nn.Linear(a, b), nn.SiLU()]
        mlp.append(nn.Linear(dims[-1], cfg.out_channels))
        self.mlp = nn.Sequential(*mlp)

    @property
    def receptive_field(self) -> int:
        """Radius r in latent cells (per axis): the logits at u depend only on cells n with |n − u| < r."""
        return self.config.conv_layers + 1

    @property
    def halo(self) -> int:
        """Cells a crop needs beyond the two cells around each point: one per 3×3×3 convolution."""
        return self.config.conv_layers

    def features(self, z: Tensor) -> tuple[Tensor, Tensor | None]:
        """(cell features (B, F, *L), sub-cell features (B, F', *2L) or None) of a latent (or a crop of one)."""
        h = F.silu(self.stem(z))
        for conv in self.convs:
            h = h + F.silu(conv(h))
        if self.sub is None:
            return h, None
        s = self.sub(h)  # (B, 8·F', x, y, z) -> pixel shuffle to (B, F', 2x, 2y, 2z)
        B, _, x, y, zz = s.shape
        Fs = self.config.sub_features
        s = s.reshape(B, Fs, 2, 2, 2, x, y, zz).permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(B, Fs, 2 * x, 2 * y, 2 * zz)
        return h, s

    def point_logits(self, feats: tuple[Tensor, Tensor | None], u: Tensor, latent_shape: Sequence[int], origin: Sequence[int]) -> Tensor:
        """Logits (B, C, N) at latent-cell positions ``u`` (B, N, 3) from features of a crop starting at ``origin``."""
        cell, sub = feats
        parts = [trilinear_gather(cell, u, latent_shape, origin)]
        if sub is not None:
            # sub-cell centres: cell c holds sub-cells 2c, 2c+1 at c − 1/4, c + 1/4 -> sub index 2u + 1/2
            parts.append(trilinear_gather(sub, 2.0 * u + 0.5, [2 * s for s in latent_shape], [2 * o for o in origin]))
        parts.append(cell_fourier_features(u, self.config.fourier_bands))
        return self.mlp(torch.cat(parts, dim=-1)).transpose(1, 2)

    def crop_box(self, u: Tensor, latent_shape: Sequence[int]) -> tuple[list[int], list[int]]:
        """[lo, hi) cell box of the crop that gives every point's logits exactly: cells read ⊕ ``halo``."""
        with torch.no_grad():
            flat = u.detach().reshape(-1, 3)
            lo = flat.min(0).values.floor().long().tolist()
            hi = flat.max(0).values.floor().long().tolist()
        box_lo = [max(0, min(int(a), s - 1) - self.halo) for a, s in zip(lo, latent_shape)]
        box_hi = [min(s, max(int(b), 0) + 2 + self.halo) for b, s in zip(hi, latent_shape)]
        return box_lo, box_hi

    def query(self, z: Tensor, points: Tensor, crop: bool = True) -> Tensor:
        """Logits (B, C, N) at normalized ``points`` (B, N, 3) or (N, 3) shared by the batch; with ``crop`` the
        convolutions run only on the crop of z the points can see (same logits, cost ∝ the points' extent)."""
        if points.ndim == 2:
            points = points.expand(z.shape[0], *points.shape)
        latent_shape = tuple(z.shape[2:])
        u = latent_coordinates(points.to(z.dtype), latent_shape, self.config.downsampling)
        if crop:
            lo, hi = self.crop_box(u, latent_shape)
        else:
            lo, hi = [0, 0, 0], list(latent_shape)
        zc = z[:, :, lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        return self.point_logits(self.features(zc), u, latent_shape, lo)

    def decode_grid(self, z: Tensor, shape: Sequence[int], chunk: int = 65536) -> Tensor:
        """Logits (B, C, *shape) on every voxel centre of ``shape``: the point decode on ``grid_points`` in chunks
        (features of the whole latent computed once)."""
        latent_shape = tuple(z.shape[2:])
        feats = self.features(z)
        pts = grid_points(shape, dtype=z.dtype, device=z.device)
        out = []
        for i in range(0, pts.shape[0], chunk):
            u = latent_coordinates(pts[i : i + chunk], latent_shape, self.config.downsampling).expand(z.shape[0], -1, -1)
            out.append(self.point_logits(feats, u, latent_shape, (0, 0, 0)))
        return torch.cat(out, dim=2).reshape(z.shape[0], self.config.out_channels, *shape)
