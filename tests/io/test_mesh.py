"""Meshes read back from every format: closed, outward, enclosing the label's volume, where the NIfTI puts it."""

import numpy as np
import pytest
import trimesh
from helpers import ball, oblique_affine

from anatomica.errors import AnatomicaError
from anatomica.io.mesh import FORMATS, export_label_map_meshes, label_meshes
from anatomica.io.nifti import LabelMap

SHAPE = (28, 24, 20)


@pytest.fixture(scope="module")
def label_map() -> LabelMap:
    """Two blobs on an oblique, anisotropic, left-handed grid (a flipped axis reverses marching cubes' winding)."""
    a = np.zeros(SHAPE, np.uint8)
    a[ball(SHAPE, (9, 12, 10), 6.5)] = 1
    b = ball(SHAPE, (20, 11, 9), 5.5) & (a == 0)
    a[b] = 2
    a[22:27, 18:24, 14:20] = 3  # a box touching the array's border: its surface must still close
    affine = oblique_affine()
    affine[:3, 1] *= -1
    assert np.linalg.det(affine[:3, :3]) < 0
    return LabelMap(a, affine, {"left": 1, "right": 2, "corner": 3})


def _voxel_centroid_mm(lm: LabelMap, value: int) -> np.ndarray:
    ijk = np.argwhere(lm.array == value).mean(0)
    return lm.affine[:3, :3] @ ijk + lm.affine[:3, 3]


@pytest.mark.parametrize("fmt", FORMATS)
def test_meshes_read_back_closed_outward_with_the_label_volume_in_world_mm(label_map, fmt, tmp_path):
    paths = export_label_map_meshes(label_map, tmp_path, fmt)
    assert sorted(p.name for p in paths) == sorted(f"{n}.{fmt}" for n in ("left", "right", "corner"))
    voxel_mm3 = abs(np.linalg.det(label_map.affine[:3, :3]))
    for name, value in label_map.labels.items():
        mesh = trimesh.load(tmp_path / f"{name}.{fmt}", force="mesh")
        assert mesh.is_watertight and mesh.is_winding_consistent, name
        assert mesh.volume > 0, name  # outward normals give a positive signed volume
        # outward, face by face: normals point away from the centroid for these star-shaped labels
        away = np.einsum("ij,ij->i", mesh.face_normals, mesh.triangles_center - mesh.center_mass)
        assert (away > 0).mean() > 0.97, name
        expected = (label_map.array == value).sum() * voxel_mm3
        assert mesh.volume == pytest.approx(expected, rel=0.05), name
        # coordinates: the surface sits on the label's voxels mapped through the affine (oblique, anisotropic)
        assert np.allclose(mesh.center_mass, _voxel_centroid_mm(label_map, value), atol=0.3)
        inv = np.linalg.inv(label_map.affine)
        ijk = mesh.vertices @ inv[:3, :3].T + inv[:3, 3]
        idx = np.argwhere(label_map.array == value)
        assert np.all(ijk.min(0) >= idx.min(0) - 0.51) and np.all(ijk.max(0) <= idx.max(0) + 0.51)


def test_smoothing_keeps_volume_and_closure(label_map):
    raw = {m.name: m.mesh for m in label_meshes(label_map)}
    for m in label_meshes(label_map, smooth=10):
        assert m.mesh.is_watertight
        assert m.mesh.volume == pytest.approx(raw[m.name].volume, rel=1e-6)
        assert not np.allclose(m.mesh.vertices, raw[m.name].vertices)  # it did smooth


def test_diagonally_touching_voxels_give_a_closed_manifold_surface():
    a = np.zeros((6, 6, 6), np.uint8)
    a[1, 1, 1] = a[2, 2, 1] = a[3, 3, 2] = a[2, 3, 3] = 1  # edge and corner contacts only
    (m,) = label_meshes(LabelMap(a, np.eye(4), {"x": 1}))
    assert m.mesh.is_watertight and m.mesh.volume > 0


def test_label_selection_and_errors(label_map):
    assert [m.name for m in label_meshes(label_map, ["right"])] == ["right"]
    with pytest.raises(AnatomicaError, match="unknown label"):
        label_meshes(label_map, ["nope"])
    with pytest.raises(AnatomicaError, match="no voxels"):
        label_meshes(LabelMap(np.zeros((4, 4, 4), np.uint8), np.eye(4), {"x": 1}), ["x"])
    with pytest.raises(AnatomicaError, match="--smooth"):
        label_meshes(label_map, smooth=-1)
