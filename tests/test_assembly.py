"""The one dataset layout: grid dims and their coordinates, parameters as values, padded extra dims, CF status."""

import numpy as np
import pytest

from phasekit.core.results import STATUS
from phasekit.study.assembly import assemble, record_dataset
from phasekit.study.runner import evaluate_point, run_study
from phasekit.study.schema import parse_study


def test_parameters_are_coordinates_with_values():
    st = parse_study({"name": "c", "model": {"M": "K", "activation": "relu", "noise": 0.0},
                      "grid": {"K": [1, 2, 3]}, "initial": {"X": 1e-2},
                      "integration": {"eta_alpha_max": 5.0, "n_points": 3}, "measures": {"final_eg": {}}})
    ds = run_study(st, progress=False)
    assert list(ds["M"].values) == [1, 2, 3] and ds["M"].dims == ("K",)  # M = K as values, not "K"
    assert ds["activation"].values.item() == "relu" and float(ds["eta"]) == 0.1 and float(ds["X"]) == 1e-2
    assert int(ds["second_order"]) == 1 and ds["K"].attrs["units"] == ""
    assert "kind" not in ds.coords  # a start setting the study leaves at its default is not shown
    assert ds["status"].dtype == np.int8
    assert list(ds["status"].attrs["flag_values"]) == list(range(len(STATUS)))
    assert ds["status"].attrs["flag_meanings"] == " ".join(STATUS)


def test_ragged_trajectories_are_padded_with_nan_and_units_up_to_the_largest_K():
    st = parse_study({"name": "r", "model": {"M": "K", "activation": "erf"}, "grid": {"K": [1, 2]},
                      "integration": {"eta_alpha_max": 200.0, "n_points": 11, "stop_eg": 5e-2},
                      "measures": {"trajectory": {}}})
    ds = run_study(st, progress=False)
    assert ds["R"].dims == ("K", "sample", "i", "n") and ds.sizes["i"] == 2 and list(ds["i"].values) == [1, 2]
    one = ds.sel(K=1)
    assert np.all(np.isnan(one["R"].values[:, 1, :])) and np.all(np.isnan(one["R"].values[:, :, 1]))
    for K in (1, 2):
        a = ds["alpha"].sel(K=K).values
        n = int(np.isfinite(a).sum())
        assert a[n - 1] == float(ds["alpha_end"].sel(K=K)) and np.all(np.isnan(a[n:]))
        if ds["status"].attrs["flag_meanings"].split()[int(ds["status"].sel(K=K))] == "converged":
            # stopped at stop_eg: still n_points samples, evenly up to the stop
            np.testing.assert_allclose(a, np.linspace(0.0, a[-1], 11), rtol=1e-14)


def test_case_and_dependent_axes_have_their_coordinates():
    st = parse_study({"name": "e", "system": "propagation",
                      "grid": {"activation": ["relu", "tanh"],
                               "sigma_w2": {"start": 0.5, "stop": {"relu": 3.0, "tanh": 4.0}, "num": 3}},
                      "measures": {"phase": {}}})
    ds = run_study(st, progress=False)
    assert ds["sigma_w2"].dims == ("activation", "sigma_w2_index")
    np.testing.assert_array_equal(ds["sigma_w2"].sel(activation="tanh").values, np.linspace(0.5, 4.0, 3))
    cases = parse_study({"name": "c", "system": "propagation",
                         "grid": {"case": [{"name": "a", "activation": "tanh", "sigma_w2": "edge_of_chaos",
                                            "sigma_b2": 0.1},
                                           {"name": "b", "activation": "erf", "sigma_w2": 2.0, "sigma_b2": 0.0}]},
                         "measures": {"phase": {}}})
    dc = run_study(cases, progress=False)
    assert list(dc["case"].values) == ["a", "b"] and list(dc["activation"].values) == ["tanh", "erf"]
    assert dc["sigma_w2"].dims == ("case",) and dc["sigma_w2"].values[1] == 2.0  # computed where asked
    assert dc["sigma_w2"].attrs["note"] == "computed at each point"


def test_missing_and_lost_points():
    st = parse_study({"name": "m", "grid": {"eta": [0.1, 0.2, 0.3]}, "integration": {"eta_alpha_max": 1.0},
                      "measures": {"final_eg": {}}})
    recs = record_dataset(st, [evaluate_point(st, 0)])
    ds = assemble(st, recs, lost={2: "batch failed: worker died"})
    names = np.array(STATUS)[ds["status"].values]
    assert list(names) == ["ok", "missing", "failed"] and ds["message"].values[2] == "batch failed: worker died"
    assert np.isnan(ds["final_eg"].values[1]) and ds.attrs["n_missing"] == 1 and ds.attrs["n_failed"] == 1


def test_an_output_carries_only_the_grid_dims_it_depends_on():
    from phasekit.committee import Committee, critical_eta

    st = parse_study({"name": "d", "model": {"M": "K", "activation": "relu"},
                      "grid": {"K": [1, 2], "eta": [0.5, 1.0], "X": [1e-3, 1e-2]},
                      "integration": {"eta_alpha_max": 2.0, "n_points": 3},
                      "measures": {"eta_c": {}, "final_eg": {}}})
    ds = run_study(st, progress=False)
    assert ds["eta_c"].dims == ("K",) and ds["crossing_real"].dims == ("K",)  # not over eta or the start X
    assert ds["final_eg"].dims == ("K", "eta", "X")
    for K in (1, 2):  # the value of every point, computed directly
        direct = float(critical_eta(Committee(K=K, M=K, activation="relu", eta=1.0, second_order=True)))
        assert float(ds["eta_c"].sel(K=K)) == direct
    assert float(ds["eta_c"].sel(K=1)) == pytest.approx(2.0, rel=1e-9)  # the ReLU perceptron's closed form


def test_a_dropped_dim_keeps_the_first_computed_value_and_refuses_a_dependent_one():

    from phasekit.study.assembly import _collapse

    a = np.array([[np.nan, 3.0, 3.0], [5.0, np.nan, 5.0]])  # (K, eta): the first point of K = 1 is missing
    np.testing.assert_array_equal(_collapse(a, ("K", "eta"), ("K",), "x"), [3.0, 5.0])
    np.testing.assert_array_equal(_collapse(np.full((2, 2), np.nan), ("K", "eta"), ("K",), "x"), [np.nan] * 2)
    with pytest.warns(RuntimeWarning, match="x: differs along eta"):  # it does depend on eta: kept as it is
        assert _collapse(np.array([[1.0, 2.0]]), ("K", "eta"), ("K",), "x") is None
    # an axis whose values depend on a kept one is kept with it
    st = parse_study({"name": "e", "system": "propagation",
                      "grid": {"activation": ["relu", "tanh"],
                               "sigma_w2": {"start": 0.5, "stop": {"relu": 3.0, "tanh": 4.0}, "num": 3}},
                      "measures": {"phase": {}}})
    from phasekit.study.assembly import output_dims
    from phasekit.study.measures import Output

    assert output_dims(st, Output("x", ignores=("activation",))) == ("activation", "sigma_w2_index")
    assert output_dims(st, Output("x", ignores=("activation", "sigma_w2"))) == ()
    assert output_dims(st, Output("x", ignores=("sigma_w2",))) == ("activation",)
