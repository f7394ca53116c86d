"""Procedural anatomy phantoms: one module per anatomical system, registered in ``SYSTEMS``."""

from __future__ import annotations

from anatomica.data.phantoms import aorta, coronary, heart, spine
from anatomica.data.phantoms.generate import case_rng, generate_dataset
from anatomica.data.phantoms.system import PhantomSystem, TopologyCheck
from anatomica.errors import AnatomicaError

SYSTEMS: dict[str, PhantomSystem] = {m.SYSTEM.name: m.SYSTEM for m in (heart, aorta, spine, coronary)}


def get_system(name: str) -> PhantomSystem:
    if name not in SYSTEMS:
        raise AnatomicaError(f"unknown phantom system {name!r} (choose from {', '.join(SYSTEMS)})")
    return SYSTEMS[name]


__all__ = ["SYSTEMS", "PhantomSystem", "TopologyCheck", "case_rng", "generate_dataset", "get_system"]
