"""`anatomica sample`: label maps from a latent diffusion model, unguided or guided by a control task."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from anatomica.cli.options import OVERWRITE_HELP, check_seed, set_threads, threads_option


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


def sample(
    model: str = typer.Option(..., "--model", help="A finished `anatomica train diffusion` run folder, or the name of a packaged model (`anatomica models`, e.g. heart32)."),
    n: int = typer.Option(8, "--n", help="Number of samples."),
    steps: int = typer.Option(50, "--steps", help="Sampler steps along the Karras σ schedule (Heun: 2·steps−1 network calls)."),
    seed: int = typer.Option(0, "--seed", help="Sample i depends only on (seed, i): same seed, same samples, whatever --n or --batch-size."),
    out: Path = typer.Option(..., "--out", help="Output folder: labelsTr/sample_NNN.nii.gz, dataset.json, mosaic.png, summary.json."),
    sampler: str = typer.Option("heun", "--sampler", help="heun (2nd order, EDM's default) or euler."),
    decoder: str | None = typer.Option(None, "--decoder", help="conv (convolutional decoder) or field (neural field on the full grid). Default: conv; with --task, the decoder the parsing reads (conv for v, field for l-*)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Samples generated together (memory vs speed)."),
    threads: int | None = threads_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    task: str | None = typer.Option(None, "--task", help="Guide the samples by a control task: a packaged task name (e.g. right-ventricle, atrial-separation) or a task YAML file (docs/tasks.md). With a conditional model: the task it was trained for, whose targets condition the samples."),
    reference: Path | None = typer.Option(None, "--reference", help="Held-out label map (or a folder of them: sample i uses reference i mod n) that places the task's domains and gives its relative targets."),
    parsing: str | None = typer.Option(None, "--parsing", help="How the potential reads the anatomy from the denoised latent: v (conv-decode the full volume), l-local (neural field at the domains' points only), l-coarse (neural field on a small global grid). Default: the task's guidance.parsing (what it was measured with), else l-local."),
    resolution: str | None = typer.Option(None, "--resolution", help="L-parsing grid preset: low (12 points per domain axis / 16³ global grid), med (16 / 24³), high (24 / 32³). Default: the task's guidance.resolution when its parsing is used, else low."),
    guidance_scale: float | None = typer.Option(None, "--guidance-scale", help="w in D^w = D − w·σ²·∇L (L is O(0.01-1), its gradient per latent element small, hence large w); 0 gives unguided samples from the same noise, with the same reports. Default: the task's guidance.scale (packaged topological tasks: 100), else 10000."),
    fast_gradient: bool = typer.Option(False, "--fast-gradient", help="Differentiate the potential w.r.t. the denoised latent and take c_skip(σ)·I for the denoiser Jacobian (no backward pass through the denoiser): faster; measured on heart32 as accurate as the full gradient for mass, less for centroid (docs/results.md)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or bf16: the networks under bfloat16 autocast (CPU and GPU; on heart32 measured 1.55× (V) and 1.33× (L-local/low) faster per sample on CPU at >= 99.5 % label agreement). Same seed, same precision, same result."),
    sigma_window: str | None = typer.Option(None, "--sigma-window", help="Noise levels MIN,MAX where guidance is active, e.g. 0.05,10. Default: 0.05,inf (every step above σ = 0.05)."),
    guidance_normalize: float | None = typer.Option(None, "--guidance-normalize", help="ρ > 0: each guided step moves the latent by ρ × the posterior sd of ẑ0 (RMS per element) along −∇L, instead of w·σ²·∇L (docs/guided_sampling.md). Default: the task's guidance.normalize (atrial-separation: see the task), else off."),
    guidance_clip: float | None = typer.Option(None, "--guidance-clip", help="ρ > 0: keep w·σ²·∇L but cap its RMS per element at ρ × the posterior sd of ẑ0. Not with --guidance-normalize. Default: the task's guidance.clip, else off."),
    recurrence: int | None = typer.Option(None, "--recurrence", help="0-8: re-noise each guided estimate to the same σ and denoise again this many times per guided call (costs that many more calls). Default: the task's guidance.recurrence, else 0."),
    topology_loss: str | None = typer.Option(None, "--topology-loss", help="paper (−Σ kept + Σ extra squared persistence) or saddle (only where the Betti number at 1/2 is wrong: the connecting saddle, extra classes alive at 1/2; zero once met). Default: the task's guidance.topology_loss, else paper."),
    topology_margin: float | None = typer.Option(None, "--topology-margin", help="m in [0, 0.5) of the saddle loss: a class counts as alive when born above 1/2 + m and dead below 1/2 − m. Default: the task's, else 0.1."),
    mesh: str | None = typer.Option(None, "--mesh", help="Also write meshes/sample_NNN/<label>.FORMAT, one closed surface per label in world mm: stl, obj, ply or glb."),
    viewer_files: bool = typer.Option(False, "--viewer-files", help="Also write viewer/: sample_NNN.seg.nrrd (3D Slicer), anatomica.ctbl and itksnap_labels.txt (docs/viewers.md)."),
    report_sample: int = typer.Option(0, "--report-sample", help="The sample report.html shows first in its 3D view (the page lets you switch)."),
) -> None:
    """Draw unconditional label maps from the latent diffusion prior: noise from --seed, EDM ODE sampling in latent
    space, decoding, argmax. Files carry the training data's affine (world mm) and label table. Prints the per-label
    volume distribution of the samples beside the training data's and the share of samples with every label present.

    Example: anatomica sample --model heart32 --n 16 --steps 50 --seed 0 --out runs/heart32/samples

    With --task, sampling is guided (training-free) towards the task's targets, and --out also holds reports/sample_NNN.json
    (targets against achieved measures, the potential over the steps) and a mosaic with the control domains drawn in.
    Guide: docs/guided_sampling.md.

    Example: anatomica sample --model runs/heart32/ldm --task right-ventricle --reference heldout/case_000.nii.gz --n 8 --seed 0 --out runs/rv_guided

    A conditional baseline (`anatomica train diffusion --condition explicit|implicit --task NAME`, docs/conditional.md)
    samples conditioned on the task's targets for each reference instead, without guidance (same files and reports):

    Example: anatomica sample --model runs/heart32/rv_explicit --task right-ventricle --reference heldout/ --n 8 --seed 0 --out runs/rv_explicit_samples

    Every run also writes report.html (open it in a browser: settings, targets vs achieved, mosaic, 3D view).
    """
    from anatomica.errors import AnatomicaError
    from anatomica.guided.html_report import sample_extras
    from anatomica.guided.run import GuidanceConfig, SamplingRun, parse_sigma_window, run_sampling
    from anatomica.io.mesh import check_format

    if mesh is not None:
        mesh = check_format(mesh, "--mesh")
    if not 0 <= report_sample < max(n, 1):
        raise AnatomicaError(f"--report-sample must be a sample index in [0, {n}), got {report_sample}")
    check_seed(seed)
    set_threads(threads)
    lo, hi = parse_sigma_window(sigma_window)
    config = GuidanceConfig(parsing=parsing, resolution=resolution, scale=guidance_scale, fast=fast_gradient,
                            sigma_min=lo, sigma_max=hi, steps=steps, sampler=sampler, decoder=decoder,
                            precision=precision, normalize=guidance_normalize, clip=guidance_clip, recurrence=recurrence,
                            topology_loss=topology_loss, topology_margin=topology_margin)
    run = SamplingRun(model=model, out=out, config=config, n=n, seed=seed, task=task, reference=reference,
                      batch_size=batch_size, overwrite=overwrite, extras=sample_extras(mesh, viewer_files, report_sample))
    summary = run_sampling(run)
    if task is None:
        Console(width=max(Console().width, 100)).print(quality_table(summary["samples"], summary["training"]))
        typer.echo(f"{n} samples in {out}/labelsTr ({summary['seconds_sampling_per_sample']:.2f} s/sample sampling + "
                   f"{summary['seconds_decoding_per_sample']:.2f} s/sample decoding); mosaic: {out / 'mosaic.png'}; report: {out / 'report.html'}")
    else:
        from anatomica.guided.report import summary_table

        Console().print(summary_table(summary))
        typer.echo(f"{n} samples in {out}/labelsTr ({summary['seconds_per_sample']:.2f} s/sample); reports in {out}/reports, mosaic: {out / 'mosaic.png'}; report: {out / 'report.html'}")
