"""Self-referenced geometric targets (``keep: true``): each sample keeps its own mass, centroid and Σⁿ as measured
on its unguided twin (schema, resolution, ``Task.keep_targets``, the guided run, reports, CLI)."""

import json

import numpy as np
import pytest
import torch
from helpers import run_cli

from anatomica.control.conditioning import check_spec
from anatomica.control.domain import place_global
from anatomica.control.moments import moments
from anatomica.control.potential import DomainTask, Task, stack_tasks
from anatomica.control.spec import parse_task, resolve_task
from anatomica.errors import AnatomicaError
from anatomica.guided.parsers import make_parsing
from anatomica.guided.run import GuidanceConfig, guided_batch, prior_latents
from anatomica.model import load_model

KEEP_TASK = """name: keep-apart
temperature: 2.0
domains:
  - name: both
    labels: [left, right]
    grid: [16, 16, 16]
    targets: {betti: [2, 0, 0]}
  - name: l
    labels: [left]
    grid: [16, 16, 16]
    targets: {mass: {keep: true}, centroid: {keep: true}, covariance: {keep: true}}
  - name: r
    labels: [right]
    grid: [16, 16, 16]
    targets: {mass: {value: 0.5}, centroid: {keep: true}}
weights: {geometry: 100.0, topology: 1.0}
guidance: {scale: 1, parsing: l-coarse, resolution: low, normalize: 0.3, topology_loss: saddle}
"""
LABELS = {"left": 1, "right": 2}
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def _with_targets(targets: str) -> str:
    return f"name: x\ndomains:\n  - name: a\n    labels: [left]\n    targets: {targets}\n"


def test_keep_parses_resolves_without_a_reference_and_leaves_the_value_open():
    spec = parse_task(KEEP_TASK)
    assert spec.domains[1].targets.kept == ("mass", "centroid", "covariance") and spec.domains[2].targets.kept == ("centroid",)
    assert not spec.needs_reference  # kept moments come from the sample, not from a reference
    task = resolve_task(spec, None, LABELS, (16, 16, 16), AFFINE)
    t = task.domains[1].target
    assert t.keep == ("mass", "centroid", "covariance") and t.pending == t.keep and t.mass is None and t.centroid is None
    assert task.domains[2].target.mass is not None and task.domains[2].target.pending == ("centroid",)
    assert task.pending and task.domains[1].has_geometry_target


@pytest.mark.parametrize("targets, message", [
    ("{mass: {keep: true, value: 3}}", "exactly one of 'scale', 'value' and 'keep: true'"),
    ("{mass: {keep: true, scale: 1}}", "exactly one of 'scale', 'value' and 'keep: true'"),
    ("{mass: {keep: false}}", "exactly one of 'scale', 'value' and 'keep: true'"),
    ("{mass: {keep: sometimes}}", r"mass\.keep: Input should be a valid boolean"),
    ("{centroid: {keep: true, offset_mm: [1, 2, 3]}}", "one of 'offset_mm', 'value_mm' and 'keep: true'"),
    ("{centroid: {keep: true, value_mm: [1, 2, 3]}}", "one of 'offset_mm', 'value_mm' and 'keep: true'"),
    ("{covariance: {keep: true, value_mm2: [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}}", "'value_mm2' or 'keep: true', not both"),
    ("{mass: self}", r"targets\.mass: Input should be a valid dictionary"),
])
def test_bad_keep_targets_are_one_line_errors(targets, message):
    with pytest.raises(AnatomicaError, match=message) as info:
        parse_task(_with_targets(targets))
    assert "\n" not in str(info.value)


def test_a_conditional_baseline_refuses_kept_targets():
    with pytest.raises(AnatomicaError, match="'keep: true' targets are measured on the sample during guidance"):
        check_spec(parse_task(KEEP_TASK))


def _toy_task(pending_keep=("mass", "centroid", "covariance")) -> Task:
    from anatomica.control.moments import GeometryTarget

    dom = place_global((8, 8, 8), "a")
    kept = DomainTask("a", (1,), dom, GeometryTarget(keep=pending_keep))
    fixed = DomainTask("b", (2,), dom, GeometryTarget(mass=torch.tensor(0.25, dtype=torch.float64)))
    return Task("t", [kept, fixed], shape=(8, 8, 8), affine=np.eye(4))


def test_keep_targets_are_each_samples_own_moments_and_their_terms_start_at_zero():
    task = _toy_task()
    gen = torch.Generator().manual_seed(0)
    S = [0.05 * torch.rand(3, 8, 8, 8, generator=gen, dtype=torch.float64) for _ in range(2)]
    for b in range(3):  # a blob in a different place and of a different size per sample
        S[0][b, b:b + 3, 1:4 + b, 2:6] += 0.9
    before, terms = task.potential(S)
    assert "a/mass" not in terms  # pending: the kept terms are off until guidance starts
    kept = task.keep_targets(S)
    assert not kept.pending and kept.batch_size == 3
    mom = moments(S[0], task.domains[0].domain.points(torch.float64))
    t = kept.domains[0].target
    assert torch.equal(t.mass, mom.mass) and torch.equal(t.centroid, mom.centroid) and torch.equal(t.covariance, mom.normalized_covariance)
    assert t.mass.shape == (3,) and len(set(t.mass.tolist())) == 3  # one value per sample, not a population value
    assert kept.domains[1].target.mass.shape == (3,) and torch.all(kept.domains[1].target.mass == 0.25)  # shared target copied
    _, terms = kept.potential(S)
    for k in ("a/mass", "a/centroid", "a/covariance"):
        assert torch.all(terms[k].abs() < 1e-20)
    moved = [S[0].clone(), S[1]]
    moved[0][0] = S[0][0].roll(2, dims=0)  # only sample 0 moves
    _, terms = kept.potential(moved)
    assert torch.all(terms["a/centroid"][0] > 1e-2) and torch.all(terms["a/centroid"][1:] < 1e-20)  # a shifted sample is pulled back to where it started
    assert kept.keep_targets(moved) is kept  # nothing pending: the targets stay fixed
    one = kept.sample(1)
    assert one.domains[0].target.keep == task.domains[0].target.keep and float(one.domains[0].target.mass) == float(mom.mass[1])


def test_stacked_tasks_keep_per_sample_and_must_agree_on_what_they_keep():
    a, b = _toy_task(), _toy_task()
    stacked = stack_tasks([a, b])
    S = [torch.rand(2, 8, 8, 8, dtype=torch.float64) for _ in range(2)]
    kept = stacked.keep_targets(S)
    assert kept.domains[0].target.mass.shape == (2,)
    with pytest.raises(AnatomicaError, match="differ in which moments they keep"):
        stack_tasks([a, _toy_task(("mass",))])
    with pytest.raises(AnatomicaError, match="stacked for 2 samples"):
        stacked.keep_targets([s[:1] for s in S])


@pytest.fixture(scope="module")
def keep_setup(tiny_model, tmp_path_factory):
    bundle = load_model(tiny_model["ldm"])
    path = tmp_path_factory.mktemp("keep") / "keep.yaml"
    path.write_text(KEEP_TASK)
    return bundle, path


def test_guided_run_keeps_the_moments_of_the_unguided_twin(keep_setup):
    """The kept targets are each sample's moments on the same noise sampled without guidance, parsed as the guidance
    reads it — not on the first guided prediction, which at σ_max is close to the population mean."""
    bundle, path = keep_setup
    spec = parse_task(path.read_text())
    task = resolve_task(spec, None, bundle.labels, bundle.shape, bundle.affine)
    cfg = GuidanceConfig(parsing=None, steps=4, sigma_min=0.05, sigma_max=5.0).for_task(spec)
    res = guided_batch(bundle, task, [0, 1], 0, cfg, record_unguided=True)
    twin = prior_latents(bundle, [0, 1], 0, 4)
    assert not torch.allclose(twin, torch.stack([r.latent for r in res]))  # guidance moved the samples
    S = make_parsing(bundle, task, "l-coarse", "low")(twin)
    for b, r in enumerate(res):
        mom = moments(S[1][b:b + 1].double(), place_global((16, 16, 16)).points(torch.float64))
        t = r.task.domains[1].target  # back on the task's grid (16³ here, so no mass rescaling)
        assert float(t.mass) == pytest.approx(float(mom.mass[0]), rel=1e-6)
        assert torch.allclose(t.centroid, mom.centroid[0], atol=1e-6) and torch.allclose(t.covariance, mom.normalized_covariance[0], atol=1e-6)
        assert float(r.task.domains[2].target.mass) == pytest.approx(float(task.domains[2].target.mass))  # absolute one untouched
    assert not torch.allclose(res[0].task.domains[1].target.centroid, res[1].task.domains[1].target.centroid)
    # the same sample alone in its batch keeps the same values (the twin is per sample, not per batch)
    alone = guided_batch(bundle, task, [1], 0, cfg, record_unguided=False)[0]
    assert float(alone.task.domains[1].target.mass) == pytest.approx(float(res[1].task.domains[1].target.mass), rel=1e-4)


def test_kept_mass_is_reported_in_the_tasks_units_whatever_grid_guided(keep_setup):
    """L-coarse/low reads a 32³ task grid on 16³: the kept mass fraction is measured there and reported rescaled
    to the task's grid (the same physical mass), the domain back at its own grid."""
    from anatomica.guided.resolution import on_grids_of

    bundle, _ = keep_setup
    spec = parse_task(KEEP_TASK.replace("[16, 16, 16]", "[32, 32, 32]"))
    task = resolve_task(spec, None, bundle.labels, bundle.shape, bundle.affine)
    r = guided_batch(bundle, task, [0], 0, GuidanceConfig(parsing=None, steps=2).for_task(spec), record_unguided=False)[0]
    assert r.task.domains[1].domain.size == (32, 32, 32) and r.task.batch_size is None
    coarse = make_parsing(bundle, task, "l-coarse", "low")
    kept16 = coarse.task.keep_targets(coarse(r.latent[None]))
    back = on_grids_of(kept16.sample(0), task)
    factor = (16 / 15) ** 3 / (32 / 31) ** 3  # N·cell / box of each grid (guided.resolution._mass_factor)
    assert back.domains[1].domain.size == (32, 32, 32)
    assert float(back.domains[1].target.mass) == pytest.approx(float(kept16.domains[1].target.mass[0]) * factor, rel=1e-12)
    assert torch.equal(back.domains[1].target.centroid, kept16.domains[1].target.centroid[0])


def test_sample_cli_with_kept_targets(tiny_model, keep_setup, tmp_path, capsys):
    _, path = keep_setup
    out = tmp_path / "out"
    code, stdout, err = run_cli(["sample", "--model", tiny_model["ldm"], "--task", path, "--n", "2", "--steps", "2", "--out", out], capsys)
    assert code == 0, err[-2000:]
    rep = json.loads((out / "reports" / "sample_000.json").read_text())
    l_dom = next(d for d in rep["domains"] if d["name"] == "l")
    assert l_dom["target"]["kept"] == ["mass", "centroid", "covariance"]
    assert l_dom["target"]["mass"] > 0 and len(l_dom["target"]["centroid_mm"]) == 3 and set(l_dom["errors"]) == {"mass", "centroid", "covariance"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(KEEP_TASK.replace("{mass: {keep: true}, centroid", "{mass: {keep: true, value: 3}, centroid"))
    code, _, err = run_cli(["sample", "--model", tiny_model["ldm"], "--task", bad, "--n", "1", "--steps", "2", "--out", tmp_path / "o2"], capsys)
    lines = [x for x in err.splitlines() if x.strip() and "%|" not in x and not x.startswith(("warning:", "note:"))]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "exactly one of 'scale', 'value' and 'keep: true'" in lines[0]


def test_the_packaged_atrial_separation_keeps_each_atriums_own_volume_and_weakly_its_place():
    from anatomica.control.spec import load_task

    spec = load_task("atrial-separation")
    kept = {d.name: d.targets.kept for d in spec.domains}
    assert kept == {"atria": (), "la": ("mass", "centroid"), "ra": ("mass", "centroid")} and not spec.needs_reference
    assert spec.weights.centroid < 1e-3  # at 1 the centroid terms hold the atria together (docs/results.md)
    cfg = GuidanceConfig(parsing=None).for_task(spec)
    assert (cfg.parsing, cfg.normalize, cfg.recurrence, cfg.topology_loss) == ("v", 0.3, 0, "saddle")
