"""Label tables and dataset folders in the Medical Segmentation Decathlon / nnU-Net v2 layout."""

from __future__ import annotations

import json
from pathlib import Path

from anatomica.errors import AnatomicaError
from anatomica.io.files import write_json
from anatomica.io.nifti import _check_path, _first_line, is_nifti


def read_label_table(path: str | Path) -> dict[str, int]:
    """Labels from a dataset.json (nnU-Net v2 ``{name: value}`` or MSD ``{"value": name}``) or a plain JSON table."""
    path = _check_path(Path(path))
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AnatomicaError(f"{path}: not valid JSON ({_first_line(e)})") from None
    table = meta.get("labels", meta) if isinstance(meta, dict) else None
    if not isinstance(table, dict):
        raise AnatomicaError(f"{path}: no label table (expected a 'labels' object)")
    out: dict[str, int] = {}
    for k, v in table.items():
        if isinstance(v, int) and not isinstance(v, bool):  # nnU-Net v2: name -> value
            name, value = k, v
        elif isinstance(v, str) and k.lstrip("-").isdigit():  # MSD: "value" -> name
            name, value = v, int(k)
        else:
            raise AnatomicaError(f"{path}: label entry {k!r}: {v!r} is neither name->int nor 'int'->name")
        if value < 0:
            raise AnatomicaError(f"{path}: label {name!r} has negative value {value}")
        out[name] = value
    out.pop("background", None)
    return {n: v for n, v in out.items() if v != 0}


def find_dataset_labels(path: Path) -> dict[str, int] | None:
    """The label table of the dataset.json next to ``labelsTr/`` holding ``path``, if any."""
    for folder in (path.parent, path.parent.parent):
        candidate = folder / "dataset.json"
        if candidate.is_file():
            return read_label_table(candidate)
    return None


def list_label_files(folder: str | Path) -> list[Path]:
    """NIfTI files of a dataset folder: ``labelsTr/`` when present, else the folder itself, sorted."""
    folder = _check_path(Path(folder))
    if not folder.is_dir():
        raise AnatomicaError(f"{folder}: not a folder")
    sub = folder / "labelsTr"
    search = sub if sub.is_dir() else folder
    files = sorted(p for p in search.iterdir() if p.is_file() and is_nifti(p) and not p.name.startswith("."))
    if not files:
        raise AnatomicaError(f"{folder}: no .nii or .nii.gz label maps found")
    return files


def write_dataset_json(folder: str | Path, name: str, labels: dict[str, int], cases: list[str], extra: dict | None = None) -> Path:
    """dataset.json in the nnU-Net v2 style, with the MSD ``training`` file list."""
    folder = Path(folder)
    meta = {
        "name": name,
        "channel_names": {"0": "label"},
        "labels": {"background": 0, **labels},
        "numTraining": len(cases),
        "file_ending": ".nii.gz",
        "training": [{"label": f"./labelsTr/{c}.nii.gz"} for c in cases],
    }
    if extra:
        meta.update(extra)
    return write_json(meta, folder / "dataset.json")
