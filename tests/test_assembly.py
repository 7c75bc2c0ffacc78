"""The one dataset layout: grid dims and their coordinates, parameters as values, padded extra dims, CF status."""

import numpy as np

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
