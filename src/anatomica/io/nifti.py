"""Label maps on disk: NIfTI reading with validation and atomic writing (label tables: ``io.dataset``).

A :class:`LabelMap` carries its affine and label table with the array, so geometry never gets lost
between reading, processing and writing (TorchIO's idea).
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from anatomica.errors import AnatomicaError
from anatomica.io.files import atomic_write

NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass
class LabelMap:
    """An integer label volume (X, Y, Z) with its voxel-to-world affine (mm) and label table."""

    array: np.ndarray
    affine: np.ndarray
    labels: dict[str, int] = field(default_factory=dict)  # name -> value, background excluded

    def __post_init__(self) -> None:
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.array.ndim != 3:
            raise AnatomicaError(f"a label map must be 3D, got shape {tuple(self.array.shape)}")
        if self.affine.shape != (4, 4):
            raise AnatomicaError(f"affine must be 4x4, got {self.affine.shape}")

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along each array axis (column norms of the affine)."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def voxel_volume_ml(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0

    def name_of(self, value: int) -> str:
        for name, v in self.labels.items():
            if v == value:
                return name
        return f"label_{value}"

    def present_labels(self) -> dict[str, int]:
        """Every nonzero value in the array with its name (table names first, else ``label_<v>``)."""
        values = [int(v) for v in np.unique(self.array) if v != 0]
        table = {name: v for name, v in self.labels.items()}
        out = {name: v for name, v in table.items()}
        for v in values:
            if v not in table.values():
                out[f"label_{v}"] = v
        return dict(sorted(out.items(), key=lambda kv: kv[1]))


def _check_path(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise AnatomicaError(f"{path}: no such file or folder")
    return path


def is_nifti(path: Path) -> bool:
    return str(path).endswith(NIFTI_SUFFIXES)


def load_volume(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read any NIfTI volume as (array float or int, affine); every read failure becomes one line."""
    path = _check_path(Path(path))
    if path.is_dir():
        raise AnatomicaError(f"{path}: is a folder, expected a .nii or .nii.gz file")
    if not is_nifti(path):
        raise AnatomicaError(f"{path}: not a NIfTI file (expected .nii or .nii.gz)")
    if path.stat().st_size == 0:
        raise AnatomicaError(f"{path}: empty file")
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except (nib.filebasedimages.ImageFileError, OSError, ValueError, EOFError, zlib.error) as e:
        raise AnatomicaError(f"{path}: {_diagnose(path, e)}") from None
    return data, np.asarray(img.affine, dtype=np.float64)


def _diagnose(path: Path, error: Exception) -> str:
    """Say why a file is not a readable NIfTI: bad gzip, truncated stream, short header, or not NIfTI at all."""
    raw = path.read_bytes()
    if str(path).endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except gzip.BadGzipFile:
            return "not a valid gzip file (random or corrupted bytes?)"
        except (EOFError, zlib.error):
            return "truncated file (the compressed stream ends early)"
    if len(raw) >= 4 and int.from_bytes(raw[:4], "little") not in (348, 540) and int.from_bytes(raw[:4], "big") not in (348, 540):
        return "not a NIfTI image (no NIfTI header)"
    if len(raw) < 348:
        return "truncated file (incomplete NIfTI header)"
    if isinstance(error, EOFError) or "expected" in str(error).lower():
        return f"truncated file (fewer voxels than the header declares: {_first_line(error)})"
    return f"unreadable NIfTI ({_first_line(error)})"


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def as_label_array(data: np.ndarray, source: str = "label map") -> np.ndarray:
    """Validate that ``data`` is a 3D map of non-negative integer labels; return it as int32."""
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise AnatomicaError(f"{source}: expected a 3D label map, got a {data.ndim}D array of shape {tuple(data.shape)}")
    if np.issubdtype(data.dtype, np.floating):
        if not np.all(np.isfinite(data)):
            raise AnatomicaError(f"{source}: contains NaN or infinite values, labels must be integers")
        if np.any(data != np.round(data)):
            raise AnatomicaError(f"{source}: contains fractional values, labels must be integers (is this an image?)")
    elif not np.issubdtype(data.dtype, np.integer) and data.dtype != bool:
        raise AnatomicaError(f"{source}: unsupported data type {data.dtype} for a label map")
    if data.size and data.min() < 0:
        raise AnatomicaError(f"{source}: contains negative labels (min {data.min():g}), labels must be >= 0")
    if data.size and data.max() > np.iinfo(np.int32).max:
        raise AnatomicaError(f"{source}: label value {data.max():g} is too large")
    return np.asarray(data, dtype=np.int32)


def load_label_map(path: str | Path, labels: dict[str, int] | None = None) -> LabelMap:
    """Read and validate a NIfTI label map. ``labels`` (name -> value) defaults to the enclosing dataset.json's."""
    path = Path(path)
    data, affine = load_volume(path)
    array = as_label_array(data, str(path))
    if labels is None:
        from anatomica.io.dataset import find_dataset_labels  # io.dataset builds on this module

        labels = find_dataset_labels(path)
    return LabelMap(array, affine, dict(labels or {}))


def save_label_map(label_map: LabelMap, path: str | Path, overwrite: bool = False) -> Path:
    """Write a label map as NIfTI (uint8/int16 by range) with its affine, atomically."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise AnatomicaError(f"{path}: exists (pass --overwrite to replace it)")
    arr = label_map.array
    dtype = np.uint8 if arr.max(initial=0) < 256 else np.int16
    img = nib.Nifti1Image(arr.astype(dtype), label_map.affine)
    img.header.set_xyzt_units("mm")
    img.set_qform(label_map.affine, code=1)
    img.set_sform(label_map.affine, code=1)
    atomic_write(path, lambda tmp: nib.save(img, tmp))
    return path


def save_volume(array: np.ndarray, affine: np.ndarray, path: str | Path, overwrite: bool = False) -> Path:
    """Write a float image volume (e.g. a rendered CT or MRI slice stack) with its affine, atomically."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise AnatomicaError(f"{path}: exists (pass --overwrite to replace it)")
    img = nib.Nifti1Image(np.asarray(array, dtype=np.float32), affine)
    img.header.set_xyzt_units("mm")
    atomic_write(path, lambda tmp: nib.save(img, tmp))
    return path
