"""Resolution presets of L-parsing: how many neural-field points stand for a control domain.

Two grids per preset (Anatomica's partial-decoding table, "Domain / Resolution"):

- ``local``: points per axis of a *localized* domain grid. Each domain keeps its own affine (R, s, t) and
  gets ``local`` points along every axis whose template size is > 1 (a box becomes local³, a plane
  local² × 1, a line local × 1 × 1). Only those points are decoded.
- ``coarse``: points per axis of a *coarse global* grid: the identity domain over the whole field of view at
  low resolution (paper, "coarse" L-parsing). The neural field is decoded there once; a global domain *is*
  that grid (potential and persistent homology run on the coarse³ grid, no upsampling to the task's grid),
  and any other domain is sliced from the coarse volume on its localized (``local``) grid.

=========  =======  =========================
preset     local    coarse (global grid)
=========  =======  =========================
low        12       16³
med        16       24³
high       24       32³
=========  =======  =========================

V-parsing has no preset: it decodes the full volume with the convolutional decoder at the model's resolution
and slices every domain on its task grid (the ``grid`` in the task YAML).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from anatomica.control.domain import ControlDomain, DomainBatch
from anatomica.control.potential import Task
from anatomica.errors import AnatomicaError


@dataclass(frozen=True)
class Resolution:
    name: str
    local: int  # points per non-singleton axis of a localized domain
    coarse: int  # points per axis of the coarse global grid

    @property
    def coarse_shape(self) -> tuple[int, int, int]:
        return (self.coarse,) * 3


PRESETS: dict[str, Resolution] = {
    "low": Resolution("low", local=12, coarse=16),
    "med": Resolution("med", local=16, coarse=24),
    "high": Resolution("high", local=24, coarse=32),
}


def get_resolution(name: str) -> Resolution:
    if name not in PRESETS:
        raise AnatomicaError(f"unknown resolution {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def local_size(size: tuple[int, ...], points: int) -> tuple[int, int, int]:
    """A template size with every axis > 1 set to ``points`` (planes and lines keep their size-1 axes)."""
    return tuple(points if n > 1 else 1 for n in size)


def parsed_size(domain: ControlDomain | DomainBatch, mode: str, resolution: Resolution | None) -> tuple[int, int, int]:
    """The grid a parsing mode reads a domain on (and runs its potential and persistent homology on): the task's
    grid for V, the localized grid for L-local, the coarse global grid (global domains) or the localized grid
    (others) for L-coarse."""
    if mode == "v" or resolution is None:
        return tuple(domain.size)
    if mode == "l-coarse" and domain.is_identity():
        return resolution.coarse_shape
    return local_size(domain.size, resolution.local)


def _mass_factor(size: tuple[int, ...]) -> float:
    """N · cell / box of a template grid: Π n / (n − 1) over its axes of size n > 1.

    A domain's grid includes the box's faces (points at ±1) and each point stands for one cell of side 2 / (n − 1),
    so its mass fraction m = Σ S / N (paper, "Geometric moments") is the occupied volume divided by N · cell, which
    depends on n: the same anatomy has m 12 % smaller on a 12³ grid than on a 24³ one. m × this factor does not.
    """
    factor = 1.0
    for n in size:
        if n > 1:
            factor *= n / (n - 1)
    return factor


def _resized(task: Task, sizes) -> Task:
    domains = []
    for d, size in zip(task.domains, sizes):
        size = tuple(int(n) for n in size)
        target = d.target
        if target.mass is not None and size != tuple(d.domain.size):  # the same physical mass on the new grid
            target = replace(target, mass=target.mass * (_mass_factor(tuple(d.domain.size)) / _mass_factor(size)))
        domains.append(replace(d, domain=d.domain.with_size(size), target=target))
    return replace(task, domains=domains)


def _regrid(task: Task, mode: str, resolution: Resolution) -> Task:
    return _resized(task, [parsed_size(d.domain, mode, resolution) for d in task.domains])


def on_grids_of(parsed: Task, task: Task) -> Task:
    """``parsed`` (a task as a parsing reads it, e.g. with kept targets measured on its grids) back on ``task``'s
    domain grids: the inverse of the re-gridding, mass targets rescaled to the same physical mass."""
    return _resized(parsed, [d.domain.size for d in task.domains])


def with_local_grids(task: Task, points: int) -> Task:
    """The same task with every domain re-gridded to ``points`` per non-singleton axis (same map and targets).

    Centroid and Σ / tr Σ are grid-independent and carry over; the mass fraction is not (``_mass_factor``), so
    mass targets are rescaled to the new grid to keep the same physical mass.
    """
    return _regrid(task, "l-local", Resolution("local", local=points, coarse=points))


def with_coarse_grids(task: Task, resolution: Resolution) -> Task:
    """The task as coarse L-parsing reads it: global domains on the preset's coarse grid (identity affine), the
    others on their localized grids, sliced from the coarse volume. Mass targets rescaled as in ``with_local_grids``."""
    return _regrid(task, "l-coarse", resolution)
