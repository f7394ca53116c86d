"""Image-set metrics: Fréchet distance of Gaussians fitted to features (FID), and per-class Dice.

FID here is computed on *given* features (Heusel et al. 2017, Eq. of the Fréchet distance between
two Gaussians); which network produced them is the caller's business and must be stated next to the
number. No downloaded Inception weights are used anywhere in anatomica.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import compute_dice

from anatomica.errors import AnatomicaError


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and unbiased covariance (F, F) of an (N, F) feature matrix; needs N >= 2."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2:
        raise AnatomicaError(f"features must be an (N, F) matrix, got shape {f.shape}")
    if f.shape[0] < 2:
        raise AnatomicaError(f"need at least 2 samples to fit a Gaussian, got {f.shape[0]}")
    if not np.all(np.isfinite(f)):
        raise AnatomicaError("features contain NaN or infinite values")
    return f.mean(0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """d² = ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^{1/2})  (the Fréchet distance of two Gaussians)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise AnatomicaError(f"mismatched Gaussian shapes: {mu1.shape}, {s1.shape} vs {mu2.shape}, {s2.shape}")
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * _trace_sqrt_product(s1, s2), 0.0))


def _trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """Tr (Σ1 Σ2)^{1/2} = Σ √λ_i of the symmetric PSD matrix Σ1^{1/2} Σ2 Σ1^{1/2}: stable even when the
    covariances are singular (fewer samples than features), with no complex round-off to discard."""
    w, V = np.linalg.eigh((s1 + s1.T) / 2.0)
    root = (V * np.sqrt(np.clip(w, 0.0, None))) @ V.T
    m = root @ s2 @ root
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2.0), 0.0, None)).sum())


def fid_from_features(real: np.ndarray, generated: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two (N, F) feature sets."""
    r, g = np.asarray(real), np.asarray(generated)
    if r.ndim != 2 or g.ndim != 2 or r.shape[1] != g.shape[1]:
        raise AnatomicaError(f"feature sets must be (N, F) with equal F, got {r.shape} and {g.shape}")
    return frechet_distance(*gaussian_stats(r), *gaussian_stats(g))


def dice_per_class(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, labels: Sequence[int]) -> np.ndarray:
    """Dice of each label value between two batches of integer label maps (N, *spatial) -> (N, len(labels)).

    A label absent from both prediction and target scores 1 (nothing to find, nothing found).
    """
    p = torch.as_tensor(np.asarray(pred)).long()
    t = torch.as_tensor(np.asarray(target)).long()
    if p.shape != t.shape:
        raise AnatomicaError(f"prediction shape {tuple(p.shape)} differs from target shape {tuple(t.shape)}")
    if p.ndim < 2:
        raise AnatomicaError(f"expected a batch of label maps (N, *spatial), got shape {tuple(p.shape)}")
    values = torch.as_tensor(list(labels)).reshape(1, -1, *([1] * (p.ndim - 1)))
    p1 = (p.unsqueeze(1) == values).float()
    t1 = (t.unsqueeze(1) == values).float()
    return compute_dice(p1, t1, include_background=True, ignore_empty=False).numpy()


def nearest_distances(queries: np.ndarray | torch.Tensor, pool: np.ndarray | torch.Tensor, batch: int = 256) -> np.ndarray:
    """(N,) Euclidean distance from each query image to its nearest image of ``pool`` (both (N, ...)):
    the memorisation check (a generated image much closer to a training image than held-out real images
    are is a copy)."""
    q = torch.as_tensor(np.asarray(queries), dtype=torch.float32).flatten(1)
    p = torch.as_tensor(np.asarray(pool), dtype=torch.float32).flatten(1)
    if q.shape[1] != p.shape[1] or len(p) == 0:
        raise AnatomicaError(f"query and pool images must have equal sizes and a non-empty pool, got {tuple(q.shape)} and {tuple(p.shape)}")
    return torch.cat([torch.cdist(q[i : i + batch], p).min(1).values for i in range(0, len(q), batch)]).numpy()
