"""Output folders: checked before any work, built beside the old one and swapped in only when complete.

A command that writes a folder calls :func:`check_output_dir` while it validates its input (so a bad
``--out`` fails before any compute), then writes into :func:`staged_output`'s temporary sibling. On
success the old folder (if ``--overwrite``) is replaced as a whole — nothing is merged; on any failure or
interrupt the old folder is untouched and the temporary one removed. Leftovers of a killed run are
removed by the next run on the same ``--out``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from anatomica.errors import AnatomicaError

STAGE_PREFIX = ".tmp-"
OLD_PREFIX = ".old-"
_INTERRUPT_NOTE = ["nothing was written"]


def set_interrupt_note(text: str) -> None:
    """What the command line says was kept if the user presses Ctrl-C from now on."""
    _INTERRUPT_NOTE[0] = text


def interrupt_note() -> str:
    return _INTERRUPT_NOTE[0]


def umask_mode(base: int) -> int:
    """``base`` (0o666 files, 0o777 folders) with the process umask applied, as ``open``/``mkdir`` would."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def _existing_ancestor(path: Path) -> Path:
    p = path.absolute()
    while not p.exists():
        p = p.parent
    return p


def check_writable_target(path: Path, what: str = "--out") -> None:
    """``path`` (file or folder to create) can be written: no file where a folder must go, parent writable."""
    path = Path(path)
    anc = _existing_ancestor(path.parent)
    if not anc.is_dir():
        raise AnatomicaError(f"{path}: cannot create {what} below {anc}, which is a file")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise AnatomicaError(f"{path}: cannot write {what}: {anc} is not writable")


def check_output_dir(out: Path, overwrite: bool, hint: str = "pass --overwrite to replace it") -> Path:
    """Refuse an ``--out`` that is a file, lies below a file, cannot be written, or is a non-empty folder
    without ``overwrite``. Touches nothing."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AnatomicaError(f"{out}: exists and is not a folder")
    check_writable_target(out)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise AnatomicaError(f"{out}: exists and is not empty ({hint})")
    set_interrupt_note(f"{out} is as it was" if out.exists() else f"nothing written to {out}")
    return out


def remove_stale(out: Path) -> None:
    """Remove temporary siblings a killed earlier run on ``out`` left behind."""
    out = Path(out)
    parent = out.parent
    if not parent.is_dir():
        return
    for p in parent.iterdir():
        # An old copy is only stale once ``out`` exists again (a kill between the two renames of a swap
        # leaves the old copy as the only one: keep it).
        if p.name.startswith(f"{STAGE_PREFIX}{out.name}-") or (p.name.startswith(f"{OLD_PREFIX}{out.name}-") and out.exists()):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


@contextmanager
def staged_output(out: Path, overwrite: bool, hint: str = "pass --overwrite to replace it") -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; on success it becomes ``out`` (replacing it whole), on failure
    it is removed and ``out`` is as it was."""
    out = check_output_dir(out, overwrite, hint)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out)
    stage = Path(tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{out.name}-", dir=out.parent))
    os.chmod(stage, umask_mode(0o777))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f"{OLD_PREFIX}{out.name}-", dir=out.parent))
        os.rmdir(old)
        os.rename(out, old)
    os.rename(stage, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
