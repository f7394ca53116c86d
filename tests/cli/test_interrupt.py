"""Ctrl-C: one line saying what was kept, exit 130, no partial or hidden files left behind."""

import os
import signal
import subprocess
import sys
import time


def _interrupt(args, tmp_path, wait_for: str = "%|"):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "anatomica", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=tmp_path)
    err = b""
    deadline = time.time() + 120
    os.set_blocking(proc.stderr.fileno(), False)
    while time.time() < deadline and wait_for.encode() not in err:
        chunk = proc.stderr.read() or b""
        err += chunk
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, rest = proc.communicate(timeout=60)
    return proc.returncode, (err + rest).decode()


def test_ctrl_c_during_sampling_keeps_the_old_output(tiny_model, tmp_path):
    out = tmp_path / "samples"
    out.mkdir()
    (out / "old.txt").write_text("earlier\n")
    code, err = _interrupt(["sample", "--model", tiny_model["ldm"], "--n", 64, "--steps", 200, "--batch-size", 1,
                            "--out", out, "--overwrite", "--threads", 1], tmp_path)
    assert code == 130, err[-1000:]
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last.startswith("interrupted; ") and str(out) in last and "as it was" in last, last
    assert "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith((".tmp-", ".old-"))]


def test_ctrl_c_during_a_new_run_writes_nothing(tiny_model, tmp_path):
    out = tmp_path / "fresh"
    code, err = _interrupt(["sample", "--model", tiny_model["ldm"], "--n", 64, "--steps", 200, "--batch-size", 1,
                            "--out", out, "--threads", 1], tmp_path)
    assert code == 130 and f"nothing written to {out}" in err, err[-1000:]
    assert not out.exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith((".tmp-", ".old-"))]
