"""Neural-field decoder: bounded receptive field (locality, exact crop), grid decode = point decode, cost of a
query grows with its points (a FLOP ratio, never a timing), gradients reach the latent and the points."""

import pytest
import torch

from anatomica.coords import grid_points
from anatomica.nn.field import FieldConfig, FieldDecoder, cell_fourier_features, latent_coordinates

CFG = FieldConfig(latent_channels=3, out_channels=4, features=16, conv_layers=2, fourier_bands=2, hidden=24, downsampling=4)


def _field(cfg: FieldConfig = CFG) -> FieldDecoder:
    torch.manual_seed(0)
    return FieldDecoder(cfg).eval()


def test_full_grid_equals_point_set_decode():
    f = _field()
    z = torch.randn(2, 3, 4, 4, 4)
    shape = (16, 12, 8)
    grid = f.decode_grid(z, shape, chunk=500)  # chunks that do not divide the grid
    assert grid.shape == (2, 4, *shape)
    pts = grid_points(shape)
    q = f.query(z, pts.expand(2, -1, -1))
    torch.testing.assert_close(grid.flatten(2), q, rtol=1e-5, atol=1e-5)
    # any subset (a control domain) gives the same logits as the grid at those points, through a crop of z
    idx = torch.tensor([0, 17, 400, 1535])
    torch.testing.assert_close(f.query(z, pts[idx]), grid.flatten(2)[:, :, idx], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("upsample", [0, 1])
def test_logits_in_a_box_ignore_latent_outside_box_plus_receptive_field(upsample):
    cfg = FieldConfig(**{**CFG.to_dict(), "upsample": upsample})
    f = _field(cfg)
    L, fds = 12, cfg.downsampling
    z = torch.randn(1, 3, L, L, L)
    pts = grid_points((fds * L,) * 3)
    box = (pts[:, 0] > -0.2) & (pts[:, 0] < 0.1) & (pts[:, 1] > 0.5) & (pts[:, 2] < -0.6)  # touches the z = -1 border
    P = pts[box]
    u = latent_coordinates(P, (L,) * 3, fds)
    r = f.receptive_field
    n = torch.arange(L, dtype=torch.float32)
    # cells within the stated receptive field of some point of the box, per axis: |n - u| < r
    keep = [((n[:, None] - u[None, :, d]).abs() < r).any(1) for d in range(3)]
    inside = keep[0][:, None, None] & keep[1][None, :, None] & keep[2][None, None, :]
    assert 0 < inside.sum() < L**3 / 4  # the test means something: most of the latent is replaced
    noisy = torch.where(inside, z, 5.0 * torch.randn_like(z))
    ref = f.query(z, P, crop=False)
    torch.testing.assert_close(f.query(noisy, P, crop=False), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(f.query(noisy, P), ref, rtol=1e-5, atol=1e-5)  # the crop gives the same logits
    # and the neighbourhood is not larger than needed: noise just inside it does change the logits
    near = torch.where(inside, 5.0 * torch.randn_like(z), z)
    assert (f.query(near, P) - ref).abs().max() > 1e-3


def test_crop_is_the_points_box_plus_halo():
    f = _field()
    L = 16
    P = torch.tensor([[0.0, 0.0, 0.0], [0.05, -0.05, 0.02]])
    u = latent_coordinates(P, (L,) * 3, CFG.downsampling)
    lo, hi = f.crop_box(u, (L,) * 3)
    for d in range(3):
        assert lo[d] == int(u[:, d].min().floor()) - f.halo
        assert hi[d] == int(u[:, d].max().floor()) + 2 + f.halo
    lo, hi = f.crop_box(latent_coordinates(torch.tensor([[-1.0, -1.0, 1.0]]), (L,) * 3, 4), (L,) * 3)
    assert lo[:2] == [0, 0] and hi[2] == L  # clamped at the latent's borders


def _conv_macs(f: FieldDecoder, crop_cells: int) -> int:
    c = f.config
    per_cell = 27 * c.latent_channels * c.features + (c.conv_layers - 1) * 27 * c.features**2
    if c.upsample:
        per_cell += c.features * 8 * c.sub_features
    return per_cell * crop_cells


def test_query_cost_grows_with_the_points_not_the_volume():
    """Counted cost (multiply-accumulates of the convolutions, which the crop bounds): the same small domain in
    a 4× larger latent costs the same, while the uncropped field would cost 64× more."""
    f = _field()
    counted: list[int] = []
    hook = lambda m, inp, out: counted.append(int(inp[0].shape[2:].numel()))  # noqa: E731
    handle = f.stem.register_forward_hook(hook)
    for L in (8, 32):
        # the same small domain (5³ voxels around the volume's centre, in voxel units) in both volumes
        X = CFG.downsampling * L
        ijk = (X - 1) / 2 + torch.stack(torch.meshgrid(*[torch.arange(-2.0, 3.0)] * 3, indexing="ij"), -1).reshape(-1, 3)
        f.query(torch.randn(1, 3, L, L, L), 2 * ijk / (X - 1) - 1)
    handle.remove()
    small, large = counted
    assert small == large  # crop cells independent of the volume
    assert _conv_macs(f, 32**3) / _conv_macs(f, large) >= 50


def test_gradients_reach_latent_and_points():
    f = FieldDecoder(CFG)
    z = torch.randn(1, 3, 4, 4, 4, requires_grad=True)
    pts = (torch.rand(1, 50, 3) * 2 - 1).requires_grad_(True)
    f.query(z, pts).square().sum().backward()
    assert z.grad.abs().sum() > 0 and pts.grad.abs().sum() > 0


def test_cell_geometry_and_continuity():
    # latent cell j covers voxels 4j .. 4j + 3: its centre (voxel 4j + 1.5) is at latent coordinate j
    shape, L = (32,) * 3, (8,) * 3
    v = torch.tensor([[1.5, 5.5, 29.5]])
    u = latent_coordinates(2 * v / 31 - 1, L, 4)
    torch.testing.assert_close(u, torch.tensor([[0.0, 1.0, 7.0]]))
    # Fourier features are periodic in the cell: just below and above a border read almost the same values
    border = torch.tensor([[[0.5, 1.5, 2.5]]])
    eps = 1e-4
    assert (cell_fourier_features(border - eps, 3) - cell_fourier_features(border + eps, 3)).abs().max() < 1e-2
    # and the logits are continuous across latent-cell borders (trilinear reads, no patch switching)
    f = _field()
    z = torch.randn(1, 3, 8, 8, 8)
    x = torch.tensor([[(4 * 2 + 3.5) / 31 * 2 - 1, 0.1, -0.3]])  # a cell border along axis 0 (voxel 11.5)
    d = torch.tensor([[1e-4, 0.0, 0.0]])
    assert (f.query(z, x - d) - f.query(z, x + d)).abs().max() < 1e-2
    assert shape == (32, 32, 32)


def test_config_errors():
    with pytest.raises(ValueError, match="upsample"):
        FieldConfig(upsample=2)
    with pytest.raises(ValueError, match="conv_layers"):
        FieldConfig(conv_layers=0)
