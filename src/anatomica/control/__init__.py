"""Control: domains, placement, parsing, moments, persistent homology, the anatomical potential, the task
schema and its resolution, and the measurement of a label map on a task (no model inside).

label map / probabilities -> U[u] subset -> T^s[X_k] slicing -> S_k -> moments, persistence -> potential L.
"""

from anatomica.control.domain import ControlDomain, DomainBatch, domain_mask, place_global
from anatomica.control.measure import DomainMeasure, measure_domain, measure_label_map
from anatomica.control.moments import GeometryTarget, Moments, decompose, geometry_loss, moments
from anatomica.control.parsing import parse_point_logits, parse_volume, slice_domain, subset
from anatomica.control.placement import place_box, place_lines, place_planes
from anatomica.control.potential import DomainTask, Substructure, Task, Weights, stack_tasks
from anatomica.control.resolution import resolve_task
from anatomica.control.schema import TaskSpec, load_task, parse_task
from anatomica.control.topology import betti_from_diagram, superlevel_diagram, topology_loss

__all__ = [
    "ControlDomain",
    "DomainBatch",
    "DomainMeasure",
    "DomainTask",
    "GeometryTarget",
    "Moments",
    "Substructure",
    "Task",
    "TaskSpec",
    "Weights",
    "betti_from_diagram",
    "decompose",
    "domain_mask",
    "geometry_loss",
    "load_task",
    "measure_domain",
    "measure_label_map",
    "moments",
    "parse_point_logits",
    "parse_task",
    "parse_volume",
    "place_box",
    "place_global",
    "place_lines",
    "place_planes",
    "resolve_task",
    "slice_domain",
    "stack_tasks",
    "subset",
    "superlevel_diagram",
    "topology_loss",
]
