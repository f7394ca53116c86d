"""Inference never loads Lightning: importing the guided pipeline and sampling from the packaged model."""

import subprocess
import sys

SCRIPT = """
import sys, tempfile
from pathlib import Path
import anatomica.guided.run as run
assert "lightning" not in sys.modules, "import anatomica.guided loaded lightning"
out = Path(tempfile.mkdtemp()) / "s"
cfg = run.GuidanceConfig(steps=2)
run.run_sampling(run.SamplingRun(model="heart32", out=out, config=cfg, n=1, progress=False))
assert (out / "labelsTr" / "sample_000.nii.gz").is_file()
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("lightning", "pytorch_lightning"))
assert not bad, bad
print("ok")
"""


def test_sampling_from_the_packaged_model_leaves_lightning_out():
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().endswith("ok")
