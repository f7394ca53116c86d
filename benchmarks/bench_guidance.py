"""Guided sampling on the heart phantoms: unguided against guided with each parsing mode and resolution.

Two tasks, one run, one thread, the same noise for every configuration (sample i uses (seed, i)), sample i
paired with held-out reference i mod R (R = ``--refs``; the n / R samples of one reference form one batch):

- right-ventricle (geometric): mass / centroid / covariance L1 to the target (``metrics.geometry``);
- atrial-separation (topological): Betti accuracy of the atria's union (B0 = 2 is the goal);

with, for both, FMD (``metrics.fmd``) and 1-NNA (``metrics.nna``) of the task's labels against n held-out
phantoms (for atrial separation also against held-out phantoms whose atria are separate), the FMD features
that moved most, and seconds per sample. Then one guided call (full gradient) is profiled per parsing mode:
denoiser forward, parsing, potential, backward, the denoiser's own backward, and torch.profiler's top operators.
A projection figure (the task's labels of six samples, unguided / V / L-local / L-coarse) goes to OUT.

    .venv/bin/python benchmarks/bench_guidance.py --tasks right-ventricle --n 16 --refs 4 --steps 20 --out runs/bench_final/right-ventricle
    .venv/bin/python benchmarks/bench_guidance.py --tasks atrial-separation --sweep 30,100,300 --sweep-modes v,l-coarse/low
    .venv/bin/python benchmarks/bench_guidance.py --profile-only

The model defaults to the packaged heart32 (``--model RUN`` for your own). Held-out references are heart
phantoms drawn from a seed stream the training set did not use (``--ref-seed``). Writes ``results.json`` and
``results.md`` into ``--out``; docs/results.md holds the latest numbers and the commands behind them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from anatomica.control.spec import load_task
from anatomica.data.phantoms import get_system
from anatomica.guided.figures import write_domain_mosaic
from anatomica.guided.parsers import make_parsing
from anatomica.guided.run import GuidanceConfig, guided_batch, prior_latents, resolve_per_reference
from anatomica.io.nifti import LabelMap, save_label_map
from anatomica.metrics.fmd import feature_matrix, feature_names, fmd_from_features, standardize
from anatomica.metrics.geometry import betti_accuracy, task_errors
from anatomica.metrics.nna import one_nna_label_maps
from anatomica.model import load_model, resolve_model

L_MODES = [("l-local", r) for r in ("low", "med", "high")] + [("l-coarse", r) for r in ("low", "med", "high")]
PROFILED = (("V", None), ("L-local/low", "low"), ("L-coarse/low", "low"))


def references(size: int, n: int, seed: int, out: Path, keep=None, tag: str = "ref", system: str = "heart") -> list[tuple[str, LabelMap]]:
    """Held-out phantoms of ``system`` (one seed stream per case, disjoint from the training set's), also saved for
    reuse; with ``keep``, only cases whose ground-truth flags it accepts."""
    generate = get_system(system).generate
    refs, i = [], 0
    while len(refs) < n:
        if i >= 50 * n + 100:
            raise SystemExit(f"only {len(refs)} of {i} {system} phantoms pass the filter {tag!r}")
        lm, flags = generate(np.random.default_rng([seed, i]), size)
        i += 1
        if keep is not None and not keep(flags):
            continue
        path = out / "references" / f"{system}_{tag}_{len(refs):03d}.nii.gz"
        save_label_map(lm, path, overwrite=True)
        refs.append((path.name, lm))
    return refs


# Real sets that already meet a task's target: FMD / 1-NNA against them ask "does the guided sample look like a
# real case with that property?", where FMD against all held-out cases also counts the (wanted) shift as a loss.
_SEPARATED = ("separated", lambda flags: not flags["atria_touching"])
TARGET_SETS = {"atrial-separation": _SEPARATED, "atrial-separation-volumes": _SEPARATED,
               "branch-connectivity": ("connected", lambda flags: flags["connected"]),
               "vertebrae-connectivity": ("connected", lambda flags: flags["column_connected"] and not flags["broken_arches"]),
               "calcium-count": ("two_deposits", lambda flags: flags["calcium_deposits"] == 2)}


def run_config(bundle, tasks, n: int, seed: int, config: GuidanceConfig) -> dict:
    """All n samples of one configuration: per-sample errors, labels, seconds."""
    per_task = {k: [i for i in range(n) if i % len(tasks) == k] for k in range(len(tasks))}
    results = {}
    for k, idx in per_task.items():
        for r in guided_batch(bundle, tasks[k], idx, seed, config, record_unguided=False):
            results[r.index] = (r, k)
    rows = []
    for i in range(n):
        r, k = results[i]
        rows.append({"index": i, "seconds": r.seconds, "final_potential": r.final_potential, "errors": task_errors(tasks[k], r.labels), "labels": r.labels})
    return {"rows": rows, "seconds_per_sample": float(np.mean([row["seconds"] for row in rows]))}


def set_distances(refs, labels, values, shifts: int = 0) -> dict:
    """1-NNA and FMD of generated label maps against a real set, on the task's labels; with ``shifts``, also the
    FMD features whose generated mean moved most, in standard deviations of the real set."""
    table = {n: v for n, v in refs[0][1].labels.items() if v in values}
    real = feature_matrix([lm.array for _, lm in refs], table, refs[0][1].spacing)
    gen = feature_matrix(labels, table, refs[0][1].spacing)
    out = {"one_nna": one_nna_label_maps([lm.array for _, lm in refs], labels, values, refs[0][1].affine, n_points=1024),
           "fmd": fmd_from_features(real, gen)}
    if shifts:
        z = standardize(real, gen)[1].mean(0)
        names = feature_names(table, np.ndim(labels[0]))
        out["fmd_shifts"] = [(names[i], round(float(z[i]), 2)) for i in np.argsort(-np.abs(z))[:shifts]]
    return out


def summarize(name: str, out: dict, refs, values, target_refs=None, prior=(2, 0, 0)) -> dict:
    rows = out["rows"]
    # Every domain of the task counts (the myocardium wall has four rays, wall_0..wall_3): an error is the mean over a
    # sample's domains, as in bench_paper.py; reading only the first domain scored one ray of four.
    names = list(rows[0]["errors"])
    s = {"config": name, "seconds_per_sample": out["seconds_per_sample"], "final_potential": float(np.mean([r["final_potential"] for r in rows]))}
    for m in ("mass", "centroid", "covariance"):
        per_sample = [np.mean([row["errors"][d][m] for d in names if m in row["errors"][d]]) for row in rows if any(m in row["errors"][d] for d in names)]
        if per_sample:
            s[f"{m}_l1"] = float(np.mean(per_sample))
            s[f"{m}_l1_sd"] = float(np.std(per_sample))
    betti = [row["errors"][d]["betti"] for row in rows for d in names if "betti" in row["errors"][d]]
    if betti:
        s["betti_accuracy"] = betti_accuracy(betti, list(prior))
        s["b0_counts"] = np.bincount([min(b[0], 4) for b in betti], minlength=5).tolist()  # 0, 1, 2, 3, >= 4
    labels = [r["labels"] for r in rows]
    s.update(set_distances(refs, labels, values, shifts=3))
    if target_refs is not None:
        s.update({f"{k}_target": v for k, v in set_distances(target_refs, labels, values).items()})
    return s


def profile_step(bundle, task, parsing: str, resolution: str | None, batch: int = 4, sigma: float = 2.0, repeats: int = 5) -> dict:
    """Seconds per sample of one guided call (full gradient, a batch of ``batch``) split into denoiser forward, parsing,
    potential and backward; and torch.profiler's top operators by self CPU time (ms per batch)."""
    p = make_parsing(bundle, task, parsing, resolution)
    z = bundle.initial_noise(batch, 0) / bundle.sigma_max * sigma
    parts = {"denoiser_forward": [], "parsing_forward": [], "potential_forward": [], "backward": [], "denoiser_backward_alone": []}
    for _ in range(repeats):
        zi = z.detach().requires_grad_(True)
        t0 = time.perf_counter()
        z0 = bundle.denoiser(zi, sigma)
        t1 = time.perf_counter()
        S = p(z0)
        t2 = time.perf_counter()
        L, _ = p.task.potential(S)
        t3 = time.perf_counter()
        torch.autograd.grad(L.sum(), zi)
        t4 = time.perf_counter()
        zi = z.detach().requires_grad_(True)  # the denoiser's share of the backward pass: a vector-Jacobian product alone
        z0 = bundle.denoiser(zi, sigma)
        t5 = time.perf_counter()
        torch.autograd.grad(z0, zi, grad_outputs=torch.ones_like(z0))
        t6 = time.perf_counter()
        for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t6 - t5)):
            parts[k].append(v)
    out = {k: float(np.median(v)) / batch for k, v in parts.items()}
    out["total"] = sum(v for k, v in out.items() if k != "denoiser_backward_alone")
    # what the parsing adds to a guided call beyond the denoiser's own forward and backward
    out["parsing_share"] = out["total"] - out["denoiser_forward"] - out["denoiser_backward_alone"]
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        zi = z.detach().requires_grad_(True)
        L, _ = p.potential(bundle.denoiser(zi, sigma))
        torch.autograd.grad(L.sum(), zi)
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
    out["top_ops"] = [(e.key, round(e.self_cpu_time_total / 1e3, 2)) for e in ops]  # ms
    return out


def agreement(bundle, task, n: int, seed: int) -> dict:
    """V against L-local/low mass fraction of the same (unguided) latents: how closely the two parsings agree."""
    z = prior_latents(bundle, range(n), seed, steps=10)
    with torch.no_grad():
        (sv,) = make_parsing(bundle, task, "v")(z)
        (sl,) = make_parsing(bundle, task, "l-local", "low")(z)
        (sh,) = make_parsing(bundle, task, "l-local", "high")(z)
    mv, ml, mh = (s.flatten(1).mean(1) for s in (sv, sl, sh))
    return {"mass_v": mv.tolist(), "mass_l_low": ml.tolist(), "abs_diff_low": float((mv - ml).abs().mean()), "abs_diff_high": float((mv - mh).abs().mean())}


def projection_figure(rows: dict[str, list[np.ndarray]], values: list[int], path: Path, cols: int = 6) -> None:
    """PNG, one row per configuration and one column per sample: the task's labels projected along the last axis
    (the other anatomy in grey), so a grown ventricle or two separated atria show at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(["white", "0.82", *plt.get_cmap("tab10").colors[: len(values)]])
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.6 * cols + 1.2, 1.7 * len(rows)), squeeze=False)
    for r, (name, labels) in enumerate(rows.items()):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([]), ax.set_yticks([])
            if c >= len(labels):
                continue
            vol = labels[c]
            img = (vol > 0).any(2).astype(int)  # grey: any foreground along the ray
            for k, v in enumerate(values):  # task labels on top, nearest to the viewer last
                img = np.where((vol == v).any(2), k + 2, img)
            ax.imshow(img.T, origin="lower", cmap=cmap, vmin=-0.5, vmax=len(values) + 1.5, interpolation="nearest")
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
            if r == 0:
                ax.set_title(f"sample {c}", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


FIGURE_ROWS = ("unguided (field)", "V", "L-local/low", "L-coarse/low")


def points_preset(res: str) -> str:
    """A resolution named by a number of points, e.g. 'l-local/32': registered as preset 'pts32' (``local`` = that
    many points per domain axis, the 'low' coarse grid) so that L-local can read a line domain on its task grid
    (32 points) — the presets re-grid it to 12 / 16 / 24, and on the myocardium-wall rays the 12 points of 'low'
    let guidance fit the samples instead of the wall (docs/results.md). Measures a proposed preset, not a shipped one."""
    if not res.isdigit():
        return res
    from anatomica.guided.resolution import PRESETS, Resolution

    name = f"pts{int(res)}"
    PRESETS.setdefault(name, Resolution(name, local=int(res), coarse=PRESETS["low"].coarse))
    return name


def sweep_configs(scales: str, modes: str, steps: int) -> list[tuple[str, GuidanceConfig]]:
    """Unguided (both decoders), then every mode of ``modes`` at every w of ``scales`` (see ``--sweep-modes``)."""
    configs = [("unguided (field)", GuidanceConfig(parsing="l-local", steps=steps, scale=0.0)),
               ("unguided (conv)", GuidanceConfig(parsing="v", steps=steps, scale=0.0))]
    for w in (float(x) for x in scales.split(",")):
        for mode in modes.split(","):
            text, _, smax = mode.partition("@")
            head, *flags = text.split("+")  # flags: fast, clipρ, normρ (--guidance-clip / --guidance-normalize)
            extra = {"fast": False}
            for f in flags:
                if f == "fast":
                    extra["fast"] = True
                elif f.startswith("clip"):
                    extra["clip"] = float(f[4:])
                elif f.startswith("norm"):
                    extra["normalize"] = float(f[4:])
                else:
                    raise SystemExit(f"--sweep-modes: unknown flag {f!r} in {mode!r} (fast, clipρ, normρ)")
            parsing, _, res = head.partition("/")
            cfg = GuidanceConfig(parsing=parsing, resolution=points_preset(res) or None, scale=w, steps=steps,
                                 sigma_max=float(smax) if smax else float("inf"), **extra).check()
            configs.append((f"{mode} w={w:g}", cfg))
    return configs


def sweep_table(rows: list[dict], topo: bool) -> str:
    if topo:
        head = "| config | B0 acc. | B0 counts (0/1/2/3/≥4) | 1-NNA | FMD | s/sample |\n|---|---|---|---|---|---|"
        body = [f"| {r['config']} | {100 * r['betti_accuracy'][0]:.1f} % | {'/'.join(map(str, r['b0_counts']))} | {r['one_nna']:.3f} | "
                f"{fmt(r['fmd'])} | {r['seconds_per_sample']:.2f} |" for r in rows]
    else:
        head = "| config | mass L1 ×1e5 | centroid L1 ×1e4 | cov. L1 ×1e5 | 1-NNA | FMD | s/sample |\n|---|---|---|---|---|---|---|"
        body = [f"| {r['config']} | {fmt(r.get('mass_l1'), 1e5, 0)} | {fmt(r.get('centroid_l1'), 1e4, 0)} | {fmt(r.get('covariance_l1'), 1e5, 0)} | "
                f"{r['one_nna']:.3f} | {fmt(r['fmd'])} | {r['seconds_per_sample']:.2f} |" for r in rows]
    return "\n".join([head, *body])


def fmt(x, scale=1.0, digits=2):
    return "—" if x is None else f"{x * scale:.{digits}f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="heart32", help="a trained run folder or a packaged model name (default: heart32)")
    ap.add_argument("--out", type=Path, default=Path("runs/bench_guidance"))
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--refs", type=int, default=4, help="held-out references giving the targets (sample i uses reference i mod refs); "
                    "--n / refs samples share one batch (batch 1 hits PyTorch's slow single-sample conv3d path on CPU)")
    ap.add_argument("--ref-seed", type=int, default=424242)
    ap.add_argument("--scale-geometry", type=float, default=None, help="guidance scale for geometric tasks (default: the task's, as in the CLI)")
    ap.add_argument("--scale-topology", type=float, default=None, help="guidance scale for topological tasks (default: the task's, as in the CLI)")
    ap.add_argument("--tasks", default="right-ventricle,atrial-separation")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile-only", action="store_true", help="only profile one guided call per parsing mode and task")
    ap.add_argument("--mosaics", action="store_true", help="also write OUT/mosaics/TASK__CONFIG.png (first 4 samples, domains outlined)")
    ap.add_argument("--sweep", default=None, help="comma-separated guidance scales: run only --sweep-modes at each (plus unguided) and print one table")
    ap.add_argument("--sweep-modes", default="v,l-local/low", help="with --sweep: comma-separated v | l-local/RES | l-coarse/RES, '+fast' for the fast gradient, "
                    "'+clipρ' / '+normρ' for --guidance-clip / --guidance-normalize, '@SMAX' to guide only for σ <= SMAX (e.g. l-local/low+fast@5); l-local/N reads every domain on N points per axis (see points_preset)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    args.model = resolve_model(args.model)  # recorded as the folder it names
    bundle = load_model(args.model)
    held_out = references(bundle.shape[0], max(args.n, args.refs), args.ref_seed, args.out)  # FMD / 1-NNA real set, size n
    refs = held_out[: args.refs]
    report = {"model": str(args.model), "n": args.n, "steps": args.steps, "seed": args.seed, "threads": args.threads,
              "torch": torch.__version__, "tasks": {}}
    lines = []
    for task_name in args.tasks.split(","):
        spec = load_task(task_name)
        tasks = resolve_per_reference(spec, refs, bundle.labels, bundle.shape, bundle.affine)
        batch = -(-args.n // args.refs)
        if args.profile_only:
            for m, r in PROFILED:
                prof = profile_step(bundle, tasks[0], m.split("/")[0].lower(), r, batch=batch)
                print(f"[{spec.name}] {m}: " + json.dumps(prof), flush=True)
            continue
        values = sorted({bundle.labels[n] for d in spec.domains for n in d.labels})
        target_refs = None
        if spec.name in TARGET_SETS:
            tag, keep = TARGET_SETS[spec.name]
            target_refs = references(bundle.shape[0], args.n, args.ref_seed + 1, args.out, keep=keep, tag=tag)
        topo = spec.weights.topology > 0
        prior = next((d.targets.betti for d in spec.domains if d.targets.betti is not None), (0, 0, 0))
        scale = args.scale_topology if topo else args.scale_geometry
        base = GuidanceConfig(steps=args.steps, scale=scale).for_task(spec)
        if args.sweep:
            configs = sweep_configs(args.sweep, args.sweep_modes, args.steps)
            rows = []
            for name, cfg in configs:
                s = summarize(name, run_config(bundle, tasks, args.n, args.seed, cfg), held_out[: args.n], values, target_refs, prior)
                rows.append(s)
                print(f"[{spec.name}] " + json.dumps(s), flush=True)
            print(f"\n### {spec.name}: guidance-scale sweep (n = {args.n}, {args.steps} Heun steps)\n\n" + sweep_table(rows, topo), flush=True)
            continue
        configs = [("unguided (field)", GuidanceConfig(parsing="l-local", steps=args.steps, scale=0.0)),
                   ("unguided (conv)", GuidanceConfig(parsing="v", steps=args.steps, scale=0.0)),
                   ("V", GuidanceConfig(**{**base.__dict__, "parsing": "v"}))]
        configs += [(f"L-{m.split('-')[1]}/{r}", GuidanceConfig(**{**base.__dict__, "parsing": m, "resolution": r})) for m, r in L_MODES]
        configs += [("V fast", GuidanceConfig(**{**base.__dict__, "parsing": "v", "fast": True})),
                    ("L-local/low fast", GuidanceConfig(**{**base.__dict__, "parsing": "l-local", "resolution": "low", "fast": True}))]
        rows, figure = [], {}
        for name, cfg in configs:
            t0 = time.perf_counter()
            out = run_config(bundle, tasks, args.n, args.seed, cfg)
            s = summarize(name, out, held_out[: args.n], values, target_refs, prior)
            s["guidance"] = cfg.to_dict()
            rows.append(s)
            if name in FIGURE_ROWS:
                figure[name] = [r["labels"] for r in out["rows"][:6]]
            if args.mosaics:
                slug = name.replace(" ", "_").replace("/", "-").replace("(", "").replace(")", "")
                write_domain_mosaic([r["labels"] for r in out["rows"][:4]], tasks * 4, args.out / "mosaics" / f"{spec.name}__{slug}.png", bundle.num_classes,
                             titles=[f"{name}, sample {i}" for i in range(4)], max_cases=4)
            print(f"[{spec.name}] {name}: {json.dumps({k: v for k, v in s.items() if k != 'guidance'})} ({time.perf_counter() - t0:.0f} s)", flush=True)
        projection_figure(figure, values, args.out / f"{spec.name}_projections.png")
        entry = {"rows": rows, "profile": {m: profile_step(bundle, tasks[0], m.split("/")[0].lower(), r, batch=batch) for m, r in PROFILED}}
        if not topo:
            entry["agreement"] = agreement(bundle, tasks[0], min(args.n, 8), args.seed)
        report["tasks"][spec.name] = entry
        v_time = next(r["seconds_per_sample"] for r in rows if r["config"] == "V")
        lines.append(f"\n### {spec.name} (n = {args.n}, {args.steps} Heun steps, w = {rows[2]['guidance']['guidance_scale']:g}, "
                     f"σ window [{rows[2]['guidance']['sigma_min']:g}, {rows[2]['guidance']['sigma_max'] or float('inf'):g}]; labels decoded by the parsing's decoder: conv for V, field for L)\n")
        if topo:
            tag = TARGET_SETS[spec.name][0] if spec.name in TARGET_SETS else None
            extra = f" 1-NNA vs {tag} | FMD vs {tag} |" if tag else ""
            lines.append(f"| config | B0 acc. | B1 acc. | B2 acc. | B0 counts (0/1/2/3/≥4) | 1-NNA | FMD |{extra} s/sample | speed vs V |")
            lines.append("|---|---|---|---|---|---|---|" + ("---|---|" if tag else "") + "---|---|")
            for r in rows:
                a = r["betti_accuracy"]
                cond = f" {r['one_nna_target']:.3f} | {fmt(r['fmd_target'])} |" if tag else ""
                lines.append(f"| {r['config']} | {100 * a[0]:.1f} % | {100 * a[1]:.1f} % | {100 * a[2]:.1f} % | {'/'.join(map(str, r['b0_counts']))} | "
                             f"{r['one_nna']:.3f} | {fmt(r['fmd'])} |{cond} {r['seconds_per_sample']:.2f} | {v_time / r['seconds_per_sample']:.2f}× |")
        else:
            lines.append("| config | mass L1 ×1e5 | centroid L1 ×1e4 | cov. L1 ×1e5 | 1-NNA | FMD | s/sample | speed vs V |")
            lines.append("|---|---|---|---|---|---|---|---|")
            for r in rows:
                lines.append(f"| {r['config']} | {fmt(r['mass_l1'], 1e5, 0)} | {fmt(r['centroid_l1'], 1e4, 0)} | {fmt(r['covariance_l1'], 1e5, 0)} | "
                             f"{r['one_nna']:.3f} | {fmt(r['fmd'])} | {r['seconds_per_sample']:.2f} | {v_time / r['seconds_per_sample']:.2f}× |")
        lines.append("\nLargest shifts of the FMD features against the held-out set (generated mean − real mean, in real sd): "
                     + "; ".join(f"{r['config']}: " + ", ".join(f"{k} {v:+.1f}" for k, v in r["fmd_shifts"]) for r in rows if r["config"] in FIGURE_ROWS))
        for mode, prof in entry["profile"].items():
            lines.append(f"\nOne guided call, {mode} (s per sample, median of 5, batch of {batch}): " + ", ".join(f"{k} {v:.3f}" for k, v in prof.items() if k != "top_ops")
                         + "; top ops (self ms per batch): " + ", ".join(f"{k} {v}" for k, v in prof["top_ops"][:5]))
        if "agreement" in entry:
            ag = entry["agreement"]
            lines.append(f"\nV vs L-local mass fraction on the same unguided latents: mean |Δ| {ag['abs_diff_low']:.4f} (low), {ag['abs_diff_high']:.4f} (high)")
    if args.profile_only or args.sweep:
        return 0
    (args.out / "results.json").write_text(json.dumps(report, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
