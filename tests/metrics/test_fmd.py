import numpy as np
import pytest

from anatomica.errors import AnatomicaError
from anatomica.metrics.fmd import feature_matrix, feature_names, fmd, fmd_from_features, morphological_features, standardize
from anatomica.metrics.images import dice_per_class, fid_from_features, frechet_distance


def disk(shape, centre, r):
    yy, xx = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= r**2


def test_features_of_a_band_2d():
    m = np.zeros((40, 30), np.int32)
    m[10:15, 5:25] = 2  # a band 5 pixels thick, 20 long
    f = morphological_features(m, [2], spacing=(1.0, 1.0))
    names = feature_names([2], 2)
    got = dict(zip(names, f))
    assert got["label_2.size"] == 100
    assert got["label_2.centroid_0"] == pytest.approx(12 / 39)
    assert got["label_2.centroid_1"] == pytest.approx(14.5 / 29)
    assert got["label_2.extent_0"] == pytest.approx(5 / 40)
    assert got["label_2.extent_1"] == pytest.approx(20 / 30)
    assert got["label_2.boundary"] == pytest.approx(2 * (20 + 5), rel=0.1)
    assert got["label_2.thickness"] == pytest.approx(5.0)


def test_spacing_scales_physical_features_and_absent_label_is_zero():
    m = np.zeros((20, 20), np.int32)
    m[5:10, 5:10] = 1
    f1 = morphological_features(m, [1, 2])
    f2 = morphological_features(m, [1, 2], spacing=(2.0, 2.0))
    assert f2[0] == pytest.approx(4 * f1[0])  # area
    assert f2[5] == pytest.approx(2 * f1[5], rel=1e-6)  # perimeter
    assert np.all(f1[7:] == 0) and len(f1) == 14


def test_features_of_a_ball_3d():
    r = 6
    g = np.stack(np.meshgrid(*[np.arange(24)] * 3, indexing="ij"))
    ball = ((g - 11.5) ** 2).sum(0) <= r**2
    f = morphological_features(ball.astype(np.int32), {"ball": 1})
    assert len(f) == 3 + 2 * 3
    assert f[0] == pytest.approx(4 / 3 * np.pi * r**3, rel=0.05)
    assert f[7] == pytest.approx(4 * np.pi * r**2, rel=0.1)
    assert 0.7 * 2 * r <= f[8] <= 2 * r + 1  # mean local diameter (the ridge also holds off-centre voxels)


def test_fmd_zero_for_identical_sets_and_grows_with_shift():
    rng = np.random.default_rng(0)

    def make(shift, n=40):
        out = []
        for _ in range(n):
            m = np.zeros((32, 32), np.int32)
            c = rng.normal(16, 1.5, 2)
            m[disk((32, 32), c + shift, rng.uniform(5, 8))] = 1
            m[disk((32, 32), c + shift, rng.uniform(2, 4))] = 2
            out.append(m)
        return out

    real = make(0)
    assert fmd(real, real, [1, 2]) == pytest.approx(0.0, abs=1e-6)
    near, far = fmd(real, make(0.0), [1, 2]), fmd(real, make(4.0), [1, 2])
    assert far > 2 * near > 0


def test_fmd_errors_and_constant_features():
    with pytest.raises(AnatomicaError):
        morphological_features(np.zeros(5), [1])
    with pytest.raises(AnatomicaError):
        fmd_from_features(np.zeros((4, 3)), np.zeros((4, 2)))
    const = np.ones((10, 2))
    gen = np.ones((10, 2)) + np.array([1.0, 0.0])
    assert fmd_from_features(const, gen) == pytest.approx(1.0)  # constant features are centred, not divided by 0
    assert feature_matrix([np.zeros((8, 8), int)] * 3, [1]).shape == (3, 7)


def test_frechet_distance_1d_and_fid():
    # N(0, 1) vs N(1, 4): (0-1)^2 + 1 + 4 - 2*sqrt(4) = 2
    assert frechet_distance(np.zeros(1), np.eye(1), np.ones(1), 4 * np.eye(1)) == pytest.approx(2.0)
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 3))
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-6)
    assert fid_from_features(a, a + 2.0) == pytest.approx(12.0, rel=1e-6)


def test_dice_per_class():
    t = np.zeros((1, 4, 4), int)
    t[0, :2] = 1
    p = np.zeros((1, 4, 4), int)
    p[0, :1] = 1
    d = dice_per_class(p, t, [1, 2])
    assert d[0, 0] == pytest.approx(2 * 4 / (4 + 8))
    assert d[0, 1] == 1.0  # absent in both
    with pytest.raises(AnatomicaError):
        dice_per_class(p, t[:, :2], [1])


def test_standardize_uses_the_real_sets_mean_and_std():
    rng = np.random.default_rng(0)
    real, gen = rng.normal(3.0, 2.0, (50, 4)), rng.normal(5.0, 2.0, (30, 4))
    rz, gz = standardize(real, gen)
    assert np.allclose(rz.mean(0), 0.0) and np.allclose(rz.std(0), 1.0)
    assert np.allclose(gz, (gen - real.mean(0)) / real.std(0))
