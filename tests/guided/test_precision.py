"""bf16 autocast: the networks run in bfloat16, the sampler's state stays fp32, labels mostly agree with fp32."""

import numpy as np
import pytest

from anatomica.errors import AnatomicaError
from anatomica.guided.run import GuidanceConfig, unguided_batch
from anatomica.model import load_model


def test_bf16_unguided_samples_agree_with_fp32(tiny_model):
    bundle = load_model(tiny_model["ldm"])
    fp32 = unguided_batch(bundle, [0, 1], 0, GuidanceConfig(steps=4, decoder="conv"))
    bf16 = unguided_batch(bundle, [0, 1], 0, GuidanceConfig(steps=4, decoder="conv", precision="bf16"))
    for a, b in zip(fp32, bf16):
        assert b.latent.dtype == a.latent.dtype
        assert np.isfinite(b.latent.numpy()).all()
        assert (a.labels == b.labels).mean() > 0.9
    again = unguided_batch(bundle, [0, 1], 0, GuidanceConfig(steps=4, decoder="conv", precision="bf16"))
    assert all((x.labels == y.labels).all() for x, y in zip(bf16, again))  # same seed, same precision, same result


def test_unknown_precision():
    with pytest.raises(AnatomicaError, match="--precision"):
        GuidanceConfig(precision="fp8").check()
