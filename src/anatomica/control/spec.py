"""Task specs: the schema (``control.schema``) and its resolution into a ``Task`` (``control.resolution``).

Kept as one import point for callers that want both: ``from anatomica.control.spec import load_task, resolve_task``.
"""

from anatomica.control.resolution import resolve_targets, resolve_task
from anatomica.control.schema import (
    BoxPlacement,
    DomainSpec,
    ExplicitPlacement,
    GlobalPlacement,
    LinesPlacement,
    PlanesPlacement,
    Targets,
    TaskSpec,
    load_task,
    packaged_tasks,
    parse_task,
)

__all__ = [
    "BoxPlacement", "DomainSpec", "ExplicitPlacement", "GlobalPlacement", "LinesPlacement", "PlanesPlacement", "TaskSpec",
    "Targets", "load_task", "packaged_tasks", "parse_task", "resolve_targets", "resolve_task",
]
