"""coords: the one voxel / normalized / world conversion, and trilinear sampling at normalized points."""

import numpy as np
import torch
from helpers import oblique_affine

from anatomica.coords import (
    grid_points,
    normalized_scale_mm,
    normalized_to_voxel,
    normalized_to_world,
    sample_points,
    voxel_to_normalized,
    world_to_normalized,
)

SHAPE = (7, 10, 4)


def test_round_trips_between_voxels_normalized_and_world():
    A = oblique_affine(spacing=(1.0, 1.0, 2.5))
    ijk = torch.tensor([[0.0, 0.0, 0.0], [6.0, 9.0, 3.0], [2.5, 4.0, 1.0]], dtype=torch.float64)
    u = voxel_to_normalized(ijk, SHAPE)
    assert torch.allclose(u[0], -torch.ones(3, dtype=torch.float64)) and torch.allclose(u[1], torch.ones(3, dtype=torch.float64))
    assert torch.allclose(normalized_to_voxel(u, SHAPE), ijk)
    xyz = normalized_to_world(u, A, SHAPE)
    assert torch.allclose(xyz, ijk @ torch.from_numpy(A[:3, :3]).T + torch.from_numpy(A[:3, 3]))
    assert torch.allclose(world_to_normalized(xyz, A, SHAPE), u)
    # the linear part: a normalized displacement in mm
    du = u[2] - u[0]
    assert np.allclose(normalized_scale_mm(A, SHAPE) @ du.numpy(), (xyz[2] - xyz[0]).numpy())


def test_sampling_at_voxel_centres_reads_the_voxels():
    g = torch.Generator().manual_seed(0)
    vol = torch.rand(2, 3, *SHAPE, generator=g, dtype=torch.float64)
    pts = grid_points(SHAPE, torch.float64)
    out = sample_points(vol, pts[None].expand(2, -1, -1))
    assert torch.allclose(out, vol.reshape(2, 3, -1))
    # per-sample points (B, N, 3): each sample at its own points
    shifted = torch.stack([pts, pts.flip(0)])
    out = sample_points(vol, shifted)
    assert torch.allclose(out[1], vol[1].reshape(3, -1).flip(-1))
