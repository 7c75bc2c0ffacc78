"""The status vocabulary, its CF encoding, and the result base."""

import numpy as np
import pytest
import xarray as xr

from phasekit.core.results import STATUS, SUCCESS, Result, check_status, status_attrs, status_codes, status_names


def test_codes_round_trip_and_are_cf_flags(tmp_path):
    names = np.array([["ok", "diverged"], ["missing", "not_reached"]], dtype=object)
    codes = status_codes(names)
    assert codes.dtype == np.int8 and codes.shape == (2, 2)
    assert np.array_equal(status_names(codes), names)
    attrs = status_attrs("point status")
    assert list(attrs["flag_values"]) == list(range(len(STATUS)))
    assert attrs["flag_meanings"].split() == list(STATUS)
    # the attributes survive netCDF and decode the codes again
    path = tmp_path / "s.nc"
    xr.Dataset({"status": (("a", "b"), codes, attrs)}).to_netcdf(path, engine="scipy")
    back = xr.load_dataset(path, engine="scipy")["status"]
    meanings = back.attrs["flag_meanings"].split()
    assert [[meanings[c] for c in row] for row in back.values.tolist()] == names.tolist()


def test_unknown_statuses_and_codes_are_refused():
    with pytest.raises(ValueError, match="status: must be one of ok, converged"):
        check_status("done")
    with pytest.raises(ValueError, match="must be one of"):
        status_codes(["ok", "fine"])
    with pytest.raises(ValueError, match=r"codes: must be in \[0, 6\]"):
        status_names([7])
    with pytest.raises(ValueError, match="codes: must be integers"):
        status_names([0.5])


def test_result_success_and_one_line_message():
    assert Result().success and Result(status="not_reached").success
    assert not Result(status="failed").success and not Result(status="diverged").success
    assert SUCCESS == {"ok", "converged", "not_reached", "marginal"}
    assert Result(status="failed", message="a\n  b").message == "a b"
    with pytest.raises(ValueError, match="status"):
        Result(status="broken")


# --- the generic fixed point ----------------------------------------------------------------


def test_classify_counts_unstable_directions():
    from phasekit.core.results import classify

    assert classify([-1.0, -2.0], 1e-9) == (0, "stable")
    assert classify([1e-12, -2.0], 1e-9) == (0, "marginal")
    assert classify([1.0, -2.0], 1e-9) == (1, "saddle")
    assert classify([1.0, 2.0 + 1j, 2.0 - 1j], 1e-9) == (3, "unstable")
    assert classify([np.nan, -1.0], 1e-9) == (0, "unclassified")


def test_generic_fixed_point_result_and_dataset(tmp_path):
    from phasekit.core.results import FixedPoint

    J = np.array([[-1.0, 0.5], [0.0, 2.0]])
    w, V = np.linalg.eig(J)
    order = np.argsort(-w.real)
    fp = FixedPoint(vector=[0.1, 0.2], eigenvalues=w[order], eigenvectors=V[:, order], jacobian=J, residual=0.0,
                    kind="saddle", n_unstable=1, eig_tol=1e-9, status="converged", message="converged")
    assert fp.success and not fp.stable and fp.labels == ("x0", "x1") and np.array_equal(fp.state, [0.1, 0.2])
    ds = fp.to_dataset()
    for name in list(ds.data_vars) + list(ds.coords):
        assert "long_name" in ds[name].attrs and "units" in ds[name].attrs
    ds.to_netcdf(tmp_path / "fp.nc", engine="scipy")
    back = xr.load_dataset(tmp_path / "fp.nc", engine="scipy")
    assert status_names(np.atleast_1d(back["status"].values.astype(int)))[0] == "converged"
    assert back.attrs["kind"] == "saddle" and np.allclose(back.eigenvalue_real.values, [2.0, -1.0])
    # a failed search is unclassified, whatever kind it was given; a bad kind or label count is refused
    failed = FixedPoint.unlinearised([0.1, 0.2], 1.0, status="failed", kind="stable", message="no root")
    assert failed.kind == "unclassified" and not failed.stable and np.all(np.isnan(failed.eigenvalues))
    with pytest.raises(ValueError, match="kind: must be one of"):
        FixedPoint.unlinearised([0.1], 0.0, kind="not_converged")
    with pytest.raises(ValueError, match="labels: need 2 component names"):
        FixedPoint.unlinearised([0.1, 0.2], 0.0, labels=("a",))
