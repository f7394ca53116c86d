"""The measurement of a label map on a task's control domains, with its units: one :class:`DomainMeasure` per
domain, which ``anatomica measure`` and the sample reports only render.

Geometry (paper, "Geometric moments") is measured on S_k as the potential sees it: the label map read as
one-hot probabilities, the union of the domain's labels sliced on the domain's template grid. Units:
mass in mL / mm² / mm by the domain's dimension (``ControlDomain.mass_scale``: the one mL ↔ mass-fraction
factor) and as the mass fraction m / N; centroid in world mm; covariance Σ in mm² with its size v = tr Σ,
shape (eigenvalues / v) and orientation (eigenvectors, columns); Σⁿ = Σ / tr Σ in normalized coordinates
(the loss's unit). Targets come back in the same units. Errors are the L1 distances of the paper's
geometric table (coordinates mapped to [0, 1]).

Topology is measured on the **label map itself**, at its own grid (Betti numbers reported to a user are never
those of a resampled grid): for a volume domain, the voxels of the map whose centres lie in the domain
(``domain_mask``); for a plane or a line, the map's labels at the domain points by nearest voxel (no
interpolation). Cubical complex of closed voxel cubes (``anatomica.homology``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from anatomica.control.domain import ControlDomain, domain_mask
from anatomica.control.moments import GeometryTarget, decompose, moments
from anatomica.control.potential import DomainTask, Task
from anatomica.control.topology import squeeze_domain
from anatomica.coords import normalized_to_voxel
from anatomica.errors import AnatomicaError
from anatomica.frame import Frame
from anatomica.homology import betti_numbers


def geometry_errors(S: torch.Tensor, points: torch.Tensor, target: GeometryTarget) -> dict[str, np.ndarray]:
    """L1 errors (B,) of substructures S (B, α, β, γ) on domain ``points`` against the targeted moments: mass
    fraction, centroid with coordinates in [0, 1] (mean over axes), Σⁿ (mean over entries)."""
    mom = moments(S.double(), points.double())
    out: dict[str, np.ndarray] = {}
    if target.mass is not None:
        out["mass"] = (mom.mass - target.mass.double()).abs().numpy()
    if target.centroid is not None:
        # [-1, 1] -> [0, 1] halves every distance
        out["centroid"] = (0.5 * (mom.centroid - target.centroid.double()).abs()).mean(-1).numpy()
    if target.covariance is not None:
        out["covariance"] = (mom.normalized_covariance - target.covariance.double()).abs().mean((-2, -1)).numpy()
    return out


def _crop(mask: np.ndarray) -> np.ndarray:
    """The bounding box of a mask's voxels (homology does not see the empty rest)."""
    idx = np.argwhere(mask)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    return mask[tuple(slice(a, b) for a, b in zip(lo, hi))]


def label_map_betti(array: np.ndarray, values: Sequence[int], domain: ControlDomain) -> list[int]:
    """[b0, b1, b2] of the union of label ``values`` of ``array`` (X, Y, Z) in ``domain``, on the map's own grid.

    Volume domains: the map's voxels whose centres lie in the domain. Planes and lines: the map's labels at the
    domain points, nearest voxel (2D / 1D homology, zero outside the volume).
    """
    array = np.asarray(array)
    union = np.isin(array, list(values))
    if domain.dim == 3:
        inside = union if domain.is_identity() else union & domain_mask(domain, array.shape)
        return betti_numbers(_crop(inside)) if inside.any() else [0, 0, 0]
    ijk = np.rint(normalized_to_voxel(domain.points(torch.float64), array.shape).numpy()).astype(np.int64)
    ok = np.all((ijk >= 0) & (ijk < np.array(array.shape)), axis=1)
    at = np.zeros(len(ijk), dtype=bool)
    at[ok] = union[tuple(ijk[ok].T)]
    kept = [n for n in domain.size if n > 1] or [1]
    return betti_numbers(at.reshape(kept))


def betti_source(array_shape: Sequence[int], domain: ControlDomain) -> str:
    """How :func:`label_map_betti` read the map, for reports."""
    grid = "×".join(str(int(n)) for n in array_shape)
    if domain.dim == 3:
        return f"label map voxels in the domain ({grid} grid)"
    return f"label map at the domain points, nearest voxel ({grid} grid)"


@dataclass
class DomainTargets:
    """A domain's targets in the measure's units (None = not targeted)."""

    mass: float | None = None  # mL / mm² / mm
    mass_fraction: float | None = None
    centroid_mm: np.ndarray | None = None
    normalized_covariance: np.ndarray | None = None
    betti: list[int] | None = None
    kept: list[str] = field(default_factory=list)  # moments targeted at the sample's own value when guidance started


@dataclass
class DomainMeasure:
    """One domain measured on one label map: geometry with units, Betti numbers on the map, targets, errors."""

    name: str
    kind: str  # volume, plane, line
    channels: tuple[int, ...]
    domain: ControlDomain
    mass_unit: str
    mass: float  # in mass_unit
    mass_fraction: float  # m / N, the loss's unit
    centroid_mm: np.ndarray | None  # None for an empty domain
    covariance_mm2: np.ndarray
    size_mm2: float  # v = tr Σ
    shape: np.ndarray  # eigenvalues of Σ / v, descending
    orientation: np.ndarray  # eigenvectors (columns)
    normalized_covariance: np.ndarray  # Σⁿ in normalized coordinates
    target: DomainTargets = field(default_factory=DomainTargets)
    errors: dict[str, float] = field(default_factory=dict)  # L1, paper units, per targeted moment
    betti: list[int] | None = None  # on the label map itself
    betti_source: str | None = None

    @property
    def occupied(self) -> bool:
        return self.mass_fraction > 0

    @property
    def betti_match(self) -> list[bool] | None:
        if self.betti is None or self.target.betti is None:
            return None
        return [bool(b == p) for b, p in zip(self.betti, self.target.betti)]


def _targets(d: DomainTask, frame: Frame) -> DomainTargets:
    t, dom = d.target, d.domain
    return DomainTargets(
        mass=None if t.mass is None else float(t.mass) * dom.mass_scale(frame),
        mass_fraction=None if t.mass is None else float(t.mass),
        centroid_mm=None if t.centroid is None else frame.to_world(t.centroid.double().numpy()),
        normalized_covariance=None if t.covariance is None else t.covariance.double().numpy(),
        betti=None if d.betti is None else list(d.betti),
        kept=list(t.keep),
    )


def measure_domain(d: DomainTask, S: torch.Tensor, frame: Frame, array: np.ndarray | None = None,
                   betti: bool = True) -> DomainMeasure:
    """Measure one domain of a (single, unstacked) task on one substructure S (1, α, β, γ) in ``frame`` (the
    task's volume frame). With the label ``array`` the Betti numbers are the map's own; without it, those of
    {S ≥ ½} on the domain grid (a soft S: say so)."""
    dom = d.domain
    if not isinstance(dom, ControlDomain):
        raise AnatomicaError(f"domain {d.name!r}: measure one sample's task (Task.sample(b)), not a stacked one")
    S = S.double()
    pts = dom.points(torch.float64)
    mom = moments(S, pts)
    L = frame.linear
    cov_mm = L @ mom.covariance[0].numpy() @ L.T
    size, shape, axes = decompose(torch.from_numpy(cov_mm)[None])
    fraction = float(mom.mass[0])
    out = DomainMeasure(
        name=d.name, kind=dom.kind, channels=tuple(d.channels), domain=dom, mass_unit=dom.mass_unit,
        mass=fraction * dom.mass_scale(frame), mass_fraction=fraction,
        centroid_mm=frame.to_world(mom.centroid[0].numpy()) if fraction > 0 else None,
        covariance_mm2=cov_mm, size_mm2=float(size[0]), shape=shape[0].numpy(), orientation=axes[0].numpy(),
        normalized_covariance=mom.normalized_covariance[0].numpy(),
        target=_targets(d, frame),
        errors={k: float(v[0]) for k, v in geometry_errors(S, pts, d.target).items()},
    )
    if betti:
        if array is not None:
            out.betti, out.betti_source = label_map_betti(array, d.channels, dom), betti_source(np.shape(array), dom)
        else:
            out.betti = betti_numbers(squeeze_domain(S[0]).numpy() >= 0.5)
            out.betti_source = f"{{S ≥ ½}} on the domain grid {'×'.join(map(str, dom.size))}"
    return out


def measure_label_map(task: Task, array: np.ndarray, betti: str = "all") -> list[DomainMeasure]:
    """Every domain of ``task`` measured on one label ``array`` (X, Y, Z) of the task's frame.

    ``betti``: 'all' domains, 'prior' (only domains with a Betti prior) or 'none'."""
    if betti not in ("all", "prior", "none"):
        raise AnatomicaError(f"betti must be 'all', 'prior' or 'none', got {betti!r}")
    frame = task.frame
    if frame is None:
        raise AnatomicaError(f"task {task.name!r} has no volume frame (shape, affine): resolve it with resolve_task")
    out = []
    for d, S in zip(task.domains, task.parse_label_array(array, torch.float64)):
        want = betti == "all" or (betti == "prior" and d.betti is not None)
        out.append(measure_domain(d, S, frame, array, betti=want))
    return out
