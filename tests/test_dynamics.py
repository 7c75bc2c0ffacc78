"""Trajectories: exact solutions, published landmarks and run statuses."""

import json

import numpy as np
import pytest

import phasekit as pk


def linear_exact(state0, T, eta, alpha, second_order):
    """Closed-form solution of the linear committee machine.

    All student vectors receive the same update ``-(eta/N)(D . xi) xi`` with
    ``D = sum_i J_i - sum_n B_n``, so ``r_n = D . B_n``, ``q_i = D . J_i`` and
    ``D . D`` obey scalar linear ODEs solved here by hand.
    """
    R0, Q0 = state0.R, state0.Q
    K = R0.shape[0]
    so = 1.0 if second_order else 0.0
    r0 = R0.sum(0) - T.sum(0)                # D . B_n
    q0 = Q0.sum(1) - R0.sum(1)                # D . J_i
    dd0 = Q0.sum() - 2 * R0.sum() + T.sum()  # D . D
    a = K * eta
    lam = so * K**2 * eta**2 - 2 * a          # growth rate of D . D
    c = so * K * eta**2 - eta                 # source of q_i from D . D
    E = np.exp(-a * alpha)
    R = R0 - np.outer(np.ones(K), r0) * (1 - E) / K
    int_dd = dd0 * np.expm1(lam * alpha) / lam
    int_q = q0 * (1 - E) / a + c * dd0 / (lam + a) * (np.expm1(lam * alpha) / lam - (1 - E) / a)
    Q = Q0 - eta * (int_q[:, None] + int_q[None, :]) + so * eta**2 * int_dd
    return R, Q


@pytest.mark.parametrize("second_order", [False, True])
def test_linear_activation_matches_exact_solution(second_order):
    rng = np.random.default_rng(0)
    K, M, eta = 2, 3, 0.3
    T = np.array([[1.0, 0.2, 0.0], [0.2, 0.8, 0.1], [0.0, 0.1, 1.2]])
    model = pk.Committee(K, M, "linear", eta=eta, second_order=second_order, T=T)
    R0 = 0.1 * rng.normal(size=(K, M))
    Q0 = np.array([[0.5, 0.1], [0.1, 0.4]])
    s0 = pk.State(R0, Q0)
    ds = pk.integrate(model, s0, 20.0, n_points=11, solver={"rtol": 1e-11, "atol": 1e-13})
    assert ds.attrs["status"] == "ok"
    for j, alpha in enumerate(ds.alpha.values):
        R, Q = linear_exact(s0, T, eta, alpha, second_order)
        assert np.allclose(ds.R.values[j], R, rtol=0, atol=1e-9)
        assert np.allclose(ds.Q.values[j], Q, rtol=0, atol=1e-9)


def test_erf_plateau_matches_saad_solla():
    """Erf, K = M = 3, first order, nearly symmetric start: plateau eps_g to 4 digits.

    The students coincide at this plateau (Q = C), where the approach is
    algebraic rather than exponential, so the start is very nearly symmetric
    (X = 1e-14) to give the run time to get close before it escapes.
    """
    K = 3
    model = pk.Committee(K, K, "erf", eta=1.0, second_order=False)
    R0 = 1e-14 * np.random.default_rng(1).uniform(size=(K, K))
    ds = pk.integrate(model, pk.State(R0, 0.2 * np.eye(K)), 2000.0, n_points=2001)
    eg = ds.eg.values
    alpha = ds.alpha.values
    slope = np.abs(np.gradient(eg, alpha))
    inside = (alpha > 20) & (eg > 0.5 * eg.min() + 0.5 * eg[alpha > 20].max())
    j = np.argmin(np.where(inside, slope, np.inf))
    eg_ss = (K / np.pi) * (np.pi / 6 - K * np.arcsin(1 / (2 * K)))
    assert f"{eg[j]:.4g}" == f"{eg_ss:.4g}" == "0.0203"
    assert abs(eg[j] - eg_ss) < 5e-4 * eg_ss
    assert eg[-1] < 1e-6  # the run escapes and converges


def test_dataset_layout_and_provenance():
    model = pk.Committee(2, 3, "erf", eta=0.2)
    ds = pk.integrate(model, pk.State(np.zeros((2, 3)), np.eye(2) * 0.3), 5.0, n_points=6)
    assert ds.R.dims == ("alpha", "i", "n") and ds.Q.dims == ("alpha", "i", "k")
    assert ds.eg.dims == ("alpha",)
    assert ds.alpha.values.tolist() == [0, 1, 2, 3, 4, 5]
    assert np.allclose(ds.eta_alpha, 0.2 * ds.alpha)
    for var in ("R", "Q", "eg", "alpha"):
        assert ds[var].attrs["long_name"] and "units" in ds[var].attrs
    params = json.loads(ds.attrs["parameters"])
    assert params["model"]["K"] == 2 and params["solver"]["rtol"] == 1e-9
    # the solver settings are stored, so that re-integrations use the same ones
    assert (ds.attrs["method"], ds.attrs["rtol"], ds.attrs["atol"], ds.attrs["max_norm"]) == ("DOP853", 1e-9, 1e-14,
                                                                                            1e6)
    assert ds.attrs["phasekit_version"] == pk.__version__
    assert pk.model_from_dataset(ds).parameters() == model.parameters()
    assert np.allclose(pk.state_at(ds, 0).Q, 0.3 * np.eye(2))


def test_stop_eg_reports_converged():
    model = pk.Committee(1, 1, "erf", eta=0.5)
    ds = pk.integrate(model, pk.State([[0.0]], [[0.25]]), 500.0, stop_eg=1e-4)
    assert ds.attrs["status"] == "converged"
    assert ds.eg.values[-1] == pytest.approx(1e-4, rel=1e-6)
    assert ds.alpha.values[-1] == ds.attrs["alpha_end"] < 500


def test_integrate_argument_errors():
    model = pk.Committee(1, 1, "erf")
    s = pk.State([[0.0]], [[0.25]])
    with pytest.raises(ValueError, match="alpha_max: must be finite and > 0"):
        pk.integrate(model, s, -1)
    with pytest.raises(ValueError, match="n_points: need at least 2 samples"):
        pk.integrate(model, s, 1, n_points=1)
    with pytest.raises(ValueError, match="stop_eg: threshold must be > 0"):
        pk.integrate(model, s, 1, stop_eg=0)
    with pytest.raises(ValueError, match="model: expected a phasekit.Committee"):
        pk.integrate("erf", s, 1)


# --- ReLU landmarks (docs/reference-values.md) ------------------------------------------------------

PLATEAU_RELU2 = np.array([0.52458] * 4 + [0.71776, 0.38298, 0.71776])  # R_in, Q11, Q12, Q22


def _vectors(ds):
    n = ds.sizes["alpha"]
    return np.concatenate([ds.R.values.reshape(n, -1), ds.Q.values[:, [0, 0, 1], [0, 1, 1]]], axis=1)


def test_relu_k2_first_order_from_model_start():
    """Reference start: eps_g sits at the plateau value, then the student specialises."""
    model = pk.Committee(2, 2, "relu", eta=0.1, second_order=False)
    s0 = pk.State(1e-3 * np.eye(2), np.diag([0.2, 0.3]))
    ds = pk.integrate(model, s0, 1000.0, n_points=2001)
    eg, ea = ds.eg.values, ds.eta_alpha.values
    window = (ea >= 5) & (ea <= 15)  # "roughly 5 to 20": by 20 the escape has begun
    assert np.all(np.abs(eg[window] - 0.073613) < 1e-3)
    assert np.abs(eg - 0.073613).min() < 2e-5
    assert eg[-1] < 1e-6 and np.all(eg[ea >= 50] < 1e-2)


def test_relu_k2_first_order_passes_plateau_values():
    """From a start with Q11 = Q22 the trajectory passes within 1e-3 of the plateau state.

    (the reference start has Q11 != Q22, a deviation along the plateau's slow mode
    -0.0049 eta: there the closest approach is ~0.016, see the closing notes.)
    """
    model = pk.Committee(2, 2, "relu", eta=1.0, second_order=False)
    ds = pk.integrate(model, pk.State(1e-6 * np.eye(2), 0.25 * np.eye(2)), 150.0, n_points=3001)
    d = np.abs(_vectors(ds) - PLATEAU_RELU2).max(axis=1)
    assert d.min() < 1e-3
    assert ds.eg.values[-1] < 1e-6


def test_relu_perceptron_second_order():
    s0 = pk.State([[0.0]], [[0.25]])
    for eta, alpha_max in [(0.1, 300.0), (1.0, 100.0)]:
        ds = pk.integrate(pk.Committee(1, 1, "relu", eta=eta), s0, alpha_max, n_points=3)
        assert ds.attrs["status"] == "ok" and ds.eg.values[-1] < 1e-8, eta
    # eta = 1.9: the slow mode decays at eta - eta^2/2 = 0.095, which sets the pace
    ds = pk.integrate(pk.Committee(1, 1, "relu", eta=1.9), s0, 200.0, n_points=201)
    eg = ds.eg.values
    rate = -np.log(eg[100] / eg[80]) / 20.0
    assert rate == pytest.approx(1.9 - 1.9**2 / 2, rel=0.02)
    assert eg[-1] < 1e-8
    # above eta_c = 2 the perfect solution repels: no convergence
    ds = pk.integrate(pk.Committee(1, 1, "relu", eta=2.1), s0, 300.0, n_points=31)
    last = pk.state_at(ds)
    assert ds.eg.values[-1] > 1e-3
    assert abs(last.Q[0, 0] - 1) > 0.1 or ds.attrs["status"] == "diverged"


def test_diverging_run_is_reported():
    """Far above the stable range the ODE blows up: status 'diverged', no samples after it."""
    model = pk.Committee(2, 2, "relu", eta=4.0)
    ds = pk.integrate(model, pk.State(0.1 * np.eye(2), 0.5 * np.eye(2)), 200.0, n_points=201)
    assert ds.attrs["status"] == "diverged", ds.attrs["message"]
    assert ds.alpha.values[-1] == ds.attrs["alpha_end"] < 200
    assert np.all(np.isfinite(ds.eg.values))


def test_unknown_solver_method_is_one_line_listing_the_methods():
    model = pk.Committee(1, 1, "erf")
    with pytest.raises(ValueError) as info:
        pk.integrate(model, pk.State([[0.0]], [[0.25]]), 1.0, solver={"method": "Euler"})
    msg = str(info.value)
    assert msg.startswith("method: must be one of DOP853, RK45, RK23, Radau, BDF, LSODA") and "'Euler'" in msg
    assert "\n" not in msg and "class" not in msg.split("(")[0]
    ds = pk.integrate(model, pk.State([[0.0]], [[0.25]]), 1.0, solver={"method": "LSODA"}, n_points=3)
    assert ds.attrs["status"] == "ok" and ds.attrs["method"] == "LSODA"


# --- solver options ------------------------------------------------------------------------


def test_solver_options_reach_the_solver():
    """A coarse rtol takes fewer steps and changes the answer; an object, a mapping and None all work."""
    model = pk.Committee(2, 2, "erf", eta=0.5)
    s0 = pk.State(0.1 * np.eye(2), np.diag([0.3, 0.4]))
    default = pk.integrate(model, s0, 40.0, n_points=3)
    same = pk.integrate(model, s0, 40.0, n_points=3, solver=pk.SolverOptions())
    coarse = pk.integrate(model, s0, 40.0, n_points=3, solver={"rtol": 1e-4, "atol": 1e-8})
    assert np.array_equal(default.eg.values, same.eg.values) and default.attrs["n_rhs"] == same.attrs["n_rhs"]
    assert coarse.attrs["n_rhs"] < default.attrs["n_rhs"]
    assert coarse.eg.values[-1] != default.eg.values[-1]
    assert coarse.eg.values[-1] == pytest.approx(default.eg.values[-1], rel=1e-3)
    assert coarse.attrs["rtol"] == 1e-4 and coarse.attrs["atol"] == 1e-8
    radau = pk.integrate(model, s0, 40.0, n_points=3, solver=pk.SolverOptions(method="Radau", rtol=1e-8))
    assert radau.attrs["method"] == "Radau" and radau.eg.values[-1] == pytest.approx(default.eg.values[-1], rel=1e-6)
    # max_norm is the divergence bound of the run
    assert np.abs(default.Q.values).max() > 0.5  # Q grows from 0.4
    low = pk.integrate(model, s0, 40.0, n_points=3, solver={"max_norm": 0.5})
    assert low.attrs["status"] == "diverged" and "exceeded 0.5" in low.attrs["message"]


def test_bad_solver_options():
    model = pk.Committee(1, 1, "erf")
    s = pk.State([[0.0]], [[0.25]])
    with pytest.raises(ValueError, match="solver: unknown option"):
        pk.integrate(model, s, 1.0, solver={"tol": 1e-9})
    with pytest.raises(ValueError, match="rtol: must be a finite number > 0"):
        pk.integrate(model, s, 1.0, solver={"rtol": 0})
    with pytest.raises(ValueError, match="solver: expected SolverOptions"):
        pk.integrate(model, s, 1.0, solver="DOP853")
    with pytest.raises(TypeError):
        pk.integrate(model, s, 1.0, rtol=1e-9)  # the loose keywords are gone


# --- the general committee machine -------------------------------------------------


def test_linear_perceptron_with_weights_decay_and_schedule_matches_closed_form():
    """K = M = 1, g(x) = x, first order: eta(alpha) times a linear flow, solved at the natural time F(alpha).

    dR = eta(alpha) (v w - a R), dQ = 2 eta(alpha) (v w R - a Q), a = v^2 + lambda.
    """
    v, w, lam = 0.8, 1.5, 0.3
    model = pk.Committee(1, 1, "linear", eta=0.5, second_order=False, teacher_weights=[w], student_weights=[v],
                         weight_decay=lam, eta_schedule={"kind": "power_law", "alpha0": 4.0, "p": 1.0})
    R0, Q0 = 0.1, 0.6
    ds = pk.integrate(model, pk.State([[R0]], [[Q0]]), 60.0, n_points=31)
    t = 0.5 * 4.0 * np.log1p(ds.alpha.values / 4.0)  # eta F(alpha)
    assert np.allclose(ds.eta_alpha.values, t, rtol=1e-13)
    a = v * v + lam
    Rs = v * w / a
    Qs = v * w * Rs / a
    C = 2 * v * w * (R0 - Rs) / a
    R = Rs + (R0 - Rs) * np.exp(-a * t)
    Q = Qs + C * np.exp(-a * t) + (Q0 - Qs - C) * np.exp(-2 * a * t)
    assert np.allclose(ds.R.values[:, 0, 0], R, rtol=1e-8, atol=1e-10)
    assert np.allclose(ds.Q.values[:, 0, 0], Q, rtol=1e-8, atol=1e-10)
    assert np.allclose(ds.learning_rate.values, 0.5 / (1 + ds.alpha.values / 4.0), rtol=1e-14)
    assert ds.learning_rate.attrs["long_name"] == "learning rate eta(alpha)"


def test_linear_perceptron_under_drift_relaxes_to_its_steady_overlap():
    """dR = eta (v w - (v^2 + lambda) R) - delta R: R* = eta v w / (eta (v^2 + lambda) + delta), any order."""
    eta, v, w, lam, delta = 0.4, 1.2, 0.9, 0.1, 0.25
    model = pk.Committee(1, 1, "linear", eta=eta, teacher_weights=[w], student_weights=[v], weight_decay=lam,
                         drift=delta, noise=0.2)
    ds = pk.integrate(model, pk.State([[0.0]], [[0.5]]), 30.0, n_points=16)
    rate = eta * (v * v + lam) + delta
    Rs = eta * v * w / rate
    assert np.allclose(ds.R.values[:, 0, 0], Rs * (1 - np.exp(-rate * ds.alpha.values)), rtol=1e-8, atol=1e-11)
    assert ds.attrs["drift"] == delta and ds.attrs["weight_decay"] == lam


def test_a_schedule_is_a_change_of_time_at_first_order():
    """Without the eta^2 term and drift, eta(alpha) f(state): the run is the constant-eta run at F(alpha)."""
    base = pk.Committee(2, 2, "erf", eta=0.5, second_order=False, teacher_weights=[1.0, 0.6],
                        student_weights=[0.8, 0.8], weight_decay=0.05)
    sched = base.replace(eta_schedule={"kind": "piecewise_constant", "boundaries": [20.0, 50.0],
                                        "factors": [0.4, 2.0]})
    state0 = pk.State([[0.1, 0.02], [0.03, 0.05]], [[0.3, 0.01], [0.01, 0.2]])
    alpha = np.linspace(0.0, 120.0, 25)
    tight = {"rtol": 1e-11}
    ds = pk.integrate(sched, state0, 120.0, alpha_eval=alpha, solver=tight)
    F = sched.eta_schedule.integral(alpha)
    ref = pk.integrate(base, state0, float(F[-1]), alpha_eval=F, solver=tight)
    for name in ("R", "Q", "eg"):
        assert np.abs(ds[name].values - ref[name].values).max() < 3e-9, name
    # and the schedule matters: the constant-eta run at the same alpha differs
    const = pk.integrate(base, state0, 120.0, alpha_eval=alpha)
    assert np.abs(const.R.values - ds.R.values).max() > 1e-3


def test_linear_two_layer_flow_conserves_balancedness():
    """Linear, first order, trained second layer: Q - (eta/eta_v) v v^T is conserved (both layers follow one error)."""
    model = pk.Committee(2, 2, "linear", eta=0.3, second_order=False, train_second_layer=True, eta_second_layer=0.6,
                         teacher_weights=[1.0, -0.5])
    state0 = pk.State([[0.1, 0.0], [0.0, -0.1]], [[0.5, 0.1], [0.1, 0.4]], [0.2, 0.3])
    ds = pk.integrate(model, state0, 80.0, n_points=21)
    v = ds.v.values
    inv = ds.Q.values - 0.5 * v[:, :, None] * v[:, None, :]
    assert np.abs(inv - inv[0]).max() < 1e-8
    assert ds.eg.values[-1] < 1e-3 * ds.eg.values[0]  # it learns


def test_trained_second_layer_dataset_layout_and_convergence():
    """v(alpha, i) with its attributes; erf K = M = 2 with w = (1.4, 0.7) reaches R = Q = T, v = w."""
    w = [1.4, 0.7]
    model = pk.Committee(2, 2, "erf", eta=0.5, teacher_weights=w, train_second_layer=True, weight_decay=0.0)
    state0 = pk.State([[0.6, 0.1], [0.05, 0.5]], [[0.5, 0.05], [0.05, 0.4]], [1.0, 1.0])
    ds = pk.integrate(model, state0, 2000.0, n_points=11)
    assert ds.v.dims == ("alpha", "i") and ds.v.attrs["long_name"] == "student second-layer weight v_i"
    assert ds.v.attrs["units"] == "1" and ds.v.values[0].tolist() == [1.0, 1.0]
    end = pk.state_at(ds)
    assert np.allclose(end.v, w, atol=3e-3) and np.allclose(end.R, np.eye(2), atol=3e-3)
    assert ds.eg.values[-1] < 1e-6 * ds.eg.values[0]
    assert ds.attrs["train_second_layer"] == 1 and ds.attrs["eta_second_layer"] == "none"
    assert ds.attrs["teacher_weights"] == w and ds.attrs["normalisation"] == "none"
    again = pk.model_from_dataset(ds)
    assert again.parameters() == model.parameters()
    assert pk.state_at(ds, 0).v.tolist() == [1.0, 1.0]
    # the start needs its weights
    with pytest.raises(ValueError, match=r"state0: the second layer is trained, so the state needs its weights v"):
        pk.integrate(model, pk.State(state0.R, state0.Q), 1.0)


def test_default_dataset_attributes_state_the_new_parameters():
    ds = pk.integrate(pk.Committee(1, 1, "relu"), pk.State([[0.0]], [[0.25]]), 1.0, n_points=3)
    assert "v" not in ds and "learning_rate" not in ds
    assert ds.attrs["eta_schedule"] == "none" and ds.attrs["train_second_layer"] == 0
    assert ds.attrs["weight_decay"] == 0.0 and ds.attrs["drift"] == 0.0
    sched = pk.Committee(1, 1, "relu", eta_schedule={"kind": "power_law", "alpha0": 2.0})
    ds = pk.integrate(sched, pk.State([[0.0]], [[0.25]]), 1.0, n_points=3)
    assert json.loads(ds.attrs["eta_schedule"]) == {"kind": "power_law", "alpha0": 2.0, "p": 1.0}
    assert pk.model_from_dataset(ds).eta_schedule == sched.eta_schedule


def _same_run_without_stop(model, state0, ds, **kw):
    """The values at ``ds``'s samples from a separate run that has no stopping event."""
    a = ds.alpha.values
    return pk.integrate(model, state0, float(a[-1]), alpha_eval=a, solver={"rtol": 1e-11}, **kw)


def test_a_run_that_stops_early_is_sampled_densely_up_to_its_stop():
    """n_points samples between 0 and where the run stopped, the stop being the last one (stop_eg, divergence)."""
    model = pk.Committee(1, 1, "erf", eta=0.5)
    s0 = pk.State([[0.0]], [[0.25]])
    ds = pk.integrate(model, s0, 5000.0, n_points=30, stop_eg=1e-3, solver={"rtol": 1e-11})
    end = ds.attrs["alpha_end"]
    assert ds.attrs["status"] == "converged" and end < 0.1 * 5000.0
    np.testing.assert_allclose(ds.alpha.values, np.linspace(0.0, end, 30), rtol=1e-15)
    ref = _same_run_without_stop(model, s0, ds)
    np.testing.assert_allclose(ds.eg.values, ref.eg.values, rtol=1e-7)
    np.testing.assert_allclose(ds.R.values, ref.R.values, rtol=1e-7, atol=1e-12)
    assert ds.eg.values[-1] == pytest.approx(1e-3, rel=1e-6)
    # a diverged run: as many samples, the last where it left the cone or blew up
    hot = pk.Committee(2, 2, "relu", eta=4.0)
    s1 = pk.State(0.1 * np.eye(2), 0.5 * np.eye(2))
    bad = pk.integrate(hot, s1, 200.0, n_points=14)
    assert bad.attrs["status"] == "diverged" and bad.sizes["alpha"] == 14
    assert bad.alpha.values[-1] == bad.attrs["alpha_end"] < 200.0
    early = bad.isel(alpha=slice(0, 10))  # well before the blow-up, where a plain run is accurate
    ref = pk.integrate(hot, s1, float(early.alpha.values[-1]), alpha_eval=early.alpha.values)
    np.testing.assert_allclose(early.Q.values, ref.Q.values, rtol=1e-6)
    # log spacing: 0, then from 1e-4 of the end to the end
    log = pk.integrate(model, s0, 5000.0, n_points=12, stop_eg=1e-3, spacing="log")
    np.testing.assert_allclose(log.alpha.values[1:], np.geomspace(end * 1e-4, end, 11), rtol=1e-6)
    # explicit sample times are kept up to the stop, which is appended
    given = pk.integrate(model, s0, 5000.0, alpha_eval=[0.0, 10.0, 4000.0], stop_eg=1e-3)
    assert given.alpha.values.tolist() == [0.0, 10.0, given.attrs["alpha_end"]]
    with pytest.raises(ValueError, match="spacing: must be 'linear' or 'log'"):
        pk.integrate(model, s0, 10.0, spacing="geometric")


def test_a_scheduled_run_that_stops_early_is_sampled_across_its_pieces():
    base = pk.Committee(1, 1, "erf", eta=0.5)
    sched = base.replace(eta_schedule={"kind": "piecewise_constant", "boundaries": [3.0, 6.0], "factors": [0.5, 2.0]})
    s0 = pk.State([[0.0]], [[0.25]])
    ds = pk.integrate(sched, s0, 5000.0, n_points=40, stop_eg=1e-2, solver={"rtol": 1e-11})
    end = ds.attrs["alpha_end"]
    assert ds.attrs["status"] == "converged" and 6.0 < end < 5000.0
    np.testing.assert_allclose(ds.alpha.values, np.linspace(0.0, end, 40), rtol=1e-15)
    ref = _same_run_without_stop(sched, s0, ds)
    np.testing.assert_allclose(ds.eg.values, ref.eg.values, rtol=1e-7)


# --- ReLU runs into the perfect solution ---------------------------------------------


def test_relu_flow_is_smooth_next_to_the_perfect_solution():
    # The perfect solution lies on the cone boundary, where the ReLU kernels have
    # sqrt(1 - rho^2) and asin(rho) terms.  Formed from rho = C12 / sqrt(C11 C22) they
    # turn its rounding into errors of ~1e-8 sqrt(...) and the flow becomes rough there;
    # an adaptive solver then rejects step after step (a run to alpha = 400 took 60 times
    # the evaluations of erf).  Along a smooth line at distance 1e-6 of R = Q = T the
    # second differences of the flow stay at the rounding level of its entries.
    model = pk.Committee(2, 2, "relu", eta=0.5, second_order=True)
    E = np.random.default_rng(0).normal(size=(2, 2))
    F = []
    for eps in 1e-6 * (1.0 + np.linspace(0.0, 1e-3, 21)):
        W = np.eye(2) + eps * E
        F.append(model.rhs_vector(model.state_vector(pk.State(W, W @ W.T))))
    F = np.array(F)
    second = np.abs(F[2:] - 2 * F[1:-1] + F[:-2]).max()
    assert np.abs(F).max() > 1e-8  # the flow itself is not at rounding level
    assert second < 1e-14


@pytest.mark.parametrize("second_order", [False, True])
def test_relu_run_into_the_perfect_solution_costs_like_erf(second_order):
    # K = M = 2, eta = 0.5, the reference start, to alpha = 400: ReLU reaches the perfect
    # solution (eps_g at rounding level) with no more right-hand sides than twice the
    # erf run of the same problem (evaluation counts, not times).
    s0 = pk.State(1e-3 * np.eye(2), np.diag([0.2, 0.3]))
    runs = {act: pk.integrate(pk.Committee(2, 2, act, eta=0.5, second_order=second_order), s0, 400.0,
                              n_points=3) for act in ("erf", "relu")}
    assert runs["relu"].eg.values[-1] < 1e-12
    assert runs["relu"].attrs["n_rhs"] <= 2 * runs["erf"].attrs["n_rhs"]


def test_relu_convergence_time_agrees_with_a_tight_tolerance():
    # The first alpha where eps_g < 1e-8, at the default tolerance and at rtol = 1e-12
    # (they differ by 1.3e-7 relative; the state's distance to the perfect solution,
    # ~sqrt(eps_g), is a difference of O(1) order parameters, so a smaller threshold
    # is known less precisely: at 1e-10 the two differ by 1e-3).
    model = pk.Committee(2, 2, "relu", eta=0.5, second_order=False)
    s0 = pk.State(1e-3 * np.eye(2), np.diag([0.2, 0.3]))
    ends = [pk.integrate(model, s0, 400.0, n_points=3, stop_eg=1e-8, solver=solver).attrs["alpha_end"]
            for solver in (None, {"rtol": 1e-12})]
    assert ends[0] < 400.0
    assert ends[0] == pytest.approx(ends[1], rel=1e-6)
