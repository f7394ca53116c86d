"""Guided sampling lowers the potential against unguided sampling from the same noise; runs are paired and traced."""

import pytest
import torch

from anatomica.control.spec import load_task, parse_task, resolve_task
from anatomica.errors import AnatomicaError
from anatomica.guided.run import DEFAULT_SCALE, GuidanceConfig, guided_batch, parse_sigma_window, prior_latents, schedule
from anatomica.io.dataset import list_label_files
from anatomica.io.nifti import load_label_map
from anatomica.model import load_model

SAMPLES = [0, 1, 2, 3]


@pytest.fixture(scope="module")
def setup(tiny_model):
    bundle = load_model(tiny_model["ldm"])
    ref = load_label_map(list_label_files(tiny_model["references"])[0])
    tasks = {k: resolve_task(load_task(tiny_model[k]), ref, bundle.labels, bundle.shape, bundle.affine) for k in ("geometric", "topological")}
    return bundle, tasks


def final_potentials(results):
    return torch.tensor([r.final_potential for r in results])


@pytest.mark.parametrize(
    "kind, parsing, resolution, fast",
    [("geometric", "v", None, False), ("geometric", "l-local", "low", True), ("topological", "v", None, False), ("topological", "l-coarse", "low", False)],
)
def test_guidance_lowers_the_potential_from_the_same_noise(setup, kind, parsing, resolution, fast):
    bundle, tasks = setup
    # w = 100 over σ <= 10 is calibrated for this tiny model (the CLI default, w = 1e4 over every step, for the 32³ heart model)
    base = GuidanceConfig(parsing=parsing, resolution=resolution, steps=8, scale=0.0, sigma_max=10.0)
    unguided = final_potentials(guided_batch(bundle, tasks[kind], SAMPLES, 0, base))
    guided = final_potentials(guided_batch(bundle, tasks[kind], SAMPLES, 0, GuidanceConfig(**{**base.__dict__, "scale": 100.0, "fast": fast})))
    assert guided.mean() < unguided.mean() - 0.1 * unguided.abs().mean()
    assert (guided < unguided).sum() >= 3


def test_unguided_run_is_the_plain_sampler_and_guided_run_starts_from_the_same_noise(setup):
    bundle, tasks = setup
    cfg = GuidanceConfig(parsing="l-local", steps=5, scale=0.0)
    plain = prior_latents(bundle, SAMPLES, 3, steps=5)
    unguided = guided_batch(bundle, tasks["geometric"], SAMPLES, 3, cfg)
    torch.testing.assert_close(torch.stack([r.latent for r in unguided]), plain)
    # sample i depends on (seed, i) only: a batch of one reproduces sample 2 of the batch
    alone = guided_batch(bundle, tasks["geometric"], [2], 3, cfg)[0]
    torch.testing.assert_close(alone.latent, unguided[2].latent)
    guided = guided_batch(bundle, tasks["geometric"], SAMPLES, 3, GuidanceConfig(parsing="l-local", steps=5, scale=50.0, sigma_max=1.0))
    # the first call (σ_max = 80) is outside the guidance window: same noise, same first potential
    assert [g.potentials[0] for g in guided] == pytest.approx([u.potentials[0] for u in unguided])
    assert any(abs(g.final_potential - u.final_potential) > 1e-4 for g, u in zip(guided, unguided))


def test_trace_covers_every_denoiser_call_and_marks_the_window(setup):
    bundle, tasks = setup
    steps = 6
    sigmas = bundle.sigmas(steps).tolist()
    r = guided_batch(bundle, tasks["topological"], [0], 0, GuidanceConfig(parsing="l-local", steps=steps, scale=10.0, sigma_min=0.1, sigma_max=5.0))[0]
    assert len(r.sigmas) == len(r.potentials) == len(r.guided) == 2 * steps - 1  # Heun: two calls per step, one on the last
    assert r.sigmas[0] == pytest.approx(sigmas[0])
    assert r.guided == [0.1 <= s <= 5.0 for s in r.sigmas]
    assert any(r.guided) and not all(r.guided)
    assert r.labels.shape == bundle.shape and r.seconds > 0


def test_bad_guidance_options():
    for kwargs, message in [
        ({"parsing": "w"}, "--parsing must be one of"),
        ({"parsing": "v", "resolution": "low"}, "L-parsing only"),
        ({"resolution": "ultra"}, "--resolution must be one of"),
        ({"scale": -1.0}, "--guidance-scale must be"),
        ({"scale": float("nan")}, "--guidance-scale must be"),
        ({"sigma_min": 2.0, "sigma_max": 1.0}, "sigma-min <= sigma-max"),
        ({"steps": 0}, "--steps must be >= 1"),
        ({"sampler": "ddim"}, "--sampler must be one of"),
    ]:
        with pytest.raises(AnatomicaError, match=message):
            GuidanceConfig(**kwargs).check()
    assert parse_sigma_window("0.1, 3") == (0.1, 3.0)
    for bad in ("1", "a,b", "3,1", "-1,2"):
        with pytest.raises(AnatomicaError, match="--sigma-window"):
            parse_sigma_window(bad)


def test_an_open_scale_is_filled_from_the_task_and_required_by_the_sampler(setup):
    bundle, tasks = setup
    plain = parse_task("name: t\ndomains:\n  - name: a\n    labels: [left]\n")
    tuned = parse_task("name: t\ndomains:\n  - name: a\n    labels: [left]\nguidance: {scale: 25}\n")
    assert GuidanceConfig().for_task(plain).scale == DEFAULT_SCALE
    assert GuidanceConfig().for_task(tuned).scale == 25.0
    assert GuidanceConfig(scale=0.0).for_task(tuned).scale == 0.0
    with pytest.raises(ValueError, match="for_task"):
        guided_batch(bundle, tasks["geometric"], [0], 0, GuidanceConfig(steps=2))


def test_schedule_keeps_batches_full_whatever_the_references():
    assert schedule(7, 2) == [[0, 1], [2, 3], [4, 5], [6]]
    assert schedule(2, 8) == [[0, 1]]


def test_a_batch_mixing_references_equals_each_sample_alone(setup, tiny_model):
    """Per-sample targets in one batch: sample b follows its own reference, as if it ran alone."""
    bundle, tasks = setup
    ref2 = load_label_map(list_label_files(tiny_model["references"])[1])
    other = resolve_task(load_task(tiny_model["geometric"]), ref2, bundle.labels, bundle.shape, bundle.affine)
    cfg = GuidanceConfig(parsing="l-local", steps=4, scale=50.0, sigma_max=10.0)
    mixed = guided_batch(bundle, [tasks["geometric"], other], [0, 1], 0, cfg)
    alone = [guided_batch(bundle, tasks["geometric"], [0], 0, cfg)[0], guided_batch(bundle, other, [1], 0, cfg)[0]]
    for m, a in zip(mixed, alone):
        torch.testing.assert_close(m.latent, a.latent, atol=1e-4, rtol=1e-4)
        assert m.final_potential == pytest.approx(a.final_potential, rel=1e-3, abs=1e-6)


def test_the_task_names_the_parsing_used_when_none_is_given():
    base = "name: t\ndomains:\n  - name: a\n    labels: [left]\n"
    tuned = parse_task(base + "guidance: {scale: 25, parsing: l-coarse, resolution: med}\n")
    plain = parse_task(base + "guidance: {scale: 25}\n")
    picked = GuidanceConfig(parsing=None).for_task(tuned)
    assert (picked.parsing, picked.resolution_name) == ("l-coarse", "med")
    assert (GuidanceConfig(parsing=None, resolution="high").for_task(tuned).resolution_name) == "high"
    assert (GuidanceConfig(parsing="v").for_task(tuned).parsing, GuidanceConfig(parsing="v").for_task(tuned).resolution) == ("v", None)
    assert GuidanceConfig(parsing="l-local").for_task(tuned).resolution_name == "low"  # the task's preset goes with its parsing
    assert (GuidanceConfig(parsing=None).for_task(plain).parsing, GuidanceConfig(parsing=None).for_task(plain).resolution_name) == ("l-local", "low")
    with pytest.raises(AnatomicaError, match="resolution"):
        parse_task(base + "guidance: {scale: 25, resolution: low}\n")
    with pytest.raises(AnatomicaError, match="resolution applies to L-parsing"):
        GuidanceConfig(parsing=None, resolution="low").for_task(parse_task(base + "guidance: {scale: 25, parsing: v}\n"))
