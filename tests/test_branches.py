"""phasekit.committee.branches: continuation of a fixed point in the learning rate.

Reference: the ReLU perceptron's exact spectrum along the perfect-solution
branch (-eta/2 and eta^2/2 - eta, crossing zero at eta = 2).
"""

import numpy as np
import pytest

import phasekit as pk
import phasekit.committee as pc
from phasekit.committee.model import Committee
from phasekit.core.results import status_names


def test_continuation_locates_the_crossing_by_bisection():
    model = Committee(1, 1, "relu", eta=1.0, second_order=True)
    ds = pc.continuation(model, "perfect", [0.6, 1.4, 2.2, 3.0], xtol=1e-10)
    assert ds.sizes["crossing"] == 1
    c = ds.isel(crossing=0)
    assert float(c.crossing_low) <= 2.0 + 1e-9 and float(c.crossing_high) >= 2.0 - 1e-9
    assert float(c.crossing_precision) <= 2e-10
    assert abs(float(c.crossing_eta) - 2.0) < 1e-9
    assert int(c.crossing_n_before) == 0 and int(c.crossing_n_after) == 1
    assert ds.crossing_location.attrs["flag_meanings"] == "located bracketed"
    assert int(c.crossing_location) == 0  # located
    assert ds.n_unstable.values.tolist() == [0, 0, 1, 1]
    assert list(status_names(ds.status.values)) == ["converged"] * 4
    assert ds.status.attrs["flag_meanings"].split() == list(pk.STATUS)
    # the recorded spectrum is the exact one at every eta on the branch
    eta = ds.eta.values
    exact = np.sort(np.stack([-eta / 2, eta**2 / 2 - eta], axis=1), axis=1)[:, ::-1]
    assert np.abs(ds.eigenvalue_real.values - exact).max() < 1e-9


def test_xtol_sets_the_bisection_width_and_a_short_bisection_only_brackets():
    model = Committee(1, 1, "relu", eta=1.0, second_order=True)
    wide = pc.continuation(model, "perfect", [1.4, 2.2], xtol=1e-3).isel(crossing=0)
    assert 2e-4 < 2 * float(wide.crossing_precision) <= 1e-3 * 2.2 and int(wide.crossing_location) == 0
    assert float(wide.crossing_low) <= 2.0 <= float(wide.crossing_high)
    short = pc.continuation(model, "perfect", [1.4, 2.2], max_bisect=3).isel(crossing=0)
    assert int(short.crossing_location) == 1  # bracketed: only the interval is known
    assert float(short.crossing_high) - float(short.crossing_low) == pytest.approx(0.8 / 8)
    assert float(short.crossing_low) <= 2.0 <= float(short.crossing_high)


def test_a_branch_that_is_lost_is_marked_failed_then_missing(tmp_path):
    """The ReLU K = M = 2 plateau followed to large eta (second order): Newton loses it on the way."""
    model = Committee(2, 2, "relu", eta=0.5, second_order=True)
    ds = pc.continuation(model, "symmetric_plateau", [0.5, 1.0, 5.0, 6.0], newton={"max_iter": 5})
    names = list(status_names(ds.status.values))
    assert names[0] == "converged" and "failed" in names
    k = names.index("failed")
    assert all(n == "missing" for n in names[k + 1:]) and np.all(np.isnan(ds.eg.values[k:]))
    assert int(ds.attrs["complete"]) == 0 and int(ds.attrs["n_points"]) == k + 1
    ds.to_netcdf(tmp_path / "branch.nc", engine="scipy")


def test_bad_inputs():
    model = Committee(2, 2, "erf", eta=1.0, second_order=False)
    with pytest.raises(ValueError, match=r"values: need >= 2 strictly monotonic values of eta \(each > 0\)"):
        pc.continuation(model, "perfect", [1.0, 0.5, 2.0])
    with pytest.raises(ValueError, match="landmark"):
        pc.continuation(model, "saddle", [0.5, 1.0])
    with pytest.raises(ValueError, match=r"xtol: relative width must be in \(0, 1\)"):
        pc.continuation(model, "perfect", [0.5, 1.0], xtol=0.0)
    with pytest.raises(ValueError, match="max_bisect: must be an integer >= 0"):
        pc.continuation(model, "perfect", [0.5, 1.0], max_bisect=-1)
    with pytest.raises(ValueError, match="newton: unknown option"):
        pc.continuation(model, "perfect", [0.5, 1.0], newton={"rtol": 1e-3})


@pytest.mark.parametrize("parameter,values", [("drift", [0.0, 0.05, 0.1, 0.2]), ("weight_decay", [0.0, 0.2, 0.5])])
def test_continuation_in_drift_and_weight_decay_follows_the_linear_steady_state(parameter, values):
    """Linear perceptron: R*(delta, lambda) = eta / (eta (1 + lambda) + delta) along the branch from R = Q = 1."""
    eta = 0.4
    base = dict(drift=0.05, weight_decay=0.1)
    model = Committee(1, 1, "linear", eta=eta, **base)
    ds = pc.continuation(model, "perfect", values, parameter=parameter)
    assert ds[parameter].dims == (parameter,) and ds.attrs["parameter"] == parameter
    assert ds[parameter].attrs["long_name"] in ("teacher drift strength delta", "weight decay lambda")
    p = {**base, parameter: np.asarray(values)}
    R = eta / (eta * (1 + p["weight_decay"]) + p["drift"])
    assert np.allclose(ds.R.values[:, 0, 0], R, rtol=1e-12)
    assert (status_names(ds.status.values) == "converged").all() and f"crossing_{parameter}" in ds
    assert parameter not in ds.attrs  # the parameter is a coordinate, not an attribute


def test_continuation_with_a_trained_second_layer_and_bad_parameters():
    model = Committee(2, 2, "erf", train_second_layer=True, teacher_weights=[1.0, 0.8])
    ds = pc.continuation(model, "perfect", [0.5, 1.0, 1.5])
    assert ds.v.dims == ("eta", "i") and np.allclose(ds.v.values, [1.0, 0.8], atol=1e-12)
    with pytest.raises(ValueError, match=r"parameter: must be one of eta, weight_decay, drift, noise, got 'K'"):
        pc.continuation(model, "perfect", [1, 2], parameter="K")
    with pytest.raises(ValueError, match=r"values: need >= 2 strictly monotonic values of drift \(each >= 0\)"):
        pc.continuation(model, "perfect", [0.1, -0.1], parameter="drift")


def test_continuation_reports_progress_after_a_threshold_and_can_be_quiet(capsys, monkeypatch):
    from phasekit.core import parallel

    model = Committee(1, 1, "erf", eta=0.5)
    etas = [0.5, 1.0, 1.5, 2.0]
    monkeypatch.setattr(parallel, "PROGRESS_DELAY", 0.0)  # shown at once
    quiet = pc.continuation(model, "perfect", etas, progress=False)
    assert capsys.readouterr().err == ""
    shown = pc.continuation(model, "perfect", etas)
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("continuation in eta (K = 1, M = 1) [##############################] 4/4 values")
    np.testing.assert_array_equal(shown["R"].values, quiet["R"].values)  # the report changes no number
    monkeypatch.setattr(parallel, "PROGRESS_DELAY", 3.0)  # the default: a short branch says nothing
    pc.continuation(model, "perfect", etas)
    assert capsys.readouterr().err == ""


def test_continuation_of_a_reduced_model_equals_the_full_one():
    """erf K = M = 2, second order: the perfect solution's branch inside the site-symmetric subspace loses
    stability where the full one does (eta_c = 2.30683, also critical_eta's restricted value); with noise 0.2
    the reduced branch (R, S, Q, C, eps_g) is the full one's."""
    full = pk.Committee(2, 2, "erf", eta=1.0, second_order=True)
    red = full.restrict("site_symmetric")
    a = pk.continuation(red, "perfect", [1.5, 2.5], progress=False)
    b = pk.continuation(full, "perfect", [1.5, 2.5], progress=False)
    assert a.attrs["subspace"] == "site_symmetric" and "i" not in a.dims and list(a["n_unstable"].values) == [0, 1]
    assert float(a["crossing_eta"][0]) == pytest.approx(float(b["crossing_eta"][0]), rel=1e-8)
    assert float(a["crossing_eta"][0]) == pytest.approx(float(pk.critical_eta(red)), rel=1e-8)
    noisy = pk.Committee(2, 2, "erf", eta=1.0, second_order=True, noise=0.2)
    a = pk.continuation(noisy.restrict("site_symmetric"), "perfect", [0.5, 1.0, 1.5], progress=False)
    b = pk.continuation(noisy, "perfect", [0.5, 1.0, 1.5], progress=False)
    np.testing.assert_allclose(a["eg"].values, b["eg"].values, rtol=1e-9)
    np.testing.assert_allclose(a["S"].values, b["R"].values[:, 0, 1], rtol=0, atol=1e-10)
    np.testing.assert_allclose(a["C"].values, b["Q"].values[:, 0, 1], rtol=0, atol=1e-10)
