"""Lightning's checkpoint I/O through safetensors trees (``io.checkpoint``): atomic, checksummed, pickle-free."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO

from anatomica.io.checkpoint import load_tree, save_tree


class SafetensorsCheckpointIO(CheckpointIO):
    """Lightning checkpoint I/O through :func:`save_tree` / :func:`load_tree`: atomic, checksummed, pickle-free."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        save_tree(path, checkpoint)

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_tree(path)

    def remove_checkpoint(self, path) -> None:
        Path(path).unlink(missing_ok=True)
