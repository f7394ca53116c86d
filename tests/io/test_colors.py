"""One colour per label name: fixed for the phantoms' anatomy, deterministic for any other name."""

import subprocess
import sys

from anatomica.data.phantoms import SYSTEMS
from anatomica.io.colors import KNOWN, color_hex, color_of, color_table, value_colors


def test_every_phantom_label_has_a_fixed_colour_distinct_within_its_system():
    for system in SYSTEMS.values():
        names = list(system.labels)
        assert all(n in KNOWN for n in names), system.name
        colours = [color_of(n) for n in names]
        assert len(set(colours)) == len(colours), system.name
        assert (255, 255, 255) not in colours  # would vanish on the figures' white background


def test_fallback_is_deterministic_across_processes_and_in_range():
    code = "from anatomica.io.colors import color_of; print(color_of('left_kidney_cyst'))"
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONHASHSEED": s}).stdout for s in ("1", "2")}
    assert runs == {f"{color_of('left_kidney_cyst')}\n"}
    for name in ("a", "left", "right", "x y z"):
        assert all(0 <= c <= 255 for c in color_of(name))
    assert color_of("left") != color_of("right")


def test_tables_follow_names_not_values():
    assert color_hex("aorta") == "#{:02x}{:02x}{:02x}".format(*KNOWN["aorta"])
    assert color_table({"aorta": 6, "heart": 1}) == [(1, "heart", KNOWN["heart"]), (6, "aorta", KNOWN["aorta"])]
    lut = value_colors({"aorta": 2}, 4)
    assert lut[0] == (255, 255, 255) and lut[2] == KNOWN["aorta"] and lut[3] == color_of("label_3")
