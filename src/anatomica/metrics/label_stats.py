"""Per-label figures of a label map in world units, and their summary over a dataset.

Centroid and covariance are moments of the voxel-centre coordinates mapped through the affine (mm);
the covariance is the population covariance (divide by N), matching the paper's Σ = rᵀdiag(Ω)r/m − ppᵀ
for a binary Ω.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from anatomica.homology import betti_numbers
from anatomica.io.nifti import LabelMap


def world_moments(mask: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroid (3,) in mm and population covariance (3, 3) in mm² of the voxel centres of ``mask``."""
    ijk = np.argwhere(mask).astype(np.float64)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    centroid = xyz.mean(axis=0)
    d = xyz - centroid
    return centroid, d.T @ d / len(xyz)


def label_statistics(label_map: LabelMap, with_betti: bool = True) -> dict[str, dict]:
    """{name: {index, voxels, volume_ml, centroid_mm, covariance_mm2, betti}} for every label present or named."""
    out: dict[str, dict] = {}
    vol_ml = label_map.voxel_volume_ml
    for name, value in label_map.present_labels().items():
        mask = label_map.array == value
        n = int(mask.sum())
        entry: dict = {"index": int(value), "voxels": n, "volume_ml": n * vol_ml}
        if n:
            c, cov = world_moments(mask, label_map.affine)
            entry["centroid_mm"] = [float(v) for v in c]
            entry["covariance_mm2"] = [[float(v) for v in row] for row in cov]
        else:
            entry["centroid_mm"] = None
            entry["covariance_mm2"] = None
        if with_betti:
            entry["betti"] = betti_numbers(mask)
        out[name] = entry
    return out


def union_has_betti(label_map: LabelMap, labels: Sequence[str], betti: dict[int, int]) -> bool:
    """Whether the union of ``labels`` (all of which must be named in the map) has the given Betti numbers."""
    if any(n not in label_map.labels for n in labels):
        return False
    b = betti_numbers(np.isin(label_map.array, [label_map.labels[n] for n in labels]))
    return all(b[int(d)] == v for d, v in betti.items())


def _distribution(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(a.mean()),
        "std": float(a.std()),
        "min": float(a.min()),
        "p05": float(np.percentile(a, 5)),
        "median": float(np.median(a)),
        "p95": float(np.percentile(a, 95)),
        "max": float(a.max()),
    }


def summarize(files: list[dict], topology: dict[str, list[bool]] | None = None) -> dict:
    """Per-label distributions over the ``files`` entries of ``anatomica stats`` and topology rates."""
    n = len(files)
    names: list[str] = []
    for f in files:
        names += [k for k in f["labels"] if k not in names]
    per_label = {}
    for name in names:
        entries = [f["labels"][name] for f in files if f["labels"].get(name, {}).get("voxels", 0) > 0]
        item: dict = {"present_rate": len(entries) / n}
        if entries:
            item["volume_ml"] = _distribution([e["volume_ml"] for e in entries])
            if "betti" in entries[0]:
                b0 = [e["betti"][0] for e in entries]
                item["b0_equals_1_rate"] = float(np.mean([b == 1 for b in b0]))
                item["betti_mode"] = _mode([tuple(e["betti"]) for e in entries])
        per_label[name] = item
    summary: dict = {"n_files": n, "labels": per_label}
    if topology:
        summary["topology_rates"] = {name: float(np.mean(flags)) for name, flags in topology.items()}
    return summary


def _mode(items: list[tuple]) -> list[int]:
    values, counts = np.unique(np.asarray(items), axis=0, return_counts=True)
    return [int(v) for v in values[counts.argmax()]]


@torch.no_grad()
def label_volume_stats(data_labels: torch.Tensor, label_table: dict[str, int], voxel_ml: float) -> dict:
    """Per-label volume (mL) mean/sd and presence share, plus the share of cases with every label present."""
    counts = {name: (data_labels == v).flatten(1).sum(1).double() * voxel_ml for name, v in label_table.items()}
    present = torch.stack([c > 0 for c in counts.values()], dim=1)
    return {
        "n": int(data_labels.shape[0]),
        "all_labels_present": float(present.all(1).double().mean()),
        "labels": {
            name: {"mean_ml": float(c.mean()), "sd_ml": float(c.std()) if len(c) > 1 else 0.0, "present": float((c > 0).double().mean())}
            for name, c in counts.items()
        },
    }
