"""Time the anatomical potential (forward + gradient) on 3D control domains, and its persistent-homology part
against raw Cubical Ripser, cripser's own ``compute_ph_torch`` and gudhi on the same input.

    .venv/bin/python benchmarks/bench_potential.py [--sizes 16 32 64 96] [--repeats 5] [--seed 0]

One thread (torch and cripser); min and median wall time over ``--repeats`` interleaved runs. The input is a smooth random
probability volume (Gaussian-filtered noise through a sigmoid), so the diagram has a realistic number of
pairs rather than the noise floor of white noise. Results go to stdout as a Markdown table;
benchmarks/README.md holds the latest numbers.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cripser
import gudhi
import numpy as np
import torch
from scipy import ndimage

from anatomica.control.domain import place_global
from anatomica.control.moments import GeometryTarget
from anatomica.control.potential import DomainTask, Task, Weights
from anatomica.control.topology import topology_loss

PRIOR = (2, 1, 0)


def soft_volume(n: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((n, n, n)), sigma=max(n / 16, 1.0))
    field /= field.std()
    return torch.sigmoid(torch.from_numpy(3.0 * field)).float()


def interleaved_times(fns: dict, repeats: int) -> dict[str, tuple[float, float]]:
    """(min, median) seconds per function, calling them in turn so that load from other processes on a
    shared machine hits all of them alike; the min is the least disturbed run."""
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: (min(v), statistics.median(v)) for k, v in times.items()}


def wrapper_overhead(S: torch.Tensor, repeats: int) -> float:
    """Median of (wrapper time − time inside Cubical Ripser) / time inside Cubical Ripser, measured within the
    same calls, so load from other processes cancels out."""
    real = cripser.computePH_T
    inner: list[float] = []

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        out = real(*args, **kwargs)
        inner.append(time.perf_counter() - t0)
        return out

    fractions = []
    cripser.computePH_T = timed  # anatomica.metrics.betti calls it through the module attribute
    try:
        for _ in range(repeats + 1):
            s = S[None].clone().requires_grad_(True)
            t0 = time.perf_counter()
            topology_loss(s, PRIOR).sum().backward()
            total = time.perf_counter() - t0
            fractions.append((total - inner[-1]) / inner[-1])
    finally:
        cripser.computePH_T = real
    return statistics.median(fractions[1:])


def bench(n: int, repeats: int, seed: int) -> dict:
    S = soft_volume(n, seed)
    task = Task(
        name="bench",
        domains=[
            DomainTask(
                "all",
                (1,),
                place_global((n, n, n)),
                GeometryTarget(torch.tensor(0.3), torch.zeros(3), torch.eye(3) / 3),
                PRIOR,
            )
        ],
        weights=Weights(),
    )
    # two channels: background and the structure; the potential parses, slices and measures them
    probs = torch.stack([1 - S, S])[None]

    def potential():
        p = probs.clone().requires_grad_(True)
        L, _ = task.potential(task.parse_probabilities(p))
        L.sum().backward()

    def ph_ours():
        s = S[None].clone().requires_grad_(True)
        topology_loss(s, PRIOR).sum().backward()

    neg = -S.double().numpy()

    def ph_raw():
        cripser.computePH_T(neg, maxdim=2)

    def ph_cripser_torch():
        s = S.double().clone().requires_grad_(True)
        ph = cripser.compute_ph_torch(-s, filtration="T", maxdim=2)
        fin = torch.isfinite(ph[:, 2])
        (ph[fin, 2] - ph[fin, 1]).pow(2).sum().backward()

    def ph_gudhi():
        gudhi.CubicalComplex(top_dimensional_cells=neg).persistence(homology_coeff_field=2, min_persistence=0)

    out = {"n": n, "pairs": len(cripser.computePH_T(neg, maxdim=2))}
    fns = {"potential": potential, "ph_ours": ph_ours, "ph_raw": ph_raw, "ph_cripser_torch": ph_cripser_torch}
    out.update(interleaved_times(fns, repeats))
    out.update(interleaved_times({"gudhi": ph_gudhi}, max(1, repeats // 3)))  # slow: fewer runs
    out["overhead"] = wrapper_overhead(S, repeats)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 96], help="cubic domain sizes (points per axis)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median reported)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random probability volume")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, cripser {cripser.__version__}, gudhi {gudhi.__version__}; 1 thread; min (median) of {args.repeats} interleaved runs")
    print()
    print(
        "| domain | PH pairs | potential + grad | PH: ours, loss + grad | raw cripser | ours / raw (min) "
        "| wrapper overhead (same call) | cripser compute_ph_torch + grad | gudhi |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        r = bench(n, args.repeats, args.seed)

        def cell(k: str) -> str:
            return f"{1000 * r[k][0]:.1f} ({1000 * r[k][1]:.1f}) ms"

        ratio = r["ph_ours"][0] / r["ph_raw"][0]
        print(
            f"| {n}³ | {r['pairs']} | {cell('potential')} | {cell('ph_ours')} | {cell('ph_raw')} | {ratio:.3f} "
            f"| {100 * r['overhead']:.1f} % | {cell('ph_cripser_torch')} | {1000 * r['gudhi'][0]:.0f} ms |",
            flush=True,
        )


if __name__ == "__main__":
    main()
