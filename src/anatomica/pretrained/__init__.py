"""Models that ship inside the package, so the demo and first experiments need no training and no download.

``heart32``: autoencoder + EDM latent diffusion trained on 32³ heart phantoms (see docs/models.md for the
training command, the logs and the reconstruction Dice of both decoders).
"""

from __future__ import annotations

from pathlib import Path

from anatomica.errors import AnatomicaError

ROOT = Path(__file__).parent


def pretrained_path(name: str = "heart32") -> Path:
    """Folder of a packaged model run, usable wherever a ``--model RUN`` is expected."""
    path = ROOT / name
    if not (path / "config.json").is_file():
        available = sorted(p.name for p in ROOT.iterdir() if (p / "config.json").is_file())
        raise AnatomicaError(f"no packaged model {name!r} (available: {', '.join(available) or 'none'})")
    return path
