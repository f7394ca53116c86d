"""Weights and training state on disk: safetensors + JSON, never pickle.

Three pieces:
- ``save_tensors`` / ``load_tensors``: one ``.safetensors`` file whose header carries JSON metadata and a
  SHA-256 of the tensor bytes, so truncation *and* silent corruption fail with one line.
- ``save_weights`` / ``load_weights``: model weights plus a ``config.json`` beside them that says what the
  weights are (``kind``) and how to rebuild the module; ``load_module_state`` checks keys and shapes.
- ``flatten_tree`` / ``save_tree`` / ``load_tree``: any nest of dicts (int or str keys), lists, tuples,
  tensors, numbers and strings (an optimizer state, a Lightning checkpoint) as tensors + a JSON skeleton;
  ``training.checkpoint_io`` plugs that into Lightning so resume state never goes through pickle.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from anatomica.errors import AnatomicaError
from anatomica.io.files import write_json

FORMAT = "anatomica"
FORMAT_VERSION = 1
_META_KEY = "anatomica"


# --- single file: tensors + metadata + content hash -------------------------------------------------


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> Path:
    """Write ``tensors`` with JSON ``metadata`` into one safetensors file, atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # clone: safetensors refuses tensors that share storage (views, tied weights)
    clean = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    header = {"format": FORMAT, "version": FORMAT_VERSION, "sha256": _digest(clean), "meta": metadata or {}}
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=path.parent)
    os.close(fd)
    try:
        save_file(clean, tmp, metadata={_META_KEY: json.dumps(header, allow_nan=True)})
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a file written by :func:`save_tensors`; any damage becomes one :class:`AnatomicaError` line."""
    path = Path(path)
    if not path.is_file():
        raise AnatomicaError(f"{path}: no such checkpoint file")
    if path.stat().st_size < 8:
        raise AnatomicaError(f"{path}: truncated checkpoint ({path.stat().st_size} bytes)")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(_META_KEY)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise AnatomicaError(f"{path}: corrupted or truncated checkpoint ({_first_line(e)})") from None
    if raw is None:
        raise AnatomicaError(f"{path}: not an anatomica checkpoint (no '{_META_KEY}' metadata)")
    try:
        header = json.loads(raw)
    except json.JSONDecodeError:
        raise AnatomicaError(f"{path}: corrupted checkpoint metadata") from None
    if header.get("format") != FORMAT or header.get("version") != FORMAT_VERSION:
        raise AnatomicaError(f"{path}: unsupported checkpoint format {header.get('format')!r} version {header.get('version')!r}")
    if _digest(tensors) != header.get("sha256"):
        raise AnatomicaError(f"{path}: corrupted checkpoint (tensor data does not match its checksum)")
    return tensors, header.get("meta", {})


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


# --- weights + config.json ------------------------------------------------------------------------


def save_weights(folder: str | Path, module_or_state, config: dict, kind: str, name: str = "model") -> Path:
    """``folder/<name>.safetensors`` + ``folder/config.json`` (``{"kind": kind, "format_version": 1, ...config}``)."""
    folder = Path(folder)
    state = module_or_state.state_dict() if isinstance(module_or_state, torch.nn.Module) else dict(module_or_state)
    save_tensors(folder / f"{name}.safetensors", state, {"kind": kind})
    write_json({"kind": kind, "format_version": FORMAT_VERSION, **config}, folder / "config.json")
    return folder


def read_config(folder: str | Path, kind: str | None = None) -> dict:
    """``folder/config.json`` checked for format version and (optionally) ``kind``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AnatomicaError(f"{folder}: no such run folder")
    path = folder / "config.json"
    if not path.is_file():
        raise AnatomicaError(f"{folder}: not a run folder (no config.json)")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AnatomicaError(f"{path}: not valid JSON ({_first_line(e)})") from None
    if not isinstance(config, dict) or config.get("format_version") != FORMAT_VERSION:
        raise AnatomicaError(f"{path}: unsupported config (format_version {config.get('format_version') if isinstance(config, dict) else None!r})")
    if kind is not None and config.get("kind") != kind:
        raise AnatomicaError(f"{folder}: holds a {config.get('kind')!r} model, expected {kind!r}")
    return config


def load_weights(folder: str | Path, kind: str | None = None, name: str = "model") -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, config) from a folder written by :func:`save_weights`, validated."""
    config = read_config(folder, kind)
    tensors, meta = load_tensors(Path(folder) / f"{name}.safetensors")
    if meta.get("kind") != config.get("kind"):
        raise AnatomicaError(f"{folder}: weights are for {meta.get('kind')!r} but config.json says {config.get('kind')!r}")
    return tensors, config


def load_module_state(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``module.load_state_dict(state)`` with keys and shapes checked first, failures as one line."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise AnatomicaError(f"{source}: weights do not match the configured model: {', '.join(parts)}")
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise AnatomicaError(f"{source}: tensor {k} has shape {tuple(state[k].shape)}, the configured model expects {tuple(v.shape)}")
    module.load_state_dict(state, strict=True)


# --- nested training state (optimizer, loops, RNG) -------------------------------------------------


def flatten_tree(obj: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nest into (tensors by generated name, JSON-able skeleton referencing them)."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(o: Any) -> Any:
        if isinstance(o, torch.Tensor):
            key = f"t{len(tensors)}"
            tensors[key] = o
            return {"__tensor__": key}
        if isinstance(o, np.ndarray):
            key = f"t{len(tensors)}"
            tensors[key] = torch.from_numpy(np.ascontiguousarray(o))
            return {"__ndarray__": key}
        if isinstance(o, dict):
            return {"__dict__": [[_key(k), walk(v)] for k, v in o.items()]}
        if isinstance(o, tuple | torch.Size):
            return {"__tuple__": [walk(v) for v in o]}
        if isinstance(o, list):
            return [walk(v) for v in o]
        if isinstance(o, bool) or o is None or isinstance(o, str):
            return o
        if isinstance(o, int | np.integer):
            return int(o)
        if isinstance(o, float | np.floating):
            f = float(o)
            return f if math.isfinite(f) else {"__float__": repr(f)}
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"cannot store a {type(o).__name__} in a checkpoint (tensors, numbers, strings and containers only)")

    def _key(k: Any) -> Any:
        if isinstance(k, bool) or not isinstance(k, int | str):
            raise TypeError(f"checkpoint dict keys must be str or int, got {type(k).__name__}")
        return k

    return tensors, walk(obj)


def unflatten_tree(tensors: dict[str, torch.Tensor], skeleton: Any) -> Any:
    """Inverse of :func:`flatten_tree`."""

    def walk(o: Any) -> Any:
        if isinstance(o, list):
            return [walk(v) for v in o]
        if isinstance(o, dict):
            if "__tensor__" in o:
                return tensors[o["__tensor__"]]
            if "__ndarray__" in o:
                return tensors[o["__ndarray__"]].numpy()
            if "__dict__" in o:
                return {k: walk(v) for k, v in o["__dict__"]}
            if "__tuple__" in o:
                return tuple(walk(v) for v in o["__tuple__"])
            if "__float__" in o:
                return float(o["__float__"])
        return o

    try:
        return walk(skeleton)
    except (KeyError, TypeError, ValueError) as e:
        raise AnatomicaError(f"corrupted checkpoint structure ({_first_line(e)})") from None


def save_tree(path: str | Path, obj: Any) -> Path:
    tensors, skeleton = flatten_tree(obj)
    return save_tensors(path, tensors, {"tree": skeleton})


def load_tree(path: str | Path) -> Any:
    tensors, meta = load_tensors(path)
    if "tree" not in meta:
        raise AnatomicaError(f"{path}: not a training-state checkpoint (holds plain weights)")
    return unflatten_tree(tensors, meta["tree"])
