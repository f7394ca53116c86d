"""`anatomica models`: the models that ship inside the package, with what they model and how well."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from anatomica.io.files import json_text


def models(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List the packaged models: name (use it as `--model NAME`), anatomy, grid size, labels and the recorded
    quality (reconstruction Dice of both decoders on held-out phantoms; unguided realism against held-out phantoms:
    1-NNA and FMD with 95 % bootstrap intervals, 0.5 / 0 ideal; the share of samples and of data meeting the
    anatomy's topological task). How each was trained and measured: docs/pretrained.md.

    Example: anatomica sample --model heart32 --n 4 --steps 20 --out samples
    """
    from anatomica.model import model_card
    from anatomica.pretrained import packaged_card, packaged_models

    cards = [{**model_card(name), "realism": packaged_card(name)} for name in packaged_models()]
    if as_json:
        typer.echo(json_text(cards))
        return
    table = Table(title="packaged models (`--model NAME`)")
    for col in ("name", "anatomy", "grid", "voxel mm", "labels", "Dice conv / field", "prior steps", "1-NNA [95 % CI]", "FMD [95 % CI]",
                "topological task", "meets it: samples / data"):
        table.add_column(col, justify="left" if col in ("name", "anatomy", "topological task") else "right")
    for c in cards:
        dice = c["reconstruction_dice"]
        table.add_row(c["name"], c["anatomy"], "×".join(map(str, c["shape"])), "×".join(f"{s:g}" for s in c["spacing_mm"]),
                      str(len(c["labels"])), f"{dice['conv']:.3f} / {dice['field']:.3f}" if dice else "—", str(c["diffusion_steps"]),
                      *_realism(c["realism"]))
    Console(width=max(Console().width, 175)).print(table)


def _realism(card: dict | None) -> tuple[str, str, str, str]:
    """The card's 1-NNA, FMD, task and task-topology cells ("—" when the model was not measured)."""
    if card is None:
        return "—", "—", "—", "—"
    nna, f, t = card["one_nna_all_foreground"], card["fmd"], card["task_topology"]
    pct = lambda r: f"{100 * r['rate']:.0f} %"  # noqa: E731
    return (f"{nna['one_nna']:.2f} [{nna['ci95'][0]:.2f}, {nna['ci95'][1]:.2f}] (n={card['n_per_side']})",
            f"{f['fmd']:.1f} [{f['ci95'][0]:.1f}, {f['ci95'][1]:.1f}]",
            t["task"], f"{pct(t['samples'])} / {pct(t['data'])}")
