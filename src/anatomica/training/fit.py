"""Training entry points: ``train_autoencoder`` and ``train_diffusion`` (fresh or ``resume``), and ``load_model``.

Both build a Lightning task (``anatomica.training``), fit it with the shared trainer (CPU/GPU, DDP with
``devices > 1``), and export ``model.safetensors`` + ``config.json`` into the run folder. Under DDP,
Lightning re-launches the same command once per extra process; only the main process prepares the
folder and writes the exported weights.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from anatomica.data.datasets import LabelDataset, load_label_dataset
from anatomica.errors import AnatomicaError
from anatomica.frame import Frame
from anatomica.io.checkpoint import load_module_state, load_tensors, load_weights, read_config, save_tensors, save_weights
from anatomica.io.files import write_json
from anatomica.io.output import check_output_dir
from anatomica.metrics.label_stats import label_volume_stats
from anatomica.model import ModelBundle, build_autoencoder, load_autoencoder, load_model
from anatomica.nn.autoencoder import AutoencoderConfig
from anatomica.nn.unet import UNetConfig
from anatomica.training.autoencoder import AutoencoderTask, AutoencoderTrainConfig, reconstruction_dice
from anatomica.training.config_checks import check_train_config, check_value
from anatomica.training.diffusion import DiffusionTask, DiffusionTrainConfig, encode_dataset, latent_normalization
from anatomica.training.runs import check_same_data, data_record, fresh_run_dir, resume_checkpoint, write_run_config
from anatomica.training.trainer import is_main_process, make_trainer

__all__ = ["train_autoencoder", "train_diffusion", "load_model", "load_autoencoder", "ModelBundle"]

SAMPLING_DEFAULTS = {"sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0}


def _load_data(path: Path, size: int | None, val_fraction: float) -> tuple[LabelDataset, LabelDataset, LabelDataset]:
    data = load_label_dataset(path, size)
    train, val = data.split(val_fraction)
    return data, train, val


def _init_state(source: Path) -> tuple[dict[str, torch.Tensor], AutoencoderConfig]:
    """Autoencoder weights and architecture of an autoencoder run, or of a diffusion run / packaged model (its
    autoencoder copy)."""
    from anatomica.model import resolve_model

    folder = resolve_model(source)
    config = read_config(folder)
    if config.get("kind") == "latent_diffusion":
        return load_tensors(folder / "autoencoder.safetensors")[0], AutoencoderConfig.from_dict(config["autoencoder"]["config"]["model"])
    return load_weights(folder, kind="autoencoder")[0], AutoencoderConfig.from_dict(config["model"])


def _run_autoencoder(folder: Path, config: dict):
    """The autoencoder copy a diffusion run (or packaged model) keeps beside its prior, in eval mode."""
    ae = build_autoencoder(config["autoencoder"]["config"], folder)
    load_module_state(ae, load_tensors(folder / "autoencoder.safetensors")[0], str(folder / "autoencoder.safetensors"))
    return ae.eval().requires_grad_(False)


def _init_prior(source: str) -> tuple[tuple[dict[str, torch.Tensor], dict], Path]:
    """((EMA weights, config), folder) of the unconditional prior ``--init`` names: a diffusion run or a packaged model."""
    from anatomica.model import resolve_model

    folder = resolve_model(source)
    state, config = load_weights(folder, kind="latent_diffusion")
    if config.get("condition") is not None:
        raise AnatomicaError(f"--init {source}: a conditional model; start from an unconditional prior")
    return (state, config), folder


def _resume_config(run: Path, kind: str, steps: int | None) -> dict:
    """The run's config, with ``steps`` (the new total) recorded when given."""
    config = read_config(run, kind)
    if steps is not None:
        check_value("steps", steps)
        config["train"]["steps"] = int(steps)
        if is_main_process():
            write_run_config(run, kind, {k: v for k, v in config.items() if k not in ("kind", "format_version")})
    return config


def train_autoencoder(
    data: Path | None = None,
    out: Path | None = None,
    size: int | None = None,
    model: AutoencoderConfig | None = None,
    train: AutoencoderTrainConfig | None = None,
    devices: int = 1,
    accelerator: str = "auto",
    nodes: int = 1,
    overwrite: bool = False,
    resume: Path | None = None,
    steps: int | None = None,
    progress: bool = True,
) -> Path:
    """Train (or resume) the label-map autoencoder; returns the run folder."""
    main = is_main_process()
    if resume is not None:
        run = Path(resume)
        config = _resume_config(run, "autoencoder", steps)
        tc = AutoencoderTrainConfig(**config["train"])
        full, train_set, val_set = _load_data(Path(config["data"]["path"]), config["data"]["shape"], tc.val_fraction)
        check_same_data(config["data"], full)
        task = AutoencoderTask(AutoencoderConfig.from_dict(config["model"]), tc, train_set)
        ckpt = resume_checkpoint(run, task, tc.steps)
    else:
        if data is None or out is None:
            raise AnatomicaError("give --data and --out (or --resume RUN)")
        run = Path(out)
        tc = train or AutoencoderTrainConfig()
        if steps is not None:
            tc = replace(tc, steps=int(steps))
        check_train_config(tc)
        if main:
            check_output_dir(run, overwrite, f"pass --overwrite to replace the run, or --resume {run} to continue it")
        full, train_set, val_set = _load_data(Path(data), size, tc.val_fraction)
        init = _init_state(Path(tc.init)) if tc.init is not None else None
        if init is not None:  # the weights decide the architecture
            if init[1].num_classes != full.num_classes:
                raise AnatomicaError(f"--init {tc.init} has {init[1].num_classes} classes, the data {full.num_classes}")
            # its architecture wins, except a finer decoding grid (``upscale``) asked for on top of it
            model = init[1] if model is None or model.upscale == 1 else replace(init[1], upscale=model.upscale)
        mc = replace(model or AutoencoderConfig(), num_classes=full.num_classes)
        if any(s % mc.downsampling for s in full.shape):
            raise AnatomicaError(f"volume size {full.shape} is not divisible by the autoencoder's downsampling {mc.downsampling}")
        config = {"model": mc.to_dict(), "train": tc.to_dict(), "data": data_record(full, tc.val_fraction)}
        torch.manual_seed(tc.seed)  # initial weights
        task = AutoencoderTask(mc, tc, train_set)
        if init is not None:  # start from a trained autoencoder (e.g. the field alone on its frozen encoder)
            task.init_from(init[0])
        ckpt = None
    with _run_folder(run, overwrite, fresh=resume is None and main):
        if resume is None and main:
            write_run_config(run, "autoencoder", config)
        trainer = make_trainer(run, tc.steps, tc.checkpoint_every, tc.log_every, devices, accelerator, nodes, progress=progress)
        trainer.fit(task, ckpt_path=ckpt)
        if trainer.is_global_zero:
            check_finite_weights(task.model, "autoencoder", trainer.global_step)
            save_weights(run, task.model, config, kind="autoencoder")
            evaluated = val_set if len(val_set) else train_set
            dice = reconstruction_dice(task.model, evaluated)
            write_json({"step": trainer.global_step, "evaluated_on": "validation" if len(val_set) else "training",
                        "n_cases": len(evaluated), "dice": dice,
                        "mean_foreground_dice": {k: float(np.mean(list(v.values()))) for k, v in dice.items()}}, run / "metrics.json")
    return run


def _run_folder(run: Path, overwrite: bool, fresh: bool):
    """A new run's folder (``fresh_run_dir``: the old run survives any failure), else the existing one."""
    return fresh_run_dir(run, overwrite) if fresh else nullcontext(run)


def check_finite_weights(module: torch.nn.Module, what: str, step: int) -> None:
    """Refuse to save weights with NaN/Inf (a diverged run): one line naming the step, never a broken model file."""
    bad = [name for name, t in module.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise AnatomicaError(f"{what} training diverged: {len(bad)} weight tensors are not finite at step {step} "
                             f"(e.g. {bad[0]}); lower --lr or the loss weights")


def _condition_spec(condition: str | None, task: str | Path | None):
    """The task spec of a conditional baseline (``--condition KIND --task NAME``), checked; None for the prior."""
    from anatomica.control.conditioning import check_condition, check_spec
    from anatomica.control.spec import load_task

    if condition is None and task is None:
        return None
    if task is None:
        raise AnatomicaError(f"--condition {condition} conditions on a task's moments: give --task NAME (e.g. right-ventricle)")
    if condition is None:
        raise AnatomicaError(f"--task {task} trains a conditional baseline: give --condition explicit or implicit")
    check_condition(condition)
    return check_spec(load_task(task))


def _training_conditioning(record: dict, train_set: LabelDataset, latent_spatial) -> tuple[torch.Tensor, dict]:
    """Normalized conditioning channels (N, C, *latent_spatial) of the training cases, each measured on itself
    (``control.conditioning``), and ``record`` completed with the domains and, for a new run, the per-channel
    mean / std of the training set (a resumed run reuses the recorded ones)."""
    from anatomica.control.conditioning import case_vectors, channel_statistics, conditioning_channels
    from anatomica.control.schema import TaskSpec

    spec, kind = TaskSpec.model_validate(record["spec"]), record["kind"]
    vectors, domains = case_vectors(spec, train_set.labels.numpy(), train_set.label_table, train_set.affine, train_set.cases)
    if "mean" not in record:
        raw = torch.stack([conditioning_channels(kind, v, train_set.shape, latent_spatial) for v in vectors])
        mean, std = channel_statistics(raw)
        record = {**record, "domains": domains, "channels": int(raw.shape[1]), "mean": mean, "std": std}
    elif domains != record["domains"]:
        raise AnatomicaError(f"the data now resolve task {spec.name!r} to domains {domains}, the run was trained on {record['domains']}")
    cond = torch.stack([conditioning_channels(kind, v, train_set.shape, latent_spatial, record["mean"], record["std"]) for v in vectors])
    return cond, record


def train_diffusion(
    data: Path | None = None,
    autoencoder: Path | None = None,
    out: Path | None = None,
    unet: UNetConfig | None = None,
    train: DiffusionTrainConfig | None = None,
    devices: int = 1,
    accelerator: str = "auto",
    nodes: int = 1,
    overwrite: bool = False,
    resume: Path | None = None,
    steps: int | None = None,
    progress: bool = True,
    condition: str | None = None,
    task: str | Path | None = None,
) -> Path:
    """Train (or resume) EDM latent diffusion on a trained autoencoder's latents; returns the run folder.

    With ``condition`` ('explicit' or 'implicit') and ``task`` (a packaged task name or a YAML file), train a
    conditional baseline of the Anatomica paper: the denoiser also sees each case's moments in the task's
    domains (``control.conditioning``); config.json records them under "condition".

    With ``train.init`` (an unconditional prior), start from its weights, latent normalization, architecture and
    autoencoder instead of from scratch (``DiffusionTask.init_from``); ``autoencoder`` is then not given."""
    main = is_main_process()
    cond_record, prior = None, None
    if resume is not None:  # a warm-started run resumes from its checkpoint, not from the prior again
        run = Path(resume)
        config = _resume_config(run, "latent_diffusion", steps)
        tc = DiffusionTrainConfig(**config["train"])
        ae = _run_autoencoder(run, config)
        d = config["data"]
        full, train_set, _ = _load_data(Path(d["path"]), d["shape"], d["val_fraction"])
        check_same_data(d, full)
        uc = UNetConfig.from_dict(config["model"]["unet"])
        shift, scale = config["model"]["latent_shift"], config["model"]["latent_scale"]
        cond_record = config.get("condition")
    else:
        tc = train or DiffusionTrainConfig()
        if tc.init is not None and autoencoder is not None:
            raise AnatomicaError("--init trains on the prior's own autoencoder; drop --autoencoder")
        if (autoencoder is None and tc.init is None) or out is None:
            raise AnatomicaError("give --autoencoder (or --init PRIOR) and --out (or --resume RUN)")
        run = Path(out)
        if steps is not None:
            tc = replace(tc, steps=int(steps))
        check_train_config(tc)
        spec = _condition_spec(condition, task)
        if spec is not None:  # guidance settings do not concern a conditional model
            cond_record = {"kind": condition, "task": spec.name, "source": str(task), "spec": spec.model_dump(mode="json", exclude={"guidance"})}
        if main:
            check_output_dir(run, overwrite, f"pass --overwrite to replace the run, or --resume {run} to continue it")
        if tc.init is not None:
            prior, prior_dir = _init_prior(tc.init)
            ae, ae_config = _run_autoencoder(prior_dir, prior[1]), prior[1]["autoencoder"]["config"]
        else:
            ae, ae_config = load_autoencoder(autoencoder)
        d = dict(ae_config["data"])
        if data is not None:
            d["path"] = str(Path(data).resolve())
        if d.get("path") is None:
            raise AnatomicaError(f"{autoencoder or tc.init}: the autoencoder does not record where its data is (a packaged model); pass --data")
        full, train_set, _ = _load_data(Path(d["path"]), d["shape"], d["val_fraction"])
        if full.label_table != ae_config["data"]["labels"]:
            raise AnatomicaError(f"{d['path']}: label table differs from the one the autoencoder was trained on")
        d = {**d, **data_record(full, d["val_fraction"])}
    cond = None
    if cond_record is not None:  # before encoding: a case the task cannot be resolved on fails fast
        cond, cond_record = _training_conditioning(cond_record, train_set, ae.latent_shape(train_set.shape)[1:])
    latents = encode_dataset(ae, train_set)
    if resume is None:
        latent_shape = list(latents.shape[1:])
        if prior is None:
            shift, scale = latent_normalization(latents)
        else:  # the prior's normalization and architecture: its weights only make sense in its own units
            m = prior[1]["model"]
            if list(m["latent_shape"]) != latent_shape:
                raise AnatomicaError(f"--init {tc.init}: its latents are {m['latent_shape']}, this data's {latent_shape}")
            shift, scale, unet = m["latent_shift"], m["latent_scale"], UNetConfig.from_dict(m["unet"])
        if cond is None:
            uc = replace(unet or UNetConfig(), spatial_dims=3, in_channels=latent_shape[0], out_channels=None)
        else:  # F([c_in·x, c]) predicts the latent channels only
            uc = replace(unet or UNetConfig(), spatial_dims=3, in_channels=latent_shape[0] + cond.shape[1], out_channels=latent_shape[0])
        voxel_ml = Frame(d["shape"], d["affine"]).voxel_volume_mm3 / 1000.0
        config = {
            "model": {"unet": uc.to_dict(), "sigma_data": 1.0 if prior is None else prior[1]["model"]["sigma_data"], "latent_shape": latent_shape,
                      "latent_shift": shift, "latent_scale": scale},
            "sampling": dict(SAMPLING_DEFAULTS if prior is None else prior[1]["sampling"]),
            "autoencoder": {"source": str(Path(autoencoder).resolve()) if prior is None else f"{tc.init} (the --init prior's)", "config": ae_config},
            "train": tc.to_dict(),
            "data": d,
            "data_stats": label_volume_stats(train_set.labels, train_set.label_table, voxel_ml),
        }
        if cond_record is not None:
            config["condition"] = cond_record
    z = (latents - torch.tensor(shift).reshape(1, -1, 1, 1, 1)) * scale
    torch.manual_seed(tc.seed)  # initial weights (a resumed run overwrites them from the checkpoint)
    lt = DiffusionTask(uc, tc, z, sigma_data=config["model"]["sigma_data"], cond=cond)
    if resume is None and any(s % lt.denoiser.net.downsampling for s in z.shape[2:]):
        raise AnatomicaError(f"latent size {tuple(z.shape[2:])} is not divisible by the UNet's {lt.denoiser.net.downsampling}; use fewer UNet levels")
    if resume is None and prior is not None:
        try:
            lt.init_from(prior[0])
        except ValueError as e:
            raise AnatomicaError(f"--init {tc.init}: {e}") from None
    ckpt = resume_checkpoint(run, lt, tc.steps) if resume is not None else None
    with _run_folder(run, overwrite, fresh=resume is None and main):
        if resume is None and main:
            write_run_config(run, "latent_diffusion", config)
            save_tensors(run / "autoencoder.safetensors", ae.state_dict(), {"kind": "autoencoder"})
        trainer = make_trainer(run, tc.steps, tc.checkpoint_every, tc.log_every, devices, accelerator, nodes, progress=progress)
        trainer.fit(lt, ckpt_path=ckpt)
        if trainer.is_global_zero:
            check_finite_weights(lt.ema, "diffusion", trainer.global_step)
            save_weights(run, lt.ema, config, kind="latent_diffusion")
    return run
