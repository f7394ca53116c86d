"""Evaluation of the register-bank LDM against the same LDM without registers.

One downstream segmenter (MONAI BasicUNet) is trained on augmented *real* training pairs; then, for
each model's ``n`` generated images:
- consistency Dice: segmenter mask vs the model's own head mask (register model only: the baseline
  has no mask);
- FMD of the segmenter's masks against real masks (morphological plausibility), and FMD of the
  register model's own masks;
- train-on-synthetic, test-on-real (TSTR) Dice on the held-out real slices of a segmenter trained
  only on generated pairs: with the segmenter's pseudo-labels (both models) and with the register
  model's own masks;
- FID on the segmenter's encoder features (trained here from scratch; no downloaded weights).
A second, independent draw of augmented real pairs gives the floor each metric reaches at this ``n``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from anatomica.errors import AnatomicaError
from anatomica.metrics.fmd import feature_matrix, fmd_from_features
from anatomica.metrics.images import dice_per_class, fid_from_features
from anatomica.registers.data import DataSpec, augment, prepare
from anatomica.registers.sample import sample
from anatomica.registers.segmenter import SegmenterConfig, encoder_features, predict, train_segmenter
from anatomica.registers.train import TrainedModel, parameter_counts

# metric -> True when higher is better
METRICS = {
    "consistency_dice": True,
    "fmd_segmenter_masks": False,
    "fmd_own_masks": False,
    "tstr_dice_pseudo": True,
    "tstr_dice_own": True,
    "fid_segmenter_features": False,
}


@dataclass
class EvalSettings:
    n: int = 256
    steps: int = 20
    seed: int = 0
    seg_steps: int = 400
    seg_batch: int = 16
    n_real: int = 1024  # augmented real pairs the judging segmenter trains on
    batch: int = 64

    def to_dict(self) -> dict:
        return asdict(self)


def _mean_fg_dice(pred, target, labels: dict[str, int]) -> tuple[float, dict[str, float]]:
    d = dice_per_class(pred, target, list(labels.values())).mean(0)
    return float(d.mean()), {name: float(v) for name, v in zip(labels, d)}


def relative_improvement(reg: float | None, base: float | None, higher_is_better: bool) -> float | None:
    """(registers − baseline)/|baseline| for higher-is-better metrics, (baseline − registers)/|baseline|
    otherwise: positive means the register model is better."""
    if reg is None or base is None or base == 0:
        return None
    return (reg - base) / abs(base) if higher_is_better else (base - reg) / abs(base)


def evaluate(reg: TrainedModel, base: TrainedModel, settings: EvalSettings, progress: bool = True) -> dict:
    if not reg.has_registers:
        raise AnatomicaError("the first model must be the register model (its run has no registers)")
    if base.has_registers:
        raise AnatomicaError("the baseline must be the LDM without registers")
    if reg.config.labels != base.config.labels or reg.config.data != base.config.data:
        raise AnatomicaError("the two models were trained on different data (labels or data spec differ)")
    s = settings
    labels, C = reg.config.labels, reg.config.n_classes
    spec = DataSpec(**reg.config.data)
    train, test = prepare(spec)
    seg_cfg = SegmenterConfig(spec.spatial_dims, C)

    def fit(images, masks, desc):
        return train_segmenter(images, masks, seg_cfg, s.seg_steps, s.seg_batch, seed=s.seed, progress=progress, desc=desc)

    def tstr(images, masks, desc) -> tuple[float, dict]:
        return _mean_fg_dice(predict(fit(images, masks, desc), test.images), test.masks, labels)

    real = augment(train, s.n_real, s.seed + 101)
    judge = fit(real.images, real.masks, "segmenter (real)")
    ref = augment(train, s.n, s.seed + 202)
    ref2 = augment(train, s.n, s.seed + 303)
    ref_feats = encoder_features(judge, ref.images).numpy()
    ref_morph = feature_matrix(ref.masks.numpy(), labels)

    rows: dict[str, dict] = {}
    real_test, real_test_per = _mean_fg_dice(predict(judge, test.images), test.masks, labels)
    pred2 = predict(judge, ref2.images)
    rows["real"] = {
        "consistency_dice": _mean_fg_dice(pred2, ref2.masks, labels)[0],
        "fmd_segmenter_masks": fmd_from_features(ref_morph, feature_matrix(pred2.numpy(), labels)),
        "fmd_own_masks": fmd_from_features(ref_morph, feature_matrix(ref2.masks.numpy(), labels)),
        "tstr_dice_pseudo": tstr(ref2.images, pred2, "TSTR (real draw)")[0],
        "tstr_dice_own": real_test,
        "fid_segmenter_features": fid_from_features(ref_feats, encoder_features(judge, ref2.images).numpy()),
    }
    samples = {}
    for name, model in (("registers", reg), ("baseline", base)):
        t0 = time.perf_counter()
        out = sample(model, s.n, s.steps, s.seed, s.batch, progress=progress)
        seconds = time.perf_counter() - t0
        samples[name] = out
        pred = predict(judge, out.images)
        row = {
            "fmd_segmenter_masks": fmd_from_features(ref_morph, feature_matrix(pred.numpy(), labels)),
            "tstr_dice_pseudo": tstr(out.images, pred, f"TSTR ({name}, pseudo)")[0],
            "fid_segmenter_features": fid_from_features(ref_feats, encoder_features(judge, out.images).numpy()),
            "consistency_dice": None,
            "fmd_own_masks": None,
            "tstr_dice_own": None,
        }
        if out.masks is not None:
            row["consistency_dice"], row["consistency_dice_per_class"] = _mean_fg_dice(pred, out.masks, labels)
            row["fmd_own_masks"] = fmd_from_features(ref_morph, feature_matrix(out.masks.numpy(), labels))
            row["tstr_dice_own"] = tstr(out.images, out.masks, f"TSTR ({name}, own masks)")[0]
        row["sampling_seconds"] = seconds
        row["parameters"] = parameter_counts(model.net)
        row["train"] = model.meta.get("train", {})
        rows[name] = row
    improvement = {m: relative_improvement(rows["registers"][m], rows["baseline"][m], hib) for m, hib in METRICS.items()}
    return {
        "settings": s.to_dict(),
        "data": spec.to_dict(),
        "n_train_slices": len(train),
        "n_test_slices": len(test),
        "segmenter_real_test_dice": real_test,
        "segmenter_real_test_dice_per_class": real_test_per,
        "rows": rows,
        "relative_improvement": improvement,
        "_samples": samples,
        "_judge": judge,
    }


def markdown_table(result: dict) -> str:
    """The evaluation table as Markdown (numbers as measured; '—' where a metric does not apply)."""
    def fmt(v, pct=False):
        if v is None:
            return "—"
        return f"{100 * v:+.1f} %" if pct else f"{v:.3f}"

    names = {
        "consistency_dice": "Consistency Dice (segmenter vs own mask) ↑",
        "fmd_segmenter_masks": "FMD of segmenter masks ↓",
        "fmd_own_masks": "FMD of own masks ↓",
        "tstr_dice_pseudo": "TSTR Dice, segmenter pseudo-labels ↑",
        "tstr_dice_own": "TSTR Dice, own masks ↑",
        "fid_segmenter_features": "FID, segmenter-encoder features (no downloaded weights) ↓",
    }
    rows = result["rows"]
    lines = ["| Metric | Real (2nd draw / real-trained) | Registers | Baseline (no registers) | Relative improvement |", "|---|---|---|---|---|"]
    for m, title in names.items():
        lines.append(f"| {title} | {fmt(rows['real'][m])} | {fmt(rows['registers'][m])} | {fmt(rows['baseline'][m])} | {fmt(result['relative_improvement'][m], pct=True)} |")
    for name in ("registers", "baseline"):
        r = rows[name]
        lines.append("")
        lines.append(
            f"{name}: {r['parameters']['total']:,} parameters, training {r['train'].get('steps', '?')} steps in "
            f"{r['train'].get('seconds', float('nan')):.0f} s, sampling {result['settings']['n']} images in {r['sampling_seconds']:.0f} s"
        )
    return "\n".join(lines) + "\n"
