"""The Lightning ``Trainer`` every anatomica model trains with: CPU or GPU, one or many processes (DDP), CSV
(and TensorBoard when installed) logs, periodic atomic checkpoints through safetensors, a progress bar."""

from __future__ import annotations

import importlib.util
import logging
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.strategies import DDPStrategy

from anatomica.errors import AnatomicaError
from anatomica.training.checkpoint_io import SafetensorsCheckpointIO

CHECKPOINT_DIR = "checkpoints"
LAST = "last.safetensors"


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropAdverts())


class _AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        pass  # Lightning deletes an existing metrics.csv here; a resumed run appends to it instead


class RunCSVLogger(CSVLogger):
    """CSV metrics at ``logs/csv/metrics.csv`` that survive ``--resume`` (rows after the resumed step are trimmed first)."""

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def trim_csv_log(run_dir: Path, step: int) -> None:
    """Drop logged rows at or after ``step`` (written after the checkpoint a run resumes from)."""
    import csv

    path = Path(run_dir) / "logs" / "csv" / "metrics.csv"
    if not path.is_file():
        return
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames or [], [r for r in reader if r.get("step") and int(float(r["step"])) < step]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


class RunCheckpoint(ModelCheckpoint):
    """Periodic checkpoints plus ``last`` at the very end of training, also when the last step is off the period
    (Lightning's own ``save_last`` skips the end if any checkpoint was written before)."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


def is_main_process() -> bool:
    """True in the launching process (rank 0). Lightning's DDP launcher re-runs the command with LOCAL_RANK set."""
    return rank_zero_only.rank == 0


class FiniteLoss(L.Callback):
    """Stop the moment the training loss is not finite, naming the step (before a checkpoint can store NaNs)."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not torch.isfinite(loss.detach()).all():
            raise AnatomicaError(f"training diverged at step {trainer.global_step}: the loss is {float(loss.detach().mean())}; "
                                 "lower --lr or the loss weights")


def make_trainer(
    run_dir: Path,
    max_steps: int,
    checkpoint_every: int,
    log_every: int,
    devices: int = 1,
    accelerator: str = "auto",
    nodes: int = 1,
    progress: bool = True,
) -> L.Trainer:
    """A trainer writing ``run_dir/logs/`` and ``run_dir/checkpoints/step*.safetensors`` + ``last.safetensors``."""
    loggers = [RunCSVLogger(run_dir, name="logs", version="csv")]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        loggers.append(TensorBoardLogger(run_dir, name="logs", version="tensorboard"))
    ckpt = RunCheckpoint(
        dirpath=run_dir / CHECKPOINT_DIR,
        filename="step{step:06d}",
        auto_insert_metric_name=False,
        every_n_train_steps=checkpoint_every,
        save_top_k=-1,
        save_last=True,
        enable_version_counter=False,
    )
    ckpt.FILE_EXTENSION = ".safetensors"  # the content is safetensors, never a pickle
    callbacks = [FiniteLoss(), ckpt]
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, min(log_every, 10))))
    # Lightning picks the process-group backend from the device: gloo on CPU, NCCL on CUDA GPUs.
    strategy = "auto" if devices * nodes == 1 else DDPStrategy()
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # Batches and noise are functions of the global step (training/steps.py), so resuming mid-epoch is exact.
    warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch ended.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*is smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
    return L.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=nodes,
        strategy=strategy,
        max_steps=max_steps,
        max_epochs=-1,
        logger=loggers,
        callbacks=callbacks,
        plugins=[SafetensorsCheckpointIO()],
        log_every_n_steps=log_every,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
    )


def last_checkpoint(run_dir: Path) -> Path | None:
    p = Path(run_dir) / CHECKPOINT_DIR / LAST
    return p if p.is_file() else None
