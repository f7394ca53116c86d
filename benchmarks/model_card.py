"""The card of a model (docs/pretrained.md, `anatomica models`): how well it reconstructs and how real its unguided
samples are, against held-out phantoms it never saw.

- Reconstruction Dice of both decoders per label on the held-out set (posterior mean, argmax).
- n unguided samples (Heun, seed 0) against the first n held-out phantoms: 1-NNA on Chamfer distances of surface
  point clouds (``metrics.nna``), for all foreground labels and per label; FMD (``metrics.fmd``); both with 95 %
  bootstrap intervals (both sets resampled with replacement; a resampled copy is never its own neighbour).
- Per-label volumes (mL) of samples and data, and the **task-topology rate**: the share of label maps (samples,
  data) whose Betti numbers match the anatomy's topological task on the map's own grid, each map placing the
  task's domains itself (``control.measure``), with a bootstrap interval.

Writes MODEL/card.json and MODEL/autoencoder_metrics.json (or --out-dir) and prints a table:

    .venv/bin/python benchmarks/model_card.py aorta32 --test TEST --task branch-connectivity --n 64
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from anatomica.control.spec import load_task, resolve_task
from anatomica.data.datasets import load_label_dataset
from anatomica.frame import Frame
from anatomica.guided.run import decode_labels, prior_latents
from anatomica.io.nifti import LabelMap
from anatomica.metrics.bootstrap import bootstrap_two_sample, share
from anatomica.metrics.fmd import feature_matrix, fmd_from_features
from anatomica.metrics.geometry import task_errors
from anatomica.metrics.nna import distance_matrix, surface_points
from anatomica.model import load_model, resolve_model
from anatomica.training.autoencoder import reconstruction_dice


def one_nna_boot(real: np.ndarray, gen: np.ndarray, values: list[int], affine: np.ndarray, n_boot: int) -> dict:
    """1-NNA of the union of label ``values`` with its bootstrap interval (a resampled copy is never its own
    neighbour)."""
    clouds = [surface_points(np.isin(x, values), affine, 1024, i) for i, x in enumerate(list(real) + list(gen))]
    D = distance_matrix(clouds)
    nr = len(real)
    is_real = np.arange(len(clouds)) < nr

    def score(r: np.ndarray, g: np.ndarray) -> float:
        idx = np.concatenate([r, nr + g])
        sub = D[np.ix_(idx, idx)].copy()
        sub[idx[:, None] == idx[None, :]] = np.inf  # the point itself and its resampled copies
        return float(np.mean(is_real[idx][np.argmin(sub, axis=1)] == is_real[idx]))

    out = bootstrap_two_sample(score, nr, len(gen), n_boot, bounds=(0.0, 1.0))
    return {"one_nna": out["value"], "ci95": out["ci95"]}


def held_out_description(folder: Path) -> str:
    """What the held-out set is, from its dataset.json (phantoms record their system, size and seed)."""
    d = json.loads((folder / "dataset.json").read_text())
    if "system" in d:
        return (f"{d.get('numTraining')} {d['system']} phantoms `anatomica phantoms --system {d['system']} --n {d.get('numTraining')} "
                f"--size {d.get('size')} --seed {d.get('seed')}` (not used in training)")
    return f"{d.get('numTraining')} cases of {d.get('name', folder.name)}"


def topology_hits(arrays: np.ndarray, affine: np.ndarray, labels: dict[str, int], task_name: str) -> np.ndarray:
    """Whether each label map meets every Betti target of the task, the map placing the domains itself."""
    spec = load_task(task_name)
    hits = []
    for a in arrays:
        lm = LabelMap(a, affine, labels)
        task = resolve_task(spec, lm, labels, a.shape, affine)
        rows = task_errors(task, a)
        hits.append(all(all(r["betti_match"]) for r in rows.values() if "betti_match" in r))
    return np.asarray(hits)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", help="packaged model name or run folder")
    ap.add_argument("--test", type=Path, help="held-out phantoms (anatomica phantoms --seed 1)")
    ap.add_argument("--task", help="the anatomy's topological task")
    ap.add_argument("--summary", action="store_true", help="only print the markdown table of every packaged model's card")
    ap.add_argument("--n", type=int, default=64, help="samples and held-out phantoms compared")
    ap.add_argument("--steps", type=int, default=32, help="Heun steps of the unguided samples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--decoder", default="conv", choices=["conv", "field"])
    ap.add_argument("--out-dir", type=Path, default=None, help="where card.json goes (default: the model folder)")
    a = ap.parse_args(argv)
    if a.summary:
        print(summary_table())
        return 0
    if a.model is None or a.test is None or a.task is None:
        ap.error("MODEL, --test and --task are needed (or --summary)")
    torch.set_num_threads(1)
    t0 = time.time()
    folder = resolve_model(a.model)
    out_dir = a.out_dir or folder
    b = load_model(a.model)
    test = load_label_dataset(a.test, None)
    labels = dict(b.labels)

    dice = reconstruction_dice(b.autoencoder, test)
    ae_metrics = {"weights": "as shipped (half precision, loaded as fp32)",
                  "held_out": {"data": held_out_description(a.test), "n_cases": len(test), "dice": dice},
                  "mean_foreground_dice": {k: float(np.mean(list(v.values()))) for k, v in dice.items()}}

    gen = []
    for i in tqdm(range(0, a.n, a.batch), desc="unguided samples", unit="batch"):
        z = prior_latents(b, range(i, min(a.n, i + a.batch)), a.seed, a.steps)
        with torch.no_grad():
            gen.append(decode_labels(b, z, a.decoder))
    gen = np.concatenate(gen)
    t_sample = time.time() - t0
    real = test.labels[: a.n].numpy()
    affine = np.asarray(test.affine)
    frame = Frame(test.shape, affine)
    spacing = frame.spacing

    card: dict = {"model": a.model, "n_per_side": int(len(real)), "sampler": f"heun, {a.steps} steps, seed {a.seed}",
                  "decoder": a.decoder, "held_out": held_out_description(a.test), "bootstrap": a.boot}
    card["one_nna_all_foreground"] = one_nna_boot(real, gen, list(labels.values()), affine, a.boot)
    card["one_nna_per_label"] = {k: one_nna_boot(real, gen, [v], affine, a.boot) for k, v in tqdm(labels.items(), desc="1-NNA per label")}
    fr, fg = feature_matrix(list(real), labels, spacing), feature_matrix(list(gen), labels, spacing)
    f_boot = bootstrap_two_sample(lambda r, g: fmd_from_features(fr[r], fg[g]), len(fr), len(fg), a.boot, bounds=(0.0, np.inf))
    card["fmd"] = {"fmd": f_boot["value"], "ci95": f_boot["ci95"]}
    half = len(test) // 2
    all_real = test.labels.numpy()
    card["fmd_real_half_vs_half"] = (fmd_from_features(feature_matrix(list(all_real[:half]), labels, spacing),
                                                       feature_matrix(list(all_real[half:]), labels, spacing)) if half >= 2 else None)
    voxel_ml = frame.voxel_volume_mm3 / 1000.0

    def volumes(arr: np.ndarray, v: int) -> dict:
        ml = (arr == v).reshape(len(arr), -1).sum(1) * voxel_ml
        return {"mean": float(ml.mean()), "sd": float(ml.std()), "p5_p50_p95": [float(q) for q in np.percentile(ml, [5, 50, 95])],
                "present": float((ml > 0).mean())}

    card["volume_ml"] = {k: {"samples": volumes(gen, v), "data": volumes(real, v)} for k, v in labels.items()}
    hits_gen, hits_real = topology_hits(gen, affine, labels, a.task), topology_hits(real, affine, labels, a.task)
    card["task_topology"] = {"task": a.task, "samples": share(hits_gen, a.boot), "data": share(hits_real, a.boot)}
    card["sampling_seconds"] = t_sample
    card["wall_seconds"] = time.time() - t0
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "card.json").write_text(json.dumps(card, indent=1) + "\n")
    (out_dir / "autoencoder_metrics.json").write_text(json.dumps(ae_metrics, indent=2) + "\n")

    print(HEADER + "\n" + row(a.model, card, ae_metrics))
    print({k: round(v["one_nna"], 3) for k, v in card["one_nna_per_label"].items()}, f"wall {card['wall_seconds']:.0f} s")
    return 0


HEADER = ("| model | Dice conv / field (held-out) | 1-NNA [95 % CI] | FMD [95 % CI] (data vs data) | task | task topology: samples | data |\n"
          "|---|---|---|---|---|---|---|")


def row(name: str, card: dict, ae_metrics: dict) -> str:
    """One markdown row of a model's card."""
    nna, f, t = card["one_nna_all_foreground"], card["fmd"], card["task_topology"]
    md = ae_metrics["mean_foreground_dice"]
    pct = lambda r: f"{100 * r['rate']:.1f} % [{100 * r['ci95'][0]:.1f}, {100 * r['ci95'][1]:.1f}]"  # noqa: E731
    half = card.get("fmd_real_half_vs_half")
    return (f"| {name} | {md['conv']:.3f} / {md['field']:.3f} | {nna['one_nna']:.3f} [{nna['ci95'][0]:.3f}, {nna['ci95'][1]:.3f}] "
            f"| {f['fmd']:.1f} [{f['ci95'][0]:.1f}, {f['ci95'][1]:.1f}] ({'—' if half is None else f'{half:.1f}'}) | `{t['task']}` "
            f"| {pct(t['samples'])} | {pct(t['data'])} |")


def summary_table() -> str:
    """The cards of every packaged model (n per side, sampler) as one markdown table."""
    from anatomica.pretrained import packaged_card, packaged_models, pretrained_path

    lines = [HEADER]
    for name in packaged_models():
        card, metrics = packaged_card(name), pretrained_path(name) / "autoencoder_metrics.json"
        if card is not None and metrics.is_file():
            lines.append(row(name, card, json.loads(metrics.read_text())))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
