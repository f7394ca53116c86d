import numpy as np
import pytest

from anatomica.registers.stats import bootstrap, bootstrap_indices, paired_difference, t_interval, total_variation


def test_bootstrap_interval_covers_the_mean_and_indices_are_shared():
    x = np.random.default_rng(0).normal(1.0, 1.0, 200)
    b = bootstrap(lambda i: float(x[i].mean()), len(x), 400, seed=3)
    assert b["ci95"][0] < b["value"] < b["ci95"][1] and b["ci95"][1] - b["ci95"][0] < 0.5
    assert np.array_equal(bootstrap_indices(50, 10, 1), bootstrap_indices(50, 10, 1))  # arms resample alike


def test_t_interval_and_paired_difference_signs():
    t = t_interval([1.0, 2.0, 3.0])
    assert t["mean"] == 2.0 and t["sd"] == 1.0 and t["ci95"][0] < 0.0 < 4.0 < t["ci95"][1]  # t(2) = 4.30
    assert t_interval([5.0])["ci95"] is None and t_interval([])["mean"] is None
    rep = np.zeros(20)
    a = {s: {"value": v, "replicates": rep + v} for s, v in {0: 1.0, 1: 1.1, 2: 0.9}.items()}
    b = {s: {"value": v, "replicates": rep + v} for s, v in {0: 2.0, 1: 2.2, 2: 1.9}.items()}
    lower = paired_difference(a, b, higher_is_better=False)  # a has the lower (better) values
    assert lower["mean"] == pytest.approx(1.0333, abs=1e-3) and lower["seeds_favouring"] == 3 and lower["shown"]
    higher = paired_difference(a, b, higher_is_better=True)
    assert higher["mean"] < 0 and higher["seeds_favouring"] == 0
    assert paired_difference(a, {7: a[0]}, True) is None  # no shared seed


def test_total_variation():
    a = np.array([[1, 0], [1, 0], [2, 0], [2, 1]])
    assert total_variation(a, a) == 0.0
    assert total_variation(a, np.array([[5, 5]])) == 1.0
    assert total_variation(a[:2], a[2:3]) == 1.0 and total_variation(a, a[:2]) == pytest.approx(0.5)
