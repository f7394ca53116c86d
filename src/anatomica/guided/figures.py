"""Figures of sampled label maps: a mosaic of mid-slices, and one with the control domains drawn in.

One colour table for every label map figure (``label_cmap``): background white, label value v the v-th
colour of matplotlib's tab10 (tab20 beyond ten labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from anatomica.control.domain import ControlDomain
from anatomica.control.potential import Task
from anatomica.coords import grid_points, normalized_to_voxel
from anatomica.io.files import atomic_write


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no screen needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def label_cmap(num_classes: int):
    """The colour map of label values 0 … num_classes − 1 (background white)."""
    from matplotlib.colors import ListedColormap

    plt = pyplot()

    palette = plt.get_cmap("tab10" if num_classes <= 11 else "tab20").colors
    return ListedColormap(["white", *[palette[i % len(palette)] for i in range(num_classes - 1)]])


def write_mosaic(labels: np.ndarray, path: Path, num_classes: int, max_cases: int = 16, per_row: int = 4) -> Path:
    """PNG grid of up to ``max_cases`` samples, ``per_row`` per row, each as its mid-slices along array axes 0, 1, 2."""
    plt = pyplot()
    n = min(len(labels), max_cases)
    cols = min(n, per_row)
    rows = -(-n // cols)
    cmap = label_cmap(num_classes)
    fig, axes = plt.subplots(rows, 3 * cols, figsize=(1.3 * 3 * cols, 1.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for i in range(n):
        r, c = divmod(i, cols)
        for a in range(3):
            ax = axes[r][3 * c + a]
            sl = np.take(labels[i], labels[i].shape[a] // 2, axis=a)
            ax.imshow(sl.T, origin="lower", cmap=cmap, vmin=-0.5, vmax=num_classes - 0.5, interpolation="nearest")
            ax.set_axis_on()
            ax.set_xticks([])
            ax.set_yticks([])
            if a == 1:
                ax.set_title(f"sample {i}", fontsize=7)
    fig.tight_layout(pad=0.3)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)
    return path




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


def write_domain_mosaic(labels: Sequence[np.ndarray], tasks: Sequence[Task], path: Path, num_classes: int,
                 titles: Sequence[str] | None = None, max_cases: int = 16) -> Path:
    """PNG: one row per sample, three orthogonal slices through the mean centre of the task's domains, the
    domains' outlines drawn over them (one colour per domain)."""
    plt = pyplot()
    n = min(len(labels), max_cases)
    fig, axes = plt.subplots(n, 3, figsize=(6.6, 2.2 * n), squeeze=False)
    cmap = label_cmap(num_classes)
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
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)
    return Path(path)
