"""`anatomica measure`: a label map measured against a control task — per domain the moments, Betti numbers,
targets and potential terms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import typer
from rich import box
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from anatomica.control.domain import ControlDomain
from anatomica.control.moments import decompose, mass_unit, moments, to_world
from anatomica.control.potential import DomainTask, Task
from anatomica.control.spec import load_task, resolve_task
from anatomica.control.topology import squeeze_domain
from anatomica.coords import normalized_to_world
from anatomica.io.nifti import load_label_map
from anatomica.io.dataset import read_label_table
from anatomica.errors import AnatomicaError
from anatomica.homology import betti_numbers

KINDS = {0: "point", 1: "line", 2: "plane", 3: "volume"}


def _floats(x) -> list:
    return np.round(np.asarray(x, dtype=np.float64), 6).tolist()


def _physical_mass(fraction: float, dom: ControlDomain, task: Task) -> float:
    value = fraction * dom.num_points * dom.cell_measure(task.affine, task.shape)
    return value / 1000.0 if dom.dim == 3 else value


def describe_domain(d: DomainTask, S: torch.Tensor, task: Task, terms: dict[str, torch.Tensor]) -> dict:
    """Measured values, targets and potential terms of one domain, in world units."""
    dom = d.domain
    mom = moments(S, dom.points(S.dtype))
    world = to_world(mom, dom, task.affine, task.shape)
    cov_mm = world["covariance_mm2"][0]
    size, shape, axes = decompose(torch.from_numpy(cov_mm)[None])
    measured = {
        "mass": float(world["mass"][0]),
        "mass_fraction": float(mom.mass[0]),
        "centroid_mm": _floats(world["centroid_mm"][0]) if float(mom.mass[0]) > 0 else None,
        "covariance_mm2": _floats(cov_mm),
        "size_mm2": float(size[0]),
        "shape": _floats(shape[0]),
        "orientation": _floats(axes[0]),
        "normalized_covariance": _floats(mom.normalized_covariance[0]),
        "betti": betti_numbers(squeeze_domain(S[0]).numpy() >= 0.5),
    }
    t = d.target
    target = {
        "mass": None if t.mass is None else _physical_mass(float(t.mass), dom, task),
        "centroid_mm": None if t.centroid is None else _floats(normalized_to_world(t.centroid.double(), task.affine, task.shape)),
        "normalized_covariance": None if t.covariance is None else _floats(t.covariance),
        "betti": None if d.betti is None else list(d.betti),
    }
    prefix = f"{d.name}/"
    return {
        "name": d.name,
        "kind": KINDS[dom.dim],
        "channels": list(d.channels),
        "domain": dom.to_dict(),
        "mass_unit": mass_unit(dom),
        "measured": measured,
        "target": target,
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
    (eigenvalues / trace), Betti numbers (b0, b1, b2) on closed voxel cubes as in `anatomica stats`, the
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
    task = resolve_task(spec, ref, lm.labels, lm.array.shape, lm.affine)
    substructures = task.parse_label_array(lm.array, torch.float64)
    L, terms = task.potential(substructures)
    rows = [
        describe_domain(d, S, task, terms)
        for d, S in tqdm(list(zip(task.domains, substructures)), desc="domains", disable=as_json or len(task.domains) < 8, leave=False)
    ]
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
        typer.echo(json.dumps(result, indent=2))
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
