"""`anatomica import slicer|meshes …`: data people already have → a dataset folder (MSD / nnU-Net layout:
OUT/labelsTr/<case>.nii.gz + OUT/dataset.json) that `anatomica stats` and `anatomica train` read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from anatomica.cli.options import OVERWRITE_HELP
from anatomica.errors import AnatomicaError

import_app = typer.Typer(
    help="Bring 3D Slicer segmentations (.seg.nrrd) or meshes with part ids (VTK .vtu/.vtp, STL/OBJ per part) into a "
    "training-set folder (labelsTr/ + dataset.json). Guide: docs/viewers.md.",
    no_args_is_help=True,
)

OVERLAP_HELP = ("What to do where two segments/parts claim a voxel: error (default: refuse and name them), first (the one listed "
                "first wins), last (the one listed last wins).")
LABELS_HELP = "A label table (a dataset.json, or JSON {name: value}) that fixes every name's label value across the cohort."


def _case_name(path: Path) -> str:
    name = path.name
    for suffix in (".seg.nrrd", ".nrrd", ".nii.gz", ".nii", ".vtp", ".vtu", ".vtk", ".stl", ".obj", ".ply"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _check_unique(cases: list[tuple[str, object]]) -> None:
    names = [n for n, _ in cases]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AnatomicaError(f"several inputs give the case name {', '.join(dupes)}; rename them so each case has its own file")


def _fixed_table(labels: Path | None) -> dict[str, int] | None:
    if labels is None:
        return None
    from anatomica.io.dataset import read_label_table

    table = read_label_table(labels)
    values = list(table.values())
    if len(set(values)) != len(values):
        raise AnatomicaError(f"{labels}: two names share one label value")
    return table


def _write_dataset(out: Path, overwrite: bool, name: str, cases: list, table: dict[str, int], source: str) -> None:
    from anatomica.io.dataset import write_dataset_json
    from anatomica.io.nifti import save_label_map
    from anatomica.io.output import staged_output

    with staged_output(out, overwrite) as stage:
        for case, lm in cases:
            save_label_map(lm, stage / "labelsTr" / f"{case}.nii.gz")
        write_dataset_json(stage, name, table, [c for c, _ in cases], extra={"imported_from": source})


@import_app.command("slicer")
def slicer(
    inputs: list[Path] = typer.Argument(..., help=".seg.nrrd files, or folders of them (one case each).", show_default=False),
    out: Path = typer.Option(..., "--out", help="Dataset folder: OUT/labelsTr/<case>.nii.gz and OUT/dataset.json."),
    overlap: str = typer.Option("error", "--overlap", help=OVERLAP_HELP),
    labels: Path | None = typer.Option(None, "--labels", help=LABELS_HELP + " Default: each segment name keeps the value it has in the first file that has it."),
    name: str = typer.Option("imported", "--name", help="Dataset name in dataset.json."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """3D Slicer segmentations → label maps: segment names become the label table, geometry is kept (LPS → RAS).

    Example: anatomica import slicer cases/*.seg.nrrd --out data/from_slicer
    """
    from anatomica.io.output import check_output_dir
    from anatomica.io.slicer import read_seg_nrrd

    check_output_dir(out, overwrite)
    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.name.lower().endswith(".seg.nrrd"))
            if not found:
                raise AnatomicaError(f"{p}: no .seg.nrrd files in this folder")
            files += found
        elif not p.exists():
            raise AnatomicaError(f"{p}: no such file or folder")
        elif not p.name.lower().endswith(".nrrd"):
            raise AnatomicaError(f"{p}: not a Slicer segmentation (expected .seg.nrrd)")
        else:
            files.append(p)
    cases = [(_case_name(f), read_seg_nrrd(f, overlap)) for f in files]
    _check_unique(cases)
    table = _fixed_table(labels) or _union_table([lm.labels for _, lm in cases])
    cases = [(c, _relabel(lm, table, files[i])) for i, (c, lm) in enumerate(cases)]
    _write_dataset(out, overwrite, name, cases, table, "3D Slicer segmentation")
    typer.echo(f"imported {len(cases)} segmentation(s) with labels {', '.join(table)} into {out}")


def _union_table(tables: list[dict[str, int]]) -> dict[str, int]:
    """Names in order of first appearance; each keeps its first value unless another name took it, then the next free."""
    out: dict[str, int] = {}
    for t in tables:
        for n, v in sorted(t.items(), key=lambda kv: kv[1]):
            if n in out:
                continue
            used = set(out.values())
            if v in used or v <= 0:
                v = max(used | {0}) + 1
            out[n] = v
    return dict(sorted(out.items(), key=lambda kv: kv[1]))


def _relabel(lm, table: dict[str, int], source: Path):
    """The label map with its values mapped through its names onto ``table``."""
    from anatomica.io.nifti import LabelMap

    missing = [n for n in lm.labels if n not in table]
    if missing:
        raise AnatomicaError(f"{source}: names {', '.join(map(repr, missing))} are not in the --labels table ({', '.join(table)})")
    lut = np.zeros(int(lm.array.max(initial=0)) + 1, dtype=np.int32)
    for n, v in lm.labels.items():
        if v < len(lut):
            lut[v] = table[n]
    return LabelMap(lut[lm.array], lm.affine, {n: table[n] for n in lm.labels})


@import_app.command("meshes")
def meshes(
    inputs: list[Path] = typer.Argument(..., show_default=False, help=(
        "Cases: VTK files (.vtp/.vtu/.vtk with an integer part-id cell array), folders of .stl/.obj/.ply part files (one part per "
        "file, named by the file), single part files, or a folder holding such cases.")),
    out: Path = typer.Option(..., "--out", help="Dataset folder: OUT/labelsTr/<case>.nii.gz and OUT/dataset.json."),
    spacing: str | None = typer.Option(None, "--spacing", help="Voxel size in mm, one number or X,Y,Z: an axis-aligned grid centred on each case."),
    shape: str | None = typer.Option(None, "--shape", help="Voxels per axis with --spacing, e.g. 64,64,64 (default: the largest case's bounding box + 2 voxels, the same for every case)."),
    reference: Path | None = typer.Option(None, "--reference", help="A NIfTI whose grid (shape + affine) every case is voxelized onto, instead of --spacing."),
    overlap: str = typer.Option("error", "--overlap", help=OVERLAP_HELP),
    labels: Path | None = typer.Option(None, "--labels", help=LABELS_HELP + " VTK part id p takes the name whose value is p; part files match by name. "
                                       "Default: VTK part p is 'part_<p>' with value p, part files are numbered after them by name."),
    name: str = typer.Option("imported", "--name", help="Dataset name in dataset.json."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Meshes with part ids → label maps: each part's closed surface is filled on the grid you choose (voxel centres
    inside a part get its label). Open surfaces, empty parts, parts outside the grid and overlapping parts are errors.

    Example: anatomica import meshes cohort/ --spacing 1.5 --shape 64,64,64 --out data/from_meshes
    """
    from anatomica.cli.options import int_list
    from anatomica.io.mesh_import import Grid, bounds_of, grid_for, is_mesh_case, read_case, voxelize_parts
    from anatomica.io.nifti import load_volume
    from anatomica.io.output import check_output_dir

    if (spacing is None) == (reference is None):
        raise AnatomicaError("give the grid: either --spacing (optionally with --shape) or --reference")
    if reference is not None and shape is not None:
        raise AnatomicaError("--shape goes with --spacing; a --reference gives its own shape")
    check_output_dir(out, overwrite)
    spacing_mm = _spacing(spacing) if spacing is not None else None
    shape_vox = int_list(shape, "--shape") if shape is not None else None
    if shape_vox is not None and len(shape_vox) != 3:
        raise AnatomicaError(f"--shape takes three integers X,Y,Z, got {shape!r}")
    ref_grid = None
    if reference is not None:
        data, affine = load_volume(reference)
        ref_grid = Grid(tuple(int(s) for s in data.shape[:3]), affine)
    paths = _mesh_cases(inputs, is_mesh_case)
    cases = [(_case_name(p), p, read_case(p)) for p in paths]
    _check_unique([(c, None) for c, _, _ in cases])
    table = _mesh_table(cases, _fixed_table(labels))
    for _, _, parts in cases:
        for p in parts:
            p.name = table["by_part"][(p.part_id, p.name)]
    if ref_grid is None:
        need = [grid_for(bounds_of(parts), spacing_mm).shape for _, _, parts in cases]
        common = shape_vox or tuple(int(max(s[a] for s in need)) for a in range(3))  # one shape for the whole cohort
    labelled = []
    for case, path, parts in cases:
        grid = ref_grid or grid_for(bounds_of(parts), spacing_mm, common)
        labelled.append((case, voxelize_parts(parts, grid, table["values"], path, overlap)))
    _write_dataset(out, overwrite, name, labelled, table["values"], "meshes")
    shapes = {lm.array.shape for _, lm in labelled}
    typer.echo(f"voxelized {len(labelled)} case(s) onto {' / '.join('x'.join(map(str, s)) for s in shapes)} grids "
               f"with labels {', '.join(table['values'])} into {out}")


def _spacing(text: str) -> tuple[float, float, float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise AnatomicaError(f"--spacing: expected a number or X,Y,Z in mm, got {text!r}") from None
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3 or not all(np.isfinite(v) and v > 0 for v in vals):
        raise AnatomicaError(f"--spacing: expected one or three positive numbers (mm), got {text!r}")
    return tuple(vals)  # type: ignore[return-value]


def _mesh_cases(inputs: list[Path], is_case) -> list[Path]:
    """Each argument is a case, or a folder of cases (VTK files and part-file folders inside it)."""
    from anatomica.io.mesh_import import SURFACE_SUFFIXES, VTK_SUFFIXES

    paths: list[Path] = []
    for p in inputs:
        if not p.exists():
            raise AnatomicaError(f"{p}: no such file or folder")
        if p.is_dir() and not any(f.suffix.lower() in SURFACE_SUFFIXES for f in p.iterdir()):
            found = sorted(f for f in p.iterdir() if not f.name.startswith(".") and
                           ((f.is_file() and f.suffix.lower() in VTK_SUFFIXES) or (f.is_dir() and is_case(f))))
            if not found:
                raise AnatomicaError(f"{p}: holds no mesh cases (.vtp/.vtu/.vtk files, or folders of .stl/.obj/.ply part files)")
            paths += found
        else:
            paths.append(p)
    return paths


def _mesh_table(cases, fixed: dict[str, int] | None) -> dict:
    """Label names and values of every part over the cohort: {"values": {name: value}, "by_part": {(id, name): name}}."""
    by_part: dict[tuple[int | None, str], str] = {}
    values: dict[str, int] = {}
    if fixed is not None:
        name_of_value = {v: n for n, v in fixed.items()}
        for case, path, parts in cases:
            for p in parts:
                if p.part_id is not None:
                    if p.part_id not in name_of_value:
                        raise AnatomicaError(f"{path}: part id {p.part_id} has no name in the --labels table (values {sorted(name_of_value)})")
                    label = name_of_value[p.part_id]
                elif p.name in fixed:
                    label = p.name
                else:
                    raise AnatomicaError(f"{path}: part {p.name!r} is not in the --labels table ({', '.join(fixed)})")
                by_part[(p.part_id, p.name)] = label
                values[label] = fixed[label]
        return {"values": dict(sorted(values.items(), key=lambda kv: kv[1])), "by_part": by_part}
    ids = sorted({p.part_id for _, _, parts in cases for p in parts if p.part_id is not None})
    for case, path, parts in cases:
        for p in parts:
            if p.part_id is not None and p.part_id <= 0:
                raise AnatomicaError(f"{path}: part id {p.part_id} cannot be a label value (0 is background): pass --labels to name and number the parts")
    for i in ids:
        values[f"part_{i}"] = i
    stems = sorted({p.name for _, _, parts in cases for p in parts if p.part_id is None})
    nxt = max(ids, default=0) + 1
    for s in stems:
        if s in values:
            raise AnatomicaError(f"a part file is named {s!r} like a VTK part id's default name: pass --labels")
        values[s] = nxt
        nxt += 1
    for _, _, parts in cases:
        for p in parts:
            by_part[(p.part_id, p.name)] = p.name if p.part_id is None else f"part_{p.part_id}"
    return {"values": values, "by_part": by_part}
