"""`anatomica train autoencoder|diffusion`: train the label-map autoencoder and the latent diffusion prior."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from anatomica.cli.options import check_count, check_seed, int_list, set_threads, threads_option
from anatomica.errors import AnatomicaError

train_app = typer.Typer(
    help=(
        "Train the generative prior of one dataset, in two stages: `anatomica train autoencoder` (label maps -> "
        "latent grid, conv + neural-field decoders), then `anatomica train diffusion` (EDM latent diffusion on its "
        "latents). Runs are folders: config.json, model.safetensors, checkpoints/, logs/ (CSV). Stop any time and "
        "continue with --resume RUN."
    ),
    no_args_is_help=True,
)


def _common(threads: int | None, devices: int, accelerator: str, nodes: int, seed: int) -> None:
    if devices < 1 or nodes < 1:
        raise AnatomicaError(f"--devices and --nodes must be >= 1, got {devices} and {nodes}")
    if accelerator not in ("cpu", "gpu", "auto"):
        raise AnatomicaError(f"--accelerator must be cpu, gpu or auto, got {accelerator!r}")
    check_seed(seed)
    set_threads(threads)


def _done(run: Path, what: str) -> None:
    from anatomica.training.trainer import is_main_process

    if is_main_process():
        typer.echo(f"{what} written to {run} (model.safetensors, config.json, logs/, checkpoints/)")


# Options both stages take, declared once.
Devices = Annotated[int, typer.Option("--devices", help="Processes (CPU) or GPUs per node to train on with DDP; >1 re-launches this command once per extra process (gloo on CPU, NCCL on GPUs).")]
Accelerator = Annotated[str, typer.Option("--accelerator", help="cpu, gpu or auto (a GPU when one is available).")]
Nodes = Annotated[int, typer.Option("--nodes", help="Machines taking part (multi-node DDP; set MASTER_ADDR, MASTER_PORT, NODE_RANK as for any Lightning job).")]
Resume = Annotated[Path | None, typer.Option("--resume", help="Continue the run in this folder from checkpoints/last.safetensors (same step, optimizer, EMA, data order); other model options are ignored.")]
OverwriteRun = Annotated[bool, typer.Option("--overwrite", help="Replace an existing run folder as a whole; the old run survives until the new one has finished.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed of weights, batch order and noise (an integer >= 0): same seed, same model.")]


@train_app.command("autoencoder")
def autoencoder(
    data: Path | None = typer.Option(None, "--data", help="Dataset folder: labelsTr/*.nii.gz + dataset.json (e.g. from `anatomica phantoms`)."),
    out: Path | None = typer.Option(None, "--out", help="Run folder to create."),
    size: int | None = typer.Option(None, "--size", help="Train at SIZE³ voxels (nearest resampling, same field of view); default: the files' size. Must be divisible by the latent downsampling (×4 for 3 --channels levels, × --upscale)."),
    steps: int | None = typer.Option(None, "--steps", help="Optimizer steps in total (also when resuming: the new total); 2000 when not given."),
    batch_size: int = typer.Option(4, "--batch-size", help="Cases per step and process."),
    lr: float = typer.Option(5e-4, "--lr", help="AdamW learning rate."),
    kl_weight: float = typer.Option(1e-4, "--kl-weight", help="Weight of the KL term (per latent element) against Dice+CE."),
    field_points: int = typer.Option(8192, "--field-points", help="Random voxel centres per case for the neural-field loss."),
    channels: str = typer.Option("32,64,64", "--channels", help="Encoder/decoder widths per level; n levels = ×2^(n-1) downsampling."),
    latent_channels: int = typer.Option(4, "--latent-channels", help="Channels of the latent grid."),
    field_features: int = typer.Option(64, "--field-features", help="Feature channels of the neural-field decoder's grid."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Share of cases (the last ones) held out for the reconstruction Dice in metrics.json."),
    checkpoint_every: int = typer.Option(250, "--checkpoint-every", help="Write checkpoints/step*.safetensors every N steps."),
    boundary_fraction: float = typer.Option(0.0, "--boundary-fraction", help="Share (0..1) of the field points drawn on label borders, where the field's errors are; the rest uniform."),
    trainable: str = typer.Option("all", "--trainable", help="all; decoders (both decoders on a frozen encoder, so a prior trained on its latents stays valid); field (the neural field alone). decoders/field need --init."),
    init: Path | None = typer.Option(None, "--init", help="Autoencoder run folder (or packaged model name) whose weights start this run; its model options win over --channels etc."),
    upscale: int = typer.Option(1, "--upscale", help="Decode at N× the grid of the encoder's core: the encoder reads the map mode-pooled by N, the conv decoder upsamples by N and refines. With --init and --trainable decoders the init's encoder and latents (and a prior trained on them) stay valid, e.g. heart32's core decoding 64³ maps (docs/pretrained.md, heart64)."),
    seed: Seed = 0,
    devices: Devices = 1,
    accelerator: Accelerator = "auto",
    nodes: Nodes = 1,
    threads: int | None = threads_option(),
    resume: Resume = None,
    overwrite: OverwriteRun = False,
) -> None:
    """Train the label-map autoencoder: a KL-regularized 3D conv encoder to a 4-channel latent grid (×4 smaller per
    axis) with a convolutional decoder (full volume) and a neural-field decoder (any point set), both trained with
    Dice + cross-entropy. Writes the reconstruction Dice per label of both decoders on held-out cases to metrics.json.

    Example: anatomica train autoencoder --data runs/data/heart32 --out runs/heart32/ae --steps 2000 --seed 0

    Fine-tune the decoders of AE on its frozen encoder (docs/pretrained.md): --init AE --trainable decoders --boundary-fraction 0.25 --lr 5e-4
    """
    from anatomica.nn.autoencoder import AutoencoderConfig
    from anatomica.training.autoencoder import TRAINABLE, AutoencoderTrainConfig
    from anatomica.training.config_checks import check_value
    from anatomica.training.fit import train_autoencoder

    _common(threads, devices, accelerator, nodes, seed)
    check_count(latent_channels, "--latent-channels")
    check_count(field_features, "--field-features")
    if not 0 <= val_fraction < 1:
        raise AnatomicaError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    if trainable not in TRAINABLE:
        raise AnatomicaError(f"--trainable must be one of {', '.join(TRAINABLE)}, got {trainable!r}")
    if trainable != "all" and init is None:
        raise AnatomicaError(f"--trainable {trainable} trains on a frozen encoder: pass --init AUTOENCODER_RUN")
    check_value("boundary_fraction", boundary_fraction)  # before the config's own ValueError
    ch = int_list(channels, "--channels")
    groups = 16 if all(c % 16 == 0 for c in ch) else 8
    if any(c % groups for c in ch) or field_features % 8:
        raise AnatomicaError(f"--channels and --field-features must be multiples of 8, got {channels} and {field_features}")
    check_count(upscale, "--upscale")
    model = AutoencoderConfig(latent_channels=latent_channels, channels=ch, norm_num_groups=groups, field={"features": field_features}, upscale=upscale)
    tc = AutoencoderTrainConfig(
        steps=2000 if steps is None else steps, batch_size=batch_size, lr=lr, kl_weight=kl_weight, field_points=field_points,
        seed=seed, val_fraction=val_fraction, checkpoint_every=checkpoint_every, boundary_fraction=boundary_fraction,
        trainable=trainable, init=None if init is None else str(init),
    )
    if size is not None and size < 4:
        raise AnatomicaError(f"--size must be >= 4, got {size}")
    run = train_autoencoder(data, out, size=size, model=model, train=tc, devices=devices, accelerator=accelerator, nodes=nodes, overwrite=overwrite, resume=resume, steps=steps if resume else None)
    _done(run, "autoencoder")


@train_app.command("diffusion")
def diffusion(
    autoencoder_run: Path | None = typer.Option(None, "--autoencoder", help="A finished `anatomica train autoencoder` run folder."),
    out: Path | None = typer.Option(None, "--out", help="Run folder to create (self-contained: it keeps a copy of the autoencoder)."),
    data: Path | None = typer.Option(None, "--data", help="Dataset folder; default: the one the autoencoder was trained on (its training split is used)."),
    steps: int | None = typer.Option(None, "--steps", help="Optimizer steps in total (also when resuming: the new total); 4000 when not given."),
    batch_size: int = typer.Option(16, "--batch-size", help="Latents per step and process."),
    lr: float = typer.Option(2e-4, "--lr", help="AdamW learning rate."),
    ema_decay: float = typer.Option(0.999, "--ema-decay", help="EMA decay of the saved weights (warm-up min(decay, (1+t)/(10+t)))."),
    unet_channels: str = typer.Option("32,64,64", "--unet-channels", help="UNet widths per level (multiples of 32); n levels need latent sizes divisible by 2^(n-1)."),
    attention: str = typer.Option("0,0,1", "--attention", help="Self-attention per level, 0/1 per entry of --unet-channels."),
    res_blocks: int = typer.Option(2, "--res-blocks", help="Residual blocks per UNet level."),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", help="Write checkpoints/step*.safetensors every N steps."),
    condition: str | None = typer.Option(None, "--condition", help="Train a conditional baseline (docs/conditional.md): explicit (the 13 moments of each --task domain as constant input channels) or implicit (a Gaussian heatmap per domain). Needs --task."),
    task: str | None = typer.Option(None, "--task", help="The control task whose domains' moments condition the model: a packaged task name (e.g. right-ventricle) or a task YAML file. Needs --condition."),
    init: str | None = typer.Option(None, "--init", help="Start from a trained unconditional prior (a diffusion run or a packaged model, e.g. heart32) instead of from scratch: its weights, latent normalization, architecture (the --unet-* options are not used) and autoencoder (no --autoencoder; a packaged model needs --data). With --condition, the condition channels start at zero weight, so step 0 samples the prior."),
    seed: Seed = 0,
    devices: Devices = 1,
    accelerator: Accelerator = "auto",
    nodes: Nodes = 1,
    threads: int | None = threads_option(),
    resume: Resume = None,
    overwrite: OverwriteRun = False,
) -> None:
    """Train EDM latent diffusion (Karras et al. 2022: preconditioning, lognormal σ, λ(σ) weighting) with a 3D UNet
    on the autoencoder's latents, normalized to zero mean and unit variance; the saved weights are the EMA.

    Example: anatomica train diffusion --autoencoder runs/heart32/ae --out runs/heart32/ldm --steps 4000 --seed 0

    A conditional baseline of the paper (each case's moments in the task's domains as extra input channels; sample it
    with `anatomica sample --task --reference`): --condition explicit --task right-ventricle

    Fine-tune a baseline from the packaged prior: --init heart32 --data HEART32_TRAIN --condition implicit --task mitral-valve --steps 500
    """
    from anatomica.nn.unet import UNetConfig
    from anatomica.training.diffusion import DiffusionTrainConfig
    from anatomica.training.fit import train_diffusion

    _common(threads, devices, accelerator, nodes, seed)
    ch = int_list(unet_channels, "--unet-channels")
    try:
        att = tuple(bool(int(v)) for v in attention.split(","))
    except ValueError:
        raise AnatomicaError(f"--attention: expected comma-separated 0/1, got {attention!r}") from None
    if len(att) != len(ch):
        raise AnatomicaError(f"--attention has {len(att)} entries, --unet-channels {len(ch)}")
    if any(c % 32 for c in ch):
        raise AnatomicaError(f"--unet-channels must be multiples of 32, got {unet_channels}")
    if not 0 <= ema_decay < 1:  # also NaN
        raise AnatomicaError(f"--ema-decay must be in [0, 1), got {ema_decay}")
    check_count(res_blocks, "--res-blocks")
    unet = UNetConfig(channels=ch, attention_levels=att, num_res_blocks=res_blocks)
    tc = DiffusionTrainConfig(steps=4000 if steps is None else steps, batch_size=batch_size, lr=lr, ema_decay=ema_decay, seed=seed,
                              checkpoint_every=checkpoint_every, init=init)
    run = train_diffusion(data, autoencoder_run, out, unet=unet, train=tc, devices=devices, accelerator=accelerator, nodes=nodes, overwrite=overwrite,
                          resume=resume, steps=steps if resume else None, condition=condition, task=task)
    _done(run, "latent diffusion model" if condition is None or resume else f"conditional ({condition}) latent diffusion model")
