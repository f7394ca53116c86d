"""The YAML schema of a control task (pydantic), its loading with one-line errors, and placements that place
themselves (``Placement.place``; the geometry is ``control.placement``).

The schema is documented with examples in docs/tasks.md; ``control.resolution`` turns a :class:`TaskSpec`,
a reference label map and a volume frame into a resolved ``Task``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, Union

import numpy as np
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from anatomica.control.domain import ORTHO_TOL, ControlDomain, place_global
from anatomica.control.placement import contact_region, place_box, place_explicit_mm, place_lines, place_planes
from anatomica.coords import voxel_to_normalized
from anatomica.errors import AnatomicaError
from anatomica.frame import Frame

Vec3 = tuple[float, float, float]
Mat3 = tuple[Vec3, Vec3, Vec3]
NAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"
PLACEMENT_KINDS = ("global", "box", "planes", "lines", "explicit")
MAX_GRID_AXIS = 1024  # points per template axis
MAX_GRID_POINTS = 256**3  # points per domain: every one is decoded, measured and held in float64 coordinates


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # a NaN or an infinity is never a meaningful target


@dataclass
class PlacementContext:
    """What a placement sees while resolving one domain: its spec, the reference label map (or None) with
    label names mapped to the reference's values, and the reference's frame (mm)."""

    domain: DomainSpec
    reference: object | None  # a LabelMap (array, affine, labels)
    value_of: Callable[[str], int]
    volume: Frame | None = None  # the frame of the volumes the task applies to (mm placements without a reference)

    def require_reference(self, kind: str) -> None:
        if self.reference is None:
            raise AnatomicaError(
                f"domain {self.domain.name!r}: placement '{kind}' is computed from a reference segmentation; give one (--reference)")

    @property
    def frame(self) -> Frame:
        return Frame.of(self.reference)

    def mask(self, names: Sequence[str] | None) -> np.ndarray:
        """The reference's voxels of the union of ``names`` (default: the domain's labels)."""
        return np.isin(self.reference.array, [self.value_of(n) for n in (names or self.domain.labels)])


# --- placements --------------------------------------------------------------------------------------------


class GlobalPlacement(_Model):
    """The whole volume on a coarse grid."""

    kind: Literal["global"]

    def labels_used(self) -> list[str]:
        return []

    def place(self, ctx: PlacementContext) -> list[ControlDomain]:
        return [place_global(ctx.domain.grid, ctx.domain.name)]


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

    def labels_used(self) -> list[str]:
        return list(self.around or [])

    def place(self, ctx: PlacementContext) -> list[ControlDomain]:
        ctx.require_reference(self.kind)
        d = ctx.domain
        if self.contact:
            m = contact_region(ctx.mask(self.around[:1]), ctx.mask(self.around[1:]), self.contact_radius)
            if not m.any():
                raise AnatomicaError(f"domain {d.name!r}: labels {self.around[0]!r} and {self.around[1]!r} do not touch in the reference")
        else:
            m = ctx.mask(self.around)
        return [place_box(m, d.grid, self.margin, self.oriented, d.name, frame=ctx.frame)]


class PlanesPlacement(_Model):
    """Planes perpendicular to a label's centerline at arc-length fractions (one domain per fraction)."""

    kind: Literal["planes"]
    along: list[str] | None = None
    fractions: list[Annotated[float, Field(ge=0, le=1)]] = Field(min_length=1)
    margin: float = Field(1.0, ge=0)
    start_near: list[str] | None = None

    def labels_used(self) -> list[str]:
        return list(self.along or []) + list(self.start_near or [])

    def place(self, ctx: PlacementContext) -> list[ControlDomain]:
        ctx.require_reference(self.kind)
        d = ctx.domain
        start = None
        if self.start_near:
            ijk = np.argwhere(ctx.mask(self.start_near))
            if len(ijk) == 0:
                raise AnatomicaError(f"domain {d.name!r}: 'start_near' labels are absent from the reference")
            start = voxel_to_normalized(torch.from_numpy(ijk.mean(axis=0)), ctx.reference.array.shape).numpy()
        return place_planes(ctx.mask(self.along), d.grid, self.fractions, self.margin, start, d.name, frame=ctx.frame)


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

    def labels_used(self) -> list[str]:
        return list(self.center or []) + list(self.reach or [])

    def place(self, ctx: PlacementContext) -> list[ControlDomain]:
        ctx.require_reference(self.kind)
        d = ctx.domain
        reach = ctx.mask(self.reach) if self.reach else ctx.mask(self.center) | ctx.mask(d.labels)
        return place_lines(ctx.mask(self.center), reach, d.grid, self.directions, self.count, self.normal, self.start_angle_deg,
                           self.length_mm, margin=self.margin, name=d.name, frame=ctx.frame)


class ExplicitPlacement(_Model):
    """A domain given directly: in normalized coordinates, X = R·diag(s)·X_temp + t (``rotation``, ``scale``,
    ``translation``, the ControlDomain fields), or in world millimetres (``centre_mm``, ``half_size_mm`` and
    ``axes``: rows are orthonormal world directions of the template axes), mapped through the volume's frame so
    the domain is orthogonal in mm whatever the spacing and shape."""

    kind: Literal["explicit"]
    rotation: Mat3 = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    scale: Vec3 | None = None
    translation: Vec3 = (0.0, 0.0, 0.0)
    centre_mm: Vec3 | None = None
    half_size_mm: Vec3 | None = None
    axes: Mat3 = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))

    @field_validator("scale", "half_size_mm")
    @classmethod
    def _positive(cls, v, info: ValidationInfo):
        if v is not None and min(v) <= 0:
            raise ValueError(f"{info.field_name} must be > 0 on every axis, got {list(v)}")
        return v

    @field_validator("rotation", "axes")
    @classmethod
    def _orthonormal(cls, v, info: ValidationInfo):
        R = np.asarray(v, dtype=np.float64)
        err = np.abs(R.T @ R - np.eye(3)).max()
        if err > ORTHO_TOL:
            raise ValueError(f"{info.field_name} is not orthonormal (max |RᵀR − I| = {err:.3g})")
        if np.linalg.det(R) < 0:
            raise ValueError(f"{info.field_name} has determinant −1 (a reflection), use a proper rotation")
        return v

    @model_validator(mode="after")
    def _one_form(self):
        metric = self.centre_mm is not None or self.half_size_mm is not None
        if metric and self.scale is not None:
            raise ValueError("an explicit placement takes scale (normalized) or centre_mm + half_size_mm (mm), not both")
        if metric and (self.centre_mm is None or self.half_size_mm is None):
            raise ValueError("a placement in mm needs both centre_mm and half_size_mm")
        if not metric and self.scale is None:
            raise ValueError("an explicit placement needs scale (normalized coordinates) or centre_mm + half_size_mm (mm)")
        return self

    def labels_used(self) -> list[str]:
        return []

    def place(self, ctx: PlacementContext) -> list[ControlDomain]:
        if self.centre_mm is not None:
            return [place_explicit_mm(ctx.domain.grid, self.centre_mm, self.half_size_mm, np.asarray(self.axes), ctx.volume, ctx.domain.name)]
        return [ControlDomain(ctx.domain.grid, self.rotation, self.scale, self.translation, ctx.domain.name)]


Placement = Annotated[
    Union[GlobalPlacement, BoxPlacement, PlanesPlacement, LinesPlacement, ExplicitPlacement],
    Field(discriminator="kind"),
]


# --- targets -----------------------------------------------------------------------------------------------


class MassTarget(_Model):
    """``scale`` × the reference's mass in the domain, an absolute ``value`` (mL / mm² / mm), or ``keep: true``:
    the sample's own mass when guidance starts (see :class:`Targets`)."""

    scale: float | None = Field(None, gt=0)
    value: float | None = Field(None, ge=0)
    keep: bool = False

    @model_validator(mode="after")
    def _one(self):
        if (self.scale is not None) + (self.value is not None) + self.keep != 1:
            raise ValueError("mass target needs exactly one of 'scale', 'value' and 'keep: true'")
        return self


class CentroidTarget(_Model):
    """The reference's centroid (``{}``), shifted by ``offset_mm``, an absolute ``value_mm``, or ``keep: true``
    (the sample's own centroid when guidance starts)."""

    offset_mm: Vec3 | None = None
    value_mm: Vec3 | None = None
    keep: bool = False

    @model_validator(mode="after")
    def _not_both(self):
        if (self.offset_mm is not None) + (self.value_mm is not None) + self.keep > 1:
            raise ValueError("centroid target takes one of 'offset_mm', 'value_mm' and 'keep: true'")
        return self


class CovarianceTarget(_Model):
    """The reference's shape and orientation (``{}``), an absolute ``value_mm2``, or ``keep: true`` (the sample's
    own when guidance starts); compared as Σ / tr Σ."""

    value_mm2: Mat3 | None = None
    keep: bool = False

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

    @model_validator(mode="after")
    def _not_both(self):
        if self.value_mm2 is not None and self.keep:
            raise ValueError("covariance target takes 'value_mm2' or 'keep: true', not both")
        return self


class Targets(_Model):
    """A domain's targets. ``keep: true`` (mass, centroid, covariance) holds a moment at the sample's own value:
    measured on the sample's unguided twin (the same noise sampled without guidance) at the end of its
    trajectory and fixed while guiding (``control.potential.Task.keep_targets``), so another term can act without
    moving, shrinking or reshaping what it keeps."""

    mass: MassTarget | None = None
    centroid: CentroidTarget | None = None
    covariance: CovarianceTarget | None = None
    betti: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]] | None = None

    @property
    def kept(self) -> tuple[str, ...]:
        """The moments held at the sample's own value (``keep: true``), in the order mass, centroid, covariance."""
        return tuple(k for k in ("mass", "centroid", "covariance") if getattr(self, k) is not None and getattr(self, k).keep)

    @property
    def is_relative(self) -> bool:
        """Whether a target is measured on the reference (mass scale, centroid {}/offset_mm, covariance {})."""
        return (self.mass is not None and self.mass.scale is not None) or (
            self.centroid is not None and self.centroid.value_mm is None and not self.centroid.keep
        ) or (self.covariance is not None and self.covariance.value_mm2 is None and not self.covariance.keep)


class DomainSpec(_Model):
    name: str = Field(pattern=NAME_PATTERN)
    labels: list[str] = Field(min_length=1)
    placement: Placement = Field(default_factory=lambda: GlobalPlacement(kind="global"))
    grid: tuple[Annotated[int, Field(ge=1, le=MAX_GRID_AXIS)], Annotated[int, Field(ge=1, le=MAX_GRID_AXIS)],
                Annotated[int, Field(ge=1, le=MAX_GRID_AXIS)]] = (32, 32, 32)
    targets: Targets = Field(default_factory=Targets)

    @field_validator("grid")
    @classmethod
    def _not_too_many_points(cls, v):
        if int(np.prod(v)) > MAX_GRID_POINTS:
            raise ValueError(f"a domain grid holds at most {MAX_GRID_POINTS} points (256³), got {list(v)}")
        return v

    def labels_used(self) -> list[str]:
        return list(self.labels) + self.placement.labels_used()


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
    # How the potential reads the anatomy when `anatomica sample` is given no --parsing (measured per task):
    parsing: Literal["v", "l-local", "l-coarse"] | None = None
    resolution: Literal["low", "med", "high"] | None = None  # L-parsing preset; only with an L parsing
    # Defaults of the realistic-topology options (issue 11 item 9; `anatomica sample` flags override them):
    sigma_window: tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]] | None = None  # [MIN, MAX]; MAX may be .inf
    normalize: float | None = Field(None, gt=0)  # ρ: per-step normalized shift (diffusion.guidance)
    clip: float | None = Field(None, gt=0)  # ρ: cap on the RMS of w·σ²·∇L (diffusion.guidance); not with normalize
    recurrence: int = Field(0, ge=0, le=8)  # re-noise / re-denoise rounds per guided call
    topology_loss: Literal["paper", "saddle"] = "paper"  # control.topology
    topology_margin: float = Field(0.1, ge=0, lt=0.5)

    model_config = ConfigDict(extra="forbid", allow_inf_nan=True)  # only sigma_window's MAX may be .inf

    @field_validator("sigma_window")
    @classmethod
    def _window(cls, v):
        if v is not None and (not np.isfinite(v[0]) or np.isnan(v[1]) or v[0] > v[1]):
            raise ValueError(f"sigma_window needs finite 0 <= MIN <= MAX, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _resolution_needs_l(self):
        if self.resolution is not None and self.parsing in (None, "v"):
            raise ValueError("guidance 'resolution' needs an L 'parsing' (l-local or l-coarse)")
        return self

    @model_validator(mode="after")
    def _one_step_rule(self):
        if self.normalize is not None and self.clip is not None:
            raise ValueError("guidance takes 'normalize' or 'clip', not both")
        return self

    @field_validator("normalize", "clip", "topology_margin")
    @classmethod
    def _finite(cls, v):
        if v is not None and not np.isfinite(v):
            raise ValueError(f"must be a finite number, got {v}")
        return v


class TaskSpec(_Model):
    name: str
    description: str = ""
    domains: list[DomainSpec] = Field(min_length=1)
    weights: WeightsSpec = Field(default_factory=WeightsSpec)
    guidance: GuidanceSpec | None = None
    temperature: float = Field(1.0, gt=0)  # τ of the topological term (paper: temperature for topological guidance)
    geometry_temperature: float = Field(1.0, gt=0)  # τ of the geometric term; 1 = the decoder's own probabilities
    mass_threshold: float = Field(1e-3, ge=0, lt=1)

    @field_validator("domains")
    @classmethod
    def _unique(cls, v):
        names = [d.name for d in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"domain names must be unique, repeated: {', '.join(dup)}")
        return v

    @property
    def needs_reference(self) -> bool:
        """Whether resolving the task needs a reference segmentation: a placement computed from one (box, planes,
        lines) or a target relative to it."""
        return any(d.placement.kind not in ("global", "explicit") or d.targets.is_relative for d in self.domains)


# --- loading -----------------------------------------------------------------------------------------------


def _loc(loc: Sequence) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in PLACEMENT_KINDS:
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
