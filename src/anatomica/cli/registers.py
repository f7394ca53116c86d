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

from anatomica.cli.options import check_count, check_number, check_seed, int_list, set_threads, threads_option
from anatomica.errors import AnatomicaError
from anatomica.io.output import check_output_dir, staged_output
from anatomica.registers.figures import save_mosaic

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


def _ints(text: str, what: str, minimum: int = 0) -> list[int]:
    return list(int_list(text, what, minimum))


def _write_generated(out: Path, images: torch.Tensor, masks: torch.Tensor | None, labels: dict[str, int], name: str) -> None:
    """Generated pairs in the imagesTr/labelsTr layout (2D images stored as one-slice volumes, unit spacing)."""
    from anatomica.registers.data import Volume, write_pairs

    vols = []
    for i in range(len(images)):
        img = (images[i, 0].numpy() + 1.0) / 2.0
        lab = masks[i].numpy().astype(np.int32)
        if img.ndim == 2:
            img, lab = img[..., None], lab[..., None]
        vols.append(Volume(f"{name}_{i:04d}", img, lab, np.eye(4)))
    write_pairs(out, vols, labels, name, "generated", overwrite=True)


def _write_images(out: Path, images: torch.Tensor, name: str) -> None:
    """Generated images alone (``imagesTr/``, no labelsTr): a model without a trained head has no masks to pair."""
    from anatomica.io.nifti import save_volume

    for i in range(len(images)):
        img = (images[i, 0].numpy() + 1.0) / 2.0
        save_volume(img[..., None] if img.ndim == 2 else img, np.eye(4), out / "imagesTr" / f"{name}_{i:04d}_0000.nii.gz", overwrite=True)


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

    check_seed(seed)
    if source not in ("mni152", "phantoms"):
        raise AnatomicaError(f"unknown --source {source!r} (choose mni152 or phantoms; any other folder of pairs can be used directly)")
    if source == "phantoms" and phantoms is None:
        raise AnatomicaError("--source phantoms needs --phantoms DIR (a folder made by `anatomica phantoms`)")
    check_output_dir(out, overwrite)
    with staged_output(out, overwrite) as stage:
        if source == "mni152":
            write_pairs(stage, [mni152_volume()], MNI152_LABELS, "MNI152", "T1", overwrite=True)
        else:
            vols, labels = phantom_volumes(phantoms, seed)
            write_pairs(stage, vols, labels, f"CT-{phantoms.name}", "CT", overwrite=True)
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
    batch: int = typer.Option(16, "--batch-size", help="Batch size."),
    n_aug: int = typer.Option(2048, "--n-aug", help="Augmented training pairs drawn once from the training slices."),
    seed: int = typer.Option(0, "--seed", help="Seed of augmentation, initialization and batches."),
    threads: int | None = threads_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    """Train the image autoencoder (MONAI AutoencoderKL, L1 + small KL) of the latent diffusion.

    Example: anatomica registers autoencoder --data runs/registers/mni152 --out runs/registers/ae --steps 1000
    """
    from anatomica.registers.codec import CodecConfig, save_codec, train_codec
    from anatomica.registers.data import augment, prepare

    set_threads(threads)
    check_seed(seed)
    for value, what in ((size, "--size"), (latent_channels, "--latent-channels"), (steps, "--steps"), (batch, "--batch-size"), (n_aug, "--n-aug")):
        check_count(value, what)
    check_output_dir(out, overwrite)
    spec = _data_options(data, size, spatial_dims, axis)
    train, test = prepare(spec)
    pairs = augment(train, n_aug, seed)
    cfg = CodecConfig(spatial_dims, _ints(channels, "--channels"), latent_channels)
    t0 = time.perf_counter()
    codec, log = train_codec(pairs.images, cfg, steps, batch, seed=seed)
    seconds = time.perf_counter() - t0
    rec = codec.decode(codec.encode(test.images))
    test_l1 = float((rec - test.images).abs().mean())
    pick = torch.linspace(0, len(test) - 1, min(8, len(test))).long()
    with staged_output(out, overwrite) as stage:
        save_codec(stage, codec, cfg, {"image_size": size, "data": spec.to_dict(), "train": {"steps": steps, "batch": batch, "seed": seed, "seconds": seconds}, "test_l1": test_l1})
        save_mosaic(stage / "reconstructions.png", torch.cat([test.images[pick], rec[pick]]), None, 2 * len(pick), "held-out slices (left) and reconstructions (right)")
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
    head_upsample: int = typer.Option(-1, "--head-upsample", help="Learned ×2 stages of the mask head (-1: as many as the codec downsamples, so masks are at image resolution)."),
    widen: bool = typer.Option(False, "--widen", help="With --baseline: widen the plain UNet to the register model's parameter count (same other options)."),
    lam: float = typer.Option(1.0, "--lambda", help="λ, weight of the anatomical terms (seg head + grounding)."),
    warm: int = typer.Option(300, "--warm-steps", help="W: weight start·λ for W steps, then a linear ramp to end·λ over W steps."),
    start: float = typer.Option(2.0, "--start", help="Initial factor of λ (2 in the published recipe)."),
    end: float = typer.Option(1.0, "--end", help="Final factor of λ (1 published; 0 is the decay-to-zero ablation)."),
    ground_weight: float = typer.Option(1.0, "--ground-weight", help="γ, weight of the grounding term relative to the seg loss."),
    anat_sigma_max: float = typer.Option(1.0, "--anat-sigma-max", help="Anatomical terms only for training σ at or below this."),
    steps: int = typer.Option(1000, "--steps", help="Optimizer steps."),
    batch: int = typer.Option(32, "--batch-size", help="Batch size."),
    lr: float = typer.Option(3e-4, "--lr", help="Adam learning rate."),
    ema: float = typer.Option(0.995, "--ema", help="Decay of the weight EMA used for sampling (warmed up over the first steps)."),
    n_aug: int = typer.Option(2048, "--n-aug", help="Augmented training pairs drawn once from the training slices."),
    seed: int = typer.Option(0, "--seed", help="Seed of augmentation, initialization, σ, noise and batches."),
    threads: int | None = threads_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    """Train the register-bank LDM (or, with --baseline, the same LDM without registers) with EDM.

    Loss: EDM + w(step)·(Dice+CE of the seg head + γ·grounding), w = start·λ → end·λ (see --warm-steps).
    Example: anatomica registers train --data runs/registers/mni152 --autoencoder runs/registers/ae --out runs/registers/reg --steps 1200
    """
    from anatomica.nn.unet import UNetConfig
    from anatomica.registers.codec import Codec, load_codec
    from anatomica.registers.data import augment, prepare
    from anatomica.registers.network import RegisterConfig, RegisterUNet, count_parameters
    from anatomica.registers.schedule import DualObjectiveSchedule
    from anatomica.registers.train import RegisterLDMConfig, parameter_counts, save_register_ldm, train_register_ldm, widened_unet

    set_threads(threads)
    check_seed(seed)
    for value, what in ((size, "--size"), (head_channels, "--head-channels"), (per_class, "--registers-per-class"), (register_dim, "--register-dim"),
                        (steps, "--steps"), (batch, "--batch-size"), (n_aug, "--n-aug"), (warm, "--warm-steps")):
        check_count(value, what)
    check_number(lam, "--lambda", 0.0)
    check_number(start, "--start", 0.0)
    check_number(end, "--end", 0.0)
    check_number(ground_weight, "--ground-weight", 0.0)
    check_number(anat_sigma_max, "--anat-sigma-max", 0.0, low_open=True)
    check_number(lr, "--lr", 0.0, 10.0, low_open=True)
    check_number(ema, "--ema", 0.0, 1.0, high_open=True)
    spec = _data_options(data, size, spatial_dims, axis)
    if autoencoder.lower() == "none":
        codec, ae_path, sigma_data = Codec(None), None, 0.5
    else:
        codec, ae_cfg = load_codec(autoencoder)
        if ae_cfg.get("image_size") != size:
            raise AnatomicaError(f"{autoencoder}: autoencoder was trained at size {ae_cfg.get('image_size')}, not --size {size}")
        ae_path, sigma_data = str(Path(autoencoder).resolve()), 1.0
    check_seed(seed)
    check_output_dir(out, overwrite)
    train, _ = prepare(spec)
    pairs = augment(train, n_aug, seed)
    latents = codec.encode(pairs.images)
    ch, att = _ints(channels, "--channels"), [bool(a) for a in _ints(attention, "--attention")]
    unet = UNetConfig(spatial_dims=spatial_dims, in_channels=latents.shape[1], channels=ch, attention_levels=att, num_res_blocks=1, num_head_channels=head_channels, norm_num_groups=min(32, min(ch)))
    if head_upsample < 0:
        head_upsample = int(round(np.log2(codec.downsampling)))  # the head's masks on the image grid
    reg = None if baseline else RegisterConfig(pairs.n_classes, per_class, register_dim, time_modulation, head_upsample)
    if widen and not baseline:
        raise AnatomicaError("--widen applies to --baseline only (it sizes the plain LDM to the register model)")
    cfg = RegisterLDMConfig(unet, reg, list(latents.shape[1:]), size, spatial_dims, pairs.labels, sigma_data, ae_path, anat_sigma_max, ground_weight, data=spec.to_dict())
    if widen:
        target = count_parameters(RegisterUNet(unet, RegisterConfig(pairs.n_classes, per_class, register_dim, time_modulation, head_upsample)))
        unet = widened_unet(unet, target)
        cfg.unet = unet
    schedule = DualObjectiveSchedule(lam, warm, start, end)
    net, log, seconds = train_register_ldm(latents, pairs.masks, cfg, steps, batch, lr, seed, schedule, ema)
    meta = {"train": {"steps": steps, "batch": batch, "lr": lr, "ema": ema, "seed": seed, "n_aug": n_aug, "seconds": seconds, "threads": torch.get_num_threads()},
            "schedule": schedule.to_dict(), "parameters": parameter_counts(net)}
    with staged_output(out, overwrite) as stage:
        save_register_ldm(stage, net, cfg, meta, log)
    typer.echo(f"{'baseline' if baseline else 'registers'}: {steps} steps in {seconds:.0f} s, {meta['parameters']['total']:,} parameters -> {out}")


@registers_app.command("sample")
def sample_cmd(
    model: Path = typer.Option(..., "--model", help="Run folder of a trained model."),
    out: Path = typer.Option(..., "--out", help="Output folder: generated images (imagesTr/), their masks (labelsTr/) when the model has a trained head, samples.png."),
    n: int = typer.Option(16, "--n", help="Number of images."),
    steps: int = typer.Option(20, "--steps", help="Heun steps (2 network calls each, 1 on the last)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial noise: same seed, same images."),
    batch: int = typer.Option(64, "--batch-size", help="Images per network call (does not change results)."),
    threads: int | None = threads_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    """Generate images without any mask input; a register model with a trained head also returns its predicted mask (read at low noise), giving paired synthetic data. A model without one (no registers, or λ = 0) writes images only.

    Example: anatomica registers sample --model runs/registers/reg --n 64 --seed 1 --out runs/registers/samples
    """
    from anatomica.registers.sample import sample_images
    from anatomica.registers.train import load_register_ldm

    set_threads(threads)
    check_seed(seed)
    check_count(n, "--n")
    check_count(steps, "--steps")
    check_count(batch, "--batch-size")
    m = load_register_ldm(model)
    check_output_dir(out, overwrite)
    res = sample_images(m, n, steps, seed, batch)
    paired = res.masks is not None and m.has_trained_head
    with staged_output(out, overwrite) as stage:
        if paired:
            _write_generated(stage, res.images, res.masks, m.config.labels, "sample")
        else:
            _write_images(stage, res.images, "sample")
        save_mosaic(stage / "samples.png", res.images, res.masks if paired else None, 8, f"{model.name}: seed {seed}")
    typer.echo(f"wrote {n} {'image/mask pairs' if paired else 'images (no trained mask head: no labelsTr)'} to {out}")


@registers_app.command("edit")
def edit_cmd(
    model: Path = typer.Option(..., "--model", help="Run folder of a trained register model."),
    edit: str = typer.Option(..., "--edit", help="scale:CLASS:F | zero:CLASS | drop:CLASS (remove its tokens) | interp:CLASS:OTHER:ALPHA | interp:CLASS:ALPHA (towards --other) | swap:CLASS (with --other)."),
    out: Path = typer.Option(..., "--out", help="Output folder: effect.json, before_after.png, the edited pairs."),
    other: Path | None = typer.Option(None, "--other", help="A second trained register run of the same shape (for swap and two-bank interp)."),
    segmenter: Path | None = typer.Option(None, "--segmenter", help="A segmenter run (e.g. the judge from `registers evaluate`) to also measure areas independently."),
    n: int = typer.Option(32, "--n", help="Images sampled with the original and with the edited bank (same noise)."),
    steps: int = typer.Option(20, "--steps", help="Heun steps."),
    seed: int = typer.Option(0, "--seed", help="Seed of the shared initial noise."),
    threads: int | None = threads_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    """Edit one class's registers and measure the effect: mean area share of every class (by the model's head, and by --segmenter if given) before and after, from identical noise.

    Example: anatomica registers edit --model runs/registers/reg --edit drop:white_matter --out runs/registers/edit_wm_drop
    """
    from anatomica.registers.edit import apply_edit, measure_edit, parse_edit
    from anatomica.registers.segmenter import load_segmenter
    from anatomica.registers.train import load_register_ldm

    set_threads(threads)
    check_seed(seed)
    check_count(n, "--n")
    check_count(steps, "--steps")
    m = load_register_ldm(model)
    if not m.has_registers:
        raise AnatomicaError(f"{model}: is a baseline without registers; nothing to edit")
    spec = parse_edit(edit, m.config.labels)
    other_bank = None
    if other is not None:
        o = load_register_ldm(other)
        if not o.has_registers or o.net.bank.registers.shape != m.net.bank.registers.shape:
            raise AnatomicaError(f"{other}: not a register model with a bank of shape {tuple(m.net.bank.registers.shape)}")
        other_bank = o.net.bank.registers.detach()
    seg = load_segmenter(segmenter)[0] if segmenter is not None else None
    check_output_dir(out, overwrite)
    edited = apply_edit(m.net.bank.registers.detach(), spec, other_bank)
    effect = measure_edit(m, edited, n, steps, seed, seg, drop=(spec.cls,) if spec.op == "drop" else ())
    before, after = effect.pop("samples_before"), effect.pop("samples_after")
    names = ["background", *m.config.labels]
    effect = {"edit": edit, "classes": names, "n": n, "seed": seed, **effect}
    k = min(6, n)
    with staged_output(out, overwrite) as stage:
        (stage / "effect.json").write_text(json.dumps(effect, indent=2) + "\n")
        save_mosaic(stage / "before_after.png", torch.cat([before.images[:k], after.images[:k]]), torch.cat([before.masks[:k], after.masks[:k]]), 2 * k, f"{edit}: before (left {k}) / after (right {k})")
        _write_generated(stage / "edited", after.images, after.masks, m.config.labels, "edited")
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


def _arm_runs(models: list[str]) -> dict[str, list[Path]]:
    """``NAME=RUN`` (or ``RUN``, named by its folder) -> runs grouped by arm; repeating a NAME adds seeds."""
    arms: dict[str, list[Path]] = {}
    for text in models:
        name, _, path = text.rpartition("=")
        run = Path(path)
        arms.setdefault(name or run.name, []).append(run)
    return arms


@registers_app.command("evaluate")
def evaluate_cmd(
    model: list[str] = typer.Option(..., "--model", help="A run to compare, as NAME=RUN_FOLDER (or RUN_FOLDER, named by its folder). Repeat a NAME for its training seeds; repeat --model for more arms."),
    baseline: list[str] = typer.Option([], "--baseline", help="Shorthand for --model baseline=RUN_FOLDER (repeatable)."),
    reference: str | None = typer.Option(None, "--reference", help="Arm whose seed-paired differences against every other arm are reported (default: the first)."),
    judge_data: Path | None = typer.Option(None, "--judge-data", help="An independent dataset folder the judge trains on (its test split is the reference set). Default: the generator's own data (then the judge is not independent; results say so)."),
    out: Path = typer.Option(..., "--out", help="Output folder: results.json, table.md, samples.png, the judge segmenter."),
    n: int = typer.Option(128, "--n", help="Generated images per run (and real floor images)."),
    steps: int = typer.Option(20, "--steps", help="Heun steps."),
    seed: int = typer.Option(0, "--seed", help="Seed of sampling noise (shared by all runs, so images pair across arms), judge and bootstrap."),
    seg_steps: int = typer.Option(400, "--seg-steps", help="Training steps of the judge."),
    tstr_steps: int = typer.Option(150, "--tstr-steps", help="Training steps of each train-on-synthetic segmenter."),
    n_real: int = typer.Option(1024, "--n-real", help="Augmented real pairs the judge is trained on."),
    n_boot: int = typer.Option(500, "--n-boot", help="Bootstrap resamples for the 95 % intervals."),
    threads: int | None = threads_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    """Compare any set of runs (arms × training seeds) on anatomical accuracy — FMD, Betti numbers and train-on-synthetic Dice of an independent judge's masks; for models with a trained head, consistency and own-mask metrics — and FID on the judge's encoder features. Every metric has a bootstrap 95 % interval, a real-vs-real floor, mean ± sd over seeds and seed-paired differences; plus a nearest-neighbour memorisation check.

    Example: anatomica registers evaluate --model reg=runs/reg_s0 --model reg=runs/reg_s1 --model plain=runs/base_s0 --model plain=runs/base_s1 --out runs/eval
    """
    from anatomica.registers.data import DataSpec
    from anatomica.registers.evaluate import (
        EvalSettings,
        compare,
        markdown_tables,
        measure,
        measure_floor,
        metrics,
        prepare_real,
        strip_replicates,
    )
    from anatomica.registers.sample import sample_images
    from anatomica.registers.segmenter import SegmenterConfig, save_segmenter
    from anatomica.registers.train import load_register_ldm

    set_threads(threads)
    check_seed(seed)
    check_count(n, "--n")
    check_count(steps, "--steps")
    check_count(seg_steps, "--seg-steps")
    check_count(tstr_steps, "--tstr-steps")
    check_count(n_real, "--n-real")
    check_count(n_boot, "--n-boot")
    arms = _arm_runs([*model, *(f"baseline={b}" for b in baseline)])
    loaded = {arm: [load_register_ldm(r) for r in runs] for arm, runs in arms.items()}
    first = next(iter(loaded.values()))[0]
    for arm, models in loaded.items():
        for r, mdl in zip(arms[arm], models):
            if mdl.config.labels != first.config.labels or mdl.config.data != first.config.data:
                raise AnatomicaError(f"{r}: trained on different data than {arms[next(iter(arms))][0]} (labels or data spec differ)")
        seeds = [mdl.meta.get("train", {}).get("seed") for mdl in models]
        if len(set(seeds)) != len(seeds):
            raise AnatomicaError(f"arm {arm!r}: two runs share training seed {seeds} (repeat an arm only with different seeds)")
    ref = reference or next(iter(arms))
    if ref not in arms:
        raise AnatomicaError(f"--reference {ref!r} is not an arm (arms: {', '.join(arms)})")
    check_output_dir(out, overwrite)
    gen_spec = DataSpec(**first.config.data)
    judge_spec = None
    if judge_data is not None:
        judge_spec = DataSpec(**{**gen_spec.to_dict(), "folder": str(judge_data.resolve())})
    settings = EvalSettings(n=n, steps=steps, seed=seed, judge_steps=seg_steps, n_judge=n_real, tstr_steps=tstr_steps, n_boot=n_boot)
    t0 = time.perf_counter()
    real = prepare_real(gen_spec, judge_spec, settings)
    floor = metrics(measure_floor(real, settings), real, settings)
    runs: dict[str, dict[int, dict]] = {}
    previews = {"real floor (true labels)": (real.floor.images[:8], real.floor.masks[:8])}
    for arm, models in loaded.items():
        runs[arm] = {}
        for mdl in models:
            s = sample_images(mdl, n, steps, seed)
            own = s.masks if mdl.has_trained_head else None
            meas = measure(s.images, own, real, settings, arm)
            runs[arm][int(mdl.meta.get("train", {}).get("seed", 0))] = metrics(meas, real, settings)
            if len(previews) <= len(loaded):
                previews.setdefault(f"{arm} (judge's masks)", (s.images[:8], meas.judge_masks[:8]))
    result = strip_replicates({
        "arms": {a: [str(r) for r in rs] for a, rs in arms.items()},
        "settings": settings.to_dict(),
        "data": {"generator": gen_spec.to_dict(), "judge": judge_spec.to_dict() if judge_spec else None, "judge_independent": real.judge_independent},
        "judge_reference_dice": real.judge_reference_dice,
        "floor": floor,
        "runs": runs,
        "comparison": compare(runs, ref),
        "parameters": {a: ms[0].meta.get("parameters", {}) for a, ms in loaded.items()},
        "seconds": time.perf_counter() - t0,
    })
    table = markdown_tables(result)
    from anatomica.registers.figures import sample_grid

    with staged_output(out, overwrite) as stage:
        save_segmenter(stage / "segmenter", real.judge, SegmenterConfig(first.config.spatial_dims, first.config.n_classes), {"labels": first.config.labels})
        (stage / "results.json").write_text(json.dumps(result, indent=2) + "\n")
        (stage / "table.md").write_text(table)
        sample_grid(stage / "samples.png", previews, first.config.n_classes, 8)
    typer.echo(table)
