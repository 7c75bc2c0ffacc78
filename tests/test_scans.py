"""phasekit.study.scans: the ready-made grids as studies, against independent routes.

Saad and Solla's closed-form escape eigenvalue, the published ReLU escape
eigenvalue and eta_c, the linear perceptron's closed form, the propagation
system's own point functions, and the lazy and feature-learning limits.
"""

import math

import numpy as np
import pytest
import xarray as xr

import phasekit as pk
from helpers_committee import saad_solla
from phasekit import propagation as prop
from phasekit.core.results import status_names
from phasekit.study.scans import (
    convergence_time_vs_eta,
    lazy_sweep,
    phase_diagram,
    plateau_scaling,
    stability_boundary,
)


def _attrs(ds):
    for name in list(ds.variables):
        assert "long_name" in ds[name].attrs and "units" in ds[name].attrs, name
    assert {"phasekit_version", "study", "study_hash"} <= set(ds.attrs)


def test_convergence_time_vs_eta_linear_minimum():
    """Linear perceptron: t(eta) = ln(eg0 / thr) / (2 eta - eta^2) is minimal at eta = 1."""
    model = pk.Committee(1, 1, "linear", eta=0.5, second_order=True)
    s0 = pk.State([[0.0]], [[0.25]])
    eta = np.array([0.4, 0.7, 0.9, 1.2, 1.5, 1.8])
    ds = convergence_time_vs_eta(model, s0, eta, threshold=1e-3, solver={"rtol": 1e-10})
    exact = np.log(0.625 / 1e-3) / (2 * eta - eta**2)
    assert np.allclose(ds.convergence_time.values, exact, rtol=1e-6)
    assert float(ds.eta_opt) == pytest.approx(1.0, abs=1e-4)
    assert float(ds.convergence_time_min) == pytest.approx(math.log(625.0), rel=1e-6)
    np.testing.assert_allclose(ds.eta_c.values, 2.0, rtol=1e-9)  # measured: the linear perceptron's eta_c
    assert list(status_names(ds.status.values)) == ["converged"] * len(eta)
    assert ds.status.attrs["flag_meanings"].split() == list(pk.STATUS)
    _attrs(ds)
    given = convergence_time_vs_eta(model, s0, eta[:2], eta_c=2.0, refine=False)
    assert float(given.eta_c) == 2.0


@pytest.mark.parametrize("K", [2, 3])
def test_plateau_scaling_erf_slope_matches_saad_solla(K):
    """Fitted slope of alpha_P vs ln(1/X) = 1 / lambda_esc (closed form) within 2 %, X = 1e-4 .. 1e-10."""
    eta = 0.5
    model = pk.Committee(K, K, "erf", eta=eta, second_order=False)
    _, _, eg, lam = saad_solla(K)
    ds = plateau_scaling(model, np.logspace(-4, -10, 7), solver={"rtol": 1e-10})
    assert list(status_names(ds.status.values)) == ["converged"] * 7
    np.testing.assert_allclose(ds.escape_eigenvalue.values, eta * lam, rtol=1e-6)  # per unit alpha at eta
    np.testing.assert_allclose(ds.plateau_eg.values, eg, rtol=1e-10)
    assert float(ds.fitted_slope) == pytest.approx(1 / (eta * lam), rel=0.02)
    steps = np.diff(ds.plateau_length.values)  # successive lengths differ by ln(10) / lambda_esc
    assert np.allclose(steps, math.log(10) / (eta * lam), rtol=0.02)


def test_plateau_scaling_relu_slope_matches_escape_eigenvalue(tmp_path):
    """ReLU K = M = 2, first order: slope = 1 / lambda_esc within 2 % (0.2392 per eta alpha)."""
    eta = 0.1
    model = pk.Committee(2, 2, "relu", eta=eta, second_order=False)
    ds = plateau_scaling(model, np.logspace(-4, -10, 7))
    assert ds.escape_eigenvalue.dims == ()  # a property of the model, not of the start X
    assert float(ds.escape_eigenvalue) / eta == pytest.approx(0.2392, abs=1e-4)
    assert float(ds.fitted_slope) == pytest.approx(1 / (0.2392 * eta), rel=0.02)
    assert float(ds.slope_ratio) == pytest.approx(1.0, abs=0.02)
    assert float(ds.predicted_slope) == pytest.approx(1 / float(ds.escape_eigenvalue), rel=1e-12)
    _attrs(ds)
    path = tmp_path / "scaling.nc"
    ds.to_netcdf(path, engine="scipy")
    assert float(xr.load_dataset(path, engine="scipy").fitted_slope) == float(ds.fitted_slope)


def test_plateau_scaling_diagonal_start_relu():
    """From R = X delta (the source's start) the ReLU slope also matches (its plateau is inside the cone)."""
    model = pk.Committee(2, 2, "relu", eta=1.0, second_order=False)
    ds = plateau_scaling(model, np.logspace(-4, -10, 4), kind="diagonal", Q0=[0.2, 0.3])
    assert np.all(ds.plateau_entry.values > 0)
    assert float(ds.slope_ratio) == pytest.approx(1.0, abs=0.02)


def test_plateau_scaling_validation():
    model = pk.Committee(2, 2, "erf", eta=1.0, second_order=False)
    for X in ([], [0.0, 1e-3], [1.0]):
        with pytest.raises(ValueError, match="X"):
            plateau_scaling(model, X)
    with pytest.raises(ValueError, match="initial.kind"):
        plateau_scaling(model, [1e-3], kind="nope")
    with pytest.raises(ValueError, match="identity teacher"):
        plateau_scaling(pk.Committee(2, 2, "erf", T=2 * np.eye(2), second_order=False), [1e-3])


def test_scans_pass_their_solver_options_on():
    """A coarse rtol changes the crossing times and plateau lengths of the scans (the option reaches the solver)."""
    model = pk.Committee(1, 1, "linear", eta=0.5, second_order=True)
    s0 = pk.State([[0.0]], [[0.25]])
    eta = np.array([0.5, 1.0])
    fine = convergence_time_vs_eta(model, s0, eta, refine=False, solver={"rtol": 1e-10})
    coarse = convergence_time_vs_eta(model, s0, eta, refine=False, solver={"rtol": 1e-3, "atol": 1e-6})
    assert np.all(fine.convergence_time.values != coarse.convergence_time.values)
    relu = pk.Committee(2, 2, "relu", eta=1.0, second_order=False)
    a = plateau_scaling(relu, [1e-4, 1e-6])
    b = plateau_scaling(relu, [1e-4, 1e-6], solver={"rtol": 1e-4})
    assert np.all(a.plateau_length.values != b.plateau_length.values)
    with pytest.raises(ValueError, match="solver: unknown option"):
        plateau_scaling(relu, [1e-4], solver={"tol": 1e-4})


def test_stability_boundary_of_the_relu_perceptron_and_committee():
    ds = stability_boundary(["relu"], [1, 2])
    assert float(ds.eta_c.sel(activation="relu", K=1)) == pytest.approx(2.0, abs=1e-9)
    assert float(ds.eta_opt.sel(activation="relu", K=1)) == pytest.approx(1.0, abs=1e-8)
    assert float(ds.eta_c.sel(activation="relu", K=2)) < 2.0
    assert ds.eta_c.dims == ("activation", "K")


def test_phase_diagram_dataset(tmp_path):
    sw = np.array([0.8, 1.5, 2.5, 3.5])
    sb = np.array([0.0, 0.1, 0.3])
    ds = phase_diagram("tanh", sw, sb)
    _attrs(ds)
    assert ds["chi_1"].dims == ("sigma_b2", "sigma_w2") and ds["chi_1"].shape == (3, 4)
    chaotic = ds["chi_1"].values > 1
    assert np.array_equal(ds["phase"].values == prop.PHASE_CHAOTIC, chaotic)
    assert ds["phase"].attrs["flag_meanings"].split() == ["ordered", "chaotic", "unbounded"]
    assert np.all(ds["c_star"].values[~chaotic] == 1.0) and np.all(ds["c_star"].values[chaotic] < 1)
    assert ds["chi_1"].sel(sigma_w2=2.5, sigma_b2=0.1).item() == pytest.approx(prop.chi_1("tanh", 2.5, 0.1),
                                                                               rel=1e-14)
    assert ds["eoc_sigma_w2"].sel(sigma_b2=0.1).item() == pytest.approx(prop.edge_of_chaos("tanh", 0.1)[0],
                                                                        rel=1e-14)
    assert str(ds["activation"].values) == "tanh"
    path = tmp_path / "pd.nc"
    ds.to_netcdf(path, engine="scipy")
    assert np.array_equal(xr.load_dataset(path, engine="scipy")["phase"].values, ds["phase"].values)
    # relu: unbounded variance above sigma_w2 = 2, the EOC is the single point (0, 2)
    relu = phase_diagram("relu", [1.0, 2.0, 3.0], [0.0, 0.2])
    assert relu["phase"].sel(sigma_w2=3.0).values.tolist() == [prop.PHASE_UNBOUNDED] * 2
    assert relu["eoc_sigma_w2"].values[0] == 2.0 and np.isnan(relu["eoc_sigma_w2"].values[1])


def test_phase_diagram_parallel_equals_serial():
    sw, sb = [1.0, 1.8, 2.6], [0.05, 0.25]
    a = phase_diagram("tanh", sw, sb, n_workers=1)
    b = phase_diagram("tanh", sw, sb, n_workers=2)
    for name in ("q_star", "c_star", "chi_1", "xi_c", "phase", "eoc_sigma_w2"):
        assert np.array_equal(a[name].values, b[name].values, equal_nan=True), name


def test_lazy_sweep_small_tau_learns_large_tau_is_lazy():
    taus = [0.01, 0.1, 1.0, 10.0]
    ds = lazy_sweep(taus, [50], [0], d=20, m0=3, T=100.0, n_workers=2)
    r = ds.isel(activation=0, scale=0, m=0, seed=0)
    small, large = r.sel(tau=0.01), r.sel(tau=10.0)
    assert float(small.loss) <= 0.1 * float(large.loss)
    # ... and below a tenth of the best the lazy (tangent) model reaches at infinite time
    assert float(small.loss) <= 0.1 * float(large.tangent_loss_limit)
    assert float(large.weight_displacement) < 0.1 < 1.0 < float(small.weight_displacement)
    assert float(large.relative_tangent_distance) < 0.1 < float(small.relative_tangent_distance)
    assert set(status_names(r.status.values)) == {"ok"}


def test_lazy_sweep_dataset_and_netcdf(tmp_path):
    ds = lazy_sweep([0.5, 2.0], [2], [0, 1], activations=("relu", "tanh"), d=3, m0=1, T=5.0)
    assert dict(ds.sizes) == {"activation": 2, "scale": 1, "m": 1, "tau": 2, "seed": 2}
    _attrs(ds)
    path = tmp_path / "sweep.nc"
    ds.to_netcdf(path, engine="scipy")
    back = xr.load_dataset(path, engine="scipy")
    np.testing.assert_allclose(back["loss"].values, ds["loss"].values)
    assert list(back["activation"].values) == ["relu", "tanh"]


@pytest.mark.parametrize("call,key", [
    (lambda: lazy_sweep([1.0], [3], [0], d=3, m0=1), "model.m"),
    (lambda: lazy_sweep([0.0], [2], [0], d=3, m0=1), "grid.tau[0]"),
    (lambda: lazy_sweep([1.0], [2], [0], d=3, m0=1, temperature=2), "run_kwargs"),
])
def test_lazy_sweep_bad_input_names_the_parameter(call, key):
    with pytest.raises((ValueError, TypeError), match=key.replace("[", r"\[").replace("]", r"\]")):
        call()
