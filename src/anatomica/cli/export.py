"""`anatomica export mesh|slicer|itksnap SEG…`: label maps as files other tools open.

SEG is a NIfTI label map or a dataset folder (its labelsTr/ is read); label names come from the dataset.json
beside the files. Every output folder is built beside the old one and swapped in when complete.
"""

from __future__ import annotations

from pathlib import Path

import typer

from anatomica.cli.options import OVERWRITE_HELP
from anatomica.errors import AnatomicaError

export_app = typer.Typer(
    help="Label maps as meshes (STL/OBJ/PLY/GLB in world mm), 3D Slicer segmentations (.seg.nrrd + .ctbl) or ITK-SNAP files. "
    "Guide: docs/viewers.md.",
    no_args_is_help=True,
)

SEG_HELP = "NIfTI label maps (.nii.gz) or dataset folders (their labelsTr/ is read); names from the dataset.json beside them."


def label_inputs(seg: list[Path]) -> list[tuple[str, Path]]:
    """(case name, file) for every label map among the arguments; one error line for anything else."""
    from anatomica.io.dataset import list_label_files
    from anatomica.io.nifti import is_nifti

    if not seg:
        raise AnatomicaError("give at least one label map or dataset folder")
    cases: list[tuple[str, Path]] = []
    for p in seg:
        if not p.exists():
            raise AnatomicaError(f"{p}: no such file or folder")
        files = list_label_files(p) if p.is_dir() else [p]
        for f in files:
            if not is_nifti(f):
                raise AnatomicaError(f"{f}: not a NIfTI label map (expected .nii or .nii.gz)")
            cases.append((f.name[: -len(".nii.gz")] if f.name.endswith(".nii.gz") else f.stem, f))
    names = [c for c, _ in cases]
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise AnatomicaError(f"several inputs are named {', '.join(dupes)}: outputs would collide; export them one folder at a time")
    return cases


def _load_all(seg: list[Path]):
    from anatomica.io.nifti import load_label_map

    return [(name, load_label_map(path)) for name, path in label_inputs(seg)]


def _export_cases(seg: list[Path], out: Path, overwrite: bool, write_case, table_text, table_name: str) -> int:
    """Every label map written by ``write_case(lm, folder, name)`` plus one colour-table file for their union of
    labels, into a staged ``out``; returns the number of cases."""
    from anatomica.io.output import check_output_dir, staged_output
    from anatomica.io.slicer import write_text

    check_output_dir(out, overwrite)
    cases = _load_all(seg)
    table = _union(cases)
    with staged_output(out, overwrite) as stage:
        for name, lm in cases:
            write_case(lm, stage, name)
        write_text(table_text(table), stage / table_name)
    return len(cases)


def _labels_option(text: str | None) -> list[str] | None:
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


@export_app.command("mesh")
def mesh(
    seg: list[Path] = typer.Argument(..., help=SEG_HELP, show_default=False),
    out: Path = typer.Option(..., "--out", help="Output folder: OUT/<case>/<label>.<format>, one closed surface per label."),
    fmt: str = typer.Option("stl", "--format", help="stl, obj, ply or glb. Coordinates are world millimetres (the NIfTI affine, RAS)."),
    labels: str | None = typer.Option(None, "--labels", help="Comma-separated label names to mesh (default: every label present)."),
    smooth: int = typer.Option(0, "--smooth", help="Taubin smoothing iterations (0: the raw marching-cubes surface); the enclosed volume is kept."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """One surface mesh per label: marching cubes on the label map in world mm, optionally smoothed (volume kept).

    Example: anatomica export mesh demo_out/rv_guided --format stl --out demo_out/meshes
    """
    from anatomica.io.mesh import check_format, label_meshes, write_label_meshes
    from anatomica.io.output import check_output_dir, staged_output

    fmt = check_format(fmt)
    if smooth < 0:
        raise AnatomicaError(f"--smooth must be >= 0, got {smooth}")
    check_output_dir(out, overwrite)
    cases = _load_all(seg)
    names = _labels_option(labels)
    meshes = [(name, label_meshes(lm, names, smooth)) for name, lm in cases]  # every error before anything is written
    with staged_output(out, overwrite) as stage:
        count = sum(len(write_label_meshes(m, stage / name, fmt)) for name, m in meshes)
    typer.echo(f"wrote {count} {fmt.upper()} meshes (world mm) for {len(cases)} label map(s) to {out}")


@export_app.command("slicer")
def slicer(
    seg: list[Path] = typer.Argument(..., help=SEG_HELP, show_default=False),
    out: Path = typer.Option(..., "--out", help="Output folder: OUT/<case>.seg.nrrd and OUT/anatomica.ctbl."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """3D Slicer files: a .seg.nrrd per label map (segment names, label values and colours) and a .ctbl colour table.

    Open in Slicer: drag OUT/<case>.seg.nrrd into the window (it loads as a Segmentation).

    Example: anatomica export slicer demo_out/rv_guided --out demo_out/slicer
    """
    from anatomica.io.slicer import ctbl_text, write_seg_nrrd

    n = _export_cases(seg, out, overwrite, lambda lm, stage, name: write_seg_nrrd(lm, stage / f"{name}.seg.nrrd"), ctbl_text, "anatomica.ctbl")
    typer.echo(f"wrote {n} Slicer segmentation(s) and anatomica.ctbl to {out}")


@export_app.command("itksnap")
def itksnap(
    seg: list[Path] = typer.Argument(..., help=SEG_HELP, show_default=False),
    out: Path = typer.Option(..., "--out", help="Output folder: OUT/<case>.nii.gz and OUT/itksnap_labels.txt."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """ITK-SNAP files: the label maps and a label description file with the names and colours.

    Open: itksnap -g OUT/<case>.nii.gz -s OUT/<case>.nii.gz -l OUT/itksnap_labels.txt

    Example: anatomica export itksnap demo_out/rv_guided --out demo_out/itksnap
    """
    from anatomica.io.nifti import save_label_map
    from anatomica.io.slicer import itksnap_text

    n = _export_cases(seg, out, overwrite, lambda lm, stage, name: save_label_map(lm, stage / f"{name}.nii.gz"), itksnap_text, "itksnap_labels.txt")
    typer.echo(f"wrote {n} label map(s) and itksnap_labels.txt to {out}")


def _union(cases) -> dict[str, int]:
    """One label table for a shared colour file: the cases must agree on every name's value."""
    table: dict[str, int] = {}
    for name, lm in cases:
        for label, value in lm.present_labels().items():
            if table.get(label, value) != value:
                raise AnatomicaError(f"{name}: label {label!r} has value {value}, another input gives it {table[label]}: one colour table cannot serve both")
            table[label] = value
    return table
