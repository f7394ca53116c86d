"""benchmarks/bench_topology.py: variant keys on a purely topological task (calcium-count) and label-map file names."""

from __future__ import annotations

import pytest

from anatomica.control.spec import load_task


def test_keep_adds_kept_targets_to_a_purely_topological_task(bench_script):
    bench = bench_script("bench_topology")
    spec = bench.variant_spec(load_task("calcium-count"), "keep:mass,geo:1000,window:0.002/0.5")
    (d,) = spec.domains
    assert d.targets.betti is not None and tuple(d.targets.betti) == (2, 0, 0)
    assert d.targets.mass is not None and d.targets.mass.keep
    assert d.targets.centroid is None and d.targets.covariance is None
    task, cfg, geo, tau = bench.parse_variant("keep:mass,geo:1000,window:0.002/0.5", 20, "calcium-count")
    assert task == "calcium-count" and geo == 1000.0 and tau is None
    assert (cfg.sigma_min, cfg.sigma_max) == (0.002, 0.5)


def test_keep_leaves_betti_only_domains_alone_beside_geometric_ones(bench_script):
    bench = bench_script("bench_topology")
    spec = bench.variant_spec(load_task("atrial-separation"), "keep:mass+centroid")
    by_name = {d.name: d.targets for d in spec.domains}
    atria = by_name.pop("atria")  # Betti-only: stays so when other domains carry geometric targets
    assert atria.mass is None and atria.centroid is None and atria.covariance is None
    assert by_name and all(t.mass.keep and t.centroid.keep and t.covariance is None for t in by_name.values())


def test_keep_rejects_unknown_moments(bench_script):
    bench = bench_script("bench_topology")
    with pytest.raises(SystemExit, match="unknown moments"):
        bench.variant_spec(load_task("calcium-count"), "keep:volume")


def test_safe_name(bench_script):
    mod = bench_script("bench_topology")
    assert mod.safe_name("σ≤0.5 keep m λ1e3") == "__0.5_keep_m__1e3"
    assert mod.safe_name("unguided") == "unguided"
