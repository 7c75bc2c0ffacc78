"""Dataset metadata: the catalog of variables, the model-attribute block, provenance (phasekit.core.datasets)."""

import json

import numpy as np
import pytest
import xarray as xr

from phasekit.core.datasets import (
    VARIABLES,
    attrs_for,
    coordinate,
    format_repr,
    format_value,
    model_attrs,
    provenance_attrs,
    to_jsonable,
)


def test_catalog_entries_build_variables_and_coordinates():
    for name in ("R", "Q", "eg", "alpha", "eta_alpha", "i", "k", "n", "eta", "K", "M", "activation", "X",
                 "noise", "q_star", "layer", "u", "time", "tangent_distance"):
        long_name, units = VARIABLES[name]
        assert long_name and isinstance(units, str)
    ds = xr.Dataset({"eg": ("alpha", np.zeros(3), attrs_for("eg"))}, coords={"alpha": coordinate("alpha", [0, 1, 2])})
    assert ds["eg"].attrs == {"long_name": "generalisation error eps_g", "units": "1"}
    assert ds["alpha"].attrs["long_name"] == "examples per input dimension alpha"
    assert attrs_for("loss", long_name="training loss")["long_name"] == "training loss"
    assert attrs_for("new", long_name="something", units="m")["units"] == "m"
    with pytest.raises(ValueError, match="name: 'new' is not in the catalog"):
        attrs_for("new")
    with pytest.raises(TypeError):
        VARIABLES["R"] = ("x", "1")


def test_model_block_round_trips_the_parameters():
    params = {"K": 2, "M": 3, "activation": "erf", "teacher_activation": "relu", "eta": 0.5,
              "second_order": True, "noise": 0.0, "T": [[1.0, 0.0], [0.0, 1.0]]}
    attrs = model_attrs(params)
    assert attrs["K"] == 2 and attrs["second_order"] == 1 and attrs["teacher_activation"] == "relu"
    assert json.loads(attrs["model"]) == params
    assert "eta" not in model_attrs(params, exclude=("eta",))


def test_formatting_and_provenance():
    assert format_value(0.123456789) == "0.1235" and format_value(np.float32(2.5), 3) == "2.5"
    assert format_value(float("nan"), nan="-") == "-" and format_value(np.inf) == "inf"
    assert format_value(-np.inf) == "-inf" and format_value(np.int64(3)) == "3" and format_value("x") == "x"
    assert format_repr("a" * 100).endswith("...") and len(format_repr("a" * 100)) == 60
    attrs = provenance_attrs({"x": np.arange(3), "y": float("inf")}, kind="test")
    assert json.loads(attrs["parameters"]) == {"x": [0, 1, 2], "y": "inf"} and attrs["kind"] == "test"
    assert to_jsonable((np.float64(1.5), {"a": np.bool_(True)})) == [1.5, {"a": True}]


def test_a_study_run_with_files_never_imports_dask_yet_dask_arrays_stay_dask_arrays(tmp_path):
    # xarray imports dask (0.5-1 s per process) when it writes netCDF or builds a variable; a run
    # that uses no dask must not pay it, and once dask is imported xarray must still see its arrays.
    import subprocess
    import sys

    code = ("import sys, numpy as np, xarray as xr\n"
            "from phasekit.study.runner import run_study\n"
            "study = {'name': 't', 'model': {'K': 1, 'M': 1, 'activation': 'erf'}, 'grid': {'eta': [0.5, 1.0]},\n"
            "         'integration': {'eta_alpha_max': 20.0, 'n_points': 11}, 'measures': {'final_eg': {}}}\n"
            f"ds = run_study(study, outdir={str(tmp_path)!r}, progress=False)\n"
            f"back = xr.load_dataset({str(tmp_path / 't.nc')!r}, engine='scipy')\n"
            "assert np.array_equal(back['final_eg'].values, ds['final_eg'].values)\n"
            "loaded = [m for m in ('dask', 'distributed') if m in sys.modules]\n"
            "assert not loaded, loaded\n"
            "import dask.array as da\n"
            "lazy = xr.DataArray(da.ones(4, chunks=2), dims='x', name='y')\n"
            "assert lazy.chunks == ((2, 2),), lazy.chunks\n"
            f"lazy.to_netcdf({str(tmp_path / 'y.nc')!r}, engine='scipy')\n"
            f"assert xr.load_dataarray({str(tmp_path / 'y.nc')!r}, engine='scipy').values.tolist() == [1.0] * 4\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
