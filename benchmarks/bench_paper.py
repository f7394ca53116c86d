"""The Anatomica paper's three tables (CVPR 2026: geometric control, topological control, partial decoding) in one
resumable command, written into docs/results.md beside the published numbers (issue 16, part 2).

Every row is one real ``anatomica sample`` run (subprocess, ``--threads 1``): sample i starts from the noise of
(seed, i) in every row and takes its targets from held-out reference i mod R (heart phantoms of a seed the training
set did not use); the written NIfTI label maps and summary.json are read back and each sample is measured against
the targets of its own reference (``metrics.geometry.task_errors``: mass / centroid / covariance L1 in the paper's
units, Betti numbers of the label map itself). FMD and 1-NNA compare the task's labels with a second, disjoint
held-out set. Every figure carries a 95 % percentile bootstrap interval over samples (``metrics.bootstrap``).

    .venv/bin/python benchmarks/bench_paper.py --work runs/bench_paper --n 64
    .venv/bin/python benchmarks/bench_paper.py --work runs/bench_paper --tables ablation --rows 'ablation/*'
    .venv/bin/python benchmarks/bench_paper.py --work runs/bench_paper --conditional right-ventricle:explicit=runs/rv_explicit

``--work`` caches each row (samples, per-sample metrics, wall time) under a key of its exact command: re-running
skips finished rows and recomputes the tables; ``--rows`` (fnmatch patterns over row ids such as
``geometric/right-ventricle/anatomica-l``) and ``--tables`` choose which rows may run; all three tables are always
written, from whatever the cache holds.
A row that cannot run says why in its cells ("not trained", "model not packaged", "not run", "failed: …").
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_guidance import projection_figure
from model_card import one_nna_boot

from anatomica.control.spec import TaskSpec, load_task
from anatomica.guided.run import resolve_per_reference
from anatomica.io.dataset import list_label_files
from anatomica.io.files import atomic_write, write_json
from anatomica.io.nifti import LabelMap, load_label_map
from anatomica.metrics.bootstrap import bootstrap, bootstrap_two_sample, share
from anatomica.metrics.fmd import feature_matrix, fmd_from_features
from anatomica.metrics.geometry import PAPER_SCALE, task_errors
from anatomica.model import resolve_model
from anatomica.pretrained import packaged_models

BEGIN, END = "<!-- bench_paper:begin -->", "<!-- bench_paper:end -->"
TABLES = ("geometric", "topological", "ablation")
MOMENTS = ("mass", "centroid", "covariance")

# --- the published numbers (Anatomica, CVPR 2026; TotalSegmentator CT, 128 samples per task, one GPU) -----------
# Geometric control: L1 to the target, mass ×1e5, centroid ×1e4, covariance ×1e5; FMD; 1-NNA.
PAPER_GEOMETRIC: dict[str, dict[str, dict[str, float]]] = {
    "right-ventricle": {
        "explicit": {"mass": 154.5, "centroid": 227.1, "covariance": 101.4, "fmd": 164.7, "one_nna": 0.761},
        "implicit": {"mass": 60.6, "centroid": 51.0, "covariance": 30.6, "fmd": 156.3, "one_nna": 0.593},
        "anatomica-v": {"mass": 12.3, "centroid": 30.2, "covariance": 21.6, "fmd": 84.9, "one_nna": 0.590},
        "anatomica-l": {"mass": 17.5, "centroid": 48.6, "covariance": 22.1, "fmd": 93.7, "one_nna": 0.566},
    },
    "mitral-valve": {
        "implicit": {"mass": 8.91, "centroid": 87.0, "covariance": 17.3, "fmd": 314.8, "one_nna": 0.661},
        "anatomica-l": {"mass": 3.22, "centroid": 11.4, "covariance": 7.89, "fmd": 88.8, "one_nna": 0.577},
    },
    "myocardium-wall": {
        "implicit": {"mass": 0.48, "centroid": 22.3, "covariance": 1.67, "fmd": 111.0, "one_nna": 0.558},
        "anatomica-l": {"mass": 0.29, "centroid": 34.6, "covariance": 1.87, "fmd": 86.4, "one_nna": 0.609},
    },
    "aortic-trunk": {},  # no published row
}
# Topological control: % of samples with the target B0 / B1 / B2; 1-NNA. "unguided" is the paper's "unconditional".
PAPER_TOPOLOGICAL: dict[str, dict[str, dict[str, float]]] = {
    "atrial-separation": {"unguided": {"b0": 7.81, "b1": 5.47, "b2": 56.2, "one_nna": 0.578},
                          "anatomica-l": {"b0": 78.9, "b1": 89.1, "b2": 97.7, "one_nna": 0.606}},
    "branch-connectivity": {"unguided": {"b0": 55.5, "b1": 12.5, "b2": 63.3, "one_nna": 0.559},
                            "anatomica-l": {"b0": 77.3, "b1": 17.2, "b2": 64.1, "one_nna": 0.532}},
    "vertebrae-connectivity": {"unguided": {"b0": 28.9, "b1": 8.59, "b2": 12.5, "one_nna": 0.518},
                               "anatomica-l": {"b0": 74.2, "b1": 26.6, "b2": 7.03, "one_nna": 0.537}},
    "calcium-count": {"unguided": {"b0": 0.00, "b1": 2.34, "b2": 95.3, "one_nna": 0.653},
                      "anatomica-l": {"b0": 60.9, "b1": 79.7, "b2": 98.4, "one_nna": 0.618}},
}
# Partial decoding (right ventricle): mass / centroid / covariance (paper units), FMD, speed normalized to V.
PAPER_ABLATION: dict[str, dict[str, float]] = {
    "v-global-high": {"mass": 11.95, "centroid": 30.66, "covariance": 21.92, "fmd": 84.70, "speed": 1.00},
    "l-local-high": {"mass": 17.02, "centroid": 48.14, "covariance": 21.85, "fmd": 91.16, "speed": 2.48},
    "l-local-med": {"mass": 16.64, "centroid": 48.41, "covariance": 22.03, "fmd": 93.89, "speed": 7.43},
    "l-local-low": {"mass": 16.43, "centroid": 48.75, "covariance": 22.07, "fmd": 105.57, "speed": 10.40},
    "l-coarse-low": {"mass": 20.30, "centroid": 46.96, "covariance": 25.60, "fmd": 123.31, "speed": 10.40},
}

GEOMETRIC_TASKS = ("right-ventricle", "mitral-valve", "aortic-trunk", "myocardium-wall")
GEOMETRIC_MODEL = "heart32"
BASELINES = {"right-ventricle": ("explicit", "implicit"), "mitral-valve": ("implicit",), "myocardium-wall": ("implicit",)}
TOPOLOGICAL = {"atrial-separation": "heart32", "branch-connectivity": "aorta32",
               "vertebrae-connectivity": "spine32", "calcium-count": "coronary32"}
ABLATION_MODELS = ("heart32", "heart64")
ABLATION_ROWS = (("v-global-high", "V global/high", ("--parsing", "v")),
                 ("l-local-high", "L local/high", ("--parsing", "l-local", "--resolution", "high")),
                 ("l-local-med", "L local/med", ("--parsing", "l-local", "--resolution", "med")),
                 ("l-local-low", "L local/low", ("--parsing", "l-local", "--resolution", "low")),
                 ("l-coarse-low", "L coarse/low", ("--parsing", "l-coarse", "--resolution", "low")))


@dataclass
class Row:
    """One table row: the ``anatomica sample`` options that make it, or the reason it cannot run."""

    id: str  # table/task-or-model/slug, matched by --rows
    table: str
    group: str  # task (geometric, topological) or model (ablation)
    name: str
    task: str
    model: str | None = None
    options: tuple[str, ...] = ()
    paper: dict = field(default_factory=dict)
    reason: str | None = None  # why the row has no samples, e.g. "not trained"
    result: dict | None = None  # the row's metrics.json once run (or cached)


# --- rows --------------------------------------------------------------------------------------------------------


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def l_settings(spec: TaskSpec) -> tuple[str, ...]:
    """Anatomica-L's parsing for a task: the task's guidance.parsing when it is an L mode, else L-coarse for topology on
    global domains and L-local otherwise (docs/guided_sampling.md, "Which mode for which task"); its resolution
    or the CLI's default, low."""
    g = spec.guidance
    if g is not None and g.parsing is not None and g.parsing != "v":
        return ("--parsing", g.parsing, "--resolution", g.resolution or "low")
    topo = [d for d in spec.domains if d.targets.betti is not None]
    parsing = "l-coarse" if topo and all(d.placement.kind == "global" for d in topo) else "l-local"
    return ("--parsing", parsing, "--resolution", "low")


def build_rows(conditional: dict[tuple[str, str], str], packaged: list[str]) -> list[Row]:
    """Every row of the three tables, in table order."""
    rows: list[Row] = []
    missing = None if GEOMETRIC_MODEL in packaged else "model not packaged"
    for task in GEOMETRIC_TASKS:
        paper, spec = PAPER_GEOMETRIC[task], load_task(task)
        lopt = l_settings(spec)
        rows.append(Row(f"geometric/{task}/unguided", "geometric", task, "unguided", task, GEOMETRIC_MODEL,
                        (*lopt, "--guidance-scale", "0"), reason=missing))
        kinds = list(BASELINES.get(task, ())) + [k for (t, k) in conditional if t == task and k not in BASELINES.get(task, ())]
        for kind in kinds:
            run = conditional.get((task, kind))
            rows.append(Row(f"geometric/{task}/{kind}", "geometric", task, kind, task, run, (), paper.get(kind, {}),
                            reason=None if run else "not trained"))
        rows.append(Row(f"geometric/{task}/anatomica-v", "geometric", task, "Anatomica-V", task, GEOMETRIC_MODEL,
                        ("--parsing", "v"), paper.get("anatomica-v", {}), reason=missing))
        rows.append(Row(f"geometric/{task}/anatomica-l", "geometric", task, f"Anatomica-L ({lopt[1]}/{lopt[3]})", task,
                        GEOMETRIC_MODEL, lopt, paper.get("anatomica-l", {}), reason=missing))
    for task, model in TOPOLOGICAL.items():
        paper, spec = PAPER_TOPOLOGICAL[task], load_task(task)
        lopt = l_settings(spec)
        missing = None if model in packaged else "model not packaged"
        rows.append(Row(f"topological/{task}/data", "topological", task, "held-out data", task, model, reason=missing))
        rows.append(Row(f"topological/{task}/unguided", "topological", task, "unguided (field)", task, model,
                        (*lopt, "--guidance-scale", "0"), paper.get("unguided", {}), reason=missing))
        # V rows write the conv decoder's labels, L rows the field's: each is compared with the unguided row of its decoder
        rows.append(Row(f"topological/{task}/unguided-conv", "topological", task, "unguided (conv)", task, model,
                        (*lopt, "--guidance-scale", "0", "--decoder", "conv"), paper.get("unguided", {}), reason=missing))
        rows.append(Row(f"topological/{task}/anatomica-v", "topological", task, "Anatomica-V", task, model, ("--parsing", "v"), reason=missing))
        rows.append(Row(f"topological/{task}/anatomica-l", "topological", task, f"Anatomica-L ({lopt[1]}/{lopt[3]})", task, model,
                        lopt, paper.get("anatomica-l", {}), reason=missing))
    for model in ABLATION_MODELS:
        missing = None if model in packaged else "model not packaged"
        for key, name, opts in ABLATION_ROWS:
            rows.append(Row(f"ablation/{model}/{key}", "ablation", model, name, "right-ventricle", model, opts, PAPER_ABLATION[key], reason=missing))
    return rows


# --- held-out sets -----------------------------------------------------------------------------------------------


def model_frame(model: str) -> tuple[str, int]:
    """(phantom system, size) of a packaged model: its training cases' name prefix (``heart_000``), else its labels."""
    from anatomica.model import load_model

    b = load_model(model)
    systems = ("coronary", "spine", "aorta", "heart")  # coronary phantoms hold a heart label too: test it first
    cases = (b.config.get("data") or {}).get("cases") or []
    prefix = cases[0].rsplit("_", 1)[0] if cases else None
    if prefix in systems:
        return prefix, int(b.shape[0])
    key = {"coronary": "coronary_calcium", "spine": "vertebrae_L1", "aorta": "brachiocephalic_trunk", "heart": "heart_atrium_left"}
    return next(s for s in systems if key[s] in b.labels), int(b.shape[0])


def held_out(work: Path, system: str, size: int, seed: int, n: int) -> Path:
    """n phantoms of ``system`` at size³ from ``seed`` (``anatomica phantoms --system S --n N --size 32 --seed 1``),
    generated once into the work folder."""
    from anatomica.data.phantoms import generate_dataset

    out = work / "heldout" / f"{system}{size}_seed{seed}_n{n}"
    if not (out / "dataset.json").is_file():
        generate_dataset(system, n=n, size=size, seed=seed, out=out, overwrite=True, progress=False)
    return out


def read_maps(folder: Path) -> list[tuple[str, LabelMap]]:
    return [(p.name, load_label_map(p)) for p in list_label_files(folder)]


# --- running and measuring one row ---------------------------------------------------------------------------------


def anatomica_command() -> list[str]:
    """The CLI a user runs: the venv's ``anatomica`` script beside this Python, else ``python -m anatomica``."""
    exe = Path(sys.executable).parent / "anatomica"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "anatomica"]


def row_command(row: Row, refs: Path | None, args, out: Path) -> list[str]:
    cmd = [*anatomica_command(), "sample", "--model", str(row.model), "--task", row.task]
    if refs is not None:
        cmd += ["--reference", str(refs)]
    return cmd + ["--n", str(args.n), "--steps", str(args.steps), "--seed", str(args.seed), "--batch-size", str(args.batch_size),
                  "--threads", "1", *row.options, "--out", str(out)]


@functools.lru_cache(maxsize=None)
def model_digest(model: str) -> str:
    """SHA-1 of a model folder's config and weights, so re-trained or re-shipped weights are new rows."""
    folder, h = resolve_model(model), hashlib.sha1()
    for name in ("config.json", "model.safetensors"):
        if (folder / name).is_file():
            h.update((folder / name).read_bytes())
    return h.hexdigest()


def row_key(row: Row, args, refs: Path | None) -> str:
    """Cache folder of a row: readable, plus a hash of its exact command, of the task as it loads (a packaged YAML
    edited since is a new row, not a stale cache hit) and of the model's files."""
    cmd = row_command(row, refs, args, Path("OUT"))[len(anatomica_command()):]
    if row.model not in packaged_models():  # a run folder: the path itself, resolved
        cmd[cmd.index("--model") + 1] = str(Path(row.model).resolve())
    task = load_task(row.task).model_dump(mode="json")
    h = hashlib.sha1(json.dumps([cmd, task, model_digest(str(row.model))], sort_keys=True).encode()).hexdigest()[:10]
    return f"{slug(Path(str(row.model)).name)}__{row.task}__{slug(' '.join(row.options)) or 'default'}__n{args.n}-st{args.steps}-s{args.seed}-{h}"


def per_sample(spec: TaskSpec, maps: list[LabelMap], refs: list[tuple[str, LabelMap]], reports: list[dict]) -> list[dict]:
    """Each sample against the targets of its own reference (the one its report names): errors per targeted moment
    (mean over the task's domains that target it) and the Betti numbers of the label map itself in each
    topological domain."""
    lm = maps[0]
    tasks = resolve_per_reference(spec, refs, lm.labels, lm.array.shape, lm.affine)
    by_name = {name: t for (name, _), t in zip(refs, tasks)}
    out = []
    for i, (m, rep) in enumerate(zip(maps, reports)):
        ref = Path(rep["reference"]).name if rep.get("reference") else None
        errs = task_errors(by_name[ref] if ref else tasks[0], m.array)
        row: dict = {"index": i, "reference": ref, "seconds": rep["seconds"]}
        for k in MOMENTS:
            vals = [e[k] for e in errs.values() if k in e]
            if vals:
                row[k] = float(np.mean(vals))
        topo = [e for e in errs.values() if "betti" in e]
        if topo:
            row["betti"] = [e["betti"] for e in topo]
            row["betti_match"] = [bool(all(e["betti_match"][d] for e in topo)) for d in range(3)]
        out.append(row)
    return out


def set_distances(real: list[np.ndarray], gen: list[np.ndarray], labels: dict[str, int], affine: np.ndarray, n_boot: int) -> dict:
    """1-NNA (model_card's, with its interval) and FMD with a two-sample bootstrap interval, on the given labels."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    nna = one_nna_boot(np.stack(real), np.stack(gen), sorted(labels.values()), affine, n_boot)
    fr, fg = feature_matrix(real, labels, spacing), feature_matrix(gen, labels, spacing)
    f = bootstrap_two_sample(lambda r, g: fmd_from_features(fr[r], fg[g]), len(fr), len(fg), n_boot, bounds=(0.0, np.inf))
    return {"one_nna": {"value": nna["one_nna"], "ci95": nna["ci95"]}, "fmd": {"value": f["value"], "ci95": f["ci95"]}}


def task_labels(spec: TaskSpec, labels: dict[str, int]) -> dict[str, int]:
    names = {n for d in spec.domains for n in d.labels}
    return {k: v for k, v in labels.items() if k in names}


def children_cpu_seconds() -> float:
    """User + system CPU seconds of the finished child processes: with one torch thread a row's CPU time follows
    its work, not the other processes' load (its wall time does not)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_row(row: Row, folder: Path, refs: Path | None, comparison: Path, args, run_id: str) -> dict:
    """Sample the row through the CLI (unless its samples are already there), measure it, cache metrics.json."""
    out, sampling = folder / "samples", folder / "sampling.json"
    cmd = row_command(row, refs, args, out)
    if not sampling.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        t0, cpu0 = time.perf_counter(), children_cpu_seconds()
        with open(folder / "sample.log", "w") as log:
            # The CLI builds --out beside and swaps it in whole, so an interrupted row leaves no half folder.
            res = subprocess.run([*cmd, "--overwrite"], stdout=log, stderr=subprocess.STDOUT, check=False)
        if res.returncode != 0:
            lines = (folder / "sample.log").read_text(errors="replace").splitlines()
            err = next((ln for ln in reversed(lines) if ln.startswith("error:")), lines[-1] if lines else f"exit {res.returncode}")
            raise RuntimeError(err.removeprefix("error:").strip()[:200])
        write_json({"command": shlex.join(cmd), "wall_seconds": time.perf_counter() - t0, "run_id": run_id,
                    "cpu_seconds": children_cpu_seconds() - cpu0, "load_average": os.getloadavg()}, sampling)
    meta = json.loads(sampling.read_text())
    summary = json.loads((out / "summary.json").read_text())
    reports = [json.loads(p.read_text()) for p in sorted((out / "reports").glob("sample_*.json"))]
    maps = [m for _, m in read_maps(out)]
    spec = load_task(row.task)
    ref_maps = read_maps(refs) if refs is not None else []
    real = [m.array for _, m in read_maps(comparison)]
    result = {"row": row.id, **meta, "n": len(maps), "summary": {k: summary.get(k) for k in ("guidance", "threads", "seconds_per_sample", "model")},
              "per_sample": per_sample(spec, maps, ref_maps, reports),
              **set_distances(real, [m.array for m in maps], task_labels(spec, maps[0].labels), maps[0].affine, args.boot)}
    write_json(result, folder / "metrics.json")
    return result


def data_row(row: Row, comparison: Path, refs: Path, work: Path, n_boot: int, may_run: bool = True) -> dict | None:
    """The held-out data's own rate: each phantom of the comparison set placing the task's domains itself; its 1-NNA
    and FMD are the reference set's against the comparison set (two disjoint draws of the data)."""
    cache = work / "rows" / f"data__{row.task}__{comparison.name}__{refs.name}" / "metrics.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    if not may_run:
        return None
    spec = load_task(row.task)
    maps = read_maps(comparison)
    out = []
    for name, m in maps:
        (task,) = resolve_per_reference(spec, [(name, m)], m.labels, m.array.shape, m.affine)
        topo = [e for e in task_errors(task, m.array).values() if "betti" in e]
        out.append({"index": len(out), "betti": [e["betti"] for e in topo],
                    "betti_match": [bool(all(e["betti_match"][d] for e in topo)) for d in range(3)]})
    ref_arrays = [m.array for _, m in read_maps(refs)]
    result = {"row": row.id, "n": len(maps), "per_sample": out, "wall_seconds": 0.0,
              **set_distances([m.array for _, m in maps], ref_arrays, task_labels(spec, maps[0][1].labels), maps[0][1].affine, n_boot)}
    write_json(result, cache)
    return result


# --- formatting ----------------------------------------------------------------------------------------------------


def num(x: float, digits: int | None = None) -> str:
    if digits is None:
        a = abs(x)
        digits = 0 if a >= 100 else 1 if a >= 10 else 2 if a >= 1 else 3
    return f"{x:.{digits}f}"


def cell(value: float, ci, paper: float | None = None, digits: int | None = None, unit: str = "") -> str:
    """'value [lo, hi]' (and the paper's figure in parentheses)."""
    if digits is None:
        a = abs(value)
        digits = 0 if a >= 100 else 1 if a >= 10 else 2 if a >= 1 else 3
    lo, hi = ci
    interval = f"[{num(lo, digits)}, {num(hi, digits)}]" if np.isfinite(lo) and np.isfinite(hi) else "[interval undefined]"
    text = f"{num(value, digits)}{unit} {interval}"
    return text + (f" (paper {paper:g}{unit})" if paper is not None else "")


def mean_ci(values, n_boot: int, scale: float = 1.0) -> tuple[float, list[float]]:
    v = np.asarray(values, dtype=np.float64) * scale
    b = bootstrap(lambda i: float(v[i].mean()), len(v), n_boot)
    return b["value"], b["ci95"]


def moment(result: dict, k: str, n_boot: int) -> tuple[float, list[float]] | None:
    rows = result["per_sample"]
    if k not in rows[0]:
        return None
    return mean_ci([r[k] for r in rows], n_boot, PAPER_SCALE[k])


def reason_cells(row: Row, count: int) -> list[str]:
    """A row without samples: its reason in every cell (a failure's message goes under the table)."""
    reason = row.reason or "not run"
    return ["failed" if reason.startswith("failed:") else reason] * count


def failure_notes(rows: list[Row]) -> list[str]:
    notes = [f"- `{r.id}` {r.reason}" for r in rows if r.result is None and (r.reason or "").startswith("failed:")]
    return ["", *notes] if notes else []


def geometric_table(rows: list[Row], n_boot: int) -> list[str]:
    lines = ["| task | row | mass L1 ×1e5 | centroid L1 ×1e4 | covariance L1 ×1e5 | FMD | 1-NNA | s/sample |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.result is None:
            cells = reason_cells(r, 6)
        else:
            cells = []
            for k in MOMENTS:
                m = moment(r.result, k, n_boot)
                cells.append("not targeted" if m is None else cell(*m, r.paper.get(k)))
            cells.append(cell(r.result["fmd"]["value"], r.result["fmd"]["ci95"], r.paper.get("fmd")))
            cells.append(cell(r.result["one_nna"]["value"], r.result["one_nna"]["ci95"], r.paper.get("one_nna"), 3))
            cells.append(cell(*mean_ci([s["seconds"] for s in r.result["per_sample"]], n_boot), digits=2))
        lines.append(f"| {r.group} | {r.name} | " + " | ".join(cells) + " |")
    return lines


def topological_table(rows: list[Row], n_boot: int) -> list[str]:
    lines = ["| task (model) | row | B0 % | B1 % | B2 % | 1-NNA | FMD | s/sample |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.result is None:
            cells = reason_cells(r, 6)
        else:
            cells = []
            for d in range(3):
                s = share([s["betti_match"][d] for s in r.result["per_sample"]], n_boot)
                cells.append(cell(100 * s["rate"], [100 * c for c in s["ci95"]], r.paper.get(f"b{d}"), 1))
            cells.append(cell(r.result["one_nna"]["value"], r.result["one_nna"]["ci95"], r.paper.get("one_nna"), 3))
            cells.append(cell(r.result["fmd"]["value"], r.result["fmd"]["ci95"]))
            secs = [s["seconds"] for s in r.result["per_sample"] if "seconds" in s]
            cells.append(cell(*mean_ci(secs, n_boot), digits=2) if secs else "no sampling (data)")
        lines.append(f"| {r.group} ({r.model}) | {r.name} | " + " | ".join(cells) + " |")
    return lines


def speed_ratio(row: Row, v: Row, n_boot: int) -> tuple[float, list[float]]:
    """Samples/s of the row over V's, paired over sample indices (same noise, same batches)."""
    tv = np.array([s["seconds"] for s in v.result["per_sample"]])
    tr = np.array([s["seconds"] for s in row.result["per_sample"]])
    b = bootstrap(lambda i: float(tv[i].mean() / tr[i].mean()), len(tr), n_boot)
    return b["value"], b["ci95"]


def ablation_table(rows: list[Row], n_boot: int) -> list[str]:
    lines = ["| model | row | mass L1 ×1e5 | centroid L1 ×1e4 | covariance L1 ×1e5 | FMD | speed (samples/s ÷ V's) | s/sample "
             "| CPU speed ÷ V's (whole run) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        v = next(x for x in rows if x.group == r.group and x.id.endswith("/v-global-high"))
        if r.result is None:
            cells = reason_cells(r, 7)
        else:
            cells = [cell(*moment(r.result, k, n_boot), r.paper.get(k)) for k in MOMENTS]
            cells.append(cell(r.result["fmd"]["value"], r.result["fmd"]["ci95"], r.paper.get("fmd")))
            if v.result is None or v.result["n"] != r.result["n"]:
                cells.append("V row not run")
            else:
                cells.append(cell(*speed_ratio(r, v, n_boot), r.paper.get("speed"), 2, "×"))
            cells.append(cell(*mean_ci([s["seconds"] for s in r.result["per_sample"]], n_boot), digits=2))
            cpu = [x.result.get("cpu_seconds") if x.result else None for x in (v, r)]
            cells.append("V row not run" if v.result is None else "not recorded" if None in cpu
                         else f"{cpu[0] / cpu[1]:.2f}× ({cpu[1] / r.result['n']:.2f} s/sample)")
        lines.append(f"| {r.group} | {r.name} | " + " | ".join(cells) + " |")
    return lines


# --- goals (computed from the numbers) ------------------------------------------------------------------------------


def mean_of(row: Row | None, k: str) -> float | None:
    if row is None or row.result is None:
        return None
    if k in ("fmd", "one_nna"):
        return row.result[k]["value"]
    vals = [s[k] for s in row.result["per_sample"] if k in s]
    return float(np.mean(vals)) if vals else None


def verdict(parts: list[tuple[str, bool | None, str]]) -> str:
    """'met' / 'not met' / 'not evaluated', then each part with its numbers."""
    known = [ok for _, ok, _ in parts if ok is not None]
    if any(ok is False for ok in known):
        overall = "not met"
    elif not known:
        overall = "not evaluated"
    else:
        overall = "met" if len(known) == len(parts) else f"met so far ({len(parts) - len(known)} of {len(parts)} parts not evaluated)"
    body = "; ".join(f"{name}: {'yes' if ok else 'no'} ({why})" for name, ok, why in parts if ok is not None)
    missing: dict[str, list[str]] = {}
    for name, ok, why in parts:
        if ok is None:
            missing.setdefault(why, []).append(name)
    rest = "; ".join(f"{', '.join(names)} ({why})" for why, names in missing.items())
    return f"**Goal met? {overall}** (point estimates)" + (f" — {body}" if body else "") + (f". Not evaluated: {rest}" if rest else "") + "."


def geometric_goal(rows: list[Row]) -> str:
    by = {r.id: r for r in rows}
    parts = []
    for task in GEOMETRIC_TASKS:
        base = by[f"geometric/{task}/unguided"]
        targeted = [k for k in MOMENTS if mean_of(base, k) is not None] if base.result else []
        for gid in ("anatomica-v", "anatomica-l"):
            g = by[f"geometric/{task}/{gid}"]
            if base.result is None or g.result is None:
                parts.append((f"{task} {g.name} beats unguided", None, "row " + ("unguided" if base.result is None else g.name) + " " + ((base if base.result is None else g).reason or "not run")))
                continue
            ok = all(mean_of(g, k) < mean_of(base, k) for k in targeted)
            why = ", ".join(f"{k} {num(PAPER_SCALE[k] * mean_of(g, k))} vs {num(PAPER_SCALE[k] * mean_of(base, k))}" for k in targeted)
            parts.append((f"{task} {g.name} beats unguided", ok, why))
    for task, kinds in (("right-ventricle", ("implicit", "explicit")), ("mitral-valve", ("implicit",))):
        lrow = by[f"geometric/{task}/anatomica-l"]
        baselines = [by[f"geometric/{task}/{k}"] for k in kinds]
        for b in baselines:
            if lrow.result is None or b.result is None:
                parts.append((f"{task} L mass < {b.name}", None, (b.reason or "not run") if b.result is None else (lrow.reason or "L not run")))
            else:
                ml, mb = mean_of(lrow, "mass"), mean_of(b, "mass")
                parts.append((f"{task} L mass < {b.name}", ml < mb, f"{num(1e5 * ml)} vs {num(1e5 * mb)}"))
        run = [b for b in baselines if b.result is not None]
        if lrow.result is None or len(run) < len(baselines):
            parts.append((f"{task} L FMD ≤ best baseline", None, "baselines not all trained" if len(run) < len(baselines) else "L not run"))
        else:
            best = min(mean_of(b, "fmd") for b in run)
            parts.append((f"{task} L FMD ≤ best baseline", mean_of(lrow, "fmd") <= best, f"{num(mean_of(lrow, 'fmd'))} vs {num(best)}"))
    return verdict(parts)


def topological_goal(rows: list[Row]) -> str:
    by = {r.id: r for r in rows}
    parts = []
    for task in TOPOLOGICAL:
        g = load_task(task).guidance
        v = g is not None and g.parsing == "v"
        packaged = "anatomica-v" if v else "anatomica-l"  # the row of the task's own setting, against unguided of its decoder
        grow, base = by[f"topological/{task}/{packaged}"], by[f"topological/{task}/unguided-conv" if v else f"topological/{task}/unguided"]
        paper_b0 = PAPER_TOPOLOGICAL[task]["anatomica-l"]["b0"]
        name = f"{task} ({grow.name}, the task's setting) B0 ≥ paper's {paper_b0:g} % with 1-NNA ≤ unguided + 0.10"
        if grow.result is None or base.result is None:
            parts.append((name, None, (grow if grow.result is None else base).reason or "not run"))
            continue
        b0 = 100 * float(np.mean([s["betti_match"][0] for s in grow.result["per_sample"]]))
        nl, nb = mean_of(grow, "one_nna"), mean_of(base, "one_nna")
        parts.append((name, b0 >= paper_b0 and nl <= nb + 0.10, f"B0 {b0:.1f} %, 1-NNA {nl:.3f} vs {base.name}'s {nb:.3f} + 0.10"))
    return verdict(parts)


def ablation_goal(rows: list[Row], n_boot: int) -> str:
    by = {r.id: r for r in rows}
    parts, info = [], []
    for model in ABLATION_MODELS:
        v, lrow = by[f"ablation/{model}/v-global-high"], by[f"ablation/{model}/l-local-low"]
        if v.result is None or lrow.result is None:
            why = f"{model} " + ((v if v.result is None else lrow).reason or "not run")
            ok, text = None, why
        else:
            speed = speed_ratio(lrow, v, n_boot)[0]
            ratio = mean_of(lrow, "mass") / mean_of(v, "mass")
            ok, text = speed >= 10 and ratio <= 1.5, f"{speed:.2f}× V's speed at {ratio:.2f}× V's mass error"
        if model.endswith("64"):
            parts.append(("at 64³ L local/low ≥ 10× V with mass error ≤ 1.5× V's", ok, text))
        elif ok is not None:
            info.append(f"at {model}: {text}")
    return verdict(parts) + (f" For reference, {'; '.join(info)}." if info else "")


# --- the section ---------------------------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch

    return f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}, Python {platform.python_version()}"


def figure_for(task: str, rows: list[Row], path: Path) -> bool:
    """Guided vs unguided (and baselines) of one task: its labels projected along the last axis, six samples per row."""
    have = [r for r in rows if r.result is not None and r.table != "ablation" and not r.id.endswith("/data")]
    if not have:
        return False
    spec = load_task(task)
    figure = {}
    labels = None
    for r in have:
        out = Path(r.result["folder"]) / "samples"
        maps = read_maps(out)[:6]
        labels = maps[0][1].labels
        figure[r.name] = [m.array for _, m in maps]
    projection_figure(figure, sorted(task_labels(spec, labels).values()), path, cols=min(6, max(len(v) for v in figure.values())))
    return True


def write_section(results: Path, text: str) -> None:
    """Replace the text between the markers (append the section when absent); everything else stays as it was."""
    old = results.read_text() if results.is_file() else ""
    block = f"{BEGIN}\n{text.rstrip()}\n{END}"
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + block + old[old.index(END) + len(END):]
    else:
        new = old + ("\n" if old and not old.endswith("\n") else "") + ("\n" if old else "") + block + "\n"
    atomic_write(results, lambda tmp: Path(tmp).write_text(new))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("runs/bench_paper"), help="cache: held-out sets and one folder per row")
    ap.add_argument("--n", type=int, default=64, help="samples per row (and held-out references / comparison phantoms)")
    ap.add_argument("--steps", type=int, default=32, help="Heun steps of every row")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=8, help="--batch-size of every anatomica sample run (>= 4: batch 1 hits a slow conv3d path)")
    ap.add_argument("--ref-seed", type=int, default=1, help="phantom seed of the references (training used 0); the comparison set uses REF_SEED + 1")
    ap.add_argument("--boot", type=int, default=1000, help="bootstrap resamples per interval")
    ap.add_argument("--tables", default=",".join(TABLES), help=f"comma-separated tables to run and write: {', '.join(TABLES)}")
    ap.add_argument("--rows", default="*", help="comma-separated fnmatch patterns over row ids (e.g. 'geometric/right-ventricle/*,ablation/*'): "
                    "rows that may run; other rows show their cached results or 'not run'")
    ap.add_argument("--conditional", action="append", default=[], metavar="TASK:KIND=RUN",
                    help="a conditional-baseline run (KIND explicit or implicit) for a geometric task; repeatable")
    ap.add_argument("--results", type=Path, default=Path("docs/results.md"), help="markdown file whose bench_paper section is replaced")
    ap.add_argument("--figures", type=Path, default=Path("docs/img"), help="folder of the per-task figures (paper_TASK.png)")
    args = ap.parse_args(argv)
    from tqdm import tqdm

    t_start, run_id = time.perf_counter(), time.strftime("%Y%m%dT%H%M%S")
    tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    if unknown := [t for t in tables if t not in TABLES]:
        raise SystemExit(f"--tables: unknown {', '.join(unknown)} (known: {', '.join(TABLES)})")
    conditional = {}
    for item in args.conditional:
        head, sep, run = item.partition("=")
        task, _, kind = head.partition(":")
        if not sep or task not in GEOMETRIC_TASKS or kind not in ("explicit", "implicit") or not run:
            raise SystemExit(f"--conditional {item!r}: expected TASK:explicit|implicit=RUN with TASK one of {', '.join(GEOMETRIC_TASKS)}")
        conditional[(task, kind)] = run
    patterns = [p.strip() for p in args.rows.split(",") if p.strip()]
    packaged = packaged_models()
    rows = build_rows(conditional, packaged)  # every table is written; --tables and --rows choose what may run

    # Held-out sets per (system, size): references (targets, one per sample) and a disjoint comparison set.
    frames: dict[str, tuple[Path, Path]] = {}
    for model in sorted({r.model for r in rows if r.reason is None and r.model and r.model in packaged}):
        system, size = model_frame(model)
        frames[model] = (held_out(args.work, system, size, args.ref_seed, args.n), held_out(args.work, system, size, args.ref_seed + 1, args.n))
    heart32 = frames.get(GEOMETRIC_MODEL)

    def sets(r: Row) -> tuple[Path | None, Path]:
        refs, comp = frames.get(r.model) or heart32  # a conditional run is a heart32-sized baseline
        return (refs if load_task(r.task).needs_reference else None), comp

    keys: dict[str, str] = {}  # row id -> cache folder; rows with the same command share one (RV's L row, L local/low)
    for r in rows:
        if r.reason is not None or r.id.endswith("/data"):
            continue
        if heart32 is None and r.model not in frames:
            r.reason = "no held-out frame (heart32 not packaged)"
            continue
        keys[r.id] = row_key(r, args, sets(r)[0])
    todo: dict[str, Row] = {}
    # The ablation's rows first and back to back, so their speeds are timed under the same load.
    for r in sorted(rows, key=lambda r: r.table != "ablation"):
        key = keys.get(r.id)
        if key and r.table in tables and any(fnmatch.fnmatch(r.id, p) for p in patterns) and not (args.work / "rows" / key / "metrics.json").is_file():
            todo.setdefault(key, r)
    ran, failed = 0, {}
    for key, r in tqdm(todo.items(), desc="bench_paper rows", unit="row"):
        refs, comp = sets(r)
        try:
            run_row(r, args.work / "rows" / key, refs, comp, args, run_id)
            ran += 1
        except RuntimeError as e:
            failed[key] = f"failed: {e}"
            tqdm.write(f"{r.id}: failed: {e}")
    for r in rows:  # every row from the cache, run now or before
        key = keys.get(r.id)
        if key is None:
            continue
        folder = args.work / "rows" / key
        if (folder / "metrics.json").is_file():
            r.result = {**json.loads((folder / "metrics.json").read_text()), "folder": str(folder)}
        elif key in failed:
            r.reason = failed[key]
    for r in rows:
        if r.id.endswith("/data") and r.reason is None and r.model in frames:
            may_run = r.table in tables and any(fnmatch.fnmatch(r.id, p) for p in patterns)
            r.result = data_row(r, frames[r.model][1], frames[r.model][0], args.work, args.boot, may_run)

    # --- the section ---
    n_boot = args.boot
    cached = [r for r in rows if r.result is not None and r.result.get("run_id") not in (None, run_id)]
    row_wall = sum({r.result["folder"]: r.result.get("wall_seconds", 0.0) for r in rows if r.result is not None and "folder" in r.result}.values())
    command = shlex.join(["python", "benchmarks/bench_paper.py", *(argv if argv is not None else sys.argv[1:])])
    refs_text = ", ".join(f"{m}: {a.name} / {b.name}" for m, (a, b) in frames.items())
    md = [
        "## The paper's three tables (`benchmarks/bench_paper.py`)",
        "",
        (f"`{command}` — machine: {machine()}, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end; "
        f"this invocation {(time.perf_counter() - t_start) / 60:.1f} min wall ({ran} row(s) sampled now, "
        f"{len({r.result['folder'] for r in cached if 'folder' in r.result})} from the cache of earlier invocations); "
        f"sampling wall time of all rows shown {row_wall / 60:.1f} min."),
        "",
        (f"Every row is one `anatomica sample` run: n = {args.n} samples, {args.steps} Heun steps ({2 * args.steps - 1} denoiser calls), "
        f"seed {args.seed} (sample i starts from the noise of ({args.seed}, i) in every row), `--batch-size {args.batch_size} --threads 1`, "
        f"w, σ window and step rule from the task's YAML; sample i takes its targets from held-out reference i mod {args.n} "
        f"(phantoms of seed {args.ref_seed}; training used seed 0) and FMD / 1-NNA compare the task's labels with a disjoint "
        f"held-out set (seed {args.ref_seed + 1}) [{refs_text}]. Errors are L1 to the targets in the paper's units "
        f"(mass ×1e5 as the fraction of the domain, centroid ×1e4 in [0, 1] coordinates, covariance ×1e5 of Σ / tr Σ; "
        f"mean over a task's domains), measured on the written label maps (`metrics.geometry.task_errors`); Betti numbers "
        f"on the label maps themselves. Unguided rows: w = 0 from the same noise, decoded by the neural field like "
        f"Anatomica-L (V decodes with the conv decoder). Brackets: 95 % percentile bootstrap intervals over samples "
        f"({n_boot} resamples; 1-NNA and FMD resample both sets). In parentheses: the paper's figure (Anatomica, CVPR 2026, "
        f"TotalSegmentator CT, 128 samples, one GPU); compare ratios between rows, not absolute values (our data are phantoms)."),
    ]
    g = [r for r in rows if r.table == "geometric"]
    md += ["", "### Geometric control (heart32)", "", *geometric_table(g, n_boot), *failure_notes(g), "", geometric_goal(g)]
    t = [r for r in rows if r.table == "topological"]
    md += ["", "### Topological control", "", ("B0 / B1 / B2: share of samples whose label map has the task's Betti number in that "
           "dimension (all of the task's topological domains). *held-out data*: the comparison phantoms, each placing the task's "
           "domains itself; its 1-NNA / FMD are the reference phantoms against them (data against data)."), "",
           *topological_table(t, n_boot), *failure_notes(t), "", topological_goal(t)]
    a = [r for r in rows if r.table == "ablation"]
    ids = {r.result.get("run_id") for r in a if r.result is not None}
    same = "all rows timed in this invocation" if ids == {run_id} else (
        f"rows timed in {len(ids)} invocations ({', '.join(sorted(str(i) for i in ids))}): use a fresh --work for same-run timing" if ids else "no rows run")
    md += ["", "### Partial decoding (right ventricle)", "", (f"Speed: samples per second of the CLI's sampling time (reports' `seconds`), "
           f"over Anatomica-V's, paired over samples; {same}. CPU speed: the row's whole `anatomica sample` process "
           f"(model loading, sampling, decoding, writing), CPU seconds over V's, which load from other processes moves "
           f"much less than wall time."), "", *ablation_table(a, n_boot), *failure_notes(a), "", ablation_goal(a, n_boot)]
    figs = []
    for task in dict.fromkeys(r.task for r in rows if r.table != "ablation"):
        path = args.figures / f"paper_{task}.png"
        if figure_for(task, [r for r in rows if r.task == task and r.table != "ablation"], path):
            rel = os.path.relpath(path.resolve(), args.results.resolve().parent)
            figs.append(f"![{task}: unguided vs guided]({rel})")
    if figs:
        md += ["", ("Figures (the task's labels of the first six samples, projected along the third axis over the rest of the anatomy in grey; "
               "one row per method, the same noise per column):"), "", *figs]
    write_section(args.results, "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
