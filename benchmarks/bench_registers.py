"""Register-bank image LDM: does anatomical supervision of registers improve anatomical accuracy, beyond
capacity and seed noise? One command, resumable.

Data: heart phantoms rendered as contrast CT in which left and right chambers share one attenuation
(telling them apart needs anatomy), axial slices, split by case. The judge segmenter is trained on an
independent phantom seed (other cases, other render noise); its held-out cases are the reference set.

Arms, all trained on identical data draws, batches and σ/noise streams per training seed:
  registers   the register model, anatomical weight 2λ → λ (the published recipe)
  lambda0     the same network, λ = 0 (registers and cross-attention, no anatomical supervision)
  constant    the same network, constant λ
  plain_wide  the LDM without registers, widened to the register model's parameter count

Every finished stage (data, judge, each arm × seed's training, samples, measurements, edits) is cached
under --work, so a rerun continues where the last one stopped; --fresh starts over.

    nohup nice -n 10 .venv/bin/python benchmarks/bench_registers.py > runs/bench_registers.log 2>&1 &

writes benchmarks/results_registers.json, the tables between the bench markers of docs/registers.md and
the figures in docs/img/registers/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from anatomica.data.phantoms import generate_dataset, get_system
from anatomica.nn.unet import UNetConfig
from anatomica.registers.data import DataSpec, augment, phantom_volumes, prepare, write_pairs
from anatomica.registers.edit import class_index, dose_response
from anatomica.registers.evaluate import (
    METRICS,
    EvalSettings,
    Measures,
    compare,
    markdown_tables,
    mean_betti,
    measure,
    measure_floor,
    metrics,
    prepare_real,
    strip_replicates,
)
from anatomica.registers.figures import attention_figure, dose_figure, edit_figure, sample_grid
from anatomica.registers.network import RegisterConfig
from anatomica.registers.sample import attention_maps, sample_images
from anatomica.registers.schedule import DualObjectiveSchedule
from anatomica.registers.segmenter import SegmenterConfig, load_segmenter, save_segmenter
from anatomica.registers.train import (
    RegisterLDMConfig,
    load_register_ldm,
    parameter_counts,
    save_register_ldm,
    train_register_ldm,
    widened_unet,
)

ROOT = Path(__file__).resolve().parents[1]
ARM_TITLES = {
    "registers": "Registers 2λ→λ",
    "lambda0": "Same net, λ = 0",
    "constant": "Registers, constant λ",
    "plain_wide": "Plain LDM, equal size",
}
BEGIN, END = "<!-- bench_registers:begin -->", "<!-- bench_registers:end -->"
T0 = time.perf_counter()


def log(msg: str) -> None:
    load = os.getloadavg()[0]
    print(f"[{time.strftime('%H:%M:%S')} +{time.perf_counter() - T0:6.0f} s, load {load:.1f}] {msg}", flush=True)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = p.add_argument
    a("--work", type=Path, default=ROOT / "runs" / "bench_registers", help="cache folder (resumable)")
    a("--fresh", action="store_true", help="delete the cache first")
    a("--seeds", default="0,1,2", help="training seeds (>= 3 for seed intervals)")
    a("--arms", default=",".join(ARM_TITLES))
    a("--dataset", choices=("heart", "mni152"), default="heart", help="heart phantoms (independent judge) or the MNI152 template slices (judge from the same template)")
    a("--gen-cases", type=int, default=40, help="phantom cases of the generator's data (every 5th held out)")
    a("--judge-cases", type=int, default=30, help="phantom cases of the judge's independent data")
    a("--phantom-size", type=int, default=64)
    a("--size", type=int, default=32, help="image side")
    a("--channels", default="16,32,32")
    a("--attention", default="0,0,1")
    a("--head-channels", type=int, default=8)
    a("--per-class", type=int, default=4)
    a("--register-dim", type=int, default=32)
    a("--steps", type=int, default=300, help="training steps per run")
    a("--warm", type=int, default=75, help="W of the 2λ → λ schedule")
    a("--batch", type=int, default=16)
    a("--lr", type=float, default=5e-4)
    a("--ema", type=float, default=0.995)
    a("--n-aug", type=int, default=1024)
    a("--n", type=int, default=96, help="generated images per run")
    a("--sample-steps", type=int, default=10)
    a("--judge-steps", type=int, default=300)
    a("--tstr-steps", type=int, default=60)
    a("--n-boot", type=int, default=500)
    a("--edit-class", default="heart_ventricle_left")
    a("--edit-scales", default="0,1,2,3")
    a("--edit-n", type=int, default=32)
    a("--threads", type=int, default=1)
    a("--results", type=Path, default=ROOT / "benchmarks" / "results_registers.json")
    a("--docs", type=Path, default=ROOT / "docs" / "registers.md")
    a("--img", type=Path, default=ROOT / "docs" / "img" / "registers")
    return p.parse_args()


def atomic_dir(folder: Path, write) -> None:
    """Write a folder through a temporary sibling so a killed run never leaves a half-written cache entry."""
    tmp = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def save_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + ".partial.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.rename(path)


class Timings:
    """Seconds per stage, kept on disk so a resumed run reports the total over all its sessions."""

    def __init__(self, path: Path):
        self.path = path
        self.data = json.loads(path.read_text()) if path.is_file() else {}

    def add(self, key: str, seconds: float) -> None:
        self.data[key] = seconds
        self.path.write_text(json.dumps(self.data, indent=1))


# options that change cached results; the rest (output paths, threads, which arms/seeds) may differ on resume
CACHE_KEYS = ("dataset", "gen_cases", "judge_cases", "phantom_size", "size", "channels", "attention", "head_channels", "per_class", "register_dim",
              "steps", "warm", "batch", "lr", "ema", "n_aug", "n", "sample_steps", "judge_steps", "tstr_steps", "edit_class", "edit_scales", "edit_n")


def check_cache(work: Path, args) -> None:
    """A resumed run must use the settings its cache was made with (else cached and new stages would mix)."""
    path = work / "settings.json"
    mine = {k: getattr(args, k) for k in CACHE_KEYS}
    if path.is_file():
        old = json.loads(path.read_text())
        diff = {k: (old.get(k), v) for k, v in mine.items() if old.get(k) != v}
        if diff:
            sys.exit(f"error: {work} was made with other settings {diff} (cached, now); pass --fresh or another --work")
    else:
        path.write_text(json.dumps(mine, indent=1))


def make_data(args, work: Path, t: Timings) -> tuple[DataSpec, DataSpec | None, dict]:
    """Generator and judge data folders: independent phantom seeds, independent render seeds. MNI152 has
    one template brain only: no independent judge data exists, so the judge uses the generator's split."""
    if args.dataset == "mni152":
        from anatomica.registers.data import MNI152_LABELS, mni152_volume

        folder = work / "data_gen"
        if not (folder / "dataset.json").is_file():
            atomic_dir(folder, lambda d: write_pairs(d, [mni152_volume()], MNI152_LABELS, "MNI152", "T1", overwrite=True))
        return DataSpec(str(folder), args.size, 2, 2), None, {"unions": [], "system": "mni152"}
    system = get_system("heart")
    specs = []
    for role, cases, phantom_seed, render_seed in (("gen", args.gen_cases, 0, 1000), ("judge", args.judge_cases, 1, 2000)):
        folder = work / f"data_{role}"
        if not (folder / "dataset.json").is_file():
            t0 = time.perf_counter()
            lab = work / f"phantoms_{role}"
            generate_dataset(system, cases, args.phantom_size, phantom_seed, lab, overwrite=True, progress=False)
            vols, labels = phantom_volumes(lab, render_seed)
            atomic_dir(folder, lambda d: write_pairs(d, vols, labels, f"CT-heart-{role}", "CT", overwrite=True))
            t.add(f"data_{role}", time.perf_counter() - t0)
            log(f"data {role}: {cases} cases (phantom seed {phantom_seed}, render seed {render_seed}) -> {folder}")
        specs.append(DataSpec(str(folder), args.size, 2, 2))
    unions = [c.labels for c in system.topology_checks]
    return specs[0], specs[1], {"unions": unions, "system": system.name}


def arm_config(arm: str, args, labels: dict[str, int], spec: DataSpec, reg_params: int | None) -> tuple[RegisterLDMConfig, DualObjectiveSchedule]:
    ch = [int(c) for c in args.channels.split(",")]
    att = [bool(int(a)) for a in args.attention.split(",")]
    unet = UNetConfig(spatial_dims=2, in_channels=1, channels=ch, attention_levels=att, num_res_blocks=1, num_head_channels=args.head_channels, norm_num_groups=8)
    C = max(labels.values()) + 1
    reg = RegisterConfig(C, args.per_class, args.register_dim, True, 0)
    schedules = {
        "registers": DualObjectiveSchedule(1.0, args.warm, 2.0, 1.0),
        "lambda0": DualObjectiveSchedule(0.0, args.warm, 2.0, 1.0),
        "constant": DualObjectiveSchedule(1.0, args.warm, 1.0, 1.0),
        "plain_wide": DualObjectiveSchedule(0.0, args.warm, 0.0, 0.0),
    }
    if arm == "plain_wide":
        assert reg_params is not None
        unet, reg = widened_unet(unet, reg_params), None
    common = dict(latent_shape=[1, args.size, args.size], image_size=args.size, spatial_dims=2, labels=labels, sigma_data=0.5, autoencoder=None, data=spec.to_dict())
    return RegisterLDMConfig(unet, reg, **common), schedules[arm]


def train_run(folder: Path, arm: str, seed: int, args, spec: DataSpec, train_pairs, reg_params, t: Timings) -> None:
    if (folder / "config.json").is_file():
        return
    cfg, schedule = arm_config(arm, args, train_pairs.labels, spec, reg_params)
    pairs = augment(train_pairs, args.n_aug, seed)  # the same draw for every arm of this seed
    log(f"seed {seed} {arm}: training {args.steps} steps (batch {args.batch}, channels {list(cfg.unet.channels)})")
    net, rows, seconds = train_register_ldm(pairs.images, pairs.masks, cfg, args.steps, args.batch, args.lr, seed, schedule, args.ema, progress=False)
    meta = {"train": {"steps": args.steps, "batch": args.batch, "lr": args.lr, "ema": args.ema, "seed": seed, "n_aug": args.n_aug, "seconds": seconds, "threads": torch.get_num_threads()},
            "schedule": schedule.to_dict(), "parameters": parameter_counts(net), "arm": arm}
    atomic_dir(folder, lambda d: save_register_ldm(d, net, cfg, meta, rows))
    t.add(f"train_{arm}_s{seed}", seconds)
    last = {k: float(np.mean([r[k] for r in rows[-50:] if k in r])) for k in ("edm", "seg", "ground") if any(k in r for r in rows[-50:])}
    log(f"seed {seed} {arm}: trained in {seconds:.0f} s, {meta['parameters']['total']:,} parameters, last-50 losses {last}")


def main() -> None:
    args = parse()
    torch.set_num_threads(args.threads)
    work = args.work
    if args.fresh:
        shutil.rmtree(work, ignore_errors=True)
    for sub in ("runs", "samples", "measures", "edits"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    t = Timings(work / "timings.json")
    check_cache(work, args)
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = [a for a in args.arms.split(",") if a]
    unknown = set(arms) - set(ARM_TITLES)
    if unknown or "registers" not in arms:
        sys.exit(f"error: --arms must include registers and only {list(ARM_TITLES)}, got {arms}")
    log(f"bench_registers: arms {arms}, seeds {seeds}, {args.steps} steps, n = {args.n}, threads {args.threads}, cache {work}")

    gen_spec, judge_spec, extra = make_data(args, work, t)
    settings = EvalSettings(n=args.n, steps=args.sample_steps, seed=0, judge_steps=args.judge_steps, tstr_steps=args.tstr_steps, n_boot=args.n_boot)
    judge_dir = work / "judge"
    judge = load_segmenter(judge_dir)[0] if (judge_dir / "config.json").is_file() else None
    t0 = time.perf_counter()
    real = prepare_real(gen_spec, judge_spec, settings, extra["unions"], progress=False, judge=judge)
    if judge is None:
        atomic_dir(judge_dir, lambda d: save_segmenter(d, real.judge, SegmenterConfig(2, real.n_classes), {"labels": real.labels}))
        t.add("judge", time.perf_counter() - t0)
    log(f"judge: Dice on the reference set {real.judge_reference_dice['mean']:.3f}; train slices {len(real.train)}, floor {len(real.floor)}, reference {len(real.reference)}")

    floor_path = work / "measures" / "floor.npz"
    if not floor_path.is_file():
        t0 = time.perf_counter()
        measure_floor(real, settings, progress=False).save(floor_path)
        t.add("floor", time.perf_counter() - t0)
    floor = metrics(Measures.load(floor_path), real, settings)
    log("real floor: " + ", ".join(f"{k} {v['value']:.3f}" for k, v in floor.items()))

    train_pairs, _ = prepare(gen_spec)
    reg_params = None
    runs: dict[str, dict[int, dict]] = {a: {} for a in arms}
    params: dict[str, dict] = {}
    betti_means: dict[str, dict] = {}
    edit_cls = class_index(args.edit_class, real.labels)
    scales = [float(s) for s in args.edit_scales.split(",")]
    edits: dict[int, dict] = {}
    for seed in seeds:
        for arm in arms:
            folder = work / "runs" / f"{arm}_s{seed}"
            if arm == "plain_wide" and reg_params is None:
                reg_params = load_register_ldm(work / "runs" / f"registers_s{seed}").meta["parameters"]["total"]
            train_run(folder, arm, seed, args, gen_spec, train_pairs, reg_params, t)
            model = load_register_ldm(folder)
            params[arm] = model.meta["parameters"]
            if arm == "registers":
                reg_params = model.meta["parameters"]["total"]
            spath, mpath = work / "samples" / f"{arm}_s{seed}.npz", work / "measures" / f"{arm}_s{seed}.npz"
            if not spath.is_file():
                t0 = time.perf_counter()
                out = sample_images(model, args.n, args.sample_steps, settings.seed, progress=False)
                arrays = {"images": out.images.numpy()}
                if out.masks is not None:
                    arrays["masks"] = out.masks.numpy().astype(np.int8)
                save_npz(spath, **arrays)
                t.add(f"sample_{arm}_s{seed}", time.perf_counter() - t0)
            if not mpath.is_file():
                t0 = time.perf_counter()
                with np.load(spath) as z:
                    images = torch.from_numpy(z["images"])
                    own = torch.from_numpy(z["masks"]).long() if "masks" in z.files and model.has_trained_head else None
                measure(images, own, real, settings, f"{arm} s{seed}", progress=False).save(mpath)
                t.add(f"measure_{arm}_s{seed}", time.perf_counter() - t0)
            m = Measures.load(mpath)
            runs[arm][seed] = metrics(m, real, settings)
            betti_means.setdefault(arm, {})[seed] = mean_betti(m, real.groups)
            log(f"seed {seed} {arm}: " + ", ".join(f"{k} {v['value']:.3f}" for k, v in runs[arm][seed].items()))
        epath = work / "edits" / f"s{seed}.json"
        if not epath.is_file():
            t0 = time.perf_counter()
            model = load_register_ldm(work / "runs" / f"registers_s{seed}")
            res = dose_response(model, edit_cls, scales, args.edit_n, args.sample_steps, settings.seed + 1, real.judge, n_boot=args.n_boot, progress=False)
            previews = res.pop("_previews")
            save_npz(work / "edits" / f"s{seed}_previews.npz", **{k: v.numpy() for k, v in previews.items()})
            epath.write_text(json.dumps(res, indent=1))
            t.add(f"edits_s{seed}", time.perf_counter() - t0)
        edits[seed] = json.loads(epath.read_text())
        log(f"seed {seed} edits of {args.edit_class}: " + ", ".join(f"{k} judge {v['judge']['change']['value']:+.4f}" for k, v in edits[seed]["conditions"].items()))

    comparison = compare(runs, "registers")
    losses = {arm: {seed: final_losses(work / "runs" / f"{arm}_s{seed}") for seed in seeds} for arm in arms}
    ground_floor = grounding_floor_of(load_register_ldm(work / "runs" / f"registers_s{seeds[0]}"), train_pairs)
    result = {
        "command": " ".join(sys.argv),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "eval_settings": settings.to_dict(),
        "data": {"generator": gen_spec.to_dict(), "judge": judge_spec.to_dict() if judge_spec else None, "n_train_slices": len(real.train), "n_floor": len(real.floor), "n_reference": len(real.reference),
                 "judge_independent": real.judge_independent, "groups": [g for g, _ in real.groups]},
        "judge_reference_dice": real.judge_reference_dice,
        "parameters": params,
        "floor": floor,
        "runs": runs,
        "betti_means": betti_means,
        "floor_betti_means": mean_betti(Measures.load(floor_path), real.groups),
        "comparison": comparison,
        "edits": {"class": args.edit_class, "per_seed": edits},
        "final_losses": losses,
        "grounding_floor": ground_floor,
        "timings": t.data,
        "total_stage_seconds": float(sum(t.data.values())),
        "this_session_seconds": time.perf_counter() - T0,
        "load_average_at_end": list(os.getloadavg()),
    }
    clean = strip_replicates(result)
    for p in (args.results,):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(clean, indent=1) + "\n")
    write_docs(args, clean, real)
    figures(args, work, arms, seeds, real, edits)
    log(f"done: stage total {result['total_stage_seconds']:.0f} s; results -> {args.results}")


def final_losses(folder: Path, last: int = 50) -> dict[str, float]:
    """Mean of each training loss over the last ``last`` steps (log.csv)."""
    import csv

    with open(folder / "log.csv") as f:
        rows = list(csv.DictReader(f))[-last:]
    return {k: float(np.mean([float(r[k]) for r in rows if r.get(k)])) for k in ("edm", "seg", "ground") if any(r.get(k) for r in rows)}


def grounding_floor_of(model, pairs) -> float:
    """The grounding loss of perfect attention on the training masks at the model's cross-attention
    resolutions (what a reached grounding loss is to be read against)."""
    from anatomica.registers.network import grounding_floor

    aux: dict = {}
    with torch.no_grad():
        model.precond(model.codec.encode(pairs.images[:2]), 1.0, aux=aux)
    return grounding_floor([shape for _, shape in aux["attention"]], pairs.masks, real_classes(pairs))


def real_classes(pairs) -> int:
    return max(pairs.labels.values()) + 1


def edit_table(edits: dict, class_name: str) -> str:
    """Dose-response table: per condition, the class's area change (judge and head) per seed with its
    paired bootstrap 95 % interval, and the mean over seeds."""
    conds = list(next(iter(edits.values()))["conditions"])
    lines = [f"Change of the **{class_name}** area share (percentage points of the image) against the trained bank, same noise, "
             f"n = {next(iter(edits.values()))['n']} images per seed; per seed the paired-bootstrap 95 % CI.", "",
             "| Condition | Judge: mean over seeds | Judge per seed [95 % CI] | Head: mean over seeds |", "|---|---|---|---|"]
    for c in conds:
        j = [e["conditions"][c]["judge"]["change"] for e in edits.values()]
        h = [e["conditions"][c]["head"]["change"]["value"] for e in edits.values()]
        per = "; ".join(f"{100 * x['value']:+.2f} [{100 * x['ci95'][0]:+.2f}, {100 * x['ci95'][1]:+.2f}]" for x in j)
        lines.append(f"| {c} | {100 * np.mean([x['value'] for x in j]):+.2f} | {per} | {100 * np.mean(h):+.2f} |")
    return "\n".join(lines) + "\n"


def write_docs(args, result: dict, real) -> None:
    p = result["parameters"]
    lines = [
        f"Generated by `{result['command']}`; stage time {result['total_stage_seconds']:.0f} s "
        f"(load average at the end {result['load_average_at_end'][0]:.1f}). Judge: mean Dice {result['judge_reference_dice']['mean']:.3f} on the reference set "
        f"({result['data']['n_reference']} real slices of cases neither the judge nor the generator saw).",
        "",
        "Parameters: " + ", ".join(f"{ARM_TITLES.get(a, a)} {v['total']:,}" for a, v in p.items()) + ".",
        "",
        "Training losses, mean of the last 50 steps, mean over seeds: " + "; ".join(
            f"{ARM_TITLES.get(a, a)} " + ", ".join(f"{k} {np.mean([v[k] for v in per.values()]):.3f}" for k in next(iter(per.values())))
            for a, per in result["final_losses"].items()) + f". Grounding floor (perfect attention on the training masks): {result['grounding_floor']:.3f}.",
        "",
        markdown_tables(result, ARM_TITLES),
        edit_table(result["edits"]["per_seed"], result["edits"]["class"]),
    ]
    block = "\n".join(lines)
    doc = args.docs.read_text() if args.docs.is_file() else ""
    if BEGIN in doc and END in doc:
        doc = doc[: doc.index(BEGIN) + len(BEGIN)] + "\n" + block + "\n" + doc[doc.index(END):]
    else:
        doc += f"\n{BEGIN}\n{block}\n{END}\n"
    args.docs.write_text(doc)


def figures(args, work: Path, arms: list[str], seeds: list[int], real, edits: dict) -> None:
    img = args.img
    img.mkdir(parents=True, exist_ok=True)
    C = real.n_classes
    s0 = seeds[0]
    rows = {"real floor (true labels)": (real.floor.images[:8], real.floor.masks[:8])}
    for arm in arms:
        with np.load(work / "samples" / f"{arm}_s{s0}.npz") as z:
            images = torch.from_numpy(z["images"][:8])
        judge_masks = Measures.load(work / "measures" / f"{arm}_s{s0}.npz").judge_masks[:8]
        rows[f"{ARM_TITLES[arm]} (judge's masks)"] = (images, judge_masks)
        if arm in ("registers", "constant"):
            with np.load(work / "samples" / f"{arm}_s{s0}.npz") as z:
                rows[f"{ARM_TITLES[arm]} (own masks)"] = (images, z["masks"][:8])
    sample_grid(img / "samples.png", rows, C, 8, f"seed {s0}: samples with mask overlays")
    model = load_register_ldm(work / "runs" / f"registers_s{s0}")
    with np.load(work / "samples" / f"registers_s{s0}.npz") as z:
        x = torch.from_numpy(z["images"][:1])
    attention_figure(img / "attention.png", x, attention_maps(model, model.codec.encode(x)), ["background", *real.labels], "attention mass per class's registers (σ = 0.05)")
    with np.load(work / "edits" / f"s{s0}_previews.npz") as z:
        previews = {k: torch.from_numpy(z[k]) for k in z.files}
    edit_figure(img / "edits.png", previews, f"{args.edit_class}: registers scaled / dropped, same noise")
    curves = {}
    for s, e in edits.items():
        for who in ("judge", "head"):
            pts = {}
            for cond, row in e["conditions"].items():
                if cond.startswith("scale"):
                    c = row[who]["change"]
                    pts[float(cond.split()[1])] = (100 * c["value"], 100 * c["ci95"][0], 100 * c["ci95"][1])
            curves[f"seed {s}, {who}"] = pts
    dose_figure(img / "dose_response.png", curves, f"Δ {args.edit_class} area (points)", "edit dose-response (paired 95 % CI)")


if __name__ == "__main__":
    main()
