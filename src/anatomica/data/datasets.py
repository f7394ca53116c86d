"""Dataset folders (Medical Segmentation Decathlon / nnU-Net v2: ``labelsTr/`` + ``dataset.json``) as tensors.

:func:`load_label_dataset` reads every case, resamples it (nearest neighbour, voxel-centre aligned, same
field of view) to the model size, and returns integer label volumes plus the dataset's label table and
the affine of the resampled grid, so samples come back out in the same world space. Channel c of the
one-hot encoding is label value c (0 = background).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from anatomica.errors import AnatomicaError
from anatomica.io.dataset import list_label_files, read_label_table
from anatomica.io.nifti import load_label_map


@dataclass
class LabelDataset:
    """Integer label volumes (N, X, Y, Z) uint8 with the geometry and label table they share."""

    labels: torch.Tensor
    label_table: dict[str, int]
    affine: np.ndarray
    cases: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def num_classes(self) -> int:
        """One-hot channels: background plus the largest label value."""
        return max(self.label_table.values(), default=0) + 1

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.labels.shape[1:])

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def onehot(self, index: torch.Tensor | Sequence[int]) -> torch.Tensor:
        return to_onehot(self.labels[torch.as_tensor(index, dtype=torch.long)], self.num_classes)

    def split(self, val_fraction: float) -> tuple[LabelDataset, LabelDataset]:
        """(train, validation): the last ``ceil(val_fraction·N)`` cases are held out (deterministic)."""
        n_val = int(np.ceil(val_fraction * len(self))) if val_fraction > 0 else 0
        if n_val >= len(self):
            raise AnatomicaError(f"{self.source}: {len(self)} cases leave none for training with val_fraction={val_fraction}")
        cut = len(self) - n_val
        part = lambda a, b: LabelDataset(self.labels[a:b], self.label_table, self.affine, self.cases[a:b], self.source)  # noqa: E731
        return part(0, cut), part(cut, len(self))


def to_onehot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, X, Y, Z) integer labels -> (B, C, X, Y, Z) float one-hot."""
    return F.one_hot(labels.long(), num_classes).movedim(-1, 1).float()


def resample_nearest(array: np.ndarray, affine: np.ndarray, size: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour resampling to ``size`` keeping the field of view; returns (array, adjusted affine).

    New voxel i covers old voxels [i·r, (i+1)·r) with r = old/new; its centre is old index (i + ½)·r − ½.
    """
    old = np.array(array.shape, dtype=np.float64)
    new = np.array(size, dtype=np.float64)
    if np.array_equal(old, new):
        return array, np.asarray(affine, dtype=np.float64)
    r = old / new
    idx = [np.clip(np.floor((np.arange(int(n)) + 0.5) * ri).astype(int), 0, int(o) - 1) for n, ri, o in zip(new, r, old)]
    out = array[np.ix_(*idx)]
    scale = np.eye(4)
    scale[:3, :3] = np.diag(r)
    scale[:3, 3] = 0.5 * r - 0.5
    return out, np.asarray(affine, dtype=np.float64) @ scale


def load_label_dataset(folder: str | Path, size: int | Sequence[int] | None = None, limit: int | None = None) -> LabelDataset:
    """Read a dataset folder into a :class:`LabelDataset` at ``size`` (an int means a cube; None keeps the files').

    The label table comes from ``dataset.json`` (required: it names the classes samples will carry).
    Every case must share the first case's voxel spacing and orientation; origins may differ, and the
    first case's affine becomes the dataset's.
    """
    folder = Path(folder)
    files = list_label_files(folder)
    if limit is not None:
        files = files[:limit]
    meta = folder / "dataset.json"
    if not meta.is_file():
        raise AnatomicaError(f"{folder}: no dataset.json (needed for the label table)")
    table = read_label_table(meta)
    if not table:
        raise AnatomicaError(f"{meta}: the label table has no foreground labels")
    target = None if size is None else ((int(size),) * 3 if isinstance(size, int | np.integer) else tuple(int(s) for s in size))
    arrays, affine0, cases = [], None, []
    for path in files:
        lm = load_label_map(path, labels=table)
        unknown = sorted(set(np.unique(lm.array).tolist()) - set(table.values()) - {0})
        if unknown:
            raise AnatomicaError(f"{path}: label values {unknown} are not in {meta.name}")
        shape = target or (tuple(arrays[0].shape) if arrays else lm.array.shape)
        arr, aff = resample_nearest(lm.array, lm.affine, shape)
        if affine0 is None:
            affine0 = aff
        elif not np.allclose(aff[:3, :3], affine0[:3, :3], atol=1e-4):
            raise AnatomicaError(f"{path}: voxel spacing/orientation differs from {files[0].name}; resample the dataset first")
        arrays.append(arr)
        cases.append(path.name.split(".nii")[0])
    if max(table.values()) > 255:
        raise AnatomicaError(f"{meta}: label values above 255 are not supported")
    labels = torch.from_numpy(np.stack(arrays).astype(np.uint8))
    return LabelDataset(labels, dict(sorted(table.items(), key=lambda kv: kv[1])), affine0, cases, str(folder))
