"""`anatomica demo`: the main job on its embedded default, end to end on a fresh machine.

Every step is the CLI command a user would type (printed before it runs), so the demo doubles as a
walk-through; a finished step is reused when the demo runs again.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from anatomica.errors import AnatomicaError


def _run(args: list[str], done: Path | None = None) -> None:
    """Run one `anatomica …` command in a fresh process, unless its output ``done`` already exists."""
    shown = "anatomica " + " ".join(shlex.quote(str(a)) for a in args)
    if done is not None and done.exists():
        typer.secho(f"[demo] reusing {done}  ({shown})", fg="cyan")
        return
    typer.secho(f"[demo] $ {shown}", fg="cyan", bold=True)
    code = subprocess.call([sys.executable, "-m", "anatomica", *map(str, args)])
    if code != 0:
        raise AnatomicaError(f"demo step failed (exit {code}): {shown}")


def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Folder for everything the demo writes; re-running reuses finished steps."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same result)."),
    n: int = typer.Option(2, "--n", help="Samples per guided/unguided run (each takes about a minute on 2 CPU cores)."),
    steps: int = typer.Option(20, "--steps", help="Sampler steps."),
) -> None:
    """Phantoms -> statistics -> guided generation with the packaged heart model, unguided vs guided.

    1. 16 heart phantoms (32³) and their statistics and topology rates;
    2. two held-out phantoms as references (the paper takes targets from validation cases);
    3. the 'right-ventricle' task (RV mass 1.3x the reference's, centroid and shape from it): samples from the
       same noise without guidance (w = 0) and with Anatomica-L guidance; a table compares the target errors.
    Outputs: OUT/heart_phantoms, OUT/references, OUT/rv_unguided, OUT/rv_guided (NIfTI, JSON reports, mosaic.png,
    report.html) and OUT/report.html (open it in a browser).
    """
    from anatomica.pretrained import pretrained_path

    model = pretrained_path("heart32")
    data, refs = out / "heart_phantoms", out / "references"
    _run(["phantoms", "--system", "heart", "--n", 16, "--size", 32, "--seed", seed, "--out", data], done=data / "dataset.json")
    _run(["stats", data])
    _run(["phantoms", "--system", "heart", "--n", 2, "--size", 32, "--seed", seed + 1000, "--out", refs], done=refs / "dataset.json")
    runs = {}
    for name, w in (("unguided", "0"), ("guided", None)):
        target = out / f"rv_{name}"
        args = ["sample", "--model", model, "--task", "right-ventricle", "--reference", refs / "labelsTr", "--parsing", "l-local",
                "--resolution", "low", "--n", n, "--steps", steps, "--seed", seed, "--out", target]
        if w is not None:
            args += ["--guidance-scale", w]
        _run(args, done=target / "summary.json")
        runs[name] = json.loads((target / "summary.json").read_text())
    _compare(runs)
    report = _report(out, runs)
    typer.echo(f"[demo] done: open {report} in a browser (guided samples in 3D, targets vs achieved, mosaic); "
               f"files in {out}/rv_guided (labelsTr/, reports/, mosaic.png)")


def _report(out: Path, runs: dict[str, dict]) -> Path:
    """OUT/report.html: the guided run's report (self-contained) with the unguided-vs-guided comparison on top."""
    import html

    from anatomica.guided.html_report import write_report

    cols = ("mass_l1", "centroid_l1", "covariance_l1")
    rows = "".join(
        f"<tr><th>{html.escape(name)}</th>" + "".join(f"<td>{next(iter(s['domains'].values())).get(c, float('nan')):.4f}</td>" for c in cols)
        + f"<td>{s['final_potential']:.5f}</td><td>{s['seconds_per_sample']:.1f}</td></tr>" for name, s in runs.items())
    preamble = ("<h2>Unguided vs guided, same noise (lower is better)</h2><table><tr><th>run</th><th>mass L1</th><th>centroid L1</th>"
                "<th>covariance L1</th><th>final potential</th><th>s / sample</th></tr>" + rows + "</table>"
                "<p>The tables below and the 3D view are the guided run (rv_guided/); rv_unguided/report.html shows the unguided one.</p>")
    return write_report(out / "rv_guided", runs["guided"], path=out / "report.html",
                        title="anatomica demo: right-ventricle task, guided samples", preamble=preamble)


def _compare(runs: dict[str, dict]) -> None:
    table = Table(title="right-ventricle task: target error, same noise (lower is better)")
    table.add_column("run")
    for col in ("mass L1", "centroid L1", "covariance L1", "final potential", "s / sample"):
        table.add_column(col, justify="right")
    for name, s in runs.items():
        d = next(iter(s["domains"].values()))
        table.add_row(name, f"{d['mass_l1']:.4f}", f"{d['centroid_l1']:.4f}", f"{d['covariance_l1']:.4f}",
                      f"{s['final_potential']:.5f}", f"{s['seconds_per_sample']:.1f}")
    Console(width=120).print(table)
