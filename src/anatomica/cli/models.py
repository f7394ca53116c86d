"""`anatomica models`: the models that ship inside the package, with what they model and how well."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from anatomica.io.files import json_text


def models(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List the packaged models: name (use it as `--model NAME`), anatomy, grid size, labels and the recorded
    quality (reconstruction Dice of both decoders on held-out phantoms).

    Example: anatomica sample --model heart32 --n 4 --steps 20 --out samples
    """
    from anatomica.model import model_card
    from anatomica.pretrained import packaged_models

    cards = [model_card(name) for name in packaged_models()]
    if as_json:
        typer.echo(json_text(cards))
        return
    table = Table(title="packaged models (`--model NAME`)")
    for col in ("name", "anatomy", "grid", "voxel mm", "labels", "Dice conv / field", "prior steps"):
        table.add_column(col, justify="left" if col in ("name", "anatomy", "labels") else "right")
    for c in cards:
        dice = c["reconstruction_dice"]
        table.add_row(c["name"], c["anatomy"], "×".join(map(str, c["shape"])), "×".join(f"{s:g}" for s in c["spacing_mm"]),
                      ", ".join(c["labels"]), f"{dice['conv']:.3f} / {dice['field']:.3f}" if dice else "—", str(c["diffusion_steps"]))
    Console(width=max(Console().width, 140)).print(table)
