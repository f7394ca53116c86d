"""Files on disk: atomic writes (temp file in the same folder, then rename) and JSON."""

from __future__ import annotations

import json
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


def write_json(obj, path: str | Path) -> Path:
    path = Path(path)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2) + "\n"))
    return path
