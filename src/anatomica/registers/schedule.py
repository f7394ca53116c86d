"""The progressive dual-objective weight of the anatomical terms (segmentation head + grounding).

w(step) = start·λ for step < W, then a linear ramp to end·λ over the next W steps, then end·λ.
The published recipe is start = 2, end = 1 ("2λ → λ"); end = 0 is the decay-to-zero ablation and
start = end a constant weight.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from anatomica.errors import AnatomicaError


@dataclass(frozen=True)
class DualObjectiveSchedule:
    lam: float = 1.0
    warm_steps: int = 1000  # W
    start: float = 2.0
    end: float = 1.0

    def __post_init__(self) -> None:
        if self.lam < 0 or self.start < 0 or self.end < 0:
            raise AnatomicaError(f"schedule weights must be >= 0, got lam={self.lam}, start={self.start}, end={self.end}")
        if self.warm_steps < 0:
            raise AnatomicaError(f"warm_steps must be >= 0, got {self.warm_steps}")

    def __call__(self, step: int) -> float:
        W = self.warm_steps
        if step < W:
            factor = self.start
        elif step < 2 * W:
            factor = self.start + (self.end - self.start) * (step - W) / W
        else:
            factor = self.end
        return self.lam * factor

    def to_dict(self) -> dict:
        return asdict(self)
