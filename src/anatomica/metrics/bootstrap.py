"""Percentile bootstrap 95 % intervals for the figures of benchmark tables and model cards (sampling noise: which
n items were drawn). Resampling indices are pure functions of (n, n_boot, seed), so rows measured on the same
samples share them and their intervals are paired."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Metric = Callable[[np.ndarray], float]  # indices into the items -> value
TwoSampleMetric = Callable[[np.ndarray, np.ndarray], float]  # (real indices, generated indices) -> value


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) resampling indices, a pure function of (n, n_boot, seed) so arms share them."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(n), 7919])).integers(0, n, size=(n_boot, n))


def percentile_interval(replicates) -> list[float]:
    """The 2.5th and 97.5th percentiles of finite replicates (NaN when there are none)."""
    reps = np.asarray(replicates, dtype=np.float64)
    lo, hi = np.nanpercentile(reps, [2.5, 97.5]) if np.isfinite(reps).any() else (np.nan, np.nan)
    return [float(lo), float(hi)]


def bootstrap(metric: Metric, n: int, n_boot: int = 500, seed: int = 0) -> dict:
    """Point value on all n items and the percentile 95 % interval of ``metric`` over resamples."""
    value = float(metric(np.arange(n)))
    reps = np.array([metric(idx) for idx in bootstrap_indices(n, n_boot, seed)], dtype=np.float64)
    return {"value": value, "ci95": percentile_interval(reps), "replicates": reps}


def bootstrap_two_sample(metric: TwoSampleMetric, n_real: int, n_gen: int, n_boot: int = 500, seed: int = 0,
                         bounds: tuple[float, float] = (-np.inf, np.inf)) -> dict:
    """Point value and 95 % interval of a metric of two sets (1-NNA, FMD), both resampled with replacement.

    Resampling repeats items, which biases set distances upward (FMD of a resample is larger than of the sets:
    duplicates shrink the fitted covariances), so the percentile interval is shifted by the bootstrap's own bias
    estimate mean(replicates) − value (Efron & Tibshirani 1993, §10); ``bias`` reports the shift. The interval is
    clipped to the metric's range ``bounds`` (1-NNA in [0, 1], FMD ≥ 0), which a shift can leave at small n."""
    value = float(metric(np.arange(n_real), np.arange(n_gen)))
    real, gen = bootstrap_indices(n_real, n_boot, seed), bootstrap_indices(n_gen, n_boot, seed + 1)
    reps = np.array([metric(r, g) for r, g in zip(real, gen)], dtype=np.float64)
    bias = float(np.nanmean(reps) - value) if np.isfinite(reps).any() else 0.0
    lo, hi = percentile_interval(reps)
    return {"value": value, "ci95": [float(np.clip(lo - bias, *bounds)), float(np.clip(hi - bias, *bounds))], "bias": bias}


def share(hits, n_boot: int = 2000, seed: int = 0) -> dict:
    """A share of successes (e.g. Betti accuracy) with its 95 % interval, in [0, 1]."""
    hits = np.asarray(hits, dtype=np.float64)
    out = bootstrap(lambda i: float(hits[i].mean()), len(hits), n_boot, seed)
    return {"rate": out["value"], "ci95": out["ci95"], "n": int(len(hits))}
