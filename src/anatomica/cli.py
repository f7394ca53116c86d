"""The ``anatomica`` command line: one sub-command per job, each defined in ``anatomica.commands``.

Bad input ends with one line ``error: ...`` on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from anatomica.errors import AnatomicaError

app = typer.Typer(
    name="anatomica",
    help=(
        "Controllable generation of 3D anatomy.\n\n"
        "Typical path: `anatomica phantoms` (training data) -> `anatomica stats` (look at it) -> "
        "`anatomica train autoencoder` -> `anatomica train diffusion` -> `anatomica sample --task ...` "
        "(guided generation) -> `anatomica measure` (check a result against a task)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Each module adds its own commands to ``app``; imported here so `--help` lists them all.
    from anatomica.commands import demo, measure, phantoms, registers, sample, stats, train  # noqa: F401


def main() -> None:
    """Console entry point: typer reports usage errors itself (exit 2); expected failures become one clean line."""
    _register()
    try:
        app()
    except AnatomicaError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(2)
    except FileNotFoundError as e:
        typer.secho(f"error: {e.filename or e}: no such file or folder", fg="red", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.exit(130)
