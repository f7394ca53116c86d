import json

import pytest
import torch

from anatomica.errors import AnatomicaError
from anatomica.nn.unet import UNetConfig
from anatomica.registers.codec import CodecConfig, load_codec, save_codec, train_codec
from anatomica.registers.edit import zero_class
from anatomica.registers.network import RegisterConfig
from anatomica.registers.sample import sample_images
from anatomica.registers.train import RegisterLDMConfig, load_register_ldm, save_register_ldm, train_register_ldm

LABELS = {"a": 1, "b": 2}


def toy_data(n=12, size=32):
    g = torch.Generator().manual_seed(0)
    masks = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        c = torch.randint(10, 22, (2,), generator=g)
        masks[i, c[0] - 6 : c[0] + 6, c[1] - 6 : c[1] + 6] = 1
        masks[i, c[0] - 2 : c[0] + 2, c[1] - 2 : c[1] + 2] = 2
    images = (masks.float() - 1.0)[:, None] * 0.8
    return images, masks


def config(registers=True, size=32):
    u = UNetConfig(spatial_dims=2, in_channels=1, channels=(8, 16), attention_levels=(False, True), num_res_blocks=1, num_head_channels=8, norm_num_groups=8)
    r = RegisterConfig(n_classes=3, per_class=2, dim=8) if registers else None
    return RegisterLDMConfig(u, r, [1, size, size], size, 2, LABELS, sigma_data=0.5, anat_sigma_max=1e9)


def test_training_is_seeded_and_logs_the_schedule(tmp_path):
    images, masks = toy_data()
    net1, log, _ = train_register_ldm(images, masks, config(), steps=3, batch=4, seed=1, progress=False)
    net2, _, _ = train_register_ldm(images, masks, config(), steps=3, batch=4, seed=1, progress=False)
    for (k, a), b in zip(net1.state_dict().items(), net2.state_dict().values()):
        assert torch.equal(a, b), k
    assert [row["weight"] for row in log] == [2.0, 2.0, 2.0]  # within the first W steps: 2λ
    assert all(torch.isfinite(torch.tensor([row["edm"], row["seg"], row["ground"]])).all() for row in log)
    base, blog, _ = train_register_ldm(images, masks, config(False), steps=2, batch=4, seed=1, progress=False)
    assert "seg" not in blog[0] and not hasattr(base, "bank")
    with pytest.raises(AnatomicaError):
        train_register_ldm(images[:, :, :16, :16], masks, config(), steps=1, progress=False)


def test_save_load_sample_and_edit(tmp_path):
    images, masks = toy_data()
    cfg = config()
    net, log, secs = train_register_ldm(images, masks, cfg, steps=2, batch=4, seed=0, progress=False)
    save_register_ldm(tmp_path / "run", net, cfg, {"train": {"steps": 2, "seconds": secs}}, log)
    assert (tmp_path / "run" / "log.csv").read_text().startswith("step,")
    m = load_register_ldm(tmp_path / "run")
    a = sample_images(m, 3, steps=2, seed=5, batch=2, progress=False)
    b = sample_images(m, 3, steps=2, seed=5, batch=3, progress=False)
    assert a.images.shape == (3, 1, 32, 32) and a.masks.shape == (3, 32, 32)
    torch.testing.assert_close(a.images, b.images)  # same seed, any batch size: same images
    assert torch.equal(a.masks, b.masks) and int(a.masks.max()) < 3
    R = m.net.bank.registers.detach()
    same = sample_images(m, 2, steps=2, seed=5, registers=R.clone(), progress=False)
    torch.testing.assert_close(same.images, a.images[:2])
    edited = sample_images(m, 2, steps=2, seed=5, registers=zero_class(R, 2), progress=False)
    assert not torch.allclose(edited.images, a.images[:2])
    # damage is one clean line
    (tmp_path / "run" / "model.safetensors").write_bytes(b"\x00" * 40)
    with pytest.raises(AnatomicaError):
        load_register_ldm(tmp_path / "run")
    cfg_path = tmp_path / "run" / "config.json"
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), "kind": "segmenter"}))
    with pytest.raises(AnatomicaError):
        load_register_ldm(tmp_path / "run")


def test_autoencoder_codec_roundtrip(tmp_path):
    images, _ = toy_data(8, 16)
    cfg = CodecConfig(2, (8, 8), 2, 1, 4)
    codec, log = train_codec(images, cfg, steps=2, batch=4, progress=False)
    z = codec.encode(images)
    assert z.shape == (8, 2, 8, 8) and z.std() == pytest.approx(1.0, rel=1e-3)  # scaled to unit variance
    save_codec(tmp_path / "ae", codec, cfg)
    codec2, _ = load_codec(tmp_path / "ae")
    torch.testing.assert_close(codec2.decode(z), codec.decode(z))
    assert codec.decode(z).abs().max() <= 1


def test_widened_unet_matches_the_register_model_size_and_lambda0_has_no_trained_head():
    from anatomica.nn.unet import DenoiserUNet
    from anatomica.registers.network import RegisterUNet, count_parameters
    from anatomica.registers.train import RegisterLDM, widened_unet

    cfg = config()
    target = count_parameters(RegisterUNet(cfg.unet, cfg.registers))
    plain = count_parameters(DenoiserUNet(cfg.unet))
    wide = widened_unet(cfg.unet, target)
    n = count_parameters(DenoiserUNet(wide))
    assert abs(n - target) < abs(plain - target) and not wide.with_conditioning
    assert all(c % 8 == 0 for c in wide.channels)
    m = RegisterLDM(None, None, None, cfg, {"schedule": {"lam": 0.0, "start": 2.0, "end": 1.0}})
    assert m.has_registers and not m.has_trained_head
    assert RegisterLDM(None, None, None, cfg, {"schedule": {"lam": 1.0, "start": 2.0, "end": 1.0}}).has_trained_head
