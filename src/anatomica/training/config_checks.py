"""Range checks of the training configurations' numbers: finite, right sign, in range, before any run starts."""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass

from anatomica.errors import AnatomicaError

# field name -> (option shown to the user, lowest, highest, lowest excluded); None = unbounded
RULES: dict[str, tuple[str, float | None, float | None, bool]] = {
    "steps": ("--steps", 1, None, False),
    "batch_size": ("--batch-size", 1, None, False),
    "lr": ("--lr", 0.0, 10.0, True),
    "kl_weight": ("--kl-weight", 0.0, None, False),
    "field_points": ("--field-points", 1, None, False),
    "seed": ("--seed", 0, 2**63 - 1, False),
    "val_fraction": ("--val-fraction", 0.0, 0.99, False),
    "checkpoint_every": ("--checkpoint-every", 1, None, False),
    "log_every": ("log_every", 1, None, False),
    "ema_decay": ("--ema-decay", 0.0, 0.999999, False),
    "P_mean": ("P_mean", -10.0, 10.0, False),
    "P_std": ("P_std", 0.0, 10.0, True),
    "boundary_fraction": ("--boundary-fraction", 0.0, 1.0, False),
}


def check_value(name: str, value) -> None:
    """One training-config field finite and in its range (``RULES``), the error naming its option."""
    what, low, high, low_open = RULES[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AnatomicaError(f"{what} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise AnatomicaError(f"{what} must be a finite number, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise AnatomicaError(f"{what} must be {'>' if low_open else '>='} {low:g}, got {value:g}")
    if high is not None and value > high:
        raise AnatomicaError(f"{what} must be <= {high:g}, got {value:g}")


def check_train_config(config) -> None:
    """Every numeric field of a training config dataclass finite and in its range (one line naming the option)."""
    assert is_dataclass(config)
    for f in fields(config):
        if f.name in RULES:
            check_value(f.name, getattr(config, f.name))
