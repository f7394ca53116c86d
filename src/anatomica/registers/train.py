"""Training of the register-bank LDM and of its baseline (the same LDM without registers).

One plain loop for both, not Lightning: the data are a few thousand pre-augmented latents held in
memory, training is single-process and minutes long, and the loop must run the two models under an
identical budget and RNG stream; Lightning's Trainer would add no feature this needs (the resumable,
multi-process path lives with the label-map LDM of ``anatomica.train``).

Objective (register model): L = L_EDM + w(step)·(L_seg + γ·L_ground) with w the dual-objective
schedule (2λ → λ), L_seg = Dice + CE of the segmentation head against the mask at image resolution
and L_ground the register grounding term; both anatomical terms are applied only to the batch items
whose training σ ≤ ``anat_sigma_max`` (at higher noise there is no anatomy left to read). The
baseline drops the registers, the head and both terms: L = L_EDM.
"""

from __future__ import annotations

import csv
import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from torch import Tensor, nn
from tqdm.auto import tqdm

from anatomica.diffusion.edm import EDMPrecond, edm_loss
from anatomica.diffusion.ema import ema_decay_at, ema_update
from anatomica.errors import AnatomicaError
from anatomica.io.checkpoint import load_module_state, load_weights, save_weights
from anatomica.nn.unet import DenoiserUNet, UNetConfig
from anatomica.registers.codec import Codec, load_codec
from anatomica.registers.network import RegisterConfig, RegisterUNet, count_parameters, grounding_loss
from anatomica.registers.schedule import DualObjectiveSchedule

KIND = "register-ldm"


@dataclass
class RegisterLDMConfig:
    """Everything needed to rebuild and use a trained model; stored in the run's config.json."""

    unet: UNetConfig
    registers: RegisterConfig | None  # None: the baseline LDM
    latent_shape: list[int]  # (C, *S)
    image_size: int
    spatial_dims: int
    labels: dict[str, int]
    sigma_data: float = 1.0
    autoencoder: str | None = None  # run folder of the image autoencoder; None = pixel space
    anat_sigma_max: float = 1.0
    ground_weight: float = 1.0
    mask_sigma: float = 0.05  # noise level at which the head reads the mask of a finished sample
    data: dict = field(default_factory=dict)  # how the training pairs were made (for evaluation)

    @property
    def n_classes(self) -> int:
        return max(self.labels.values(), default=0) + 1

    def to_dict(self) -> dict:
        return {
            "unet": self.unet.to_dict(),
            "registers": self.registers.to_dict() if self.registers else None,
            "latent_shape": list(self.latent_shape),
            "image_size": self.image_size,
            "spatial_dims": self.spatial_dims,
            "labels": dict(self.labels),
            "sigma_data": self.sigma_data,
            "autoencoder": self.autoencoder,
            "anat_sigma_max": self.anat_sigma_max,
            "ground_weight": self.ground_weight,
            "mask_sigma": self.mask_sigma,
            "data": dict(self.data),
        }

    @classmethod
    def from_dict(cls, d: dict) -> RegisterLDMConfig:
        try:
            return cls(
                unet=UNetConfig.from_dict(d["unet"]),
                registers=RegisterConfig(**d["registers"]) if d.get("registers") else None,
                **{k: d[k] for k in ("latent_shape", "image_size", "spatial_dims", "labels")},
                **{k: d[k] for k in ("sigma_data", "autoencoder", "anat_sigma_max", "ground_weight", "mask_sigma", "data") if k in d},
            )
        except (KeyError, TypeError, ValueError) as e:
            raise AnatomicaError(f"bad register-ldm config ({e})") from None


def build_net(cfg: RegisterLDMConfig) -> nn.Module:
    return RegisterUNet(cfg.unet, cfg.registers) if cfg.registers else DenoiserUNet(cfg.unet)


@dataclass
class RegisterLDM:
    net: nn.Module  # EMA weights
    precond: EDMPrecond
    codec: Codec
    config: RegisterLDMConfig
    meta: dict = field(default_factory=dict)

    @property
    def has_registers(self) -> bool:
        return self.config.registers is not None

    @property
    def has_trained_head(self) -> bool:
        """A head that anatomical supervision trained (λ = 0 leaves it at its random initialisation)."""
        sched = self.meta.get("schedule", {})
        return self.has_registers and sched.get("lam", 1.0) > 0 and max(sched.get("start", 1.0), sched.get("end", 1.0)) > 0


def train_register_ldm(
    latents: Tensor,
    masks: Tensor,
    cfg: RegisterLDMConfig,
    steps: int,
    batch: int = 32,
    lr: float = 3e-4,
    seed: int = 0,
    schedule: DualObjectiveSchedule | None = None,
    ema_decay: float = 0.999,
    progress: bool = True,
) -> tuple[nn.Module, list[dict], float]:
    """Train on (latents (N, C, *s), masks (N, *S) at image resolution); returns (EMA net, log, seconds)."""
    if latents.shape[1:] != torch.Size(cfg.latent_shape):
        raise AnatomicaError(f"latents have shape {tuple(latents.shape[1:])}, the config says {cfg.latent_shape}")
    if steps < 1 or batch < 1:
        raise AnatomicaError(f"steps and batch must be >= 1, got {steps} and {batch}")
    schedule = schedule or DualObjectiveSchedule()
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = build_net(cfg)
    ema = build_net(cfg)
    ema.load_state_dict(net.state_dict())
    ema.requires_grad_(False)
    precond = EDMPrecond(net, cfg.sigma_data)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    seg_loss = DiceCELoss(to_onehot_y=True, softmax=True)
    reg = cfg.registers is not None
    log: list[dict] = []
    start = time.perf_counter()
    bar = tqdm(range(steps), desc="registers" if reg else "baseline", disable=not progress)
    for step in bar:
        idx = torch.randint(0, len(latents), (batch,), generator=g)
        x0 = latents[idx]
        aux: dict | None = {} if reg else None
        loss_edm = edm_loss(precond, x0, generator=g, **({"aux": aux} if reg else {}))
        loss = loss_edm
        row = {"step": step, "edm": loss_edm.item()}
        if reg:
            sigma = (4.0 * aux["c_noise"]).exp()
            keep = sigma <= cfg.anat_sigma_max
            w = schedule(step)
            row["weight"] = w
            if keep.any() and w > 0:
                m = masks[idx][keep]
                logits = aux["seg_logits"][keep]
                if logits.shape[2:] != m.shape[1:]:
                    logits = F.interpolate(logits, size=tuple(m.shape[1:]), mode="bilinear" if m.ndim == 3 else "trilinear", align_corners=False)
                l_seg = seg_loss(logits, m[:, None])
                l_ground = grounding_loss([(p[keep], s) for p, s in aux["attention"]], m, cfg.n_classes)
                loss = loss + w * (l_seg + cfg.ground_weight * l_ground)
                row.update(seg=l_seg.item(), ground=l_ground.item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        # EMA warm-up (decay grows with the step) so short runs are not dominated by the initial weights
        ema_update(ema, net, ema_decay_at(step, ema_decay))
        log.append(row)
        if step % 10 == 0:
            bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k != "step"})
    ema.eval()
    return ema, log, time.perf_counter() - start


def save_register_ldm(folder: str | Path, net: nn.Module, cfg: RegisterLDMConfig, meta: dict, log: list[dict]) -> Path:
    folder = Path(folder)
    save_weights(folder, net, {**cfg.to_dict(), "meta": meta}, KIND)
    if log:
        keys = sorted({k for row in log for k in row}, key=lambda k: (k != "step", k))
        with open(folder / "log.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(log)
    return folder


def load_register_ldm(folder: str | Path) -> RegisterLDM:
    """A trained run: EMA network, its EDM denoiser, the codec and the config; damage fails in one line."""
    state, raw = load_weights(folder, KIND)
    cfg = RegisterLDMConfig.from_dict(raw)
    net = build_net(cfg)
    load_module_state(net, state, str(folder))
    net.eval()
    if cfg.autoencoder:
        codec, _ = load_codec(cfg.autoencoder)
    else:
        codec = Codec(None)
    return RegisterLDM(net, EDMPrecond(net, cfg.sigma_data), codec, cfg, raw.get("meta", {}))


def widened_unet(unet: UNetConfig, target: int) -> UNetConfig:
    """The register-free UNet widened to the parameter count closest to ``target`` (a plain LDM of the
    register model's size). Every level's channels are searched among multiples of the norm groups (and
    of the head width where the level attends) between its own and twice its own, never narrower than
    the level above; parameter counts grow in coarse steps, so the match is the closest, not exact."""
    groups, heads = int(unet.norm_num_groups), int(unet.num_head_channels)
    options = []
    for c, att in zip(unet.channels, unet.attention_levels):
        st = math.lcm(groups, heads) if att else groups
        lo = st * math.ceil(int(c) / st)
        options.append(range(lo, 2 * int(c) + 1, st) or range(lo, lo + 1))
    best: tuple[int, list[int]] | None = None
    for ch in itertools.product(*options):
        if any(b < a for a, b in zip(ch, ch[1:])) and any(b >= a for a, b in zip(unet.channels, unet.channels[1:])):
            continue  # keep the original's non-decreasing widths
        cand = UNetConfig(**{**unet.to_dict(), "channels": list(ch), "with_conditioning": False, "cross_attention_dim": None})
        n = count_parameters(DenoiserUNet(cand))
        if best is None or abs(n - target) < abs(best[0] - target):
            best = (n, list(ch))
    assert best is not None
    return UNetConfig(**{**unet.to_dict(), "channels": best[1], "with_conditioning": False, "cross_attention_dim": None})


def parameter_counts(net: nn.Module) -> dict[str, int]:
    """Total and per-part parameter counts (the register model's bank and head listed separately)."""
    out = {"total": count_parameters(net)}
    if isinstance(net, RegisterUNet):
        out.update(backbone=count_parameters(net.backbone), bank=count_parameters(net.bank), seg_head=count_parameters(net.seg_head))
    return out
