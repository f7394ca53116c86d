import numpy as np
import pytest
import torch
from helpers import ball, oblique_affine
from skimage.measure import moments_central

from anatomica.control.domain import ControlDomain, place_global
from anatomica.control.moments import GeometryTarget, decompose, geometry_loss, moments, to_world
from anatomica.control.parsing import slice_domain
from anatomica.coords import grid_points
from anatomica.metrics.label_stats import world_moments

SHAPE = (14, 17, 20)




def soft_volume(seed=0, shape=SHAPE) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, *shape, generator=g, dtype=torch.float64) ** 3


def gaussian_blob(shape, centre, cov) -> torch.Tensor:
    """An anisotropic Gaussian bump in normalized coordinates, (1, 1, X, Y, Z)."""
    r = grid_points(shape, torch.float64) - torch.as_tensor(centre, dtype=torch.float64)
    q = torch.einsum("ni,ij,nj->n", r, torch.linalg.inv(torch.as_tensor(cov, dtype=torch.float64)), r)
    return torch.exp(-0.5 * q).reshape(1, 1, *shape)


def test_moments_match_numpy_weighted_statistics():
    S = soft_volume()
    pts = place_global(SHAPE).points(torch.float64)
    m = moments(S, pts)
    w = S.reshape(-1).numpy()
    r = pts.numpy()
    assert np.isclose(m.mass.item(), w.sum() / w.size)
    assert np.allclose(m.centroid[0].numpy(), np.average(r, axis=0, weights=w))
    assert np.allclose(m.covariance[0].numpy(), np.cov(r.T, aweights=w, bias=True))


def test_moments_match_scikit_image_central_moments():
    S = soft_volume(1)
    step = 2.0 / (np.array(SHAPE) - 1)
    mu = moments_central(S[0].numpy(), order=2, spacing=step)  # second central moments in normalized units
    m = moments(S, place_global(SHAPE).points(torch.float64))
    cov = m.covariance[0].numpy()
    assert np.isclose(cov[0, 0], mu[2, 0, 0] / mu[0, 0, 0])
    assert np.isclose(cov[1, 2], mu[0, 1, 1] / mu[0, 0, 0])
    assert np.isclose(cov[0, 2], mu[1, 0, 1] / mu[0, 0, 0])


def test_world_units_match_label_statistics():
    A = oblique_affine()
    mask = ball(SHAPE, (6, 8, 9), 4.5)
    d = place_global(SHAPE)
    S = torch.from_numpy(mask.astype(np.float64))[None]
    w = to_world(moments(S, d.points(torch.float64)), d, A, SHAPE)
    c, cov = world_moments(mask, A)
    assert np.isclose(w["mass"][0], mask.sum() * abs(np.linalg.det(A[:3, :3])) / 1000.0)
    assert np.allclose(w["centroid_mm"][0], c)
    assert np.allclose(w["covariance_mm2"][0], cov)


def test_decomposition_reassembles_the_covariance():
    m = moments(soft_volume(2), place_global(SHAPE).points(torch.float64))
    v, shape, U = decompose(m.covariance)
    assert torch.allclose(v, torch.diagonal(m.covariance[0]).sum())
    assert torch.isclose(shape.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.all(shape[0, :-1] >= shape[0, 1:])
    assert torch.allclose(v[0] * U[0] @ torch.diag(shape[0]) @ U[0].T, m.covariance[0])
    assert torch.allclose(m.normalized_covariance, m.covariance / v)


def test_translation_moves_the_centroid_only():
    shape = (24, 24, 24)
    cov = np.diag([0.012, 0.006, 0.009])  # narrow enough that the field of view does not cut it
    pts = place_global(shape).points(torch.float64)
    a = moments(gaussian_blob(shape, [0.0, -0.1, 0.1], cov)[:, 0], pts)
    b = moments(gaussian_blob(shape, [0.23, 0.13, -0.17], cov)[:, 0], pts)
    assert torch.allclose(b.centroid - a.centroid, torch.tensor([[0.23, 0.23, -0.27]], dtype=torch.float64), atol=1e-5)
    assert torch.allclose(a.covariance, b.covariance, atol=1e-5)
    assert torch.allclose(a.covariance[0], torch.from_numpy(cov), atol=1e-4)
    assert torch.allclose(a.mass, b.mass, atol=1e-5)


def test_rotation_rotates_the_covariance_and_a_rotated_domain_measures_the_same():
    shape = (28, 28, 28)
    a = 0.6
    R = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]]) @ np.array(
        [[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
    )
    cov = np.diag([0.05, 0.015, 0.008])
    pts = place_global(shape).points(torch.float64)
    base = moments(gaussian_blob(shape, [0, 0, 0], cov)[:, 0], pts)
    turned_vol = gaussian_blob(shape, [0, 0, 0], R @ cov @ R.T)
    turned = moments(turned_vol[:, 0], pts)
    Rt = torch.from_numpy(R)
    assert torch.allclose(turned.covariance[0], Rt @ base.covariance[0] @ Rt.T, atol=2e-4)
    assert torch.allclose(turned.centroid, base.centroid, atol=1e-6)
    # the same blob measured on a domain rotated with it gives the same moments, up to the blur of trilinear
    # interpolation (a fraction of a squared voxel step h²)
    dom = ControlDomain((28, 28, 28), R, [0.95, 0.95, 0.95], [0.0, 0.0, 0.0])
    again = moments(slice_domain(turned_vol, dom), dom.points(torch.float64))
    h2 = (2.0 / 27) ** 2
    assert (again.covariance - turned.covariance).abs().max() < h2 / 4
    assert torch.allclose(again.centroid, turned.centroid, atol=1e-3)
    # and in the domain's own frame the blob is axis-aligned again: Rᵀ Σ R is diagonal
    local = Rt.T @ again.covariance[0] @ Rt
    assert (local - torch.diag(torch.diagonal(local))).abs().max() < h2 / 4


def test_empty_domain_never_gives_nan_and_switches_centroid_and_shape_off():
    S = torch.zeros(2, 5, 6, 7, dtype=torch.float64)
    S[1, 2, 3, 4] = 1.0
    S.requires_grad_(True)
    pts = place_global((5, 6, 7)).points(torch.float64)
    target = GeometryTarget(torch.tensor(0.2), torch.tensor([0.3, 0.0, 0.0]), torch.eye(3) / 3)
    total, terms = geometry_loss(moments(S, pts), target, mass_threshold=1e-3)
    assert torch.isfinite(total).all() and all(torch.isfinite(t).all() for t in terms.values())
    total.sum().backward()
    assert torch.isfinite(S.grad).all()
    assert torch.isclose(total[0], torch.tensor(0.2**2, dtype=torch.float64))  # mass only: the domain is empty
    assert total[1] > terms["mass"][1]  # one voxel (mass 1/210 > threshold): centroid and shape count


def test_terms_can_be_switched_off():
    S = soft_volume(3)
    m = moments(S, place_global(SHAPE).points(torch.float64))
    only_shape = GeometryTarget(covariance=torch.eye(3, dtype=torch.float64) / 3)
    total, terms = geometry_loss(m, only_shape)
    assert set(terms) == {"covariance"} and torch.allclose(total, terms["covariance"])
    full = GeometryTarget(torch.tensor(0.5), torch.zeros(3), torch.eye(3) / 3)
    total, terms = geometry_loss(m, full, weights=(2.0, 0.0, 3.0))
    assert torch.allclose(total, 2 * terms["mass"] + 3 * terms["covariance"])


def test_moments_gradcheck():
    g = torch.Generator().manual_seed(4)
    S = (0.1 + torch.rand(2, 2, 3, 4, generator=g, dtype=torch.float64)).requires_grad_(True)
    pts = ControlDomain((2, 3, 4), np.eye(3), [0.5, 0.6, 0.7], [0.1, 0.0, -0.1]).points(torch.float64)

    def f(s):
        m = moments(s, pts)
        return m.mass, m.centroid, m.normalized_covariance

    assert torch.autograd.gradcheck(f, (S,), eps=1e-6, atol=1e-8)
    target = GeometryTarget(torch.tensor(0.3), torch.tensor([0.1, 0.2, 0.0]), torch.eye(3) / 3)
    assert torch.autograd.gradcheck(lambda s: geometry_loss(moments(s, pts), target)[0], (S,), eps=1e-6, atol=1e-8)


def test_gradient_descent_on_geometry_reaches_mass_and_centroid():
    torch.manual_seed(0)
    shape = (16, 16, 16)
    pts = place_global(shape).points()
    logits = (torch.randn(1, *shape) * 0.5 - 1.0).requires_grad_(True)
    target = GeometryTarget(mass=torch.tensor(0.15), centroid=torch.tensor([0.3, -0.2, 0.1]))
    opt = torch.optim.Adam([logits], lr=0.1)
    for _ in range(150):
        opt.zero_grad()
        loss, _ = geometry_loss(moments(torch.sigmoid(logits), pts), target, weights=(10.0, 10.0, 0.0))
        loss.sum().backward()
        opt.step()
    m = moments(torch.sigmoid(logits), pts)
    assert abs(m.mass.item() - 0.15) < 0.005
    assert torch.allclose(m.centroid[0], target.centroid, atol=0.02)


@pytest.mark.parametrize("size", [(9, 1, 1), (7, 6, 1)])
def test_lines_and_planes_have_degenerate_but_finite_moments(size):
    d = ControlDomain(size, np.eye(3), [0.8, 0.8, 0.8], [0.0, 0.0, 0.0])
    S = torch.rand(1, *size, dtype=torch.float64)
    m = moments(S, d.points(torch.float64))
    assert torch.isfinite(m.normalized_covariance).all()
    assert torch.allclose(m.covariance[0, 2], torch.zeros(3, dtype=torch.float64))
