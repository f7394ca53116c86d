"""benchmarks/bench_sampling_modes.py on the packaged heart32 (n = 2, 2 steps): every requested row is in the
table, V's speed is 1×, and each row's labels are compared with its own parsing's fp32 full-gradient row."""

from __future__ import annotations

import re


def test_sampling_modes_table(bench_script, capsys):
    bench = bench_script("bench_sampling_modes")
    bench.main(["--n", "2", "--refs", "2", "--batch", "2", "--steps", "2", "--rows", "unguided,floor,v,v-fast,l,l-bf16"])
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line}
    assert set(rows) == {"row", "unguided", "floor", "v", "v-fast", "l", "l-bf16"}
    assert rows["floor"][3:6] == rows["unguided"][3:6]  # a free potential does not steer
    assert rows["v"][2] == "1.00×" and rows["v"][-1].startswith("100.00 % (v)") and rows["l"][-1].startswith("100.00 % (l)")
    assert rows["v-fast"][-1].endswith("(v) |") and rows["l-bf16"][-1].endswith("(l) |")
    for cells in (rows[k] for k in ("unguided", "floor", "v", "v-fast", "l", "l-bf16")):
        assert all(re.fullmatch(r"\d+ \[\d+, \d+\]", c) for c in cells[3:6])


def test_unknown_row_is_refused(bench_script):
    import pytest

    bench = bench_script("bench_sampling_modes")
    with pytest.raises(SystemExit):
        bench.main(["--rows", "v,warp"])
