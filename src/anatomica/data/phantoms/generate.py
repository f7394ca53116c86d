"""Write a phantom dataset in the Medical Segmentation Decathlon / nnU-Net layout.

Case i is drawn from its own generator ``SeedSequence(seed).spawn`` child i, so a case does not depend
on how many cases are generated: ``--n 5`` extends ``--n 3`` with two more cases, identical first three.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from anatomica.data.phantoms.system import PhantomSystem, check_size
from anatomica.errors import AnatomicaError
from anatomica.io.dataset import write_dataset_json
from anatomica.io.nifti import save_label_map
from anatomica.io.output import check_output_dir, staged_output


def case_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of case ``index`` of a dataset drawn with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(index),)))


def generate_dataset(
    system: str | PhantomSystem,
    n: int,
    size: int,
    seed: int,
    out: str | Path,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Generate ``n`` cases at ``size``³ into ``out/labelsTr`` with ``out/dataset.json``; returns ``out``."""
    from anatomica.data.phantoms import get_system

    spec = get_system(system) if isinstance(system, str) else system
    size = check_size(size)
    if isinstance(n, bool) or int(n) < 1:
        raise AnatomicaError(f"--n must be at least 1, got {n}")
    if seed < 0:
        raise AnatomicaError(f"--seed must be >= 0, got {seed}")
    out = check_output_dir(Path(out), overwrite)
    if out.is_dir() and any(out.iterdir()) and not (out / "dataset.json").is_file():
        raise AnatomicaError(f"{out}: not an anatomica dataset folder (no dataset.json); refusing to replace it")
    # Built beside --out and swapped in whole at the end: an interrupted run leaves the old folder as it was.
    with staged_output(out, overwrite) as tmp:
        cases, flags = [], {}
        width = max(3, len(str(n - 1)))
        for i in tqdm(range(n), desc=f"{spec.name} phantoms {size}³", unit="case", disable=not progress):
            case = f"{spec.name}_{i:0{width}d}"
            label_map, case_flags = spec.generate(case_rng(seed, i), size)
            save_label_map(label_map, tmp / "labelsTr" / f"{case}.nii.gz")
            cases.append(case)
            flags[case] = case_flags
        write_dataset_json(
            tmp,
            f"anatomica phantoms: {spec.name}",
            spec.labels,
            cases,
            extra={"system": spec.name, "size": size, "seed": int(seed), "fov_mm": spec.fov_mm, "cases": flags},
        )
    return out
