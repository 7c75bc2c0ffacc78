"""Plateaus, convergence times and asymptotic error: closed forms, direct event solves, MODEL.md values."""

import math

import numpy as np
import pytest
import xarray as xr
from scipy.integrate import solve_ivp

import phasekit as pk
from phasekit.committee.asymptotics import asymptotic_eg
from phasekit.committee.plateaus import convergence_time, plateau_length, plateau_times
from phasekit.committee.starts import initial_state
from phasekit.study.scans import convergence_time_vs_eta, plateau_scaling


def saad_solla(K):
    """Erf plateau (R, Q = C), its eps_g and escape eigenvalue per unit eta alpha (MODEL.md)."""
    R = 1 / math.sqrt(K * (2 * K - 1))
    Q = 1 / (2 * K - 1)
    eg = (K / math.pi) * (math.pi / 6 - K * math.asin(1 / (2 * K)))
    lam = 2 * K / (math.pi * math.sqrt(2 * K - 1) * (2 * K + 1) ** 1.5)
    return R, Q, eg, lam


def erf_plateau(model):
    """The erf plateau from the closed form, linearised by the fixed-point module."""
    from phasekit.committee.linearisation import linearise

    K = model.K
    R, Q, _, _ = saad_solla(K)
    return linearise(model, pk.State(np.full((K, K), R), np.full((K, K), Q)), label="symmetric_plateau")


def direct_crossing(model, state0, threshold, alpha_max):
    """First eps_g < threshold by an independent event solve (LSODA, a multistep method)."""
    def below(_a, v):
        return float(model.eg_vector(v)) - threshold

    below.terminal, below.direction = True, -1
    sol = solve_ivp(lambda _a, v: model.rhs_vector(v), (0, alpha_max), state0.to_vector(), method="LSODA",
                    rtol=1e-11, atol=1e-14, events=[below])
    return float(sol.t_events[0][0])


def linear_perceptron_eg(eg0, eta, alpha, noise=0.0, second_order=True):
    """Linear K = M = 1: d eg/d alpha = -(2 eta - s eta^2) eg + s eta^2 sigma^2 / 2 (s = 1 second order)."""
    s = 1.0 if second_order else 0.0
    rate = 2 * eta - s * eta**2
    star = s * eta**2 * noise**2 / (2 * rate)
    return star + (eg0 - star) * np.exp(-rate * alpha)


# --- initial states --------------------------------------------------------------------


def test_initial_state_diagonal_defaults():
    model = pk.Committee(3, 2, "erf", eta=0.5, second_order=False)
    s = initial_state(model, 1e-3)
    assert np.array_equal(s.R, 1e-3 * np.eye(3, 2))
    assert np.allclose(s.Q, np.diag([0.2, 0.25, 0.3]), rtol=0, atol=0)
    s1 = initial_state(pk.Committee(1, 1, "relu", eta=0.1), 0.0)
    assert s1.R[0, 0] == 0.0 and s1.Q[0, 0] == 0.25
    s2 = initial_state(model, 0.0, Q0=0.4)
    assert np.all(s2.R == 0) and np.array_equal(s2.Q, 0.4 * np.eye(3))


def test_initial_state_uniform_draws_scale_with_X():
    model = pk.Committee(3, 3, "erf", eta=1.0, second_order=False)
    a = initial_state(model, 1e-3, kind="uniform", seed=7)
    b = initial_state(model, 1e-9, kind="uniform", seed=7)
    assert np.all((a.R >= 0) & (a.R <= 1e-3))
    off = a.Q[~np.eye(3, dtype=bool)]
    assert np.all((off >= 0) & (off <= 1e-3)) and np.all(off > 0)
    # same seed, same direction: the draw is scaled by X
    assert np.allclose(a.R / 1e-3, b.R / 1e-9, rtol=1e-12, atol=0)
    assert not np.allclose(initial_state(model, 1e-3, kind="uniform", seed=8).R, a.R)


def test_symmetric_start_stays_symmetric():
    """X = 0: R_i1 = R_i2 for all time (teacher-permutation symmetry), checked by integration."""
    model = pk.Committee(2, 2, "erf", eta=1.0, second_order=False)
    traj = pk.integrate(model, initial_state(model, 0.0), 50.0, n_points=6)
    R = traj.R.values
    assert np.max(np.abs(R[:, :, 0] - R[:, :, 1])) < 1e-13
    assert R[-1].min() > 0.1  # it did learn something


def test_initial_state_plateau_kind_matches_explicit_vectors():
    """Erf plateau + X along the escape vector = Gram matrix of explicit student vectors.

    At the erf plateau the students coincide, J_i = r (B_1 + B_2); displacing R
    by X (1, -1, -1, 1)/2 corresponds to J_1 = (r + X/2) B_1 + (r - X/2) B_2 and
    J_2 = (r - X/2) B_1 + (r + X/2) B_2, whose Q needs an X^2 correction.
    """
    model = pk.Committee(2, 2, "erf", eta=1.0, second_order=False)
    r = saad_solla(2)[0]
    for X in (1e-2, 1e-5):
        s = initial_state(model, X, kind="plateau", plateau=erf_plateau(model))
        J = np.array([[r + X / 2, r - X / 2], [r - X / 2, r + X / 2]])  # rows: students in the teacher basis
        assert np.allclose(s.R, J, rtol=0, atol=1e-15)
        assert np.allclose(s.Q, J @ J.T, rtol=0, atol=1e-15)
        assert model.min_eigenvalue(s) > -1e-12


@pytest.mark.parametrize("kwargs, name", [
    ({"X": -1e-3}, "X"),
    ({"X": float("nan")}, "X"),
    ({"X": 1e-3, "Q0": 0.0}, "Q0"),
    ({"X": 1e-3, "Q0": [0.2, -0.1]}, "Q0"),
    ({"X": 1e-3, "Q0": [0.2, 0.3, 0.4]}, "Q0"),
    ({"X": 0.6, "Q0": 0.2}, "X"),            # R_11^2 > Q_11: not PSD
    ({"X": 1e-3, "kind": "gaussian"}, "kind"),
    ({"X": 1e-3, "kind": "plateau", "Q0": 0.2}, "Q0"),
])
def test_initial_state_validation(kwargs, name):
    model = pk.Committee(2, 2, "erf", eta=1.0, second_order=False)
    X = kwargs.pop("X")
    with pytest.raises(ValueError, match=name):
        initial_state(model, X, **kwargs)


# --- convergence time -----------------------------------------------------------------


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
    assert convergence_time(traj, thr) == pytest.approx(exact, rel=1e-6)
    assert convergence_time(traj, thr, rtol=1e-13) == pytest.approx(exact, rel=1e-9)
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
        times.append(convergence_time(traj, thr))
    assert np.allclose(times, ref, rtol=1e-6, atol=0)
    assert max(times) - min(times) <= 1e-9 * ref


def test_convergence_time_statuses():
    model = pk.Committee(1, 1, "linear", eta=0.5, second_order=True)
    s0 = pk.State([[0.0]], [[0.25]])
    traj = pk.integrate(model, s0, 5.0, n_points=11)
    res = convergence_time(traj, 1e-3, full_output=True)
    assert res.alpha == math.inf and res.status == "not_reached"
    # already below at the start
    res = convergence_time(traj, 1.0, full_output=True)
    assert res.alpha == 0.0 and res.status == "reached"
    # eta above eta_c = 2: eg grows without bound
    bad = pk.integrate(model.replace(eta=2.5), s0, 200.0, n_points=11)
    assert bad.attrs["status"] == "diverged"
    res = convergence_time(bad, 1e-3, full_output=True)
    assert res.alpha == math.inf and res.status == "diverged"
    with pytest.raises(ValueError, match="threshold"):
        convergence_time(traj, 0.0)


def test_convergence_time_vs_eta_linear_minimum():
    """Linear perceptron: t(eta) = ln(eg0 / thr) / (2 eta - eta^2) is minimal at eta = 1."""
    model = pk.Committee(1, 1, "linear", eta=0.5, second_order=True)
    s0 = pk.State([[0.0]], [[0.25]])
    eta = np.array([0.4, 0.7, 0.9, 1.2, 1.5, 1.8])
    ds = convergence_time_vs_eta(model, s0, eta, threshold=1e-3, eta_c=2.0, n_workers=1)
    exact = np.log(0.625 / 1e-3) / (2 * eta - eta**2)
    assert np.allclose(ds.convergence_time.values, exact, rtol=1e-6)
    assert float(ds.eta_opt) == pytest.approx(1.0, abs=1e-4)
    assert float(ds.convergence_time_min) == pytest.approx(math.log(625.0), rel=1e-6)
    assert float(ds.eta_c) == 2.0
    for name in list(ds.variables):
        assert "long_name" in ds[name].attrs and "units" in ds[name].attrs


# --- plateau length -------------------------------------------------------------------


def test_plateau_length_independent_of_sampling_and_matches_events():
    """ReLU K = M = 2 (MODEL.md start): band crossings equal an independent event solve."""
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
    assert all(o.status == "ok" for o in out)
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
    # MODEL.md: eps_g sits near 0.0736 for eta alpha roughly 5 to 20
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
    assert pt.status == "not_left" and pt.entry == 0.0 and pt.length == math.inf
    # starts at the perfect solution: never near the plateau
    perfect = pk.integrate(model, pk.State(np.eye(2), np.eye(2)), 10.0, n_points=3)
    pt = plateau_times(perfect, fp)
    assert pt.status == "not_entered" and math.isnan(plateau_length(perfect, fp))
    with pytest.raises(ValueError, match="band"):
        plateau_length(short, fp, band=1.5)
    with pytest.raises(ValueError, match="plateau"):
        plateau_length(short, 0.0)


# --- plateau scaling ------------------------------------------------------------------


@pytest.mark.parametrize("K", [2, 3])
def test_plateau_scaling_erf_slope_matches_saad_solla(K):
    """Fitted slope of alpha_P vs ln(1/X) = 1 / lambda_esc (closed form) within 2 %, X = 1e-4 .. 1e-10."""
    eta = 0.5
    model = pk.Committee(K, K, "erf", eta=eta, second_order=False)
    _, _, eg, lam = saad_solla(K)
    ds = plateau_scaling(model, np.logspace(-4, -10, 7), plateau=erf_plateau(model), n_workers=1)
    assert np.all(ds.status.values == 0)
    assert float(ds.lambda_esc) == pytest.approx(eta * lam, rel=1e-6)  # per unit alpha at eta
    assert float(ds.eg_plateau) == pytest.approx(eg, rel=1e-10)
    assert float(ds.fitted_slope) == pytest.approx(1 / (eta * lam), rel=0.02)
    # successive lengths differ by ln(10) / lambda_esc
    steps = np.diff(ds.plateau_length.values)
    assert np.allclose(steps, math.log(10) / (eta * lam), rtol=0.02)


def test_plateau_scaling_relu_slope_matches_escape_eigenvalue(tmp_path):
    """ReLU K = M = 2, first order: slope = 1 / lambda_esc within 2 % (MODEL.md: 0.2392 per eta alpha)."""
    eta = 0.1
    model = pk.Committee(2, 2, "relu", eta=eta, second_order=False)
    ds = plateau_scaling(model, np.logspace(-4, -10, 7), n_workers=1)
    assert np.all(ds.status.values == 0)
    assert float(ds.lambda_esc_eta) == pytest.approx(0.2392, abs=1e-4)
    assert float(ds.fitted_slope) == pytest.approx(1 / (0.2392 * eta), rel=0.02)
    assert float(ds.slope_ratio) == pytest.approx(1.0, abs=0.02)
    assert float(ds.predicted_slope) == pytest.approx(1 / float(ds.lambda_esc), rel=1e-12)
    for name in list(ds.variables):
        assert "long_name" in ds[name].attrs and "units" in ds[name].attrs, name
    path = tmp_path / "scaling.nc"
    ds.to_netcdf(path, engine="scipy")
    back = xr.load_dataset(path, engine="scipy")
    assert float(back.fitted_slope) == float(ds.fitted_slope)


def test_plateau_scaling_diagonal_start_relu():
    """From R = X delta (the source's start) the ReLU slope also matches (its plateau is inside the cone)."""
    model = pk.Committee(2, 2, "relu", eta=1.0, second_order=False)
    ds = plateau_scaling(model, np.logspace(-4, -10, 4), kind="diagonal", Q0=[0.2, 0.3], n_workers=1)
    assert np.all(ds.status.values == 0) and np.all(ds.entry.values > 0)
    assert float(ds.slope_ratio) == pytest.approx(1.0, abs=0.02)


def test_plateau_scaling_validation():
    model = pk.Committee(2, 2, "erf", eta=1.0, second_order=False)
    fp = erf_plateau(model)
    for X in ([], [0.0, 1e-3], [1.0]):
        with pytest.raises(ValueError, match="X"):
            plateau_scaling(model, X, plateau=fp)
    with pytest.raises(ValueError, match="kind"):
        plateau_scaling(model, [1e-3], plateau=fp, kind="nope")


@pytest.mark.slow
def test_plateau_scaling_second_order_relu():
    """Second order, eta = 0.5: the slope still follows the escape eigenvalue of the eta-dependent plateau."""
    model = pk.Committee(2, 2, "relu", eta=0.5, second_order=True)
    ds = plateau_scaling(model, np.logspace(-4, -10, 7), n_workers=1)
    assert np.all(ds.status.values == 0)
    assert float(ds.slope_ratio) == pytest.approx(1.0, abs=0.02)


# --- asymptotic error -----------------------------------------------------------------


def test_asymptotic_eg_linear_with_noise_closed_form():
    """Linear perceptron with output noise: eg* = eta sigma^2 / (2 (2 - eta)); R* = 1, Q* = 1 + 2 eg*."""
    eta, sigma = 0.5, 0.3
    model = pk.Committee(1, 1, "linear", eta=eta, second_order=True, noise=sigma)
    res = asymptotic_eg(model, pk.State([[0.0]], [[0.25]]))
    star = eta * sigma**2 / (2 * (2 - eta))
    assert res.status == "converged" and res.fixed_point.stable
    assert res.eg == pytest.approx(star, rel=1e-9)
    assert res.state.R[0, 0] == pytest.approx(1.0, abs=1e-10)
    assert res.state.Q[0, 0] == pytest.approx(1 + 2 * star, rel=1e-9)


def test_asymptotic_eg_statuses():
    model = pk.Committee(1, 1, "linear", eta=2.5, second_order=True)
    res = asymptotic_eg(model, pk.State([[0.0]], [[0.25]]))
    assert res.status == "diverged" and math.isnan(res.eg)
    res = asymptotic_eg(model.replace(eta=0.5), pk.State([[0.0]], [[0.25]]), alpha_max=1.0)
    assert res.status == "not_converged"
    assert res.eg == pytest.approx(linear_perceptron_eg(0.625, 0.5, 1.0), rel=1e-7)
    with pytest.raises(ValueError, match="tol"):
        asymptotic_eg(model, pk.State([[0.0]], [[0.25]]), tol=0.0)


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


# --- recipes and figures ----------------------------------------------------------------


def test_plateau_recipes_quick(tmp_path):
    from phasekit.study.recipes import available_recipes, run_recipe

    assert {"plateau_scaling", "convergence_time"} <= set(available_recipes())
    files = run_recipe("plateau_scaling", tmp_path / "ps", quick=True)
    ds = xr.load_dataset(files["plateau_scaling_erf_K2_plateau"], engine="scipy")
    assert float(ds.slope_ratio) == pytest.approx(1.0, abs=0.02)
    assert files["figure"].stat().st_size > 0
    files = run_recipe("convergence_time", tmp_path / "ct", quick=True)
    ds = xr.load_dataset(files["convergence_time_K1"], engine="scipy")
    assert float(ds.eta_c) == pytest.approx(2.0, rel=1e-6)  # MODEL.md: ReLU perceptron
    assert np.all(ds.status.values == 0) and np.all(ds.eta.values < 2.0)
    assert files["figure"].stat().st_size > 0
