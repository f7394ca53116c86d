"""Control: domains, parsing, moments, persistent homology and the anatomical potential (no model inside).

label map / probabilities -> U[u] subset -> T^s[X_k] slicing -> S_k -> moments, persistence -> potential L.
"""

from anatomica.control.domain import ControlDomain, place_box, place_global, place_lines, place_planes
from anatomica.control.moments import GeometryTarget, Moments, decompose, geometry_loss, moments
from anatomica.control.parsing import parse_point_logits, parse_volume, slice_domain, subset
from anatomica.control.potential import DomainTask, Task, Weights
from anatomica.control.spec import TaskSpec, load_task, parse_task, resolve_task
from anatomica.control.topology import betti_from_diagram, superlevel_diagram, topology_loss

__all__ = [
    "ControlDomain",
    "DomainTask",
    "GeometryTarget",
    "Moments",
    "Task",
    "TaskSpec",
    "Weights",
    "betti_from_diagram",
    "decompose",
    "geometry_loss",
    "load_task",
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
    "subset",
    "superlevel_diagram",
    "topology_loss",
]
