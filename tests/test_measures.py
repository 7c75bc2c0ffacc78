"""The measure registry and the point context: one registry for every system, explicit context, status by value."""

import math

import numpy as np
import pytest

from phasekit.core.results import STATUS
from phasekit.study.measures import MEASURES, Outcome, PointContext, register_measure, worst_status
from phasekit.study.registry import MEASURES as LOADED
from phasekit.study.runner import evaluate_point
from phasekit.study.schema import parse_study
from phasekit.study.systems import SYSTEMS


def test_one_registry_for_every_system():
    assert LOADED is MEASURES
    systems = {m.system for m in MEASURES.values()}
    assert systems == set(SYSTEMS)
    for m in MEASURES.values():
        assert m.outputs and m.description, m.name
        for name, out in m.outputs.items():
            assert out.long_name and isinstance(out.units, str), (m.name, name)
        for name, p in m.settings.items():
            assert p.name == name


def test_outcome_status_is_one_of_the_vocabulary():
    assert Outcome({"x": 1.0}).status == "ok"
    with pytest.raises(ValueError, match="status: must be one of"):
        Outcome({}, "reached")


def test_worst_status_precedence():
    assert worst_status([]) == "ok"
    assert worst_status(["ok", "converged"]) == "converged"
    assert worst_status(["converged", "not_reached"]) == "not_reached"
    assert worst_status(["failed", "diverged", "ok"]) == "diverged"
    assert worst_status(["failed", "marginal"]) == "failed"
    assert set(worst_status([s]) for s in STATUS if s != "missing") <= set(STATUS)


def _study(**over):
    d = {"name": "t", "model": {"K": 1, "M": 1, "activation": "erf"}, "grid": {"eta": [0.5, 1.0]},
         "integration": {"eta_alpha_max": 20.0, "n_points": 11}, "measures": {"final_eg": {}}}
    d.update(over)
    return parse_study(d)


def test_context_holds_the_point_and_shares_computations():
    calls = []

    @register_measure("probe_a", {"a": ("a", "1")}, settings={"scale": None})
    def probe_a(ctx, settings):
        v = ctx.shared("twice", lambda: calls.append(1) or 2 * ctx.params["eta"])
        return {"a": v * (settings["scale"] or 1.0)}

    @register_measure("probe_b", {"b": ("b", "1")})
    def probe_b(ctx, settings):
        return Outcome({"b": ctx.shared("twice", lambda: calls.append(1) or -1.0)}, "not_reached", "why")

    try:
        st = _study(measures={"probe_a": {"scale": 10.0}, "probe_b": {}}, grid={"eta": [0.5, 1.0]})
        rec = evaluate_point(st, 1)
        ctx = PointContext(st, 1)
        assert ctx.params["eta"] == 1.0 and ctx.settings("probe_a") == {"scale": 10.0}
        st2 = _study(measures={"probe_a": {"scale": 10.0}}, grid={"scale": [3.0]})
        assert PointContext(st2, 0).settings("probe_a") == {"scale": 3.0}  # the grid sets the setting
    finally:
        MEASURES.pop("probe_a")
        MEASURES.pop("probe_b")
    assert rec["values"] == {"a": 20.0, "b": 2.0}
    assert len(calls) == 1  # computed once for the point, used by both measures
    assert rec["status"] == "not_reached" and rec["message"] == "why"


def test_a_raising_measure_fails_its_point_with_the_message_and_others_still_run():
    @register_measure("fragile", {"fragile": ("a test measure", "1")})
    def fragile(ctx, settings):
        raise RuntimeError("boom")

    try:
        rec = evaluate_point(_study(measures={"fragile": {}, "final_eg": {}}), 0)
    finally:
        MEASURES.pop("fragile")
    assert rec["status"] == "failed" and "fragile: RuntimeError: boom" in rec["message"]
    assert math.isfinite(rec["values"]["final_eg"])


def test_a_measure_returning_undeclared_or_misshaped_values_fails():
    @register_measure("sloppy", {"x": ("x", "1")})
    def sloppy(ctx, settings):
        return {"y": 1.0}

    @register_measure("shaped", {"x": ("x", "1")})
    def shaped(ctx, settings):
        return {"x": np.ones(3)}

    try:
        a = evaluate_point(_study(measures={"sloppy": {}}), 0)
        b = evaluate_point(_study(measures={"shaped": {}}), 0)
    finally:
        MEASURES.pop("sloppy")
        MEASURES.pop("shaped")
    assert a["status"] == "failed" and "not one of its outputs" in a["message"]
    assert b["status"] == "failed" and "1 dims, declared ()" in b["message"]


def test_changes_move_a_point_between_grid_values():
    st = _study()
    rec = evaluate_point(st, 0, changes={"eta": 0.75})
    direct = evaluate_point(_study(grid={"eta": [0.75]}), 0)
    assert rec["values"] == direct["values"]
