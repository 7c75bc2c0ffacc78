"""Lazy-training measures: one training run per point, shared by the training and tangent measures."""

import numpy as np

from phasekit.lazy_training.training import run_two_layer
from phasekit.study.runner import evaluate_point
from phasekit.study.schema import parse_study


def test_training_and_tangent_are_one_run_two_layer():
    st = parse_study({"name": "l", "system": "lazy_training", "model": {"d": 3, "m0": 1, "m": 2, "tau": 0.5},
                      "training": {"T": 5.0}, "grid": {"seed": [1]}, "measures": {"training": {}, "tangent": {}}})
    rec = evaluate_point(st, 0)
    ref = run_two_layer(d=3, m0=1, m=2, tau=0.5, seed=1, T=5.0)
    v = rec["values"]
    for k in ("loss", "loss_initial", "weight_displacement", "tangent_loss", "relative_tangent_distance"):
        assert v[k] == ref[k], k
    assert v["t_end"] == ref["t_final"] and rec["status"] == "ok"


def test_training_alone_skips_the_tangent_model():
    st = parse_study({"name": "l", "system": "lazy_training", "model": {"d": 3, "m0": 1, "m": 2},
                      "training": {"T": 2.0}, "measures": {"training": {}}})
    v = evaluate_point(st, 0)["values"]
    assert np.isfinite(v["loss"]) and "tangent_loss" not in v
