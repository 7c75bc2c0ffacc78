"""Teacher and student networks (phasekit.lazy_training.networks)."""

import numpy as np
import pytest

from phasekit.lazy_training.networks import Student, init_student, make_teacher


def test_symmetrised_initialisation_pairs_the_units():
    s0 = init_student(10, 7, 0.5, seed=25)
    np.testing.assert_array_equal(s0.a[0::2], s0.a[1::2])
    np.testing.assert_array_equal(s0.c[0::2], -s0.c[1::2])
    # scale: a_i ~ N(0, tau^2 I / d), so |a_i| ~ tau
    big = init_student(2000, 50, 0.5, seed=1, symmetric=False)
    assert np.mean(np.sum(big.a**2, axis=1)) == pytest.approx(0.25, rel=0.02)
    assert np.std(big.c) == pytest.approx(0.5, rel=0.05)


def test_odd_width_is_fine_without_symmetrisation():
    s0 = init_student(5, 3, 1.0, seed=27, symmetric=False)
    assert s0.m == 5


def test_teacher_units_are_unit_vectors_with_alternating_signs():
    t = make_teacher(6, 4, seed=3)
    np.testing.assert_allclose(np.linalg.norm(t.weights, axis=1), 1.0, rtol=1e-14)
    assert t.signs.tolist() == [1.0, -1.0, 1.0, -1.0]
    x = np.random.default_rng(0).standard_normal((7, 6))
    np.testing.assert_allclose(t.output(x), np.maximum(x @ t.weights.T, 0.0) @ t.signs)


def test_flat_round_trip():
    s = init_student(4, 3, 1.0, seed=2, symmetric=False)
    back = Student.from_flat(s.flat(), 4, 3)
    np.testing.assert_array_equal(back.a, s.a)
    np.testing.assert_array_equal(back.c, s.c)


@pytest.mark.parametrize("call,name", [
    (lambda: init_student(0, 5, 1.0), "m"),
    (lambda: init_student(4, 5, 0.0), "tau"),
    (lambda: init_student(4, 5, -1.0), "tau"),
    (lambda: init_student(4, 0, 1.0), "d"),
    (lambda: init_student(5, 3, 1.0, symmetric=True), "m"),
    (lambda: make_teacher(0, 3), "d"),
    (lambda: make_teacher(5, 0), "m0"),
])
def test_bad_input_raises_value_error_naming_the_parameter(call, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        call()
