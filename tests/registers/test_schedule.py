import pytest

from anatomica.errors import AnatomicaError
from anatomica.registers.schedule import DualObjectiveSchedule


def test_two_lambda_then_ramp_then_lambda():
    s = DualObjectiveSchedule(lam=0.5, warm_steps=10)
    assert [s(0), s(9)] == [1.0, 1.0]  # 2λ for the first W steps
    assert s(10) == pytest.approx(1.0)
    assert s(15) == pytest.approx(0.75)  # halfway down the ramp
    assert s(20) == pytest.approx(0.5) and s(10_000) == pytest.approx(0.5)
    values = [s(i) for i in range(30)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # never increases


def test_decay_to_zero_ablation_and_constant():
    s = DualObjectiveSchedule(lam=1.0, warm_steps=4, start=2.0, end=0.0)
    assert s(3) == 2.0 and s(6) == pytest.approx(1.0) and s(8) == 0.0
    c = DualObjectiveSchedule(lam=0.3, warm_steps=5, start=1.0, end=1.0)
    assert {c(i) for i in range(20)} == {0.3}
    assert DualObjectiveSchedule(warm_steps=0)(0) == 1.0


def test_bad_schedule():
    with pytest.raises(AnatomicaError):
        DualObjectiveSchedule(lam=-1)
    with pytest.raises(AnatomicaError):
        DualObjectiveSchedule(warm_steps=-2)
