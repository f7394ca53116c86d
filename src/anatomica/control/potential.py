"""The anatomical potential of a resolved task: L = (1/K) Σ_k λ_geo·L_geo,k + λ_topo·L_topo,k (paper, Eq. "potential").

A :class:`Task` holds, per control domain k, the classes to union (channels = label values), the
:class:`ControlDomain`, geometric targets (loss units, see ``moments``) and an optional Betti prior. It parses
substructures from full-grid logits (V-parsing), from logits at the domain points (L-parsing), from
probabilities or from a label array, and evaluates the potential on them. Build one from a YAML spec with
``anatomica.control.spec.resolve_task``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from anatomica.control.domain import ControlDomain
from anatomica.control.moments import GeometryTarget, geometry_loss, moments
from anatomica.control.parsing import label_union, parse_point_logits, slice_domain, softmax_t, subset
from anatomica.control.topology import topology_loss
from anatomica.errors import AnatomicaError


@dataclass
class Weights:
    """λ_geo, λ_topo and the three geometric weights λ0 (mass), λ1 (centroid), λ2 (covariance)."""

    geometry: float = 1.0
    topology: float = 1.0
    mass: float = 1.0
    centroid: float = 1.0
    covariance: float = 1.0


@dataclass
class DomainTask:
    """One control domain of a task: S_k = T^s[X_k](U[channels](probabilities)), its targets and Betti prior."""

    name: str
    channels: tuple[int, ...]
    domain: ControlDomain
    target: GeometryTarget = field(default_factory=GeometryTarget)
    betti: tuple[int, int, int] | None = None


@dataclass
class Task:
    """A resolved control task; ``shape``/``affine`` are the volume frame the targets were resolved in."""

    name: str
    domains: list[DomainTask]
    weights: Weights = field(default_factory=Weights)
    temperature: float = 1.0
    mass_threshold: float = 1e-3
    shape: tuple[int, int, int] | None = None
    affine: np.ndarray | None = None

    def points(self, dtype: torch.dtype = torch.float32, device=None) -> list[torch.Tensor]:
        """Normalized domain points (N_k, 3) per domain: where an L-parsing decoder must be queried."""
        return [d.domain.points(dtype, device) for d in self.domains]

    def parse_probabilities(self, probs: torch.Tensor) -> list[torch.Tensor]:
        """Class probabilities (B, C, X, Y, Z) -> [S_k (B, α, β, γ)]."""
        return [slice_domain(subset(probs, d.channels), d.domain) for d in self.domains]

    def parse_volume(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """V-parsing of full-grid logits (B, C, X, Y, Z) at the task's temperature -> [S_k]."""
        return self.parse_probabilities(softmax_t(logits, self.temperature))

    def parse_point_logits(self, logits: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """L-parsing: logits (B, C, N_k) at ``points()[k]`` per domain, at the task's temperature -> [S_k]."""
        if len(logits) != len(self.domains):
            raise AnatomicaError(f"task {self.name!r} has {len(self.domains)} domains, got logits for {len(logits)}")
        return [parse_point_logits(x, d.channels, d.domain, self.temperature) for x, d in zip(logits, self.domains)]

    def parse_label_array(self, array: np.ndarray, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
        """A label array (X, Y, Z) as one-hot probabilities -> [S_k (1, α, β, γ)]."""
        return [slice_domain(label_union(array, d.channels, dtype), d.domain) for d in self.domains]

    def potential(self, substructures: Sequence[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L (B,) and its terms (each (B,)): per domain '<name>/mass|centroid|covariance|geometry|topology'
        (unweighted within the domain) and the weighted averages 'geometry' and 'topology' (L = their sum)."""
        if len(substructures) != len(self.domains):
            raise AnatomicaError(f"task {self.name!r} has {len(self.domains)} domains, got {len(substructures)} substructures")
        w = self.weights
        lam = (w.mass, w.centroid, w.covariance)
        B = substructures[0].shape[0]
        geo = substructures[0].new_zeros(B)
        topo = substructures[0].new_zeros(B)
        terms: dict[str, torch.Tensor] = {}
        for d, S in zip(self.domains, substructures):
            if tuple(S.shape[1:]) != d.domain.size:
                raise AnatomicaError(f"domain {d.name!r}: expected S of shape (B, {', '.join(map(str, d.domain.size))}), got {tuple(S.shape)}")
            if w.geometry > 0 and any(t is not None for t in (d.target.mass, d.target.centroid, d.target.covariance)):
                g, parts = geometry_loss(moments(S, d.domain.points(S.dtype, S.device)), d.target, lam, self.mass_threshold)
                terms.update({f"{d.name}/{k}": v for k, v in parts.items()})
                terms[f"{d.name}/geometry"] = g
                geo = geo + g
            if w.topology > 0 and d.betti is not None:
                t = topology_loss(S, d.betti)
                terms[f"{d.name}/topology"] = t
                topo = topo + t
        K = len(self.domains)
        terms["geometry"] = w.geometry * geo / K
        terms["topology"] = w.topology * topo / K
        return terms["geometry"] + terms["topology"], terms
