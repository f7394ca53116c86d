"""The ``anatomica`` command line, assembled here from the command modules of ``anatomica.cli``.

Command modules define plain functions and sub-apps; only this module knows the top-level app, so no
command imports another. Bad input ends with one line ``error: ...`` on stderr and exit code 2.
"""

from __future__ import annotations

import sys

import typer

from anatomica.errors import AnatomicaError

HELP = (
    "Controllable generation of 3D anatomy.\n\n"
    "Typical path: `anatomica phantoms` (training data) -> `anatomica stats` (look at it) -> "
    "`anatomica train autoencoder` -> `anatomica train diffusion` -> `anatomica sample --task ...` "
    "(guided generation) -> `anatomica measure` (check a result against a task)."
)


def build_app() -> typer.Typer:
    """The top-level app with every command registered (imported here so `--help` lists them all)."""
    from anatomica.cli import demo, measure, models, phantoms, registers, sample, stats, train

    app = typer.Typer(name="anatomica", help=HELP, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    app.command("phantoms")(phantoms.phantoms)
    app.command("stats")(stats.stats)
    app.add_typer(train.train_app, name="train")
    app.command("sample")(sample.sample)
    app.command("measure")(measure.measure)
    app.command("models")(models.models)
    app.add_typer(registers.registers_app, name="registers")
    app.command("demo")(demo.demo)
    return app


def main() -> None:
    """Console entry point: typer reports usage errors itself (exit 2); expected failures become one clean line."""
    app = build_app()
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
