"""`anatomica registers ...`: the register-bank image LDM (data, autoencoder, train, sample, edit, evaluate)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table

from anatomica.errors import AnatomicaError

registers_app = typer.Typer(
    help=(
        "Medical images whose anatomy is learned through a bank of learnable anatomical registers.\n\n"
        "Path: `registers data --source mni152 --out D` -> `registers autoencoder --data D --out AE` -> "
        "`registers train --data D --autoencoder AE --out R` (and `--baseline --out B`) -> "
        "`registers sample --model R` / `registers edit --model R --edit scale:white_matter:1.5` -> "
        "`registers evaluate --model R --baseline B`."
    ),
    no_args_is_help=True,
)


def _fresh_dir(path: Path, overwrite: bool) -> Path:
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        raise AnatomicaError(f"{path}: exists and is not empty (pass --overwrite to replace it)")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise AnatomicaError(f"{what} must be comma-separated integers, got {text!r}") from None


def _threads(n: int | None) -> None:
    if n is not None:
        if n < 1:
            raise AnatomicaError(f"--threads must be >= 1, got {n}")
        torch.set_num_threads(n)


def save_mosaic(path: Path, images: torch.Tensor, masks: torch.Tensor | None, n: int = 8, title: str = "") -> Path:
    """PNG: generated images (top row) and their masks (bottom row); 3D volumes show their middle slice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n, len(images))
    rows = 2 if masks is not None else 1
    fig, axes = plt.subplots(rows, n, figsize=(1.6 * n, 1.7 * rows), squeeze=False)
    for i in range(n):
        img = images[i, 0].numpy()
        msk = masks[i].numpy() if masks is not None else None
        if img.ndim == 3:
            img = img[..., img.shape[-1] // 2]
            msk = msk[..., msk.shape[-1] // 2] if msk is not None else None
        axes[0, i].imshow(img.T, origin="lower", cmap="gray", vmin=-1, vmax=1)
        if msk is not None:
            axes[1, i].imshow(msk.T, origin="lower", cmap="viridis", vmin=0, vmax=max(int(masks.max()), 1), interpolation="nearest")
    for ax in axes.ravel():
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _write_generated(out: Path, images: torch.Tensor, masks: torch.Tensor | None, labels: dict[str, int], name: str) -> None:
    """Generated pairs in the imagesTr/labelsTr layout (2D images stored as one-slice volumes, unit spacing)."""
    from anatomica.registers.data import Volume, write_pairs

    if masks is None:
        masks = torch.zeros(images.shape[:1] + images.shape[2:], dtype=torch.long)
    vols = []
    for i in range(len(images)):
        img = (images[i, 0].numpy() + 1.0) / 2.0
        lab = masks[i].numpy().astype(np.int32)
        if img.ndim == 2:
            img, lab = img[..., None], lab[..., None]
        vols.append(Volume(f"{name}_{i:04d}", img, lab, np.eye(4)))
    write_pairs(out, vols, labels, name, "generated", overwrite=True)


@registers_app.command("data")
def data_cmd(
    out: Path = typer.Option(..., "--out", help="Dataset folder to write (imagesTr/, labelsTr/, dataset.json)."),
    source: str = typer.Option("mni152", "--source", help="mni152 (T1 template shipped in nilearn; CSF/GM/WM labels) or phantoms (CT-like renders of --phantoms)."),
    phantoms: Path | None = typer.Option(None, "--phantoms", help="Phantom dataset folder (from `anatomica phantoms`), for --source phantoms."),
    seed: int = typer.Option(0, "--seed", help="Seed of the CT noise and texture (phantoms)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    """Write paired image + label volumes in the imagesTr/labelsTr layout.

    mni152: the MNI152 T1 template (1 mm, 197×233×189) with labels csf=1, grey_matter=2, white_matter=3
    from the argmax of its tissue maps inside the brain mask; needs no network. phantoms: contrast-CT-like
    images (window −200..600 HU mapped to [0, 1]) rendered from phantom label maps.

    Example: anatomica registers data --source mni152 --out runs/registers/mni152
    """
    from anatomica.registers.data import MNI152_LABELS, mni152_volume, phantom_volumes, write_pairs

    _fresh_dir(out, overwrite)
    if source == "mni152":
        write_pairs(out, [mni152_volume()], MNI152_LABELS, "MNI152", "T1", overwrite=True)
    elif source == "phantoms":
        if phantoms is None:
            raise AnatomicaError("--source phantoms needs --phantoms DIR (a folder made by `anatomica phantoms`)")
        vols, labels = phantom_volumes(phantoms, seed)
        write_pairs(out, vols, labels, f"CT-{phantoms.name}", "CT", overwrite=True)
    else:
        raise AnatomicaError(f"unknown --source {source!r} (choose mni152 or phantoms; any other folder of pairs can be used directly)")
    typer.echo(f"wrote {out}")


def _data_options(data: Path, size: int, spatial_dims: int, axis: int):
    from anatomica.registers.data import DataSpec

    if spatial_dims not in (2, 3):
        raise AnatomicaError(f"--spatial-dims must be 2 or 3, got {spatial_dims}")
    if not 0 <= axis <= 2:
        raise AnatomicaError(f"--axis must be 0, 1 or 2, got {axis}")
    return DataSpec(str(data.resolve()), size, spatial_dims, axis)


@registers_app.command("autoencoder")
def autoencoder_cmd(
    data: Path = typer.Option(..., "--data", help="Dataset folder of image/label pairs (imagesTr/, labelsTr/)."),
    out: Path = typer.Option(..., "--out", help="Run folder for the autoencoder (config.json + model.safetensors)."),
    size: int = typer.Option(64, "--size", help="Image side in pixels (slices are cropped to the foreground, padded square, resized)."),
    spatial_dims: int = typer.Option(2, "--spatial-dims", help="2: slices along --axis; 3: whole volumes."),
    axis: int = typer.Option(2, "--axis", help="Array axis to slice along (2 = axial for RAS volumes)."),
    channels: str = typer.Option("8,16,32", "--channels", help="Encoder channels per level; each level after the first halves the size."),
    latent_channels: int = typer.Option(3, "--latent-channels", help="Latent channels."),
    steps: int = typer.Option(1000, "--steps", help="Optimizer steps."),
    batch: int = typer.Option(16, "--batch", help="Batch size."),
    n_aug: int = typer.Option(2048, "--n-aug", help="Augmented training pairs drawn once from the training slices."),
    seed: int = typer.Option(0, "--seed", help="Seed of augmentation, initialization and batches."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads (default: torch's choice)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    """Train the image autoencoder (MONAI AutoencoderKL, L1 + small KL) of the latent diffusion.

    Example: anatomica registers autoencoder --data runs/registers/mni152 --out runs/registers/ae --steps 1000
    """
    from anatomica.registers.autoencoder import AutoencoderConfig, save_codec, train_autoencoder
    from anatomica.registers.data import augment, prepare

    _threads(threads)
    _fresh_dir(out, overwrite)
    spec = _data_options(data, size, spatial_dims, axis)
    train, test = prepare(spec)
    pairs = augment(train, n_aug, seed)
    cfg = AutoencoderConfig(spatial_dims, _ints(channels, "--channels"), latent_channels)
    t0 = time.perf_counter()
    codec, log = train_autoencoder(pairs.images, cfg, steps, batch, seed=seed)
    seconds = time.perf_counter() - t0
    rec = codec.decode(codec.encode(test.images))
    test_l1 = float((rec - test.images).abs().mean())
    save_codec(out, codec, cfg, {"image_size": size, "data": spec.to_dict(), "train": {"steps": steps, "batch": batch, "seed": seed, "seconds": seconds}, "test_l1": test_l1})
    pick = torch.linspace(0, len(test) - 1, min(8, len(test))).long()
    save_mosaic(out / "reconstructions.png", torch.cat([test.images[pick], rec[pick]]), None, 2 * len(pick), "held-out slices (left) and reconstructions (right)")
    typer.echo(f"autoencoder: {seconds:.0f} s, latent scale {codec.scale:.3f}, held-out L1 {test_l1:.4f} (images in [-1, 1]) -> {out}")


@registers_app.command("train")
def train_cmd(
    data: Path = typer.Option(..., "--data", help="Dataset folder of image/label pairs (imagesTr/, labelsTr/)."),
    out: Path = typer.Option(..., "--out", help="Run folder (config.json, model.safetensors with EMA weights, log.csv)."),
    autoencoder: str = typer.Option(..., "--autoencoder", help="Autoencoder run folder, or 'none' to diffuse in pixel space."),
    baseline: bool = typer.Option(False, "--baseline", help="Train the same LDM without registers, segmentation head or grounding."),
    size: int = typer.Option(64, "--size", help="Image side in pixels."),
    spatial_dims: int = typer.Option(2, "--spatial-dims", help="2: slices along --axis; 3: whole volumes."),
    axis: int = typer.Option(2, "--axis", help="Array axis to slice along."),
    channels: str = typer.Option("32,64,64", "--channels", help="UNet channels per level."),
    attention: str = typer.Option("0,1,1", "--attention", help="1 where a level attends (cross-attends to the registers)."),
    head_channels: int = typer.Option(32, "--head-channels", help="Channels per attention head."),
    per_class: int = typer.Option(4, "--registers-per-class", help="K registers per class (background included as a class)."),
    register_dim: int = typer.Option(64, "--register-dim", help="D, the register dimension."),
    time_modulation: bool = typer.Option(True, "--time-modulation/--no-time-modulation", help="FiLM the registers with the noise level."),
    lam: float = typer.Option(1.0, "--lambda", help="λ, weight of the anatomical terms (seg head + grounding)."),
    warm: int = typer.Option(300, "--warm-steps", help="W: weight start·λ for W steps, then a linear ramp to end·λ over W steps."),
    start: float = typer.Option(2.0, "--start", help="Initial factor of λ (2 in the published recipe)."),
    end: float = typer.Option(1.0, "--end", help="Final factor of λ (1 published; 0 is the decay-to-zero ablation)."),
    ground_weight: float = typer.Option(1.0, "--ground-weight", help="γ, weight of the grounding term relative to the seg loss."),
    anat_sigma_max: float = typer.Option(1.0, "--anat-sigma-max", help="Anatomical terms only for training σ at or below this."),
    steps: int = typer.Option(1000, "--steps", help="Optimizer steps."),
    batch: int = typer.Option(32, "--batch", help="Batch size."),
    lr: float = typer.Option(3e-4, "--lr", help="Adam learning rate."),
    ema: float = typer.Option(0.995, "--ema", help="Decay of the weight EMA used for sampling (warmed up over the first steps)."),
    n_aug: int = typer.Option(2048, "--n-aug", help="Augmented training pairs drawn once from the training slices."),
    seed: int = typer.Option(0, "--seed", help="Seed of augmentation, initialization, σ, noise and batches."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    """Train the register-bank LDM (or, with --baseline, the same LDM without registers) with EDM.

    Loss: EDM + w(step)·(Dice+CE of the seg head + γ·grounding), w = start·λ → end·λ (see --warm-steps).
    Example: anatomica registers train --data runs/registers/mni152 --autoencoder runs/registers/ae --out runs/registers/reg --steps 1200
    """
    from anatomica.registers.network import RegisterConfig
    from anatomica.nn.unet import UNetConfig
    from anatomica.registers.autoencoder import Codec, load_codec
    from anatomica.registers.data import augment, prepare
    from anatomica.registers.schedule import DualObjectiveSchedule
    from anatomica.registers.train import LDMConfig, parameter_counts, save_model, train_ldm

    _threads(threads)
    spec = _data_options(data, size, spatial_dims, axis)
    if autoencoder.lower() == "none":
        codec, ae_path, sigma_data = Codec(None), None, 0.5
    else:
        codec, ae_cfg = load_codec(autoencoder)
        if ae_cfg.get("image_size") != size:
            raise AnatomicaError(f"{autoencoder}: autoencoder was trained at size {ae_cfg.get('image_size')}, not --size {size}")
        ae_path, sigma_data = str(Path(autoencoder).resolve()), 1.0
    _fresh_dir(out, overwrite)
    train, _ = prepare(spec)
    pairs = augment(train, n_aug, seed)
    latents = codec.encode(pairs.images)
    ch, att = _ints(channels, "--channels"), [bool(a) for a in _ints(attention, "--attention")]
    unet = UNetConfig(spatial_dims=spatial_dims, in_channels=latents.shape[1], channels=ch, attention_levels=att, num_res_blocks=1, num_head_channels=head_channels, norm_num_groups=min(32, min(ch)))
    reg = None if baseline else RegisterConfig(pairs.n_classes, per_class, register_dim, time_modulation)
    cfg = LDMConfig(unet, reg, list(latents.shape[1:]), size, spatial_dims, pairs.labels, sigma_data, ae_path, anat_sigma_max, ground_weight, data=spec.to_dict())
    schedule = DualObjectiveSchedule(lam, warm, start, end)
    net, log, seconds = train_ldm(latents, pairs.masks, cfg, steps, batch, lr, seed, schedule, ema)
    meta = {"train": {"steps": steps, "batch": batch, "lr": lr, "ema": ema, "seed": seed, "n_aug": n_aug, "seconds": seconds, "threads": torch.get_num_threads()},
            "schedule": schedule.to_dict(), "parameters": parameter_counts(net)}
    save_model(out, net, cfg, meta, log)
    typer.echo(f"{'baseline' if baseline else 'registers'}: {steps} steps in {seconds:.0f} s, {meta['parameters']['total']:,} parameters -> {out}")


@registers_app.command("sample")
def sample_cmd(
    model: Path = typer.Option(..., "--model", help="Run folder of a trained model."),
    out: Path = typer.Option(..., "--out", help="Output folder: generated pairs (imagesTr/, labelsTr/) and samples.png."),
    n: int = typer.Option(16, "--n", help="Number of images."),
    steps: int = typer.Option(20, "--steps", help="Heun steps (2 network calls each, 1 on the last)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial noise: same seed, same images."),
    batch: int = typer.Option(64, "--batch", help="Images per network call (does not change results)."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    """Generate images without any mask input; the register model also returns its predicted mask (from its segmentation head at low noise), giving paired synthetic data for augmentation.

    Example: anatomica registers sample --model runs/registers/reg --n 64 --seed 1 --out runs/registers/samples
    """
    from anatomica.registers.sample import sample
    from anatomica.registers.train import load_model

    _threads(threads)
    m = load_model(model)
    _fresh_dir(out, overwrite)
    res = sample(m, n, steps, seed, batch)
    _write_generated(out, res.images, res.masks, m.config.labels, "sample")
    save_mosaic(out / "samples.png", res.images, res.masks, 8, f"{model.name}: seed {seed}")
    typer.echo(f"wrote {n} {'image/mask pairs' if res.masks is not None else 'images (no masks: baseline)'} to {out}")


@registers_app.command("edit")
def edit_cmd(
    model: Path = typer.Option(..., "--model", help="Run folder of a trained register model."),
    edit: str = typer.Option(..., "--edit", help="scale:CLASS:F | zero:CLASS | interp:CLASS:OTHER:ALPHA | interp:CLASS:ALPHA (towards --other) | swap:CLASS (with --other)."),
    out: Path = typer.Option(..., "--out", help="Output folder: effect.json, before_after.png, the edited pairs."),
    other: Path | None = typer.Option(None, "--other", help="A second trained register run of the same shape (for swap and two-bank interp)."),
    segmenter: Path | None = typer.Option(None, "--segmenter", help="A segmenter run (from `registers evaluate`) to also measure areas independently."),
    n: int = typer.Option(32, "--n", help="Images sampled with the original and with the edited bank (same noise)."),
    steps: int = typer.Option(20, "--steps", help="Heun steps."),
    seed: int = typer.Option(0, "--seed", help="Seed of the shared initial noise."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    """Edit one class's registers and measure the effect: mean area share of every class (by the model's head, and by --segmenter if given) before and after, from identical noise.

    Example: anatomica registers edit --model runs/registers/reg --edit scale:white_matter:0 --out runs/registers/edit_wm0
    """
    from anatomica.registers.edit import apply_edit, measure_edit, parse_edit
    from anatomica.registers.segmenter import load_segmenter
    from anatomica.registers.train import load_model

    _threads(threads)
    m = load_model(model)
    if not m.has_registers:
        raise AnatomicaError(f"{model}: is a baseline without registers; nothing to edit")
    spec = parse_edit(edit, m.config.labels)
    other_bank = None
    if other is not None:
        o = load_model(other)
        if not o.has_registers or o.net.bank.registers.shape != m.net.bank.registers.shape:
            raise AnatomicaError(f"{other}: not a register model with a bank of shape {tuple(m.net.bank.registers.shape)}")
        other_bank = o.net.bank.registers.detach()
    seg = load_segmenter(segmenter)[0] if segmenter is not None else None
    _fresh_dir(out, overwrite)
    edited = apply_edit(m.net.bank.registers.detach(), spec, other_bank)
    effect = measure_edit(m, edited, n, steps, seed, seg)
    before, after = effect.pop("samples_before"), effect.pop("samples_after")
    names = ["background", *m.config.labels]
    effect = {"edit": edit, "classes": names, "n": n, "seed": seed, **effect}
    (out / "effect.json").write_text(json.dumps(effect, indent=2) + "\n")
    k = min(6, n)
    save_mosaic(out / "before_after.png", torch.cat([before.images[:k], after.images[:k]]), torch.cat([before.masks[:k], after.masks[:k]]), 2 * k, f"{edit}: before (left {k}) / after (right {k})")
    _write_generated(out / "edited", after.images, after.masks, m.config.labels, "edited")
    t = Table(title=f"{edit}: mean area share per class ({n} images, seed {seed})")
    t.add_column("class")
    for col in ("head before", "head after", *(("segmenter before", "segmenter after") if seg is not None else ())):
        t.add_column(col, justify="right")
    for i, name in enumerate(names):
        vals = [effect["head_area_before"][i], effect["head_area_after"][i]]
        if seg is not None:
            vals += [effect["segmenter_area_before"][i], effect["segmenter_area_after"][i]]
        t.add_row(name, *[f"{v:.4f}" for v in vals])
    Console().print(t)


@registers_app.command("evaluate")
def evaluate_cmd(
    model: Path = typer.Option(..., "--model", help="Run folder of the register model."),
    baseline: Path = typer.Option(..., "--baseline", help="Run folder of the same LDM trained without registers."),
    out: Path = typer.Option(..., "--out", help="Output folder: results.json, table.md, samples PNGs, the judging segmenter."),
    n: int = typer.Option(256, "--n", help="Generated images per model (and real images per reference draw)."),
    steps: int = typer.Option(20, "--steps", help="Heun steps."),
    seed: int = typer.Option(0, "--seed", help="Seed of sampling noise, augmentation and segmenter training."),
    seg_steps: int = typer.Option(400, "--seg-steps", help="Training steps of each downstream segmenter."),
    n_real: int = typer.Option(1024, "--n-real", help="Augmented real pairs the judging segmenter is trained on."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    """Register model against the baseline: anatomical accuracy (segmenter vs own mask; FMD of segmenter masks; train-on-synthetic test-on-real Dice) and FID on the judging segmenter's encoder features, with the relative improvement as measured, whatever its sign.

    Example: anatomica registers evaluate --model runs/registers/reg --baseline runs/registers/base --out runs/registers/eval
    """
    from anatomica.registers.evaluate import EvalSettings, evaluate, markdown_table
    from anatomica.registers.segmenter import SegmenterConfig, save_segmenter
    from anatomica.registers.train import load_model

    _threads(threads)
    reg, base = load_model(model), load_model(baseline)
    _fresh_dir(out, overwrite)
    t0 = time.perf_counter()
    result = evaluate(reg, base, EvalSettings(n, steps, seed, seg_steps, n_real=n_real))
    result["seconds"] = time.perf_counter() - t0
    samples, judge = result.pop("_samples"), result.pop("_judge")
    save_segmenter(out / "segmenter", judge, SegmenterConfig(reg.config.spatial_dims, reg.config.n_classes), {"labels": reg.config.labels})
    for name, s in samples.items():
        save_mosaic(out / f"samples_{name}.png", s.images, s.masks, 8, name)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown_table(result)
    (out / "table.md").write_text(table)
    typer.echo(table)
