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
