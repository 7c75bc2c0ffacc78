"""phasekit.committee.plateaus: plateau times and convergence times (PlateauTimes, Crossing).

Independent routes: closed forms (linear perceptron), direct event solves with
another solver (LSODA, Radau), and the published ReLU K = M = 2 plateau.
"""

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import phasekit as pk
from helpers_committee import erf_plateau, linear_perceptron_eg
from phasekit.committee.plateaus import convergence_time, plateau_length, plateau_times
from phasekit.committee.starts import initial_state


def direct_crossing(model, state0, threshold, alpha_max):
    """First eps_g < threshold by an independent event solve (LSODA, a multistep method)."""
    def below(_a, v):
        return float(model.eg_vector(v)) - threshold

    below.terminal, below.direction = True, -1
    sol = solve_ivp(lambda _a, v: model.rhs_vector(v), (0, alpha_max), state0.to_vector(), method="LSODA",
                    rtol=1e-11, atol=1e-14, events=[below])
    return float(sol.t_events[0][0])


def test_convergence_time_linear_closed_form():
    """Linear perceptron: eg(alpha) = eg0 exp(-(2 eta - eta^2) alpha), so the crossing is known exactly."""
    eta, thr = 0.5, 1e-3
    model = pk.Committee(1, 1, "linear", eta=eta, second_order=True)
    s0 = pk.State([[0.0]], [[0.25]])
    eg0 = model.eg(s0)
    assert eg0 == pytest.approx(0.625, rel=1e-12)
    exact = math.log(eg0 / thr) / (2 * eta - eta**2)
    traj = pk.integrate(model, s0, 30.0, n_points=4)
    # eps_g is a difference of O(1) order parameters: its relative error is ~ rtol / eg
    assert float(convergence_time(traj, thr)) == pytest.approx(exact, rel=1e-6)
    assert float(convergence_time(traj, thr, solver={"rtol": 1e-13})) == pytest.approx(exact, rel=1e-9)
    assert np.allclose(traj.eg.values, linear_perceptron_eg(eg0, eta, traj.alpha.values), rtol=1e-7)


@pytest.mark.parametrize("case", ["relu_perceptron", "erf_K2"])
def test_convergence_time_matches_direct_event_solve(case):
    """Exact to solver tolerance and independent of the sampling."""
    if case == "relu_perceptron":
        model = pk.Committee(1, 1, "relu", eta=0.5, second_order=True)
        s0, amax, thr = pk.State([[0.0]], [[0.25]]), 30.0, 1e-3
    else:
        model = pk.Committee(2, 2, "erf", eta=1.0, second_order=False)
        s0, amax, thr = initial_state(model, 1e-3, kind="uniform", seed=1), 400.0, 1e-3
    ref = direct_crossing(model, s0, thr, amax)
    times = []
    for n in (2, 7, 501):
        traj = pk.integrate(model, s0, amax, n_points=n)
        times.append(convergence_time(traj, thr).alpha)
    assert np.allclose(times, ref, rtol=1e-6, atol=0)
    assert max(times) - min(times) <= 1e-9 * ref


def test_convergence_time_statuses():
    model = pk.Committee(1, 1, "linear", eta=0.5, second_order=True)
    s0 = pk.State([[0.0]], [[0.25]])
    traj = pk.integrate(model, s0, 5.0, n_points=11)
    res = convergence_time(traj, 1e-3)
    assert res.alpha == math.inf and res.status == "not_reached" and res.success
    assert float(res) == math.inf and "stayed above 0.001" in res.message
    # already below at the start
    res = convergence_time(traj, 1.0)
    assert res.alpha == 0.0 and res.status == "ok" and res.message == "eps_g below 1 at the start"
    # eta above eta_c = 2: eg grows without bound
    bad = pk.integrate(model.replace(eta=2.5), s0, 200.0, n_points=11)
    assert bad.attrs["status"] == "diverged"
    res = convergence_time(bad, 1e-3)
    assert res.alpha == math.inf and res.status == "diverged" and not res.success and "diverged" in res.message
    with pytest.raises(ValueError, match="threshold"):
        convergence_time(traj, 0.0)


def test_plateau_length_independent_of_sampling_and_matches_events():
    """ReLU K = M = 2 (the reference start of docs/reference-values.md): band crossings equal an independent event solve."""
    from phasekit.committee.landmarks import symmetric_plateau

    model = pk.Committee(2, 2, "relu", eta=0.1, second_order=False)
    fp = symmetric_plateau(model)
    assert fp.eg == pytest.approx(0.073613, abs=2e-6)
    s0 = pk.State(1e-3 * np.eye(2), np.diag([0.2, 0.3]))
    band = 0.05
    out = []
    for n in (3, 40, 801):
        traj = pk.integrate(model, s0, 300.0, n_points=n)
        out.append(plateau_times(traj, fp, band=band))
    assert all(o.status == "ok" and o.success for o in out)
    assert float(out[0]) == out[0].length and out[0].n_rhs > 0 and "left it at" in out[0].message
    assert max(o.length for o in out) - min(o.length for o in out) <= 1e-9 * out[0].length
    # independent: Radau with the two band edges as events
    half = band * fp.eg

    def edge_hi(_a, v):
        return float(model.eg_vector(v)) - (fp.eg + half)

    def edge_lo(_a, v):
        return float(model.eg_vector(v)) - (fp.eg - half)

    sol = solve_ivp(lambda _a, v: model.rhs_vector(v), (0, 300), s0.to_vector(), method="Radau", rtol=1e-11,
                    atol=1e-14, events=[edge_hi, edge_lo])
    entry, leave = sol.t_events[0][0], sol.t_events[1][0]
    assert out[0].entry == pytest.approx(entry, rel=1e-6)
    assert out[0].exit == pytest.approx(leave, rel=1e-6)
    # reference behaviour: eps_g sits near 0.0736 for eta alpha roughly 5 to 20
    assert 0.1 * out[0].entry < 6 and 0.1 * out[0].exit > 15
    # the plateau given by its eps_g alone gives the same answer
    assert plateau_length(pk.integrate(model, s0, 300.0, n_points=5), fp.eg, band=band) == pytest.approx(
        out[0].length, rel=1e-9)


def test_plateau_length_statuses():
    model = pk.Committee(2, 2, "erf", eta=1.0, second_order=False)
    fp = erf_plateau(model)
    # ends on the plateau
    s0 = initial_state(model, 1e-8, kind="plateau", plateau=fp)
    short = pk.integrate(model, s0, 50.0, n_points=5)
    pt = plateau_times(short, fp)
    assert pt.status == "not_reached" and pt.entry == 0.0 and pt.length == math.inf
    assert "still inside at the end of the trajectory" in pt.message
    # starts at the perfect solution: never near the plateau
    perfect = pk.integrate(model, pk.State(np.eye(2), np.eye(2)), 10.0, n_points=3)
    pt = plateau_times(perfect, fp)
    assert pt.status == "not_reached" and math.isnan(pt.entry) and "never entered" in pt.message
    assert math.isnan(plateau_length(perfect, fp))
    with pytest.raises(ValueError, match="band"):
        plateau_length(short, fp, band=1.5)
    with pytest.raises(ValueError, match="plateau"):
        plateau_length(short, 0.0)


# --- solver options reach the re-integration ---------------------------------------------


def test_reintegrations_use_the_trajectory_solver_unless_told_otherwise():
    """The stored solver settings are reused; ``solver=`` changes them (a coarse rtol costs fewer
    evaluations and moves the answer), a mapping changes only the fields it names."""
    model = pk.Committee(1, 1, "relu", eta=0.5, second_order=True)
    traj = pk.integrate(model, pk.State([[0.0]], [[0.25]]), 30.0, n_points=4, solver={"rtol": 1e-10})
    assert traj.attrs["rtol"] == 1e-10 and traj.attrs["atol"] == 1e-14 and traj.attrs["method"] == "DOP853"
    fine = convergence_time(traj, 1e-3)
    same = convergence_time(traj, 1e-3, solver={"rtol": 1e-10})
    assert same.alpha == fine.alpha and same.n_rhs == fine.n_rhs
    coarse = convergence_time(traj, 1e-3, solver={"rtol": 1e-4})
    assert coarse.n_rhs < fine.n_rhs and coarse.alpha != fine.alpha
    assert coarse.alpha == pytest.approx(fine.alpha, rel=1e-2)
    lsoda = convergence_time(traj, 1e-3, solver=pk.SolverOptions(method="LSODA", rtol=1e-10))
    assert lsoda.n_rhs != fine.n_rhs and lsoda.alpha == pytest.approx(fine.alpha, rel=1e-6)
    # the plateau of the ReLU K = M = 2 committee (published start)
    relu = pk.Committee(2, 2, "relu", eta=0.1, second_order=False)
    long = pk.integrate(relu, pk.State(1e-3 * np.eye(2), np.diag([0.2, 0.3])), 300.0, n_points=3)
    pt_fine, pt_coarse = plateau_times(long), plateau_times(long, solver={"rtol": 1e-6})
    assert pt_coarse.status == "ok" and pt_coarse.n_rhs < pt_fine.n_rhs and pt_coarse.length != pt_fine.length
    assert pt_coarse.length == pytest.approx(pt_fine.length, rel=1e-3)
    assert plateau_length(long, solver={"rtol": 1e-6}) == pt_coarse.length
    with pytest.raises(ValueError, match="solver: unknown option"):
        convergence_time(traj, 1e-3, solver={"rtl": 1e-4})
    with pytest.raises(ValueError, match="rtol: must be a finite number > 0"):
        plateau_times(long, solver={"rtol": -1.0})


def test_convergence_time_and_plateau_times_of_a_reduced_trajectory_equal_the_full_ones():
    """ReLU K = M = 2 (first order) from the site-symmetric start R = X I, Q = Q0 I: the reduced model's
    trajectory gives the full one's plateau band and threshold crossing (each re-integrated from its start)."""
    from phasekit.committee import State

    model = pk.Committee(2, 2, "relu", eta=0.5, second_order=False)
    red = pk.integrate(model.restrict("site_symmetric"), [1e-3, 0.0, 0.5, 0.0], 300.0, n_points=5)
    full = pk.integrate(model, State(1e-3 * np.eye(2), 0.5 * np.eye(2)), 300.0, n_points=5)
    a, b = plateau_times(red), plateau_times(full)
    assert a.status == b.status == "ok"
    assert (a.entry, a.exit, a.eg_plateau) == pytest.approx((b.entry, b.exit, b.eg_plateau), rel=1e-7)
    ca, cb = convergence_time(red, 1e-3), convergence_time(full, 1e-3)
    assert ca.status == cb.status and np.isfinite(float(ca))
    assert float(ca) == pytest.approx(float(cb), rel=1e-7)
