"""Figures of sampled label maps: a mosaic of mid-slices, and one with the control domains drawn in.

Colours follow the label *names* (``anatomica.io.colors``), the same as in report.html, the Slicer and
ITK-SNAP files and the meshes; background white. Every figure carries a legend (label name + colour) and, with
control domains, the domains' names in their outline colours. The label table is the ``labels`` argument,
else the dataset.json of the folder the figure is written into (sampling runs write it first).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from anatomica.control.domain import domain_mask
from anatomica.control.potential import Task
from anatomica.coords import normalized_to_voxel
from anatomica.io.colors import value_colors
from anatomica.io.files import atomic_write

DOMAIN_COLORS = ("black", "#e000e0", "#00a000", "#ff8000", "#606060", "#0000ff")


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no screen needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def label_cmap(num_classes: int, labels: dict[str, int] | None = None):
    """The colour map of label values 0 … num_classes − 1: background white, each value its name's colour."""
    from matplotlib.colors import ListedColormap

    return ListedColormap([tuple(c / 255 for c in rgb) for rgb in value_colors(labels or {}, max(num_classes, 2))])


def figure_labels(path: Path, labels: dict[str, int] | None) -> dict[str, int]:
    """``labels``, else the label table of the dataset.json beside ``path``, else none."""
    if labels is not None:
        return dict(labels)
    meta = Path(path).parent / "dataset.json"
    if meta.is_file():
        from anatomica.io.dataset import read_label_table

        try:
            return read_label_table(meta)
        except ValueError:  # an unreadable table must not cost the figure; names fall back to label_<v>
            return {}
    return {}


def _legend_handles(labels: dict[str, int], num_classes: int, present: set[int] | None = None) -> list:
    from matplotlib.patches import Patch

    by_value = {v: n for n, v in labels.items()}
    colors = value_colors(labels, max(num_classes, 2))
    values = sorted(v for v in set(range(1, num_classes)) | set(by_value) if v < num_classes and (present is None or v in present))
    return [Patch(facecolor=tuple(c / 255 for c in colors[v]), edgecolor="0.4", label=by_value.get(v, f"label_{v}")) for v in values]


def _add_legend(fig, handles: list, title: str | None = None) -> float:
    """A legend below the panels; returns the figure fraction it takes (for tight_layout's rect)."""
    if not handles:
        return 0.0
    ncol = min(len(handles), 4)
    rows = -(-len(handles) // ncol) + (1 if title else 0)
    height = fig.get_figheight()
    frac = min(0.45, (0.19 * rows + 0.15) / height)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=7, frameon=False, title=title, title_fontsize=7,
               handlelength=1.2, columnspacing=1.0)
    return frac


def write_mosaic(labels: np.ndarray, path: Path, num_classes: int, max_cases: int = 16, per_row: int = 4,
                 names: dict[str, int] | None = None) -> Path:
    """PNG grid of up to ``max_cases`` samples, ``per_row`` per row, each as its mid-slices along array axes 0, 1, 2,
    with a legend of the labels present."""
    plt = pyplot()
    names = figure_labels(path, names)
    n = min(len(labels), max_cases)
    cols = min(n, per_row)
    rows = -(-n // cols)
    cmap = label_cmap(num_classes, names)
    legend_rows = -(-max(num_classes - 1, 1) // 4)
    fig, axes = plt.subplots(rows, 3 * cols, figsize=(max(1.3 * 3 * cols, 5.2), 1.6 * rows + 0.2 * legend_rows + 0.2), squeeze=False)
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
    present = {int(v) for v in np.unique(np.asarray(labels[:n]))}
    bottom = _add_legend(fig, _legend_handles(names, num_classes, present))
    fig.tight_layout(pad=0.3, rect=(0, bottom, 1, 1))
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)
    return path




def _centre_voxel(task: Task, shape: Sequence[int]) -> np.ndarray:
    centre = np.mean([d.domain.translation for d in task.domains], axis=0)
    ijk = normalized_to_voxel(torch.from_numpy(centre), shape).numpy()
    return np.clip(np.rint(ijk), 0, np.array(shape) - 1).astype(int)


def write_domain_mosaic(labels: Sequence[np.ndarray], tasks: Sequence[Task], path: Path, num_classes: int,
                 titles: Sequence[str] | None = None, max_cases: int = 16, names: dict[str, int] | None = None) -> Path:
    """PNG: one row per sample, three orthogonal slices through the mean centre of the task's domains, the
    domains' outlines drawn over them (one colour per domain), a legend of labels and domain names."""
    from matplotlib.lines import Line2D

    plt = pyplot()
    names = figure_labels(path, names)
    n = min(len(labels), max_cases)
    domain_names: list[str] = []
    for t in tasks[:n]:
        domain_names += [d.name for d in t.domains if d.name not in domain_names]
    legend_rows = -(-max(num_classes - 1, 1) // 4) + -(-len(domain_names) // 4) + 1
    fig, axes = plt.subplots(n, 3, figsize=(6.6, 2.2 * n + 0.2 * legend_rows + 0.2), squeeze=False)
    cmap = label_cmap(num_classes, names)
    # dark outline colours, none of them a label colour (Set1's red drew over the left ventricle's red)
    outline = lambda k: DOMAIN_COLORS[k % len(DOMAIN_COLORS)]  # noqa: E731
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
                               colors=[outline(k)], linewidths=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"axis {a}, slice {centre[a]}", fontsize=7)
        axes[i][0].set_ylabel(titles[i] if titles else f"sample {i}", fontsize=8)
    present = {int(v) for vol in labels[:n] for v in np.unique(vol)}
    handles = _legend_handles(names, num_classes, present)
    # one outline colour per domain position k (as drawn above); the name is the first task's domain k
    first = tasks[0].domains if n else []
    handles += [Line2D([0], [0], color=outline(k), lw=1.5, label=f"domain: {d.name}") for k, d in enumerate(first)]
    bottom = _add_legend(fig, handles)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)
    return Path(path)
