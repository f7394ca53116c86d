"""Evaluation of register-bank LDMs against each other and against plain LDMs, with its uncertainty.

Real data play three separate roles, so no number is judged by what the generator was trained on:
- the **judge** (a MONAI BasicUNet, Dice + CE) is trained on augmented pairs of its own data set — for
  phantoms an independent phantom seed — and its encoder gives the FID features;
- the **reference** set (the judge data's held-out cases) is what generated images are compared with:
  FMD / FID / Betti references and the test set of train-on-synthetic segmenters;
- the **floor** set (the generator data's held-out cases, n of them) goes through every measurement in
  place of generated images: the value each metric reaches for real images at this n.
The generator's training slices are used only for the nearest-neighbour memorisation check.

Per set of n images: FMD, FID and the Betti-number distribution (per label and per task group) of the
judge's masks; TSTR Dice of a fresh segmenter trained on (image, judge mask) pairs and, for a model
with a trained head, on (image, own mask) pairs; consistency Dice of judge vs own mask; nearest-
neighbour pixel distances to the training slices. Every metric carries a bootstrap 95 % interval
(:mod:`anatomica.registers.stats`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from anatomica.errors import AnatomicaError
from anatomica.homology import betti_numbers
from anatomica.metrics.fmd import feature_matrix, fmd_from_features
from anatomica.metrics.images import dice_per_class, fid_from_features, nearest_distances
from anatomica.registers.data import DataSpec, PairSet, augment, prepare
from anatomica.registers.segmenter import SegmenterConfig, encoder_features, predict, train_segmenter
from anatomica.registers.stats import bootstrap, paired_difference, t_interval, total_variation

# name -> (title, higher is better); the anatomical metrics first
METRICS: dict[str, tuple[str, bool]] = {
    "fmd_judge": ("FMD of the judge's masks ↓", False),
    "betti_tv": ("Betti-number TV distance of the judge's masks ↓", False),
    "tstr_pseudo": ("TSTR Dice, judge pseudo-labels ↑", True),
    "fid_judge": ("FID, judge-encoder features ↓", False),
    "consistency_dice": ("Consistency Dice, judge vs own mask ↑", True),
    "fmd_own": ("FMD of own masks ↓", False),
    "tstr_own": ("TSTR Dice, own masks ↑", True),
}
MEMORISATION = {
    "nn_ratio": "median NN distance to training slices ÷ real held-out's",
    "nn_close_share": "share closer to a training slice than 95 % of real held-out slices",
}
BETTI_CLIP = (3, 2)  # b0, b1 capped for the distribution (more pieces/holes are lumped together)


@dataclass
class EvalSettings:
    n: int = 128  # generated images per run (and floor images)
    steps: int = 16  # Heun steps
    seed: int = 0  # sampling noise (the same for every run: pairs images across arms), judge and TSTR seeds
    judge_steps: int = 400
    n_judge: int = 1024  # augmented real pairs the judge trains on
    tstr_steps: int = 150
    tstr_features: Sequence[int] = (8, 8, 16, 32, 64, 8)  # a small BasicUNet for the train-on-synthetic segmenters
    seg_batch: int = 16
    batch: int = 64
    n_boot: int = 500

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tstr_features"] = list(self.tstr_features)
        return d


@dataclass
class RealSets:
    """Everything real that every run is measured against, built once."""

    labels: dict[str, int]
    spatial_dims: int
    judge: torch.nn.Module
    reference: PairSet
    floor: PairSet
    train: PairSet
    groups: list[tuple[str, list[int]]]
    judge_independent: bool
    ref_morph: np.ndarray = field(repr=False)
    ref_feats: np.ndarray = field(repr=False)
    ref_betti: np.ndarray = field(repr=False)
    floor_nn: np.ndarray = field(repr=False)
    judge_reference_dice: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return max(self.labels.values(), default=0) + 1


@dataclass
class Measures:
    """Per-item measurements of one set of images, from which every metric (and its bootstrap) follows."""

    morph: np.ndarray  # (N, F) FMD features of the judge's masks
    feats: np.ndarray  # (N, E) judge-encoder features
    betti: np.ndarray  # (N, G, 2) b0, b1 of each group of the judge's masks
    nn: np.ndarray  # (N,) pixel L2 to the nearest training slice
    tstr_pseudo: np.ndarray  # (M,) per-reference-image Dice of a segmenter trained on (image, judge mask)
    consistency: np.ndarray | None = None  # (N,) judge vs own mask
    own_morph: np.ndarray | None = None
    own_betti: np.ndarray | None = None
    tstr_own: np.ndarray | None = None  # (M,) trained on (image, own mask)
    judge_masks: np.ndarray | None = field(default=None, repr=False)

    def save(self, path: str | Path) -> None:
        arrays = {k: v for k, v in asdict(self).items() if v is not None}
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> Measures:
        with np.load(path, allow_pickle=False) as z:
            return cls(**{k: z[k] for k in z.files})


def label_groups(labels: dict[str, int], unions: Sequence[Sequence[str]] = ()) -> list[tuple[str, list[int]]]:
    """Each label alone, then each union of named labels (e.g. a phantom system's topology checks)."""
    groups = [(name, [v]) for name, v in labels.items()]
    for names in unions:
        if all(n in labels for n in names) and len(names) > 1:
            groups.append(("+".join(names), [labels[n] for n in names]))
    return groups


def betti_table(masks: np.ndarray, groups: list[tuple[str, list[int]]]) -> np.ndarray:
    """(N, G, 2): b0 and b1 (foreground 8-connected in 2D, 26- in 3D) of every group of every mask."""
    out = np.zeros((len(masks), len(groups), 2), dtype=np.int64)
    for i, m in enumerate(np.asarray(masks)):
        for j, (_, values) in enumerate(groups):
            out[i, j] = betti_numbers(np.isin(m, values))[:2]
    return out


def betti_distance(gen: np.ndarray, ref: np.ndarray) -> float:
    """Mean over groups of the total-variation distance between the (clipped) (b0, b1) distributions."""
    cap = np.array(BETTI_CLIP)
    g, r = np.minimum(gen, cap), np.minimum(ref, cap)
    return float(np.mean([total_variation(g[:, j], r[:, j]) for j in range(g.shape[1])]))


def _fg_dice(pred, target, labels: dict[str, int]) -> np.ndarray:
    """(N,) mean foreground Dice per image."""
    return dice_per_class(pred, target, list(labels.values())).mean(1)


def prepare_real(
    gen_spec: DataSpec, judge_spec: DataSpec | None, settings: EvalSettings, unions: Sequence[Sequence[str]] = (), progress: bool = True, judge: torch.nn.Module | None = None
) -> RealSets:
    """Train the judge (unless given) and fix the reference, floor and training sets. Without ``judge_spec``
    the judge and reference come from the generator's own data (train / test split), flagged as not independent."""
    s = settings
    train, floor_all = prepare(gen_spec)
    if judge_spec is None:
        judge_train, reference = train, floor_all
    else:
        judge_train, reference = prepare(judge_spec)
    if judge_train.labels != train.labels:
        raise AnatomicaError(f"judge data labels {judge_train.labels} differ from the generator's {train.labels}")
    rng = np.random.default_rng(np.random.SeedSequence([s.seed, 31337]))
    floor = floor_all.subset(np.sort(rng.choice(len(floor_all), size=min(s.n, len(floor_all)), replace=False)))
    labels = dict(train.labels)
    C = max(labels.values(), default=0) + 1
    if judge is None:
        judge_pairs = augment(judge_train, s.n_judge, s.seed + 101)
        judge = train_segmenter(judge_pairs.images, judge_pairs.masks, SegmenterConfig(gen_spec.spatial_dims, C), s.judge_steps, s.seg_batch, seed=s.seed, progress=progress, desc="judge")
    ref_pred = predict(judge, reference.images)
    per_class = dice_per_class(ref_pred, reference.masks, list(labels.values())).mean(0)
    groups = label_groups(labels, unions)
    real = RealSets(
        labels=labels, spatial_dims=gen_spec.spatial_dims, judge=judge, reference=reference, floor=floor, train=train, groups=groups,
        judge_independent=judge_spec is not None,
        ref_morph=feature_matrix(reference.masks.numpy(), labels),
        ref_feats=encoder_features(judge, reference.images).numpy(),
        ref_betti=betti_table(reference.masks.numpy(), groups),
        floor_nn=nearest_distances(floor.images, train.images),
        judge_reference_dice={"mean": float(per_class.mean()), **{n: float(v) for n, v in zip(labels, per_class)}},
    )
    return real


def _tstr(images: torch.Tensor, masks: torch.Tensor, real: RealSets, s: EvalSettings, desc: str, progress: bool) -> np.ndarray:
    cfg = SegmenterConfig(real.spatial_dims, real.n_classes, tuple(s.tstr_features))
    net = train_segmenter(images, masks, cfg, s.tstr_steps, s.seg_batch, seed=s.seed, progress=progress, desc=desc)
    return _fg_dice(predict(net, real.reference.images), real.reference.masks, real.labels)


def measure(images: torch.Tensor, own_masks: torch.Tensor | None, real: RealSets, settings: EvalSettings, desc: str = "", progress: bool = True) -> Measures:
    """Every per-item measurement of n images (and their own masks, if the model's head is trained)."""
    judge_masks = predict(real.judge, images)
    m = Measures(
        morph=feature_matrix(judge_masks.numpy(), real.labels),
        feats=encoder_features(real.judge, images).numpy(),
        betti=betti_table(judge_masks.numpy(), real.groups),
        nn=nearest_distances(images, real.train.images),
        tstr_pseudo=_tstr(images, judge_masks, real, settings, f"TSTR {desc} (judge labels)", progress),
        judge_masks=judge_masks.numpy().astype(np.int8),
    )
    if own_masks is not None:
        m.consistency = _fg_dice(judge_masks, own_masks, real.labels)
        m.own_morph = feature_matrix(own_masks.numpy(), real.labels)
        m.own_betti = betti_table(own_masks.numpy(), real.groups)
        m.tstr_own = _tstr(images, own_masks, real, settings, f"TSTR {desc} (own masks)", progress)
    return m


def measure_floor(real: RealSets, settings: EvalSettings, progress: bool = True) -> Measures:
    """The real-vs-real floor: the floor set's images measured like generated ones, its true labels as
    the 'own masks' (so consistency is the judge's Dice and TSTR-own is train-on-real)."""
    return measure(real.floor.images, real.floor.masks, real, settings, "real floor", progress)


def metrics(m: Measures, real: RealSets, settings: EvalSettings) -> dict[str, dict]:
    """Every metric of one set with its bootstrap interval (same indices for sets of equal size)."""
    s = settings
    n, M = len(m.morph), len(m.tstr_pseudo)
    boot = lambda f, size: bootstrap(f, size, s.n_boot, s.seed)  # noqa: E731
    out = {
        "fmd_judge": boot(lambda i: fmd_from_features(real.ref_morph, m.morph[i]), n),
        "fid_judge": boot(lambda i: fid_from_features(real.ref_feats, m.feats[i]), n),
        "betti_tv": boot(lambda i: betti_distance(m.betti[i], real.ref_betti), n),
        "tstr_pseudo": boot(lambda i: float(m.tstr_pseudo[i].mean()), M),
        "nn_ratio": boot(lambda i: float(np.median(m.nn[i]) / np.median(real.floor_nn)), n),
        "nn_close_share": boot(lambda i: float((m.nn[i] < np.percentile(real.floor_nn, 5)).mean()), n),
    }
    if m.consistency is not None:
        out["consistency_dice"] = boot(lambda i: float(m.consistency[i].mean()), n)
        out["fmd_own"] = boot(lambda i: fmd_from_features(real.ref_morph, m.own_morph[i]), n)
        out["tstr_own"] = boot(lambda i: float(m.tstr_own[i].mean()), M)
    return out


def mean_betti(m: Measures, groups: list[tuple[str, list[int]]]) -> dict[str, list[float]]:
    """Mean (b0, b1) of each group of the judge's masks."""
    return {name: m.betti[:, j].mean(0).tolist() for j, (name, _) in enumerate(groups)}


def compare(runs: dict[str, dict[int, dict[str, dict]]], reference_arm: str) -> dict:
    """Per arm and metric: mean ± sd over training seeds; per other arm: the seed-paired difference of
    ``reference_arm`` minus it (positive = the reference arm is better)."""
    if reference_arm not in runs:
        raise AnatomicaError(f"reference arm {reference_arm!r} is not among the arms {sorted(runs)}")
    summary: dict[str, dict] = {}
    for arm, seeds in runs.items():
        summary[arm] = {}
        for metric in {k for r in seeds.values() for k in r}:
            vals = [r[metric]["value"] for r in seeds.values() if metric in r]
            summary[arm][metric] = t_interval(vals)
    diffs: dict[str, dict] = {}
    for arm, seeds in runs.items():
        if arm == reference_arm:
            continue
        diffs[arm] = {}
        for metric, (_, hib) in METRICS.items():
            a = {s: r[metric] for s, r in runs[reference_arm].items() if metric in r}
            b = {s: r[metric] for s, r in seeds.items() if metric in r}
            d = paired_difference(a, b, hib)
            if d is not None:
                diffs[arm][metric] = d
    return {"summary": summary, "paired": diffs, "reference_arm": reference_arm}


def strip_replicates(obj):
    """A JSON-ready copy of nested results without bootstrap replicate arrays."""
    if isinstance(obj, dict):
        return {k: strip_replicates(v) for k, v in obj.items() if k != "replicates"}
    if isinstance(obj, (list, tuple)):
        return [strip_replicates(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def _fmt(v: float | None, ci: Sequence[float] | None = None, digits: int = 3) -> str:
    if v is None or not np.isfinite(v):
        return "—"
    out = f"{v:.{digits}f}"
    if ci is not None and all(c is not None and np.isfinite(c) for c in ci):
        out += f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
    return out


def markdown_tables(result: dict, arm_titles: dict[str, str] | None = None) -> str:
    """Markdown of a comparison: per arm mean ± sd over seeds (with the real floor), then the seed-paired
    differences of the reference arm against each other arm, then the memorisation check."""
    titles = arm_titles or {}
    cmp = result["comparison"]
    arms = list(cmp["summary"])
    floor = result["floor"]
    head = "| Metric | Real floor [95 % CI] | " + " | ".join(titles.get(a, a) for a in arms) + " |"
    lines = ["Mean ± sd over training seeds (each seed's value is on n images; floor: real held-out images, bootstrap 95 % CI).", "", head, "|---" * (len(arms) + 2) + "|"]
    for metric, (title, _) in METRICS.items():
        f = floor.get(metric)
        cells = [_fmt(f["value"], f["ci95"]) if f else "—"]
        for a in arms:
            t = cmp["summary"][a].get(metric)
            cells.append("—" if not t or t["mean"] is None else f"{t['mean']:.3f} ± {t['sd']:.3f}" if t["sd"] is not None else f"{t['mean']:.3f}")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    ref = cmp["reference_arm"]
    lines += ["", f"Seed-paired differences, {titles.get(ref, ref)} minus each arm, signed so that **positive = {titles.get(ref, ref)} better**: "
              "mean over seeds, t 95 % CI over seeds (training noise), paired-bootstrap 95 % CI (sampling noise only), seeds favouring it.", ""]
    others = list(cmp["paired"])
    lines.append("| Metric | " + " | ".join(f"vs {titles.get(a, a)}" for a in others) + " |")
    lines.append("|---" * (len(others) + 1) + "|")
    for metric, (title, _) in METRICS.items():
        cells = []
        for a in others:
            d = cmp["paired"][a].get(metric)
            if d is None:
                cells.append("—")
                continue
            t = f"[{d['t_ci95'][0]:+.3f}, {d['t_ci95'][1]:+.3f}]" if d["t_ci95"] else "n/a"
            b = f"[{d['bootstrap_ci95'][0]:+.3f}, {d['bootstrap_ci95'][1]:+.3f}]"
            mark = " **shown**" if d["shown"] else ""
            cells.append(f"{d['mean']:+.3f} t{t} b{b} {d['seeds_favouring']}/{len(d['seeds'])}{mark}")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += ["", "Memorisation (nearest training slice, pixel L2), mean ± sd over seeds; real held-out: 1 and 0.05 by construction.", ""]
    lines.append("| Check | " + " | ".join(titles.get(a, a) for a in arms) + " |")
    lines.append("|---" * (len(arms) + 1) + "|")
    for metric, title in MEMORISATION.items():
        cells = []
        for a in arms:
            t = cmp["summary"][a].get(metric)
            cells.append("—" if not t or t["mean"] is None else f"{t['mean']:.3f} ± {t['sd'] or 0:.3f}")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
