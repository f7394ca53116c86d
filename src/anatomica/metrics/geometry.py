"""How far a label map is from a control task: geometric target errors and Betti agreement, per domain.

The paper's geometric table (shared/paper_tables.md, "Geometric control") reports the L1 distance between
the moments of a sample's substructure and the target, with coordinates normalized to [0, 1]. Here, per
control domain k, the sample's label map is read as one-hot probabilities, the union of the domain's labels
is sliced on the domain grid (the path ``anatomica measure`` takes) and measured with the potential's moments
(``anatomica.control.measure``, paper Eq. "moments"):

- ``mass``: |m − m*|, m = the fraction of the domain's points that are occupied (the potential's unit);
- ``centroid``: mean over the three axes of |p − p*|, coordinates mapped from [-1, 1] to [0, 1];
- ``covariance``: mean over the nine entries of |Σⁿ − Σⁿ*|, Σⁿ = Σ / tr Σ (dimensionless: shape and
  orientation, the quantity the covariance target constrains).

The paper prints them ×1e5, ×1e4 and ×1e5 (``PAPER_SCALE``); its mass normalization is not published, so
compare ratios between methods, not absolute values. Betti numbers are those of the **label map itself** in
the domain, at the map's own grid (``control.measure.label_map_betti``), as in ``anatomica measure``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from anatomica.control.measure import geometry_errors, label_map_betti
from anatomica.control.potential import Task
from anatomica.control.topology import squeeze_domain
from anatomica.homology import betti_numbers

PAPER_SCALE = {"mass": 1e5, "centroid": 1e4, "covariance": 1e5}

__all__ = ["PAPER_SCALE", "betti_accuracy", "geometry_errors", "substructure_betti", "task_errors"]


def substructure_betti(S: torch.Tensor) -> list[list[int]]:
    """[b0, b1, b2] of {S ≥ ½} for each of a batch of (soft) substructures (B, α, β, γ), on their domain grid:
    what the guidance sees; a label map's own Betti numbers come from ``task_errors``."""
    return [betti_numbers(squeeze_domain(s).detach().cpu().numpy() >= 0.5) for s in S]


def task_errors(task: Task, array: np.ndarray) -> dict[str, dict]:
    """Per domain of ``task``: geometric errors (floats, for the targeted moments) and, with a Betti prior,
    the label map's Betti numbers in the domain and whether each matches, for one label array (X, Y, Z)."""
    out: dict[str, dict] = {}
    for d, S in zip(task.domains, task.parse_label_array(array, torch.float64)):
        row: dict = {k: float(v[0]) for k, v in geometry_errors(S, d.domain.points(torch.float64), d.target).items()}
        if d.betti is not None:
            betti = label_map_betti(array, d.channels, d.domain)
            row["betti"] = betti
            row["betti_match"] = [bool(b == t) for b, t in zip(betti, d.betti)]
        out[d.name] = row
    return out


def betti_accuracy(measured: Sequence[Sequence[int]], prior: Sequence[int]) -> list[float]:
    """Share of samples whose B_d equals the prior's, for d = 0, 1, 2 (the paper's topological table)."""
    m = np.asarray(measured, dtype=np.int64).reshape(-1, 3)
    if len(m) == 0:
        return [float("nan")] * 3
    return [float(np.mean(m[:, d] == int(prior[d]))) for d in range(3)]
