"""The inference bundle: ``load_model(name or run folder) -> ModelBundle`` (no Lightning, no training code).

Everything the guided sampler needs sits in the bundle: the autoencoder (both decoders), the EMA
denoiser ``D(z, sigma)`` in *normalized* latent space, the latent normalization, the latent shape, the
dataset's label table (channel = label value), affine and volume shape, the σ schedule, and
``initial_noise(n, seed)`` so guided and unguided runs start from identical noise.

Normalized latent ``z_n = (z − shift)·scale``; the decoders take raw ``z``: use ``bundle.decode(z_n)`` /
``bundle.query(z_n, points)`` (which unscale) or ``bundle.autoencoder.*(bundle.from_latent(z_n))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from anatomica.diffusion.edm import EDMPrecond, karras_sigmas
from anatomica.diffusion.noise import sample_noise
from anatomica.errors import AnatomicaError
from anatomica.io.checkpoint import load_module_state, load_tensors, load_weights
from anatomica.nn.autoencoder import Autoencoder, AutoencoderConfig
from anatomica.nn.unet import DenoiserUNet, UNetConfig


def _config_error(folder: Path, e: Exception) -> AnatomicaError:
    return AnatomicaError(f"{folder}/config.json: invalid model configuration ({str(e).splitlines()[0] if str(e) else type(e).__name__})")


def build_autoencoder(config: dict, folder: Path) -> Autoencoder:
    try:
        return Autoencoder(AutoencoderConfig.from_dict(config["model"]))
    except (KeyError, TypeError, ValueError) as e:
        raise _config_error(folder, e) from None


def load_autoencoder(run_dir: str | Path) -> tuple[Autoencoder, dict]:
    """A trained autoencoder run (``anatomica train autoencoder``) -> (model in eval mode, config)."""
    run_dir = Path(run_dir)
    state, config = load_weights(run_dir, kind="autoencoder")
    ae = build_autoencoder(config, run_dir)
    load_module_state(ae, state, str(run_dir / "model.safetensors"))
    return ae.eval().requires_grad_(False), config


@dataclass
class ModelBundle:
    autoencoder: Autoencoder
    denoiser: EDMPrecond  # EMA weights; D(z_n, sigma) -> z_n hat, differentiable in z_n
    latent_shape: tuple[int, ...]  # (c, x, y, z)
    latent_scale: float
    latent_shift: Tensor  # (c,)
    labels: dict[str, int]
    affine: np.ndarray
    shape: tuple[int, int, int]
    sigma_min: float
    sigma_max: float
    rho: float
    config: dict
    # A conditional baseline's record (config.json "condition": kind, task, spec, domains, channels, mean, std);
    # None for the prior. Its denoiser takes D(z_n, sigma, cond=c) (``guided.conditional``).
    condition: dict | None = None

    @property
    def num_classes(self) -> int:
        return self.autoencoder.config.num_classes

    def from_latent(self, z_n: Tensor) -> Tensor:
        return z_n / self.latent_scale + self.latent_shift.to(z_n).reshape(1, -1, 1, 1, 1)

    def to_latent(self, z: Tensor) -> Tensor:
        return (z - self.latent_shift.to(z).reshape(1, -1, 1, 1, 1)) * self.latent_scale

    def decode(self, z_n: Tensor) -> Tensor:
        """Conv-decoder logits (B, C, X, Y, Z) of normalized latents."""
        return self.autoencoder.decode(self.from_latent(z_n))

    def query(self, z_n: Tensor, points: Tensor) -> Tensor:
        """Neural-field logits (B, C, N) of normalized latents at normalized points."""
        return self.autoencoder.query(self.from_latent(z_n), points)

    def decode_field(self, z_n: Tensor, shape: Sequence[int] | None = None) -> Tensor:
        return self.autoencoder.decode_field(self.from_latent(z_n), shape or self.shape)

    def sigmas(self, steps: int) -> Tensor:
        return karras_sigmas(steps, self.sigma_min, self.sigma_max, self.rho)

    def initial_noise(self, n: int, seed: int, start: int = 0) -> Tensor:
        """(n, *latent_shape) noise at σ_max; sample i depends only on (seed, start + i)."""
        return self.noise(range(start, start + n), seed)

    def noise(self, indices: Sequence[int], seed: int) -> Tensor:
        """Noise at σ_max for samples ``indices``; sample i depends only on (seed, i)."""
        return sample_noise(self.latent_shape, self.sigma_max, seed, indices)


def resolve_model(model: str | Path) -> Path:
    """``--model``: a run folder, or the name of a model that ships in the package (``anatomica models``)."""
    path = Path(model)
    if path.is_dir():
        return path
    from anatomica.pretrained import packaged_models, pretrained_path

    if str(model) in packaged_models():
        return pretrained_path(str(model))
    if path.exists():
        raise AnatomicaError(f"{path}: not a model run folder")
    names = ", ".join(packaged_models()) or "none"
    raise AnatomicaError(f"{model}: no such run folder, nor a packaged model (packaged: {names})")


def load_model(model: str | Path) -> ModelBundle:
    """A trained latent diffusion run (``anatomica train diffusion``) or a packaged model by name, validated, in
    eval mode without grads."""
    run_dir = resolve_model(model)
    state, config = load_weights(run_dir, kind="latent_diffusion")
    try:
        m = config["model"]
        denoiser = EDMPrecond(DenoiserUNet(UNetConfig.from_dict(m["unet"])), sigma_data=float(m["sigma_data"]))
        ae_config = config["autoencoder"]["config"]
        data = config["data"]
        s = config["sampling"]
        latent_shape = tuple(int(v) for v in m["latent_shape"])
        shift = torch.tensor(m["latent_shift"], dtype=torch.float32)
        scale = float(m["latent_scale"])
        affine = np.asarray(data["affine"], dtype=np.float64)
        if affine.shape != (4, 4) or shift.shape != (latent_shape[0],):
            raise ValueError("affine must be 4x4 and latent_shift one value per latent channel")
        numbers = {"latent_scale": scale, "sigma_min": float(s["sigma_min"]), "sigma_max": float(s["sigma_max"]), "rho": float(s["rho"])}
        if not (np.all(np.isfinite(affine)) and torch.isfinite(shift).all()) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise ValueError("affine and latent_shift must be finite, the affine invertible")
        for key, v in numbers.items():
            if not np.isfinite(v) or v <= 0:
                raise ValueError(f"{key} must be a finite number > 0, got {v}")
        if numbers["sigma_min"] >= numbers["sigma_max"]:
            raise ValueError("sampling.sigma_min must be below sigma_max")
        condition = _check_condition(config.get("condition"), m["unet"], latent_shape[0])
    except (KeyError, TypeError, ValueError) as e:
        raise _config_error(run_dir, e) from None
    load_module_state(denoiser, state, str(run_dir / "model.safetensors"))
    ae = build_autoencoder(ae_config, run_dir)
    ae_state, meta = load_tensors(run_dir / "autoencoder.safetensors")
    if meta.get("kind") != "autoencoder":
        raise AnatomicaError(f"{run_dir / 'autoencoder.safetensors'}: holds {meta.get('kind')!r} weights, expected autoencoder")
    load_module_state(ae, ae_state, str(run_dir / "autoencoder.safetensors"))
    if tuple(ae.latent_shape(data["shape"])) != latent_shape:
        raise AnatomicaError(f"{run_dir}: latent shape {latent_shape} does not fit the autoencoder at {tuple(data['shape'])}")
    return ModelBundle(
        autoencoder=ae.eval().requires_grad_(False),
        denoiser=denoiser.eval().requires_grad_(False),
        latent_shape=latent_shape,
        latent_scale=scale,
        latent_shift=shift,
        labels={k: int(v) for k, v in data["labels"].items()},
        affine=affine,
        shape=tuple(int(v) for v in data["shape"]),
        sigma_min=float(s["sigma_min"]),
        sigma_max=float(s["sigma_max"]),
        rho=float(s["rho"]),
        config=config,
        condition=condition,
    )


def _check_condition(cond: dict | None, unet: dict, latent_channels: int) -> dict | None:
    """A conditional run's record, checked against its UNet: in = latent + conditioning channels, out = latent."""
    if cond is None:
        return None
    from anatomica.control.conditioning import CONDITIONS, channel_count

    if cond["kind"] not in CONDITIONS:
        raise ValueError(f"condition.kind must be one of {', '.join(CONDITIONS)}, got {cond['kind']!r}")
    C = int(cond["channels"])
    if C != channel_count(cond["kind"], len(cond["domains"])) or len(cond["mean"]) != C or len(cond["std"]) != C:
        raise ValueError(f"condition: {C} channels do not fit {len(cond['domains'])} domains and the normalization")
    if int(unet["in_channels"]) != latent_channels + C or int(unet["out_channels"]) != latent_channels:
        raise ValueError(f"a conditional UNet takes {latent_channels} + {C} channels and returns {latent_channels}")
    if not all(np.isfinite(v) for v in cond["mean"] + cond["std"]) or min(cond["std"]) <= 0:
        raise ValueError("condition.mean and condition.std must be finite, the std > 0")
    return cond



def model_card(name: str) -> dict:
    """What ``anatomica models`` shows of a packaged model: anatomy, grid, labels, recorded quality."""
    from anatomica.io.checkpoint import read_config
    from anatomica.pretrained import pretrained_path

    folder = pretrained_path(name)
    config = read_config(folder, "latent_diffusion")
    data = config["data"]
    affine = np.asarray(data["affine"], dtype=np.float64)
    metrics = folder / "autoencoder_metrics.json"
    dice = None
    if metrics.is_file():
        import json

        dice = json.loads(metrics.read_text()).get("mean_foreground_dice")
    return {
        "name": name,
        "anatomy": config.get("anatomy") or name.rstrip("0123456789"),
        "shape": [int(v) for v in data["shape"]],
        "spacing_mm": [round(float(v), 4) for v in np.linalg.norm(affine[:3, :3], axis=0)],
        "labels": list(data["labels"]),
        "reconstruction_dice": dice,
        "diffusion_steps": int(config["train"]["steps"]),
        "path": str(folder),
    }
