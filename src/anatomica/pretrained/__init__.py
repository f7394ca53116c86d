"""Models that ship inside the package, so the demo and first experiments need no training and no download.

Each is a run folder (config.json + safetensors) addressable by name wherever ``--model`` is taken
(``anatomica models`` lists them; docs/pretrained.md says how each was trained and what it measures).
"""

from __future__ import annotations

import json
from pathlib import Path

from anatomica.errors import AnatomicaError

ROOT = Path(__file__).parent


def packaged_models() -> list[str]:
    """Names of the packaged model runs."""
    return sorted(p.name for p in ROOT.iterdir() if (p / "config.json").is_file() and (p / "model.safetensors").is_file())


def pretrained_path(name: str = "heart32") -> Path:
    """Folder of a packaged model run, usable wherever a ``--model RUN`` is expected."""
    if name not in packaged_models():
        raise AnatomicaError(f"no packaged model {name!r} (available: {', '.join(packaged_models()) or 'none'})")
    return ROOT / name


def packaged_card(name: str) -> dict | None:
    """The model's measured realism (``card.json``, written by benchmarks/model_card.py), or None when not measured."""
    card = pretrained_path(name) / "card.json"
    return json.loads(card.read_text()) if card.is_file() else None
