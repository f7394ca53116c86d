import numpy as np
import pytest
import torch

from anatomica.errors import AnatomicaError
from anatomica.registers.edit import (
    apply_edit,
    class_areas,
    interpolate_class,
    parse_edit,
    scale_class,
    swap_class,
    zero_class,
)

LABELS = {"csf": 1, "grey_matter": 2, "white_matter": 3}


def bank(seed=0):
    return torch.randn(4, 3, 5, generator=torch.Generator().manual_seed(seed))


def only_row_changed(a, b, c):
    rows = [i for i in range(a.shape[0]) if not torch.equal(a[i], b[i])]
    return rows == [c]


def test_each_edit_changes_only_its_class_and_not_its_input():
    R, R2 = bank(0), bank(1)
    keep = R.clone()
    assert only_row_changed(R, scale_class(R, 2, 1.5), 2)
    torch.testing.assert_close(scale_class(R, 2, 1.5)[2], 1.5 * R[2])
    assert zero_class(R, 1)[1].abs().sum() == 0 and only_row_changed(R, zero_class(R, 1), 1)
    mid = interpolate_class(R, 3, R2[3], 0.25)
    torch.testing.assert_close(mid[3], 0.75 * R[3] + 0.25 * R2[3])
    assert only_row_changed(R, mid, 3)
    a, b = swap_class(R, R2, 0)
    assert torch.equal(a[0], R2[0]) and torch.equal(b[0], R[0])
    assert only_row_changed(R, a, 0) and only_row_changed(R2, b, 0)
    assert torch.equal(R, keep)  # pure: the trained bank is untouched


def test_parse_and_apply():
    R, R2 = bank(0), bank(1)
    e = parse_edit("scale:white_matter:0.5", LABELS)
    assert (e.op, e.cls, e.value) == ("scale", 3, 0.5)
    torch.testing.assert_close(apply_edit(R, e)[3], 0.5 * R[3])
    e = parse_edit("interp:csf:grey_matter:1", LABELS)
    assert torch.equal(apply_edit(R, e)[1], R[2])
    assert torch.equal(apply_edit(R, parse_edit("swap:background", LABELS), R2)[0], R2[0])
    assert torch.equal(apply_edit(R, parse_edit("interp:2:1.0", LABELS), R2)[2], R2[2])
    with pytest.raises(AnatomicaError, match="second trained bank"):
        apply_edit(R, parse_edit("swap:csf", LABELS))
    for bad in ("scale:csf", "grow:csf:2", "scale:liver:2", "scale:csf:big", "zero:9"):
        with pytest.raises(AnatomicaError):
            parse_edit(bad, LABELS)
    with pytest.raises(AnatomicaError):
        scale_class(R, 7, 2.0)


def test_class_areas():
    m = np.zeros((2, 4, 4), int)
    m[0, :2] = 1
    m[1] = 2
    a = class_areas(m, 3)
    np.testing.assert_allclose(a, [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])


def test_parse_drop():
    e = parse_edit("drop:csf", LABELS)
    assert (e.op, e.cls) == ("drop", 1)
    R = bank(0)
    assert torch.equal(apply_edit(R, e), R)  # a drop acts on the context, not on the bank


def test_dose_response_pairs_every_condition_with_the_trained_bank():
    from anatomica.diffusion.edm import EDMPrecond
    from anatomica.nn.unet import UNetConfig
    from anatomica.registers.codec import Codec
    from anatomica.registers.edit import dose_response
    from anatomica.registers.network import RegisterConfig
    from anatomica.registers.train import RegisterLDM, RegisterLDMConfig, build_net

    torch.manual_seed(0)
    u = UNetConfig(spatial_dims=2, in_channels=1, channels=(8, 16), attention_levels=(False, True), num_res_blocks=1, num_head_channels=8, norm_num_groups=8)
    cfg = RegisterLDMConfig(u, RegisterConfig(3, 2, 8), [1, 16, 16], 16, 2, {"a": 1, "b": 2}, sigma_data=0.5)
    net = build_net(cfg).eval()
    with torch.no_grad():
        for p in net.parameters():  # zero-initialised output convs would make every edit a no-op
            p.add_(0.05 * torch.randn_like(p))
    model = RegisterLDM(net, EDMPrecond(net, 0.5), Codec(None), cfg)
    res = dose_response(model, 1, [0.0, 1.0, 3.0], n=3, steps=1, seed=0, n_boot=5, progress=False)
    assert list(res["conditions"]) == ["scale 1", "scale 0", "scale 3", "drop"]
    assert res["conditions"]["scale 1"]["head"]["change"]["value"] == 0.0  # itself, from the same noise
    assert set(res["_previews"]) == set(res["conditions"]) and res["_previews"]["drop"].shape == (3, 1, 16, 16)


def test_edit_factors_must_be_finite():
    import pytest

    from anatomica.errors import AnatomicaError
    from anatomica.registers.edit import parse_edit

    for text in ("scale:a:nan", "scale:a:inf", "interp:a:b:nan"):
        with pytest.raises(AnatomicaError, match="not a finite number"):
            parse_edit(text, {"a": 1, "b": 2})
