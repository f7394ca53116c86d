"""Differentiable geometric moments of a substructure S_k and the geometric loss L_geo.

Paper, "Geometric moments": with Ω the flattened S_k and r the domain points (N, 3),

    m = 1ᵀΩ,   p = rᵀΩ / m,   Σ = rᵀ diag(Ω) r / m − p pᵀ = v · U Λ Uᵀ,   v = tr Σ,   Σⁿ = Σ / v.

Units inside the loss, chosen so the three terms have comparable size (all O(0.01–1)):
- mass as the *fraction* of the domain occupied, m / N ∈ [0, 1];
- centroid p in normalized volume coordinates ([-1, 1] across the field of view);
- Σⁿ dimensionless (trace 1), in normalized coordinates.
:func:`to_world` converts to mL (or mm² / mm for planes / lines), mm and mm² for reports.

L_geo = λ0·MSE(m) + λ1·MSE(p) + λ2·MSE(Σⁿ); λ1 = λ2 = 0 for samples whose mass fraction is below a
threshold (centroid and shape of an almost empty domain are noise). Denominators are clamped, so an
empty domain gives finite values and zero gradients, never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from anatomica.control.domain import ControlDomain
from anatomica.coords import normalized_scale_mm, normalized_to_world
from anatomica.frame import Frame

EPS = 1e-12


@dataclass
class Moments:
    """Batched moments: mass fraction (B,), centroid (B, 3), covariance (B, 3, 3), normalized coordinates."""

    mass: torch.Tensor
    centroid: torch.Tensor
    covariance: torch.Tensor
    total: torch.Tensor  # 1ᵀΩ (B,), the unnormalized mass in domain points

    @property
    def size(self) -> torch.Tensor:
        """v = tr Σ (B,)."""
        return torch.diagonal(self.covariance, dim1=-2, dim2=-1).sum(-1)

    @property
    def normalized_covariance(self) -> torch.Tensor:
        """Σⁿ = Σ / v (B, 3, 3), zero for a degenerate Σ."""
        return self.covariance / self.size.clamp_min(EPS)[:, None, None]


def moments(S: torch.Tensor, points: torch.Tensor) -> Moments:
    """Moments of S_k (B, α, β, γ) whose points have normalized coordinates ``points``: (α·β·γ, 3) shared by the
    batch, or (B, α·β·γ, 3) one domain per sample (a stacked task)."""
    B = S.shape[0]
    w = S.reshape(B, -1)
    r = points.to(w)
    total = w.sum(-1)
    safe = total.clamp_min(EPS)
    if r.ndim == 2:
        p = w @ r / safe[:, None]
        d = r[None] - p[:, None, :]  # centred form: numerically safer than rᵀdiag(Ω)r/m − ppᵀ
    else:
        p = torch.einsum("bn,bni->bi", w, r) / safe[:, None]
        d = r - p[:, None, :]
    cov = torch.einsum("bn,bni,bnj->bij", w, d, d) / safe[:, None, None]
    return Moments(mass=total / w.shape[1], centroid=p, covariance=cov, total=total)


def decompose(covariance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Σ = v·UΛUᵀ -> (size v (B,), shape Λ (B, 3) eigenvalues / trace, descending, orientation U (B, 3, 3)).

    For reports: eigenvector gradients are unstable at repeated eigenvalues, so the loss uses Σⁿ instead.
    """
    v = torch.diagonal(covariance, dim1=-2, dim2=-1).sum(-1)
    evals, evecs = torch.linalg.eigh(covariance)
    shape = evals.flip(-1) / v.clamp_min(EPS)[:, None]
    return v, shape, evecs.flip(-1)


@dataclass
class GeometryTarget:
    """Targets in loss units (see module docstring); ``None`` switches a term off.

    ``keep`` names the moments held at the sample's own value (task ``keep: true``): None until the sample's
    unguided twin measures them (``control.potential.Task.keep_targets``), then one value per sample (leading batch axis)."""

    mass: torch.Tensor | None = None  # () mass fraction
    centroid: torch.Tensor | None = None  # (3,) normalized
    covariance: torch.Tensor | None = None  # (3, 3) Σⁿ, trace 1
    keep: tuple[str, ...] = ()  # subset of ('mass', 'centroid', 'covariance')

    @property
    def pending(self) -> tuple[str, ...]:
        """Kept moments not measured yet (their terms are off until then)."""
        return tuple(k for k in self.keep if getattr(self, k) is None)


def geometry_loss(
    mom: Moments,
    target: GeometryTarget,
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
    mass_threshold: float = 1e-3,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_geo (B,) and its unweighted terms {'mass', 'centroid', 'covariance'} (each (B,), present if targeted)."""
    lam0, lam1, lam2 = weights
    B = mom.mass.shape[0]
    total = mom.mass.new_zeros(B)
    terms: dict[str, torch.Tensor] = {}
    # adaptive mass weighting: centroid and shape only count once there is something to measure
    gate = (mom.mass.detach() >= mass_threshold).to(mom.mass.dtype)
    if target.mass is not None:
        terms["mass"] = (mom.mass - target.mass.to(mom.mass)) ** 2
        total = total + lam0 * terms["mass"]
    if target.centroid is not None:
        terms["centroid"] = ((mom.centroid - target.centroid.to(mom.centroid)) ** 2).mean(-1)
        total = total + lam1 * gate * terms["centroid"]
    if target.covariance is not None:
        sn = mom.normalized_covariance
        terms["covariance"] = ((sn - target.covariance.to(sn)) ** 2).mean((-2, -1))
        total = total + lam2 * gate * terms["covariance"]
    return total, terms


def to_world(mom: Moments, domain: ControlDomain, affine: np.ndarray, shape) -> dict[str, np.ndarray]:
    """Moments in world units: mass in mL (3D domain), mm² (plane) or mm (line); centroid mm; covariance mm²."""
    mass = mom.mass.detach().double().cpu().numpy() * domain.mass_scale(Frame(shape, affine))
    centroid = normalized_to_world(mom.centroid.detach().double().cpu(), affine, shape).numpy()
    M = normalized_scale_mm(affine, shape)
    cov = M @ mom.covariance.detach().double().cpu().numpy() @ M.T
    return {"mass": mass, "centroid_mm": centroid, "covariance_mm2": cov}


def mass_unit(domain: ControlDomain) -> str:
    """mL, mm² or mm by the domain's dimension (``ControlDomain.mass_unit``)."""
    return domain.mass_unit
