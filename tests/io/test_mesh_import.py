"""Meshes with part ids back to label maps: exact on the grid they came from, VTK surfaces and volumes, and
one clear error for open, empty, overlapping or out-of-grid parts."""

from pathlib import Path

import meshio
import numpy as np
import pytest
import trimesh
from helpers import ball, oblique_affine

from anatomica.errors import AnatomicaError
from anatomica.io.mesh import export_label_map_meshes, label_meshes
from anatomica.io.mesh_import import Grid, bounds_of, grid_for, read_case, voxelize_parts
from anatomica.io.nifti import LabelMap

SHAPE = (20, 18, 16)

# --- VTK XML writers (ascii, as ParaView writes with "Data Mode: Ascii") ---


def _array(name: str, data: np.ndarray, kind: str, components: int | None = None) -> str:
    comp = f' NumberOfComponents="{components}"' if components else ""
    return f'<DataArray type="{kind}" Name="{name}"{comp} format="ascii">{" ".join(map(str, np.asarray(data).ravel().tolist()))}</DataArray>'


def write_vtp(path: Path, points: np.ndarray, triangles: np.ndarray, part: np.ndarray, array: str = "part") -> Path:
    """A PolyData file: triangles in Polys, one integer cell array of part ids."""
    offsets = 3 * np.arange(1, len(triangles) + 1)
    text = f"""<?xml version="1.0"?>
<VTKFile type="PolyData" version="1.0" byte_order="LittleEndian">
<PolyData><Piece NumberOfPoints="{len(points)}" NumberOfPolys="{len(triangles)}">
<Points>{_array("Points", points, "Float64", 3)}</Points>
<Polys>{_array("connectivity", triangles, "Int64")}{_array("offsets", offsets, "Int64")}</Polys>
<CellData>{_array(array, part, "Int32")}</CellData>
</Piece></PolyData></VTKFile>
"""
    Path(path).write_text(text)
    return Path(path)


def box_tetra(lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """A box split into 6 tetrahedra (Kuhn triangulation): points (8, 3), cells (6, 4)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
    pts = lo + corners * (hi - lo)
    idx = lambda c: int(c[0] * 4 + c[1] * 2 + c[2])  # noqa: E731
    tets = []
    from itertools import permutations

    for perm in permutations(range(3)):
        c = np.zeros(3, int)
        path = [idx(c)]
        for a in perm:
            c[a] = 1
            path.append(idx(c))
        tets.append(path)
    return pts, np.array(tets)


@pytest.fixture(scope="module")
def label_map() -> LabelMap:
    a = np.zeros(SHAPE, np.uint8)
    a[ball(SHAPE, (6, 9, 8), 4.5)] = 1
    a[ball(SHAPE, (14, 9, 8), 3.5) & (a == 0)] = 2
    return LabelMap(a, oblique_affine(), {"left": 1, "right": 2})


def test_part_files_voxelize_back_exactly_on_an_oblique_grid(label_map, tmp_path):
    export_label_map_meshes(label_map, tmp_path / "case", "stl")
    parts = read_case(tmp_path / "case")
    assert [p.name for p in parts] == ["left", "right"]
    out = voxelize_parts(parts, Grid(SHAPE, label_map.affine), label_map.labels, tmp_path)
    assert np.array_equal(out.array, label_map.array) and out.labels == label_map.labels


def test_vtp_with_part_ids(label_map, tmp_path):
    pts, tris, ids, off = [], [], [], 0
    for m in label_meshes(label_map):
        pts.append(m.mesh.vertices)
        tris.append(m.mesh.faces + off)
        ids.append(np.full(len(m.mesh.faces), m.value + 10))
        off += len(m.mesh.vertices)
    path = write_vtp(tmp_path / "case.vtp", np.concatenate(pts), np.concatenate(tris), np.concatenate(ids), array="RegionId")
    parts = read_case(path)
    assert [(p.name, p.part_id) for p in parts] == [("part_11", 11), ("part_12", 12)]
    out = voxelize_parts(parts, Grid(SHAPE, label_map.affine), {"part_11": 1, "part_12": 2}, path)
    assert np.array_equal(out.array, label_map.array)


def test_vtu_tetrahedra_give_their_boundary(tmp_path):
    p1, t1 = box_tetra((0, 0, 0), (10, 8, 6))
    p2, t2 = box_tetra((10, 0, 0), (16, 8, 6))
    path = tmp_path / "boxes.vtu"
    meshio.Mesh(np.concatenate([p1, p2]), [("tetra", np.concatenate([t1, t2 + 8]))], cell_data={"part": [np.r_[[1] * 6, [2] * 6]]}).write(path)
    parts = read_case(path)
    assert all(p.mesh.is_watertight for p in parts)
    assert [round(p.mesh.volume) for p in parts] == [480, 288]
    grid = grid_for(bounds_of(parts), (0.5, 0.5, 0.5))
    out = voxelize_parts(parts, grid, {"part_1": 1, "part_2": 2}, path)
    vox_mm3 = 0.125
    assert (out.array == 1).sum() * vox_mm3 == pytest.approx(480, rel=0.05)
    assert (out.array == 2).sum() * vox_mm3 == pytest.approx(288, rel=0.05)


def _sphere(centre, radius) -> trimesh.Trimesh:
    m = trimesh.creation.icosphere(subdivisions=2, radius=radius)
    m.apply_translation(centre)
    return m


def test_open_empty_overlapping_and_outside_parts_are_errors(tmp_path):
    case = tmp_path / "case"
    case.mkdir()
    open_mesh = _sphere((0, 0, 0), 5)
    open_mesh.update_faces(np.arange(len(open_mesh.faces)) > 3)
    open_mesh.export(case / "holey.stl")
    with pytest.raises(AnatomicaError, match=r"part 'holey' is not a closed surface \(\d+ open edges\)"):
        read_case(case)

    (case / "holey.stl").unlink()
    _sphere((0, 0, 0), 5).export(case / "a.stl")
    _sphere((4, 0, 0), 5).export(case / "b.stl")
    parts = read_case(case)
    grid = grid_for(bounds_of(parts), (1.0, 1.0, 1.0))
    with pytest.raises(AnatomicaError, match="parts 'a' and 'b' overlap in \\d+ voxels.*--overlap first"):
        voxelize_parts(parts, grid, {"a": 1, "b": 2}, case)
    first = voxelize_parts(parts, grid, {"a": 1, "b": 2}, case, overlap="first")
    last = voxelize_parts(parts, grid, {"a": 1, "b": 2}, case, overlap="last")
    assert (first.array == 1).sum() > (last.array == 1).sum() and (first.array > 0).sum() == (last.array > 0).sum()

    small = grid_for(bounds_of(parts), (1.0, 1.0, 1.0), shape=(6, 6, 6))
    with pytest.raises(AnatomicaError, match="reaches outside the grid"):
        voxelize_parts(parts, small, {"a": 1, "b": 2}, case, overlap="last")

    tiny = [type(parts[0])("speck", _sphere((0.3, 0.3, 0.3), 0.1))]
    with pytest.raises(AnatomicaError, match="contains no voxel centre"):
        voxelize_parts(tiny, grid_for(bounds_of(parts), (1.0, 1.0, 1.0)), {"speck": 1}, case)


def test_unreadable_and_unsupported_inputs(tmp_path):
    with pytest.raises(AnatomicaError, match="no such file"):
        read_case(tmp_path / "missing.vtp")
    bad = tmp_path / "bad.vtp"
    bad.write_text("<VTKFile type='ImageData'></VTKFile>")
    with pytest.raises(AnatomicaError, match="not a readable VTK PolyData"):
        read_case(bad)
    nopart = tmp_path / "nopart.vtu"
    p, t = box_tetra((0, 0, 0), (1, 1, 1))
    meshio.Mesh(p, [("tetra", t)]).write(nopart)
    with pytest.raises(AnatomicaError, match="no cell data"):
        read_case(nopart)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnatomicaError, match="no .stl, .obj or .ply"):
        read_case(tmp_path / "empty")
    with pytest.raises(AnatomicaError, match="not a mesh"):
        read_case(Path(__file__))
