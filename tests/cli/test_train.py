"""`anatomica train diffusion --condition/--task`: bad requests fail with one `error:` line before anything is written."""

import pytest
from helpers import run_cli

NO_GEOMETRY = """name: only-topology
domains:
  - {name: d, labels: [left], placement: {kind: global}, grid: [8, 8, 8], targets: {betti: [1, 0, 0]}}
"""


@pytest.mark.parametrize("extra, message", [
    (["--condition", "explicit"], "give --task"),
    (["--task", "{geometric}"], "give --condition explicit or implicit"),
    (["--condition", "both", "--task", "{geometric}"], "--condition must be one of explicit, implicit"),
    (["--condition", "implicit", "--task", "no-such-task"], "no such task file"),
    (["--condition", "implicit", "--task", "{topo_only}"], "has no geometric targets"),
    (["--condition", "explicit", "--task", "right-ventricle"], "unknown label 'heart_ventricle_right'"),
])
def test_bad_conditional_training_requests(tiny_model, tmp_path, capsys, extra, message):
    (tmp_path / "topo.yaml").write_text(NO_GEOMETRY)
    fmt = {"geometric": tiny_model["geometric"], "topo_only": tmp_path / "topo.yaml"}
    out = tmp_path / "run"
    argv = ["train", "diffusion", "--autoencoder", tiny_model["root"] / "ae", "--out", out, "--steps", 1, "--threads", 1,
            *[a.format(**fmt) for a in extra]]
    code, _, err = run_cli(argv, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith((".tmp-", ".old-"))]
