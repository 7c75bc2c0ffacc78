"""phasekit.study.scans: plateau length against X and convergence time against eta.

Independent routes: Saad and Solla's closed-form escape eigenvalue, the
published ReLU escape eigenvalue, and the linear perceptron's closed form.
"""

import math

import numpy as np
import pytest
import xarray as xr

import phasekit as pk
from helpers_committee import erf_plateau, saad_solla
from phasekit.core.results import status_names
from phasekit.study.scans import convergence_time_vs_eta, plateau_scaling


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
    assert list(status_names(ds.status.values)) == ["ok"] * len(eta)
    assert ds.status.attrs["flag_meanings"].split() == list(pk.STATUS)
    for name in list(ds.variables):
        assert "long_name" in ds[name].attrs and "units" in ds[name].attrs


@pytest.mark.parametrize("K", [2, 3])
def test_plateau_scaling_erf_slope_matches_saad_solla(K):
    """Fitted slope of alpha_P vs ln(1/X) = 1 / lambda_esc (closed form) within 2 %, X = 1e-4 .. 1e-10."""
    eta = 0.5
    model = pk.Committee(K, K, "erf", eta=eta, second_order=False)
    _, _, eg, lam = saad_solla(K)
    ds = plateau_scaling(model, np.logspace(-4, -10, 7), plateau=erf_plateau(model), n_workers=1)
    assert list(status_names(ds.status.values)) == ["ok"] * 7
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


def test_scans_pass_their_solver_options_on():
    """A coarse rtol changes the crossing times and plateau lengths of the scans (the option reaches the solver)."""
    model = pk.Committee(1, 1, "linear", eta=0.5, second_order=True)
    s0 = pk.State([[0.0]], [[0.25]])
    eta = np.array([0.5, 1.0])
    kw = {"threshold": 1e-3, "eta_c": 2.0, "refine": False, "n_workers": 1}
    fine = convergence_time_vs_eta(model, s0, eta, **kw)
    coarse = convergence_time_vs_eta(model, s0, eta, solver={"rtol": 1e-3, "atol": 1e-6}, **kw)
    exact = np.log(0.625 / 1e-3) / (2 * eta - eta**2)
    assert np.allclose(fine.convergence_time.values, exact, rtol=1e-6)
    assert np.all(fine.convergence_time.values != coarse.convergence_time.values)
    relu = pk.Committee(2, 2, "relu", eta=1.0, second_order=False)
    X = [1e-4, 1e-6]
    a = plateau_scaling(relu, X, n_workers=1)
    b = plateau_scaling(relu, X, solver={"rtol": 1e-4}, n_workers=1)
    assert np.all(a.plateau_length.values != b.plateau_length.values)
    with pytest.raises(ValueError, match="solver: unknown option"):
        plateau_scaling(relu, X, solver={"tol": 1e-4})
