"""`anatomica sample`: unconditional label maps from a trained latent diffusion run."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from anatomica.cli import app
from anatomica.data.io import LabelMap, save_label_map, write_dataset_json, write_json
from anatomica.errors import AnatomicaError


def check_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise AnatomicaError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise AnatomicaError(f"{out}: exists and is not empty (pass --overwrite to replace its samples)")


def write_mosaic(labels: np.ndarray, path: Path, num_classes: int, max_cases: int = 16, per_row: int = 4) -> Path:
    """PNG grid of up to ``max_cases`` samples, ``per_row`` per row, each as its mid-slices along array axes 0, 1, 2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from anatomica.data.io import _atomic_write

    n = min(len(labels), max_cases)
    cols = min(n, per_row)
    rows = -(-n // cols)
    palette = plt.get_cmap("tab10" if num_classes <= 11 else "tab20").colors
    cmap = ListedColormap(["white", *[palette[i % len(palette)] for i in range(num_classes - 1)]])
    fig, axes = plt.subplots(rows, 3 * cols, figsize=(1.3 * 3 * cols, 1.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for i in range(n):
        r, c = divmod(i, cols)
        for a in range(3):
            ax = axes[r][3 * c + a]
            sl = np.take(labels[i], labels[i].shape[a] // 2, axis=a)
            ax.imshow(sl.T, origin="lower", cmap=cmap, vmin=-0.5, vmax=num_classes - 0.5, interpolation="nearest")
            ax.set_axis_on()
            ax.set_xticks([])
            ax.set_yticks([])
            if a == 1:
                ax.set_title(f"sample {i}", fontsize=7)
    fig.tight_layout(pad=0.3)
    _atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)
    return path


def quality_table(samples: dict, training: dict | None) -> Table:
    table = Table(title=f"{samples['n']} samples: per-label volume (mL) against the training data")
    for col in ("label", "train mL", "samples mL", "train present", "samples present"):
        table.add_column(col, justify="left" if col == "label" else "right", no_wrap=True)
    for name, s in samples["labels"].items():
        t = (training or {}).get("labels", {}).get(name)
        table.add_row(
            name,
            f"{t['mean_ml']:.1f} ± {t['sd_ml']:.1f}" if t else "-",
            f"{s['mean_ml']:.1f} ± {s['sd_ml']:.1f}",
            f"{100 * t['present']:.0f} %" if t else "-",
            f"{100 * s['present']:.0f} %",
        )
    all_t = f"{100 * training['all_labels_present']:.0f} %" if training else "-"
    table.add_row("[b]all labels[/b]", "", "", all_t, f"{100 * samples['all_labels_present']:.0f} %")
    return table


@app.command("sample")
def sample(
    model: Path = typer.Option(..., "--model", help="A finished `anatomica train diffusion` run folder."),
    n: int = typer.Option(8, "--n", help="Number of samples."),
    steps: int = typer.Option(50, "--steps", help="Sampler steps along the Karras σ schedule (Heun: 2·steps−1 network calls)."),
    seed: int = typer.Option(0, "--seed", help="Sample i depends only on (seed, i): same seed, same samples, whatever --n or --batch-size."),
    out: Path = typer.Option(..., "--out", help="Output folder: labelsTr/sample_NNN.nii.gz, dataset.json, mosaic.png, summary.json."),
    sampler: str = typer.Option("heun", "--sampler", help="heun (2nd order, EDM's default) or euler."),
    decoder: str | None = typer.Option(None, "--decoder", help="conv (convolutional decoder) or field (neural field on the full grid). Default: conv; with --task, the decoder the parsing reads (conv for v, field for l-*)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Samples generated together (memory vs speed)."),
    threads: int | None = typer.Option(None, "--threads", help="Torch CPU threads (default: torch's choice)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a non-empty --out, replacing same-named files."),
    task: str | None = typer.Option(None, "--task", help="Guide the samples by a control task: a packaged task name (e.g. right-ventricle, atrial-separation) or a task YAML file (docs/tasks.md)."),
    reference: Path | None = typer.Option(None, "--reference", help="Held-out label map (or a folder of them: sample i uses reference i mod n) that places the task's domains and gives its relative targets."),
    parsing: str = typer.Option("l-local", "--parsing", help="How the potential reads the anatomy from the denoised latent: v (conv-decode the full volume), l-local (neural field at the domains' points only), l-coarse (neural field on a small global grid)."),
    resolution: str | None = typer.Option(None, "--resolution", help="L-parsing grid preset: low (12 points per domain axis / 16³ global grid), med (16 / 24³), high (24 / 32³). Default: low."),
    guidance_scale: float | None = typer.Option(None, "--guidance-scale", help="w in D^w = D − w·σ²·∇L (L is O(0.01-1), its gradient per latent element small, hence large w); 0 gives unguided samples from the same noise, with the same reports. Default: the task's guidance.scale (packaged topological tasks: 100), else 10000."),
    fast_gradient: bool = typer.Option(False, "--fast-gradient", help="Differentiate the potential w.r.t. the denoised latent only (no backward pass through the denoiser): faster, less faithful."),
    sigma_window: str | None = typer.Option(None, "--sigma-window", help="Noise levels MIN,MAX where guidance is active, e.g. 0.05,10. Default: 0.05,inf (every step above σ = 0.05)."),
) -> None:
    """Draw unconditional label maps from the latent diffusion prior: noise from --seed, EDM ODE sampling in latent
    space, decoding, argmax. Files carry the training data's affine (world mm) and label table. Prints the per-label
    volume distribution of the samples beside the training data's and the share of samples with every label present.

    Example: anatomica sample --model runs/heart32/ldm --n 16 --steps 50 --seed 0 --out runs/heart32/samples

    With --task, sampling is guided (training-free) towards the task's targets, and --out also holds reports/sample_NNN.json
    (targets against achieved measures, the potential over the steps) and a mosaic with the control domains drawn in.
    Guide: docs/guided_sampling.md.

    Example: anatomica sample --model runs/heart32/ldm --task right-ventricle --reference heldout/case_000.nii.gz --n 8 --seed 0 --out runs/rv_guided
    """
    if task is not None:
        from anatomica.guided.run import guided_command

        return guided_command(model, task, reference, parsing, resolution, guidance_scale, fast_gradient, sigma_window, n, steps, seed, out, sampler, decoder, batch_size, threads, overwrite)
    if reference is not None or resolution is not None or guidance_scale is not None or fast_gradient or sigma_window is not None or parsing != "l-local":
        raise AnatomicaError("--reference, --parsing, --resolution, --guidance-scale, --fast-gradient and --sigma-window guide a --task; give one")
    decoder = decoder or "conv"
    from anatomica.train import load_model
    from anatomica.training.quality import label_volume_stats

    if n < 1 or steps < 1 or batch_size < 1:
        raise AnatomicaError(f"--n, --steps and --batch-size must be >= 1, got {n}, {steps}, {batch_size}")
    if decoder not in ("conv", "field"):
        raise AnatomicaError(f"--decoder must be 'conv' or 'field', got {decoder!r}")
    if sampler not in ("heun", "euler"):
        raise AnatomicaError(f"--sampler must be 'heun' or 'euler', got {sampler!r}")
    if threads is not None:
        torch.set_num_threads(max(1, threads))
    check_out_dir(out, overwrite)
    bundle = load_model(model)
    labels_out, t_sample, t_decode = [], 0.0, 0.0
    with tqdm(total=n, desc="sampling", unit="sample") as bar:
        for start in range(0, n, batch_size):
            b = min(batch_size, n - start)
            t0 = time.perf_counter()
            from anatomica.training.bundle import SAMPLERS

            with torch.no_grad():
                z = SAMPLERS[sampler](bundle.denoiser, bundle.initial_noise(b, seed, start=start), bundle.sigmas(steps))
                t1 = time.perf_counter()
                logits = bundle.decode(z) if decoder == "conv" else bundle.decode_field(z)
            t_decode += time.perf_counter() - t1
            t_sample += t1 - t0
            labels_out.append(logits.argmax(1).to(torch.uint8))
            bar.update(b)
    labels = torch.cat(labels_out)
    names = []
    for i, arr in enumerate(labels.numpy()):
        name = f"sample_{i:03d}"
        save_label_map(LabelMap(arr, bundle.affine, bundle.labels), out / "labelsTr" / f"{name}.nii.gz", overwrite=True)
        names.append(name)
    write_dataset_json(out, "samples", bundle.labels, names, extra={"model": str(model.resolve()), "seed": seed, "steps": steps, "sampler": sampler, "decoder": decoder})
    write_mosaic(labels.numpy(), out / "mosaic.png", bundle.num_classes)
    voxel_ml = float(abs(np.linalg.det(bundle.affine[:3, :3]))) / 1000.0
    quality = label_volume_stats(labels, bundle.labels, voxel_ml)
    training = bundle.config.get("data_stats")
    write_json({
        "n": n, "steps": steps, "sampler": sampler, "decoder": decoder, "seed": seed, "threads": torch.get_num_threads(),
        "seconds_sampling_per_sample": t_sample / n, "seconds_decoding_per_sample": t_decode / n,
        "samples": quality, "training": training,
    }, out / "summary.json")
    Console(width=max(Console().width, 100)).print(quality_table(quality, training))
    typer.echo(f"{n} samples in {out}/labelsTr ({t_sample / n:.2f} s/sample sampling + {t_decode / n:.2f} s/sample decoding); mosaic: {out / 'mosaic.png'}")
