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
