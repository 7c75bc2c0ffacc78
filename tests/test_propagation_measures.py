"""Propagation measures: the phase and depth profile at a point are the system's own functions."""

import numpy as np
import pytest

from phasekit import propagation as prop
from phasekit.study.runner import evaluate_point
from phasekit.study.schema import parse_study


def test_phase_measure_is_phase_point():
    st = parse_study({"name": "p", "system": "propagation", "model": {"activation": "tanh"},
                      "grid": {"sigma_b2": [0.1], "sigma_w2": [0.8, 2.5]}, "measures": {"phase": {}}})
    for j, sw in enumerate((0.8, 2.5)):
        v = evaluate_point(st, j)["values"]
        ref = prop.phase_point("tanh", sw, 0.1)
        assert v == {**ref, "phase": float(ref["phase"])}
    assert evaluate_point(st, 1)["values"]["chi_1"] == pytest.approx(prop.chi_1("tanh", 2.5, 0.1), rel=1e-14)


def test_depth_profile_on_the_edge_of_chaos():
    st = parse_study({"name": "d", "system": "propagation",
                      "grid": {"case": [{"name": "relu", "activation": "relu", "sigma_w2": 2.0, "q": 1.0},
                                        {"name": "tanh", "activation": "tanh", "sigma_w2": "edge_of_chaos",
                                         "sigma_b2": 0.05}]},
                      "measures": {"depth_profile": {"depth": 50}}})
    relu, tanh = evaluate_point(st, 0), evaluate_point(st, 1)
    assert relu["values"]["asymptote"] == pytest.approx(4.5 * np.pi ** 2)
    sw, _ = prop.edge_of_chaos("tanh", 0.05)
    assert tanh["derived"]["sigma_w2"] == sw
    ref = prop.correlation_depth_profile("tanh", sw, 0.05, 50)
    np.testing.assert_array_equal(tanh["values"]["one_minus_c"], ref["one_minus_c"].values)
    assert tanh["values"]["chi_1"] == pytest.approx(1.0, abs=1e-9)  # on the edge of chaos
