"""Run folders: what ``--out`` and ``--resume`` point at.

A run folder holds ``config.json`` (kind, model and training configuration, the dataset's label table,
affine and shape), ``model.safetensors`` once training has finished, ``checkpoints/`` (resume state),
``logs/`` (CSV, TensorBoard) and ``metrics.json``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from anatomica.data.datasets import LabelDataset
from anatomica.errors import AnatomicaError
from anatomica.io.checkpoint import FORMAT_VERSION, load_tree
from anatomica.io.files import write_json
from anatomica.io.output import OLD_PREFIX, check_output_dir, remove_stale, set_interrupt_note
from anatomica.training.trainer import CHECKPOINT_DIR, is_main_process, last_checkpoint, trim_csv_log


@contextmanager
def fresh_run_dir(out: Path, overwrite: bool) -> Iterator[Path]:
    """The folder of a new training run, created only once the input has been validated.

    An existing run (``--overwrite``) is moved aside and comes back whole if training fails or is
    interrupted; it is deleted once the new run has finished. A new folder whose run fails before its first
    checkpoint is removed again, so a rerun is not blocked; one with checkpoints is kept for ``--resume``.
    """
    out = check_output_dir(Path(out), overwrite, f"pass --overwrite to replace the run, or --resume {out} to continue it")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out)
    old = None
    if out.is_dir() and any(out.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f"{OLD_PREFIX}{out.name}-", dir=out.parent))
        os.rmdir(old)
        os.rename(out, old)
    out.mkdir(parents=True, exist_ok=True)
    set_interrupt_note(f"{out} is as it was" if old else f"nothing kept in {out}")
    try:
        yield out
    except BaseException:
        if old is not None:
            shutil.rmtree(out, ignore_errors=True)
            os.rename(old, out)
        elif last_checkpoint(out) is None:
            shutil.rmtree(out, ignore_errors=True)
        else:
            set_interrupt_note(f"checkpoints kept in {out}; continue with --resume {out}")
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_run_config(out: Path, kind: str, config: dict) -> None:
    write_json({"kind": kind, "format_version": FORMAT_VERSION, **config}, Path(out) / "config.json")


def labels_digest(labels: torch.Tensor) -> str:
    return hashlib.sha256(labels.contiguous().numpy().tobytes()).hexdigest()[:16]


def data_record(data: LabelDataset, val_fraction: float) -> dict:
    """What a run remembers of its dataset: where, geometry, label table, and a digest to detect changes."""
    return {
        "path": str(Path(data.source).resolve()),
        "shape": list(data.shape),
        "labels": data.label_table,
        "affine": np.asarray(data.affine).tolist(),
        "num_classes": data.num_classes,
        "cases": data.cases,
        "val_fraction": val_fraction,
        "digest": labels_digest(data.labels),
    }


def check_same_data(record: dict, data: LabelDataset) -> None:
    if labels_digest(data.labels) != record.get("digest"):
        raise AnatomicaError(f"{record.get('path')}: the dataset changed since this run started; resume needs the same data")


def resume_checkpoint(run: Path, module: torch.nn.Module, steps: int) -> Path:
    """The run's last checkpoint, validated against ``module`` (keys and shapes) before Lightning touches it."""
    ckpt = last_checkpoint(run)
    if ckpt is None:
        raise AnatomicaError(f"{run}: no checkpoint to resume from ({CHECKPOINT_DIR}/last.safetensors is missing)")
    tree = load_tree(ckpt)
    state = tree.get("state_dict") if isinstance(tree, dict) else None
    if not isinstance(state, dict) or "global_step" not in tree:
        raise AnatomicaError(f"{ckpt}: not a training checkpoint (no state_dict / global_step)")
    own = module.state_dict()
    if set(own) != set(state):
        diff = sorted(set(own) ^ set(state))
        raise AnatomicaError(f"{ckpt}: checkpoint does not match the configured model ({len(diff)} differing tensors, e.g. {diff[0]})")
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise AnatomicaError(f"{ckpt}: tensor {k} has shape {tuple(state[k].shape)}, the model expects {tuple(v.shape)}")
    done = int(tree["global_step"])
    if done >= steps and (Path(run) / "model.safetensors").is_file():
        raise AnatomicaError(f"{run}: already trained for {done} steps; pass --steps N with N > {done} to continue")
    if is_main_process():
        trim_csv_log(run, done)
    return ckpt
