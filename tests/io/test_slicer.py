"""3D Slicer and ITK-SNAP files: the segmentation shipped in slicerio survives read → write → read; names,
values, geometry and colours are right; overlaps are refused or resolved as asked."""

import numpy as np
import pytest
import slicerio
from helpers import ball, oblique_affine

from anatomica.errors import AnatomicaError
from anatomica.io.colors import color_float, color_of
from anatomica.io.nifti import LabelMap
from anatomica.io.slicer import ctbl_text, itksnap_text, parse_ctbl, parse_itksnap, read_seg_nrrd, write_seg_nrrd, write_tables

SAMPLE = slicerio.get_testdata_file("Segmentation.seg.nrrd")
OVERLAPPING = slicerio.get_testdata_file("SegmentationOverlapping.seg.nrrd")


def test_round_trip_of_slicerios_sample_segmentation(tmp_path):
    original = slicerio.read_segmentation(SAMPLE)
    lm = read_seg_nrrd(SAMPLE)
    assert list(lm.labels) == [s["name"] for s in original["segments"]]
    assert list(lm.labels.values()) == [s["labelValue"] for s in original["segments"]]
    out = write_seg_nrrd(lm, tmp_path / "copy.seg.nrrd")
    back = slicerio.read_segmentation(str(out))
    assert np.array_equal(back["voxels"], original["voxels"])
    assert np.allclose(back["ijkToLPS"], original["ijkToLPS"])
    for seg in back["segments"]:
        assert seg["labelValue"] == lm.labels[seg["name"]]
        assert np.allclose(seg["color"], color_float(seg["name"]), atol=1e-5)
    again = read_seg_nrrd(out)
    assert again.labels == lm.labels and np.array_equal(again.array, lm.array) and np.allclose(again.affine, lm.affine)


def test_nifti_affine_maps_to_lps_and_back(tmp_path):
    a = np.zeros((12, 10, 8), np.uint8)
    a[ball(a.shape, (5, 5, 4), 3)] = 4
    lm = LabelMap(a, oblique_affine(), {"aorta": 4})
    path = write_seg_nrrd(lm, tmp_path / "x.seg.nrrd")
    raw = slicerio.read_segmentation(str(path))
    # Slicer's LPS: x and y of RAS negated
    assert np.allclose(raw["ijkToLPS"], np.diag([-1, -1, 1, 1]) @ lm.affine)
    back = read_seg_nrrd(path)
    assert np.allclose(back.affine, lm.affine) and back.labels == {"aorta": 4} and np.array_equal(back.array, a)
    with pytest.raises(AnatomicaError, match="exists"):
        write_seg_nrrd(lm, path)


def test_overlapping_segments_are_refused_or_resolved():
    with pytest.raises(AnatomicaError, match="'left lung' and 'overlapping sphere' overlap in .* --overlap first"):
        read_seg_nrrd(OVERLAPPING)
    raw = slicerio.read_segmentation(OVERLAPPING)
    sphere = slicerio.segment_mask(raw, "overlapping sphere")
    lung = slicerio.segment_mask(raw, "left lung")
    last, first = read_seg_nrrd(OVERLAPPING, "last"), read_seg_nrrd(OVERLAPPING, "first")
    both = sphere & lung
    assert both.any()
    assert np.all(last.array[both] == last.labels["overlapping sphere"])
    assert np.all(first.array[both] == first.labels["left lung"])
    assert np.all(first.array[sphere & ~lung & (first.array > 0)] >= 1)


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(AnatomicaError, match="no such file"):
        read_seg_nrrd(tmp_path / "none.seg.nrrd")
    junk = tmp_path / "junk.seg.nrrd"
    junk.write_bytes(b"not a nrrd at all")
    with pytest.raises(AnatomicaError, match="not a readable segmentation"):
        read_seg_nrrd(junk)
    with pytest.raises(AnatomicaError, match="--overlap"):
        read_seg_nrrd(SAMPLE, "middle")


def test_colour_tables_carry_the_shared_colours(tmp_path):
    labels = {"heart_myocardium": 1, "aorta": 6, "my structure": 9}
    ctbl = parse_ctbl(ctbl_text(labels))
    assert ctbl["aorta"] == (6, color_of("aorta")) and ctbl["my_structure"] == (9, color_of("my structure"))
    snap = parse_itksnap(itksnap_text(labels))
    assert snap == {n: (v, color_of(n)) for n, v in labels.items()}
    paths = write_tables(labels, tmp_path)
    assert [p.name for p in paths] == ["anatomica.ctbl", "itksnap_labels.txt"]
