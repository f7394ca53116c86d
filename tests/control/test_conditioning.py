"""Conditioning of the conditional baselines: moment vectors are control.moments', targets fill the free moments from
the reference, heatmaps peak at the centroid and sum to the mass, channel shapes per kind."""

import numpy as np
import pytest
import torch

from anatomica.control.conditioning import (
    case_vectors,
    channel_statistics,
    check_spec,
    conditioning_channels,
    domain_signature,
    heatmaps,
    latent_cell_centres,
    moment_vectors,
    target_vectors,
)
from anatomica.control.moments import moments
from anatomica.control.spec import parse_task, resolve_task
from anatomica.errors import AnatomicaError
from anatomica.io.nifti import LabelMap

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
LABELS = {"left": 1, "right": 2}
SPEC = parse_task("""
name: two-boxes
domains:
  - name: a
    labels: [left]
    placement: {kind: box, around: [left], margin: 0.3}
    grid: [10, 10, 10]
    targets: {mass: {scale: 1.5}, centroid: {offset_mm: [4, 0, 0]}, covariance: {}}
  - name: b
    labels: [right]
    placement: {kind: global}
    grid: [16, 16, 16]
    targets: {centroid: {}}
  - name: topo_only
    labels: [right]
    placement: {kind: global}
    grid: [8, 8, 8]
    targets: {betti: [1, 0, 0]}
weights: {geometry: 1.0, topology: 1.0}
""")


def blob(centre=(5, 7, 8), radii=(3, 2, 2.5)) -> np.ndarray:
    g = np.stack(np.meshgrid(*[np.arange(16)] * 3, indexing="ij"), -1).astype(float)
    a = np.zeros((16, 16, 16), np.uint8)
    a[(((g - np.array(centre)) / np.array(radii)) ** 2).sum(-1) < 1] = 1
    a[11:14, 3:6, 9:13] = 2
    return a


def resolved(a: np.ndarray):
    return resolve_task(SPEC, LabelMap(a, AFFINE, LABELS), LABELS, a.shape, AFFINE)


def test_moment_vector_is_control_moments_of_each_targeted_domain():
    a = blob()
    task = resolved(a)
    v = moment_vectors(task, a)
    assert v.shape == (2, 13) and v.dtype == torch.float64  # the Betti-only domain does not condition
    for k, (d, S) in enumerate(zip(task.domains[:2], task.parse_label_array(a, torch.float64)[:2])):
        mom = moments(S, d.domain.points(torch.float64))
        assert torch.allclose(v[k], torch.cat([mom.mass, mom.centroid[0], mom.covariance[0].reshape(-1)]))
    # the global domain samples every voxel: its centroid is the voxels' mean position in normalized coordinates
    ijk = np.argwhere(a == 2).mean(0)
    assert np.allclose(v[1, 1:4].numpy(), 2 * ijk / 15 - 1)


def test_target_vector_takes_the_targets_and_the_reference_for_the_rest():
    a = blob()
    task = resolved(a)
    measured, target = moment_vectors(task, a), target_vectors(task, a)
    assert torch.isclose(target[0, 0], 1.5 * measured[0, 0])
    # 4 mm along axis 0 = 2 voxels = 2·2/15 in normalized coordinates
    assert torch.allclose(target[0, 1:4] - measured[0, 1:4], torch.tensor([4 / 15, 0, 0], dtype=torch.float64))
    assert torch.allclose(target[0, 4:], measured[0, 4:])  # Σⁿ of the reference times its own size
    assert torch.allclose(target[1], measured[1])  # only a centroid {} target: everything the reference's


def test_heatmap_peaks_at_the_centroid_and_sums_to_the_mass():
    volume, latent = (16, 16, 16), (8, 8, 8)
    cells = latent_cell_centres(volume, latent)
    p = cells[8 * 64 // 2 + 3 * 8 + 5]  # a cell centre
    cov = torch.diag(torch.tensor([0.04, 0.02, 0.03], dtype=torch.float64))
    v = torch.cat([torch.tensor([0.3], dtype=torch.float64), p, cov.reshape(-1)])[None]
    H = heatmaps(v, volume, latent)
    assert H.shape == (1, 8, 8, 8)
    assert int(H.reshape(-1).argmax()) == 8 * 64 // 2 + 3 * 8 + 5
    assert abs(float(H.sum()) - 0.3) < 0.01
    # a line domain's rank-deficient Σ still renders (regularized by one latent cell²), finite and peaked
    line = torch.cat([torch.tensor([0.2], dtype=torch.float64), p, torch.diag(torch.tensor([0.1, 0.0, 0.0], dtype=torch.float64)).reshape(-1)])[None]
    Hl = heatmaps(line, volume, latent)
    assert torch.isfinite(Hl).all() and abs(float(Hl.sum()) - 0.2) < 0.01


def test_channels_of_both_kinds_and_their_normalization():
    a = blob()
    v = moment_vectors(resolved(a), a)
    explicit = conditioning_channels("explicit", v, (16, 16, 16), (4, 4, 4))
    implicit = conditioning_channels("implicit", v, (16, 16, 16), (4, 4, 4))
    assert explicit.shape == (26, 4, 4, 4) and implicit.shape == (2, 4, 4, 4)
    assert explicit.dtype == implicit.dtype == torch.float32
    assert torch.equal(explicit[:, 1, 2, 3], v.reshape(-1).float())  # constant channels
    vs, names = case_vectors(SPEC, [a, blob((6, 8, 7), (2.5, 3, 2))], LABELS, AFFINE, ["x", "y"])
    assert vs.shape == (2, 2, 13) and names == ["a", "b"]
    raw = torch.stack([conditioning_channels("explicit", x, (16, 16, 16), (4, 4, 4)) for x in vs])
    mean, std = channel_statistics(raw)
    normed = torch.stack([conditioning_channels("explicit", x, (16, 16, 16), (4, 4, 4), mean, std) for x in vs])
    assert torch.allclose(normed.mean((0, 2, 3, 4)), torch.zeros(26), atol=1e-5)
    assert all(s > 0 for s in std)


def test_tasks_without_geometry_and_cases_without_the_label_are_refused():
    topo = parse_task("name: t\ndomains:\n  - {name: d, labels: [left], placement: {kind: global}, grid: [8, 8, 8], targets: {betti: [1, 0, 0]}}\n")
    with pytest.raises(AnatomicaError, match="no geometric targets"):
        check_spec(topo)
    empty = np.zeros((16, 16, 16), np.uint8)
    with pytest.raises(AnatomicaError, match="training case empty"):
        case_vectors(SPEC, [empty], LABELS, AFFINE, ["empty"])
    assert [d["name"] for d in domain_signature(SPEC)] == ["a", "b"] and "targets" not in domain_signature(SPEC)[0]
