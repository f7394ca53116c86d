import numpy as np
import pytest
import torch
from helpers import ball, oblique_affine, solid_torus

from anatomica.control.domain import ControlDomain
from anatomica.control.spec import load_task, parse_task, resolve_task
from anatomica.coords import normalized_to_voxel, normalized_to_world
from anatomica.errors import AnatomicaError
from anatomica.io.nifti import LabelMap
from anatomica.metrics.label_stats import world_moments

SHAPE = (26, 30, 34)
LABELS = {"heart_ventricle_right": 1, "heart_atrium_left": 2, "heart_ventricle_left": 3, "aorta": 4}
AFFINE = oblique_affine()

ISSUE_EXAMPLE = """
name: right-ventricle
domains:
  - name: rv
    labels: [heart_ventricle_right]        # U[u]
    placement: {kind: box, around: [heart_ventricle_right], margin: 0.15}
    grid: [24, 24, 24]
    targets: {mass: {scale: 1.3}, centroid: {offset_mm: [5, 0, 0]}, covariance: {}}
weights: {geometry: 1.0, topology: 0.0, mass: 1.0, centroid: 1.0, covariance: 1.0}
temperature: 2.0
"""


def reference() -> LabelMap:
    a = np.zeros(SHAPE, np.int32)
    a[ball(SHAPE, (8, 10, 12), 5)] = 1
    a[ball(SHAPE, (17, 20, 22), 4)] = 2
    a[ball(SHAPE, (17, 20, 14), 6) & (a == 0)] = 3  # cut flat by the left atrium: they share a disc
    a[solid_torus(SHAPE, (13, 15, 17), 10, 2) & (a == 0)] = 4
    return LabelMap(a, AFFINE, LABELS)


def resolve(text: str, ref: LabelMap | None = None, shape=SHAPE, affine=AFFINE):
    return resolve_task(parse_task(text), ref, LABELS, shape, affine)


def test_issue_example_resolves_relative_targets_from_the_reference():
    ref = reference()
    task = resolve(ISSUE_EXAMPLE, ref)
    assert task.name == "right-ventricle" and task.temperature == 2.0 and task.weights.topology == 0.0
    (d,) = task.domains
    assert d.channels == (1,) and d.domain.size == (24, 24, 24)
    S_ref = task.parse_label_array(ref.array, torch.float64)
    from anatomica.control.moments import moments

    m = moments(S_ref[0], d.domain.points(torch.float64))
    assert torch.isclose(d.target.mass, 1.3 * m.mass[0])
    target_mm = normalized_to_world(d.target.centroid.double(), AFFINE, SHAPE).numpy()
    ref_mm = normalized_to_world(m.centroid[0], AFFINE, SHAPE).numpy()
    assert np.allclose(target_mm - ref_mm, [5, 0, 0], atol=1e-6)
    assert torch.allclose(d.target.covariance.double(), m.normalized_covariance[0])
    # the reference itself: only the mass (×1.3) and the centroid (5 mm) are off
    L, terms = task.potential(S_ref)
    assert terms["rv/covariance"].item() < 1e-12
    assert terms["rv/mass"].item() > 0 and terms["rv/centroid"].item() > 0


def test_absolute_targets_in_world_units_are_met_by_a_matching_map():
    ref = reference()
    mask = ref.array == 1
    vol_ml = mask.sum() * abs(np.linalg.det(AFFINE[:3, :3])) / 1000
    c, cov = world_moments(mask, AFFINE)
    text = f"""
name: absolute
domains:
  - name: rv
    labels: [heart_ventricle_right]
    grid: {list(SHAPE)}
    targets:
      mass: {{value: {vol_ml}}}
      centroid: {{value_mm: {c.tolist()}}}
      covariance: {{value_mm2: {cov.tolist()}}}
      betti: [1, 0, 0]
"""
    task = resolve(text)  # global placement, absolute targets: no reference needed
    L, terms = task.potential(task.parse_label_array(ref.array, torch.float64))
    for k in ("rv/mass", "rv/centroid", "rv/covariance"):
        assert terms[k].item() < 1e-12, k
    assert terms["rv/topology"].item() == pytest.approx(-1.0)  # one preserved component, 1 → 0


def test_contact_box_planes_and_lines_resolve():
    text = """
name: mixed
domains:
  - name: valve_la
    labels: [heart_atrium_left]
    placement: {kind: box, around: [heart_atrium_left, heart_ventricle_left], contact: true, margin: 0.3}
    grid: [8, 8, 8]
    targets: {mass: {scale: 1.0}}
  - name: trunk
    labels: [aorta]
    placement: {kind: planes, fractions: [0.2, 0.5, 0.8]}
    grid: [10, 10, 1]
    targets: {mass: {scale: 1.0}, betti: [1, 0, 0]}
  - name: wall
    labels: [heart_ventricle_left]
    placement: {kind: lines, center: [heart_ventricle_left], count: 4, normal: [0, 0, 1]}
    grid: [12, 1, 1]
    targets: {mass: {scale: 1.0}, betti: [1, 0, 0]}
"""
    ref = reference()
    task = resolve(text, ref)
    assert [d.name for d in task.domains] == ["valve_la", "trunk_0", "trunk_1", "trunk_2", "wall_0", "wall_1", "wall_2", "wall_3"]
    assert [d.domain.dim for d in task.domains] == [3, 2, 2, 2, 1, 1, 1, 1]
    L, terms = task.potential(task.parse_label_array(ref.array, torch.float64))
    for d in task.domains:  # the reference meets its own masses
        assert terms[f"{d.name}/mass"].item() < 1e-12
    # the contact box sits at the atrium–ventricle interface (a disc near z = 19), flat along z
    box = task.domains[0].domain
    centre = normalized_to_voxel(torch.from_numpy(box.translation), SHAPE).numpy()
    assert np.allclose(centre, [17, 20, 19], atol=1.0)
    half_vox = box.scale * (np.array(SHAPE) - 1) / 2
    assert half_vox[2] < 0.7 * min(half_vox[0], half_vox[1])


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: x\ndomains:\n  - name: a\n    labels: [heart_ventricel_right]\n", "unknown label 'heart_ventricel_right'"),
        ("name: x\ndomains:\n  - name: a\n    labels: [aorta]\n    targets: {mass: {scale: 0}}\n", r"mass\.scale: Input should be greater than 0"),
        ("name: x\ndomains:\n  - name: a\n    labels: [aorta]\n    targets: {mass: {scale: -2}}\n", r"mass\.scale: Input should be greater than 0 \(got -2\)"),
        (
            "name: x\ndomains:\n  - name: a\n    labels: [aorta]\n    placement: {kind: explicit, scale: [0.5, 0, 0.5]}\n",
            r"placement\.scale: scale must be > 0",
        ),
        (
            "name: x\ndomains:\n  - name: a\n    labels: [aorta]\n    placement: {kind: explicit, scale: [1, 1, 1], rotation: [[1, 0, 0], [0, 1, 0.5], [0, 0, 1]]}\n",
            r"placement\.rotation: rotation is not orthonormal",
        ),
        (
            "name: x\ndomains:\n  - name: a\n    labels: [aorta]\n    placement: {kind: explicit, scale: [0.2, 0.2, 0.2], translation: [2.5, 0, 0]}\n",
            "lies entirely outside the volume",
        ),
        ("name: x\ndomains:\n  - name: a\n    labels: [aorta]\n    targets: {betti: [1, -1, 0]}\n", r"betti\[1\]: Input should be greater than or equal to 0"),
        ("name: x\ndomains:\n  - name: a\n    labels: [aorta]\n    targets: {mass: {scale: 1.2}}\n", "relative target .* needs a reference"),
        ("name: x\ndomains:\n  - name: a\n    labels: [aorta]\n    targets: {centroid: {offset_mm: [1, 2, 3]}}\n", "relative target .* needs a reference"),
        ("name: x\ndomains:\n  - name: a\n    labels: [aorta]\n    placement: {kind: box}\n", "placement 'box' is computed from a reference"),
        ("name: x\ndomains: [{name: a, labels: [aorta]\n", "malformed YAML"),
        ("name: x\ndomains:\n  - name: a\n   labels: [aorta]\n", "malformed YAML"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("name: x\ndomains:\n  - name: a\n    labels: [aorta]\n    grid: [8, 8, 1]\n    targets: {betti: [1, 0, 1]}\n", r"betti\[2\] = 1 is impossible on a 2D domain"),
        ("name: x\ndomains:\n  - name: a\n    labels: [aorta]\n  - name: a\n    labels: [aorta]\n", "domain names must be unique"),
        ("name: x\ndomains:\n  - name: a\n    labels: [aorta]\n    colour: red\n", r"domains\[0\]\.colour: Extra inputs are not permitted"),
        ("name: x\ndomains:\n  - name: a\n    labels: [aorta]\n    targets: {mass: {scale: 1, value: 3}}\n", "exactly one of 'scale', 'value' and 'keep: true'"),
        ("name: x\ndomains:\n  - name: a\n    labels: [aorta]\n    placement: {kind: cube}\n", "placement"),
        ("name: x\ndomains: []\n", "domains: List should have at least 1 item"),
        ("name: x\ntemperature: 0\ndomains:\n  - name: a\n    labels: [aorta]\n", "temperature: Input should be greater than 0"),
    ],
)
def test_bad_specs_give_one_precise_line(text, message):
    with pytest.raises(AnatomicaError, match=message) as info:
        resolve(text)
    assert "\n" not in str(info.value)


def test_reference_problems():
    ref = reference()
    shifted = LabelMap(ref.array, AFFINE @ np.diag([1.0, 1.0, 1.0, 1.0]) + np.array([[0, 0, 0, 40.0]] + [[0, 0, 0, 0]] * 3), LABELS)
    with pytest.raises(AnatomicaError, match="different field of view"):
        resolve(ISSUE_EXAMPLE, shifted)
    empty = LabelMap(np.where(ref.array == 1, 0, ref.array), AFFINE, LABELS)
    with pytest.raises(AnatomicaError, match="has no voxel of it"):
        resolve(ISSUE_EXAMPLE, empty)
    apart = "name: x\ndomains:\n  - name: a\n    labels: [aorta]\n    placement: {kind: box, around: [heart_ventricle_right, heart_atrium_left], contact: true}\n"
    with pytest.raises(AnatomicaError, match="do not touch"):
        resolve(apart, ref)
    # the same field of view at half the resolution is fine: domains live in normalized coordinates
    coarse = LabelMap(ref.array[::2, ::2, ::2], AFFINE @ np.diag([2.0, 2.0, 2.0, 1.0]), LABELS)
    task = resolve(ISSUE_EXAMPLE, coarse)
    assert task.domains[0].target.mass is not None


def test_load_task_from_file_and_missing_files(tmp_path):
    p = tmp_path / "rv.yaml"
    p.write_text(ISSUE_EXAMPLE)
    assert load_task(p).domains[0].name == "rv"
    with pytest.raises(AnatomicaError, match="no such task file"):
        load_task(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(AnatomicaError, match=r"bad\.yaml: malformed YAML \(line"):
        load_task(bad)


def test_every_yaml_example_in_the_docs_is_a_valid_task():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "tasks.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    tasks = [b for b in blocks if b.lstrip().startswith("name:") and "domains:" in b]
    assert len(tasks) >= 9  # the schema example and the paper's eight tasks
    for block in tasks:
        parse_task(block, "docs/tasks.md")
    (domain,) = [b for b in blocks if "size:" in b and "rotation:" in b]
    assert ControlDomain.from_yaml(domain).size == (24, 24, 24)


@pytest.mark.parametrize("text, message", [
    ("name: x\ndomains:\n  - {name: a, labels: [aorta], targets: {mass: {value: .inf}}}\n", r"mass\.value: Input should be a finite number"),
    ("name: x\ndomains:\n  - {name: a, labels: [aorta], targets: {centroid: {value_mm: [.nan, 0, 0]}}}\n", r"value_mm\[0\]: Input should be a finite number"),
    ("name: x\ngeometry_temperature: .nan\ndomains:\n  - {name: a, labels: [aorta]}\n", "geometry_temperature: Input should be a finite number"),
    ("name: x\ndomains:\n  - {name: a, labels: [aorta], grid: [100000, 100000, 100000]}\n", r"grid\[0\]: Input should be less than or equal to 1024"),
    ("name: x\ndomains:\n  - {name: a, labels: [aorta], grid: [1000, 1000, 1000]}\n", r"grid: a domain grid holds at most 16777216 points"),
])
def test_non_finite_numbers_and_huge_grids_are_one_line_errors(text, message):
    with pytest.raises(AnatomicaError, match=message) as info:
        parse_task(text)
    assert "\n" not in str(info.value)


def test_geometry_temperature_reaches_the_task():
    task = resolve("name: x\ntemperature: 3.0\ngeometry_temperature: 1.5\ndomains:\n  - {name: a, labels: [aorta], targets: {betti: [1, 0, 0]}}\n")
    assert task.temperature == 3.0 and task.geometry_temperature == 1.5


def test_a_task_says_whether_it_needs_a_reference():
    assert not load_task("atrial-separation").needs_reference  # global domains, absolute targets
    assert load_task("right-ventricle").needs_reference  # a box placed on the reference, relative targets
    assert load_task("branch-connectivity").needs_reference  # a box, absolute Betti target
    explicit = parse_task("name: x\ndomains:\n  - name: a\n    labels: [aorta]\n    placement: {kind: explicit, scale: [0.5, 0.5, 0.5]}\n")
    assert not explicit.needs_reference
