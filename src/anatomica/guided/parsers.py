"""Substructure parsing of a latent ẑ0: the task's S_k through a decoder's ``decode``/``query`` (paper, "Parsing").

- V-parsing: conv-decode ẑ0 to the full volume V̂ = D(ẑ0), softmax(·/τ), subset U[u], slice the domains
  T^s[X_k] on their task grids. Cost grows with the volume.
- L-parsing, *local*: query the neural-field decoder F(ẑ0, X_k) only at each domain's points (its own
  affine, a small grid from the resolution preset), softmax, subset. Cost grows with the domain points only.
- L-parsing, *coarse*: query F on a small global grid (identity affine), then slice the domains from that
  coarse volume on their task grids, as V-parsing does.

A decoder is any object with ``decode(z) -> (B, C, X, Y, Z)`` logits and ``query(z, points (N, 3)) -> (B, C, N)``
logits, e.g. ``anatomica.training.bundle.ModelBundle``. Every parser maps a latent (B, c, x, y, z) to
[S_k (B, α, β, γ)], differentiably.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from anatomica.control.potential import Task
from anatomica.coords import grid_points
from anatomica.errors import AnatomicaError
from anatomica.guided.resolution import Resolution, get_resolution, with_local_grids

PARSINGS = ("v", "l-local", "l-coarse")

class Decoder(Protocol):
    def decode(self, z: Tensor) -> Tensor: ...

    def query(self, z: Tensor, points: Tensor) -> Tensor: ...


def v_parse(decoder: Decoder, task: Task, z: Tensor) -> list[Tensor]:
    """V-parsing: full conv decode, then ``task.parse_volume`` (softmax, subset, slice on the task grids)."""
    return task.parse_volume(decoder.decode(z))


def l_local_parse(decoder: Decoder, task: Task, z: Tensor) -> list[Tensor]:
    """L-parsing at the domains' own points: one field query for all domains together, split per domain."""
    points = task.points(z.dtype, z.device)
    logits = decoder.query(z, torch.cat(points))
    return task.parse_point_logits(list(torch.split(logits, [len(p) for p in points], dim=2)))


def l_coarse_parse(decoder: Decoder, task: Task, z: Tensor, shape: tuple[int, int, int]) -> list[Tensor]:
    """L-parsing on a coarse global grid of ``shape``: field logits there, then ``task.parse_volume``."""
    logits = decoder.query(z, grid_points(shape, z.dtype, z.device))
    return task.parse_volume(logits.reshape(*logits.shape[:2], *shape))


@dataclass
class Parsing:
    """A parsing mode bound to a decoder and a task: ``parsing(z) -> [S_k]``, ``parsing.potential(z) -> (L, terms)``.

    ``task`` is the task the substructures are scored with: the original one, or for L-local the same task
    re-gridded to the preset's local grids.
    """

    mode: str
    resolution: Resolution | None
    decoder: Decoder
    task: Task

    def __call__(self, z: Tensor) -> list[Tensor]:
        if self.mode == "v":
            return v_parse(self.decoder, self.task, z)
        if self.mode == "l-local":
            return l_local_parse(self.decoder, self.task, z)
        return l_coarse_parse(self.decoder, self.task, z, self.resolution.coarse_shape)

    def potential(self, z: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The task's potential L (B,) and its terms on the parsed substructures of ẑ0."""
        return self.task.potential(self(z))


def make_parsing(decoder: Decoder, task: Task, mode: str, resolution: str | Resolution | None = None) -> Parsing:
    """Bind a parsing mode ('v', 'l-local', 'l-coarse') and an L resolution preset (default 'low'; V-parsing
    takes none) to a decoder and a resolved task."""
    if mode not in PARSINGS:
        raise AnatomicaError(f"unknown parsing {mode!r}; choose one of {', '.join(PARSINGS)}")
    if mode == "v":
        if resolution is not None:
            raise AnatomicaError("--resolution applies to L-parsing only (V-parsing decodes the full volume at the model's resolution)")
        return Parsing(mode, None, decoder, task)
    res = resolution if isinstance(resolution, Resolution) else get_resolution(resolution or "low")
    return Parsing(mode, res, decoder, with_local_grids(task, res.local) if mode == "l-local" else task)
