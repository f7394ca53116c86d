"""Substructure parsing of a latent ẑ0: the task's S_k through a decoder's ``decode``/``query`` (paper, "Parsing").

- V-parsing: conv-decode ẑ0 to the full volume V̂ = D(ẑ0), softmax(·/τ), subset U[u], slice the domains
  T^s[X_k] on their task grids. Cost grows with the volume.
- L-parsing, *local*: query the neural-field decoder F(ẑ0, X_k) only at each domain's points (its own
  affine on the preset's local grid), softmax, subset. Cost grows with the domain points only.
- L-parsing, *coarse*: query F once on the preset's coarse global grid (identity affine over the field of
  view). A global domain is that grid itself, so its potential and persistent homology run at coarse³
  (16³ for 'low'), not on the task's grid; other domains are sliced from the coarse volume on their local grids.

A decoder is any object with ``decode(z) -> (B, C, X, Y, Z)`` logits and ``query(z, points) -> (B, C, N)``
logits at points (N, 3) shared by the batch or (B, N, 3) per sample, e.g. ``anatomica.model.ModelBundle``.
Every parser maps a latent (B, c, x, y, z) to [S_k (B, α, β, γ)], differentiably.

**Batched path**: with a stacked task (``control.potential.stack_tasks``: sample b has its own domains and
targets), V and L-coarse slice sample b at its own domains' points, and L-local sends the per-sample points
(B, N, 3) in one query, so samples paired with different references share one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from anatomica.control.potential import Substructure, Task, stack_tasks
from anatomica.coords import grid_points
from anatomica.errors import AnatomicaError
from anatomica.guided.resolution import Resolution, get_resolution, with_coarse_grids, with_local_grids

PARSINGS = ("v", "l-local", "l-coarse")


class Decoder(Protocol):
    def decode(self, z: Tensor) -> Tensor: ...

    def query(self, z: Tensor, points: Tensor) -> Tensor: ...


def v_parse(decoder: Decoder, task: Task, z: Tensor) -> list[Tensor | Substructure]:
    """V-parsing: full conv decode, then ``task.parse_volume`` (softmax, subset, slice on the task grids)."""
    return task.parse_volume(decoder.decode(z))


def l_local_parse(decoder: Decoder, task: Task, z: Tensor) -> list[Tensor | Substructure]:
    """L-parsing at the domains' own points: one field query for all domains together, split per domain.
    In a stacked task the points are per sample, (B, N, 3)."""
    points = task.points(z.dtype, z.device)
    if any(p.ndim == 3 for p in points):  # some domain differs per sample: every domain's points per sample
        points = [p.expand(z.shape[0], *p.shape) if p.ndim == 2 else p for p in points]
        query_points = torch.cat(points, dim=1)
    else:
        query_points = torch.cat(points)
    logits = decoder.query(z, query_points)
    return task.parse_point_logits(list(torch.split(logits, [p.shape[-2] for p in points], dim=2)))


def l_coarse_parse(decoder: Decoder, task: Task, z: Tensor, shape: tuple[int, int, int]) -> list[Tensor | Substructure]:
    """L-parsing on the coarse global grid of ``shape``: field logits there, then ``task.parse_volume`` (``task``
    re-gridded by ``with_coarse_grids``: a global domain is read as the grid itself, without interpolation)."""
    logits = decoder.query(z, grid_points(shape, z.dtype, z.device))
    return task.parse_volume(logits.reshape(*logits.shape[:2], *shape))


@dataclass
class Parsing:
    """A parsing mode bound to a decoder and a task: ``parsing(z) -> [S_k]``, ``parsing.potential(z) -> (L, terms)``.

    ``task`` is the task the substructures are scored with: the original one for V, or the same task re-gridded
    to the preset's grids for L-local / L-coarse (``guided.resolution``).
    """

    mode: str
    resolution: Resolution | None
    decoder: Decoder
    task: Task

    def __call__(self, z: Tensor) -> list[Tensor | Substructure]:
        if self.mode == "v":
            return v_parse(self.decoder, self.task, z)
        if self.mode == "l-local":
            return l_local_parse(self.decoder, self.task, z)
        return l_coarse_parse(self.decoder, self.task, z, self.resolution.coarse_shape)

    def potential(self, z: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The task's potential L (B,) and its terms on the parsed substructures of ẑ0."""
        S = self(z)
        return self.task.potential(S)


def make_parsing(decoder: Decoder, task: Task | Sequence[Task], mode: str, resolution: str | Resolution | None = None) -> Parsing:
    """Bind a parsing mode ('v', 'l-local', 'l-coarse') and an L resolution preset (default 'low'; V-parsing
    takes none) to a decoder and a resolved task — or a list of tasks, one per sample of the batch (stacked
    with ``stack_tasks``: sample b is scored with ``task[b]``)."""
    if mode not in PARSINGS:
        raise AnatomicaError(f"unknown parsing {mode!r}; choose one of {', '.join(PARSINGS)}")
    if not isinstance(task, Task):
        task = stack_tasks(task)
    if mode == "v":
        if resolution is not None:
            raise AnatomicaError("--resolution applies to L-parsing only (V-parsing decodes the full volume at the model's resolution)")
        return Parsing(mode, None, decoder, task)
    res = resolution if isinstance(resolution, Resolution) else get_resolution(resolution or "low")
    regridded = with_local_grids(task, res.local) if mode == "l-local" else with_coarse_grids(task, res)
    return Parsing(mode, res, decoder, regridded)
