"""Output folders: checked before work, built beside the old one, swapped in whole, old kept on failure."""

import os
import stat

import pytest
from helpers import run_cli

from anatomica.errors import AnatomicaError
from anatomica.io.files import json_text, write_json
from anatomica.io.output import check_output_dir, remove_stale, staged_output


def test_staged_output_replaces_the_folder_whole(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("old")
    (out / "stale_report.json").write_text("{}")
    with staged_output(out, overwrite=True) as stage:
        assert stage.parent == tmp_path and stage != out
        (stage / "a.txt").write_text("new")
        assert (out / "a.txt").read_text() == "old"  # nothing touches --out until the end
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"] and (out / "a.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failure_keeps_the_old_folder_and_leaves_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_output(out, overwrite=True) as stage:
            (stage / "half.txt").write_text("x")
            raise RuntimeError("boom")
    assert [p.name for p in out.iterdir()] == ["a.txt"] and (out / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_leftovers_of_a_killed_run_are_removed_next_time(tmp_path):
    out = tmp_path / "out"
    (tmp_path / ".tmp-out-abc").mkdir()
    (tmp_path / ".tmp-out-abc" / "x.nii.gz").write_text("partial")
    (tmp_path / ".tmp-other-abc").mkdir()  # another output's: not ours
    with staged_output(out, overwrite=False) as stage:
        (stage / "f").write_text("1")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-other-abc", "out"]
    remove_stale(tmp_path / "other")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_check_output_dir_refuses_files_and_non_empty_folders(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(AnatomicaError, match="not a folder"):
        check_output_dir(f, True)
    with pytest.raises(AnatomicaError, match="which is a file"):
        check_output_dir(f / "below", True)
    d = tmp_path / "d"
    d.mkdir()
    (d / "x").write_text("x")
    with pytest.raises(AnatomicaError, match="not empty"):
        check_output_dir(d, False)
    assert check_output_dir(d, True) == d


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_parent_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(AnatomicaError, match="not writable"):
            check_output_dir(ro / "out", False)
    finally:
        ro.chmod(0o755)


def test_outputs_get_the_mode_the_umask_gives(tmp_path):
    old = os.umask(0o022)
    try:
        with staged_output(tmp_path / "out", False) as stage:
            write_json({"a": 1}, stage / "x.json")
        assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755
        assert stat.S_IMODE((tmp_path / "out" / "x.json").stat().st_mode) == 0o644
    finally:
        os.umask(old)


def test_json_is_strict():
    text = json_text({"a": float("nan"), "b": [float("inf"), 1.5], "c": -float("inf")})
    assert "NaN" not in text and "Infinity" not in text and '"b": [\n    null,\n    1.5' in text


def test_sample_overwrite_replaces_instead_of_merging(tiny_model, tmp_path, capsys):
    out = tmp_path / "s"
    base = ["sample", "--model", tiny_model["ldm"], "--steps", 2, "--out", out]
    assert run_cli([*base, "--n", 2], capsys)[0] == 0
    code, _, err = run_cli([*base, "--n", 1, "--overwrite"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == ["sample_000.nii.gz"]
    # a guided run's reports do not survive an unguided rerun
    code, _, err = run_cli([*base, "--n", 1, "--task", tiny_model["geometric"], "--reference", tiny_model["references"], "--overwrite"], capsys)
    assert code == 0 and (out / "reports").is_dir(), err
    assert run_cli([*base, "--n", 1, "--overwrite"], capsys)[0] == 0
    assert not (out / "reports").exists()
