"""Meshes with part ids → label maps on a grid you choose, so a cohort of meshes becomes a training set.

Inputs (one *case* each):
- a VTK file (``.vtp`` surface or ``.vtu`` volume mesh, read by meshio) whose integer cell-data array names
  the part of every cell (``part``, ``PartId``, ``RegionId``, ``label``, ``gmsh:physical``…). Surfaces are
  used as they are; for tetrahedra and hexahedra a part's boundary (faces of exactly one of its cells) is
  its surface;
- a folder of ``.stl`` / ``.obj`` / ``.ply`` files, one part each, named by the file name;
- a single ``.stl`` / ``.obj`` / ``.ply`` file (one part).

Voxelization: a voxel belongs to a part when its centre is inside the part's closed surface, by the parity
of ray crossings along the grid's third axis (trimesh's ray caster, one ray per voxel column, in voxel
index space so oblique and anisotropic grids are exact). That needs closed surfaces: open ones are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from anatomica.errors import AnatomicaError
from anatomica.io.nifti import LabelMap

SURFACE_SUFFIXES = (".stl", ".obj", ".ply")
VTK_SUFFIXES = (".vtp", ".vtu", ".vtk")
PART_ARRAYS = ("part", "parts", "partid", "part_id", "regionid", "region", "label", "labels", "gmsh:physical",
               "medit:ref", "cellentityids", "material", "tissue")
OVERLAP_CHOICES = ("error", "first", "last")
# Rays pass a little off the voxel-centre columns: meshes made on the same grid (marching cubes) have
# vertices and edges exactly on them, where a ray would hit two triangles at once and break the parity.
_JITTER = (0.0123457, 0.0234568)


@dataclass
class Part:
    """One part of a case: a name, an optional part id from the file, and its closed surface (world mm)."""

    name: str
    mesh: trimesh.Trimesh
    part_id: int | None = None


@dataclass
class Grid:
    """Voxel grid of the output label maps."""

    shape: tuple[int, int, int]
    affine: np.ndarray


# --- reading ---------------------------------------------------------------------------------------------------


def is_mesh_case(path: Path) -> bool:
    """A file or folder that :func:`read_case` reads."""
    path = Path(path)
    if path.is_dir():
        return any(p.suffix.lower() in SURFACE_SUFFIXES for p in path.iterdir())
    return path.suffix.lower() in SURFACE_SUFFIXES + VTK_SUFFIXES


def read_case(path: str | Path) -> list[Part]:
    """The parts of one case (see the module doc), each checked to be a non-empty closed surface."""
    path = Path(path)
    if not path.exists():
        raise AnatomicaError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in SURFACE_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise AnatomicaError(f"{path}: no .stl, .obj or .ply part files in this folder")
        parts = [Part(p.stem, _load_surface(p)) for p in files]
    elif path.suffix.lower() == ".vtp":
        parts = _parts_from_cells(path, *_read_vtp(path))
    elif path.suffix.lower() in VTK_SUFFIXES:
        parts = _read_vtk(path)
    elif path.suffix.lower() in SURFACE_SUFFIXES:
        parts = [Part(path.stem, _load_surface(path))]
    else:
        raise AnatomicaError(f"{path}: not a mesh (expected .vtp, .vtu, .vtk, .stl, .obj, .ply or a folder of part files)")
    for p in parts:
        check_closed(p, path)
    return parts


def _load_surface(path: Path) -> trimesh.Trimesh:
    try:
        mesh = trimesh.load(str(path), force="mesh", process=True)
    except Exception as e:  # trimesh raises many types on bad files
        raise AnatomicaError(f"{path}: not a readable mesh ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(mesh, trimesh.Trimesh):
        raise AnatomicaError(f"{path}: holds no triangles")
    return mesh


def _part_array(cell_data: dict, path: Path) -> str:
    names = {k.lower(): k for k in cell_data}
    for want in PART_ARRAYS:
        if want in names:
            return names[want]
    ints = [k for k, blocks in cell_data.items() if all(np.issubdtype(np.asarray(b).dtype, np.integer) and np.asarray(b).ndim == 1 for b in blocks)]
    if len(ints) == 1:
        return ints[0]
    raise AnatomicaError(f"{path}: no part-id cell array (looked for {', '.join(PART_ARRAYS[:6])}…; found {', '.join(cell_data) or 'no cell arrays'})")


# faces (as vertex indices into the cell) of the volume cells meshio reads
_CELL_FACES = {
    "tetra": [(0, 2, 1), (0, 1, 3), (1, 2, 3), (0, 3, 2)],
    "hexahedron": [(0, 3, 2, 1), (4, 5, 6, 7), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7)],
}


def _read_vtp(path: Path):
    """(points, [(cell type, connectivity)], {array: [ids per block]}) of a VTK XML PolyData file.

    meshio reads .vtu but not .vtp; the two share the XML container and DataArray encodings (ascii, base64,
    appended, zlib/lzma), so meshio's VTU data-array decoder reads the arrays here."""
    from xml.etree import ElementTree as ET

    from meshio.vtu._vtu import VtuReader, _parse_raw_binary

    try:
        try:
            root = ET.parse(str(path)).getroot()
        except ET.ParseError:
            root = _parse_raw_binary(str(path))  # appended raw binary is not XML-parsable as it is
        if root.tag != "VTKFile" or root.attrib.get("type") != "PolyData":
            raise ValueError(f"expected a VTKFile of type PolyData, found {root.tag} {root.attrib.get('type')!r}")
        reader = object.__new__(VtuReader)  # only its data-array decoder is used
        reader.compression = root.attrib.get("compressor")
        reader.header_type = root.attrib.get("header_type", "UInt32")
        reader.byte_order = root.attrib.get("byte_order")
        appended = root.find("AppendedData")
        reader.appended_data = appended.text.strip()[1:] if appended is not None else None  # drops the leading '_'
        points, blocks, ids = [], [], {}
        offset = 0
        for piece in root.find("PolyData").findall("Piece"):
            pts = reader.read_data(piece.find("Points/DataArray")).reshape(-1, 3)
            arrays = {c.attrib["Name"]: reader.read_data(c).reshape(-1) for c in (piece.find("CellData") or [])}
            start = 0  # cell data run over Verts, Lines, Strips, Polys in this order
            for kind in ("Verts", "Lines", "Strips", "Polys"):
                el = piece.find(kind)
                if el is None:
                    continue
                das = {d.attrib["Name"]: reader.read_data(d).reshape(-1).astype(np.int64) for d in el}
                offs = das.get("offsets", np.zeros(0, np.int64))
                n = len(offs)
                if kind == "Polys" and n:
                    conn = das["connectivity"]
                    first = np.concatenate([[0], offs[:-1]])
                    tri = [conn[[a, a + t, a + t + 1]] for a, b in zip(first, offs) for t in range(1, b - a - 1)]  # fan
                    counts = offs - first - 2
                    blocks.append(("triangle", np.asarray(tri, dtype=np.int64).reshape(-1, 3) + offset))
                    for name, arr in arrays.items():
                        ids.setdefault(name, []).append(np.repeat(arr[start:start + n], counts))
                start += n
            points.append(pts)
            offset += len(pts)
    except Exception as e:  # meshio's ReadError, ElementTree's ParseError, missing elements
        raise AnatomicaError(f"{path}: not a readable VTK PolyData file ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    if not points:
        raise AnatomicaError(f"{path}: holds no Piece")
    return np.concatenate(points), blocks, {k: v for k, v in ids.items() if len(v) == len(blocks)}


def _read_vtk(path: Path) -> list[Part]:
    import meshio

    try:
        m = meshio.read(str(path))
    except Exception as e:  # meshio raises ReadError, KeyError, ValueError… on bad files
        raise AnatomicaError(f"{path}: not a readable VTK mesh ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    return _parts_from_cells(path, m.points, [(b.type, b.data) for b in m.cells], m.cell_data)


def _parts_from_cells(path: Path, points: np.ndarray, blocks: list, cell_data: dict) -> list[Part]:
    """Parts of a cell mesh: cells grouped by the part-id cell array; volume cells give their boundary."""
    if not cell_data:
        raise AnatomicaError(f"{path}: has no cell data, so no part ids (expected an integer cell array such as 'part' or 'RegionId')")
    key = _part_array(cell_data, path)
    tris: dict[int, list[np.ndarray]] = {}
    for (kind, data), ids in zip(blocks, cell_data[key]):
        ids = np.asarray(ids).reshape(-1)
        if np.issubdtype(ids.dtype, np.floating) and np.any(ids != np.round(ids)):
            raise AnatomicaError(f"{path}: cell array {key!r} holds fractional values, part ids must be integers")
        ids = ids.astype(np.int64)
        data = np.asarray(data)
        block_type = kind
        if block_type == "triangle":
            faces = [(data, ids)]
        elif block_type == "quad":
            faces = [(data[:, [0, 1, 2]], ids), (data[:, [0, 2, 3]], ids)]
        elif block_type in _CELL_FACES:
            faces = []
            for p in np.unique(ids):
                cells = data[ids == p]
                quads = [cells[:, list(f)] for f in _CELL_FACES[block_type]]
                allf = np.concatenate(quads)
                # boundary of the part: faces that belong to exactly one of its cells
                _, inv, count = np.unique(np.sort(allf, axis=1), axis=0, return_inverse=True, return_counts=True)
                bound = allf[count[inv.reshape(-1)] == 1]
                if bound.shape[1] == 4:
                    bound = np.concatenate([bound[:, [0, 1, 2]], bound[:, [0, 2, 3]]])
                faces.append((bound, np.full(len(bound), p)))
        else:
            continue  # lines, vertices: no surface
        for f, i in faces:
            for p in np.unique(i):
                tris.setdefault(int(p), []).append(f[i == p])
    if not tris:
        raise AnatomicaError(f"{path}: no triangles, quads, tetrahedra or hexahedra")
    parts = []
    for p in sorted(tris):
        faces = np.concatenate(tris[p])
        mesh = trimesh.Trimesh(np.asarray(points, dtype=np.float64)[:, :3], faces, process=True)
        mesh.remove_unreferenced_vertices()
        mesh.fix_normals()  # boundaries of volume cells come with mixed winding; outward normals for the record
        parts.append(Part(f"part_{p}", mesh, p))
    return parts


def check_closed(part: Part, source: Path) -> None:
    """Refuse empty parts and parts that are not closed (voxelizing needs an inside)."""
    mesh = part.mesh
    if len(mesh.faces) == 0:
        raise AnatomicaError(f"{source}: part {part.name!r} is empty (no faces)")
    if not mesh.is_watertight:
        _, count = np.unique(mesh.edges_sorted, axis=0, return_counts=True)
        open_edges, shared = int((count == 1).sum()), int((count > 2).sum())
        what = f"{open_edges} open edges" + (f", {shared} edges shared by more than two triangles" if shared else "")
        raise AnatomicaError(f"{source}: part {part.name!r} is not a closed surface ({what}); voxelizing needs an "
                             f"inside: close its holes first (e.g. MeshLab 'Close Holes', Slicer 'Surface Toolbox')")


# --- grid ------------------------------------------------------------------------------------------------------


def bounds_of(parts: list[Part]) -> np.ndarray:
    """(2, 3) world bounding box of all parts."""
    b = np.array([p.mesh.bounds for p in parts])
    return np.stack([b[:, 0].min(0), b[:, 1].max(0)])


def grid_for(bounds: np.ndarray, spacing: tuple[float, float, float], shape: tuple[int, int, int] | None = None,
             margin: int = 2) -> Grid:
    """Axis-aligned (RAS) grid with ``spacing`` mm centred on ``bounds``; ``shape`` defaults to the bounds plus
    ``margin`` voxels of background on each side."""
    spacing_a = np.asarray(spacing, dtype=np.float64)
    if shape is None:
        shape = tuple(int(np.ceil((bounds[1, a] - bounds[0, a]) / spacing_a[a])) + 1 + 2 * margin for a in range(3))
    centre = bounds.mean(0)
    affine = np.eye(4)
    affine[:3, :3] = np.diag(spacing_a)
    affine[:3, 3] = centre - spacing_a * (np.asarray(shape) - 1) / 2.0
    return Grid(tuple(int(s) for s in shape), affine)


def check_inside(parts: list[Part], grid: Grid, source: Path) -> None:
    """Refuse parts that reach beyond the grid (they would be cut silently)."""
    inv = np.linalg.inv(grid.affine)
    for p in parts:
        ijk = p.mesh.vertices @ inv[:3, :3].T + inv[:3, 3]
        lo, hi = ijk.min(0), ijk.max(0)
        if np.any(lo < -0.51) or np.any(hi > np.asarray(grid.shape) - 0.49):  # 0.01 voxel: marching cubes sits at ±0.501
            raise AnatomicaError(f"{source}: part {p.name!r} reaches outside the grid (voxel range {np.round(lo, 1).tolist()} .. "
                                 f"{np.round(hi, 1).tolist()}, grid {list(grid.shape)}): choose a larger --shape or another --reference")


# --- voxelization ----------------------------------------------------------------------------------------------


def voxelize(mesh: trimesh.Trimesh, grid: Grid) -> np.ndarray:
    """Boolean mask of the voxels whose centres lie inside the closed ``mesh`` (world mm)."""
    inv = np.linalg.inv(grid.affine)
    local = mesh.copy()
    local.apply_transform(inv)  # voxel index space: voxel centres at integer (i, j, k)
    mask = np.zeros(grid.shape, dtype=bool)
    lo = np.maximum(np.floor(local.bounds[0]).astype(int), 0)
    hi = np.minimum(np.ceil(local.bounds[1]).astype(int), np.asarray(grid.shape) - 1)
    if np.any(hi < lo):
        return mask
    ii, jj = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    ii, jj = ii.ravel(), jj.ravel()
    z0 = local.bounds[0, 2] - 1.0
    origins = np.stack([ii + _JITTER[0], jj + _JITTER[1], np.full(ii.shape, z0)], axis=1)
    directions = np.tile([0.0, 0.0, 1.0], (len(ii), 1))
    locs, ray_idx, _ = local.ray.intersects_location(origins, directions, multiple_hits=True)
    if len(ray_idx) == 0:
        return mask
    ks = np.arange(grid.shape[2])
    order = np.lexsort((locs[:, 2], ray_idx))
    ray_idx, zs = ray_idx[order], locs[order, 2]
    for r in np.unique(ray_idx):
        z = zs[ray_idx == r]
        z = z[np.concatenate([[True], np.diff(z) > 1e-9])]  # a hit reported twice is one crossing
        inside = (np.searchsorted(z, ks, side="right") % 2) == 1  # odd number of crossings below the centre
        mask[ii[r], jj[r], inside] = True
    return mask


def voxelize_parts(parts: list[Part], grid: Grid, labels: dict[str, int], source: Path, overlap: str = "error") -> LabelMap:
    """A label map of ``parts`` on ``grid``; ``labels`` gives each part name's value.

    Overlaps (a voxel centre inside two parts): ``'error'`` refuses them and names the parts; ``'first'``
    gives the voxel to the part listed first (file name / part id order), ``'last'`` to the one listed last."""
    if overlap not in OVERLAP_CHOICES:
        raise AnatomicaError(f"--overlap must be one of {', '.join(OVERLAP_CHOICES)}, got {overlap!r}")
    check_inside(parts, grid, source)
    out = np.zeros(grid.shape, dtype=np.int32)
    owner = np.full(grid.shape, -1, dtype=np.int32)
    for k, p in enumerate(parts):
        m = voxelize(p.mesh, grid)
        if not m.any():
            raise AnatomicaError(f"{source}: part {p.name!r} contains no voxel centre of the grid (smaller than a voxel?): "
                                 f"choose a finer --spacing")
        clash = m & (owner >= 0)
        if clash.any():
            other = parts[int(np.bincount(owner[clash]).argmax())].name
            if overlap == "error":
                share = 100.0 * clash.sum() / m.sum()
                raise AnatomicaError(f"{source}: parts {other!r} and {p.name!r} overlap in {int(clash.sum())} voxels ({share:.2g} % of "
                                     f"{p.name!r}); a label map holds one label per voxel: pass --overlap first (the part listed first "
                                     f"wins) or --overlap last (the one listed last wins)")
            if overlap == "first":
                m = m & ~clash
        out[m] = labels[p.name]
        owner[m] = k
    return LabelMap(out, grid.affine, {p.name: labels[p.name] for p in parts})
