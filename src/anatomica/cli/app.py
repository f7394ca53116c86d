"""The ``anatomica`` command line, assembled here from the command modules of ``anatomica.cli``.

Command modules define plain functions and sub-apps; only this module knows the top-level app, so no
command imports another. Bad input ends with one line ``error: ...`` on stderr and exit code 2.
"""

from __future__ import annotations

import sys

import typer

from anatomica.allocator import keep_freed_memory
from anatomica.errors import AnatomicaError

HELP = (
    "Controllable generation of 3D anatomy.\n\n"
    "Typical path: `anatomica phantoms` (training data) -> `anatomica stats` (look at it) -> "
    "`anatomica train autoencoder` -> `anatomica train diffusion` -> `anatomica sample --task ...` "
    "(guided generation) -> `anatomica measure` (check a result against a task)."
)


def build_app() -> typer.Typer:
    """The top-level app with every command registered (imported here so `--help` lists them all)."""
    from anatomica.cli import demo, export, import_, measure, models, phantoms, registers, sample, stats, train

    app = typer.Typer(name="anatomica", help=HELP, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    app.command("phantoms")(phantoms.phantoms)
    app.command("stats")(stats.stats)
    app.add_typer(train.train_app, name="train")
    app.command("sample")(sample.sample)
    app.command("measure")(measure.measure)
    app.command("models")(models.models)
    app.add_typer(registers.registers_app, name="registers")
    app.command("demo")(demo.demo)
    app.add_typer(export.export_app, name="export")
    app.add_typer(import_.import_app, name="import")
    return app


def main() -> None:
    """Console entry point: every expected failure — usage errors included — becomes one ``error:`` line, exit 2;
    Ctrl-C one line saying what was kept, exit 130."""
    import typer.main
    from typer import Abort
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    from anatomica.io.output import interrupt_note

    keep_freed_memory()  # long sampling/training loops reuse the same large tensors (anatomica.allocator)
    command = typer.main.get_command(build_app())
    try:
        code = command.main(prog_name="anatomica", standalone_mode=False)
    except NoArgsIsHelpError:  # typer has printed the help already
        code = 0
    except UsageError as e:
        hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
        _fail(f"{e.format_message()}{hint}")
    except ClickException as e:
        _fail(e.format_message())
    except AnatomicaError as e:
        _fail(str(e))
    except FileNotFoundError as e:
        _fail(f"{e.filename or e}: no such file or folder")
    except (KeyboardInterrupt, Abort):
        code = 130
    if code == 130:
        typer.secho(f"interrupted; {interrupt_note()}", err=True)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str) -> None:
    typer.secho(f"error: {' '.join(message.split())}", fg="red", err=True)
    sys.exit(2)
