"""Shapes with known topology for tests, on non-cubic arrays."""

from __future__ import annotations

import numpy as np


def grid(shape):
    return np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij")


def ball(shape, centre, radius) -> np.ndarray:
    x, y, z = grid(shape)
    return (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 <= radius**2


def solid_torus(shape, centre, major, minor) -> np.ndarray:
    """Ring around axis 0."""
    x, y, z = grid(shape)
    r = np.sqrt((y - centre[1]) ** 2 + (z - centre[2]) ** 2)
    return (r - major) ** 2 + (x - centre[0]) ** 2 <= minor**2


def oblique_affine(spacing=(0.8, 1.3, 2.1), angle=0.4, origin=(-40.0, 12.5, 7.0)) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.array([[1.0, 0, 0], [0, np.cos(0.3), -np.sin(0.3)], [0, np.sin(0.3), np.cos(0.3)]])
    A = np.eye(4)
    A[:3, :3] = R @ np.diag(spacing)
    A[:3, 3] = origin
    return A


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run the ``anatomica`` entry point in-process; returns (exit code, stdout, stderr)."""
    import sys

    from anatomica.cli.app import main

    old = sys.argv
    sys.argv = ["anatomica", *map(str, args)]
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = old
    out, err = capsys.readouterr()
    return code, out, err
