"""Uncertainty for the register-model comparison: bootstrap over samples, spread over training seeds,
seed-paired differences.

Two sources of noise are kept apart. *Sampling noise* (which n images were drawn) is measured by
resampling the images of one run with replacement; runs sampled from the same noise seed share the
bootstrap indices, so differences between arms are paired image by image. *Training-seed noise* (which
run you got) is measured over ≥ 3 training seeds per arm: mean ± sd, and a t-interval on the per-seed
paired differences (df = seeds − 1), the interval that decides whether an effect is shown.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from anatomica.metrics.bootstrap import Metric, bootstrap, bootstrap_indices

__all__ = ["Metric", "bootstrap", "bootstrap_indices", "paired_difference", "t_interval", "total_variation"]

def t_interval(values: Sequence[float]) -> dict:
    """Mean, sd and the two-sided 95 % t-interval of the mean over seeds (None for fewer than 2)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"mean": None, "sd": None, "ci95": None, "n": 0}
    if v.size < 2:
        return {"mean": float(v[0]), "sd": None, "ci95": None, "n": 1}
    m, sd = float(v.mean()), float(v.std(ddof=1))
    half = float(sps.t.ppf(0.975, v.size - 1) * sd / np.sqrt(v.size))
    return {"mean": m, "sd": sd, "ci95": [m - half, m + half], "n": int(v.size)}


def paired_difference(a: dict[int, dict], b: dict[int, dict], higher_is_better: bool) -> dict | None:
    """Arm a minus arm b over the training seeds both have, signed so that positive means a is better.

    ``a[seed]`` and ``b[seed]`` are :func:`bootstrap` results sharing their resampling indices. Gives the
    per-seed differences, their t-interval over seeds (training noise), the paired-bootstrap interval of
    the seed-mean difference (sampling noise only) and how many seeds favour a."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    sign = 1.0 if higher_is_better else -1.0
    per = [sign * (a[s]["value"] - b[s]["value"]) for s in seeds]
    reps = np.mean([sign * (a[s]["replicates"] - b[s]["replicates"]) for s in seeds], axis=0)
    lo, hi = np.nanpercentile(reps, [2.5, 97.5])
    t = t_interval(per)
    return {
        "seeds": seeds,
        "per_seed": per,
        "mean": t["mean"],
        "sd": t["sd"],
        "t_ci95": t["ci95"],
        "bootstrap_ci95": [float(lo), float(hi)],
        "seeds_favouring": int(sum(d > 0 for d in per)),
        "shown": bool(t["ci95"] is not None and (t["ci95"][0] > 0 or t["ci95"][1] < 0)),
    }


def total_variation(a: np.ndarray, b: np.ndarray) -> float:
    """½ Σ |p − q| between the empirical distributions of the rows of two integer arrays (N, k)."""
    a, b = np.asarray(a).reshape(len(a), -1), np.asarray(b).reshape(len(b), -1)
    keys_a = [tuple(r) for r in a.tolist()]
    keys_b = [tuple(r) for r in b.tolist()]
    support = set(keys_a) | set(keys_b)
    ca = {k: 0 for k in support}
    cb = dict(ca)
    for k in keys_a:
        ca[k] += 1
    for k in keys_b:
        cb[k] += 1
    return 0.5 * sum(abs(ca[k] / len(keys_a) - cb[k] / len(keys_b)) for k in support)
