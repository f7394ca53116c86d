"""Guided sampling: the EDM sampler with Anatomica's guided denoiser D^w, one resolved task per sample.

D^w(z_σ; σ) = D(z_σ; σ) − w·σ²·∇_{z_σ} L(ẑ0),  ẑ0 = D(z_σ; σ)  (paper, "Guidance"; ``diffusion.guidance``),
with L the task's potential on the substructures a parsing mode reads from ẑ0 (``guided.parsers``). Guidance
is active for σ in [sigma_min, sigma_max]; outside, the plain denoiser runs. Sample i starts from the bundle's
``initial_noise`` for (seed, i), so an unguided run (w = 0) and a guided run with the same seed are paired
sample by sample. With a folder of references, sample i is paired with reference i mod n (its task's domains
and relative targets come from that reference), as the paper pairs samples with validation cases.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from anatomica.control.potential import Task
from anatomica.control.spec import TaskSpec, resolve_task
from anatomica.data.io import LabelMap, is_nifti, list_label_files
from anatomica.diffusion.guidance import GuidanceTrace, GuidedDenoiser
from anatomica.diffusion.sampling import sample_euler, sample_heun
from anatomica.errors import AnatomicaError
from anatomica.guided.parsers import PARSINGS, Parsing, make_parsing
from anatomica.guided.resolution import PRESETS

SAMPLERS = {"heun": sample_heun, "euler": sample_euler}
DEFAULT_SCALE = 1e4
DEFAULT_SIGMA_MIN = 0.05
DEFAULT_SIGMA_MAX = float("inf")  # guide from the first step: topology needs the coarse stages


@dataclass(frozen=True)
class GuidanceConfig:
    """How to guide: parsing mode and L resolution, scale w, gradient mode, σ window, sampler and steps."""

    parsing: str = "l-local"
    resolution: str | None = None  # L-parsing preset, default 'low'; None for V-parsing
    scale: float | None = None  # w; None = the task's ``guidance.scale``, else DEFAULT_SCALE (see ``for_task``)
    fast: bool = False  # ∇ w.r.t. ẑ0 only (no denoiser Jacobian)
    sigma_min: float = DEFAULT_SIGMA_MIN
    sigma_max: float = DEFAULT_SIGMA_MAX
    steps: int = 20
    sampler: str = "heun"
    decoder: str | None = None  # decoder of the saved label maps: conv, field (full grid), None = the parsing's

    def check(self) -> GuidanceConfig:
        if self.parsing not in PARSINGS:
            raise AnatomicaError(f"--parsing must be one of {', '.join(PARSINGS)}, got {self.parsing!r}")
        if self.parsing == "v" and self.resolution is not None:
            raise AnatomicaError("--resolution applies to L-parsing only (V-parsing decodes the full volume at the model's resolution)")
        if self.resolution is not None and self.resolution not in PRESETS:
            raise AnatomicaError(f"--resolution must be one of {', '.join(PRESETS)}, got {self.resolution!r}")
        if self.scale is not None and (not np.isfinite(self.scale) or self.scale < 0):
            raise AnatomicaError(f"--guidance-scale must be a finite number >= 0, got {self.scale}")
        if not 0 <= self.sigma_min <= self.sigma_max:
            raise AnatomicaError(f"the guidance σ window needs 0 <= sigma-min <= sigma-max, got [{self.sigma_min}, {self.sigma_max}]")
        if self.steps < 1:
            raise AnatomicaError(f"--steps must be >= 1, got {self.steps}")
        if self.sampler not in SAMPLERS:
            raise AnatomicaError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.decoder not in (None, "conv", "field"):
            raise AnatomicaError(f"--decoder must be 'conv' or 'field', got {self.decoder!r}")
        return self

    def for_task(self, spec: TaskSpec) -> GuidanceConfig:
        """This config with w filled in where it was left open: the task's default, else DEFAULT_SCALE."""
        if self.scale is not None:
            return self
        return replace(self, scale=spec.guidance.scale if spec.guidance is not None else DEFAULT_SCALE)

    @property
    def output_decoder(self) -> str:
        """The decoder the potential looked through (conv for V-parsing, the neural field for L-parsing), unless set."""
        return self.decoder or ("conv" if self.parsing == "v" else "field")

    @property
    def resolution_name(self) -> str | None:
        return None if self.parsing == "v" else (self.resolution or "low")

    def to_dict(self) -> dict:
        return {
            "parsing": self.parsing, "resolution": self.resolution_name, "guidance_scale": self.scale, "fast_gradient": self.fast,
            "sigma_min": self.sigma_min, "sigma_max": self.sigma_max if np.isfinite(self.sigma_max) else None, "steps": self.steps, "sampler": self.sampler, "decoder": self.output_decoder,
        }


@dataclass
class SampleResult:
    """One guided (or unguided) sample: its latent, label map, the potential over the denoiser calls, timing."""

    index: int
    latent: Tensor  # (c, x, y, z), normalized latent space
    labels: np.ndarray  # (X, Y, Z) uint8
    sigmas: list[float] = field(default_factory=list)  # σ of every denoiser call
    potentials: list[float] = field(default_factory=list)  # L(ẑ0) at that call
    guided: list[bool] = field(default_factory=list)  # whether that call was guided
    final_potential: float = float("nan")  # L of the final latent (same parsing)
    final_terms: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0  # sampling incl. guidance, per sample (batch time / batch size)


class TracedDenoiser:
    """D^w that also records L(ẑ0) on unguided calls (σ outside the window, or w = 0), so every call of the
    sampler has a potential value: the curve a report shows and an unguided run is compared on."""

    def __init__(self, guided: GuidedDenoiser, potential: Callable[[Tensor], Tensor], record_unguided: bool = True):
        self.guided, self.potential, self.record_unguided = guided, potential, record_unguided
        self.trace = guided.trace
        self.active_calls: list[bool] = []

    def __call__(self, z: Tensor, sigma) -> Tensor:
        active = self.guided.active(torch.as_tensor(sigma))
        out = self.guided(z, sigma)
        if active:
            self.active_calls.append(True)
        elif self.record_unguided:
            with torch.no_grad():
                self.trace.sigmas.append(float(torch.as_tensor(sigma).flatten()[0]))
                self.trace.potentials.append(self.potential(out).detach().cpu())
            self.active_calls.append(False)
        return out


def guided_batch(bundle, task: Task, indices: Sequence[int], seed: int, config: GuidanceConfig, record_unguided: bool = True,
                 on_step: Callable[[], None] | None = None) -> list[SampleResult]:
    """Sample ``indices`` (noise of (seed, i) each) with the guided denoiser for one resolved ``task``."""
    if config.scale is None:
        raise ValueError("guided_batch needs a guidance scale: resolve the config with config.for_task(spec)")
    parsing: Parsing = make_parsing(bundle, task, config.parsing, config.resolution_name)
    potential = lambda z: parsing.potential(z)[0]  # noqa: E731
    trace = GuidanceTrace()
    guided = GuidedDenoiser(bundle.denoiser, potential, config.scale, config.sigma_min, config.sigma_max,
                            mode="fast" if config.fast else "full", trace=trace)
    denoiser = TracedDenoiser(guided, potential, record_unguided)
    noise = torch.cat([bundle.initial_noise(1, seed, start=int(i)) for i in indices])
    t0 = time.perf_counter()
    z = SAMPLERS[config.sampler](denoiser, noise, bundle.sigmas(config.steps), callback=(lambda info: on_step()) if on_step else None)
    seconds = (time.perf_counter() - t0) / len(indices)
    with torch.no_grad():
        L, terms = parsing.potential(z)
        logits = bundle.decode(z) if config.output_decoder == "conv" else bundle.decode_field(z)
    labels = logits.argmax(1).to(torch.uint8).numpy()
    sigmas, per_call = trace.as_lists()
    out = []
    for b, i in enumerate(indices):
        out.append(SampleResult(
            index=int(i), latent=z[b].detach().clone(), labels=labels[b], sigmas=list(sigmas),
            potentials=[float(p[b]) for p in per_call], guided=list(denoiser.active_calls), final_potential=float(L[b]),
            final_terms={k: float(v[b]) for k, v in terms.items()}, seconds=seconds,
        ))
    return out


# --- references and tasks ----------------------------------------------------------------------------------


def reference_files(path: Path | None) -> list[Path]:
    """``--reference``: one label map, or a folder of them (``labelsTr/`` inside it if present)."""
    if path is None:
        return []
    path = Path(path)
    if path.is_dir():
        return list_label_files(path)
    if not path.exists():
        raise AnatomicaError(f"{path}: no such reference file or folder")
    if not is_nifti(path):
        raise AnatomicaError(f"{path}: a reference must be a .nii/.nii.gz label map or a folder of them")
    return [path]


def resolve_per_reference(spec: TaskSpec, references: Sequence[tuple[str, LabelMap]], labels: dict[str, int], shape, affine) -> list[Task]:
    """One resolved task per (name, reference) (or one without any); errors name the reference they come from."""
    if not references:
        return [resolve_task(spec, None, labels, shape, affine)]
    tasks = []
    for name, ref in references:
        try:
            tasks.append(resolve_task(spec, ref, labels, shape, affine))
        except AnatomicaError as e:
            raise AnatomicaError(f"reference {name}: {e}") from None
    return tasks


def schedule(n: int, n_tasks: int, batch_size: int) -> list[tuple[int, list[int]]]:
    """Batches (task index, sample indices): sample i uses task i mod n_tasks; batches never mix tasks."""
    batches = []
    for k in range(n_tasks):
        idx = list(range(k, n, n_tasks))
        batches += [(k, idx[j : j + batch_size]) for j in range(0, len(idx), batch_size)]
    return batches


# --- the command's work: model + task + references in, files out -----------------------------------------


def run_guided(
    model: Path,
    task: str | Path,
    out: Path,
    config: GuidanceConfig,
    n: int = 8,
    seed: int = 0,
    reference: Path | None = None,
    batch_size: int = 4,
    overwrite: bool = False,
    progress: bool = True,
    record_unguided: bool = True,
) -> dict:
    """Guided sampling of ``n`` samples into ``out``: labelsTr/sample_NNN.nii.gz + dataset.json, reports/sample_NNN.json,
    summary.json and mosaic.png. Returns the summary."""
    from tqdm import tqdm

    from anatomica.control.spec import load_task
    from anatomica.data.io import load_label_map, save_label_map, write_dataset_json, write_json
    from anatomica.guided.report import sample_report, summarize, write_mosaic
    from anatomica.train import load_model

    config = config.check()
    if n < 1 or batch_size < 1:
        raise AnatomicaError(f"--n and --batch-size must be >= 1, got {n} and {batch_size}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AnatomicaError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise AnatomicaError(f"{out}: exists and is not empty (pass --overwrite to replace its samples)")
    spec = load_task(task)
    config = config.for_task(spec)
    ref_paths = reference_files(reference)
    bundle = load_model(model)
    refs = [(p.name, load_label_map(p)) for p in ref_paths]
    tasks = resolve_per_reference(spec, refs, bundle.labels, bundle.shape, bundle.affine)
    batches = schedule(n, len(tasks), batch_size)
    results: dict[int, SampleResult] = {}
    task_of: dict[int, int] = {}
    with tqdm(total=len(batches) * config.steps, desc=f"guided sampling ({n} samples)", unit="step", disable=not progress) as bar:
        for k, idx in batches:
            for r in guided_batch(bundle, tasks[k], idx, seed, config, record_unguided, on_step=lambda: bar.update(1)):
                results[r.index] = r
                task_of[r.index] = k
    cfg = config.to_dict()
    reports, names = [], []
    for i in range(n):
        r, k = results[i], task_of[i]
        name = f"sample_{i:03d}"
        save_label_map(LabelMap(r.labels, bundle.affine, bundle.labels), out / "labelsTr" / f"{name}.nii.gz", overwrite=True)
        rep = sample_report(r, tasks[k], cfg, seed, str(ref_paths[k]) if ref_paths else None)
        write_json(rep, out / "reports" / f"{name}.json")
        reports.append(rep)
        names.append(name)
    write_dataset_json(out, "guided samples", bundle.labels, names,
                       extra={"model": str(Path(model).resolve()), "task": spec.name, "seed": seed, **cfg})
    write_mosaic([results[i].labels for i in range(n)], [tasks[task_of[i]] for i in range(n)], out / "mosaic.png",
                 bundle.num_classes, titles=[f"sample {i}" for i in range(n)])
    summary = {"task": spec.name, "model": str(Path(model).resolve()), "seed": seed, "references": [str(p) for p in ref_paths],
               "guidance": cfg, "threads": torch.get_num_threads(), **summarize(reports)}
    write_json(summary, out / "summary.json")
    return summary


def parse_sigma_window(text: str | None) -> tuple[float, float]:
    """'MIN,MAX' -> (MIN, MAX); None -> the default window."""
    if text is None:
        return DEFAULT_SIGMA_MIN, DEFAULT_SIGMA_MAX
    parts = [p.strip() for p in text.split(",")]
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise AnatomicaError(f"--sigma-window: expected two numbers MIN,MAX, got {text!r}") from None
    if not (np.isfinite(lo) and 0 <= lo <= hi):
        raise AnatomicaError(f"--sigma-window: need 0 <= MIN <= MAX, got {text!r}")
    return lo, hi


def guided_command(model: Path, task: str, reference: Path | None, parsing: str, resolution: str | None, scale: float | None,
                   fast: bool, sigma_window: str | None, n: int, steps: int, seed: int, out: Path, sampler: str, decoder: str,
                   batch_size: int, threads: int | None, overwrite: bool) -> None:
    """``anatomica sample --task ...``: validate the options, run, print the summary."""
    from rich.console import Console

    from anatomica.guided.report import summary_table

    lo, hi = parse_sigma_window(sigma_window)
    config = GuidanceConfig(parsing=parsing, resolution=resolution, scale=scale, fast=fast,
                            sigma_min=lo, sigma_max=hi, steps=steps, sampler=sampler, decoder=decoder).check()
    if threads is not None:
        if threads < 1:
            raise AnatomicaError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    summary = run_guided(model, task, out, config, n=n, seed=seed, reference=reference, batch_size=batch_size, overwrite=overwrite)
    Console().print(summary_table(summary))
    print(f"{n} samples in {out}/labelsTr ({summary['seconds_per_sample']:.2f} s/sample); reports in {out}/reports, mosaic: {out / 'mosaic.png'}")
