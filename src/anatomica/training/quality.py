"""Dataset-level summaries to compare samples with training data: per-label volume and presence."""

from __future__ import annotations

import torch


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
