"""V-parsing, L-local and L-coarse read the same anatomy from the same latent; presets re-grid domains."""

import numpy as np
import pytest
import torch

from anatomica.control.domain import ControlDomain
from anatomica.control.potential import DomainTask, Task
from anatomica.control.spec import load_task, resolve_task
from anatomica.data.datasets import to_onehot
from anatomica.errors import AnatomicaError
from anatomica.guided.parsers import make_parsing
from anatomica.guided.resolution import PRESETS, Resolution, with_local_grids
from anatomica.io.dataset import list_label_files
from anatomica.io.nifti import load_label_map
from anatomica.model import load_model


@pytest.fixture(scope="module")
def encoded(tiny_model):
    """The bundle, the geometric task resolved on the first reference, and the normalized latents of the training cases."""
    bundle = load_model(tiny_model["ldm"])
    ref = load_label_map(list_label_files(tiny_model["references"])[0])
    task = resolve_task(load_task(tiny_model["geometric"]), ref, bundle.labels, bundle.shape, bundle.affine)
    arrays = [load_label_map(f).array for f in list_label_files(tiny_model["data"])]
    x = to_onehot(torch.from_numpy(np.stack(arrays).astype(np.int64)), bundle.num_classes).float()
    with torch.no_grad():
        mean, _ = bundle.autoencoder.encode(x)
    return bundle, task, bundle.to_latent(mean), arrays


class FieldEverywhere:
    """A decoder whose full-grid decode *is* the neural field on the voxel grid: V- and L-parsing then differ
    only in where softmax and interpolation happen."""

    def __init__(self, bundle):
        self.bundle = bundle

    def decode(self, z):
        return self.bundle.decode_field(z)

    def query(self, z, points):
        return self.bundle.query(z, points)


def test_parsings_agree_when_the_decoders_agree(encoded):
    bundle, task, z, _ = encoded
    dec = FieldEverywhere(bundle)
    same_grid = Resolution("test", local=task.domains[0].domain.size[0], coarse=bundle.shape[0])
    with torch.no_grad():
        (sv,) = make_parsing(dec, task, "v")(z)
        (sc,) = make_parsing(dec, task, "l-coarse", same_grid)(z)
        (sl,) = make_parsing(dec, task, "l-local", same_grid)(z)
    assert sv.shape == sl.shape == (len(z), 12, 12, 12)
    torch.testing.assert_close(sc, sv)  # a coarse grid equal to the volume grid is the full decode
    # softmax-then-interpolate (V) against softmax at the exact points (L): close, not identical
    assert (sv - sl).abs().mean() < 0.08
    assert (sv.flatten(1).mean(1) - sl.flatten(1).mean(1)).abs().max() < 0.03


def test_conv_v_parsing_and_field_l_parsing_agree_on_the_trained_model(encoded):
    bundle, task, z, arrays = encoded
    with torch.no_grad():
        (sv,) = make_parsing(bundle, task, "v")(z)
        (sl,) = make_parsing(bundle, task, "l-local", Resolution("test", local=12, coarse=16))(z)
    truth = torch.cat([task.parse_label_array(a)[0] for a in arrays])
    for S in (sv, sl):  # both decoders reconstruct the training cases' substructure
        assert (S.flatten(1).mean(1) - truth.flatten(1).mean(1)).abs().max() < 0.08
    mv, ml = sv >= 0.5, sl >= 0.5
    dice = 2 * (mv & ml).flatten(1).sum(1) / (mv.flatten(1).sum(1) + ml.flatten(1).sum(1))
    assert dice.min() > 0.7
    # the bounded-receptive-field field on this 100-step toy model: as close to V as each is to the truth
    assert (sv.flatten(1).mean(1) - sl.flatten(1).mean(1)).abs().max() < 0.08


def test_l_parsing_is_differentiable_and_touches_only_the_domain_points(encoded):
    bundle, task, z, _ = encoded
    calls = []

    class Spy(FieldEverywhere):
        def query(self, z, points):
            calls.append(points.shape)
            return super().query(z, points)

    zz = z[:2].clone().requires_grad_(True)
    parsing = make_parsing(Spy(bundle), task, "l-local", "low")
    L, _ = parsing.potential(zz)
    L.sum().backward()
    assert calls == [(12**3, 3)]  # one query, 12 points per axis of the low preset
    assert zz.grad is not None and zz.grad.abs().sum() > 0


def test_presets_regrid_domains_and_keep_planes_and_lines():
    box = ControlDomain((24, 24, 24), np.eye(3), [0.2, 0.3, 0.4], [0.1, 0.0, -0.1], "box")
    plane = ControlDomain((16, 16, 1), np.eye(3), [0.2, 0.2, 1.0], [0.0, 0.0, 0.0], "plane")
    line = ControlDomain((32, 1, 1), np.eye(3), [0.5, 1.0, 1.0], [0.0, 0.0, 0.0], "line")
    task = Task("t", [DomainTask(d.name, (1,), d) for d in (box, plane, line)])
    for name, res in PRESETS.items():
        regridded = with_local_grids(task, res.local)
        assert [d.domain.size for d in regridded.domains] == [(res.local,) * 3, (res.local, res.local, 1), (res.local, 1, 1)]
        for a, b in zip(task.domains, regridded.domains):
            assert np.array_equal(a.domain.matrix, b.domain.matrix) and np.array_equal(a.domain.translation, b.domain.translation)
            assert a.target is b.target
    assert [p.local for p in PRESETS.values()] == sorted(p.local for p in PRESETS.values())


def test_bad_parsing_options(encoded):
    bundle, task, _, _ = encoded
    with pytest.raises(AnatomicaError, match="unknown parsing 'x'"):
        make_parsing(bundle, task, "x")
    with pytest.raises(AnatomicaError, match="L-parsing only"):
        make_parsing(bundle, task, "v", "low")
    with pytest.raises(AnatomicaError, match="unknown resolution 'ultra'"):
        make_parsing(bundle, task, "l-local", "ultra")


class VolumeDecoder:
    """A toy decoder whose latent *is* the logit volume (B, C, X, Y, Z): decode = identity, query = trilinear at
    the points (shared (N, 3) or per sample (B, N, 3)). Records the query shapes."""

    def __init__(self):
        self.queries = []

    def decode(self, z):
        return z

    def query(self, z, points):
        from anatomica.coords import sample_points

        self.queries.append(tuple(points.shape))
        pts = points if points.ndim == 3 else points.expand(z.shape[0], *points.shape)
        return sample_points(z, pts)


TOY = """
name: toy
temperature: 2.0
domains:
  - {name: left_box, labels: [left], placement: {kind: box, around: [left], margin: 0.3}, grid: [12, 12, 12],
     targets: {mass: {scale: 1.5}, centroid: {}, covariance: {}}}
  - {name: both, labels: [left, right], grid: [16, 16, 16], targets: {betti: [2, 0, 0]}}
weights: {geometry: 1.0, topology: 1.0}
"""


def test_coarse_parsing_reads_global_domains_on_the_preset_grid():
    from conftest import AFFINE, LABELS, toy_case

    from anatomica.control.schema import parse_task
    from anatomica.io.nifti import LabelMap

    ref = LabelMap(toy_case(np.random.default_rng(0)), AFFINE, LABELS)
    task = resolve_task(parse_task(TOY), ref, LABELS, (16, 16, 16), AFFINE)
    dec = VolumeDecoder()
    z = torch.randn(2, 3, 16, 16, 16, dtype=torch.float64)
    parsing = make_parsing(dec, task, "l-coarse", Resolution("tiny", local=6, coarse=8))
    box, both = parsing(z)
    assert dec.queries == [(8**3, 3)]  # one query on the coarse global grid, nothing else decoded
    assert box.shape == (2, 6, 6, 6) and both.shape == (2, 8, 8, 8)  # PH runs on 8³, not on the task's 16³
    # the global domain is the coarse grid itself: softmax of the field there, no interpolation
    from anatomica.coords import grid_points, sample_points

    coarse = sample_points(z, grid_points((8, 8, 8), torch.float64)[None].expand(2, -1, -1)).reshape(2, 3, 8, 8, 8)
    torch.testing.assert_close(both, torch.softmax(coarse / 2.0, 1)[:, 1:3].sum(1))
    assert parsing.task.domains[1].domain.size == (8, 8, 8) and parsing.task.domains[0].domain.size == (6, 6, 6)


@pytest.mark.parametrize("mode", ["v", "l-local", "l-coarse"])
def test_a_batch_of_per_sample_tasks_equals_the_samples_one_by_one(mode):
    from conftest import AFFINE, LABELS, toy_case

    from anatomica.control.schema import parse_task
    from anatomica.io.nifti import LabelMap

    rng = np.random.default_rng(4)
    tasks = [resolve_task(parse_task(TOY), LabelMap(toy_case(rng), AFFINE, LABELS), LABELS, (16, 16, 16), AFFINE) for _ in range(3)]
    res = None if mode == "v" else "low"
    z = torch.randn(3, 3, 16, 16, 16, dtype=torch.float64, requires_grad=True)
    dec = VolumeDecoder()
    batched = make_parsing(dec, tasks, mode, res)  # a list of tasks: stacked, sample b scored with tasks[b]
    L, terms = batched.potential(z)
    L.sum().backward()
    if mode == "l-local":
        assert dec.queries == [(3, 12**3 + 12**3, 3)]  # one query, per-sample points
    for b, task in enumerate(tasks):
        zb = z.detach()[b : b + 1].clone().requires_grad_(True)
        Lb, tb = make_parsing(dec, task, mode, res).potential(zb)
        Lb.sum().backward()
        torch.testing.assert_close(L[b : b + 1], Lb)
        for k in tb:
            torch.testing.assert_close(terms[k][b : b + 1], tb[k])
        torch.testing.assert_close(z.grad[b : b + 1], zb.grad)


@pytest.mark.parametrize("points", [12, 16, 32])
def test_regridded_mass_targets_keep_the_physical_mass(points):
    """A mass target set on the task's 24³ grid means the same anatomy on any L grid: a label map that meets it
    on 24³ meets the rescaled target on the regridded domain (the unscaled fraction is off by up to 12 %)."""
    from anatomica.control.moments import GeometryTarget, moments

    g = np.stack(np.meshgrid(*[np.arange(32)] * 3, indexing="ij"), -1)
    array = (((g - [15.0, 16.0, 17.0]) / [7.0, 5.0, 6.0]) ** 2).sum(-1) < 1
    box = ControlDomain((24, 24, 24), np.eye(3), [0.6, 0.6, 0.6], [0.0, 0.0, 0.05], "box")

    def mass(task):
        S = task.parse_label_array(array.astype(np.int64), torch.float64)[0]
        return float(moments(S, task.domains[0].domain.points(torch.float64)).mass[0])

    probe = Task("t", [DomainTask("box", (1,), box)], shape=(32, 32, 32), affine=np.eye(4))
    task = Task("t", [DomainTask("box", (1,), box, GeometryTarget(mass=torch.tensor(mass(probe), dtype=torch.float64)))],
                shape=(32, 32, 32), affine=np.eye(4))
    regridded = with_local_grids(task, points)
    measured, target = mass(regridded), float(regridded.domains[0].target.mass)
    assert abs(measured - target) / target < 0.03
    if points != 24:
        assert abs(measured - float(task.domains[0].target.mass)) / target > 0.03
