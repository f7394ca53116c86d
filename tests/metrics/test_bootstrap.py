"""Bootstrap intervals: contain the point value, shrink with n, are reproducible, pair arms by sharing indices."""

import numpy as np

from anatomica.metrics.bootstrap import bootstrap, bootstrap_indices, bootstrap_two_sample, percentile_interval, share


def test_share_interval_contains_the_rate_and_shrinks_with_n():
    small = share([1, 0] * 8, n_boot=500)
    large = share([1, 0] * 200, n_boot=500)
    assert small["rate"] == large["rate"] == 0.5 and small["n"] == 16
    assert small["ci95"][0] < 0.5 < small["ci95"][1]
    assert large["ci95"][1] - large["ci95"][0] < small["ci95"][1] - small["ci95"][0]
    assert share([1, 1, 1])["ci95"] == [1.0, 1.0]


def test_indices_are_a_pure_function_of_their_arguments():
    assert np.array_equal(bootstrap_indices(10, 5, 3), bootstrap_indices(10, 5, 3))
    assert not np.array_equal(bootstrap_indices(10, 5, 3), bootstrap_indices(10, 5, 4))
    x = np.arange(10.0)
    assert np.array_equal(bootstrap(lambda i: x[i].mean(), 10, 50)["replicates"], bootstrap(lambda i: x[i].mean(), 10, 50)["replicates"])


def test_two_sample_metric_resamples_both_sets():
    a, b = np.zeros(30), np.ones(20)
    out = bootstrap_two_sample(lambda r, g: float(b[g].mean() - a[r].mean()), 30, 20, n_boot=100)
    assert out["value"] == 1.0 and out["ci95"] == [1.0, 1.0]
    noisy = np.random.default_rng(0).normal(size=20)
    out = bootstrap_two_sample(lambda r, g: float(noisy[g].mean()), 30, 20, n_boot=300)
    assert out["ci95"][0] < out["value"] < out["ci95"][1]


def test_interval_of_no_finite_replicates_is_nan():
    assert all(np.isnan(percentile_interval([np.nan, np.inf])))


def test_two_sample_interval_is_shifted_by_the_resampling_bias():
    """A statistic inflated by duplicates (fewer distinct items) gets an interval around its value, not above it."""
    spread = lambda r, g: float(1.0 / len(np.unique(g)))  # noqa: E731  grows when resampling repeats items
    out = bootstrap_two_sample(spread, 10, 40, n_boot=300)
    assert out["bias"] > 0 and out["ci95"][0] <= out["value"] <= out["ci95"][1] + 1e-12


def test_two_sample_interval_stays_in_the_metric_range():
    out = bootstrap_two_sample(lambda r, g: float(len(np.unique(r)) == len(r)), 5, 5, n_boot=200, bounds=(0.0, 1.0))
    assert 0.0 <= out["ci95"][0] <= out["ci95"][1] <= 1.0
