import numpy as np
import pytest
import torch
from scipy import ndimage

from anatomica.control.domain import ControlDomain, place_global
from anatomica.control.parsing import label_union, parse_point_logits, parse_volume, slice_domain, softmax_t, subset
from anatomica.coords import normalized_to_voxel, sample_points
from anatomica.errors import AnatomicaError

SHAPE = (9, 11, 13)




def random_probs(B=2, C=4, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(B, C, *SHAPE, generator=g, dtype=torch.float64), dim=1)


def oblique_domain() -> ControlDomain:
    a = 0.5
    R = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
    return ControlDomain((5, 4, 3), R, [0.6, 0.5, 0.7], [0.1, -0.05, 0.2])


def test_subset_is_the_probability_of_the_union():
    p = random_probs()
    u = subset(p, [1, 3])
    assert u.shape == (2, 1, *SHAPE)
    assert torch.allclose(u[:, 0], p[:, 1] + p[:, 3])
    assert torch.allclose(subset(p, range(4)), torch.ones_like(u))
    with pytest.raises(AnatomicaError, match="out of range"):
        subset(p, [4])


def test_label_union_equals_subset_of_one_hot():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 5, SHAPE)
    one_hot = torch.nn.functional.one_hot(torch.from_numpy(arr), 5).permute(3, 0, 1, 2)[None].double()
    assert torch.equal(label_union(arr, [2, 4], torch.float64), subset(one_hot, [2, 4]))


def test_global_slice_reproduces_the_volume():
    p = random_probs()
    u = subset(p, [2])
    d = place_global(SHAPE)
    S = slice_domain(u, d)
    assert S.shape == (2, *SHAPE)
    assert torch.allclose(S, u[:, 0], atol=1e-12)
    # the shortcut for a domain on the voxel centres agrees with actually sampling there
    sampled = sample_points(u, d.points(torch.float64)[None].expand(2, -1, -1))
    assert torch.allclose(S.reshape(2, -1), sampled[:, 0], atol=1e-12)


def test_oblique_slice_matches_scipy_trilinear_interpolation():
    u = subset(random_probs(B=1), [1, 2])
    d = oblique_domain()
    S = slice_domain(u, d)
    ijk = normalized_to_voxel(d.points(torch.float64), SHAPE).numpy()
    expected = ndimage.map_coordinates(u[0, 0].numpy(), ijk.T, order=1, mode="constant", cval=0.0)
    assert torch.allclose(S.reshape(-1), torch.from_numpy(expected), atol=1e-10)


def test_points_outside_the_volume_read_zero():
    u = torch.ones(1, 1, *SHAPE, dtype=torch.float64)
    d = ControlDomain((3, 3, 3), np.eye(3), [0.2, 0.2, 0.2], [1.5, 0.0, 0.0])
    assert torch.all(slice_domain(u, d) == 0)


def test_v_and_l_parsing_agree_where_they_should():
    g = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(2, 4, *SHAPE, generator=g, dtype=torch.float64)
    d = place_global(SHAPE)
    # L-parsing at a global grid equals V-parsing: the "decoder" returns the logits at the voxel centres
    at_points = logits.reshape(2, 4, -1)
    for tau in (1.0, 2.5):
        v = parse_volume(logits, [1, 3], d, tau)
        l_ = parse_point_logits(at_points, [1, 3], d, tau)
        assert torch.allclose(v, l_, atol=1e-12)
        manual = torch.softmax(logits / tau, 1)[:, [1, 3]].sum(1)
        assert torch.allclose(v, manual, atol=1e-12)
    # a higher temperature softens: the union probability moves towards (number of classes in u) / C
    hard, soft = parse_volume(logits, [1], d, 1.0), parse_volume(logits, [1], d, 10.0)
    assert (soft - 0.25).abs().mean() < (hard - 0.25).abs().mean()
    with pytest.raises(AnatomicaError, match="expected logits"):
        parse_point_logits(at_points[:, :, :-1], [1], d)
    with pytest.raises(AnatomicaError, match="temperature"):
        softmax_t(logits, 0.0)


def test_slicing_gradcheck():
    g = torch.Generator().manual_seed(2)
    u = torch.rand(1, 1, 4, 5, 6, generator=g, dtype=torch.float64).requires_grad_(True)
    d = oblique_domain()
    assert torch.autograd.gradcheck(lambda v: slice_domain(v, d), (u,), eps=1e-6, atol=1e-8)
    logits = torch.randn(1, 3, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    small = ControlDomain((3, 2, 2), d.rotation, [0.5, 0.5, 0.5], [0.0, 0.1, 0.0])
    assert torch.autograd.gradcheck(lambda x: parse_volume(x, [0, 2], small, 2.0), (logits,), eps=1e-6, atol=1e-8)
