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


@pytest.mark.parametrize("act, K, second_order, noise", [("erf", 3, True, 0.3), ("relu", 2, True, 0.2),
                                                       ("erf", 3, False, 0.0)])
def test_asymptotic_eg_of_a_reduced_model_equals_the_full_models(act, K, second_order, noise):
    """K = M from the site-symmetric start R = 0.01 I, Q = 0.5 I: the reduced flow ends where the full one
    does (its noise floor with the eta^2 term and noise, the perfect solution without)."""
    full = pk.Committee(K, K, act, eta=0.5, second_order=second_order, noise=noise)
    red = full.restrict("site_symmetric")
    z0 = np.array([1e-2, 0.0, 0.5, 0.0])
    mine, theirs = asymptotic_eg(red, z0), asymptotic_eg(full, red.embed(z0))
    assert mine.status == theirs.status == "converged"
    assert mine.eg == pytest.approx(theirs.eg, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(mine.state, red.state_vector(theirs.state), rtol=0, atol=1e-9)
    assert mine.fixed_point.extra["subspace"] == "site_symmetric" and mine.fixed_point.n_unstable == 0
    if noise:
        assert mine.eg > 1e-3  # a noise floor, not the perfect solution


def test_asymptotic_eg_of_a_wide_reduced_model():
    """K = M = 1000 (erf, second order, noise 0.1, eta = 1 / K): the reduced flow's end point, at a cost
    independent of K, is a stable fixed point near the perfect solution (R = Q = 1, S = C = 0) whose eps_g
    (summed over the units) hardly depends on K at fixed eta K: the K = 100 value to 1e-3."""
    def floor(K):
        red = pk.Committee(K, K, "erf", eta=1.0 / K, second_order=True, noise=0.1).restrict("site_symmetric")
        # the reduced flow is stiff at large K (its rates span K^2): LSODA
        return red, asymptotic_eg(red, [0.9, 0.0, 0.9, 0.0], solver={"method": "LSODA"})

    red, res = floor(1000)
    assert res.status == "converged", res.message
    assert np.abs(red.rhs_vector(res.state)).max() < 1e-12 and res.fixed_point.n_unstable == 0
    np.testing.assert_allclose(res.state, [1.0, 0.0, 1.0, 0.0], atol=1e-3)
    assert res.eg == pytest.approx(float(red.eg_vector(res.state)), rel=1e-12)
    assert res.eg == pytest.approx(floor(100)[1].eg, rel=1e-3) and res.eg > 1e-3
