"""`anatomica phantoms`: procedural multi-class label maps in the nnU-Net / MSD layout."""

from __future__ import annotations

import time
from pathlib import Path

import typer


def phantoms(
    system: str = typer.Option("heart", "--system", help="Anatomical system: heart, aorta, spine or coronary."),
    n: int = typer.Option(20, "--n", help="Number of cases."),
    size: int = typer.Option(64, "--size", help="Voxels per side (32..128); the field of view in mm is fixed per system."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed, same label bytes; case i does not depend on --n."),
    out: Path = typer.Option(..., "--out", help="Output folder: OUT/labelsTr/<system>_NNN.nii.gz and OUT/dataset.json."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset folder."),
    viewer_files: bool = typer.Option(False, "--viewer-files", help="Also write OUT/viewer/: <case>.seg.nrrd (3D Slicer), anatomica.ctbl and itksnap_labels.txt (docs/viewers.md)."),
) -> None:
    """Generate procedural 3D anatomy phantoms that stand in for TotalSegmentator-style datasets.

    Each case varies in size, position, orientation and shape, and in topology (touching atria, broken aortic
    branches, broken vertebral arches and disconnected columns, 0-4 calcium deposits), so topology control has
    something to fix. Ground-truth flags per case are stored in dataset.json under "cases".

    Example: anatomica phantoms --system heart --n 100 --size 64 --seed 0 --out data/heart
    """
    from anatomica.data.phantoms import generate_dataset

    t0 = time.perf_counter()
    path = generate_dataset(system, n=n, size=size, seed=seed, out=out, overwrite=overwrite)
    if viewer_files:
        from anatomica.guided.html_report import viewer_files as write_viewer_files
        from anatomica.io.output import staged_output

        # the dataset folder is complete; its viewer/ subfolder is built beside and swapped in as a whole
        with staged_output(Path(path) / "viewer", overwrite=True) as stage:
            write_viewer_files(Path(path), stage)
    typer.echo(f"wrote {n} {system} phantoms ({size}³) to {path} in {time.perf_counter() - t0:.1f} s"
               + (f"; Slicer/ITK-SNAP files in {Path(path) / 'viewer'}" if viewer_files else ""))
