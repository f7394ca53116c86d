"""Conditioning of the paper's conditional baselines (Anatomica, CVPR 2026, "Baselines"): the geometric moments
of a task's substructures as extra input channels of the denoiser, concatenated with the preconditioned latent.

Per control domain k with a geometric target, the 13-vector c_k = (m, p, vec Σ) of ``control.moments``
(paper, "Geometric moments"): mass fraction m = 1ᵀΩ / N, centroid p (3) and covariance Σ (3×3) of S_k in
normalized volume coordinates. The domain's affine is already applied there: ``moments`` reads S_k at the
domain points X = A·X_temp + t, so p and Σ are the domain's moments mapped into the volume's normalized frame.

- **explicit**: c = (c_1, …, c_K), 13·K constant channels on the latent grid;
- **implicit**: one channel per domain, the mass-weighted Gaussian heatmap m·N(x; p, Σ + diag(h²)) on the
  latent cell centres x, times the cell volume (so the channel sums to ≈ m); h is one latent cell in normalized
  coordinates, which keeps the rank-deficient Σ of line and plane domains renderable.

Training: c of a case measured on the case itself (the task resolved with the case as its own reference,
one-hot probabilities). Sampling: c of the task's targets for a reference (``target_vectors``), the same
``GeometryTarget`` guidance uses; a moment without a target is the reference's own. The targets fix
Σⁿ = Σ / tr Σ (the loss's unit), not the size tr Σ, which L_geo leaves free: the conditioning's Σ is
tr Σ_ref · Σⁿ_target. Channels are normalized per channel by the training set's mean and standard deviation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from anatomica.control.moments import Moments, moments
from anatomica.control.potential import DomainTask, Task
from anatomica.control.resolution import resolve_task
from anatomica.control.schema import TaskSpec
from anatomica.coords import voxel_to_normalized
from anatomica.errors import AnatomicaError
from anatomica.io.nifti import LabelMap

CONDITIONS = ("explicit", "implicit")
MOMENTS_PER_DOMAIN = 13  # mass (1), centroid (3), covariance (9)
STD_FLOOR = 1e-8  # a channel constant on the training set (e.g. a zero Σ entry of an axis-aligned line) keeps scale 1


def check_condition(kind: str) -> str:
    if kind not in CONDITIONS:
        raise AnatomicaError(f"--condition must be one of {', '.join(CONDITIONS)}, got {kind!r}")
    return kind


def _targets_geometry(d) -> bool:
    t = d.targets
    return any(x is not None for x in (t.mass, t.centroid, t.covariance))


def _refuse_kept(name: str) -> None:
    raise AnatomicaError(f"domain {name!r}: 'keep: true' targets are measured on the sample during guidance; "
                         "a conditional baseline needs target values")


def check_spec(spec: TaskSpec) -> TaskSpec:
    """A task a conditional baseline can be trained for: at least one domain with a geometric target, none kept
    (``keep: true`` is measured during guidance, there is no value to condition on)."""
    for d in spec.domains:
        if d.targets.kept:
            _refuse_kept(d.name)
    if not any(_targets_geometry(d) for d in spec.domains):
        raise AnatomicaError(f"task {spec.name!r} has no geometric targets (mass, centroid or covariance): "
                             "a conditional baseline has nothing to condition on")
    return spec


def domain_signature(spec: TaskSpec) -> list[dict]:
    """What fixes the conditioning channels of a spec: its geometrically targeted domains without their target
    values (name, labels, placement, grid). Two specs with equal signatures can share a conditional model."""
    return [d.model_dump(mode="json", exclude={"targets"}) for d in spec.domains if _targets_geometry(d)]


def conditioned_domains(task: Task) -> list[DomainTask]:
    """The resolved domains that condition: those with a geometric target (K of them)."""
    out = [d for d in task.domains if d.has_geometry_target]
    if not out:
        raise AnatomicaError(f"task {task.name!r} has no geometric targets: nothing to condition on")
    return out


def _row(mom: Moments) -> Tensor:
    return torch.cat([mom.mass[:1], mom.centroid[0], mom.covariance[0].reshape(-1)])


def moment_vectors(task: Task, array: np.ndarray) -> Tensor:
    """(K, 13) float64: (m, p, vec Σ) of ``array`` (X, Y, Z; labels in the task's numbering, any resolution of
    the task's field of view) read as one-hot probabilities in each conditioned domain (``control.moments``)."""
    rows = [_row(moments(S, d.domain.points(torch.float64)))
            for d, S in zip(task.domains, task.parse_label_array(array, torch.float64)) if d.has_geometry_target]
    if not rows:
        conditioned_domains(task)  # raises
    return torch.stack(rows)


def target_vectors(task: Task, reference: np.ndarray) -> Tensor:
    """(K, 13) float64: the task's targets as moment vectors, for sampling a conditional baseline. ``task`` is
    resolved for ``reference`` (X, Y, Z, the task's numbering), which gives every moment a target leaves free
    and the size tr Σ the Σⁿ target does not fix."""
    measured = moment_vectors(task, reference)
    rows = []
    for d, row in zip(conditioned_domains(task), measured):
        t = d.target
        if t.keep:
            _refuse_kept(d.name)
        mass = row[:1] if t.mass is None else t.mass.double().reshape(1)
        centroid = row[1:4] if t.centroid is None else t.centroid.double().reshape(3)
        cov = row[4:].reshape(3, 3)
        if t.covariance is not None:
            cov = t.covariance.double() * torch.diagonal(cov).sum()
        rows.append(torch.cat([mass, centroid, cov.reshape(-1)]))
    return torch.stack(rows)


def case_vectors(spec: TaskSpec, arrays: Sequence[np.ndarray], label_table: dict[str, int], affine: np.ndarray,
                 names: Sequence[str] | None = None) -> tuple[Tensor, list[str]]:
    """(N, K, 13) moment vectors of training cases, each measured on itself: the task resolved with the case as
    its own reference, then ``moment_vectors``; and the K conditioned domain names (the same for every case)."""
    check_spec(spec)
    out, domains = [], None
    for i, a in enumerate(arrays):
        a = np.asarray(a)
        name = names[i] if names is not None else f"case {i}"
        try:
            task = resolve_task(spec, LabelMap(a, affine, label_table), label_table, a.shape, affine)
        except AnatomicaError as e:
            raise AnatomicaError(f"training case {name}: {e}") from None
        these = [d.name for d in conditioned_domains(task)]
        if domains is None:
            domains = these
        elif these != domains:
            raise AnatomicaError(f"training case {name}: task {spec.name!r} resolves to domains {these}, the first case to {domains}")
        out.append(moment_vectors(task, a))
    if not out:
        raise AnatomicaError("no training cases to condition on")
    return torch.stack(out), list(domains)


def latent_cell_centres(volume_shape: Sequence[int], latent_spatial: Sequence[int]) -> Tensor:
    """(x·y·z, 3) float64 normalized coordinates of the latent cell centres, C order: cell j of a ×f downsampling
    covers voxels [f·j, f·j + f) and is centred on voxel (j + ½)·f − ½."""
    axes = [(torch.arange(int(n), dtype=torch.float64) + 0.5) * (int(X) / int(n)) - 0.5 for X, n in zip(volume_shape, latent_spatial)]
    ijk = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    return voxel_to_normalized(ijk, volume_shape)


def latent_cell_size(volume_shape: Sequence[int], latent_spatial: Sequence[int]) -> Tensor:
    """(3,) float64: the latent cell's edge lengths h in normalized coordinates (f voxels of 2 / (X − 1) each)."""
    return torch.tensor([2.0 * (int(X) / int(n)) / max(int(X) - 1, 1) for X, n in zip(volume_shape, latent_spatial)], dtype=torch.float64)


def heatmaps(vectors: Tensor, volume_shape: Sequence[int], latent_spatial: Sequence[int]) -> Tensor:
    """(K, x, y, z) float64: per domain m·N(x; p, Σ + diag(h²))·∏h at the latent cell centres x — a Gaussian of
    the substructure's centroid and covariance whose sum over the cells is ≈ m (exact up to discretization and
    the part beyond the volume)."""
    v = vectors.double().reshape(-1, MOMENTS_PER_DOMAIN)
    x = latent_cell_centres(volume_shape, latent_spatial)
    h = latent_cell_size(volume_shape, latent_spatial)
    cov = v[:, 4:].reshape(-1, 3, 3)
    cov = 0.5 * (cov + cov.transpose(-1, -2)) + torch.diag(h**2)  # one cell² so line / plane domains render
    d = x[None] - v[:, None, 1:4]
    q = torch.einsum("kni,kij,knj->kn", d, torch.linalg.inv(cov), d)
    density = torch.exp(-0.5 * q) / torch.sqrt((2 * torch.pi) ** 3 * torch.linalg.det(cov))[:, None]
    return (v[:, :1] * density * h.prod()).reshape(-1, *(int(n) for n in latent_spatial))


def conditioning_channels(kind: str, vectors: Tensor, volume_shape: Sequence[int], latent_spatial: Sequence[int],
                          mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> Tensor:
    """(C_cond, *latent_spatial) float32 conditioning of one case from its (K, 13) moment vectors: 13·K constant
    channels ('explicit') or K heatmaps ('implicit'), normalized by the training set's ``mean`` / ``std`` when
    given (``channel_statistics``)."""
    check_condition(kind)
    spatial = tuple(int(n) for n in latent_spatial)
    if kind == "explicit":
        c = vectors.double().reshape(-1)[(...,) + (None,) * len(spatial)].expand(-1, *spatial)
    else:
        c = heatmaps(vectors, volume_shape, spatial)
    if mean is not None:
        shape = (-1,) + (1,) * len(spatial)
        c = (c - torch.tensor(mean, dtype=torch.float64).reshape(shape)) / torch.tensor(std, dtype=torch.float64).reshape(shape)
    return c.float()


def channel_count(kind: str, domains: int) -> int:
    return MOMENTS_PER_DOMAIN * domains if check_condition(kind) == "explicit" else domains


def channel_statistics(channels: Tensor) -> tuple[list[float], list[float]]:
    """Per-channel (mean, std) over cases and cells of (N, C, *spatial) training conditioning; a std below
    ``STD_FLOOR`` (a channel constant on the training set) becomes 1."""
    c = channels.double().transpose(0, 1).reshape(channels.shape[1], -1)
    mean, std = c.mean(1), c.std(1, correction=0)
    std = torch.where(std < STD_FLOOR, torch.ones_like(std), std)
    return [float(v) for v in mean], [float(v) for v in std]
