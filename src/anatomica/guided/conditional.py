"""Sampling a conditional baseline (Anatomica, CVPR 2026, "Baselines"): a model trained with
``anatomica train diffusion --condition explicit|implicit --task NAME`` samples D(z; σ | c) with c the task's
targets for each reference (``control.conditioning.target_vectors``), without guidance.

Everything else is the one pipeline of ``guided.run``: per-sample noise of (seed, i), the samplers of
``diffusion.sampling``, decoding, reports against the same resolved tasks (sample i pairs with reference
i mod n), files. Reports carry the potential L of the saved label map (one-hot) as the final potential.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from anatomica.control.conditioning import conditioning_channels, domain_signature, target_vectors
from anatomica.control.potential import Task
from anatomica.control.schema import TaskSpec
from anatomica.diffusion.edm import ConditionedDenoiser
from anatomica.errors import AnatomicaError
from anatomica.guided.run import (
    GuidanceConfig,
    SampleResult,
    SamplingPlan,
    SamplingRun,
    reference_files,
    request_warnings,
    resolve_per_reference,
    unguided_batch,
)
from anatomica.io.nifti import LabelMap


@dataclass
class Conditioning:
    """A conditional model's record and its normalized channels, one (C, *latent) per reference."""

    record: dict  # config.json "condition"
    channels: Tensor  # (R, C, *latent_spatial)

    def settings(self, config: GuidanceConfig) -> dict:
        """The reports' "guidance" entry: no guidance (w = 0), the conditioning instead."""
        return {"conditioning": self.record["kind"], "trained_task": self.record["task"], "guidance_scale": 0.0,
                "parsing": None, "resolution": None, "fast_gradient": False, "steps": config.steps, "sampler": config.sampler,
                "decoder": config.output_decoder, "precision": config.precision, "final_potential": "on the label map (one-hot)"}


def condition_record(model: str | Path) -> dict | None:
    """config.json "condition" of a conditional baseline; None for the prior and for anything unreadable (loading
    the model says why)."""
    from anatomica.io.checkpoint import read_config
    from anatomica.model import resolve_model

    try:
        record = read_config(resolve_model(model)).get("condition")
    except AnatomicaError:
        return None
    return record if isinstance(record, dict) else None


def check_request(run: SamplingRun, record: dict) -> None:
    """A conditional model samples given --task (the one it was trained for) and --reference, and is not guided."""
    what = f"{run.model} is a conditional baseline ({record['kind']} conditioning, trained for task {record['task']!r})"
    if run.task is None or run.reference is None:
        raise AnatomicaError(f"{what}: it samples the task's targets for each reference, give --task {record['task']} --reference REF")
    guiding = run.config.guiding_options()
    if guiding:
        raise AnatomicaError(f"{what}: it is not guided, drop {', '.join(guiding)}")


def check_task(spec: TaskSpec, record: dict) -> None:
    """The task's conditioned domains must be those the model was trained on (targets may differ)."""
    if domain_signature(spec) != domain_signature(TaskSpec.model_validate(record["spec"])):
        raise AnatomicaError(f"--task {spec.name!r}: this conditional model was trained for task {record['task']!r}, whose domains "
                             f"(names, labels, placement, grid) differ; sample it with --task {record['task']}")


def in_numbering(ref: LabelMap, labels: dict[str, int]) -> np.ndarray:
    """The reference's array in the model's label numbering, matched by name (a reference without a table is
    read in the model's numbering, as ``resolve_task`` reads it); other labels become background."""
    if not ref.labels:
        return ref.array
    lut = np.zeros(max(int(np.max(ref.array, initial=0)), *ref.labels.values()) + 1, dtype=np.uint8)
    for name, value in ref.labels.items():
        if name in labels:
            lut[int(value)] = labels[name]
    return lut[ref.array]


def plan_conditional(run: SamplingRun, model_path: str) -> SamplingPlan:
    """``plan_sampling`` for a conditional model: validate, load, resolve the task per reference and turn its
    targets into the conditioning channels; no sampling, no files."""
    from anatomica.control.spec import load_task
    from anatomica.io.nifti import load_label_map
    from anatomica.model import load_model

    bundle = load_model(run.model)
    record = bundle.condition
    check_request(run, record)
    spec = load_task(run.task)
    check_task(spec, record)
    config = replace(run.config, decoder=run.config.decoder or "conv")
    ref_paths = reference_files(run.reference)
    refs = [(p.name, load_label_map(p)) for p in ref_paths]
    tasks = resolve_per_reference(spec, refs, bundle.labels, bundle.shape, bundle.affine)
    channels = []
    for (name, ref), task in zip(refs, tasks):
        try:
            v = target_vectors(task, in_numbering(ref, bundle.labels))
        except AnatomicaError as e:
            raise AnatomicaError(f"reference {name}: {e}") from None
        channels.append(conditioning_channels(record["kind"], v, bundle.shape, bundle.latent_shape[1:], record["mean"], record["std"]))
    for w in request_warnings(tasks, config, bundle):
        print(f"warning: {w}", file=sys.stderr)
    print(f"note: {Path(model_path).name} is a conditional baseline ({record['kind']}, trained for task {record['task']!r}): "
          "samples are conditioned on the task's targets for each reference, without guidance", file=sys.stderr)
    return SamplingPlan(run, config, bundle, model_path, spec, tasks, ref_paths, conditioning=Conditioning(record, torch.stack(channels)))


def conditional_batch(bundle, conditioning: Conditioning, tasks: Sequence[Task], task_of: Sequence[int], indices: Sequence[int],
                      seed: int, config: GuidanceConfig, on_step: Callable[[], None] | None = None) -> list[SampleResult]:
    """Sample ``indices`` (noise of (seed, i) each) from D(z; σ | c_i), c_i the conditioning of sample i's reference,
    with the unguided pipeline; the final potential is that of each saved label map against its task."""
    cond = conditioning.channels[[task_of[i] for i in indices]]
    conditioned = replace(bundle, denoiser=ConditionedDenoiser(bundle.denoiser, cond))
    out = []
    for r in unguided_batch(conditioned, indices, seed, config, on_step):
        task = tasks[task_of[r.index]]
        with torch.no_grad():
            L, terms = task.potential(task.parse_label_array(r.labels, torch.float64))
        out.append(replace(r, final_potential=float(L[0]), final_terms={k: float(v[0]) for k, v in terms.items()}))
    return out
