"""One colour per label *name*, the same in every output: mosaics (PNG), report.html, 3D Slicer (.seg.nrrd,
.ctbl), ITK-SNAP label files and coloured meshes.

The colour follows the name, not the label value, so "aorta" looks the same in the heart and the aorta
phantoms and in a dataset whose label values were renumbered. Names of our phantoms have fixed colours
(arterial/left heart reds, venous/right heart blues, bone beige, as anatomy atlases and Slicer's
GenericAnatomyColors do); any other name gets a deterministic colour from a hash of the name, so a new
dataset's colours do not change from run to run or machine to machine.
"""

from __future__ import annotations

import colorsys
import hashlib

RGB = tuple[int, int, int]

BACKGROUND_PNG: RGB = (255, 255, 255)  # figures: white paper
BACKGROUND_VIEWER: RGB = (0, 0, 0)  # viewers: label 0 is transparent / black

# The anatomical names of src/anatomica/data/phantoms/*.py (TotalSegmentator names), chosen to be told apart
# on a mid-slice where they touch (the four chambers, the aortic arch branches, neighbouring vertebrae).
KNOWN: dict[str, RGB] = {
    # heart
    "heart_myocardium": (178, 116, 84),
    "heart_atrium_left": (244, 160, 106),
    "heart_ventricle_left": (214, 48, 49),
    "heart_atrium_right": (126, 186, 240),
    "heart_ventricle_right": (48, 92, 200),
    "aorta": (160, 20, 90),
    "pulmonary_artery": (0, 150, 170),
    # aorta
    "brachiocephalic_trunk": (240, 130, 30),
    "common_carotid_artery_left": (220, 190, 20),
    "subclavian_artery_left": (100, 180, 60),
    # spine
    "vertebrae_L1": (232, 204, 128),
    "vertebrae_L2": (196, 150, 90),
    "vertebrae_L3": (150, 196, 130),
    "vertebrae_L4": (120, 150, 210),
    "vertebrae_L5": (206, 124, 168),
    "intervertebral_disc": (70, 190, 200),
    # coronary
    "heart": (206, 150, 130),
    "coronary_artery_left": (220, 30, 40),
    "coronary_artery_right": (240, 140, 20),
    "coronary_calcium": (120, 60, 200),  # not white: calcium must show on a white figure background
}


def color_of(name: str) -> RGB:
    """The colour (0-255 RGB) of a label name: the fixed table, else a hash of the name."""
    if name in KNOWN:
        return KNOWN[name]
    # A hash, not Python's hash(): the same on every run (PYTHONHASHSEED) and machine. Hue from the hash,
    # saturation and value in a band that is readable on white and on black.
    h = hashlib.sha256(name.encode("utf-8")).digest()
    hue = int.from_bytes(h[:4], "big") / 2**32
    sat = 0.55 + 0.35 * h[4] / 255
    val = 0.70 + 0.25 * h[5] / 255
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return (round(255 * r), round(255 * g), round(255 * b))


def color_float(name: str) -> tuple[float, float, float]:
    """The colour as 0-1 floats (matplotlib, Slicer segment colours)."""
    return tuple(c / 255 for c in color_of(name))  # type: ignore[return-value]


def color_hex(name: str) -> str:
    """The colour as ``#rrggbb`` (HTML)."""
    return "#{:02x}{:02x}{:02x}".format(*color_of(name))


def color_table(labels: dict[str, int]) -> list[tuple[int, str, RGB]]:
    """(value, name, colour) for a label table {name: value}, by value; background excluded."""
    return [(v, n, color_of(n)) for n, v in sorted(labels.items(), key=lambda kv: kv[1]) if v != 0]


def value_colors(labels: dict[str, int], num_values: int, background: RGB = BACKGROUND_PNG) -> list[RGB]:
    """One colour per label value 0 … num_values − 1 (a lookup table): the colour of the value's name,
    ``label_<v>``'s colour for values without a name."""
    by_value = {v: n for n, v in labels.items()}
    return [background if v == 0 else color_of(by_value.get(v, f"label_{v}")) for v in range(num_values)]
