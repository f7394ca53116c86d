"""Surface meshes of a label map: one closed surface per label, in world millimetres (the NIfTI affine).

Marching cubes (scikit-image, Lewiner's variant: manifold, watertight surfaces) runs on each label's
binary mask padded by one background voxel, so surfaces touching the volume's border are closed too.
Vertices go through the affine, so meshes sit where the label map sits in a viewer, on oblique and
anisotropic grids as well. Optional smoothing is Taubin's λ|μ filter (trimesh), which barely shrinks,
followed by a scaling about the centroid that restores the enclosed volume exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from anatomica.errors import AnatomicaError
from anatomica.io.colors import color_of
from anatomica.io.files import atomic_write
from anatomica.io.nifti import LabelMap

FORMATS = ("stl", "obj", "ply", "glb")
ISO_LEVEL = 0.4999


@dataclass
class LabelMesh:
    """The surface of one label: its name, value and a trimesh (world mm, outward normals)."""

    name: str
    value: int
    mesh: trimesh.Trimesh


def check_format(fmt: str, what: str = "--format") -> str:
    """A mesh format name (case and a leading dot ignored), or one error line naming the option ``what``."""
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise AnatomicaError(f"{what} must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return fmt


def select_labels(label_map: LabelMap, names: list[str] | None = None) -> dict[str, int]:
    """The labels to mesh: ``names`` (each must be in the table) or every label present in the array."""
    present = label_map.present_labels()
    if not names:
        values = set(int(v) for v in np.unique(label_map.array))
        return {n: v for n, v in present.items() if v in values}
    unknown = [n for n in names if n not in present]
    if unknown:
        raise AnatomicaError(f"unknown label(s) {', '.join(map(repr, unknown))}; the label map has {', '.join(present) or 'none'}")
    return {n: present[n] for n in names}


def label_surface(mask: np.ndarray, affine: np.ndarray, smooth: int = 0) -> trimesh.Trimesh:
    """Closed surface (world mm) of a binary mask at the iso-level halfway between voxel centres.

    Marching cubes cuts the corners of voxels, so the enclosed volume is below the voxel volume by about the
    surface voxels' share: ~1-3 % for blobs of radius ≥ 6 voxels, much more for one-voxel-thin structures."""
    from skimage.measure import marching_cubes

    padded = np.pad(mask.astype(np.float32), 1)  # closes surfaces that touch the border
    # Just below 0.5: on a binary mask the saddle of a face whose diagonal voxels are set is exactly 0.5, a tie
    # that leaves edges shared by four triangles (not a manifold). Below it, voxels that touch along an edge are
    # joined by a thin bridge (as the foreground's 26-connectivity has it) and every edge has two triangles.
    verts, faces, _, _ = marching_cubes(padded, level=ISO_LEVEL, method="lewiner")
    ijk = verts - 1.0
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    mesh = trimesh.Trimesh(world, faces, process=True)
    if mesh.volume < 0:  # winding depends on the gradient direction and on the affine's handedness
        mesh.invert()
    if smooth > 0:
        volume, centre = mesh.volume, mesh.center_mass
        trimesh.smoothing.filter_taubin(mesh, iterations=smooth)
        # Taubin keeps the volume to about 1 %; scale about the centroid to keep it exactly
        mesh.apply_translation(-centre)
        mesh.apply_scale((volume / mesh.volume) ** (1.0 / 3.0))
        mesh.apply_translation(centre)
    return mesh


def label_meshes(label_map: LabelMap, names: list[str] | None = None, smooth: int = 0) -> list[LabelMesh]:
    """One :class:`LabelMesh` per selected label (see :func:`select_labels`); labels without voxels are skipped
    when no names were asked for, and are an error when they were."""
    if smooth < 0:
        raise AnatomicaError(f"--smooth must be >= 0 iterations, got {smooth}")
    out = []
    for name, value in select_labels(label_map, names).items():
        mask = label_map.array == value
        if not mask.any():
            raise AnatomicaError(f"label {name!r} (value {value}) has no voxels: nothing to mesh")
        mesh = label_surface(mask, label_map.affine, smooth)
        mesh.visual.face_colors = [*color_of(name), 255]
        mesh.metadata["name"] = name
        out.append(LabelMesh(name, value, mesh))
    return out


def safe_name(name: str) -> str:
    """A file name for a label name (path separators and the like replaced)."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".")
    return keep or "label"


# 3D Slicer reads "SPACE=RAS" in an STL header or OBJ comment as the coordinate system (without it, LPS)
SPACE_TAG = "SPACE=RAS anatomica: world mm (NIfTI RAS)"


def write_mesh(mesh: trimesh.Trimesh, path: Path, fmt: str) -> Path:
    """One mesh file, atomically. STL is binary (units: mm, as every coordinate here); STL and OBJ say their
    coordinate system in the header the way 3D Slicer reads it."""
    fmt = check_format(fmt)

    def write(tmp: str) -> None:
        if fmt == "obj":
            data = mesh.export(file_type="obj", header=SPACE_TAG)
        else:
            data = mesh.export(file_type=fmt)
        data = data if isinstance(data, bytes) else data.encode()
        if fmt == "stl":  # the 80-byte binary header is free text
            data = SPACE_TAG.encode().ljust(80, b" ")[:80] + data[80:]
        Path(tmp).write_bytes(data)

    atomic_write(Path(path), write)
    return Path(path)


def write_label_meshes(meshes: list[LabelMesh], folder: Path, fmt: str) -> list[Path]:
    """``folder/<label name>.<fmt>`` per mesh."""
    fmt = check_format(fmt)
    return [write_mesh(m.mesh, Path(folder) / f"{safe_name(m.name)}.{fmt}", fmt) for m in meshes]


def export_label_map_meshes(label_map: LabelMap, folder: Path, fmt: str, names: list[str] | None = None, smooth: int = 0) -> list[Path]:
    """Mesh a label map and write one file per label into ``folder``."""
    return write_label_meshes(label_meshes(label_map, names, smooth), folder, fmt)
