"""Whole guided samples on the packaged model under the sampling options issue 11 added, in one run.

Right-ventricle task (L-local/low unless ``--parsing``), n samples paired with R held-out references (sample i
with reference i mod R), the same noise for every row. Rows:

- batching: ``--batch-size 1`` (what mixing nothing forces with R references) vs batches of B that mix
  references (stacked per-sample targets);
- gradient: the full gradient through the denoiser vs the fast gradient with the c_skip(σ) Jacobian vs the
  old fast gradient without any Jacobian (emulated by σ_d → ∞, where c_skip → 1);
- precision: fp32 vs bf16 autocast (label agreement with the fp32 row, voxel-wise);
- unguided (w = 0) as the floor of the errors.

Errors are the paper's L1 (``metrics.geometry``, ×1e5 / ×1e4 / ×1e5 as its table prints them) with 95 %
bootstrap intervals over samples; seconds per sample are wall time of sampling. Rows run interleaved in one
process on one thread, so load from other processes affects them alike.

    .venv/bin/python benchmarks/bench_sampling_modes.py --n 16 --refs 4 --steps 20
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from anatomica.allocator import keep_freed_memory
from anatomica.control.spec import load_task
from anatomica.data.phantoms import heart
from anatomica.guided.run import GuidanceConfig, guided_batch, resolve_per_reference, schedule
from anatomica.metrics.geometry import PAPER_SCALE, task_errors
from anatomica.model import load_model


def bootstrap(values: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    means = rng.choice(values, (reps, len(values))).mean(1)
    return float(values.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def run_row(bundle, tasks, n: int, batch: int, config: GuidanceConfig, denoiser_sigma_data: float | None = None):
    """All n samples of one row: labels, per-sample errors, seconds per sample."""
    if denoiser_sigma_data is not None:  # the old fast gradient: c_skip → 1
        old = bundle.denoiser.sigma_data
        bundle.denoiser.sigma_data = denoiser_sigma_data
    results = []
    t0 = time.perf_counter()
    try:
        for idx in schedule(n, batch):
            ks = [i % len(tasks) for i in idx]
            task = tasks[ks[0]] if len(set(ks)) == 1 else [tasks[k] for k in ks]
            results += guided_batch(bundle, task, idx, 0, config, record_unguided=False)
    finally:
        if denoiser_sigma_data is not None:
            bundle.denoiser.sigma_data = old
    seconds = (time.perf_counter() - t0) / n
    errors = [task_errors(tasks[i % len(tasks)], r.labels) for i, r in enumerate(results)]
    return [r.labels for r in results], errors, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="heart32")
    ap.add_argument("--task", default="right-ventricle")
    ap.add_argument("--parsing", default="l-local")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--refs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--ref-seed", type=int, default=777)
    args = ap.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()
    bundle = load_model(args.model)
    spec = load_task(args.task)
    refs = [(f"ref{i}", heart.generate(np.random.default_rng([args.ref_seed, i]), bundle.shape[0])[0]) for i in range(args.refs)]
    tasks = resolve_per_reference(spec, refs, bundle.labels, bundle.shape, bundle.affine)
    base = GuidanceConfig(parsing=args.parsing, resolution=None if args.parsing == "v" else "low", steps=args.steps).for_task(spec)
    rows = [
        ("unguided (w = 0)", args.batch, dataclasses.replace(base, scale=0.0), None),
        ("full gradient, batch 1", 1, base, None),
        (f"full gradient, batch {args.batch} (mixed references)", args.batch, base, None),
        ("fast, c_skip Jacobian", args.batch, dataclasses.replace(base, fast=True), None),
        ("fast, no Jacobian (before)", args.batch, dataclasses.replace(base, fast=True), 1e6),
        ("full gradient, bf16", args.batch, dataclasses.replace(base, precision="bf16"), None),
    ]
    t_start = time.perf_counter()
    out = {}
    for name, batch, cfg, sd in rows:
        out[name] = run_row(bundle, tasks, args.n, batch, cfg, sd)
        print(f"  {name}: {out[name][2]:.2f} s/sample", flush=True)
    domain = spec.domains[0].name
    ref_labels = out[f"full gradient, batch {args.batch} (mixed references)"][0]
    print(f"\n{args.task}, {args.parsing}/low, n = {args.n}, {args.refs} references, {args.steps} Heun steps, 1 thread, "
          f"w = {base.scale:g}; wall {time.perf_counter() - t_start:.0f} s\n")
    print("| row | s / sample | mass L1 ×1e5 | centroid L1 ×1e4 | covariance L1 ×1e5 | labels = fp32 row |")
    print("|---|---|---|---|---|---|")
    for name, (labels, errors, seconds) in out.items():
        cells = []
        for m in ("mass", "centroid", "covariance"):
            v = np.array([e[domain][m] for e in errors]) * PAPER_SCALE[m]
            mean, lo, hi = bootstrap(v)
            cells.append(f"{mean:.0f} [{lo:.0f}, {hi:.0f}]")
        agree = np.mean([(a == b).mean() for a, b in zip(labels, ref_labels)])
        print(f"| {name} | {seconds:.2f} | {' | '.join(cells)} | {100 * agree:.2f} % |")


if __name__ == "__main__":
    main()
