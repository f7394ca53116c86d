"""`anatomica measure`: a label map measured against a control task — per domain the moments, Betti numbers,
targets and potential terms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from anatomica.control.measure import DomainMeasure, measure_label_map
from anatomica.control.spec import load_task, resolve_task
from anatomica.errors import AnatomicaError
from anatomica.io.dataset import read_label_table
from anatomica.io.files import json_text
from anatomica.io.nifti import load_label_map


def _floats(x) -> list | None:
    return None if x is None else np.round(np.asarray(x, dtype=np.float64), 6).tolist()


def describe_domain(m: DomainMeasure, terms: dict[str, torch.Tensor]) -> dict:
    """The JSON row of one measured domain (``control.measure.DomainMeasure``) with its potential terms."""
    prefix = f"{m.name}/"
    return {
        "name": m.name,
        "kind": m.kind,
        "channels": list(m.channels),
        "domain": m.domain.to_dict(),
        "mass_unit": m.mass_unit,
        "measured": {
            "mass": m.mass,
            "mass_fraction": m.mass_fraction,
            "centroid_mm": _floats(m.centroid_mm),
            "covariance_mm2": _floats(m.covariance_mm2),
            "size_mm2": m.size_mm2,
            "shape": _floats(m.shape),
            "orientation": _floats(m.orientation),
            "normalized_covariance": _floats(m.normalized_covariance),
            "betti": m.betti,
            "betti_source": m.betti_source,
        },
        "target": {
            "mass": m.target.mass,
            "centroid_mm": _floats(m.target.centroid_mm),
            "normalized_covariance": _floats(m.target.normalized_covariance),
            "betti": m.target.betti,
        },
        "terms": {k[len(prefix) :]: float(v[0]) for k, v in terms.items() if k.startswith(prefix)},
    }


def measure(
    seg: Path = typer.Argument(..., help="Label map to measure (.nii/.nii.gz, integer labels)."),
    task_path: str = typer.Option(..., "--task", help="Task YAML file (schema: docs/tasks.md) or the name of a packaged task."),
    reference: Path | None = typer.Option(
        None, "--reference", help="Reference label map (same field of view) that places box/planes/lines domains and gives relative targets."
    ),
    labels: Path | None = typer.Option(None, "--labels", help="JSON label table ({name: value} or a dataset.json); default: the dataset.json next to SEG."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Measure a label map against a control task: per control domain the mass (mL for volume domains, mm² for
    planes, mm for lines), centroid (mm, world coordinates), covariance (mm²), its size v = tr Σ (mm²) and shape
    (eigenvalues / trace), Betti numbers (b0, b1, b2) of the label map itself inside the domain, at its own
    grid, on closed voxel cubes as in `anatomica stats`, the
    targets and the potential's terms (loss units: mass fraction, normalized coordinates; see docs/tasks.md).

    The label map is read as one-hot probabilities: a domain that samples every voxel measures what `anatomica stats` does. Relative targets (mass scale, centroid offset, covariance {}) and box/planes/lines placements need --reference.

    Example: anatomica measure sample.nii.gz --task right_ventricle.yaml --reference case_000.nii.gz --json
    """
    table = read_label_table(labels) if labels is not None else None
    lm = load_label_map(seg, labels=table)
    if not lm.labels:
        raise AnatomicaError(f"{seg}: no label names (pass --labels or keep a dataset.json next to the file)")
    ref = load_label_map(reference, labels=table) if reference is not None else None  # its own dataset.json, else the same table
    spec = load_task(task_path)
    task = resolve_task(spec, ref, lm.labels, lm.array.shape, lm.affine)  # the reference's labels read by name
    if ref is not None and not ref.labels:
        typer.echo(f"note: {reference} has no label table; read in {seg.name}'s numbering", err=True)
    L, terms = task.potential(task.parse_label_array(lm.array, torch.float64))
    rows = [describe_domain(m, terms) for m in measure_label_map(task, lm.array)]
    result = {
        "task": task.name,
        "segmentation": str(seg),
        "reference": None if reference is None else str(reference),
        "potential": float(L[0]),
        "geometry": float(terms["geometry"][0]),
        "topology": float(terms["topology"][0]),
        "domains": rows,
    }
    if as_json:
        typer.echo(json_text(result))
    else:
        _print_human(result)


def _num(v, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _betti(b) -> str:
    return "—" if b is None else "[" + ",".join(map(str, b)) + "]"


def _print_human(result: dict) -> None:
    console = Console()
    t = Table(title=f"task {result['task']!r} on {Path(result['segmentation']).name}: potential L = {result['potential']:.4g}", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    for col in ("domain", "mass → target", "Δc mm", "betti → target", "L_geo", "L_topo"):
        t.add_column(col, justify="left" if col == "domain" else "right", no_wrap=True)
    for r in result["domains"]:
        m, g, terms = r["measured"], r["target"], r["terms"]
        gap = None
        if m["centroid_mm"] is not None and g["centroid_mm"] is not None:
            gap = float(np.linalg.norm(np.subtract(m["centroid_mm"], g["centroid_mm"])))
        target_mass = "—" if g["mass"] is None else f"{g['mass']:.2f}"
        t.add_row(
            r["name"],
            f"{m['mass']:.2f}→{target_mass} {r['mass_unit']}",
            _num(gap, 1),
            f"{_betti(m['betti'])}→{_betti(g['betti'])}",
            _num(terms.get("geometry"), 4),
            _num(terms.get("topology"), 3),
        )
    console.print(t)
    console.print(
        f"L = geometry {result['geometry']:.4g} + topology {result['topology']:.4g} (mean over {len(result['domains'])} domains; "
        "loss units: mass fraction of the domain, normalized coordinates). Centroid, covariance, size and shape in mm: --json."
    )
