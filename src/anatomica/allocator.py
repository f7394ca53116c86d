"""Keep freed memory in the process: glibc otherwise returns every large tensor to the OS when it is freed,
and the next guided call faults the same pages back in (measured: ~45 % of V-parsing's CPU time at ≥ 64³).

``keep_freed_memory()`` sets glibc's ``M_MMAP_MAX = 0`` (large blocks come from the heap, not per-block mmap)
and a large ``M_TRIM_THRESHOLD`` (the heap is not shrunk after each free) through ``mallopt``, the in-process
equivalent of ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=…``. Elsewhere (musl, macOS, Windows) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt takes: the heap is in practice never trimmed

_done: list[bool] = []


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse; True if the settings took effect. Idempotent."""
    if _done:
        return _done[0]
    ok = False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        ok = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):
        ok = False
    _done.append(ok)
    return ok
