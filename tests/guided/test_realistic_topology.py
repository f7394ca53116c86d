"""The realistic-topology options (issue 11 item 9) through the task YAML, GuidanceConfig and the tiny model."""

import pytest

from anatomica.control.spec import load_task, parse_task, resolve_task
from anatomica.errors import AnatomicaError
from anatomica.guided.run import GuidanceConfig, guided_batch
from anatomica.model import load_model

TASK = """name: t
domains:
  - name: both
    labels: [left, right]
    grid: [16, 16, 16]
    targets: {betti: [2, 0, 0]}
weights: {geometry: 0.0, topology: 1.0}
guidance: {scale: 1, sigma_window: [0.05, 10], normalize: 0.1, recurrence: 1, topology_loss: saddle, topology_margin: 0.05}
"""


def test_task_guidance_fields_fill_what_the_config_leaves_open():
    spec = parse_task(TASK)
    cfg = GuidanceConfig().for_task(spec)
    assert (cfg.scale, cfg.sigma_min, cfg.sigma_max, cfg.normalize, cfg.recurrence, cfg.topology_loss, cfg.topology_margin) == (
        1.0, 0.05, 10.0, 0.1, 1, "saddle", 0.05)
    mine = GuidanceConfig(sigma_min=0.1, sigma_max=5.0, normalize=0.3, recurrence=0, topology_loss="paper").for_task(spec)
    assert (mine.sigma_min, mine.sigma_max, mine.normalize, mine.recurrence, mine.topology_loss) == (0.1, 5.0, 0.3, 0, "paper")
    assert GuidanceConfig().for_task(parse_task(TASK.replace("normalize: 0.1, ", ""))).normalize is None
    assert mine.to_dict()["topology_loss"] == "paper" and cfg.to_dict()["recurrence"] == 1


@pytest.mark.parametrize("bad, message", [
    ("normalize: -1", "normalize"), ("recurrence: 9", "recurrence"), ("topology_loss: hinge", "topology_loss"),
    ("sigma_window: [3, 1]", "sigma_window"), ("clip: 0.1, normalize: 0.1", "not both"), ("topology_margin: 0.5", "topology_margin"), ("normalize: .inf", "normalize"),
])
def test_bad_task_guidance_fields_are_one_line_errors(bad, message):
    head = TASK.split("guidance:")[0]
    with pytest.raises(AnatomicaError, match=message):
        parse_task(head + "guidance: {scale: 1, " + bad + "}\n")


@pytest.mark.parametrize("kwargs, message", [
    ({"normalize": 0.0}, "--guidance-normalize"), ({"normalize": float("nan")}, "--guidance-normalize"),
    ({"recurrence": 9}, "--recurrence"), ({"clip": -1.0}, "--guidance-clip"), ({"clip": 0.1, "normalize": 0.1}, "exclude"), ({"topology_loss": "x"}, "--topology-loss"), ({"topology_margin": 0.7}, "--topology-margin"),
])
def test_bad_config_options(kwargs, message):
    with pytest.raises(AnatomicaError, match=message):
        GuidanceConfig(**kwargs).check()


def test_saddle_normalized_recurrent_guidance_runs_on_the_tiny_model(tiny_model):
    bundle = load_model(tiny_model["ldm"])
    task = resolve_task(load_task(tiny_model["topological"]), None, bundle.labels, bundle.shape, bundle.affine)
    cfg = GuidanceConfig(parsing="l-coarse", resolution="low", steps=3, scale=1.0, normalize=0.1, recurrence=1, topology_loss="saddle").check()
    a = guided_batch(bundle, task, [0, 1], 0, cfg)
    b = guided_batch(bundle, task, [0, 1], 0, cfg)
    assert len(a[0].potentials) == len(a[0].guided) == 5  # 2·3 − 1 Heun calls, one trace entry each
    assert all((x.labels == y.labels).all() for x, y in zip(a, b))  # the recurrence noise is seeded
    assert a[0].final_terms["both/topology"] >= 0  # the saddle loss is a hinge
