"""The eight packaged tasks load, use the phantoms' label names and resolve on heart phantoms as intended."""

import importlib

import numpy as np
import pytest

from anatomica.control.spec import load_task, packaged_tasks, resolve_task
from anatomica.data.phantoms import heart
from anatomica.metrics.geometry import task_errors

TASKS = {
    "right-ventricle": "heart", "mitral-valve": "heart", "aortic-trunk": "heart", "myocardium-wall": "heart",
    "atrial-separation": "heart", "branch-connectivity": "aorta", "vertebrae-connectivity": "spine", "calcium-count": "coronary",
}
DOMAINS = {"right-ventricle": 1, "mitral-valve": 2, "aortic-trunk": 5, "myocardium-wall": 4, "atrial-separation": 3}  # atria (B0 = 2) + each atrium's volume


def heart_case(seed: int):
    return heart.generate(np.random.default_rng(seed), 32)


def test_the_eight_tasks_are_packaged_and_named_like_their_files():
    assert packaged_tasks() == sorted(TASKS)
    for name in TASKS:
        spec = load_task(name)
        assert spec.name == name and spec.description
        topological = any(d.targets.betti is not None for d in spec.domains)
        geometric = any(t is not None for d in spec.domains for t in (d.targets.mass, d.targets.centroid, d.targets.covariance))
        assert (spec.weights.topology > 0.0) == topological and (spec.weights.geometry > 0.0) == geometric


def expected_betti(system: str, flags: dict) -> tuple[int, int]:
    """(B0, B1) the phantom's ground-truth flags imply for the task's union."""
    if system == "spine":  # discs join the vertebrae; a disc gap splits the column, a broken arch opens a canal
        return 1 + len(flags["disc_gaps"]), 5 - len(flags["broken_arches"])
    if system == "aorta":
        return 1 + len(flags["broken_branches"]), 0
    return flags["calcium_deposits"], 0


@pytest.mark.parametrize("name", [n for n, s in TASKS.items() if s != "heart"])
def test_other_topological_tasks_count_what_their_phantoms_flag(name):
    system = importlib.import_module(f"anatomica.data.phantoms.{TASKS[name]}")
    spec = load_task(name)
    assert {n for d in spec.domains for n in d.labels} <= set(system.SYSTEM.labels)
    hits = 0
    for seed in range(4):
        case, flags = system.generate(np.random.default_rng(seed), 32)
        task = resolve_task(spec, case, case.labels, case.array.shape, case.affine)
        row = task_errors(task, case.array)[task.domains[0].name]
        assert tuple(row["betti"][:2]) == expected_betti(TASKS[name], flags)
        hits += all(row["betti_match"])
    assert hits < 4  # the phantoms vary, so the task is not met by construction


@pytest.mark.parametrize("name", list(DOMAINS))
def test_heart_tasks_resolve_and_a_reference_is_scored_against_its_own_edit(name):
    ref, _ = heart_case(1)
    task = resolve_task(load_task(name), ref, ref.labels, ref.array.shape, ref.affine)
    assert len(task.domains) == DOMAINS[name]
    errors = task_errors(task, ref.array)
    spec_targets = load_task(name).domains[0].targets
    for d, S in zip(task.domains, task.parse_label_array(ref.array)):
        e = errors[d.name]
        if spec_targets.mass is not None:  # the reference itself misses a scaled mass by exactly (scale − 1)·m
            assert e["mass"] == pytest.approx((spec_targets.mass.scale - 1) * float(S.mean()), rel=1e-4)
        if spec_targets.covariance is not None:
            assert e["covariance"] == pytest.approx(0.0, abs=1e-9)
        if spec_targets.centroid is not None and spec_targets.centroid.offset_mm is None:
            assert e["centroid"] == pytest.approx(0.0, abs=1e-9)
    if name == "right-ventricle":  # 5 mm along world x on a 5 mm grid of 32: half a voxel step of 2/31 in [0, 1] units, mean of 3 axes
        assert errors["rv"]["centroid"] == pytest.approx(5.0 / (5.0 * 31) / 3, rel=1e-6)


def test_atrial_separation_counts_components_like_the_phantom_flags():
    spec = load_task("atrial-separation")
    seen = set()
    for seed in range(6):
        case, flags = heart_case(seed)
        task = resolve_task(spec, case, case.labels, case.array.shape, case.affine)
        b0 = task_errors(task, case.array)["atria"]["betti"][0]
        assert b0 == (1 if flags["atria_touching"] else 2)
        seen.add(flags["atria_touching"])
    assert seen == {True, False}
    # global: it needs no reference, and a stray atrial fragment anywhere is a third component
    task = resolve_task(spec, None, case.labels, case.array.shape, case.affine)
    stray = case.array.copy()
    stray[0, 0, 0] = case.labels["heart_atrium_left"]
    assert task_errors(task, stray)["atria"]["betti"][0] == b0 + 1
