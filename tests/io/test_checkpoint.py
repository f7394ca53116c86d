"""safetensors + JSON checkpoints: round trips, and every kind of damage fails with one AnatomicaError line."""

import json

import numpy as np
import pytest
import torch

from anatomica.errors import AnatomicaError
from anatomica.io.checkpoint import load_module_state, load_tensors, load_tree, load_weights, save_tensors, save_tree, save_weights
from anatomica.training.checkpoint_io import SafetensorsCheckpointIO


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg
    return msg


def test_tree_round_trip_keeps_types(tmp_path):
    m = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(m.parameters())
    m(torch.randn(4, 3)).sum().backward()
    opt.step()
    tree = {"opt": opt.state_dict(), "rng": torch.get_rng_state(), "np": np.arange(3.0), "t": (1, 2.5, float("inf"), None, True), "s": "x", 7: [1, 2]}
    save_tree(tmp_path / "a.ckpt", tree)
    back = load_tree(tmp_path / "a.ckpt")
    assert back["t"] == (1, 2.5, float("inf"), None, True) and back["s"] == "x" and back[7] == [1, 2]
    assert torch.equal(back["rng"], tree["rng"]) and np.array_equal(back["np"], tree["np"])
    assert set(back["opt"]["state"]) == {0, 1}  # int keys survive JSON
    opt2 = torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
    opt2.load_state_dict(back["opt"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    with pytest.raises(TypeError, match="cannot store a object"):
        save_tree(tmp_path / "b.ckpt", {"x": object()})


def test_lightning_io_is_pickle_free(tmp_path):
    io = SafetensorsCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}, "global_step": 3}, tmp_path / "c.safetensors")
    raw = (tmp_path / "c.safetensors").read_bytes()
    assert b"\x80\x04" not in raw[:2] and raw[8:9] == b"{"  # safetensors header, not a pickle stream
    assert io.load_checkpoint(tmp_path / "c.safetensors")["global_step"] == 3


def test_weights_round_trip_and_validation(tmp_path):
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    save_weights(tmp_path, m, {"model": {"width": 4}}, kind="toy")
    state, cfg = load_weights(tmp_path, kind="toy")
    assert cfg["model"] == {"width": 4}
    m2 = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    load_module_state(m2, state, "toy")
    assert torch.equal(m2[0].weight, m[0].weight)
    with pytest.raises(AnatomicaError) as e:
        load_weights(tmp_path, kind="autoencoder")
    assert "holds a 'toy' model" in one_line(e)
    with pytest.raises(AnatomicaError) as e:
        load_module_state(torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Linear(5, 2)), state, "toy")
    assert "has shape (4, 3)" in one_line(e)
    with pytest.raises(AnatomicaError) as e:
        load_module_state(torch.nn.Sequential(torch.nn.Linear(3, 4)), state, "toy")
    assert "unexpected" in one_line(e)


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage", "missing"])
def test_damaged_files_fail_cleanly(tmp_path, damage):
    p = tmp_path / "w.safetensors"
    save_tensors(p, {"a": torch.arange(1000.0), "b": torch.ones(3, 3)}, {"kind": "x"})
    raw = bytearray(p.read_bytes())
    if damage == "truncate":
        p.write_bytes(raw[: len(raw) - 100])
    elif damage == "flip":
        raw[-50] ^= 0xFF  # inside tensor data: only the checksum notices
        p.write_bytes(raw)
    elif damage == "empty":
        p.write_bytes(b"")
    elif damage == "garbage":
        p.write_bytes(b"\x80\x04this is a pickle, not safetensors" * 10)
    else:
        p.unlink()
    with pytest.raises(AnatomicaError) as e:
        load_tensors(p)
    assert str(p) in one_line(e)


def test_bad_config_json(tmp_path):
    save_weights(tmp_path, {"a": torch.ones(1)}, {}, kind="toy")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(AnatomicaError) as e:
        load_weights(tmp_path)
    assert "not valid JSON" in one_line(e)
    (tmp_path / "config.json").write_text(json.dumps({"kind": "toy", "format_version": 99}))
    with pytest.raises(AnatomicaError) as e:
        load_weights(tmp_path)
    assert "unsupported config" in one_line(e)
    with pytest.raises(AnatomicaError) as e:
        load_weights(tmp_path / "nope")
    assert "no such run folder" in one_line(e)
