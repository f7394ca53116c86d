"""Smoke test of benchmarks/bench_paper.py: one row per table on the packaged heart32 (n = 2, 2 steps) into
tmp_path; the section lands between its markers and every figure cell is a number with an interval or a reason."""

from __future__ import annotations

import re

NUMBER = r"-?\d+(?:\.\d+)?"
FIGURE = re.compile(rf"^{NUMBER}×? \[(?:{NUMBER}, {NUMBER}|interval undefined)\](?: \(paper {NUMBER}×?\))?$")
CPU = re.compile(rf"^{NUMBER}× \({NUMBER} s/sample\)$")  # the ablation's whole-run CPU speed
REASONS = {"not recorded", "not trained", "model not packaged", "not run", "not targeted", "V row not run", "no sampling (data)", "failed"}
ROWS = ("geometric/right-ventricle/unguided", "topological/atrial-separation/unguided", "topological/atrial-separation/unguided-conv",
        "ablation/heart32/l-local-low")


def table_rows(section: str) -> list[list[str]]:
    """Body rows of every markdown table in the section, as cells."""
    out = []
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("|---") and " row |" not in line:
            out.append([c.strip() for c in line.strip().strip("|").split("|")])
    return out


def test_bench_paper_smoke(tmp_path, bench_script):
    bench = bench_script("bench_paper")
    results = tmp_path / "results.md"
    results.write_text("# Results\n\nkept above\n")
    args = ["--work", str(tmp_path / "work"), "--n", "2", "--steps", "2", "--batch-size", "2", "--boot", "20",
            "--rows", ",".join(ROWS), "--results", str(results), "--figures", str(tmp_path / "img")]
    assert bench.main(args) == 0
    text = results.read_text()
    assert text.startswith("# Results\n\nkept above\n")
    assert text.count(bench.BEGIN) == 1 and text.count(bench.END) == 1
    section = text[text.index(bench.BEGIN):text.index(bench.END)]
    for title in ("Geometric control", "Topological control", "Partial decoding"):
        assert title in section
    rows = table_rows(section)
    assert len(rows) >= 3
    for cells in rows:
        for c in cells[2:]:
            assert FIGURE.match(c) or CPU.match(c) or c in REASONS, c
    ran = [cells for cells in rows if FIGURE.match(cells[2])]
    assert len(ran) >= 3, "each selected row has numbers (rows sharing a command with one share its numbers)"
    assert "Goal met?" in section and (tmp_path / "img" / "paper_right-ventricle.png").is_file()

    # Re-running finds every row cached: nothing is sampled again, the section is replaced, not appended.
    assert bench.main(args) == 0
    again = results.read_text()
    assert again.count(bench.BEGIN) == 1 and "0 row(s) sampled now" in again


def test_row_key_follows_the_task_file(tmp_path, bench_script):
    """A task YAML edited since a row ran is a new row, not a stale cache hit; an unchanged one keeps its key."""
    from importlib import resources
    from types import SimpleNamespace

    bench = bench_script("bench_paper")
    yaml = tmp_path / "rv.yaml"
    yaml.write_text((resources.files("anatomica") / "tasks" / "right-ventricle.yaml").read_text())
    args = SimpleNamespace(n=2, steps=2, seed=0, batch_size=2)
    row = bench.Row("geometric/rv/anatomica-l", "geometric", "rv", "L", str(yaml), "heart32", ("--parsing", "l-local"))
    key = bench.row_key(row, args, None)
    assert bench.row_key(row, args, None) == key
    yaml.write_text(yaml.read_text().replace("scale: 1.3", "scale: 1.4"))
    assert bench.row_key(row, args, None) != key


def test_topological_goal_compares_with_the_unguided_row_of_the_same_decoder(bench_script):
    """A V-parsed task's setting writes the conv decoder's labels: its 1-NNA limit is the conv-decoded unguided row's,
    not the field-decoded one's (which is worse on heart32: 0.586 against 0.516)."""
    bench = bench_script("bench_paper")
    rows = bench.build_rows({}, ["heart32", "aorta32", "spine32", "coronary32"])
    by = {r.id: r for r in rows}

    def result(nna: float, b0: bool = True) -> dict:
        return {"one_nna": {"value": nna, "ci95": [nna, nna]}, "per_sample": [{"betti_match": [b0, True, True]}] * 4}

    by["topological/atrial-separation/anatomica-v"].result = result(0.65)
    by["topological/atrial-separation/unguided"].result = result(0.59, b0=False)
    by["topological/atrial-separation/unguided-conv"].result = result(0.52, b0=False)
    goal = bench.topological_goal(rows)
    assert "atrial-separation (Anatomica-V, the task's setting)" in goal
    assert ": no (B0 100.0 %, 1-NNA 0.650 vs unguided (conv)'s 0.520 + 0.10)" in goal  # 0.65 ≤ 0.59 + 0.10 would pass
