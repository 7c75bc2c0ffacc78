"""Deep-linear measures: the closed form checked on its ODE, and the trained network, at a point."""

import numpy as np
import pytest

from phasekit import deep_linear as ld
from phasekit.study.runner import evaluate_point
from phasekit.study.schema import StudyError, parse_study

STUDY = {"name": "d", "system": "deep_linear", "model": {"singular_values": [3.0, 1.0], "u0": 1e-3},
         "grid": {"depth": [2], "weight_decay": [0.2]}, "integration": {"t_max": 4.0, "n_times": 21},
         "measures": {"modes": {}, "trained_network": {"learning_rate": 0.01}}}


def test_modes_and_trained_network():
    v = evaluate_point(parse_study(STUDY), 0)["values"]
    times = np.linspace(0.0, 4.0, 21)
    th = ld.mode_trajectories([3.0, 1.0], times, 1e-3, depth=2, weight_decay=0.2)
    np.testing.assert_array_equal(v["u"], th["u"].values)
    assert v["max_ode_deviation"] <= 1e-9
    sim = ld.simulate_deep_linear([3.0, 1.0], depth=2, u0=1e-3, weight_decay=0.2, learning_rate=0.01, t_max=4.0,
                                  n_records=21)
    np.testing.assert_array_equal(v["u_sim"], sim["u_sim"].values)
    assert float(np.abs(v["u_sim"] - v["u_sim_theory"]).max()) < 0.2  # gradient descent follows the flow


def test_trained_network_needs_unit_tau():
    with pytest.raises(StudyError, match="measures.trained_network"):
        parse_study({**STUDY, "model": {**STUDY["model"], "tau": 2.0}})
