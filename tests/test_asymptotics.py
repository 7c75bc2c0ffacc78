"""phasekit.committee.asymptotics: the asymptotic error (AsymptoticError).

References: the linear perceptron with output noise in closed form, and the
published ReLU K = M = 2 landmarks (perfect solution, plateau).
"""

import math

import numpy as np
import pytest

import phasekit as pk
from helpers_committee import linear_perceptron_eg
from phasekit.committee.asymptotics import asymptotic_eg
from phasekit.committee.starts import initial_state


def test_asymptotic_eg_linear_with_noise_closed_form():
    """Linear perceptron with output noise: eg* = eta sigma^2 / (2 (2 - eta)); R* = 1, Q* = 1 + 2 eg*."""
    eta, sigma = 0.5, 0.3
    model = pk.Committee(1, 1, "linear", eta=eta, second_order=True, noise=sigma)
    res = asymptotic_eg(model, pk.State([[0.0]], [[0.25]]))
    star = eta * sigma**2 / (2 * (2 - eta))
    assert res.status == "converged" and res.fixed_point.stable and res.success
    assert res.eg == pytest.approx(star, rel=1e-9) and float(res) == res.eg
    assert res.state.R[0, 0] == pytest.approx(1.0, abs=1e-10)
    assert res.state.Q[0, 0] == pytest.approx(1 + 2 * star, rel=1e-9)


def test_asymptotic_eg_statuses():
    model = pk.Committee(1, 1, "linear", eta=2.5, second_order=True)
    res = asymptotic_eg(model, pk.State([[0.0]], [[0.25]]))
    assert res.status == "diverged" and math.isnan(res.eg) and "diverged" in res.message
    res = asymptotic_eg(model.replace(eta=0.5), pk.State([[0.0]], [[0.25]]), alpha_max=1.0)
    assert res.status == "not_reached" and res.fixed_point is None
    assert res.eg == pytest.approx(linear_perceptron_eg(0.625, 0.5, 1.0), rel=1e-7)
    with pytest.raises(ValueError, match="speed_tol: must be finite and > 0"):
        asymptotic_eg(model, pk.State([[0.0]], [[0.25]]), speed_tol=0.0)
    with pytest.raises(ValueError, match="solver: unknown option"):
        asymptotic_eg(model, pk.State([[0.0]], [[0.25]]), solver={"tol": 1e-3})


def test_asymptotic_eg_relu_perfect_solution_and_plateau():
    """ReLU K = M = 2 first order: learns perfectly from X = 1e-3; an exactly symmetric start stays on the plateau."""
    model = pk.Committee(2, 2, "relu", eta=0.1, second_order=False)
    res = asymptotic_eg(model, initial_state(model, 1e-3))
    assert res.status == "converged" and res.fixed_point.stable
    assert res.eg < 1e-12
    assert np.allclose(np.sort(np.abs(res.state.R.ravel())), [0, 0, 1, 1], atol=1e-8)
    res = asymptotic_eg(model, initial_state(model, 0.0))
    assert res.status == "converged" and not res.fixed_point.stable
    assert res.eg == pytest.approx(0.073613, abs=2e-6)


def test_asymptotic_error_with_a_trained_second_layer_reaches_v_equal_w():
    """erf K = M = 2, both layers trained, unequal teacher weights: the flow ends at R = Q = I, v = w, eps_g = 0."""
    w = [1.2, 0.8]
    model = pk.Committee(2, 2, "erf", eta=0.5, second_order=False, teacher_weights=w, train_second_layer=True)
    start = pk.State([[0.2, 0.01], [0.02, 0.15]], [[0.3, 0.0], [0.0, 0.25]], [1.0, 1.0])
    res = asymptotic_eg(model, start)
    assert res.success and res.eg < 1e-12
    assert np.allclose(res.state.v, w, atol=1e-8) and np.allclose(res.state.R, np.eye(2), atol=1e-8)
