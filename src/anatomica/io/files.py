"""Files on disk: atomic writes (temp file in the same folder, then rename) and JSON."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from anatomica.io.output import umask_mode


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, umask_mode(0o666))  # mkstemp makes 0600; outputs get the mode the umask gives
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def json_safe(obj):
    """``obj`` with every non-finite float (NaN, ±Infinity: not JSON) replaced by null, numpy scalars as Python."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:  # numpy / torch scalars
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def json_text(obj) -> str:
    """Strict JSON (no NaN/Infinity tokens), indented, as every JSON file and ``--json`` output is written."""
    return json.dumps(json_safe(obj), indent=2, allow_nan=False)


def write_json(obj, path: str | Path) -> Path:
    path = Path(path)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json_text(obj) + "\n"))
    return path
