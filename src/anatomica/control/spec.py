"""Task specs: the YAML schema of a control task (validated with pydantic) and its resolution into a :class:`Task`.

The schema is documented with examples in docs/tasks.md. Resolution places every domain (from a reference
segmentation for ``box``/``planes``/``lines``), turns label names into channels, and converts targets to
loss units (``anatomica.control.moments``): relative targets (mass ``scale``, centroid ``offset_mm`` or ``{}``,
covariance ``{}``) are measured on the reference inside the same domain; absolute ones (mass ``value`` in
mL / mm² / mm for volume / plane / line domains, centroid ``value_mm``, covariance ``value_mm2``) go through
the volume's affine.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, Union

import numpy as np
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from anatomica.control.domain import ControlDomain, ORTHO_TOL, contact_region, place_box, place_global, place_lines, place_planes
from anatomica.control.moments import GeometryTarget, moments
from anatomica.control.parsing import label_union, slice_domain
from anatomica.control.potential import DomainTask, Task, Weights
from anatomica.coords import normalized_scale_mm, normalized_to_world, voxel_to_normalized, world_to_normalized
from anatomica.io.nifti import LabelMap
from anatomica.errors import AnatomicaError

Vec3 = tuple[float, float, float]
Mat3 = tuple[Vec3, Vec3, Vec3]
NAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- placements --------------------------------------------------------------------------------------------


class GlobalPlacement(_Model):
    """The whole volume on a coarse grid."""

    kind: Literal["global"]


class BoxPlacement(_Model):
    """A box around labels (default: the domain's labels), or around where two labels touch (``contact``)."""

    kind: Literal["box"]
    around: list[str] | None = None
    margin: float = Field(0.1, ge=0)
    oriented: bool = False
    contact: bool = False
    contact_radius: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _contact_pair(self):
        if self.contact and (self.around is None or len(self.around) != 2):
            raise ValueError("'contact: true' needs exactly two labels in 'around'")
        return self


class PlanesPlacement(_Model):
    """Planes perpendicular to a label's centerline at arc-length fractions (one domain per fraction)."""

    kind: Literal["planes"]
    along: list[str] | None = None
    fractions: list[Annotated[float, Field(ge=0, le=1)]] = Field(min_length=1)
    margin: float = Field(1.0, ge=0)
    start_near: list[str] | None = None


class LinesPlacement(_Model):
    """Rays from a label's centroid (one domain per ray), given ``directions`` or ``count`` evenly in a plane."""

    kind: Literal["lines"]
    center: list[str] | None = None
    reach: list[str] | None = None
    directions: list[Vec3] | None = None
    count: int | None = Field(None, ge=1)
    normal: Vec3 | None = None
    start_angle_deg: float = 0.0
    length_mm: float | None = Field(None, gt=0)
    margin: float = Field(0.2, ge=0)

    @model_validator(mode="after")
    def _one_way(self):
        if (self.directions is None) == (self.count is None):
            raise ValueError("lines need exactly one of 'directions' and 'count'")
        return self


class ExplicitPlacement(_Model):
    """X = R·diag(s)·X_temp + t given directly, in normalized coordinates (the ControlDomain YAML fields)."""

    kind: Literal["explicit"]
    rotation: Mat3 = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    scale: Vec3
    translation: Vec3 = (0.0, 0.0, 0.0)

    @field_validator("scale")
    @classmethod
    def _positive(cls, v):
        if min(v) <= 0:
            raise ValueError(f"scale must be > 0 on every axis, got {list(v)}")
        return v

    @field_validator("rotation")
    @classmethod
    def _orthonormal(cls, v):
        R = np.asarray(v, dtype=np.float64)
        err = np.abs(R.T @ R - np.eye(3)).max()
        if err > ORTHO_TOL:
            raise ValueError(f"rotation is not orthonormal (max |RᵀR − I| = {err:.3g})")
        if np.linalg.det(R) < 0:
            raise ValueError("rotation has determinant −1 (a reflection), use a proper rotation")
        return v


Placement = Annotated[
    Union[GlobalPlacement, BoxPlacement, PlanesPlacement, LinesPlacement, ExplicitPlacement],
    Field(discriminator="kind"),
]


# --- targets -----------------------------------------------------------------------------------------------


class MassTarget(_Model):
    """``scale`` × the reference's mass in the domain, or an absolute ``value`` (mL / mm² / mm)."""

    scale: float | None = Field(None, gt=0)
    value: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one(self):
        if (self.scale is None) == (self.value is None):
            raise ValueError("mass target needs exactly one of 'scale' and 'value'")
        return self


class CentroidTarget(_Model):
    """The reference's centroid (``{}``), shifted by ``offset_mm``, or an absolute ``value_mm``."""

    offset_mm: Vec3 | None = None
    value_mm: Vec3 | None = None

    @model_validator(mode="after")
    def _not_both(self):
        if self.offset_mm is not None and self.value_mm is not None:
            raise ValueError("centroid target takes 'offset_mm' or 'value_mm', not both")
        return self


class CovarianceTarget(_Model):
    """The reference's shape and orientation (``{}``) or an absolute ``value_mm2``; compared as Σ / tr Σ."""

    value_mm2: Mat3 | None = None

    @field_validator("value_mm2")
    @classmethod
    def _spd(cls, v):
        if v is None:
            return v
        C = np.asarray(v, dtype=np.float64)
        if np.abs(C - C.T).max() > 1e-6 * max(np.abs(C).max(), 1.0):
            raise ValueError("covariance value_mm2 must be symmetric")
        if np.linalg.eigvalsh(C).min() < -1e-9 * np.trace(C) or np.trace(C) <= 0:
            raise ValueError("covariance value_mm2 must be positive semi-definite with a positive trace")
        return v


class Targets(_Model):
    mass: MassTarget | None = None
    centroid: CentroidTarget | None = None
    covariance: CovarianceTarget | None = None
    betti: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]] | None = None


class DomainSpec(_Model):
    name: str = Field(pattern=NAME_PATTERN)
    labels: list[str] = Field(min_length=1)
    placement: Placement = Field(default_factory=lambda: GlobalPlacement(kind="global"))
    grid: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] = (32, 32, 32)
    targets: Targets = Field(default_factory=Targets)


class WeightsSpec(_Model):
    geometry: float = Field(1.0, ge=0)
    topology: float = Field(1.0, ge=0)
    mass: float = Field(1.0, ge=0)
    centroid: float = Field(1.0, ge=0)
    covariance: float = Field(1.0, ge=0)


class GuidanceSpec(_Model):
    """The task's default guidance strength for a sampler that is given none (``anatomica sample --guidance-scale``):
    topological potentials need a far smaller w than geometric ones (docs/results.md)."""

    scale: float = Field(ge=0, allow_inf_nan=False)


class TaskSpec(_Model):
    name: str
    description: str = ""
    domains: list[DomainSpec] = Field(min_length=1)
    weights: WeightsSpec = Field(default_factory=WeightsSpec)
    guidance: GuidanceSpec | None = None
    temperature: float = Field(1.0, gt=0)
    mass_threshold: float = Field(1e-3, ge=0, lt=1)

    @field_validator("domains")
    @classmethod
    def _unique(cls, v):
        names = [d.name for d in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"domain names must be unique, repeated: {', '.join(dup)}")
        return v


# --- loading -----------------------------------------------------------------------------------------------


def _loc(loc: Sequence) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("global", "box", "planes", "lines", "explicit"):
            continue  # pydantic's tag of the placement union: not part of the user's path
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def parse_task(text: str, source: str = "task") -> TaskSpec:
    """Validate YAML text as a :class:`TaskSpec`; every problem becomes one AnatomicaError line."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise AnatomicaError(f"{source}: malformed YAML ({where}{problem})") from None
    if not isinstance(data, dict):
        raise AnatomicaError(f"{source}: a task must be a YAML mapping with 'name' and 'domains'")
    try:
        return TaskSpec.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        msg = err["msg"].removeprefix("Value error, ")
        got = err.get("input")
        extra = f" (got {got!r})" if isinstance(got, (int, float, str)) and err["type"] != "missing" else ""
        more = f" [+{e.error_count() - 1} more]" if e.error_count() > 1 else ""
        raise AnatomicaError(f"{source}: {_loc(err['loc'])}: {msg}{extra}{more}") from None


def packaged_tasks() -> list[str]:
    """Names of the task files shipped in ``anatomica/tasks``."""
    try:
        folder = resources.files("anatomica") / "tasks"
        return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
    except (FileNotFoundError, ModuleNotFoundError, NotADirectoryError):
        return []


def load_task(path_or_name: str | Path) -> TaskSpec:
    """Read a task YAML file, or a packaged task by name (e.g. ``right-ventricle``)."""
    path = Path(path_or_name)
    if not path.is_file():
        name = str(path_or_name)
        if name in packaged_tasks():
            return parse_task((resources.files("anatomica") / "tasks" / f"{name}.yaml").read_text(), f"task {name}")
        if path.is_dir():
            raise AnatomicaError(f"{path}: is a folder, expected a task .yaml file")
        known = ", ".join(packaged_tasks()) or "none"
        raise AnatomicaError(f"{path}: no such task file (packaged tasks: {known})")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise AnatomicaError(f"{path}: not a text file") from None
    return parse_task(text, str(path))


# --- resolution --------------------------------------------------------------------------------------------


def _names_used(d: DomainSpec) -> list[str]:
    p = d.placement
    names = list(d.labels)
    for attr in ("around", "along", "start_near", "center", "reach"):
        names += list(getattr(p, attr, None) or [])
    return names


def _check_fov(reference: LabelMap, shape: Sequence[int], affine: np.ndarray) -> None:
    corners = torch.tensor(np.array(np.meshgrid([-1.0, 1.0], [-1.0, 1.0], [-1.0, 1.0], indexing="ij")).reshape(3, -1).T)
    a = normalized_to_world(corners, reference.affine, reference.array.shape).numpy()
    b = normalized_to_world(corners, affine, shape).numpy()
    spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    tol = max(max(reference.spacing), float(spacing.max()))
    gap = float(np.abs(a - b).max())
    if gap > tol:
        raise AnatomicaError(
            f"the reference covers a different field of view than the volume (corners differ by up to {gap:.1f} mm); "
            "control domains live in normalized coordinates, so both must span the same region"
        )


def _place(d: DomainSpec, reference: LabelMap | None, values) -> list[ControlDomain]:
    p = d.placement
    if isinstance(p, GlobalPlacement):
        return [place_global(d.grid, d.name)]
    if isinstance(p, ExplicitPlacement):
        return [ControlDomain(d.grid, p.rotation, p.scale, p.translation, d.name)]
    if reference is None:
        raise AnatomicaError(f"domain {d.name!r}: placement '{p.kind}' is computed from a reference segmentation; give one (--reference)")
    arr = reference.array

    def mask(names: Sequence[str] | None) -> np.ndarray:
        return np.isin(arr, [values(n) for n in (names or d.labels)])

    if isinstance(p, BoxPlacement):
        if p.contact:
            m = contact_region(mask(p.around[:1]), mask(p.around[1:]), p.contact_radius)
            if not m.any():
                raise AnatomicaError(f"domain {d.name!r}: labels {p.around[0]!r} and {p.around[1]!r} do not touch in the reference")
        else:
            m = mask(p.around)
        return [place_box(m, d.grid, p.margin, p.oriented, d.name)]
    if isinstance(p, PlanesPlacement):
        start = None
        if p.start_near:
            ijk = np.argwhere(mask(p.start_near))
            if len(ijk) == 0:
                raise AnatomicaError(f"domain {d.name!r}: 'start_near' labels are absent from the reference")
            start = voxel_to_normalized(torch.from_numpy(ijk.mean(axis=0)), arr.shape).numpy()
        return place_planes(mask(p.along), d.grid, p.fractions, p.margin, start, d.name)
    reach = mask(p.reach) if p.reach else mask(p.center) | mask(d.labels)
    return place_lines(
        mask(p.center), reach, d.grid, p.directions, p.count, p.normal, p.start_angle_deg, p.length_mm, reference.affine, p.margin, d.name
    )


def _is_relative(t: Targets) -> bool:
    return (t.mass is not None and t.mass.scale is not None) or (
        t.centroid is not None and t.centroid.value_mm is None
    ) or (t.covariance is not None and t.covariance.value_mm2 is None)


def _targets(d: DomainSpec, dom: ControlDomain, reference: LabelMap | None, ref_values: list[int], shape, affine, threshold: float) -> GeometryTarget:
    t = d.targets
    ref = None
    if _is_relative(t):
        if reference is None:
            raise AnatomicaError(f"domain {d.name!r}: a relative target (mass scale, centroid {{}}/offset_mm or covariance {{}}) needs a reference segmentation (--reference)")
        S = slice_domain(label_union(reference.array, ref_values, torch.float64), dom)
        ref = moments(S, dom.points(torch.float64))
        if float(ref.mass[0]) < threshold:
            raise AnatomicaError(f"domain {dom.name!r}: the reference has (almost) no {'+'.join(d.labels)} inside the domain, relative targets are undefined")
    out = GeometryTarget()
    if t.mass is not None:
        if t.mass.scale is not None:
            out.mass = t.mass.scale * ref.mass[0]
        else:
            unit = 1000.0 if dom.dim == 3 else 1.0  # mL -> mm³ for volume domains
            out.mass = torch.tensor(t.mass.value * unit / (dom.num_points * dom.cell_measure(affine, shape)), dtype=torch.float64)
    if t.centroid is not None:
        if t.centroid.value_mm is not None:
            out.centroid = world_to_normalized(torch.tensor(t.centroid.value_mm, dtype=torch.float64), affine, shape)
        else:
            world = normalized_to_world(ref.centroid[0], reference.affine, reference.array.shape)
            if t.centroid.offset_mm is not None:
                world = world + torch.tensor(t.centroid.offset_mm, dtype=torch.float64)
            out.centroid = world_to_normalized(world, affine, shape)
    if t.covariance is not None:
        if t.covariance.value_mm2 is not None:
            Minv = np.linalg.inv(normalized_scale_mm(affine, shape))
            C = Minv @ np.asarray(t.covariance.value_mm2, dtype=np.float64) @ Minv.T
            out.covariance = torch.from_numpy(C / np.trace(C))
        else:
            out.covariance = ref.normalized_covariance[0]
    return out


def resolve_task(
    spec: TaskSpec,
    reference: LabelMap | None,
    label_table: dict[str, int],
    shape: Sequence[int],
    affine: np.ndarray,
) -> Task:
    """Place every domain, map label names to channels (= label values) and turn targets into loss units.

    ``shape`` and ``affine`` describe the volumes the task will be applied to (they convert mm and mL);
    ``reference`` (same field of view, any resolution) places ``box``/``planes``/``lines`` domains and gives
    relative targets.
    """
    shape = tuple(int(n) for n in shape)
    affine = np.asarray(affine, dtype=np.float64)
    for d in spec.domains:
        for n in _names_used(d):
            if n not in label_table:
                known = ", ".join(sorted(label_table)) or "none"
                raise AnatomicaError(f"domain {d.name!r}: unknown label {n!r} (known: {known})")
    if reference is not None:
        _check_fov(reference, shape, affine)

    def ref_value(name: str) -> int:
        return int(reference.labels.get(name, label_table[name])) if reference is not None else label_table[name]

    domains: list[DomainTask] = []
    for d in spec.domains:
        channels = tuple(int(label_table[n]) for n in d.labels)
        for dom in _place(d, reference, ref_value):
            if dom.inside_fraction() == 0.0:
                raise AnatomicaError(f"domain {dom.name!r} lies entirely outside the volume (normalized coordinates beyond [-1, 1])")
            betti = d.targets.betti
            if betti is not None:
                for k in range(dom.dim, 3):
                    if betti[k] > 0:
                        raise AnatomicaError(f"domain {dom.name!r}: betti[{k}] = {betti[k]} is impossible on a {dom.dim}D domain (grid {list(dom.size)})")
            target = _targets(d, dom, reference, [ref_value(n) for n in d.labels], shape, affine, spec.mass_threshold)
            domains.append(DomainTask(dom.name, channels, dom, target, betti))
    w = spec.weights
    return Task(
        name=spec.name,
        domains=domains,
        weights=Weights(w.geometry, w.topology, w.mass, w.centroid, w.covariance),
        temperature=spec.temperature,
        mass_threshold=spec.mass_threshold,
        shape=shape,
        affine=affine,
    )
