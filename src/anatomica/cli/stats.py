"""`anatomica stats`: per-label volume, centroid, covariance and Betti numbers of label maps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from anatomica.errors import AnatomicaError
from anatomica.io.dataset import list_label_files, read_label_table
from anatomica.io.files import json_text
from anatomica.io.nifti import load_label_map
from anatomica.metrics.label_stats import label_statistics, summarize, union_has_betti


def _system_checks(folder: Path | None, labels: dict[str, int]) -> list:
    """Topology checks of the phantom system this dataset comes from (by dataset.json, else by label names)."""
    from anatomica.data.phantoms import SYSTEMS

    system = None
    if folder is not None and (folder / "dataset.json").is_file():
        system = json.loads((folder / "dataset.json").read_text()).get("system")
    if system not in SYSTEMS:
        system = next((s for s, spec in SYSTEMS.items() if set(spec.labels) <= set(labels)), None)
    return list(SYSTEMS[system].topology_checks) if system else []


def stats(
    path: Path = typer.Argument(..., help="A label map (.nii/.nii.gz) or a dataset folder (labelsTr/ + dataset.json, or a folder of label maps)."),
    labels: Path | None = typer.Option(None, "--labels", help="JSON label table ({name: value} or a dataset.json); default: the dataset.json next to the files, else label_<value>."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: {files: [{path, shape, spacing, labels: {NAME: {...}}}], summary: {...}}."),
    no_betti: bool = typer.Option(False, "--no-betti", help="Skip Betti numbers (faster on large volumes)."),
) -> None:
    """Per label: voxels, volume (mL), centroid (mm, world coordinates through the affine), covariance (mm²) and
    Betti numbers [b0, b1, b2] (closed voxel cubes: foreground 26-connected). Over a folder, a summary of per-label
    volume distributions and the task-relevant topology rates (e.g. share of hearts with separate atria).

    Example: anatomica stats data/heart/ --json > heart_stats.json
    """
    table = read_label_table(labels) if labels is not None else None
    if not path.exists():
        raise AnatomicaError(f"{path}: no such file or folder")
    folder = path if path.is_dir() else None
    files = list_label_files(path) if folder else [path]
    entries, maps_checks, topo = [], None, {}
    for f in tqdm(files, desc="stats", unit="file", disable=len(files) < 2 or as_json, leave=False):
        lm = load_label_map(f, labels=table)
        entry = {
            "path": str(f),
            "shape": list(lm.array.shape),
            "spacing": [round(s, 6) for s in lm.spacing],
            "labels": label_statistics(lm, with_betti=not no_betti),
        }
        entries.append(entry)
        if maps_checks is None:
            maps_checks = _system_checks(folder or f.parent.parent, lm.labels) if not no_betti else []
        for check in (c for c in maps_checks if c.betti):
            topo.setdefault(check.name, []).append(union_has_betti(lm, check.labels, check.betti))
    result = {"files": entries, "summary": summarize(entries, topo)}
    if as_json:
        typer.echo(json_text(result))
    else:
        _print_human(result)


def _fmt_vec(v, digits: int = 1) -> str:
    return "—" if v is None else "(" + ", ".join(f"{x:.{digits}f}" for x in v) + ")"


def _print_human(result: dict) -> None:
    # Pipes and CI logs get a wide table instead of rich's 80-column default, so names are not cut.
    console = Console() if Console().is_terminal else Console(width=140)
    files = result["files"]
    if len(files) == 1:
        f = files[0]
        t = Table(title=f"{f['path']}  shape {tuple(f['shape'])}  spacing {_fmt_vec(f['spacing'], 2)} mm")
        for col in ("label", "index", "voxels", "volume mL", "centroid mm", "sd along axes mm", "betti"):
            t.add_column(col, justify="right" if col not in ("label",) else "left")
        for name, e in f["labels"].items():
            sd = None if e["covariance_mm2"] is None else np.sqrt(np.diag(e["covariance_mm2"]))
            t.add_row(name, str(e["index"]), str(e["voxels"]), f"{e['volume_ml']:.2f}", _fmt_vec(e["centroid_mm"]),
                      _fmt_vec(sd), str(e.get("betti", "—")))
        console.print(t)
    s = result["summary"]
    if len(files) > 1:
        t = Table(title=f"{len(files)} label maps: per-label volume (mL)")
        for col in ("label", "present", "mean", "sd", "p05", "median", "p95", "b0=1", "typical betti"):
            t.add_column(col, justify="left" if col == "label" else "right")
        for name, e in s["labels"].items():
            v = e.get("volume_ml")
            t.add_row(name, f"{e['present_rate']:.0%}", *(f"{v[k]:.1f}" if v else "—" for k in ("mean", "std", "p05", "median", "p95")),
                      f"{e['b0_equals_1_rate']:.0%}" if "b0_equals_1_rate" in e else "—", str(e.get("betti_mode", "—")))
        console.print(t)
    if s.get("topology_rates"):
        t = Table(title="task-relevant topology (share of label maps)")
        t.add_column("property")
        t.add_column("rate", justify="right")
        for name, rate in s["topology_rates"].items():
            t.add_row(name, f"{rate:.1%}")
        console.print(t)
