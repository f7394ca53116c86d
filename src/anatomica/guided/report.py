"""Reports of guided sampling: one JSON per sample (targets against achieved measures, the potential over the
denoiser calls), a summary over samples, and a PNG mosaic with the control domains drawn over the slices.

Achieved measures are taken on the saved label map (argmax of the decoded sample, read as one-hot) on the
task's full-resolution domain grids, the way ``anatomica measure`` reads a file, whatever parsing guided it.
Units: mass in mL / mm² / mm (volume / plane / line domains), centroid in world mm; errors in the paper's
normalized units (``anatomica.metrics.geometry``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from anatomica.control.domain import ControlDomain
from anatomica.control.moments import mass_unit, moments, to_world
from anatomica.control.potential import DomainTask, Task
from anatomica.coords import grid_points, normalized_to_voxel, normalized_to_world
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


# --- mosaic ------------------------------------------------------------------------------------------------


def domain_mask(domain: ControlDomain, shape: Sequence[int]) -> np.ndarray:
    """Voxels of a volume of ``shape`` whose centres lie in the domain: inside the box for its axes of size > 1,
    within one voxel diagonal's half of it along axes of size 1 (planes, lines)."""
    u = grid_points(shape, torch.float64).numpy()
    local = (u - domain.translation) @ domain.rotation  # along the template axes, normalized units
    step = 2.0 / max(max(int(s) - 1, 1) for s in shape)
    inside = np.ones(len(u), dtype=bool)
    for a in range(3):
        if domain.size[a] > 1:
            inside &= np.abs(local[:, a]) <= domain.scale[a] * (1.0 + 1.0 / (domain.size[a] - 1))
        else:
            inside &= np.abs(local[:, a]) <= 0.5 * np.sqrt(3.0) * step
    return inside.reshape(tuple(int(s) for s in shape))


def _centre_voxel(task: Task, shape: Sequence[int]) -> np.ndarray:
    centre = np.mean([d.domain.translation for d in task.domains], axis=0)
    ijk = normalized_to_voxel(torch.from_numpy(centre), shape).numpy()
    return np.clip(np.rint(ijk), 0, np.array(shape) - 1).astype(int)


def write_mosaic(labels: Sequence[np.ndarray], tasks: Sequence[Task], path: Path, num_classes: int,
                 titles: Sequence[str] | None = None, max_cases: int = 16) -> Path:
    """PNG: one row per sample, three orthogonal slices through the mean centre of the task's domains, the
    domains' outlines drawn over them (one colour per domain)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from anatomica.data.io import _atomic_write

    n = min(len(labels), max_cases)
    fig, axes = plt.subplots(n, 3, figsize=(6.6, 2.2 * n), squeeze=False)
    palette = plt.get_cmap("tab10" if num_classes <= 11 else "tab20").colors
    cmap = ListedColormap(["white", *[palette[i % len(palette)] for i in range(num_classes - 1)]])  # background white
    outline = plt.get_cmap("Set1")
    masks_of: dict[int, list[np.ndarray]] = {}
    for i in range(n):
        vol, task = labels[i], tasks[i]
        key = id(task)
        if key not in masks_of:
            masks_of[key] = [domain_mask(d.domain, vol.shape) for d in task.domains]
        centre = _centre_voxel(task, vol.shape)
        for a in range(3):
            ax = axes[i][a]
            ax.imshow(np.take(vol, centre[a], axis=a).T, origin="lower", cmap=cmap, vmin=-0.5, vmax=num_classes - 0.5, interpolation="nearest")
            for k, m in enumerate(masks_of[key]):
                sl = np.pad(np.take(m, centre[a], axis=a).astype(float), 1)  # padded: a domain filling the slice gets a frame
                if sl.any():
                    ax.contour(np.arange(-1, sl.shape[0] - 1), np.arange(-1, sl.shape[1] - 1), sl.T, levels=[0.5],
                               colors=[outline(k % 9)], linewidths=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"axis {a}, slice {centre[a]}", fontsize=7)
        axes[i][0].set_ylabel(titles[i] if titles else f"sample {i}", fontsize=8)
    fig.tight_layout()
    _atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)
    return Path(path)



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
