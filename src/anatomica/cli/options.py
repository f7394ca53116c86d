"""Option types shared by every command: one parser each for threads, seeds, integer lists and numbers."""

from __future__ import annotations

import math

import typer

from anatomica.errors import AnatomicaError

THREADS_HELP = "Torch CPU threads (default: torch's choice). Results are reproducible for the same seed and thread count."
SEED_HELP = "Random seed (an integer >= 0): same seed, same result."
OVERWRITE_HELP = "Replace an existing, non-empty --out as a whole (the new output is built beside it and swapped in when complete)."


def threads_option(help: str = THREADS_HELP):
    return typer.Option(None, "--threads", help=help)


def set_threads(threads: int | None) -> None:
    """``--threads``: an error below 1, never a silent clamp."""
    if threads is None:
        return
    if threads < 1:
        raise AnatomicaError(f"--threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def check_seed(seed: int, what: str = "--seed") -> int:
    if seed < 0 or seed >= 2**63:
        raise AnatomicaError(f"{what} must be an integer in [0, 2^63), got {seed}")
    return seed


def int_list(text: str, what: str, minimum: int = 1) -> tuple[int, ...]:
    """'32,64,64' -> (32, 64, 64); every entry an integer >= ``minimum``."""
    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise AnatomicaError(f"{what}: expected comma-separated integers, got {text!r}") from None
    if not vals or any(v < minimum for v in vals):
        raise AnatomicaError(f"{what}: expected integers >= {minimum}, got {text!r}")
    return vals


def check_number(value: float | None, what: str, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float | None:
    """A finite number within [low, high] (``*_open``: the bound itself excluded); None passes."""
    if value is None:
        return None
    if not math.isfinite(value):
        raise AnatomicaError(f"{what} must be a finite number, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise AnatomicaError(f"{what} must be {'>' if low_open else '>='} {low:g}, got {value:g}")
    if high is not None and (value > high or (high_open and value == high)):
        raise AnatomicaError(f"{what} must be {'<' if high_open else '<='} {high:g}, got {value:g}")
    return value


def check_count(value: int | None, what: str, minimum: int = 1) -> int | None:
    if value is not None and value < minimum:
        raise AnatomicaError(f"{what} must be >= {minimum}, got {value}")
    return value
