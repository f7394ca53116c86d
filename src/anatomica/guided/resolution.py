"""Resolution presets of L-parsing: how many neural-field points stand for a control domain.

Two grids per preset (Anatomica's partial-decoding table, "Domain / Resolution"):

- ``local``: points per axis of a *localized* domain grid. Each domain keeps its own affine (R, s, t) and
  gets ``local`` points along every axis whose template size is > 1 (a box becomes local³, a plane
  local² × 1, a line local × 1 × 1). Only those points are decoded.
- ``coarse``: points per axis of a *coarse global* grid (identity affine over the whole field of view). The
  neural field is decoded there and the domains are sliced from that small volume on the task's own grids
  (as in V-parsing), which keeps whole-volume structures for topology.

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

from anatomica.control.domain import ControlDomain
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


def with_local_grids(task: Task, points: int) -> Task:
    """The same task with every domain re-gridded to ``points`` per non-singleton axis (same R, s, t, targets).

    Targets are in grid-independent units (mass fraction of the domain, normalized centroid, Σ / tr Σ), so they
    carry over unchanged.
    """
    domains = []
    for d in task.domains:
        dom = d.domain
        resized = ControlDomain(local_size(dom.size, points), dom.rotation, dom.scale, dom.translation, dom.name)
        domains.append(replace(d, domain=resized))
    return replace(task, domains=domains)
