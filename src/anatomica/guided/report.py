"""Reports of guided sampling: one JSON per sample (targets against achieved measures, the potential over the
denoiser calls), a summary over samples (figures: ``guided.figures``).

Achieved measures are taken on the saved label map (argmax of the decoded sample, read as one-hot) on the
task's full-resolution domain grids, the way ``anatomica measure`` reads a file, whatever parsing guided it.
Units: mass in mL / mm² / mm (volume / plane / line domains), centroid in world mm; errors in the paper's
normalized units (``anatomica.metrics.geometry``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from anatomica.control.domain import ControlDomain
from anatomica.control.moments import mass_unit, moments, to_world
from anatomica.control.potential import DomainTask, Task
from anatomica.coords import normalized_to_world
from anatomica.metrics.geometry import betti_accuracy, geometry_errors, substructure_betti

KINDS = {0: "point", 1: "line", 2: "plane", 3: "volume"}


def _round(x, digits: int = 6):
    return np.round(np.asarray(x, dtype=np.float64), digits).tolist()


def _physical_mass(fraction: float, dom: ControlDomain, task: Task) -> float:
    value = fraction * dom.num_points * dom.cell_measure(task.affine, task.shape)
    return value / 1000.0 if dom.dim == 3 else value


def domain_report(d: DomainTask, S: torch.Tensor, task: Task) -> dict:
    """Measured values, targets and L1 errors of one domain for one label map's substructure S (1, α, β, γ)."""
    dom = d.domain
    pts = dom.points(torch.float64)
    mom = moments(S.double(), pts)
    world = to_world(mom, dom, task.affine, task.shape)
    occupied = float(mom.mass[0]) > 0
    t = d.target
    row = {
        "name": d.name,
        "kind": KINDS[dom.dim],
        "mass_unit": mass_unit(dom),
        "domain": dom.to_dict(),
        "measured": {
            "mass": float(world["mass"][0]),
            "mass_fraction": float(mom.mass[0]),
            "centroid_mm": _round(world["centroid_mm"][0]) if occupied else None,
            "normalized_covariance": _round(mom.normalized_covariance[0]) if occupied else None,
        },
        "target": {
            "mass": None if t.mass is None else _physical_mass(float(t.mass), dom, task),
            "mass_fraction": None if t.mass is None else float(t.mass),
            "centroid_mm": None if t.centroid is None else _round(normalized_to_world(t.centroid.double(), task.affine, task.shape)),
            "normalized_covariance": None if t.covariance is None else _round(t.covariance),
        },
        "errors": {k: float(v[0]) for k, v in geometry_errors(S, pts, t).items()},
    }
    if d.betti is not None:
        betti = substructure_betti(S)[0]
        row["measured"]["betti"] = betti
        row["target"]["betti"] = list(d.betti)
        row["betti_match"] = [bool(b == p) for b, p in zip(betti, d.betti)]
    return row


def sample_report(result, task: Task, config: dict, seed: int, reference: str | None) -> dict:
    """The JSON of one sample (a ``guided.run.SampleResult``) against the task it was guided by."""
    domains = [domain_report(d, S, task) for d, S in zip(task.domains, task.parse_label_array(result.labels, torch.float64))]
    return {
        "sample": result.index,
        "file": f"labelsTr/sample_{result.index:03d}.nii.gz",
        "task": task.name,
        "seed": seed,
        "reference": reference,
        "guidance": config,
        "seconds": result.seconds,
        "potential": {
            "final": result.final_potential,
            "final_terms": result.final_terms,
            "calls": [{"sigma": s, "potential": p, "guided": g} for s, p, g in zip(result.sigmas, result.potentials, result.guided)],
        },
        "domains": domains,
    }


def summarize(reports: Sequence[dict]) -> dict:
    """Means over samples of every domain's L1 errors, Betti accuracy (share matching the prior per dimension),
    the final potential and the seconds per sample."""
    out: dict = {"n": len(reports), "seconds_per_sample": float(np.mean([r["seconds"] for r in reports])),
                 "final_potential": float(np.mean([r["potential"]["final"] for r in reports])), "domains": {}}
    names = [d["name"] for d in reports[0]["domains"]]
    for k, name in enumerate(names):
        rows = [r["domains"][k] for r in reports]
        entry = {f"{m}_l1": float(np.mean([row["errors"][m] for row in rows])) for m in rows[0]["errors"]}
        if "betti" in rows[0]["measured"]:
            entry["betti_accuracy"] = betti_accuracy([row["measured"]["betti"] for row in rows], rows[0]["target"]["betti"])
        out["domains"][name] = entry
    return out


def summary_table(summary: dict):
    """A rich table of :func:`summarize`'s per-domain means, for the terminal."""
    from rich.table import Table

    g = summary["guidance"]
    how = "unguided" if g["guidance_scale"] == 0 else (
        f"w = {g['guidance_scale']:g}, {g['parsing']}{'/' + g['resolution'] if g['resolution'] else ''}{', fast gradient' if g['fast_gradient'] else ''}")
    table = Table(title=f"task {summary['task']!r}, {summary['n']} samples, {how}: mean final potential {summary['final_potential']:.4g}")
    for col in ("domain", "mass L1", "centroid L1", "covariance L1", "B0 / B1 / B2 accuracy"):
        table.add_column(col, justify="left" if col == "domain" else "right")
    for name, e in summary["domains"].items():
        fmt = lambda k: f"{e[k]:.4g}" if k in e else "—"  # noqa: E731
        acc = " / ".join(f"{100 * a:.0f} %" for a in e["betti_accuracy"]) if "betti_accuracy" in e else "—"
        table.add_row(name, fmt("mass_l1"), fmt("centroid_l1"), fmt("covariance_l1"), acc)
    return table
