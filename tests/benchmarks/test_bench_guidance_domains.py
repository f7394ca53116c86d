"""bench_guidance.py scores every domain of a task (the myocardium wall's four rays), not only the first one."""

import numpy as np


def _rows():
    # two samples, four rays each; the first ray alone would give mass 0.1 and centroid 0.01
    errs = [{f"wall_{k}": {"mass": 0.1 * (k + 1), "centroid": 0.01} for k in range(4)},
            {f"wall_{k}": {"mass": 0.1, "centroid": 0.01 * (k + 1)} for k in range(4)}]
    return {"rows": [{"index": i, "seconds": 1.0, "final_potential": 0.5, "errors": e, "labels": None} for i, e in enumerate(errs)],
            "seconds_per_sample": 1.0}


def test_summarize_means_over_every_domain_of_a_myocardium_wall_like_task(bench_script, monkeypatch):
    bench = bench_script("bench_guidance")
    monkeypatch.setattr(bench, "set_distances", lambda *a, **k: {"one_nna": 0.5, "fmd": 1.0})
    s = bench.summarize("x", _rows(), refs=None, values=[1])
    assert np.isclose(s["mass_l1"], np.mean([0.25, 0.1]))  # sample means 0.25 and 0.1
    assert np.isclose(s["centroid_l1"], np.mean([0.01, 0.025]))
    assert "covariance_l1" not in s and "betti_accuracy" not in s


def test_summarize_counts_betti_of_every_domain_with_a_prior(bench_script, monkeypatch):
    bench = bench_script("bench_guidance")
    monkeypatch.setattr(bench, "set_distances", lambda *a, **k: {"one_nna": 0.5, "fmd": 1.0})
    out = _rows()
    out["rows"][0]["errors"] = {"atria": {"betti": [2, 0, 0]}, "la": {"mass": 0.2}}
    out["rows"][1]["errors"] = {"atria": {"betti": [1, 0, 0]}, "la": {"mass": 0.4}}
    s = bench.summarize("x", out, refs=None, values=[1], prior=(2, 0, 0))
    assert s["betti_accuracy"][0] == 0.5 and s["b0_counts"] == [0, 1, 1, 0, 0]
    assert np.isclose(s["mass_l1"], 0.3)


def test_points_preset_registers_a_local_grid_of_that_many_points(bench_script):
    bench = bench_script("bench_guidance")
    from anatomica.guided.resolution import PRESETS

    assert bench.points_preset("high") == "high"
    name = bench.points_preset("32")
    assert name == "pts32" and PRESETS[name].local == 32 and PRESETS[name].coarse == PRESETS["low"].coarse
    (label, cfg), = [c for c in bench.sweep_configs("10000", "l-local/32", 20) if c[0].startswith("l-local")]
    assert cfg.resolution_name == "pts32" and cfg.scale == 10000
