"""Figures of the register-model evaluation: samples with mask overlays, per-class attention maps,
edits before/after and the edit dose-response curve. Matplotlib (Agg), PNG; 3D shows the middle slice."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _mid(a: np.ndarray) -> np.ndarray:
    return a[..., a.shape[-1] // 2] if a.ndim == 3 else a


def _overlay(ax, image: np.ndarray, mask: np.ndarray | None, n_classes: int) -> None:
    ax.imshow(_mid(image).T, origin="lower", cmap="gray", vmin=-1, vmax=1)
    if mask is not None:
        m = _mid(mask).astype(float)
        ax.imshow(np.ma.masked_where(m == 0, m).T, origin="lower", cmap="tab10", vmin=0, vmax=max(n_classes - 1, 9), alpha=0.45, interpolation="nearest")
    ax.axis("off")


def _save(plt, fig, path: Path, title: str = "") -> Path:
    """Title, tight layout, PNG at 110 dpi, figure closed."""
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_mosaic(path: Path, images: torch.Tensor, masks: torch.Tensor | None, n: int = 8, title: str = "") -> Path:
    """PNG: generated images (top row) and their masks (bottom row); 3D volumes show their middle slice."""
    plt = _plt()

    n = min(n, len(images))
    rows = 2 if masks is not None else 1
    fig, axes = plt.subplots(rows, n, figsize=(1.6 * n, 1.7 * rows), squeeze=False)
    for i in range(n):
        img = images[i, 0].numpy()
        msk = masks[i].numpy() if masks is not None else None
        if img.ndim == 3:
            img = img[..., img.shape[-1] // 2]
            msk = msk[..., msk.shape[-1] // 2] if msk is not None else None
        axes[0, i].imshow(img.T, origin="lower", cmap="gray", vmin=-1, vmax=1)
        if msk is not None:
            axes[1, i].imshow(msk.T, origin="lower", cmap="viridis", vmin=0, vmax=max(int(masks.max()), 1), interpolation="nearest")
    for ax in axes.ravel():
        ax.axis("off")
    return _save(plt, fig, path, title)


def sample_grid(path: Path, rows: dict[str, tuple[torch.Tensor, torch.Tensor | None]], n_classes: int, k: int = 8, title: str = "") -> Path:
    """One row per named set: images with a mask overlay (each row's own choice of mask)."""
    plt = _plt()
    fig, axes = plt.subplots(len(rows), k, figsize=(1.4 * k, 1.5 * len(rows)), squeeze=False)
    for r, (name, (images, masks)) in enumerate(rows.items()):
        for i in range(k):
            ax = axes[r, i]
            if i < len(images):
                _overlay(ax, images[i, 0].numpy(), None if masks is None else np.asarray(masks[i]), n_classes)
            else:
                ax.axis("off")
        axes[r, 0].set_title(name, fontsize=7, loc="left")
    return _save(plt, fig, path, title)


def attention_figure(path: Path, image: torch.Tensor, maps: list[tuple[torch.Tensor, tuple[int, ...]]], class_names: Sequence[str], title: str = "") -> Path:
    """For one image ((1, 1, *S) or (1, *S)): per cross-attention layer (rows), the attention mass on each
    class's registers (columns)."""
    plt = _plt()
    C = len(class_names)
    pic = image
    while pic.ndim > len(maps[0][1]):
        pic = pic[0]
    fig, axes = plt.subplots(len(maps), C + 1, figsize=(1.3 * (C + 1), 1.4 * len(maps)), squeeze=False)
    for r, (att, shape) in enumerate(maps):
        axes[r, 0].imshow(_mid(pic.numpy()).T, origin="lower", cmap="gray", vmin=-1, vmax=1)
        axes[r, 0].set_title(f"{'×'.join(map(str, shape))}", fontsize=7)
        for c in range(C):
            a = att[0, ..., c].numpy()
            axes[r, c + 1].imshow(_mid(a).T, origin="lower", cmap="magma", vmin=0, vmax=1)
            if r == 0:
                axes[r, c + 1].set_title(class_names[c].removeprefix("heart_")[:16], fontsize=6)
    for ax in axes.ravel():
        ax.axis("off")
    return _save(plt, fig, path, title)


def edit_figure(path: Path, previews: dict[str, torch.Tensor], title: str = "") -> Path:
    """Columns: edit conditions; rows: the same noise (so each row is one image under every edit)."""
    plt = _plt()
    names = list(previews)
    k = min(len(v) for v in previews.values())
    fig, axes = plt.subplots(k, len(names), figsize=(1.3 * len(names), 1.35 * k), squeeze=False)
    for c, name in enumerate(names):
        for r in range(k):
            axes[r, c].imshow(_mid(previews[name][r, 0].numpy()).T, origin="lower", cmap="gray", vmin=-1, vmax=1)
            axes[r, c].axis("off")
        axes[0, c].set_title(name, fontsize=7)
    return _save(plt, fig, path, title)


def dose_figure(path: Path, curves: dict[str, dict[float, tuple[float, float, float]]], ylabel: str, title: str = "") -> Path:
    """Area change vs register scale: one line per (seed, reader) with its 95 % interval band."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, pts in curves.items():
        xs = sorted(pts)
        m = [pts[x][0] for x in xs]
        ax.plot(xs, m, marker="o", label=name, lw=1)
        ax.fill_between(xs, [pts[x][1] for x in xs], [pts[x][2] for x in xs], alpha=0.15)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("scale of the class's registers (1 = trained)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=6)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
