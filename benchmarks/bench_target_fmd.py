"""How far from the data is the answer itself? FMD and 1-NNA of each task's *ideal* answer (issue 16).

The paper's geometric table sets guidance's FMD beside the conditional baselines'. Both are measured against
held-out *unedited* data, so a sample that does what the task asks (a right ventricle 30 % larger, moved 5 mm) is
farther from that data than one that ignores the request. This script measures that floor: each held-out
reference's right ventricle is mapped by the similarity transform that meets the task's targets exactly —
scale 1.3^(1/3) about its centroid (mass × 1.3, Σⁿ unchanged) and a shift of 5 mm along world axis 0 — and the
edited maps are compared with a second, disjoint held-out set, beside the references themselves (data against
data). The edited maps' own task errors say how exactly the voxelized edit meets the targets.

For the topological tasks the ideal answer is data that already has the wanted topology: held-out phantoms the
generator flags as meeting the target (separated atria, a connected aortic tree, a connected column with intact
arches, exactly two calcium deposits), against the same comparison set; the 1-NNA such a set scores is the floor
a guided row that always meets the target can reach (it grows with n: a larger set tells the two apart better).

    .venv/bin/python benchmarks/bench_target_fmd.py --work runs/bench_paper --n 64

Prints a table in bench_paper's layout (mass / centroid / covariance L1 in the paper's units, FMD, 1-NNA, 95 %
bootstrap intervals) to set beside the geometric table's right-ventricle rows of docs/results.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_guidance import TARGET_SETS, references
from bench_paper import GEOMETRIC_MODEL, MOMENTS, TOPOLOGICAL, held_out, mean_ci, model_frame, read_maps, set_distances, task_labels

from anatomica.control.spec import load_task
from anatomica.guided.run import resolve_per_reference
from anatomica.io.nifti import LabelMap
from anatomica.metrics.geometry import PAPER_SCALE, task_errors


def similarity_edit(lm: LabelMap, label: str, scale: float, offset_mm: np.ndarray) -> np.ndarray:
    """The label map with ``label``'s region mapped by x ↦ c + s·(x − c) + t in world mm (c its centroid), painted
    over the rest; voxels it leaves become background. Linear interpolation of the mask, threshold 0.5."""
    value = lm.labels[label]
    mask = lm.array == value
    A = lm.affine[:3, :3]
    c_vox = np.array(ndimage.center_of_mass(mask))
    # voxel → voxel: y = c + (x − c − A⁻¹t)/s, the source of output voxel x
    shift_vox = np.linalg.solve(A, offset_mm)
    src = ndimage.affine_transform(mask.astype(np.float32), np.eye(3) / scale, offset=c_vox - (c_vox + shift_vox) / scale, order=1)
    out = lm.array.copy()
    out[mask] = 0
    out[src >= 0.5] = value
    return out


def distance_cells(real: list[np.ndarray], arrays: list[np.ndarray], labels: dict[str, int], affine: np.ndarray, n_boot: int) -> str:
    d = set_distances(real, arrays, labels, affine, n_boot)
    f, nna = d["fmd"], d["one_nna"]
    return f"{f['value']:.2f} [{f['ci95'][0]:.2f}, {f['ci95'][1]:.2f}] | {nna['value']:.3f} [{nna['ci95'][0]:.3f}, {nna['ci95'][1]:.3f}]"


def right_ventricle(args) -> None:
    spec = load_task("right-ventricle")
    (domain,) = spec.domains
    scale = float(domain.targets.mass.scale) ** (1 / 3)
    offset = np.asarray(domain.targets.centroid.offset_mm, float)
    system, size = model_frame(GEOMETRIC_MODEL)  # the geometric table's model and its phantoms
    refs = read_maps(held_out(args.work, system, size, args.ref_seed, args.n))
    real = [m.array for _, m in read_maps(held_out(args.work, system, size, args.comparison_seed, args.n))]
    lm0 = refs[0][1]
    tasks = resolve_per_reference(spec, refs, lm0.labels, lm0.array.shape, lm0.affine)
    (label,) = domain.labels
    edited = [similarity_edit(m, label, scale, offset) for _, m in refs]
    labels = task_labels(spec, lm0.labels)
    print(f"right-ventricle targets: mass × {domain.targets.mass.scale}, centroid + {offset.tolist()} mm; n = {args.n} references "
          f"({system}{size}, seed {args.ref_seed}) against {args.n} comparison phantoms (seed {args.comparison_seed})\n")
    print("| row | mass L1 ×1e5 | centroid L1 ×1e4 | covariance L1 ×1e5 | FMD | 1-NNA |")
    print("|---|---|---|---|---|---|")
    for name, arrays in (("held-out references (unedited)", [m.array for _, m in refs]), ("references edited to the targets", edited)):
        errs = [task_errors(t, a)[domain.name] for t, a in zip(tasks, arrays)]
        cells = []
        for k in MOMENTS:
            v, ci = mean_ci([e[k] for e in errs], args.boot, PAPER_SCALE[k])
            cells.append(f"{v:.0f} [{ci[0]:.0f}, {ci[1]:.0f}]")
        print(f"| {name} | {' | '.join(cells)} | {distance_cells(real, arrays, labels, lm0.affine, args.boot)} |")


def topological(args, task: str) -> None:
    """Phantoms that already meet the task's Betti target (the generator's own flags, bench_guidance.TARGET_SETS) against
    the comparison set: the FMD and 1-NNA of a generator that always meets the target and is otherwise the data."""
    spec, (system, size) = load_task(task), model_frame(TOPOLOGICAL[task])  # the task's own anatomy, as in bench_paper
    tag, keep = TARGET_SETS[task]
    real = [m.array for _, m in read_maps(held_out(args.work, system, size, args.comparison_seed, args.n))]
    data = [m.array for _, m in read_maps(held_out(args.work, system, size, args.ref_seed, args.n))]
    meeting = references(size, args.n, args.target_seed, args.work / "targets" / task, keep=keep, tag=tag, system=system)
    lm0 = meeting[0][1]
    labels = task_labels(spec, lm0.labels)
    for name, arrays in ((f"held-out {system} phantoms (seed {args.ref_seed})", data),
                         (f"held-out phantoms meeting the target ('{tag}', seed {args.target_seed})", [m.array for _, m in meeting])):
        print(f"| {task} | {name} | {distance_cells(real, arrays, labels, lm0.affine, args.boot)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("runs/bench_paper"), help="folder of the held-out phantom sets (bench_paper's)")
    ap.add_argument("--tasks", default="right-ventricle," + ",".join(TOPOLOGICAL), help="right-ventricle and/or topological tasks")
    ap.add_argument("--n", type=int, default=64, help="references and comparison phantoms")
    ap.add_argument("--ref-seed", type=int, default=1)
    ap.add_argument("--comparison-seed", type=int, default=2)
    ap.add_argument("--target-seed", type=int, default=3, help="seed stream of the phantoms that meet a topological target")
    ap.add_argument("--boot", type=int, default=1000)
    args = ap.parse_args()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t != "right-ventricle" and t not in TOPOLOGICAL]
    if unknown:
        ap.error(f"unknown tasks {unknown}; choose from right-ventricle, {', '.join(TOPOLOGICAL)}")
    if "right-ventricle" in tasks:
        right_ventricle(args)
    topo = [t for t in tasks if t in TOPOLOGICAL]
    if topo:
        print(f"\n{args.n} phantoms per row against {args.n} comparison phantoms (seed {args.comparison_seed}), on the task's labels\n")
        print("| task | row | FMD | 1-NNA |\n|---|---|---|---|")
        for task in topo:
            topological(args, task)


if __name__ == "__main__":
    main()
