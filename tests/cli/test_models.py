"""`anatomica models`: every packaged model listed with its card; the realism cells render a card or say "—"."""

import json
import math

from helpers import run_cli

from anatomica.cli.models import _realism
from anatomica.pretrained import packaged_card, packaged_models

CARD = {"one_nna_all_foreground": {"one_nna": 0.61, "ci95": [0.52, 0.70]}, "n_per_side": 64,
        "fmd": {"fmd": 12.3, "ci95": [9.0, 20.1]},
        "task_topology": {"task": "calcium-count", "samples": {"rate": 0.25}, "data": {"rate": 0.275}}}


def test_realism_cells():
    assert _realism(None) == ("—", "—", "—", "—")
    nna, fmd, task, topo = _realism(CARD)
    assert nna == "0.61 [0.52, 0.70] (n=64)" and fmd == "12.3 [9.0, 20.1]" and task == "calcium-count" and topo == "25 % / 28 %"


def test_models_json_lists_every_packaged_model_with_its_card(capsys):
    code, out, err = run_cli(["models", "--json"], capsys)
    assert code == 0, err
    cards = json.loads(out)
    assert [c["name"] for c in cards] == packaged_models() and "heart32" in packaged_models()
    for c in cards:
        assert c["realism"] == packaged_card(c["name"])
        if c["realism"] is not None:  # a measured card holds finite figures in range
            nna = c["realism"]["one_nna_all_foreground"]
            assert 0.0 <= nna["ci95"][0] <= nna["one_nna"] <= nna["ci95"][1] <= 1.0
            assert math.isfinite(c["realism"]["fmd"]["fmd"])
            assert 0.0 <= c["realism"]["task_topology"]["samples"]["rate"] <= 1.0


def test_models_table_names_every_model(capsys):
    code, out, err = run_cli(["models"], capsys)
    assert code == 0, err
    for name in packaged_models():
        assert name in out


def test_every_packaged_model_loads_and_decodes_its_own_grid():
    """Each shipped model's config, weights and autoencoder fit together: a 2-step sample decodes, by both
    decoders, to the grid the card shows (heart64: 64³ from heart32's 8³ latents)."""
    import torch

    from anatomica.guided.run import prior_latents
    from anatomica.model import load_model, model_card

    torch.set_num_threads(1)
    for name in packaged_models():
        b = load_model(name)
        z = prior_latents(b, [0], 0, 2)
        with torch.no_grad():
            assert tuple(b.decode(z).shape[2:]) == b.shape == tuple(model_card(name)["shape"]), name
            assert tuple(b.decode_field(z).shape[2:]) == b.shape, name
