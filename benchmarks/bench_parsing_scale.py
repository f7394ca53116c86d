"""Where the time of one guided call goes as the volume grows: V-parsing against L-parsing at 32³ … 96³.

(The issue-11 benchmark with the denoiser floor, 128³ and both allocator settings is bench_partial_decoding.py.)

The packaged heart model is 32³ (latent 4×8³), where the conv decoder is cheap and the denoiser's own forward
and backward pass bound how much L-parsing can save. This benchmark builds the *same architectures* (the
packaged autoencoder and UNet configs) for larger label maps, latent = size / 4, with random weights (timing
does not depend on training), resolves the right-ventricle task on a heart phantom of that size and times one
guided call (full gradient through the denoiser, σ = 2) per parsing mode: seconds per sample, a batch of 2.

    .venv/bin/python benchmarks/bench_parsing_scale.py --sizes 32,64,96 --threads 1 --repeats 7

Prints a markdown table; docs/results.md holds the latest numbers.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from bench_guidance import profile_step
from bench_partial_decoding import random_bundle

from anatomica.control.spec import load_task, resolve_task
from anatomica.model import ModelBundle

MODES = (("V", "v", None), ("L-local/low", "l-local", "low"), ("L-local/high", "l-local", "high"), ("L-coarse/low", "l-coarse", "low"))


def field_grid_seconds(bundle: ModelBundle, batch: int, repeats: int) -> float:
    """Seconds per sample of the neural field's local cell features over the *whole* latent, forward + backward
    (an L-local query convolves only its crop of it: benchmarks/bench_partial_decoding.py)."""
    times = []
    for _ in range(repeats):
        z = bundle.initial_noise(batch, 0).div(40.0).requires_grad_(True)
        t0 = time.perf_counter()
        feats = [f for f in bundle.autoencoder.field.features(z) if f is not None]
        torch.autograd.grad(sum(f.sum() for f in feats), z)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) / batch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="32,64,96", help="label-map sizes (multiples of 4)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    spec = load_task("right-ventricle")
    print(f"torch {torch.__version__}, {args.threads} thread(s), one guided call (full gradient), batch {args.batch}, "
          f"median of {args.repeats}; seconds per sample\n")
    print("| label map | latent | denoiser fwd + bwd | field feature grid fwd + bwd | " + " | ".join(m for m, _, _ in MODES) + " | V / L-local/low | V parsing share |")
    print("|---|---|---|---|" + "---|" * len(MODES) + "---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        bundle, ref = random_bundle(size)
        task = resolve_task(spec, ref, bundle.labels, bundle.shape, bundle.affine)
        prof = {m: profile_step(bundle, task, mode, res, batch=args.batch, repeats=args.repeats) for m, mode, res in MODES}
        den = prof["V"]["denoiser_forward"] + prof["V"]["denoiser_backward_alone"]
        v, l_low = prof["V"]["total"], prof["L-local/low"]["total"]
        grid = field_grid_seconds(bundle, args.batch, args.repeats)
        print(f"| {size}³ | {'×'.join(map(str, bundle.latent_shape[1:]))} | {den:.3f} | {grid:.3f} | " + " | ".join(f"{prof[m]['total']:.3f}" for m, _, _ in MODES)
              + f" | {v / l_low:.1f}× | {100 * prof['V']['parsing_share'] / v:.0f} % |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
