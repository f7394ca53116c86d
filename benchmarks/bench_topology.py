"""Realistic topological control (issue 11, item 9): atrial separation, unguided vs the old setting vs variants.

One command, one thread, the same noise for every configuration (sample i starts from the noise of (seed, i)).
Per configuration: B0 accuracy of the atria's union on the label map itself (B0 = 2 is the goal) with a 95 %
bootstrap interval over samples, B0 counts, 1-NNA and FMD of the atria against n held-out heart phantoms (also
against held-out phantoms whose atria are already separate), and seconds per sample. Writes results.json,
results.md and a before/after projection figure into --out (and --figure, e.g. docs/img/…).

    .venv/bin/python benchmarks/bench_topology.py --n 32 --out runs/bench_topology
    .venv/bin/python benchmarks/bench_topology.py --n 8 --variants "unguided,old w100,saddle n0.1"   # a quick subset

A variant is ``NAME=key:value,key:value`` (or a NAME of ``VARIANTS``): keys parsing (v | l-local/RES |
l-coarse/RES), w, normalize, clip, recurrence, geo (λ_geo), tau (τ of the topological term), loss (paper | saddle), margin, window (MIN/MAX), task (a task file or
packaged name; default atrial-separation). Goal (issue 11): B0 ≥ 80 % with 1-NNA ≤ unguided + 0.10 and FMD ≤ 2×
unguided.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_guidance import TARGET_SETS, projection_figure, references, set_distances  # noqa: E402

from anatomica.control.spec import load_task  # noqa: E402
from anatomica.guided.run import GuidanceConfig, guided_batch, resolve_per_reference  # noqa: E402
from anatomica.metrics.bootstrap import share  # noqa: E402
from anatomica.metrics.geometry import task_errors  # noqa: E402
from anatomica.model import load_model  # noqa: E402

TASK = "atrial-separation"
VARIANTS = {
    "unguided": "task:benchmarks/tasks/atrial-separation-paper.yaml,parsing:l-coarse/low,w:0",
    "old w100": "task:benchmarks/tasks/atrial-separation-paper.yaml,parsing:l-coarse/low,w:100,loss:paper",
    "saddle w100": "task:benchmarks/tasks/atrial-separation-paper.yaml,parsing:l-coarse/low,w:100,loss:saddle",
    "saddle n0.1": "task:benchmarks/tasks/atrial-separation-paper.yaml,parsing:l-coarse/low,w:1,loss:saddle,normalize:0.1",
    "saddle n0.2": "task:benchmarks/tasks/atrial-separation-paper.yaml,parsing:l-coarse/low,w:1,loss:saddle,normalize:0.2",
    "paper n0.1": "task:benchmarks/tasks/atrial-separation-paper.yaml,parsing:l-coarse/low,w:1,loss:paper,normalize:0.1",
    "saddle n0.1 σ≤10": "task:benchmarks/tasks/atrial-separation-paper.yaml,parsing:l-coarse/low,w:1,loss:saddle,normalize:0.1,window:0.05/10",
    "saddle n0.1 rec1": "task:benchmarks/tasks/atrial-separation-paper.yaml,parsing:l-coarse/low,w:1,loss:saddle,normalize:0.1,recurrence:1",
    "saddle n0.2 rec1": "task:benchmarks/tasks/atrial-separation-paper.yaml,parsing:l-coarse/low,w:1,loss:saddle,normalize:0.2,recurrence:1",
    "vol3e3 n0.3": "task:benchmarks/tasks/atrial-separation-saddle-volumes.yaml,geo:3000,normalize:0.3",
    "packaged": "",
}
DEFAULT = "unguided,old w100,saddle n0.2,vol3e3 n0.3,packaged"


def parse_variant(text: str, steps: int) -> tuple[str, GuidanceConfig, float | None, float | None]:
    """'key:value,…' -> (task name, GuidanceConfig with unspecified options left to the task (``for_task``),
    λ_geo override or None, topological temperature τ override or None)."""
    kv = dict(p.split(":", 1) for p in text.split(",") if p)
    geo = float(kv.pop("geo")) if "geo" in kv else None
    tau = float(kv.pop("tau")) if "tau" in kv else None
    parsing, _, res = kv.pop("parsing", "l-coarse/low").partition("/")
    lo, _, hi = kv.pop("window", "").partition("/")
    cfg = GuidanceConfig(parsing=parsing, resolution=res or None, steps=steps,
                         scale=float(kv.pop("w")) if "w" in kv else None,
                         normalize=float(kv.pop("normalize")) if "normalize" in kv else None,
                         clip=float(kv.pop("clip")) if "clip" in kv else None,
                         recurrence=int(kv.pop("recurrence")) if "recurrence" in kv else None,
                         topology_loss=kv.pop("loss", None),
                         topology_margin=float(kv.pop("margin")) if "margin" in kv else None,
                         **({"sigma_min": float(lo), "sigma_max": float(hi)} if lo else {}))
    task = kv.pop("task", TASK)
    if kv:
        raise SystemExit(f"unknown variant keys: {', '.join(kv)}")
    return task, cfg.check(), geo, tau


def run_variant(bundle, name: str, text: str, args, refs, held_out, target_refs) -> tuple[dict, list[np.ndarray]]:
    task_name, cfg, geo, tau = parse_variant(text, args.steps)
    spec = load_task(task_name)
    if tau is not None:
        spec = spec.model_copy(update={"temperature": tau})
    if geo is not None:
        spec = spec.model_copy(update={"weights": spec.weights.model_copy(update={"geometry": geo})})
    cfg = cfg.for_task(spec)
    tasks = resolve_per_reference(spec, refs if any(d.targets.is_relative for d in spec.domains) else [], bundle.labels, bundle.shape, bundle.affine)
    t0 = time.perf_counter()
    labels, betti, seconds = [None] * args.n, [None] * args.n, []
    for k in range(len(tasks)):  # samples of one reference (or all of them) in batches of --batch
        idx = [i for i in range(args.n) if i % len(tasks) == k]
        for j in range(0, len(idx), args.batch):
            for r in guided_batch(bundle, tasks[k], idx[j:j + args.batch], args.seed, cfg, record_unguided=False):
                labels[r.index] = r.labels
                betti[r.index] = task_errors(tasks[k], r.labels)["atria"]["betti"]  # on the label map itself
                seconds.append(r.seconds)
    wall = time.perf_counter() - t0
    values = sorted({bundle.labels[n] for n in ("heart_atrium_left", "heart_atrium_right")})
    hits = np.array([b == [2, 0, 0] for b in betti], dtype=float)
    hits0 = np.array([b[0] == 2 for b in betti], dtype=float)
    row = {"config": name, "variant": text or "(task defaults)", "task": spec.name, "guidance": cfg.to_dict(),
           "b0_accuracy": float(hits0.mean()), "b0_ci": share(hits0)["ci95"], "betti_all_accuracy": float(hits.mean()),
           "b0_counts": np.bincount([min(b[0], 4) for b in betti], minlength=5).tolist(),
           "seconds_per_sample": float(np.mean(seconds)), "wall_seconds": wall}
    row.update(set_distances(held_out, labels, values, shifts=3))
    row.update({f"{k}_target": v for k, v in set_distances(target_refs, labels, values).items()})
    return row, labels


def table(rows: list[dict]) -> str:
    base = rows[0]
    head = ("| config | B0 acc. [95 % CI] | B0 counts (0/1/2/3/≥4) | 1-NNA | FMD | 1-NNA vs separated | FMD vs separated | s/sample | goal |\n"
            "|---|---|---|---|---|---|---|---|---|")
    body = []
    for r in rows:
        goal = r["b0_accuracy"] >= 0.8 and r["one_nna"] <= base["one_nna"] + 0.10 and r["fmd"] <= 2 * base["fmd"]
        body.append(f"| {r['config']} | {100 * r['b0_accuracy']:.1f} % [{100 * r['b0_ci'][0]:.1f}, {100 * r['b0_ci'][1]:.1f}] | "
                    f"{'/'.join(map(str, r['b0_counts']))} | {r['one_nna']:.3f} | {r['fmd']:.2f} | {r['one_nna_target']:.3f} | "
                    f"{r['fmd_target']:.2f} | {r['seconds_per_sample']:.2f} | {'met' if goal and r is not base else ('—' if r is base else 'no')} |")
    return "\n".join([head, *body])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="a trained run (default: the packaged heart32 model)")
    ap.add_argument("--out", type=Path, default=Path("runs/bench_topology"))
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--refs", type=int, default=4, help="held-out references for variants whose task has relative targets")
    ap.add_argument("--ref-seed", type=int, default=424242)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", default=DEFAULT, help=f"';'-separated items, each a name of {list(VARIANTS)} (several names may share an item, ','-separated) or NAME=key:value,… (default: {DEFAULT!r})")
    ap.add_argument("--figure", type=Path, default=None, help="also write the before/after figure here (e.g. docs/img/atrial_separation_before_after.png)")
    ap.add_argument("--figure-rows", default="unguided,old w100,packaged")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.model is None:
        from anatomica.pretrained import pretrained_path

        args.model = pretrained_path("heart32")
    bundle = load_model(args.model)
    held_out = references(bundle.shape[0], max(args.n, args.refs), args.ref_seed, args.out)
    tag, keep = TARGET_SETS["atrial-separation"]
    target_refs = references(bundle.shape[0], args.n, args.ref_seed + 1, args.out, keep=keep, tag=tag)
    items = [v for part in args.variants.split(";") for v in ([part] if "=" in part else part.split(","))]
    rows, figure = [], {}
    t_all = time.perf_counter()
    for item in items:
        name, _, text = item.partition("=")
        if not text:
            if name not in VARIANTS:
                raise SystemExit(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
            text = VARIANTS[name]
        row, labels = run_variant(bundle, name, text, args, held_out[: args.refs], held_out[: args.n], target_refs)
        rows.append(row)
        figure[name] = labels[:6]
        print(json.dumps(row), flush=True)
    wall = time.perf_counter() - t_all
    md = (f"### atrial separation (n = {args.n}, {args.steps} Heun steps, seed {args.seed}, batch {args.batch}, "
          f"{args.threads} thread, model {args.model}; {wall / 60:.1f} min)\n\n" + table(rows))
    print("\n" + md, flush=True)
    (args.out / "results.json").write_text(json.dumps({"n": args.n, "steps": args.steps, "seed": args.seed, "model": str(args.model),
                                                        "wall_seconds": wall, "rows": rows}, indent=2))
    (args.out / "results.md").write_text(md + "\n")
    values = sorted({bundle.labels[n] for n in ("heart_atrium_left", "heart_atrium_right")})
    chosen = {k: v for k, v in figure.items() if k in args.figure_rows.split(",")} or figure
    for path in [args.out / "atrial_separation_before_after.png", *([args.figure] if args.figure else [])]:
        projection_figure(chosen, values, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
