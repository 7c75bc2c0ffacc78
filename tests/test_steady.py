"""phasekit.committee.steady: steady states under drift, weight decay and noise; the best eta under drift.

Independent routes: the linear perceptron's steady state, spectrum and best
learning rate in closed form, and long integrations of the flow.
"""

import numpy as np
import pytest
from scipy import optimize

import phasekit as pk


def _linear_steady(eta, v, w, lam, delta, noise):
    """K = M = 1, g(x) = x, fixed weights, T = 1: R*, Q*, eps_g* and the two eigenvalues.

    dR = eta v (w - v R) - eta lam R - delta R,
    dQ = 2 eta v (w R - v Q) - 2 eta lam Q + eta^2 v^2 (v^2 Q - 2 v w R + w^2 + noise^2).
    """
    a = v * v + lam
    R = eta * v * w / (eta * a + delta)
    Q = (2 * v * w * R * (1 - eta * v * v) + eta * v * v * (w * w + noise**2)) / (2 * a - eta * v**4)
    eg = 0.5 * (v * v * Q - 2 * v * w * R + w * w)
    return R, Q, eg, np.array([-(eta * a + delta), -2 * eta * a + eta**2 * v**4])


@pytest.mark.parametrize("eta,v,w,lam,delta,noise", [
    (0.4, 1.2, 0.9, 0.1, 0.05, 0.0), (0.8, 1.0, 1.0, 0.0, 0.2, 0.3), (1.5, 0.5, 2.0, 0.3, 0.0, 0.1),
])
def test_linear_perceptron_steady_state_matches_closed_form(eta, v, w, lam, delta, noise):
    model = pk.Committee(1, 1, "linear", eta=eta, teacher_weights=[w], student_weights=[v], weight_decay=lam,
                         drift=delta, noise=noise)
    R, Q, eg, lams = _linear_steady(eta, v, w, lam, delta, noise)
    fp = pk.steady_state(model)
    assert fp.success and fp.label == "perfect" and fp.kind == "stable"
    assert fp.state.R[0, 0] == pytest.approx(R, rel=1e-12) and fp.state.Q[0, 0] == pytest.approx(Q, rel=1e-12)
    assert fp.eg == pytest.approx(eg, rel=1e-10)
    assert np.allclose(np.sort(fp.eigenvalues.real), np.sort(lams), rtol=1e-8)
    # perfect_solution follows the same branch
    assert np.allclose(pk.perfect_solution(model).vector, fp.vector, rtol=1e-12)


def test_linear_perceptron_best_eta_under_drift_matches_closed_form():
    """eps_g*(eta) from the closed form, minimised by scipy: the same eta as optimal_steady_eta."""
    v = w = 1.0
    lam, delta = 0.05, 0.1
    model = pk.Committee(1, 1, "linear", eta=0.3, weight_decay=lam, drift=delta)
    ref = optimize.minimize_scalar(lambda e: _linear_steady(e, v, w, lam, delta, 0.0)[2], bounds=(0.01, 1.9),
                                   method="bounded", options={"xatol": 1e-12})
    res = pk.optimal_steady_eta(model, (0.01, 1.9), xtol=1e-8)
    assert res.status == "ok" and res.success
    assert float(res) == pytest.approx(ref.x, rel=1e-5)
    assert res.eg == pytest.approx(ref.fun, rel=1e-10)
    assert res.fixed_point.stable and "smallest steady-state eps_g" in res.message
    # without the drift the best eta would be as small as allowed: the error then falls with eta
    none = pk.optimal_steady_eta(model.replace(drift=0.0, weight_decay=0.0, noise=0.3), (0.01, 1.0))
    assert none.status == "not_reached" and float(none) == pytest.approx(0.01)


def test_erf_steady_state_under_drift_is_where_the_flow_ends():
    """K = M = 2 erf: the specialised steady state under drift and weight decay is a long integration's end point."""
    model = pk.Committee(2, 2, "erf", eta=0.8, drift=0.01, weight_decay=0.005, teacher_weights=[1.0, 0.8],
                         student_weights=[1.0, 0.8])
    fp = pk.steady_state(model)
    assert fp.success and fp.kind == "stable" and 0.0 < fp.eg < 0.05
    start = pk.State([[0.9, 0.1], [0.05, 0.85]], [[0.9, 0.1], [0.1, 0.8]])
    ds = pk.integrate(model, start, 3000.0, n_points=3)
    assert np.allclose(pk.state_at(ds).to_vector(), fp.vector, atol=1e-6)
    assert ds.eg.values[-1] == pytest.approx(fp.eg, rel=1e-5)


def test_erf_best_eta_under_drift_is_interior():
    """Too small an eta cannot follow the teacher (the student does not specialise), too large one is noisy."""
    model = pk.Committee(2, 2, "erf", eta=0.5, drift=0.01)
    res = pk.optimal_steady_eta(model, (0.05, 3.0))
    assert res.status == "ok" and 0.5 < float(res) < 2.0
    for eta in (0.5 * float(res), 1.5 * float(res)):
        assert pk.steady_state(model.replace(eta=eta)).eg > res.eg


def test_a_schedule_is_refused_by_fixed_point_analysis():
    model = pk.Committee(2, 2, "erf", eta_schedule={"kind": "power_law", "alpha0": 10.0})
    state = pk.State(np.eye(2), np.eye(2))
    msg = r"model: .* needs an autonomous flow, but the learning rate follows a schedule \(power_law\)"
    for call in (lambda: pk.steady_state(model), lambda: pk.perfect_solution(model),
                 lambda: pk.symmetric_plateau(model), lambda: pk.critical_eta(model),
                 lambda: pk.optimal_eta(model), lambda: pk.jacobian(model, state),
                 lambda: pk.find_fixed_point(model, state), lambda: pk.linearise(model, state),
                 lambda: pk.continuation(model, "perfect", [0.5, 1.0]), lambda: pk.fixed_points(model, 2),
                 lambda: pk.optimal_steady_eta(model)):
        with pytest.raises(ValueError, match=msg):
            call()


def test_bad_arguments():
    model = pk.Committee(2, 2, "erf", drift=0.01)
    with pytest.raises(ValueError, match=r"eta_range: need 0 < low < high, got \(1.0, 0.5\)"):
        pk.optimal_steady_eta(model, (1.0, 0.5))
    with pytest.raises(ValueError, match=r"xtol: relative tolerance must be in \(0, 1\), got 0"):
        pk.optimal_steady_eta(model, xtol=0)
    with pytest.raises(ValueError, match=r"model: expected a phasekit.Committee, got str"):
        pk.steady_state("erf")


def test_steady_state_at_the_specialisation_transition_is_where_the_flow_ends():
    """erf K = M = 2, eta = 0.5, lambda = 0.01, delta = 0.03: Newton from R = Q = T and the homotopy both stop
    short (the specialised and unspecialised branches meet, the Jacobian is nearly singular); the flow's end
    is the steady state, and a long integration from R = Q = T ends at the same point."""
    model = pk.Committee(2, 2, "erf", eta=0.5, second_order=True, weight_decay=0.01, drift=0.03)
    assert not pk.find_fixed_point(model, pk.State(np.eye(2), np.eye(2))).success
    fp = pk.steady_state(model)
    assert fp.success and fp.kind == "stable" and fp.label == "perfect" and "flow" in fp.message
    ds = pk.integrate(model, pk.State(np.eye(2), np.eye(2)), 4000.0, n_points=3)
    assert ds.eg.values[-1] == pytest.approx(fp.eg, rel=2e-4)
    # the drift has removed the specialisation: both students carry the same overlaps
    assert abs(fp.state.R[0, 0] - fp.state.R[0, 1]) < 1e-3


@pytest.mark.parametrize("K,M,params", [
    (1, 2, dict(drift=0.01, weight_decay=0.01)),
    (3, 2, dict(noise=0.3, second_order=True)),
])
def test_steady_state_with_k_not_m_is_where_the_flow_ends(K, M, params):
    """K != M: the steady state's eps_g is that of a long integration from a random start (the over-realisable
    student's spare unit may end on either teacher unit, so only eps_g is compared there)."""
    model = pk.Committee(K, M, "erf", eta=0.5, **params)
    fp = pk.steady_state(model)
    assert fp.success and fp.kind == "stable"
    rng = np.random.default_rng(0)
    ds = pk.integrate(model, pk.State(0.1 * rng.random((K, M)), np.diag(0.3 + 0.1 * rng.random(K))), 2500.0,
                      n_points=3)
    assert ds.eg.values[-1] == pytest.approx(fp.eg, rel=1e-6)
    if K < M:
        assert np.allclose(pk.state_at(ds).to_vector(), fp.vector, atol=1e-6)


@pytest.mark.parametrize("act, kw", [("erf", {"noise": 0.3, "second_order": True}), ("relu", {"drift": 0.01}),
                                     ("erf", {"weight_decay": 0.01, "second_order": True, "noise": 0.1})])
def test_steady_state_of_a_reduced_model_is_the_full_models(act, kw):
    """K = M = 2: the reduced flow's steady state, embedded, is the full flow's (stable, same eps_g)."""
    full = pk.Committee(2, 2, act, eta=0.5, **kw)
    red = full.restrict("site_symmetric")
    mine, theirs = pk.steady_state(red), pk.steady_state(full)
    assert mine.success and theirs.success and mine.n_unstable == 0 == theirs.n_unstable
    np.testing.assert_allclose(red.embed(mine.vector).to_vector(), theirs.vector, rtol=0, atol=1e-10)
    assert float(red.eg_vector(mine.vector)) == pytest.approx(theirs.eg, rel=1e-9)


def test_optimal_steady_eta_of_a_reduced_model_is_the_full_models():
    """erf K = M = 2 under drift 0.01: the best eta and its steady-state eps_g inside the subspace and in full."""
    full = pk.Committee(2, 2, "erf", eta=0.5, drift=0.01)
    mine = pk.optimal_steady_eta(full.restrict("site_symmetric"), (0.05, 2.0))
    theirs = pk.optimal_steady_eta(full, (0.05, 2.0))
    assert mine.status == theirs.status == "ok"
    assert mine.value == pytest.approx(theirs.value, rel=1e-6) and mine.eg == pytest.approx(theirs.eg, rel=1e-9)
