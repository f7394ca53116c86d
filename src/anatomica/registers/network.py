"""Anatomical register bank: learnable registers R ∈ ℝ^{C×K×D} cross-attended by a diffusion UNet.

- :class:`RegisterBank` holds R (C classes including background, K registers each, D dims) and turns it
  into the cross-attention context (B, C·K, D), optionally FiLM-modulated by the noise level.
- :class:`SegHead` predicts class logits from the UNet's last decoder features (training supervision,
  and the mask of a generated image at inference).
- :class:`RegisterUNet` is the EDM network F: MONAI's DiffusionModelUNet (via
  :class:`anatomica.nn.unet.DenoiserUNet`) with the registers as context at every attention level.
  Passing ``aux={}`` fills it with the segmentation logits and, per cross-attention layer, the
  attention mass each pixel gives each class's registers — what :func:`grounding_loss` supervises.
- :func:`grounding_loss`: cross-entropy between that per-class attention mass and the class fractions
  of the mask pooled to the layer's resolution, so class c's registers are the ones its pixels read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from monai.networks.blocks import CrossAttentionBlock
from monai.networks.nets.diffusion_model_unet import SpatialTransformer, get_timestep_embedding
from torch import Tensor, nn

from anatomica.nn.unet import DenoiserUNet, UNetConfig


@dataclass
class RegisterConfig:
    """Shape of a register bank and whether the noise level modulates it."""

    n_classes: int = 4  # including background
    per_class: int = 4  # K
    dim: int = 64  # D
    time_modulation: bool = True
    head_upsample: int = 0  # ×2 stages of the mask head: log2(codec downsampling) puts its masks at image resolution

    def to_dict(self) -> dict:
        return asdict(self)


class RegisterBank(nn.Module):
    """R (C, K, D) -> context (B, C·K, D); with time modulation R_t = R ⊙ (1 + γ(t)) + β(t)."""

    def __init__(self, config: RegisterConfig, time_dim: int):
        super().__init__()
        self.config = config
        self.time_dim = time_dim
        self.registers = nn.Parameter(torch.randn(config.n_classes, config.per_class, config.dim))
        self.film: nn.Module | None = None
        if config.time_modulation:
            self.film = nn.Sequential(nn.Linear(time_dim, config.dim), nn.SiLU(), nn.Linear(config.dim, 2 * config.dim))
            # zero init: at the start the registers are used as they are at every noise level
            nn.init.zeros_(self.film[-1].weight)
            nn.init.zeros_(self.film[-1].bias)

    def forward(self, batch: int, t_emb: Tensor | None = None, registers: Tensor | None = None, drop: Sequence[int] = ()) -> Tensor:
        """Context (B, C'·K, D); ``drop`` removes those classes' tokens (after modulation, so nothing of
        them — not even β(t) — is left to attend to)."""
        R = self.registers if registers is None else registers
        if R.shape != self.registers.shape:
            raise ValueError(f"registers must have shape {tuple(self.registers.shape)}, got {tuple(R.shape)}")
        ctx = R.reshape(1, -1, R.shape[-1]).expand(batch, -1, -1)
        if self.film is not None and t_emb is not None:
            gamma, beta = self.film(t_emb).chunk(2, dim=-1)
            ctx = ctx * (1.0 + gamma[:, None, :]) + beta[:, None, :]
        keep = self.kept_tokens(drop)
        return ctx if keep is None else ctx[:, keep]

    def kept_tokens(self, drop: Sequence[int] = ()) -> Tensor | None:
        """Indices of the tokens left after dropping classes (None: all kept)."""
        if not drop:
            return None
        C, K = self.config.n_classes, self.config.per_class
        bad = [c for c in drop if not 0 <= int(c) < C]
        if bad:
            raise ValueError(f"cannot drop classes {bad}: the bank has classes 0..{C - 1}")
        if len(set(int(c) for c in drop)) >= C:
            raise ValueError("cannot drop every class: the context would be empty")
        return torch.tensor([t for t in range(C * K) if t // K not in {int(c) for c in drop}])

    def token_classes(self, drop: Sequence[int] = ()) -> Tensor:
        """Class index of each context token (after ``drop``)."""
        C, K = self.config.n_classes, self.config.per_class
        cls = torch.arange(C).repeat_interleave(K)
        keep = self.kept_tokens(drop)
        return cls if keep is None else cls[keep]


class SegHead(nn.Module):
    """Decoder features (B, F, *S) -> class logits (B, C, *S·2^u): norm, SiLU, 3×3 conv, then ``upsample``
    learned ×2 stages (nearest ×2, 3×3 conv, norm, SiLU), SiLU, 1×1 conv.

    With a codec that downsamples by 2^u, u stages put the mask on the image grid, so boundaries are
    learned at image resolution instead of being bilinearly smeared from the latent grid."""

    def __init__(self, spatial_dims: int, in_channels: int, n_classes: int, groups: int = 8, upsample: int = 0):
        super().__init__()
        if upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        layers: list[nn.Module] = [nn.GroupNorm(min(groups, in_channels), in_channels), nn.SiLU(), conv(in_channels, in_channels, 3, padding=1)]
        for _ in range(upsample):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv(in_channels, in_channels, 3, padding=1), nn.GroupNorm(min(groups, in_channels), in_channels), nn.SiLU()]
        layers += [nn.SiLU(), conv(in_channels, n_classes, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features)


class RegisterUNet(nn.Module):
    """F(x_in, c_noise; R) of EDM with a register bank as cross-attention context and a segmentation head."""

    def __init__(self, unet: UNetConfig, registers: RegisterConfig):
        super().__init__()
        unet = UNetConfig(**{**unet.to_dict(), "with_conditioning": True, "cross_attention_dim": registers.dim})
        self.backbone = DenoiserUNet(unet)
        self.time_dim = int(unet.channels[0])
        self.bank = RegisterBank(registers, self.time_dim)
        self.seg_head = SegHead(unet.spatial_dims, int(unet.channels[0]), registers.n_classes, upsample=registers.head_upsample)
        self._record: dict | None = None
        self._shapes: list[tuple[int, ...]] = []
        self._context: Tensor | None = None
        self._token_onehot: Tensor | None = None
        self.backbone.unet.up_blocks[-1].register_forward_hook(self._keep_features)
        for m in self.backbone.unet.modules():
            if isinstance(m, SpatialTransformer):
                m.register_forward_pre_hook(self._keep_shape)
            if isinstance(m, CrossAttentionBlock):
                m.register_forward_pre_hook(self._keep_attention, with_kwargs=True)

    @property
    def config(self) -> tuple[UNetConfig, RegisterConfig]:
        return self.backbone.config, self.bank.config

    # hooks: only active while a caller asked for auxiliary outputs -------------------------------------
    def _keep_features(self, module, args, output) -> None:
        if self._record is not None:
            self._record["features"] = output

    def _keep_shape(self, module, args) -> None:
        if self._record is not None:
            self._shapes.append(tuple(args[0].shape[2:]))

    def _keep_attention(self, module: CrossAttentionBlock, args, kwargs) -> None:
        context = kwargs.get("context")
        if self._record is None or context is None or context is not self._context:
            return
        x = args[0]
        b, n, _ = x.shape
        h = module.num_heads
        # the block's own projections, recomputed with gradient (MONAI keeps only a detached copy)
        q = module.to_q(x).reshape(b, n, h, -1)
        k = module.to_k(context).reshape(b, context.shape[1], h, -1)
        att = torch.einsum("bnhd,blhd->bhnl", q, k).mul(module.scale).softmax(-1).mean(1)  # (B, N, tokens)
        per_class = att @ self._token_onehot.to(att.dtype)  # attention mass on each class's registers
        self._record["attention"].append((per_class, self._shapes[-1]))

    def forward(self, x: Tensor, c_noise: Tensor, aux: dict | None = None, registers: Tensor | None = None, drop: Sequence[int] = ()) -> Tensor:
        """EDM's F; ``registers`` replaces the trained bank, ``drop`` removes classes' tokens (edits)."""
        c = c_noise.reshape(-1).to(torch.float32)
        if c.shape[0] == 1 and x.shape[0] > 1:
            c = c.expand(x.shape[0])
        t_emb = get_timestep_embedding(c * self.backbone.config.noise_scale, self.time_dim).to(x.dtype)
        context = self.bank(x.shape[0], t_emb, registers, drop)
        self._context = context
        self._token_onehot = F.one_hot(self.bank.token_classes(drop), self.bank.config.n_classes).to(x.device)
        self._shapes = []
        self._record = {"attention": []} if aux is not None else None
        try:
            out = self.backbone(x, c, context=context)
            if aux is not None:
                aux["seg_logits"] = self.seg_head(self._record["features"])
                aux["attention"] = self._record["attention"]
                aux["c_noise"] = c
        finally:
            self._record = None
            self._context = None
        return out


def grounding_loss(attention: list[tuple[Tensor, tuple[int, ...]]], mask: Tensor, n_classes: int) -> Tensor:
    """Mean over layers of −Σ_c y_c log a_c, with a_c the attention mass a pixel puts on class c's
    registers and y_c the fraction of class c in that pixel's footprint (mask (B, *S) area-pooled)."""
    if not attention:
        raise ValueError("no cross-attention maps recorded: is this a RegisterUNet called with aux={}?")
    onehot = F.one_hot(mask.long(), n_classes).movedim(-1, 1).float()
    pool = F.adaptive_avg_pool2d if mask.ndim == 3 else F.adaptive_avg_pool3d
    total = mask.new_zeros((), dtype=torch.float32)
    for probs, shape in attention:
        target = pool(onehot, shape).flatten(2).transpose(1, 2)  # (B, N, C)
        total = total - (target * probs.clamp_min(1e-8).log()).sum(-1).mean()
    return total / len(attention)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def grounding_floor(shapes: list[tuple[int, ...]], mask: Tensor, n_classes: int) -> float:
    """The lowest value :func:`grounding_loss` can reach on ``mask`` at these layer resolutions: the mean
    entropy of the pooled class fractions (attention equal to the targets). Pixels straddling a boundary
    have mixed targets, so the floor is above 0; read a reached loss against it, not against ln C."""
    onehot = F.one_hot(mask.long(), n_classes).movedim(-1, 1).float()
    pool = F.adaptive_avg_pool2d if mask.ndim == 3 else F.adaptive_avg_pool3d
    total = 0.0
    for shape in shapes:
        t = pool(onehot, shape).flatten(2).transpose(1, 2)
        total += float(-(t * t.clamp_min(1e-8).log()).sum(-1).mean())
    return total / len(shapes)
