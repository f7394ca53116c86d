"""A failed training run never costs the previous run, and never blocks a rerun."""

import pytest

from anatomica.training import runs
from anatomica.training.runs import fresh_run_dir


def test_failed_overwrite_restores_the_old_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"old": true}')
    with pytest.raises(RuntimeError):
        with fresh_run_dir(run, overwrite=True) as folder:
            (folder / "config.json").write_text('{"new": true}')
            raise RuntimeError("diverged")
    assert (run / "config.json").read_text() == '{"old": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_failed_fresh_run_without_checkpoints_leaves_no_folder(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(RuntimeError):
        with fresh_run_dir(run, overwrite=False) as folder:
            (folder / "config.json").write_text("{}")
            raise RuntimeError("crash at step 0")
    assert not run.exists()


def test_failed_fresh_run_with_checkpoints_is_kept_for_resume(tmp_path, monkeypatch):
    run = tmp_path / "run"
    monkeypatch.setattr(runs, "last_checkpoint", lambda folder: folder / "checkpoints" / "last.safetensors")
    with pytest.raises(KeyboardInterrupt):
        with fresh_run_dir(run, overwrite=False) as folder:
            (folder / "config.json").write_text("{}")
            raise KeyboardInterrupt
    assert (run / "config.json").is_file()
    from anatomica.io.output import interrupt_note

    assert "--resume" in interrupt_note()


def test_finished_overwrite_drops_the_old_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "old.txt").write_text("x")
    with fresh_run_dir(run, overwrite=True) as folder:
        (folder / "config.json").write_text("{}")
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
