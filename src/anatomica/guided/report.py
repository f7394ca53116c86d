"""Reports of guided sampling: one JSON per sample (targets against achieved measures, the potential over the
denoiser calls), a summary over samples (figures: ``guided.figures``).

Achieved measures are those of ``control.measure`` on the saved label map, whatever parsing guided it:
geometry on the label map read as one-hot on the task's full-resolution domain grids, the way
``anatomica measure`` reads a file; Betti numbers of the label map itself inside each domain, at its own
grid (``measured.betti_source``), while ``guidance_grid`` says on which grid the guidance read the domain.
Units: mass in mL / mm² / mm (volume / plane / line domains), centroid in world mm; errors in the paper's
normalized units (``anatomica.control.measure.geometry_errors``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from anatomica.control.measure import DomainMeasure, measure_label_map
from anatomica.control.potential import Task
from anatomica.guided.resolution import PRESETS, parsed_size
from anatomica.metrics.geometry import betti_accuracy


def _round(x, digits: int = 6):
    return None if x is None else np.round(np.asarray(x, dtype=np.float64), digits).tolist()


def domain_report(m: DomainMeasure, guidance_grid: Sequence[int] | None = None) -> dict:
    """The JSON row of one measured domain: measured values, targets and L1 errors."""
    t = m.target
    row = {
        "name": m.name,
        "kind": m.kind,
        "mass_unit": m.mass_unit,
        "domain": m.domain.to_dict(),
        "measured": {
            "mass": m.mass,
            "mass_fraction": m.mass_fraction,
            "centroid_mm": _round(m.centroid_mm) if m.occupied else None,
            "normalized_covariance": _round(m.normalized_covariance) if m.occupied else None,
        },
        "target": {
            "mass": t.mass,
            "mass_fraction": t.mass_fraction,
            "centroid_mm": _round(t.centroid_mm),
            "normalized_covariance": _round(t.normalized_covariance),
        },
        "errors": dict(m.errors),
    }
    if t.kept:  # these targets are the sample's own moments: its unguided twin's
        row["target"]["kept"] = list(t.kept)
    if guidance_grid is not None:
        row["guidance_grid"] = list(guidance_grid)
    if t.betti is not None:
        row["measured"]["betti"] = m.betti
        row["measured"]["betti_source"] = m.betti_source
        row["target"]["betti"] = t.betti
        row["betti_match"] = m.betti_match
    return row


def _guidance_grid(config: dict, domain) -> list[int] | None:
    """The grid the guidance read a domain on, from the run's guidance settings (``GuidanceConfig.to_dict``)."""
    mode = config.get("parsing")
    if mode not in ("v", "l-local", "l-coarse"):
        return None
    res = PRESETS.get(config.get("resolution") or "low") if mode != "v" else None
    return list(parsed_size(domain, mode, res))


def sample_report(result, task: Task, config: dict, seed: int, reference: str | None) -> dict:
    """The JSON of one sample (a ``guided.run.SampleResult``) against the (unstacked) task it was guided by."""
    domains = [domain_report(m, _guidance_grid(config, m.domain)) for m in measure_label_map(task, result.labels, betti="prior")]
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
