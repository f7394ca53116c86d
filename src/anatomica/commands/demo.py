"""`anatomica demo`: the main job on its embedded default, end to end on a fresh machine."""

from __future__ import annotations

from pathlib import Path

import typer

from anatomica.cli import app


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Folder for everything the demo writes; re-running reuses finished steps."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same result)."),
) -> None:
    """Generate a small heart phantom dataset and print its statistics and topology rates."""
    from anatomica.commands.stats import stats
    from anatomica.data.phantoms import generate_dataset

    data = out / "heart_phantoms"
    if (data / "dataset.json").is_file():
        typer.echo(f"[demo] reusing {data}")
    else:
        typer.echo(f"[demo] generating 24 heart phantoms (48³) into {data}")
        generate_dataset("heart", n=24, size=48, seed=seed, out=data)
    typer.echo("[demo] anatomica stats " + str(data))
    stats(path=data, labels=None, as_json=False, no_betti=False)
