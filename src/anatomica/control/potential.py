"""The anatomical potential of a resolved task: L = (1/K) Σ_k λ_geo·L_geo,k + λ_topo·L_topo,k (paper, Eq. "potential").

A :class:`Task` holds, per control domain k, the classes to union (channels = label values), the
:class:`ControlDomain`, geometric targets (loss units, see ``moments``) and an optional Betti prior. It parses
substructures from full-grid logits (V-parsing), from logits at the domain points (L-parsing), from
probabilities or from a label array, and evaluates the potential on them. Build one from a YAML spec with
``anatomica.control.resolution.resolve_task``.

**Temperature per family** (paper, "Topological guidance"): the softmax temperature τ (``temperature``)
softens the probabilities the *topological* term reads; the geometric term reads them at
``geometry_temperature`` (default 1, the decoder's own probabilities). A domain whose two families are both
active at different temperatures is parsed into a :class:`Substructure` pair, any other into one tensor.

**Per-sample targets in one batch**: :func:`stack_tasks` turns B resolved tasks (one per reference) into one
task whose domain k is a :class:`DomainBatch` and whose targets have a leading batch axis, so a batch mixes
samples paired with different references and sample b is scored against its own domains and targets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
import torch

from anatomica.control.domain import ControlDomain, DomainBatch
from anatomica.control.moments import GeometryTarget, geometry_loss, moments
from anatomica.control.parsing import label_union, parse_point_logits, slice_domain, softmax_t, subset
from anatomica.control.topology import topology_loss
from anatomica.errors import AnatomicaError
from anatomica.frame import Frame, as_frame


@dataclass
class Weights:
    """λ_geo, λ_topo and the three geometric weights λ0 (mass), λ1 (centroid), λ2 (covariance)."""

    geometry: float = 1.0
    topology: float = 1.0
    mass: float = 1.0
    centroid: float = 1.0
    covariance: float = 1.0


class Substructure(NamedTuple):
    """S_k of one domain read at the two families' temperatures (only when those differ)."""

    geometry: torch.Tensor
    topology: torch.Tensor


@dataclass
class DomainTask:
    """One control domain of a task: S_k = T^s[X_k](U[channels](probabilities)), its targets and Betti prior.

    ``domain`` is one :class:`ControlDomain` shared by every sample, or a :class:`DomainBatch` (one per sample,
    with targets of a leading batch axis) in a stacked task."""

    name: str
    channels: tuple[int, ...]
    domain: ControlDomain | DomainBatch
    target: GeometryTarget = field(default_factory=GeometryTarget)
    betti: tuple[int, int, int] | None = None

    @property
    def has_geometry_target(self) -> bool:
        """Whether L_geo has a term here: a target value, or a kept moment (measured when guidance starts)."""
        t = self.target
        return bool(t.keep) or any(x is not None for x in (t.mass, t.centroid, t.covariance))


@dataclass
class Task:
    """A resolved control task; ``shape``/``affine`` are the volume frame the targets were resolved in.

    ``temperature`` is τ of the topological term, ``geometry_temperature`` that of the geometric term."""

    name: str
    domains: list[DomainTask]
    weights: Weights = field(default_factory=Weights)
    temperature: float = 1.0
    mass_threshold: float = 1e-3
    shape: tuple[int, int, int] | None = None
    affine: np.ndarray | None = None
    geometry_temperature: float = 1.0
    topology_mode: str = "paper"  # L_topo of the paper, or 'saddle' (control.topology): hinge at 1/2 ± topology_margin
    topology_margin: float = 0.1
    batch: int | None = None  # B of a stacked task (``stack_tasks``): targets have a leading batch axis

    @property
    def frame(self) -> Frame | None:
        """The volume frame (shape + affine) the task was resolved in, if any."""
        return as_frame(self.shape, self.affine)

    @property
    def batch_size(self) -> int | None:
        """B for a stacked task (sample b has its own domains and targets), None for one task for any batch."""
        return self.batch

    # --- which temperature each domain is read at ---

    def _active(self, d: DomainTask) -> tuple[bool, bool]:
        return self.weights.geometry > 0 and d.has_geometry_target, self.weights.topology > 0 and d.betti is not None

    def temperatures(self, d: DomainTask) -> tuple[float, float | None]:
        """(τ the domain's S is read at, τ of a second read for the topological term or None)."""
        geo, topo = self._active(d)
        if topo and not geo:
            return self.temperature, None
        if geo and topo and self.temperature != self.geometry_temperature:
            return self.geometry_temperature, self.temperature
        return self.geometry_temperature, None

    def _read(self, d: DomainTask, at: Callable[[float], torch.Tensor]) -> torch.Tensor | Substructure:
        first, second = self.temperatures(d)
        S = at(first)
        return S if second is None else Substructure(S, at(second))

    # --- parsing ---

    def points(self, dtype: torch.dtype = torch.float32, device=None) -> list[torch.Tensor]:
        """Normalized domain points per domain: (N_k, 3), or (B, N_k, 3) in a stacked task — where an L-parsing
        decoder must be queried."""
        return [d.domain.points(dtype, device) for d in self.domains]

    def parse_probabilities(self, probs: torch.Tensor) -> list[torch.Tensor]:
        """Class probabilities (B, C, X, Y, Z) -> [S_k (B, α, β, γ)] (probabilities carry no temperature)."""
        return [slice_domain(subset(probs, d.channels), d.domain) for d in self.domains]

    def parse_volume(self, logits: torch.Tensor) -> list[torch.Tensor | Substructure]:
        """V-parsing of full-grid logits (B, C, X, Y, Z) at each family's temperature -> [S_k]."""
        cache: dict[float, torch.Tensor] = {}

        def probs(tau: float) -> torch.Tensor:
            if tau not in cache:  # one softmax per temperature for all domains
                cache[tau] = softmax_t(logits, tau)
            return cache[tau]

        return [self._read(d, lambda tau, d=d: slice_domain(subset(probs(tau), d.channels), d.domain)) for d in self.domains]

    def parse_point_logits(self, logits: Sequence[torch.Tensor]) -> list[torch.Tensor | Substructure]:
        """L-parsing: logits (B, C, N_k) at ``points()[k]`` per domain, at each family's temperature -> [S_k]."""
        if len(logits) != len(self.domains):
            raise AnatomicaError(f"task {self.name!r} has {len(self.domains)} domains, got logits for {len(logits)}")
        return [self._read(d, lambda tau, x=x, d=d: parse_point_logits(x, d.channels, d.domain, tau)) for x, d in zip(logits, self.domains)]

    def parse_label_array(self, array: np.ndarray, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
        """A label array (X, Y, Z) as one-hot probabilities -> [S_k (1, α, β, γ)] (one task, not a stacked one)."""
        if self.batch_size is not None:
            raise AnatomicaError(f"task {self.name!r} is stacked for a batch of {self.batch_size}: parse a label map with one sample's task (task.sample(b))")
        return [slice_domain(label_union(array, d.channels, dtype), d.domain) for d in self.domains]

    # --- the potential ---

    def potential(self, substructures: Sequence[torch.Tensor | Substructure]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L (B,) and its terms (each (B,)): per domain '<name>/mass|centroid|covariance|geometry|topology'
        (unweighted within the domain) and the weighted averages 'geometry' and 'topology' (L = their sum)."""
        if len(substructures) != len(self.domains):
            raise AnatomicaError(f"task {self.name!r} has {len(self.domains)} domains, got {len(substructures)} substructures")
        w = self.weights
        lam = (w.mass, w.centroid, w.covariance)
        pairs = [(S, S) if isinstance(S, torch.Tensor) else tuple(S) for S in substructures]
        first = pairs[0][0]
        B = first.shape[0]
        if self.batch_size is not None and B != self.batch_size:
            raise AnatomicaError(f"task {self.name!r} is stacked for {self.batch_size} samples, got a batch of {B}")
        geo = first.new_zeros(B)
        topo = first.new_zeros(B)
        terms: dict[str, torch.Tensor] = {}
        for d, (S_geo, S_topo) in zip(self.domains, pairs):
            for S in (S_geo, S_topo):
                if tuple(S.shape[1:]) != d.domain.size:
                    raise AnatomicaError(f"domain {d.name!r}: expected S of shape (B, {', '.join(map(str, d.domain.size))}), got {tuple(S.shape)}")
            use_geo, use_topo = self._active(d)
            if use_geo:
                g, parts = geometry_loss(moments(S_geo, d.domain.points(S_geo.dtype, S_geo.device)), d.target, lam, self.mass_threshold)
                terms.update({f"{d.name}/{k}": v for k, v in parts.items()})
                terms[f"{d.name}/geometry"] = g
                geo = geo + g
            if use_topo:
                t = topology_loss(S_topo, d.betti, self.topology_mode, self.topology_margin)
                terms[f"{d.name}/topology"] = t
                topo = topo + t
        K = len(self.domains)
        terms["geometry"] = w.geometry * geo / K
        terms["topology"] = w.topology * topo / K
        return terms["geometry"] + terms["topology"], terms

    # --- kept targets (task ``keep: true``) ---

    @property
    def pending(self) -> bool:
        """Whether some kept target still waits for the sample's own moments (``keep_targets``)."""
        return any(d.target.pending for d in self.domains)

    def keep_targets(self, substructures: Sequence[torch.Tensor | Substructure]) -> Task:
        """This task with every pending kept target set to each sample's own moment of its S_k, detached: the mass
        fraction m, centroid p and Σⁿ of ``moments`` (paper, "Geometric moments") on the S_k the geometric term
        reads. The result is stacked for the batch (every target gets a leading batch axis), so the kept terms of
        L_geo are 0 at these substructures and pull each sample back to its own moments, not to a population
        value. Measured on the grid the parsing reads (a re-gridded task's units); the guided run passes the
        sample's unguided twin (``guided.run.guided_batch``)."""
        if not self.pending:
            return self
        first = substructures[0] if isinstance(substructures[0], torch.Tensor) else substructures[0].geometry
        B = first.shape[0]
        if self.batch is not None and self.batch != B:
            raise AnatomicaError(f"task {self.name!r} is stacked for {self.batch} samples, got a batch of {B}")
        domains = []
        for d, S in zip(self.domains, substructures):
            t = d.target
            # an unstacked task's targets are shared: one copy per sample beside the kept ones
            values = {k: getattr(t, k) if self.batch is not None or getattr(t, k) is None
                      else getattr(t, k).to(torch.float64).expand(B, *getattr(t, k).shape) for k in _TARGET_FIELDS}
            if t.pending:
                S_geo = S if isinstance(S, torch.Tensor) else S.geometry
                with torch.no_grad():
                    mom = moments(S_geo.detach().double(), d.domain.points(torch.float64, S_geo.device))
                own = {"mass": mom.mass, "centroid": mom.centroid, "covariance": mom.normalized_covariance}
                values.update({k: own[k] for k in t.pending})
            domains.append(replace(d, target=replace(t, **values)))
        return replace(self, domains=domains, batch=B)

    # --- stacked tasks ---

    def sample(self, b: int) -> Task:
        """Sample b's own task out of a stacked one (itself for an unstacked task)."""
        if self.batch is None:
            return self
        if not 0 <= b < self.batch:
            raise AnatomicaError(f"task {self.name!r} is stacked for {self.batch} samples, no sample {b}")
        domains = []
        for d in self.domains:
            t = d.target
            target = replace(t, **{k: None if getattr(t, k) is None else getattr(t, k)[b] for k in _TARGET_FIELDS})
            domains.append(replace(d, domain=d.domain[b] if isinstance(d.domain, DomainBatch) else d.domain, target=target))
        return replace(self, domains=domains, batch=None)


_TARGET_FIELDS = ("mass", "centroid", "covariance")


def _same_domain(a: ControlDomain, b: ControlDomain) -> bool:
    return a.size == b.size and np.array_equal(a.matrix, b.matrix) and np.array_equal(a.translation, b.translation)


def _stack_target(targets: Sequence[GeometryTarget], name: str) -> GeometryTarget:
    if len({t.keep for t in targets}) != 1:
        raise AnatomicaError(f"domain {name!r}: the tasks to stack differ in which moments they keep")
    out: dict = {"keep": targets[0].keep}
    for k in _TARGET_FIELDS:
        values = [getattr(t, k) for t in targets]
        present = {v is not None for v in values}
        if len(present) != 1:
            raise AnatomicaError(f"domain {name!r}: the tasks to stack differ in whether they target {k}")
        out[k] = None if values[0] is None else torch.stack([v.to(torch.float64) for v in values])
    return GeometryTarget(**out)


def stack_tasks(tasks: Sequence[Task]) -> Task:
    """One task for a batch whose sample b is scored with ``tasks[b]``'s own domains and targets.

    The tasks must come from one spec (same domains, channels, grids, Betti priors, weights, temperatures and
    frame), e.g. one task per reference from ``resolve_task``. Domain k becomes a :class:`DomainBatch` (or stays
    one shared :class:`ControlDomain` when every task has the same one, e.g. a global domain) and its targets
    get a leading batch axis, so ``stack_tasks(ts).potential(S)[0][b] == ts[b].potential(S[b:b+1])[0]``.
    """
    tasks = list(tasks)
    if not tasks:
        raise AnatomicaError("stack_tasks needs at least one task")
    head = tasks[0]
    for t in tasks:
        if t.batch_size is not None:
            raise AnatomicaError(f"task {t.name!r} is stacked already")
        if [d.name for d in t.domains] != [d.name for d in head.domains]:
            raise AnatomicaError(f"tasks to stack have different domains: {[d.name for d in head.domains]} and {[d.name for d in t.domains]}")
        same = (t.name == head.name and t.weights == head.weights and t.temperature == head.temperature
                and t.geometry_temperature == head.geometry_temperature and t.mass_threshold == head.mass_threshold
                and t.topology_mode == head.topology_mode and t.topology_margin == head.topology_margin)
        if not same:
            raise AnatomicaError(f"tasks to stack must share name, weights, temperatures and mass threshold ({head.name!r} and {t.name!r})")
        if (t.frame is None) != (head.frame is None) or (t.frame is not None and (t.shape != head.shape or not np.array_equal(t.affine, head.affine))):
            raise AnatomicaError(f"tasks to stack were resolved in different volume frames ({head.name!r})")
    domains = []
    for k, d0 in enumerate(head.domains):
        ds = [t.domains[k] for t in tasks]
        if any(d.channels != d0.channels or d.betti != d0.betti or d.domain.size != d0.domain.size for d in ds):
            raise AnatomicaError(f"domain {d0.name!r}: the tasks to stack differ in labels, Betti prior or grid")
        doms = [d.domain for d in ds]
        dom = d0.domain if all(_same_domain(x, d0.domain) for x in doms) else DomainBatch(tuple(doms))
        domains.append(DomainTask(d0.name, d0.channels, dom, _stack_target([d.target for d in ds], d0.name), d0.betti))
    return replace(head, domains=domains, batch=len(tasks))
