"""phasekit.committee.annealing: the C / alpha error of 1/alpha annealing with output noise.

Independent routes: the linear perceptron's coefficient c^2 sigma^2 / (2 (2c - 1)) in closed form, and
long integrations of phasekit's own flow with the schedule (alpha eps_g -> C; below the threshold, the
decay exponent).
"""

import numpy as np
import pytest

import phasekit as pk


def _annealed(K, activation, eta0, c, noise=0.5):
    return pk.Committee(K, K, activation, eta=eta0, noise=noise, second_order=True,
                        eta_schedule={"kind": "power_law", "alpha0": c / eta0, "p": 1.0})


@pytest.mark.parametrize("c", [0.8, 2.0, 4.0])
def test_linear_perceptron_coefficient_matches_closed_form(c):
    """dR = eta (1 - R), dQ = 2 eta (R - Q) + eta^2 (Q - 2R + 1 + sigma^2), eps_g = (Q - 2R + 1) / 2."""
    sigma = 0.5
    res = pk.annealing_asymptote(_annealed(1, "linear", 0.5, c, sigma))
    assert res.status == "ok" and res.exponent == 1.0
    assert float(res) == pytest.approx(c * c * sigma**2 / (2 * (2 * c - 1)), rel=1e-8)
    assert np.allclose(res.A, [[-1.0, 0.0], [2.0, -2.0]], atol=1e-8)
    assert np.allclose(res.b, [0.0, 1.0]) and np.allclose(res.g, [-1.0, 0.5], atol=1e-8)
    # eps_g sees the R mode (rate 1) only at second order: the law needs 2c > 1, not c > 1
    assert res.c_critical == pytest.approx(0.5, rel=1e-8) and res.lambda_min == pytest.approx(1.0)


def test_linear_perceptron_below_threshold_decays_with_the_predicted_exponent():
    """c = 0.4 < 1/2: eps_g ~ alpha^(-2c) = alpha^(-0.8) (the ODE of phasekit, integrated to alpha = 1e8)."""
    model = _annealed(1, "linear", 0.5, 0.4)
    res = pk.annealing_asymptote(model)
    assert res.status == "not_reached" and np.isnan(float(res)) and res.exponent == pytest.approx(0.8)
    al = np.array([0.0, 1e6, 1e8])
    eg = pk.integrate(model, pk.State([[0.5]], [[0.5]]), 1e8, alpha_eval=al).eg.values
    slope = np.log(eg[2] / eg[1]) / np.log(al[2] / al[1])
    assert slope == pytest.approx(-0.8, abs=0.01)


@pytest.mark.parametrize("eta0,c", [(1.0, 50.0), (0.5, 16.0)])
def test_erf_committee_error_times_alpha_tends_to_the_coefficient(eta0, c):
    """erf K = M = 2: alpha eps_g(alpha) -> C from phasekit's flow with the schedule.  c = 16 lies below
    1/lambda_min = 22.6 but above c_critical = 11.3 (the slowest mode is antisymmetric, invisible to eps_g at
    first order): still the 1/alpha law."""
    model = _annealed(2, "erf", eta0, c)
    res = pk.annealing_asymptote(model)
    assert res.status == "ok" and res.lambda_min == pytest.approx(0.044185, abs=1e-6)
    assert res.c_critical == pytest.approx(11.316, abs=1e-3)
    assert (c * res.lambda_min < 1) == (c == 16.0)
    al = np.array([0.0, 3e4, 3e5])
    start = pk.State(0.95 * np.eye(2) + 0.02, 0.95 * np.eye(2) + 0.02)
    eg = pk.integrate(model, start, 3e5, alpha_eval=al).eg.values
    ratio = eg[1:] * (al[1:] + c / eta0) / float(res)
    assert abs(ratio[1] - 1) < 0.01 and abs(ratio[1] - 1) < abs(ratio[0] - 1)


def test_the_coefficient_depends_on_eta0_and_alpha0_only_through_c():
    a = pk.annealing_asymptote(_annealed(2, "erf", 1.0, 50.0))
    b = pk.annealing_asymptote(_annealed(2, "erf", 0.5, 50.0))
    assert float(a) == pytest.approx(float(b), rel=1e-9) and a.c == b.c == 50.0


def test_bad_models_are_refused():
    with pytest.raises(ValueError, match=r"model: needs eta_schedule power_law with p = 1"):
        pk.annealing_asymptote(pk.Committee(1, 1, "linear", noise=0.5))
    with pytest.raises(ValueError, match=r"model: needs eta_schedule power_law with p = 1"):
        pk.annealing_asymptote(pk.Committee(1, 1, "linear", noise=0.5,
                                            eta_schedule={"kind": "power_law", "alpha0": 10.0, "p": 0.5}))
    with pytest.raises(ValueError, match=r"model: needs output noise > 0"):
        pk.annealing_asymptote(_annealed(1, "linear", 0.5, 2.0, noise=0.0))
    with pytest.raises(ValueError, match=r"model: the perfect solution needs K == M, got K=2, M=1"):
        pk.annealing_asymptote(pk.Committee(2, 1, noise=0.5, eta_schedule={"kind": "power_law", "alpha0": 10.0}))
    with pytest.raises(ValueError, match=r"model: drift, weight decay"):
        pk.annealing_asymptote(pk.Committee(1, 1, "linear", noise=0.5, drift=0.1,
                                            eta_schedule={"kind": "power_law", "alpha0": 10.0}))
    with pytest.raises(ValueError, match=r"model: expected a phasekit.Committee, got str"):
        pk.annealing_asymptote("erf")


def test_the_coefficient_of_a_reduced_model_is_the_full_models():
    """erf K = M = 2, c = 50: inside the site-symmetric subspace the same C (the noise drives the perfect solution
    along the subspace), and the same slowest rate and threshold (those modes lie in the subspace here)."""
    model = _annealed(2, "erf", 1.0, 50.0)
    full, red = pk.annealing_asymptote(model), pk.annealing_asymptote(model.restrict("site_symmetric"))
    assert red.status == full.status == "ok" and red.A.shape == (4, 4)
    assert float(red) == pytest.approx(float(full), rel=1e-6)
    assert red.lambda_min == pytest.approx(full.lambda_min, rel=1e-8)
    assert red.c_critical == pytest.approx(full.c_critical, rel=1e-8)
