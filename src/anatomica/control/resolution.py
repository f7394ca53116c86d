"""Resolution of a task spec: spec + reference label map + volume frame -> a resolved :class:`Task`.

Every domain is placed by its placement (``Placement.place``: from the reference for ``box``/``planes``/
``lines``, in mm), label names become channels, and targets are converted to loss units
(``anatomica.control.moments``): relative targets (mass ``scale``, centroid ``offset_mm`` or ``{}``,
covariance ``{}``) are measured on the reference inside the same domain; absolute ones (mass ``value`` in
mL / mm² / mm for volume / plane / line domains, centroid ``value_mm``, covariance ``value_mm2``) go through
the volume's frame (``anatomica.frame``); kept ones (``keep: true``) are left for the sample itself to give:
its unguided twin's (``Task.keep_targets``, called by ``guided.run.guided_batch``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from anatomica.control.domain import ControlDomain
from anatomica.control.moments import GeometryTarget, moments
from anatomica.control.parsing import label_union, slice_domain
from anatomica.control.potential import DomainTask, Task, Weights
from anatomica.control.schema import DomainSpec, PlacementContext, TaskSpec
from anatomica.errors import AnatomicaError
from anatomica.frame import Frame


def _check_labels(spec: TaskSpec, label_table: dict[str, int]) -> None:
    for d in spec.domains:
        for n in d.labels_used():
            if n not in label_table:
                known = ", ".join(sorted(label_table)) or "none"
                raise AnatomicaError(f"domain {d.name!r}: unknown label {n!r} (known: {known})")


def _check_betti(dom: ControlDomain, betti: tuple[int, int, int] | None) -> None:
    if betti is None:
        return
    for k in range(dom.dim, 3):
        if betti[k] > 0:
            raise AnatomicaError(f"domain {dom.name!r}: betti[{k}] = {betti[k]} is impossible on a {dom.dim}D domain (grid {list(dom.size)})")


def resolve_targets(d: DomainSpec, dom: ControlDomain, reference, ref_values: Sequence[int], frame: Frame,
                    threshold: float) -> GeometryTarget:
    """The domain's geometric targets in loss units: mass fraction, normalized centroid, Σⁿ (trace 1)."""
    t = d.targets
    ref = None
    if t.is_relative:
        if reference is None:
            raise AnatomicaError(f"domain {d.name!r}: a relative target (mass scale, centroid {{}}/offset_mm or covariance {{}}) needs a reference segmentation (--reference)")
        S = slice_domain(label_union(reference.array, ref_values, torch.float64), dom)
        ref = moments(S, dom.points(torch.float64))
        if float(ref.mass[0]) < threshold:
            raise AnatomicaError(f"domain {dom.name!r}: the reference has (almost) no {'+'.join(d.labels)} inside the domain, relative targets are undefined")
    out = GeometryTarget(keep=t.kept)  # kept moments stay None: measured on the sample when guidance starts
    if t.mass is not None and not t.mass.keep:
        if t.mass.scale is not None:
            out.mass = t.mass.scale * ref.mass[0]
        else:
            out.mass = torch.tensor(t.mass.value / dom.mass_scale(frame), dtype=torch.float64)
    if t.centroid is not None and not t.centroid.keep:
        if t.centroid.value_mm is not None:
            out.centroid = torch.from_numpy(frame.from_world(np.asarray(t.centroid.value_mm, dtype=np.float64)))
        else:
            world = Frame.of(reference).to_world(ref.centroid[0].numpy())
            if t.centroid.offset_mm is not None:
                world = world + np.asarray(t.centroid.offset_mm, dtype=np.float64)
            out.centroid = torch.from_numpy(frame.from_world(world))
    if t.covariance is not None and not t.covariance.keep:
        if t.covariance.value_mm2 is not None:
            Minv = frame.inverse_linear
            C = Minv @ np.asarray(t.covariance.value_mm2, dtype=np.float64) @ Minv.T
            out.covariance = torch.from_numpy(C / np.trace(C))
        else:
            out.covariance = ref.normalized_covariance[0]
    return out


def resolve_task(
    spec: TaskSpec,
    reference,
    label_table: dict[str, int],
    shape: Sequence[int],
    affine: np.ndarray,
) -> Task:
    """Place every domain, map label names to channels (= label values) and turn targets into loss units.

    ``shape`` and ``affine`` describe the volumes the task will be applied to (they convert mm and mL);
    ``reference`` (a ``LabelMap`` of the same field of view, any resolution) places ``box``/``planes``/``lines``
    domains and gives relative targets.
    """
    frame = Frame(tuple(int(n) for n in shape), np.asarray(affine, dtype=np.float64))
    _check_labels(spec, label_table)
    if reference is not None:
        Frame.of(reference).check_same_field_of_view(frame)

    def ref_value(name: str) -> int:
        # By name, never by number: a value the reference's table gives another organ must not stand in.
        # A reference without any table is read in ``label_table``'s numbering (callers say so).
        if reference is None or not reference.labels:
            return label_table[name]
        if name not in reference.labels:
            raise AnatomicaError(f"the reference's label table has no {name!r} (it names {', '.join(reference.labels)}); "
                                 "the task reads labels by name")
        return int(reference.labels[name])

    domains: list[DomainTask] = []
    for d in spec.domains:
        channels = tuple(int(label_table[n]) for n in d.labels)
        for dom in d.placement.place(PlacementContext(d, reference, ref_value, frame)):
            if dom.inside_fraction() == 0.0:
                raise AnatomicaError(f"domain {dom.name!r} lies entirely outside the volume (normalized coordinates beyond [-1, 1])")
            _check_betti(dom, d.targets.betti)
            target = resolve_targets(d, dom, reference, [ref_value(n) for n in d.labels], frame, spec.mass_threshold)
            domains.append(DomainTask(dom.name, channels, dom, target, d.targets.betti))
    w = spec.weights
    return Task(
        name=spec.name,
        domains=domains,
        weights=Weights(w.geometry, w.topology, w.mass, w.centroid, w.covariance),
        temperature=spec.temperature,
        mass_threshold=spec.mass_threshold,
        shape=frame.shape,
        affine=frame.affine,
        geometry_temperature=spec.geometry_temperature,
    )
