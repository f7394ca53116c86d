"""The packaged myocardium-wall task: what guidance reads on its rays and how its targets relate to the reference.

Four line domains of 32 points (≈ 42 mm each on the 5 mm heart phantoms) through a ≈ 10 mm wall; the target is
the wall 25 % longer along each ray, ≈ 2.5 mm. L-local re-grids lines to the preset's points, and 12 points
(preset 'low', 3.8 mm apart) alias a wall that spans two or three of them: the task asks for 'high' (24 points), with capped steps (clip 0.5).
"""

import numpy as np
import pytest
import torch

from anatomica.control.measure import measure_label_map
from anatomica.control.parsing import label_union, slice_domain
from anatomica.control.spec import load_task, resolve_task
from anatomica.data.phantoms import heart
from anatomica.guided.resolution import PRESETS, parsed_size, with_local_grids
from anatomica.guided.run import GuidanceConfig

SCALE = 1.25  # the task's mass scale


def _cases(seeds):
    spec = load_task("myocardium-wall")
    for seed in seeds:
        case, _ = heart.generate(np.random.default_rng(seed), 32)
        yield case, resolve_task(spec, case, case.labels, case.array.shape, case.affine)


def _length_fraction(union: torch.Tensor, domain) -> float:
    """Occupied share of the ray's length from n points: the mass fraction × (n − 1) / n (``_mass_factor``)."""
    n = domain.size[0]
    return float(slice_domain(union, domain).mean()) * (n - 1) / n


def test_myocardium_wall_guides_on_l_local_high_by_default():
    spec = load_task("myocardium-wall")
    cfg = GuidanceConfig(parsing=None).for_task(spec)  # what `anatomica sample` uses without --parsing / --resolution
    assert (cfg.parsing, cfg.resolution_name, cfg.scale, cfg.clip, cfg.fast) == ("l-local", "high", 100000.0, 0.5, False)
    _, task = next(_cases([0]))
    assert len(task.domains) == 4 and all(d.domain.size == (32, 1, 1) for d in task.domains)
    assert {parsed_size(d.domain, cfg.parsing, PRESETS[cfg.resolution_name]) for d in task.domains} == {(24, 1, 1)}


def test_myocardium_wall_target_is_the_references_own_wall_times_the_scale():
    """The reference scored against itself: mass target = 1.25 × its own measured wall, centroid error 0."""
    for case, task in _cases(range(4)):
        for m in measure_label_map(task, case.array, betti="none"):
            assert m.target.mass_fraction == pytest.approx(SCALE * m.mass_fraction, rel=1e-9)
            assert m.target.mass == pytest.approx(SCALE * m.mass, rel=1e-9)  # mm along the ray
            assert m.errors["mass"] == pytest.approx((SCALE - 1) * m.mass_fraction, rel=1e-9)
            assert m.errors["centroid"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("points", [12, 16, 24])
def test_myocardium_wall_regridded_rays_keep_the_physical_wall_length(points):
    """A re-gridded line's mass target is the same length in mm (no regridding bias like the boxes' one)."""
    _, task = next(_cases([1]))
    for d, r in zip(task.domains, with_local_grids(task, points).domains):
        assert r.domain.size == (points, 1, 1)
        assert float(r.target.mass) * points / (points - 1) == pytest.approx(float(d.target.mass) * 32 / 31, rel=1e-12)


def test_myocardium_wall_12_points_alias_the_wall_24_and_32_much_less():
    """The reference's one-hot wall read on n points of each ray against the same ray read on 2001 points: the error
    of 12 points is most of the target's shift (0.25 × ≈ 0.23), 24 and 32 points about half of it."""
    errors = {n: [] for n in (12, 24, 32)}
    shift = []
    for case, task in _cases(range(6)):
        for d in task.domains:
            union = label_union(case.array, d.channels, torch.float64)
            dense = _length_fraction(union, d.domain.with_size((2001, 1, 1)))
            shift.append((SCALE - 1) * dense)
            for n in errors:
                errors[n].append(abs(_length_fraction(union, d.domain.with_size((n, 1, 1))) - dense))
    e = {n: float(np.mean(v)) for n, v in errors.items()}
    assert e[12] > 1.5 * e[24] and e[12] > 1.5 * e[32]
    assert e[12] > 0.5 * float(np.mean(shift)) > e[32]
