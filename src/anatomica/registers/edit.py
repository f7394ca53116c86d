"""Register manipulation: scale, zero, interpolate or swap the registers of one class, and its effect.

A "drop" edit removes the class's K tokens from the cross-attention context altogether (a zeroed
register still carries the FiLM shift β(t) and keeps drawing attention, so only a drop removes a class).

Edits are pure functions of bank tensors (C, K, D) that return new tensors and touch only row ``c``;
sampling with the edited bank (same seed, same noise) against the original shows what the class's
registers carry. Class index c = label value (0 = background).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from anatomica.errors import AnatomicaError


def _check(R: Tensor, c: int) -> None:
    if R.ndim != 3:
        raise AnatomicaError(f"a register bank has shape (C, K, D), got {tuple(R.shape)}")
    if not 0 <= c < R.shape[0]:
        raise AnatomicaError(f"class index {c} out of range for a bank of {R.shape[0]} classes")


def scale_class(R: Tensor, c: int, factor: float) -> Tensor:
    _check(R, c)
    out = R.detach().clone()
    out[c] = out[c] * factor
    return out


def zero_class(R: Tensor, c: int) -> Tensor:
    return scale_class(R, c, 0.0)


def interpolate_class(R: Tensor, c: int, target: Tensor, alpha: float) -> Tensor:
    """R[c] ← (1 − α)·R[c] + α·target, target (K, D): another class's registers or another bank's."""
    _check(R, c)
    if target.shape != R.shape[1:]:
        raise AnatomicaError(f"interpolation target must have shape {tuple(R.shape[1:])}, got {tuple(target.shape)}")
    out = R.detach().clone()
    out[c] = torch.lerp(out[c], target.to(out.dtype), float(alpha))
    return out


def swap_class(R1: Tensor, R2: Tensor, c: int) -> tuple[Tensor, Tensor]:
    """Exchange class c's registers between two trained banks of the same shape."""
    _check(R1, c)
    if R1.shape != R2.shape:
        raise AnatomicaError(f"banks differ in shape: {tuple(R1.shape)} vs {tuple(R2.shape)}")
    a, b = R1.detach().clone(), R2.detach().clone()
    a[c], b[c] = R2[c].detach(), R1[c].detach()
    return a, b


@dataclass
class EditSpec:
    """One edit, parsed from ``op:class[:arg[:arg]]``."""

    op: str
    cls: int
    value: float = 1.0
    other: int | None = None


def class_index(name: str, labels: dict[str, int]) -> int:
    if name == "background":
        return 0
    if name in labels:
        return int(labels[name])
    if name.isdigit() and (int(name) == 0 or int(name) in labels.values()):
        return int(name)
    raise AnatomicaError(f"unknown class {name!r} (choose from background, {', '.join(labels)})")


def parse_edit(spec: str, labels: dict[str, int]) -> EditSpec:
    """``scale:white_matter:1.5``, ``zero:csf``, ``drop:csf`` (remove the class's tokens from the context), ``interp:grey_matter:white_matter:0.5`` (towards another
    class), ``interp:csf:0.5`` (towards the other bank's csf), ``swap:csf`` (with the other bank)."""
    parts = spec.split(":")
    op = parts[0]

    def num(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise AnatomicaError(f"edit {spec!r}: {text!r} is not a number") from None
        if not math.isfinite(value):
            raise AnatomicaError(f"edit {spec!r}: {text!r} is not a finite number")
        return value

    if op == "scale" and len(parts) == 3:
        return EditSpec(op, class_index(parts[1], labels), num(parts[2]))
    if op == "zero" and len(parts) == 2:
        return EditSpec(op, class_index(parts[1], labels), 0.0)
    if op == "drop" and len(parts) == 2:
        return EditSpec(op, class_index(parts[1], labels))
    if op == "swap" and len(parts) == 2:
        return EditSpec(op, class_index(parts[1], labels))
    if op == "interp" and len(parts) == 4:
        return EditSpec(op, class_index(parts[1], labels), num(parts[3]), class_index(parts[2], labels))
    if op == "interp" and len(parts) == 3:
        return EditSpec(op, class_index(parts[1], labels), num(parts[2]))
    raise AnatomicaError(f"edit {spec!r}: expected scale:CLASS:F, zero:CLASS, drop:CLASS, interp:CLASS:OTHER:ALPHA, interp:CLASS:ALPHA or swap:CLASS")


def apply_edit(R: Tensor, edit: EditSpec, other_bank: Tensor | None = None) -> Tensor:
    """The edited bank; ``other_bank`` is needed for swap and for interp without an OTHER class. A drop
    leaves the bank as it is (it acts on the context: pass ``drop=[edit.cls]`` to sampling)."""
    if edit.op == "drop":
        _check(R, edit.cls)
        return R.detach().clone()
    if edit.op == "scale" or edit.op == "zero":
        return scale_class(R, edit.cls, edit.value)
    if edit.op == "interp" and edit.other is not None:
        _check(R, edit.other)
        return interpolate_class(R, edit.cls, R[edit.other].detach(), edit.value)
    if other_bank is None:
        raise AnatomicaError(f"edit {edit.op}:{edit.cls} needs a second trained bank (--other RUN)")
    if edit.op == "interp":
        return interpolate_class(R, edit.cls, other_bank[edit.cls], edit.value)
    if edit.op == "swap":
        return swap_class(R, other_bank, edit.cls)[0]
    raise AnatomicaError(f"unknown edit operation {edit.op!r}")


def class_areas(masks: Tensor | np.ndarray, n_classes: int) -> np.ndarray:
    """(N, C) share of the image each class covers."""
    m = torch.as_tensor(np.asarray(masks)).long().flatten(1)
    counts = torch.stack([(m == c).sum(1) for c in range(n_classes)], dim=1)
    return (counts.float() / m.shape[1]).numpy()


def measure_edit(model, registers: Tensor | None, n: int, steps: int, seed: int, segmenter=None, batch: int = 64, progress: bool = True, drop: Sequence[int] = ()) -> dict:
    """Sample ``n`` images with the trained and with the edited bank from the same noise and compare each
    class's mean area share (by the model's head and, if given, by a downstream segmenter), plus the
    mean absolute pixel change of the images."""
    from anatomica.registers.sample import sample_images
    from anatomica.registers.segmenter import predict

    C = model.config.n_classes
    before = sample_images(model, n, steps, seed, batch, None, progress=progress)
    after = sample_images(model, n, steps, seed, batch, registers, progress=progress, drop=drop)
    out = {
        "head_area_before": class_areas(before.masks, C).mean(0).tolist(),
        "head_area_after": class_areas(after.masks, C).mean(0).tolist(),
        "image_mean_abs_change": float((after.images - before.images).abs().mean()),
    }
    if segmenter is not None:
        out["segmenter_area_before"] = class_areas(predict(segmenter, before.images), C).mean(0).tolist()
        out["segmenter_area_after"] = class_areas(predict(segmenter, after.images), C).mean(0).tolist()
    out["samples_before"], out["samples_after"] = before, after
    return out


def dose_response(
    model, cls: int, scales: Sequence[float], n: int, steps: int, seed: int, judge=None, batch: int = 64, n_boot: int = 500, progress: bool = True
) -> dict:
    """Class ``cls``'s area share vs the scale of its registers (and with its tokens dropped), all from the
    same noise: per condition the mean area by the model's head and by ``judge``, and the paired change
    against the unedited bank (scale 1) with a bootstrap 95 % interval over the n images."""
    from anatomica.registers.sample import sample_images
    from anatomica.registers.segmenter import predict
    from anatomica.registers.stats import bootstrap

    C = model.config.n_classes
    R = model.net.bank.registers.detach()
    conditions: list[tuple[str, Tensor | None, tuple[int, ...]]] = [("scale 1", None, ())]
    conditions += [(f"scale {s:g}", scale_class(R, cls, s), ()) for s in scales if s != 1.0]
    conditions.append(("drop", None, (cls,)))
    areas: dict[str, dict[str, np.ndarray]] = {}
    previews: dict[str, Tensor] = {}
    for name, bank, drop in conditions:
        out = sample_images(model, n, steps, seed, batch, bank, progress=progress, drop=drop)
        a = {"head": class_areas(out.masks, C)[:, cls]}
        if judge is not None:
            a["judge"] = class_areas(predict(judge, out.images), C)[:, cls]
        areas[name] = a
        previews[name] = out.images[:4]
    result: dict = {"class": int(cls), "n": n, "seed": seed, "conditions": {}}
    for name, a in areas.items():
        row = {}
        for who, v in a.items():
            base = areas["scale 1"][who]
            row[who] = {"mean_area": float(v.mean()), "change": {k: val for k, val in bootstrap(lambda i: float((v[i] - base[i]).mean()), n, n_boot, seed).items() if k != "replicates"}}
        result["conditions"][name] = row
    result["_previews"] = previews
    return result
