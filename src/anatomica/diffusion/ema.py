"""Exponential moving average of a network's weights: the weights a diffusion model is sampled with."""

from __future__ import annotations

import torch


def ema_decay_at(step: int, decay: float) -> float:
    """EMA decay with warm-up, min(decay, (1+t)/(10+t)), so early averages are not dominated by the initial weights."""
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    """θ_ema ← decay·θ_ema + (1 − decay)·θ; buffers (e.g. norm statistics) are copied."""
    for e, p in zip(ema.parameters(), net.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), net.buffers()):
        e.copy_(b)
