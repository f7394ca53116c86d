"""Whole guided samples on the packaged model under the sampling options of issue 11, V beside L, in one run.

Right-ventricle task, n samples paired with R held-out references (sample i with reference i mod R), the same
noise for every row. Rows (``--rows``, comma-separated names; default all but the two slow history rows):

- ``unguided``: w = 0, the floor of the errors;
- ``v``, ``v-fast``, ``v-bf16``: V-parsing with the full gradient through the denoiser, with the fast gradient
  (the c_skip(σ) Jacobian: no backward through the denoiser), and with bf16 autocast;
- ``l``, ``l-fast``, ``l-bf16``: the same for L-local/low (partial decoding through the neural field), and
  ``l-fast-bf16`` with both;
- ``floor``: the full gradient of a potential that costs nothing (0·Σẑ0) over the same σ window: the denoiser's
  own forward + backward per call, which bounds every full-gradient parsing (V / floor is the most any L can gain);
- ``l-batch1``: L at batch 1 (what a run without mixed-reference batches paid);
- ``l-nojac``: the old fast gradient without any Jacobian (emulated by σ_d → ∞, where c_skip → 1).

Batches mix references (stacked per-sample targets). Errors are the paper's L1 (``metrics.geometry``, ×1e5 /
×1e4 / ×1e5 as its table prints them) of the output label map, decoded by the decoder the parsing read, with
95 % bootstrap intervals over samples; seconds per sample are this process's CPU time of sampling (one thread,
so they follow the work rather than other processes' load, which only inflates them through shared caches and
memory bandwidth). The rows are interleaved batch by batch, so such load affects them alike; "speed ÷ V's" is
the V row's seconds per sample over the row's, "labels =" the voxel agreement with the same parsing's fp32
full-gradient row.

    .venv/bin/python benchmarks/bench_sampling_modes.py --n 32 --refs 4 --batch 8 --steps 20
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from types import SimpleNamespace

import numpy as np
import torch

from anatomica.allocator import keep_freed_memory
from anatomica.control.spec import load_task
from anatomica.data.phantoms import heart
from anatomica.diffusion.guidance import GuidedDenoiser
from anatomica.diffusion.sampling import SAMPLERS
from anatomica.guided.run import GuidanceConfig, decode_labels, guided_batch, resolve_per_reference, schedule
from anatomica.metrics.bootstrap import bootstrap
from anatomica.metrics.geometry import PAPER_SCALE, task_errors
from anatomica.model import load_model

ROWS = {  # name -> (parsing, batch of 1?, config changes, σ_d override)
    "unguided": ("l-local", False, {"scale": 0.0}, None),
    "v": ("v", False, {}, None),
    "v-fast": ("v", False, {"fast": True}, None),
    "v-bf16": ("v", False, {"precision": "bf16"}, None),
    "l": ("l-local", False, {}, None),
    "l-fast": ("l-local", False, {"fast": True}, None),
    "l-bf16": ("l-local", False, {"precision": "bf16"}, None),
    "l-fast-bf16": ("l-local", False, {"fast": True, "precision": "bf16"}, None),
    "floor": ("l-local", False, {}, None),
    "l-batch1": ("l-local", True, {}, None),
    "l-nojac": ("l-local", False, {"fast": True}, 1e6),
}
DEFAULT_ROWS = "unguided,floor,v,v-fast,v-bf16,l,l-fast,l-bf16"


def floor_batch(bundle, idx: list[int], config: GuidanceConfig) -> list[SimpleNamespace]:
    """The guided sampler with a free potential: only the denoiser's forward + backward per guided call."""
    free = GuidedDenoiser(bundle.denoiser, lambda z0: 0.0 * z0.flatten(1).sum(1), config.scale, config.sigma_min, config.sigma_max)
    z = SAMPLERS[config.sampler](free, bundle.noise(idx, 0), bundle.sigmas(config.steps))
    with torch.no_grad():
        labels = decode_labels(bundle, z, config.output_decoder)
    return [SimpleNamespace(labels=lab) for lab in labels]


def guided_rows(bundle, tasks, idx: list[int], config: GuidanceConfig, one_by_one: bool) -> list:
    """The samples of ``idx`` in one batch that mixes references (or one at a time)."""
    results = []
    for chunk in ([[i] for i in idx] if one_by_one else [idx]):
        ks = [i % len(tasks) for i in chunk]
        task = tasks[ks[0]] if len(set(ks)) == 1 else [tasks[k] for k in ks]
        results += guided_batch(bundle, task, chunk, 0, config, record_unguided=False)
    return results


def run_batch(bundle, tasks, idx: list[int], config: GuidanceConfig, one_by_one: bool, denoiser_sigma_data: float | None,
              floor: bool = False):
    """One batch of a row (or its samples one at a time): results and CPU seconds of this process (one thread: its
    work, whatever other processes' load does to wall time)."""
    if denoiser_sigma_data is not None:  # the old fast gradient: c_skip → 1
        old = bundle.denoiser.sigma_data
        bundle.denoiser.sigma_data = denoiser_sigma_data
    t0 = time.process_time()
    try:
        results = floor_batch(bundle, idx, config) if floor else guided_rows(bundle, tasks, idx, config, one_by_one)
    finally:
        if denoiser_sigma_data is not None:
            bundle.denoiser.sigma_data = old
    return results, time.process_time() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="heart32")
    ap.add_argument("--task", default="right-ventricle")
    ap.add_argument("--rows", default=DEFAULT_ROWS, help=f"comma-separated, of {', '.join(ROWS)}")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--refs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--ref-seed", type=int, default=777)
    args = ap.parse_args(argv)
    names = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in names if r not in ROWS]
    if unknown:
        ap.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    torch.set_num_threads(1)
    keep_freed_memory()
    bundle = load_model(args.model)
    spec = load_task(args.task)
    refs = [(f"ref{i}", heart.generate(np.random.default_rng([args.ref_seed, i]), bundle.shape[0])[0]) for i in range(args.refs)]
    tasks = resolve_per_reference(spec, refs, bundle.labels, bundle.shape, bundle.affine)
    configs = {}
    for name in names:
        parsing, _, changes, _ = ROWS[name]
        base = GuidanceConfig(parsing=parsing, resolution=None if parsing == "v" else "low", steps=args.steps).for_task(spec)
        configs[name] = dataclasses.replace(base, **changes)
    for name in names:  # warm-up (first-call allocations, oneDNN primitives), not timed
        run_batch(bundle, tasks, [0], dataclasses.replace(configs[name], steps=1), False, ROWS[name][3], floor=name == "floor")
    t_start = time.perf_counter()
    results = {name: [] for name in names}
    seconds = dict.fromkeys(names, 0.0)
    batches = schedule(args.n, args.batch)
    for b, idx in enumerate(batches):
        for name in names:
            _, one_by_one, _, sd = ROWS[name]
            out, dt = run_batch(bundle, tasks, idx, configs[name], one_by_one, sd, floor=name == "floor")
            results[name] += out
            seconds[name] += dt
        print(f"  batch {b + 1}/{len(batches)}: " + ", ".join(f"{k} {seconds[k] / len(results[k]):.2f}" for k in names) + " CPU s/sample", flush=True)
    domain = spec.domains[0].name
    w = {configs[k].parsing: configs[k].scale for k in names if k != "unguided"}
    print(f"\n{args.task} on {args.model}, n = {args.n}, {args.refs} references, batch {args.batch}, {args.steps} Heun steps, "
          f"1 thread, w = {w}; wall {time.perf_counter() - t_start:.0f} s\n")
    print("| row | CPU s / sample | speed ÷ V's | mass L1 ×1e5 | centroid L1 ×1e4 | covariance L1 ×1e5 | labels = fp32 full-gradient row |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        per_sample = seconds[name] / args.n
        speed = f"{seconds['v'] / seconds[name]:.2f}×" if "v" in seconds else "no V row"
        cells = []
        for m in ("mass", "centroid", "covariance"):
            v = np.array([task_errors(tasks[i % len(tasks)], r.labels)[domain][m] for i, r in enumerate(results[name])]) * PAPER_SCALE[m]
            b = bootstrap(lambda i: float(v[i].mean()), len(v), 2000)
            cells.append(f"{b['value']:.0f} [{b['ci95'][0]:.0f}, {b['ci95'][1]:.0f}]")
        ref = "v" if ROWS[name][0] == "v" else "l"
        agree = f"{100 * np.mean([(a.labels == b.labels).mean() for a, b in zip(results[name], results[ref])]):.2f} % ({ref})" if ref in results else "—"
        print(f"| {name} | {per_sample:.2f} | {speed} | {' | '.join(cells)} | {agree} |")


if __name__ == "__main__":
    main()
