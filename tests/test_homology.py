import gudhi
import numpy as np
import pytest
from helpers import ball, solid_torus
from scipy import ndimage
from skimage.measure import euler_number

from anatomica.homology import betti_numbers, persistence_t

SHAPE = (22, 27, 31)  # non-cubic on purpose


def betti_by_euler(mask: np.ndarray) -> list[int]:
    """Independent route: 26-connected foreground components, 6-connected bounded background cavities,
    b1 from the Euler characteristic χ = b0 - b1 + b2 of the closed-cube complex."""
    b0 = ndimage.label(mask, structure=np.ones((3, 3, 3)))[1]
    padded = np.pad(~mask, 1, constant_values=True)
    bg, n_bg = ndimage.label(padded)  # default structure: 6-connectivity
    b2 = n_bg - 1  # minus the outer background touching the padding
    chi = euler_number(mask, connectivity=3)
    return [b0, b0 + b2 - chi, b2]


def shell():
    c = (11, 13, 15)
    return ball(SHAPE, c, 9) & ~ball(SHAPE, c, 5)


def two_balls():
    return ball(SHAPE, (11, 7, 8), 5) | ball(SHAPE, (11, 19, 22), 5)


def handlebody():
    # a slab with two separate holes drilled through it along axis 0
    m = np.zeros(SHAPE, bool)
    m[8:14, 3:24, 3:28] = True
    m[:, 8:12, 8:12] = False
    m[:, 8:12, 19:23] = False
    return m


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: ball(SHAPE, (11, 13, 15), 8), [1, 0, 0]),
        (lambda: solid_torus(SHAPE, (11, 13, 15), 8, 3), [1, 1, 0]),
        (shell, [1, 0, 1]),
        (two_balls, [2, 0, 0]),
        (handlebody, [1, 2, 0]),
        (lambda: np.zeros(SHAPE, bool), [0, 0, 0]),
    ],
    ids=["ball", "solid_torus", "hollow_shell", "two_balls", "handlebody", "empty"],
)
def test_known_shapes(make, expected):
    mask = make()
    assert betti_numbers(mask) == expected
    if mask.any():
        assert betti_by_euler(mask) == expected


def test_diagonal_contact_is_connected_for_foreground():
    # closed cubes: two voxels sharing only a corner are one component (26-connectivity)
    m = np.zeros((4, 5, 6), bool)
    m[1, 1, 1] = m[2, 2, 2] = True
    assert betti_numbers(m)[0] == 1


@pytest.mark.parametrize("seed", range(4))
def test_random_masks_match_euler_route(seed):
    rng = np.random.default_rng(seed)
    mask = ndimage.gaussian_filter(rng.normal(size=(14, 17, 19)), 1.2) > 0.1
    assert betti_numbers(mask) == betti_by_euler(mask)


@pytest.mark.parametrize("shape", [(23,), (9, 13), (6, 7, 9)])
def test_persistence_matches_gudhi(shape):
    values = np.random.default_rng(len(shape)).random(shape)
    ours = persistence_t(values)
    cc = gudhi.CubicalComplex(top_dimensional_cells=values.flatten(order="F"), dimensions=list(shape))
    cc.persistence(homology_coeff_field=2, min_persistence=0)
    for d in range(len(shape)):
        theirs = sorted((b, de) for b, de in cc.persistence_intervals_in_dimension(d) if de > b)
        mine = sorted((b, de) for b, de in ours[ours[:, 0] == d][:, 1:3] if de > b)
        np.testing.assert_allclose(np.array(mine), np.array(theirs))
