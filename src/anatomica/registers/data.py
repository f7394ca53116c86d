"""Paired image + label-map data for the register-bank model, in the imagesTr/labelsTr layout.

Sources, all written as a dataset folder (``imagesTr/<case>_0000.nii.gz``, ``labelsTr/<case>.nii.gz``,
``dataset.json``) and read back by one loader:
- ``mni152``: the MNI152 T1 template shipped inside nilearn (no download), with grey matter, white
  matter and CSF labels derived from its tissue probability maps and brain mask;
- ``phantoms``: CT-like images rendered from a folder of anatomica phantom label maps;
- any folder of NIfTI image/label pairs in that layout.

Volumes become training tensors either as 2D slices (``spatial_dims=2``, the default) or whole (3D):
cropped to the foreground, padded square, resized, intensities mapped to [-1, 1].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from anatomica.errors import AnatomicaError
from anatomica.io.dataset import read_label_table, write_dataset_json
from anatomica.io.nifti import LabelMap, as_label_array, is_nifti, load_volume, save_label_map, save_volume

MNI152_LABELS = {"csf": 1, "grey_matter": 2, "white_matter": 3}


@dataclass
class Volume:
    """One case: an image volume in [0, 1], its integer label volume and the voxel-to-world affine."""

    name: str
    image: np.ndarray
    label: np.ndarray
    affine: np.ndarray


@dataclass
class PairSet:
    """Training tensors: images (N, 1, *S) in [-1, 1], masks (N, *S) int64 (0 = background)."""

    images: torch.Tensor
    masks: torch.Tensor
    labels: dict[str, int]
    groups: np.ndarray  # (N,) case index of each item, for splitting
    positions: np.ndarray  # (N,) slice index inside its case (0 for 3D)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_classes(self) -> int:
        """Classes including background (label values must be 1..C-1)."""
        return max(self.labels.values(), default=0) + 1

    def subset(self, index: np.ndarray | torch.Tensor) -> PairSet:
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        return PairSet(self.images[idx], self.masks[idx], dict(self.labels), self.groups[idx.numpy()], self.positions[idx.numpy()])


# --- sources -----------------------------------------------------------------------------------------


def mni152_volume() -> Volume:
    """The MNI152 T1 template of nilearn with CSF / grey / white matter labels (argmax of the tissue maps
    inside the brain mask; CSF probability = 1 − GM − WM). Ships with nilearn: no network needed."""
    try:
        from nilearn import datasets
    except ImportError:
        raise AnatomicaError("the MNI152 source needs nilearn (pip install 'anatomica[images]')") from None
    t1 = datasets.load_mni152_template()
    gm = datasets.load_mni152_gm_template().get_fdata()
    wm = datasets.load_mni152_wm_template().get_fdata()
    brain = datasets.load_mni152_brain_mask().get_fdata() > 0
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0)
    label = np.where(brain, np.argmax(np.stack([csf, gm, wm]), 0) + 1, 0).astype(np.int32)
    image = t1.get_fdata().astype(np.float32)
    return Volume("mni152_000", _unit_range(image, brain), label, np.asarray(t1.affine))


# Attenuation (HU) by label-name keyword for contrast-enhanced CT; first match wins.
CT_HU = (
    ("calcium", 900.0), ("vertebra", 700.0), ("disc", 90.0), ("canal", 20.0), ("myocard", 60.0),
    ("atrium", 220.0), ("ventricle", 240.0), ("aorta", 300.0), ("arter", 280.0), ("trunk", 280.0),
)


def _hu_for(name: str) -> float:
    for key, hu in CT_HU:
        if key in name.lower():
            return hu
    return 120.0


def _tissue(name: str) -> str:
    """The tissue a label is rendered as: its first matching keyword (left and right atrium are both
    "atrium"), so paired structures share one attenuation and only anatomy tells them apart."""
    return next((key for key, _ in CT_HU if key in name.lower()), "soft")


def render_ct(label: np.ndarray, labels: dict[str, int], rng: np.random.Generator, spacing: float = 1.0) -> np.ndarray:
    """A CT-like image in [0, 1] (window −200..600 HU) from a label volume: a per-case jitter of each
    tissue's attenuation (one draw per tissue, shared by the labels of that tissue), smooth tissue
    texture, a blurring point-spread function and quantum noise."""
    hu = np.full(label.shape, 30.0, dtype=np.float32)  # soft-tissue background
    jitter: dict[str, float] = {}
    for name, value in labels.items():
        t = _tissue(name)
        if t not in jitter:
            jitter[t] = float(rng.normal(0.0, 20.0))
        hu[label == value] = _hu_for(name) + jitter[t]
    texture = ndimage.gaussian_filter(rng.normal(0.0, 1.0, label.shape), sigma=max(1.0, 2.0 / spacing))
    hu += 40.0 * texture / (texture.std() + 1e-8)
    hu = ndimage.gaussian_filter(hu, sigma=0.7)
    hu += rng.normal(0.0, 15.0, label.shape)
    return np.clip((hu + 200.0) / 800.0, 0.0, 1.0).astype(np.float32)


def phantom_volumes(folder: str | Path, seed: int) -> tuple[list[Volume], dict[str, int]]:
    """CT-like renders of every label map of a phantom dataset folder (same seed, same images)."""
    from anatomica.io.dataset import list_label_files
    from anatomica.io.nifti import load_label_map

    files = list_label_files(folder)
    out: list[Volume] = []
    labels: dict[str, int] = {}
    rngs = np.random.default_rng(seed).spawn(len(files))
    for path, rng in zip(files, rngs):
        lm = load_label_map(path)
        labels = labels or lm.present_labels()
        name = path.name.split(".nii")[0]
        out.append(Volume(name, render_ct(lm.array, labels, rng, float(np.mean(lm.spacing))), lm.array, lm.affine))
    return out, labels


def _unit_range(image: np.ndarray, foreground: np.ndarray | None = None) -> np.ndarray:
    """Robust min-max to [0, 1]: 0 and the 99.5th percentile of the foreground (or the whole image)."""
    ref = image[foreground] if foreground is not None and foreground.any() else image
    hi = float(np.percentile(ref, 99.5)) if ref.size else 1.0
    lo = float(min(image.min(), 0.0))
    return np.clip((image - lo) / max(hi - lo, 1e-8), 0.0, 1.0).astype(np.float32)


# --- dataset folders ---------------------------------------------------------------------------------


def write_pairs(folder: str | Path, volumes: list[Volume], labels: dict[str, int], name: str, modality: str, overwrite: bool = False) -> Path:
    """Write volumes as ``imagesTr/<case>_0000.nii.gz`` + ``labelsTr/<case>.nii.gz`` and a dataset.json."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise AnatomicaError(f"{folder}: exists and is not empty (pass --overwrite to replace it)")
    for v in volumes:
        save_volume(v.image, v.affine, folder / "imagesTr" / f"{v.name}_0000.nii.gz", overwrite=True)
        save_label_map(LabelMap(v.label.astype(np.int32), v.affine, labels), folder / "labelsTr" / f"{v.name}.nii.gz", overwrite=True)
    cases = [v.name for v in volumes]
    extra = {
        "channel_names": {"0": modality},
        "training": [{"image": f"./imagesTr/{c}_0000.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in cases],
    }
    write_dataset_json(folder, name, labels, cases, extra)
    return folder


def load_pairs(folder: str | Path) -> tuple[list[Volume], dict[str, int]]:
    """Every (image, label) pair of a dataset folder; images are mapped to [0, 1] per case."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AnatomicaError(f"{folder}: no such dataset folder")
    img_dir, lab_dir = folder / "imagesTr", folder / "labelsTr"
    if not img_dir.is_dir() or not lab_dir.is_dir():
        raise AnatomicaError(f"{folder}: expected imagesTr/ and labelsTr/ subfolders of NIfTI pairs")
    labels = read_label_table(folder / "dataset.json") if (folder / "dataset.json").is_file() else {}
    volumes: list[Volume] = []
    for lab_path in sorted(p for p in lab_dir.iterdir() if is_nifti(p) and not p.name.startswith(".")):
        case = lab_path.name.split(".nii")[0]
        candidates = [img_dir / f"{case}_0000{s}" for s in (".nii.gz", ".nii")] + [img_dir / f"{case}{s}" for s in (".nii.gz", ".nii")]
        img_path = next((p for p in candidates if p.is_file()), None)
        if img_path is None:
            raise AnatomicaError(f"{lab_path}: no matching image {case}_0000.nii.gz in {img_dir}")
        img, affine = load_volume(img_path)
        lab, _ = load_volume(lab_path)
        img, lab = np.asarray(img, dtype=np.float32).squeeze(), np.asarray(lab).squeeze()
        if img.ndim == 2:  # a single slice: keep it as a one-slice volume
            img, lab = img[..., None], lab[..., None]
        lab = as_label_array(lab, str(lab_path))
        if img.shape != lab.shape:
            raise AnatomicaError(f"{img_path}: image shape {img.shape} differs from label shape {lab.shape}")
        volumes.append(Volume(case, _unit_range(img, lab > 0), lab, affine))
    if not volumes:
        raise AnatomicaError(f"{lab_dir}: no .nii or .nii.gz label maps found")
    if not labels:
        values = sorted({int(v) for vol in volumes for v in np.unique(vol.label) if v})
        labels = {f"label_{v}": v for v in values}
    return volumes, labels


# --- tensors -----------------------------------------------------------------------------------------


def _square_crop(arrays: list[np.ndarray], foreground: np.ndarray, axes: tuple[int, ...], margin: float = 0.04) -> list[np.ndarray]:
    """Crop every array to the foreground bounding box (+margin) on ``axes``, padded to equal sides."""
    idx = np.argwhere(foreground)
    if idx.size == 0:
        return arrays
    lo, hi = idx.min(0), idx.max(0) + 1
    side = int(np.ceil(max(hi[a] - lo[a] for a in axes) * (1 + 2 * margin)))
    out = []
    for arr in arrays:
        slices, pads = [], []
        for a in range(arr.ndim):
            if a not in axes:
                slices.append(slice(None))
                pads.append((0, 0))
                continue
            c = (lo[a] + hi[a]) / 2.0
            start = int(np.floor(c - side / 2.0))
            s0, s1 = max(start, 0), min(start + side, arr.shape[a])
            slices.append(slice(s0, s1))
            pads.append((s0 - start, start + side - s1))
        out.append(np.pad(arr[tuple(slices)], pads))
    return out


def _resize(image: np.ndarray, label: np.ndarray, size: int, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Area-resize an image (…, *S) and a label map via its one-hot (mode-like, no nearest aliasing)."""
    d = image.ndim - 1
    img = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[:, None]
    lab = torch.from_numpy(np.ascontiguousarray(label, dtype=np.int64))
    target = (size,) * d
    img = F.interpolate(img, size=target, mode="area")
    onehot = F.one_hot(lab, n_classes).movedim(-1, 1).float()
    lab = F.interpolate(onehot, size=target, mode="area").argmax(1)
    return img, lab


def volumes_to_pairs(
    volumes: list[Volume], labels: dict[str, int], size: int, spatial_dims: int = 2, axis: int = 2, min_fraction: float = 0.25
) -> PairSet:
    """Training tensors at ``size`` per side: 2D slices along ``axis`` whose foreground area is at least
    ``min_fraction`` of the case's largest slice, or whole volumes (``spatial_dims=3``)."""
    if spatial_dims not in (2, 3):
        raise AnatomicaError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    if size < 8:
        raise AnatomicaError(f"image size must be >= 8, got {size}")
    n_classes = max(labels.values(), default=0) + 1
    images, masks, groups, positions = [], [], [], []
    for g, vol in enumerate(volumes):
        if int(vol.label.max()) >= n_classes:
            raise AnatomicaError(f"case {vol.name}: label value {int(vol.label.max())} is not in the label table {labels}")
        if spatial_dims == 3:
            img, lab = _square_crop([vol.image, vol.label], vol.label > 0, (0, 1, 2))
            ti, tl = _resize(img[None], lab[None], size, n_classes)
            images.append(ti)
            masks.append(tl)
            groups.append(np.array([g]))
            positions.append(np.array([0]))
            continue
        if vol.image.ndim != 3:
            raise AnatomicaError(f"case {vol.name}: expected a 3D volume to slice, got shape {vol.image.shape}")
        img, lab = (np.moveaxis(a, axis, 0) for a in (vol.image, vol.label))
        area = (lab > 0).reshape(lab.shape[0], -1).sum(1)
        keep = np.nonzero(area >= max(min_fraction * area.max(), 1))[0] if area.max() > 0 else np.arange(lab.shape[0])
        img, lab = _square_crop([img, lab], lab > 0, (1, 2))
        ti, tl = _resize(img[keep], lab[keep], size, n_classes)
        images.append(ti)
        masks.append(tl)
        groups.append(np.full(len(keep), g))
        positions.append(keep)
    return PairSet(torch.cat(images) * 2.0 - 1.0, torch.cat(masks), dict(labels), np.concatenate(groups), np.concatenate(positions))


def split(pairs: PairSet, test_every: int = 5, block: int = 8) -> tuple[PairSet, PairSet]:
    """(train, test) split. With >= ``test_every`` cases, every ``test_every``-th case is test; with
    fewer (e.g. the single MNI152 template), contiguous blocks of ``block`` slices, every
    ``test_every``-th block held out — adjacent blocks still share anatomy, so real-test scores from
    one template are optimistic."""
    n_cases = int(pairs.groups.max()) + 1 if len(pairs) else 0
    if n_cases >= test_every:
        test = pairs.groups % test_every == test_every - 1
    else:
        test = (pairs.positions // block) % test_every == test_every - 1
    if test.all() or not test.any():
        raise AnatomicaError(f"cannot split {len(pairs)} items into train and test (too few slices or cases)")
    return pairs.subset(np.nonzero(~test)[0]), pairs.subset(np.nonzero(test)[0])


def augment(pairs: PairSet, n: int, seed: int, elastic: bool = True, intensity: bool = True) -> PairSet:
    """``n`` randomly augmented pairs drawn from ``pairs`` (MONAI transforms, deterministic per seed):
    elastic + affine deformation on image and mask together, then gamma, bias field, scale and noise
    on the image only."""
    from monai.transforms import (
        Compose,
        Rand2DElasticd,
        Rand3DElasticd,
        RandAdjustContrastd,
        RandBiasFieldd,
        RandGaussianNoised,
        RandScaleIntensityd,
    )

    d = pairs.images.ndim - 2
    transforms = []
    if elastic:
        size = pairs.images.shape[2]
        if d == 2:
            transforms.append(
                Rand2DElasticd(
                    keys=["image", "label"], spacing=(size // 4, size // 4), magnitude_range=(0.0, 1.5), prob=0.9,
                    rotate_range=0.15, scale_range=0.08, translate_range=size * 0.04, mode=("bilinear", "nearest"), padding_mode="zeros",
                )
            )
        else:
            transforms.append(
                Rand3DElasticd(
                    keys=["image", "label"], sigma_range=(4, 6), magnitude_range=(0, 40), prob=0.9,
                    rotate_range=0.1, scale_range=0.08, mode=("bilinear", "nearest"), padding_mode="zeros",
                )
            )
    if intensity:
        transforms += [
            RandAdjustContrastd(keys="image", gamma=(0.75, 1.35), prob=0.7),
            RandBiasFieldd(keys="image", coeff_range=(0.0, 0.15), prob=0.5),
            RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
            RandGaussianNoised(keys="image", std=0.02, prob=0.5),
        ]
    chain = Compose(transforms)
    chain.set_random_state(seed=seed)
    pick = np.random.default_rng(seed).integers(0, len(pairs), size=n)
    images, masks = [], []
    for i in pick:
        item = {"image": (pairs.images[i].numpy() + 1.0) / 2.0, "label": pairs.masks[i].numpy()[None].astype(np.float32)}
        out = chain(item)
        images.append(torch.as_tensor(np.asarray(out["image"]), dtype=torch.float32).clamp(0, 1) * 2.0 - 1.0)
        masks.append(torch.as_tensor(np.asarray(out["label"])[0]).round().long())
    return PairSet(torch.stack(images), torch.stack(masks), dict(pairs.labels), pairs.groups[pick], pairs.positions[pick])


@dataclass
class DataSpec:
    """How a dataset folder becomes train/test tensors; stored with every model so evaluation rebuilds
    the very same split."""

    folder: str
    size: int = 64
    spatial_dims: int = 2
    axis: int = 2
    min_fraction: float = 0.25
    test_every: int = 5
    block: int = 8

    def to_dict(self) -> dict:
        return asdict(self)


def prepare(spec: DataSpec) -> tuple[PairSet, PairSet]:
    """(train, test) pairs of a dataset folder, as described by ``spec``."""
    volumes, labels = load_pairs(spec.folder)
    pairs = volumes_to_pairs(volumes, labels, spec.size, spec.spatial_dims, spec.axis, spec.min_fraction)
    return split(pairs, spec.test_every, spec.block)
