"""Neural-field decoder: the full-grid decode is the point-set decode; gradients reach z and the points."""

import torch

from anatomica.coords import grid_points
from anatomica.nn.field import FieldConfig, FieldDecoder, cell_fourier_features

CFG = FieldConfig(latent_channels=3, out_channels=4, features=16, upsample=1, fourier_bands=2, hidden=24)


def test_full_grid_equals_point_set_decode():
    torch.manual_seed(0)
    f = FieldDecoder(CFG).eval()
    z = torch.randn(2, 3, 4, 4, 4)
    shape = (16, 12, 8)
    grid = f.decode_grid(z, shape, chunk=500)  # chunks that do not divide the grid
    assert grid.shape == (2, 4, *shape)
    pts = grid_points(shape)
    q = f.query(z, pts.expand(2, -1, -1))
    torch.testing.assert_close(grid.flatten(2), q, rtol=1e-5, atol=1e-6)
    # any subset (a control domain) gives the same logits as the grid at those points
    idx = torch.tensor([0, 17, 400, 1535])
    torch.testing.assert_close(f.query(z, pts[idx]), grid.flatten(2)[:, :, idx], rtol=1e-5, atol=1e-6)


def test_gradients_reach_latent_and_points():
    f = FieldDecoder(CFG)
    z = torch.randn(1, 3, 4, 4, 4, requires_grad=True)
    pts = (torch.rand(1, 50, 3) * 2 - 1).requires_grad_(True)
    f.query(z, pts).square().sum().backward()
    assert z.grad.abs().sum() > 0 and pts.grad.abs().sum() > 0


def test_cell_features_are_continuous_across_cells():
    # periodic in the cell: a point just below and just above a cell border read almost the same features
    latent = (5, 5, 5)
    border = torch.tensor([[[-0.5, 0.0, 0.5]]])  # latent index 1, 2, 3: on borders
    eps = torch.tensor([[[1e-4, 1e-4, 1e-4]]])
    a = cell_fourier_features(border - eps, latent, 3)
    b = cell_fourier_features(border + eps, latent, 3)
    assert (a - b).abs().max() < 1e-2
