"""Sampling, guided or not: the one pipeline from noise to files (``run_sampling``), and its pieces.

Unguided runs (no task) use the plain EDM sampler; guided runs use Anatomica's guided denoiser D^w, one
resolved task per sample. Both share batching, per-sample noise, decoding and writing.

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
from anatomica.diffusion.guidance import GuidanceTrace, GuidedDenoiser
from anatomica.diffusion.sampling import SAMPLERS, finite_steps
from anatomica.errors import AnatomicaError
from anatomica.frame import Frame
from anatomica.guided.parsers import PARSINGS, Parsing, make_parsing
from anatomica.guided.resolution import PRESETS, on_grids_of
from anatomica.io.dataset import list_label_files
from anatomica.io.nifti import LabelMap, is_nifti
from anatomica.io.output import check_output_dir, staged_output

DEFAULT_SCALE = 1e4
DEFAULT_SIGMA_MIN = 0.05
DEFAULT_SIGMA_MAX = float("inf")  # guide from the first step: topology needs the coarse stages
PRECISIONS = ("fp32", "bf16")


def autocast(precision: str, device: torch.device | str = "cpu"):
    """The networks' precision: fp32 as is, or bf16 autocast (CPU and GPU); the sampler's state stays fp32."""
    device_type = torch.device(device).type
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=precision == "bf16")


@dataclass(frozen=True)
class GuidanceConfig:
    """How to guide: parsing mode and L resolution, scale w, gradient mode, σ window, sampler and steps."""

    parsing: str | None = "l-local"  # None: the task's guidance.parsing (else l-local), as `anatomica sample` asks
    resolution: str | None = None  # L-parsing preset, default 'low'; None for V-parsing
    scale: float | None = None  # w; None = the task's ``guidance.scale``, else DEFAULT_SCALE (see ``for_task``)
    fast: bool = False  # ∇ w.r.t. ẑ0, times c_skip(σ) for the denoiser Jacobian (no backward through the denoiser)
    sigma_min: float = DEFAULT_SIGMA_MIN
    sigma_max: float = DEFAULT_SIGMA_MAX
    steps: int = 20
    sampler: str = "heun"
    decoder: str | None = None  # decoder of the saved label maps: conv, field (full grid), None = the parsing's
    precision: str = "fp32"  # fp32, or bf16 autocast of the networks (latents and the sampler stay fp32)
    # Realistic-topology options (issue 11 item 9; None = the task's ``guidance:`` value, else off):
    normalize: float | None = None  # ρ: shift ρ·s(σ)·∇L/rms(∇L) instead of w·σ²·∇L (diffusion.guidance)
    clip: float | None = None  # ρ: cap the RMS of w·σ²·∇L at ρ·s(σ) (diffusion.guidance); not with normalize
    recurrence: int | None = None  # re-noise to the same σ and re-denoise, r times per guided call
    topology_loss: str | None = None  # 'paper' or 'saddle' (control.topology)
    topology_margin: float | None = None  # m of the saddle loss, in [0, 0.5)

    def check(self) -> GuidanceConfig:
        if self.parsing is not None and self.parsing not in PARSINGS:
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
        if self.precision not in PRECISIONS:
            raise AnatomicaError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.normalize is not None and not (np.isfinite(self.normalize) and self.normalize > 0):
            raise AnatomicaError(f"--guidance-normalize must be a finite number > 0, got {self.normalize}")
        if self.clip is not None and not (np.isfinite(self.clip) and self.clip > 0):
            raise AnatomicaError(f"--guidance-clip must be a finite number > 0, got {self.clip}")
        if self.clip is not None and self.normalize is not None:
            raise AnatomicaError("--guidance-normalize and --guidance-clip exclude each other; give one")
        if self.recurrence is not None and not 0 <= self.recurrence <= 8:
            raise AnatomicaError(f"--recurrence must be an integer in [0, 8], got {self.recurrence}")
        if self.topology_loss not in (None, "paper", "saddle"):
            raise AnatomicaError(f"--topology-loss must be 'paper' or 'saddle', got {self.topology_loss!r}")
        if self.topology_margin is not None and not (np.isfinite(self.topology_margin) and 0 <= self.topology_margin < 0.5):
            raise AnatomicaError(f"--topology-margin must be a number in [0, 0.5), got {self.topology_margin}")
        return self

    def guiding_options(self) -> list[str]:
        """The CLI options of guidance this config sets (away from their defaults), for requests that take none."""
        asked = {"--guidance-scale": self.scale is not None, "--fast-gradient": self.fast,
                 "--sigma-window": (self.sigma_min, self.sigma_max) != (DEFAULT_SIGMA_MIN, DEFAULT_SIGMA_MAX),
                 "--parsing": self.parsing not in (None, GuidanceConfig.parsing), "--resolution": self.resolution is not None,
                 "--guidance-normalize": self.normalize is not None, "--guidance-clip": self.clip is not None,
                 "--recurrence": self.recurrence is not None, "--topology-loss": self.topology_loss is not None,
                 "--topology-margin": self.topology_margin is not None}
        return [k for k, v in asked.items() if v]

    def for_task(self, spec: TaskSpec) -> GuidanceConfig:
        """This config with what was left open filled in from the task's ``guidance:`` block: w (else DEFAULT_SCALE),
        parsing and resolution (when the parsing is None), the σ window (when the config has the default one),
        normalize, recurrence, topology loss and margin."""
        g = spec.guidance
        out = self if self.scale is not None else replace(self, scale=g.scale if g is not None else DEFAULT_SCALE)
        if self.parsing is None:  # the parsing (and its preset) the task was measured with
            task_parsing = g.parsing if g is not None else None
            out = replace(out, parsing=task_parsing or "l-local",
                          resolution=self.resolution or (g.resolution if task_parsing else None))
        if g is None:
            return out.check()
        fill = {}
        if g.sigma_window is not None and (self.sigma_min, self.sigma_max) == (DEFAULT_SIGMA_MIN, DEFAULT_SIGMA_MAX):
            fill["sigma_min"], fill["sigma_max"] = float(g.sigma_window[0]), float(g.sigma_window[1])
        for name in ("recurrence", "topology_loss", "topology_margin"):
            if getattr(self, name) is None:
                fill[name] = getattr(g, name)
        if self.normalize is None and self.clip is None:  # the step rule comes from the command line or the task, as a pair
            fill["normalize"], fill["clip"] = g.normalize, g.clip
        return replace(out, **fill).check()

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
            "precision": self.precision, "normalize": self.normalize, "clip": self.clip, "recurrence": self.recurrence or 0,
            "topology_loss": self.topology_loss or "paper", "topology_margin": 0.1 if self.topology_margin is None else self.topology_margin,
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
    decode_seconds: float = 0.0  # decoding the final latent (unguided runs time it apart)
    task: Task | None = None  # the sample's own task with its kept targets (keep: true) as measured, if it keeps any


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


def guided_batch(bundle, task: Task | Sequence[Task], indices: Sequence[int], seed: int, config: GuidanceConfig,
                 record_unguided: bool = True, on_step: Callable[[], None] | None = None) -> list[SampleResult]:
    """Sample ``indices`` (noise of (seed, i) each) with the guided denoiser for one resolved ``task``, or one task
    per sample (its own reference's domains and targets).

    Kept targets (``keep: true``) are each sample's moments on its unguided twin: the same noise sampled by the
    plain denoiser to the end, parsed as the guidance reads it. The prediction at the first guided call would be
    cheaper but at σ = 80 (or 10) it is close to the population mean: holding it pulled every heart's atria
    to nearly one volume (sd 3.5 mL against the prior's 7.9 mL, docs/results.md)."""
    if config.scale is None:
        raise ValueError("guided_batch needs a guidance scale: resolve the config with config.for_task(spec)")
    topo = {k: v for k, v in (("topology_mode", config.topology_loss), ("topology_margin", config.topology_margin)) if v is not None}
    if topo:
        task = replace(task, **topo) if isinstance(task, Task) else [replace(t, **topo) for t in task]
    parsing: Parsing = make_parsing(bundle, task, config.parsing, config.resolution_name)
    potential = lambda z: parsing.potential(z)[0]  # noqa: E731
    trace = GuidanceTrace()
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([int(seed), int(indices[0]), 7]).generate_state(1)[0])) if config.recurrence else None
    guided = GuidedDenoiser(bundle.denoiser, potential, config.scale, config.sigma_min, config.sigma_max,
                            mode="fast" if config.fast else "full", trace=trace,
                            sigma_data=getattr(bundle.denoiser, "sigma_data", 1.0),
                            normalize=config.normalize, clip=config.clip, recurrence=config.recurrence or 0, generator=generator)
    denoiser = TracedDenoiser(guided, potential, record_unguided)
    noise = bundle.noise(indices, seed)
    t0 = time.perf_counter()
    with autocast(config.precision):
        if parsing.task.pending:  # kept targets (keep: true): each sample's own moments without guidance
            with torch.no_grad():
                parsing.task = parsing.task.keep_targets(parsing(prior_latents(bundle, indices, seed, config.steps, config.sampler)))
        z = SAMPLERS[config.sampler](denoiser, noise, bundle.sigmas(config.steps),
                                     callback=finite_steps((lambda info: on_step()) if on_step else None, "; lower --guidance-scale"))
        seconds = (time.perf_counter() - t0) / len(indices)
        with torch.no_grad():
            L, terms = parsing.potential(z)
            labels = decode_labels(bundle, z, config.output_decoder)
    sigmas, per_call = trace.as_lists()
    keeps = any(d.target.keep for d in parsing.task.domains)
    out = []
    for b, i in enumerate(indices):
        own = None
        if keeps:  # the kept values, back on the task's own grids for the reports
            own = on_grids_of(parsing.task.sample(b), task if isinstance(task, Task) else task[b])
        out.append(SampleResult(
            index=int(i), latent=z[b].detach().clone(), labels=labels[b], sigmas=list(sigmas),
            potentials=[float(p[b]) for p in per_call], guided=list(denoiser.active_calls), final_potential=float(L[b]),
            final_terms={k: float(v[b]) for k, v in terms.items()}, seconds=seconds, task=own,
        ))
    return out


@torch.no_grad()
def prior_latents(bundle, indices: Sequence[int], seed: int, steps: int, sampler: str = "heun",
                  on_step: Callable[[], None] | None = None) -> Tensor:
    """Unguided normalized latents (len(indices), *latent_shape) from the noise of (seed, i) each: the prior."""
    return SAMPLERS[sampler](bundle.denoiser, bundle.noise(indices, seed), bundle.sigmas(steps),
                             callback=finite_steps((lambda info: on_step()) if on_step else None))


def unguided_batch(bundle, indices: Sequence[int], seed: int, config: GuidanceConfig,
                   on_step: Callable[[], None] | None = None) -> list[SampleResult]:
    """Sample and decode ``indices`` with the plain denoiser: no potential, no reports."""
    t0 = time.perf_counter()
    with autocast(config.precision):
        z = prior_latents(bundle, indices, seed, config.steps, config.sampler, on_step)
        t1 = time.perf_counter()
        with torch.no_grad():
            labels = decode_labels(bundle, z, config.output_decoder)
    t2 = time.perf_counter()
    return [SampleResult(index=int(i), latent=z[b].detach().clone(), labels=labels[b], seconds=(t1 - t0) / len(indices),
                         decode_seconds=(t2 - t1) / len(indices)) for b, i in enumerate(indices)]


def decode_labels(bundle, z: Tensor, decoder: str) -> np.ndarray:
    """Label maps (B, X, Y, Z) uint8 of normalized latents through the conv decoder or the neural field."""
    logits = bundle.decode(z) if decoder == "conv" else bundle.decode_field(z)
    return logits.float().argmax(1).to(torch.uint8).numpy()


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


def table_note(name: str, ref: LabelMap, labels: dict[str, int]) -> str | None:
    """The one line said when a reference has no label table and is read in the model's numbering."""
    if ref.labels:
        return None
    return (f"note: reference {name} has no label table (no dataset.json next to it); read in the model's numbering "
            f"({', '.join(f'{k}={v}' for k, v in labels.items())})")


def resolve_per_reference(spec: TaskSpec, references: Sequence[tuple[str, LabelMap]], labels: dict[str, int], shape, affine) -> list[Task]:
    """One resolved task per (name, reference) (or one without any); errors name the reference they come from."""
    if not references:
        return [resolve_task(spec, None, labels, shape, affine)]
    tasks = []
    for name, ref in references:
        try:
            tasks.append(resolve_task(spec, ref, labels, shape, affine))  # label values read by name
        except AnatomicaError as e:
            raise AnatomicaError(f"reference {name}: {e}") from None
    notes = [n for n in (table_note(name, ref, labels) for name, ref in references) if n]
    import sys

    for note in notes:  # only once every reference resolved: a failing run prints its one error line alone
        print(note, file=sys.stderr)
    return tasks


def schedule(n: int, batch_size: int) -> list[list[int]]:
    """Batches of sample indices 0..b−1, b..2b−1, …; with references, sample i uses reference i mod n_references,
    and one batch may mix references (a stacked task gives each sample its own targets)."""
    return [list(range(j, min(j + batch_size, n))) for j in range(0, n, batch_size)]


MIN_GUIDED_STEPS = 10  # below this, guided samples measured worse than unguided ones (5 steps, heart32)


def request_warnings(tasks: Sequence[Task], config: GuidanceConfig, bundle) -> list[str]:
    """Requests that cannot work as asked, said before the run: mass targets beyond what the domain can hold or
    far outside the training data, Betti priors a domain's grid cannot hold, guidance with too few steps."""
    out: list[str] = []
    if config.scale and config.steps < MIN_GUIDED_STEPS:
        out.append(f"guidance with --steps {config.steps} has little room to act (measured: worse than unguided at 5 steps); use --steps >= {MIN_GUIDED_STEPS}")
    stats = (bundle.config.get("data_stats") or {}).get("labels", {})
    by_value = {v: k for k, v in bundle.labels.items()}
    seen: set[str] = set()
    for task in tasks:
        for d in task.domains:
            dom, t = d.domain, d.target
            if d.name in seen:
                continue
            if t.mass is not None:
                fraction = float(t.mass)
                if fraction > 1.0:
                    seen.add(d.name)
                    out.append(f"domain {d.name!r}: the mass target is {fraction:.3g}× what the domain can hold; it cannot be reached")
                elif dom.dim == 3 and all(by_value.get(c) in stats for c in d.channels):
                    ml = fraction * dom.mass_scale(task.frame)
                    mean = sum(stats[by_value[c]]["mean_ml"] for c in d.channels)
                    sd = sum(stats[by_value[c]]["sd_ml"] for c in d.channels)
                    if sd > 0 and abs(ml - mean) > 5 * sd:
                        seen.add(d.name)
                        out.append(f"domain {d.name!r}: the target of {ml:.1f} mL is far outside the training data "
                                   f"({mean:.1f} ± {sd:.1f} mL); expect unrealistic anatomy or a missed target")
            if d.betti is not None:
                most = int(np.prod([(int(n) + 1) // 2 for n in dom.size if int(n) > 1] or [1]))
                if d.betti[0] > most:
                    seen.add(d.name)
                    out.append(f"domain {d.name!r}: betti[0] = {d.betti[0]} components cannot fit its grid {list(dom.size)} (at most {most})")
    return out


# --- the command's work: model (+ task + references) in, files out -----------------------------------------


@dataclass(frozen=True)
class SamplingRun:
    """What ``anatomica sample`` asks for: which model, how many samples, where to, and (optionally) the task."""

    model: str | Path  # run folder or packaged model name
    out: Path
    config: GuidanceConfig = GuidanceConfig()
    n: int = 8
    seed: int = 0
    task: str | Path | None = None  # None: unguided samples from the prior
    reference: Path | None = None
    batch_size: int = 4
    overwrite: bool = False
    progress: bool = True
    # L(ẑ0) also on unguided calls (outside the σ window, or w = 0): a full curve in the reports, at the cost of
    # one extra parse per such call; off by default so unguided calls only denoise.
    record_unguided: bool = False
    # More files for the finished run, written into the staged folder before it is swapped in:
    # extras(folder, summary); e.g. meshes, viewer files, report.html.
    extras: Callable[[Path, dict], None] | None = None

    def check(self) -> SamplingRun:
        if self.n < 1 or self.batch_size < 1:
            raise AnatomicaError(f"--n and --batch-size must be >= 1, got {self.n} and {self.batch_size}")
        if self.task is None:
            guiding = (["--reference"] if self.reference is not None else []) + self.config.guiding_options()
            if guiding:
                raise AnatomicaError(f"{', '.join(guiding)}: these guide a --task; give one")
        self.config.check()
        check_output_dir(self.out, self.overwrite, "pass --overwrite to replace its samples")
        return self


@dataclass
class SamplingPlan:
    """A checked run with its model loaded and its task resolved once per reference (``tasks`` None: unguided)."""

    run: SamplingRun
    config: GuidanceConfig  # w and the output decoder filled in
    bundle: object  # model.ModelBundle
    model_path: str
    spec: TaskSpec | None = None
    tasks: list[Task] | None = None
    references: list[Path] = field(default_factory=list)
    conditioning: object | None = None  # guided.conditional.Conditioning of a conditional baseline (then no guidance)

    @property
    def settings(self) -> dict:
        """The reports' "guidance" entry: the guidance settings, or a conditional model's conditioning."""
        return self.config.to_dict() if self.conditioning is None else self.conditioning.settings(self.config)


def plan_sampling(run: SamplingRun) -> SamplingPlan:
    """Validate everything (options, --out, task, references) and load the model: no sampling, no files."""
    from anatomica.control.spec import load_task
    from anatomica.guided.conditional import check_request, condition_record, plan_conditional
    from anatomica.io.nifti import load_label_map
    from anatomica.model import load_model, resolve_model

    record = condition_record(run.model)
    if record is not None and run.task is None:  # before run.check, which would only say that --reference needs a --task
        check_request(run, record)
    run = run.check()
    model_path = str(resolve_model(run.model).resolve())
    if record is not None:
        return plan_conditional(run, model_path)
    if run.task is None:
        return SamplingPlan(run, replace(run.config, decoder=run.config.decoder or "conv"), load_model(run.model), model_path)
    spec = load_task(run.task)
    config = run.config.for_task(spec)
    ref_paths = reference_files(run.reference)
    bundle = load_model(run.model)
    refs = [(p.name, load_label_map(p)) for p in ref_paths]
    tasks = resolve_per_reference(spec, refs, bundle.labels, bundle.shape, bundle.affine)
    import sys

    for w in request_warnings(tasks, config, bundle):
        print(f"warning: {w}", file=sys.stderr)
    return SamplingPlan(run, config, bundle, model_path, spec, tasks, ref_paths)


def sample_all(plan: SamplingPlan) -> tuple[list[SampleResult], list[int]]:
    """Every sample of the plan (index order) and the index of the task (reference) each was guided by."""
    from tqdm import tqdm

    run, config, bundle, tasks = plan.run, plan.config, plan.bundle, plan.tasks
    batches = schedule(run.n, run.batch_size)
    task_of = [i % len(tasks) if tasks else 0 for i in range(run.n)]
    results: list[SampleResult] = []
    desc = f"{'conditional' if plan.conditioning is not None else 'guided'} sampling ({run.n} samples)" if tasks else f"sampling ({run.n} samples)"
    with tqdm(total=len(batches) * config.steps, desc=desc, unit="step", disable=not run.progress) as bar:
        for idx in batches:
            step = lambda: bar.update(1)  # noqa: E731
            if plan.conditioning is not None:
                from anatomica.guided.conditional import conditional_batch

                results += conditional_batch(bundle, plan.conditioning, tasks, task_of, idx, run.seed, config, on_step=step)
            elif tasks:
                ks = [task_of[i] for i in idx]
                task = tasks[ks[0]] if len(set(ks)) == 1 else [tasks[k] for k in ks]  # per-sample targets in one batch
                results += guided_batch(bundle, task, idx, run.seed, config, run.record_unguided, on_step=step)
            else:
                results += unguided_batch(bundle, idx, run.seed, config, on_step=step)
    return results, task_of


def write_unguided(plan: SamplingPlan, results: list[SampleResult], out: Path, names: list[str]) -> dict:
    """dataset.json, the mosaic and the summary (volumes against the training data) of an unguided run."""
    from anatomica.guided.figures import write_mosaic
    from anatomica.io.dataset import write_dataset_json
    from anatomica.metrics.label_stats import label_volume_stats

    run, config, bundle = plan.run, plan.config, plan.bundle
    labels = np.stack([r.labels for r in results])
    write_dataset_json(out, "samples", bundle.labels, names, extra={"model": plan.model_path, "seed": run.seed, "steps": config.steps,
                                                                     "sampler": config.sampler, "decoder": config.output_decoder})
    write_mosaic(labels, out / "mosaic.png", bundle.num_classes)
    return {
        "n": run.n, "steps": config.steps, "sampler": config.sampler, "decoder": config.output_decoder, "seed": run.seed,
        "threads": torch.get_num_threads(),
        "seconds_sampling_per_sample": float(np.mean([r.seconds for r in results])),
        "seconds_decoding_per_sample": float(np.mean([r.decode_seconds for r in results])),
        "samples": label_volume_stats(torch.from_numpy(labels), bundle.labels, Frame(bundle.shape, bundle.affine).voxel_volume_mm3 / 1000.0),
        "training": bundle.config.get("data_stats"),
    }


def write_guided(plan: SamplingPlan, results: list[SampleResult], task_of: list[int], out: Path, names: list[str]) -> dict:
    """reports/sample_NNN.json, dataset.json, the mosaic with the control domains and the summary of a guided run."""
    from anatomica.guided.figures import write_domain_mosaic
    from anatomica.guided.report import sample_report, summarize
    from anatomica.io.dataset import write_dataset_json
    from anatomica.io.files import write_json

    run, bundle, tasks, refs = plan.run, plan.bundle, plan.tasks, plan.references
    cfg = plan.settings
    reports = []
    for r, k, name in zip(results, task_of, names):
        rep = sample_report(r, r.task or tasks[k], cfg, run.seed, str(refs[k]) if refs else None)
        write_json(rep, out / "reports" / f"{name}.json")
        reports.append(rep)
    write_dataset_json(out, "guided samples" if plan.conditioning is None else "conditional samples", bundle.labels, names, extra={"model": plan.model_path, "task": plan.spec.name, "seed": run.seed, **cfg})
    write_domain_mosaic([r.labels for r in results], [tasks[k] for k in task_of], out / "mosaic.png", bundle.num_classes,
                        titles=[f"sample {i}" for i in range(run.n)])
    return {"task": plan.spec.name, "model": plan.model_path, "seed": run.seed, "references": [str(p) for p in refs],
            "guidance": cfg, "threads": torch.get_num_threads(), **summarize(reports)}


def run_sampling(run: SamplingRun) -> dict:
    """Sample ``run.n`` label maps into ``run.out`` (built beside it, swapped in when complete):
    labelsTr/sample_NNN.nii.gz + dataset.json, summary.json and mosaic.png; with a task also
    reports/sample_NNN.json and the control domains in the mosaic. Returns the summary."""
    from anatomica.io.files import write_json
    from anatomica.io.nifti import save_label_map

    plan = plan_sampling(run)
    results, task_of = sample_all(plan)
    names = [f"sample_{i:03d}" for i in range(plan.run.n)]
    with staged_output(plan.run.out, plan.run.overwrite, "pass --overwrite to replace its samples") as out:
        for r, name in zip(results, names):
            save_label_map(LabelMap(r.labels, plan.bundle.affine, plan.bundle.labels), out / "labelsTr" / f"{name}.nii.gz")
        summary = write_unguided(plan, results, out, names) if plan.tasks is None else write_guided(plan, results, task_of, out, names)
        write_json(summary, out / "summary.json")
        if plan.run.extras is not None:
            plan.run.extras(out, summary)
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
    if not (np.isfinite(lo) and 0 <= lo <= hi) or np.isnan(hi):
        raise AnatomicaError(f"--sigma-window: need 0 <= MIN <= MAX, got {text!r}")
    return lo, hi
