"""Unguided samples of a diffusion prior against held-out phantoms: 1-NNA (Chamfer distances of surface point
clouds, ``metrics.nna``) with a bootstrap interval, per label and for all foreground labels, FMD (``metrics.fmd``)
and per-label volumes. Bootstrap: both sets resampled with replacement, a resampled copy is never its own nearest
neighbour. Used for docs/pretrained.md:

    .venv/bin/python benchmarks/eval_prior.py heart32 TEST 64 32 out.json --batch 32 --boot 1000

(TEST: ``anatomica phantoms --system heart --n 100 --size 32 --seed 1 --out TEST``; the first N are compared.)
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)
from anatomica.data.datasets import load_label_dataset
from anatomica.guided.run import decode_labels, prior_latents
from anatomica.metrics.fmd import fmd
from anatomica.metrics.nna import distance_matrix, one_nna_from_distances, surface_points
from anatomica.model import load_model

ap = argparse.ArgumentParser()
ap.add_argument("run"); ap.add_argument("test"); ap.add_argument("n", type=int); ap.add_argument("steps", type=int); ap.add_argument("out")
ap.add_argument("--decoder", default="conv"); ap.add_argument("--seed", type=int, default=0); ap.add_argument("--boot", type=int, default=2000)
ap.add_argument("--batch", type=int, default=50)
a = ap.parse_args()
t0 = time.time()
b = load_model(a.run)
gen = []
for i in range(0, a.n, a.batch):
    z = prior_latents(b, range(i, min(a.n, i + a.batch)), a.seed, a.steps)
    with torch.no_grad():
        gen.append(decode_labels(b, z, a.decoder))
gen = np.concatenate(gen)
t_sample = time.time() - t0
te = load_label_dataset(a.test, None)
real = te.labels[: a.n].numpy()
affine = te.affine
labels = b.labels
spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
res = {"run": str(a.run), "n_per_side": int(len(real)), "n_generated": int(len(gen)), "sampler_steps": a.steps, "decoder": a.decoder,
       "sampling_seconds": t_sample}

def nna_boot(values, name, rng):
    clouds = [surface_points(np.isin(x, values), affine, 1024, i) for i, x in enumerate(list(real) + list(gen))]
    D = distance_matrix(clouds)
    is_real = np.array([True] * len(real) + [False] * len(gen))
    point = one_nna_from_distances(D.copy(), is_real)
    nr, ng = len(real), len(gen)
    boots = []
    for _ in range(a.boot):
        r = np.concatenate([rng.integers(0, nr, nr), nr + rng.integers(0, ng, ng)])
        sub = D[np.ix_(r, r)].copy()
        sub[r[:, None] == r[None, :]] = np.inf  # a resampled copy is not its own neighbour
        nearest = np.argmin(sub, axis=1)
        boots.append(np.mean(is_real[r][nearest] == is_real[r]))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"one_nna": point, "ci95": [float(lo), float(hi)]}

rng = np.random.default_rng(0)
res["one_nna_all_foreground"] = nna_boot(list(labels.values()), "all", rng)
res["one_nna_per_label"] = {k: nna_boot([v], k, rng) for k, v in labels.items()}
res["fmd"] = float(fmd(list(real), list(gen), labels, spacing))
# reference point: FMD between two disjoint halves of real phantoms (what "indistinguishable" looks like)
tr = te.labels.numpy()
res["fmd_real_half_vs_half"] = float(fmd(list(tr[: len(tr) // 2]), list(tr[len(tr) // 2:]), labels, spacing))
vol = lambda arr, v: (arr == v).reshape(len(arr), -1).sum(1) * float(np.prod(spacing)) / 1000
res["volume_ml"] = {k: {"generated": [float(vol(gen, v).mean()), float(vol(gen, v).std())], "real": [float(vol(real, v).mean()), float(vol(real, v).std())],
                        "present_generated": float(((gen == v).reshape(len(gen), -1).any(1)).mean())} for k, v in labels.items()}
res["wall_seconds"] = time.time() - t0
Path(a.out).write_text(json.dumps(res, indent=1))
print(json.dumps({k: res[k] for k in ("one_nna_all_foreground", "fmd", "fmd_real_half_vs_half", "sampling_seconds", "wall_seconds")}))
print({k: round(v["one_nna"], 3) for k, v in res["one_nna_per_label"].items()})
