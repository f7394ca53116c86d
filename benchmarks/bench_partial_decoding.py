"""Partial decoding per guided call: V- against L-local/low and L-coarse/low parsing, and the denoiser's own cost.

One guided call (Anatomica, CVPR 2026, "training-free guidance"): ẑ0 = D(z; σ), parse the task's substructures
from ẑ0, potential L, ∇_z L through the denoiser (full gradient). Its floor is the denoiser's own forward +
backward (a vector-Jacobian product alone): a parser that is "nearly free" adds little to it. V-parsing
conv-decodes the whole volume; L-local queries the neural field at the domain's points only, from a crop of ẑ0
(``FieldDecoder.query``: points' cell box ⊕ receptive field), so its cost follows the domain, not the volume.

The packaged heart32 architectures (autoencoder, bounded-receptive-field field, UNet) are rebuilt for larger
label maps (latent = size / 4) with random weights (timing does not depend on training); the right-ventricle
task is resolved on a heart phantom of that size. Modes are interleaved within every repeat so that load from
other processes hits all of them alike. Times are the process's CPU seconds (user + system, one torch thread),
which on a shared machine follow the work done, page faults included, rather than the other processes' load;
the table gives medians per sample (a batch of ``--batch``), the JSON also wall-clock medians.

Allocator: glibc returns big freed blocks (mmap'ed, > the dynamic threshold ≤ 32 MB) to the OS after every call,
so the next call faults them back in. ``--allocator keep`` sets ``MALLOC_MMAP_MAX_=0`` and
``MALLOC_TRIM_THRESHOLD_`` = 64 GiB (glibc's own tunables, read at process start) so freed memory stays in the
process; ``--allocator both`` (default) runs one child process per setting and prints both tables.

    .venv/bin/python benchmarks/bench_partial_decoding.py --sizes 32,64,96,128 --threads 1 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import torch

KEEP_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(64 * 2**30)}
MODES = (("V", "v", None), ("L-local/low", "l-local", "low"), ("L-coarse/low", "l-coarse", "low"))


def random_bundle(size: int, seed: int = 0, field: dict | None = None):
    """The packaged model's architectures for size³ label maps, random weights; and a heart phantom reference."""
    from anatomica.data.phantoms import heart
    from anatomica.diffusion.edm import EDMPrecond
    from anatomica.model import ModelBundle
    from anatomica.nn.autoencoder import Autoencoder, AutoencoderConfig
    from anatomica.nn.unet import DenoiserUNet, UNetConfig
    from anatomica.pretrained import pretrained_path

    config = json.loads((pretrained_path("heart32") / "config.json").read_text())
    ae_model = dict(config["autoencoder"]["config"]["model"])
    if field:
        ae_model["field"] = {**ae_model.get("field", {}), **field}
    torch.manual_seed(seed)
    ae = Autoencoder(AutoencoderConfig.from_dict(ae_model)).eval().requires_grad_(False)
    denoiser = EDMPrecond(DenoiserUNet(UNetConfig.from_dict(config["model"]["unet"])), sigma_data=1.0).eval().requires_grad_(False)
    ref, _ = heart.generate(np.random.default_rng([seed, size]), size)
    latent = ae.latent_shape((size,) * 3)
    bundle = ModelBundle(autoencoder=ae, denoiser=denoiser, latent_shape=tuple(latent), latent_scale=1.0,
                         latent_shift=torch.zeros(latent[0]), labels=config["data"]["labels"], affine=ref.affine,
                         shape=(size,) * 3, sigma_min=0.002, sigma_max=80.0, rho=7.0, config=config)
    return bundle, ref


def crop_fraction(bundle, task) -> float:
    """Share of the latent's cells the L-local query convolves (its crop: the points' box ⊕ receptive field)."""
    from anatomica.nn.field import latent_coordinates

    field = bundle.autoencoder.field
    pts = torch.cat(task.points())
    L = bundle.latent_shape[1:]
    lo, hi = field.crop_box(latent_coordinates(pts, L, field.config.downsampling), L)
    return float(np.prod([b - a for a, b in zip(lo, hi)]) / np.prod(L))


def time_size(size: int, batch: int, repeats: int, sigma: float = 2.0) -> dict:
    from anatomica.control.spec import load_task, resolve_task
    from anatomica.guided.parsers import make_parsing

    bundle, ref = random_bundle(size)
    task = resolve_task(load_task("right-ventricle"), ref, bundle.labels, bundle.shape, bundle.affine)
    parsings = {name: make_parsing(bundle, task, mode, res) for name, mode, res in MODES}
    z = bundle.initial_noise(batch, 0) / bundle.sigma_max * sigma

    def floor() -> None:
        zi = z.detach().requires_grad_(True)
        z0 = bundle.denoiser(zi, sigma)
        torch.autograd.grad(z0, zi, grad_outputs=torch.ones_like(z0))

    def guided(p) -> None:
        zi = z.detach().requires_grad_(True)
        L, _ = p.potential(bundle.denoiser(zi, sigma))
        torch.autograd.grad(L.sum(), zi)

    calls = {"floor": floor, **{name: (lambda p=p: guided(p)) for name, p in parsings.items()}}
    for fn in calls.values():  # warm-up: one-time allocations, oneDNN primitive caches
        fn()
    times: dict[str, list[float]] = {k: [] for k in calls}
    wall: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            t0, w0 = time.process_time(), time.perf_counter()
            fn()
            times[name].append(time.process_time() - t0)
            wall[name].append(time.perf_counter() - w0)
    out = {k: float(np.median(v)) / batch for k, v in times.items()}
    out["min"] = {k: float(np.min(v)) / batch for k, v in times.items()}
    out["wall"] = {k: float(np.median(v)) / batch for k, v in wall.items()}
    out["size"], out["latent"] = size, list(bundle.latent_shape[1:])
    out["crop_fraction"] = crop_fraction(bundle, task)
    out["domain_points"] = int(sum(len(p) for p in parsings["L-local/low"].task.points()))
    return out


def table(rows: list[dict], title: str) -> str:
    head = ("| label map | latent | L-local crop | denoiser fwd + bwd (floor) | V | L-local/low | L-coarse/low | "
            "L-local/low / floor | V / L-local/low | V / floor |")
    lines = [f"**{title}**", "", head, "|" + "---|" * 10]
    for r in rows:
        lines.append(f"| {r['size']}³ | {'×'.join(map(str, r['latent']))} | {100 * r['crop_fraction']:.0f} % | {r['floor']:.3f} | "
                     f"{r['V']:.3f} | {r['L-local/low']:.3f} | {r['L-coarse/low']:.3f} | {r['L-local/low'] / r['floor']:.2f}× | "
                     f"{r['V'] / r['L-local/low']:.1f}× | {r['V'] / r['floor']:.1f}× |")
    return "\n".join(lines)


def run_child(args, allocator: str) -> list[dict]:
    env = dict(os.environ)
    for k in KEEP_ENV:
        env.pop(k, None)
    if allocator == "keep":
        env.update(KEEP_ENV)
    cmd = [sys.executable, __file__, "--sizes", args.sizes, "--threads", str(args.threads), "--batch", str(args.batch),
           "--repeats", str(args.repeats), "--allocator", allocator, "--json"]
    res = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="32,64,96,128", help="label-map sizes (multiples of 4)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--allocator", choices=("both", "default", "keep"), default="both",
                    help="glibc default, keep freed memory (MALLOC_MMAP_MAX_=0, MALLOC_TRIM_THRESHOLD_), or one child each")
    ap.add_argument("--json", action="store_true", help="print the rows as one JSON line (used by --allocator both)")
    args = ap.parse_args(argv)
    t0 = time.time()
    if args.allocator == "both":
        results = {a: run_child(args, a) for a in ("default", "keep")}
    else:
        if args.allocator == "keep" and any(os.environ.get(k) != v for k, v in KEEP_ENV.items()):
            env = {**os.environ, **KEEP_ENV}  # glibc reads its tunables at start: re-exec with them set
            os.execve(sys.executable, [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:])], env)
        torch.set_num_threads(args.threads)
        rows = [time_size(int(s), args.batch, args.repeats) for s in args.sizes.split(",")]
        if args.json:
            print(json.dumps(rows))
            return 0
        results = {args.allocator: rows}
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.threads} thread(s); "
          f"one guided call (right-ventricle task, full gradient, σ = 2), batch {args.batch}, median of {args.repeats}; "
          f"CPU seconds per sample; wall time {time.time() - t0:.0f} s\n")
    names = {"default": "glibc default (freed big blocks go back to the OS)", "keep": "memory kept (MALLOC_MMAP_MAX_=0, MALLOC_TRIM_THRESHOLD_=64 GiB)"}
    for alloc, rows in results.items():
        print(table(rows, names[alloc]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
