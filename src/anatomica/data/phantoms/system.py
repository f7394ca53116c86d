"""What a phantom system is: its label table, field of view, generator and the topology it is judged by."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from anatomica.errors import AnatomicaError
from anatomica.io.nifti import LabelMap

MIN_SIZE = 32
MAX_SIZE = 128


@dataclass(frozen=True)
class TopologyCheck:
    """A task-relevant topological property: the Betti numbers of the union of ``labels``.

    ``betti`` maps a dimension to its target (a case passes when every listed dimension matches);
    ``None`` means the Betti numbers are reported without a target.
    """

    name: str
    labels: list[str]
    betti: dict[int, int] | None


@dataclass(frozen=True)
class PhantomSystem:
    """One anatomical system: ``generate(rng, size)`` draws one case as (LabelMap, ground-truth flags)."""

    name: str
    labels: dict[str, int]
    fov_mm: float
    generate: Callable[[np.random.Generator, int], tuple[LabelMap, dict]]
    topology_checks: list[TopologyCheck] = field(default_factory=list)
    description: str = ""


def check_size(size: int) -> int:
    """Grid sizes the phantoms are designed (and tested) for: their topology holds from 32³ to 128³."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise AnatomicaError(f"size must be an integer number of voxels, got {size!r}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise AnatomicaError(f"size must be between {MIN_SIZE} and {MAX_SIZE} voxels per side, got {size}")
    return int(size)
