"""Package a trained model into src/anatomica/pretrained/NAME (docs/pretrained.md), addressable as `--model NAME`.

The diffusion run's EMA weights (its final weights, or checkpoint step ``--step``) and its autoencoder (or
``--autoencoder AE``: decoders fine-tuned on the *same frozen encoder*, checked tensor by tensor) are stored in half
precision (the loader copies them into fp32 modules); an autoencoder whose decoders were trained on a finer grid
(``train autoencoder --upscale``) makes the model write that grid (``heart64``); build-machine paths are replaced by the recipe text; the
training logs (Lightning CSV) go to docs/logs/NAME_*.csv.

    .venv/bin/python benchmarks/package_model.py aorta32 --prior WORK/ldm --anatomy aorta \\
        --recipe "200 aorta phantoms at 32³ (benchmarks/train_zoo.sh aorta 32 WORK)"
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from anatomica.io.checkpoint import load_tensors, load_tree, load_weights, read_config, save_tensors
from anatomica.io.files import write_json
from anatomica.pretrained import ROOT

ENCODER = ("kl.encoder.", "kl.quant_conv_mu.", "kl.quant_conv_log_sigma.")
DOCS_LOGS = Path(__file__).resolve().parents[1] / "docs" / "logs"


def half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}


def prior_state(run: Path, step: int | None) -> tuple[dict[str, torch.Tensor], dict]:
    """EMA weights and config of a diffusion run, at its end or at checkpoint ``step``."""
    if step is None:
        return load_weights(run, "latent_diffusion")
    tree = load_tree(run / "checkpoints" / f"step{step:06d}.safetensors")
    config = read_config(run, "latent_diffusion")
    config["train"]["steps"] = int(tree["global_step"])  # what the exported weights were trained for
    return {k[len("ema."):]: v for k, v in tree["state_dict"].items() if k.startswith("ema.")}, config


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name")
    ap.add_argument("--prior", required=True, type=Path, help="diffusion run folder (anatomica train diffusion)")
    ap.add_argument("--step", type=int, default=None, help="export this checkpoint's EMA weights instead of the final ones")
    ap.add_argument("--autoencoder", type=Path, default=None, help="autoencoder run fine-tuned on the prior's frozen encoder")
    ap.add_argument("--anatomy", required=True)
    ap.add_argument("--recipe", required=True, help="how the training data was made (replaces build-machine paths)")
    ap.add_argument("--ae-recipe", default=None, help="how the autoencoder was trained, when not one `train autoencoder` run")
    ap.add_argument("--root", type=Path, default=ROOT, help="where packaged models live (default: the package's pretrained/)")
    ap.add_argument("--logs", type=Path, default=DOCS_LOGS, help="where the training logs are copied")
    a = ap.parse_args(argv)

    ldm_state, cfg = prior_state(a.prior, a.step)
    ae_state, _ = load_tensors(a.prior / "autoencoder.safetensors")
    ae_run = a.autoencoder or Path(cfg["autoencoder"].get("source") or "")
    ae_cfg = dict(cfg["autoencoder"]["config"])
    if a.autoencoder is not None:
        tuned, ae_cfg = load_weights(a.autoencoder, "autoencoder")
        keys = [k for k in ae_state if k.startswith(ENCODER)]
        if not keys or not all(torch.equal(ae_state[k], tuned[k]) for k in keys):
            raise SystemExit(f"error: {a.autoencoder}'s encoder differs from the one {a.prior} was trained on")
        ae_state = tuned
    ae_cfg["data"] = {**ae_cfg["data"], "path": None, "recipe": a.recipe}
    ae_cfg["train"] = {**ae_cfg["train"], "init": None}
    if a.ae_recipe:
        ae_cfg["recipe"] = a.ae_recipe
    cfg["autoencoder"] = {"source": None, "config": ae_cfg}
    if a.autoencoder is not None and ae_cfg["data"]["shape"] != cfg["data"]["shape"]:
        # decoders trained on a finer grid (train autoencoder --upscale): the model writes that grid; the prior's
        # own training data (its latents' source) stay on record
        if ae_cfg["data"]["labels"] != cfg["data"]["labels"]:
            raise SystemExit(f"error: {a.autoencoder}'s label table differs from the one {a.prior} was trained on")
        cfg["prior_data"] = {k: v for k, v in cfg["data"].items() if k != "cases"} | {"path": None}
        cfg["data"] = ae_cfg["data"]  # copied with the recipe just below
    cfg["data"] = {**cfg["data"], "path": None, "recipe": a.recipe}
    cfg["anatomy"] = a.anatomy

    out = a.root / a.name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    save_tensors(out / "model.safetensors", half(ldm_state), {"kind": "latent_diffusion"})
    save_tensors(out / "autoencoder.safetensors", half(ae_state), {"kind": "autoencoder"})
    write_json(cfg, out / "config.json")
    for p in out.iterdir():
        p.chmod(0o644)
    a.logs.mkdir(parents=True, exist_ok=True)
    for part, run in (("autoencoder", ae_run), ("diffusion", a.prior)):
        log = run / "logs" / "csv" / "metrics.csv"
        if log.is_file():
            shutil.copy(log, a.logs / f"{a.name}_{part}.csv")
    size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    print(f"wrote {out} ({size:.1f} MB): {sorted(p.name for p in out.iterdir())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
