import numpy as np
import pytest
import torch
from helpers import ball

from anatomica.control.domain import ControlDomain, place_global
from anatomica.control.moments import GeometryTarget
from anatomica.control.potential import DomainTask, Substructure, Task, Weights
from anatomica.errors import AnatomicaError

SHAPE = (12, 14, 16)




def make_task(weights=Weights(geometry=2.0, topology=0.5), geometry_temperature=2.0) -> Task:
    box = ControlDomain((6, 7, 8), np.eye(3), [0.5, 0.5, 0.5], [0.1, 0.0, -0.1], name="box")
    plane = ControlDomain((9, 10, 1), np.eye(3), [0.8, 0.8, 1.0], [0.0, 0.0, 0.2], name="plane")
    return Task(
        name="t",
        domains=[
            DomainTask("box", (1, 2), box, GeometryTarget(torch.tensor(0.3), torch.tensor([0.1, 0.0, 0.0]), torch.eye(3) / 3), (1, 0, 0)),
            DomainTask("plane", (3,), plane, GeometryTarget(mass=torch.tensor(0.1)), (1, 1, 0)),
        ],
        weights=weights,
        temperature=2.0,
        geometry_temperature=geometry_temperature,  # one τ for both families unless a test says otherwise
    )


def logits(B=2, seed=0, requires_grad=False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (2 * torch.randn(B, 4, *SHAPE, generator=g, dtype=torch.float64)).requires_grad_(requires_grad)


def test_potential_is_the_weighted_mean_over_domains():
    task = make_task()
    S = task.parse_volume(logits())
    assert [s.shape for s in S] == [(2, 6, 7, 8), (2, 9, 10, 1)]
    L, terms = task.potential(S)
    assert L.shape == (2,)
    for name in ("box/mass", "box/centroid", "box/covariance", "box/geometry", "box/topology", "plane/mass", "plane/topology"):
        assert terms[name].shape == (2,)
    assert "plane/centroid" not in terms  # not targeted, switched off
    geo = (terms["box/geometry"] + terms["plane/geometry"]) / 2
    topo = (terms["box/topology"] + terms["plane/topology"]) / 2
    assert torch.allclose(terms["geometry"], 2.0 * geo) and torch.allclose(terms["topology"], 0.5 * topo)
    assert torch.allclose(L, 2.0 * geo + 0.5 * topo)
    # a zero weight removes the whole family of terms
    L0, terms0 = make_task(Weights(topology=0.0)).potential(S)
    assert "box/topology" not in terms0 and torch.all(terms0["topology"] == 0)


def test_v_parsing_and_l_parsing_share_the_task_temperature():
    task = make_task()
    x = logits()
    probs = torch.softmax(x / task.temperature, dim=1)
    v = task.parse_volume(x)
    for a, b in zip(v, task.parse_probabilities(probs)):
        assert torch.allclose(a, b)
    # L-parsing: a "decoder" that answers queries at the domain points with the exact field there
    glob = Task("g", [DomainTask("all", (1, 2), place_global(SHAPE))], temperature=3.0)
    pts = glob.points(torch.float64)
    assert pts[0].shape == (np.prod(SHAPE), 3)
    at_points = [x.reshape(2, 4, -1)]  # the global grid's points are the voxel centres, in C order
    assert torch.allclose(glob.parse_point_logits(at_points)[0], glob.parse_volume(x)[0], atol=1e-12)


def test_label_array_parsing_equals_one_hot_probabilities():
    arr = np.zeros(SHAPE, np.int64)
    arr[ball(SHAPE, (6, 7, 8), 4)] = 1
    arr[ball(SHAPE, (3, 3, 3), 2)] = 3
    one_hot = torch.nn.functional.one_hot(torch.from_numpy(arr), 4).permute(3, 0, 1, 2)[None].double()
    task = make_task()
    for a, b in zip(task.parse_label_array(arr, torch.float64), task.parse_probabilities(one_hot)):
        assert torch.allclose(a, b)


def test_gradient_flows_to_the_logits_and_descent_lowers_the_potential():
    task = make_task()
    x = logits(B=1, seed=3, requires_grad=True)
    opt = torch.optim.Adam([x], lr=0.05)
    first = None
    for _ in range(30):
        opt.zero_grad()
        L, _ = task.potential(task.parse_volume(x))
        first = L.item() if first is None else first
        L.sum().backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
        opt.step()
    assert task.potential(task.parse_volume(x))[0].item() < first


def test_shape_and_count_mismatches_are_reported():
    task = make_task()
    S = task.parse_volume(logits())
    with pytest.raises(AnatomicaError, match="has 2 domains, got 1"):
        task.potential(S[:1])
    with pytest.raises(AnatomicaError, match="domain 'box': expected S of shape"):
        task.potential([S[1], S[0]])


def test_temperature_applies_to_the_topological_term_only_by_default():
    """Paper: τ softens the probabilities topological guidance reads; the geometric term reads τ = 1."""
    x = logits()
    task = make_task(geometry_temperature=1.0)
    S = task.parse_volume(x)
    assert all(isinstance(s, Substructure) for s in S)  # both families active on both domains, at two τ
    at1 = make_task(geometry_temperature=1.0)
    at1.temperature = 1.0
    at2 = make_task(geometry_temperature=2.0)
    _, t = task.potential(S)
    _, t1 = at1.potential(at1.parse_volume(x))
    _, t2 = at2.potential(at2.parse_volume(x))
    for name in ("box/mass", "box/centroid", "box/covariance", "plane/mass", "geometry"):
        assert torch.allclose(t[name], t1[name]), name
    for name in ("box/topology", "plane/topology", "topology"):
        assert torch.allclose(t[name], t2[name]), name
    # a purely geometric or purely topological task reads one tensor per domain at its family's τ
    geo_only = make_task(Weights(topology=0.0), geometry_temperature=1.0)
    (sb, sp) = geo_only.parse_volume(x)
    assert torch.allclose(sb, geo_only.parse_probabilities(torch.softmax(x, 1))[0])
    topo_only = make_task(Weights(geometry=0.0), geometry_temperature=1.0)
    (sb, sp) = topo_only.parse_volume(x)
    assert torch.allclose(sb, topo_only.parse_probabilities(torch.softmax(x / 2.0, 1))[0])


def _reference(shift: int) -> np.ndarray:
    arr = np.zeros(SHAPE, np.int64)
    arr[ball(SHAPE, (4 + shift, 7, 8), 3)] = 1
    arr[ball(SHAPE, (9, 6, 6 + shift), 2)] = 2
    return arr


def test_stacked_tasks_score_each_sample_with_its_own_domains_and_targets():
    from anatomica.control.potential import stack_tasks
    from anatomica.control.resolution import resolve_task
    from anatomica.control.schema import parse_task
    from anatomica.io.nifti import LabelMap

    spec = parse_task("""
name: mixed
temperature: 2.0
domains:
  - {name: box, labels: [a], placement: {kind: box, around: [a], margin: 0.3}, grid: [6, 7, 8],
     targets: {mass: {scale: 1.3}, centroid: {offset_mm: [1, 0, 0]}, covariance: {}}}
  - {name: all, labels: [a, b], grid: [12, 14, 16], targets: {betti: [2, 0, 0], mass: {value: 0.05}}}
""")
    labels = {"a": 1, "b": 2}
    affine = np.diag([1.0, 1.2, 0.9, 1.0])
    tasks = [resolve_task(spec, LabelMap(_reference(s), affine, labels), labels, SHAPE, affine) for s in (0, 2, 1)]
    stacked = stack_tasks(tasks)
    assert stacked.batch == 3 and len(stacked.domains[0].domain) == 3
    assert stacked.domains[1].domain is tasks[0].domains[1].domain  # the shared global domain stays one
    x = logits(B=3, seed=7, requires_grad=True)
    L, terms = stacked.potential(stacked.parse_volume(x))
    L.sum().backward()
    grad = x.grad.clone()
    for b, task in enumerate(tasks):
        xb = x.detach()[b : b + 1].clone().requires_grad_(True)
        Lb, tb = task.potential(task.parse_volume(xb))
        Lb.sum().backward()
        assert torch.allclose(L[b], Lb[0]) and all(torch.allclose(terms[k][b], tb[k][0]) for k in tb)
        assert torch.allclose(grad[b], xb.grad[0])
        sample = stacked.sample(b)
        assert np.array_equal(sample.domains[0].domain.translation, task.domains[0].domain.translation)
        assert torch.equal(sample.domains[0].target.mass, task.domains[0].target.mass)
    with pytest.raises(AnatomicaError, match="3 samples.* got a batch of 2"):
        stacked.potential(stacked.parse_volume(x.detach()[:2]))
    other = resolve_task(parse_task("name: mixed\ndomains: [{name: box, labels: [a]}]\n"), None, labels, SHAPE, affine)
    with pytest.raises(AnatomicaError, match="different domains"):
        stack_tasks([tasks[0], other])
