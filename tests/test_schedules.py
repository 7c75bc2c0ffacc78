"""phasekit.committee.schedules: learning-rate schedules, their integrals and descriptions.

Independent routes: adaptive quadrature of the factor for the integral, the
defining formulas at sample times, and the round trip through the description.
"""

import math

import numpy as np
import pytest
from scipy.integrate import quad

import phasekit as pk
from phasekit.committee.model import committee_from_parameters
from phasekit.committee.schedules import (
    ConstantSchedule,
    FunctionSchedule,
    PiecewiseConstantSchedule,
    PowerLawSchedule,
    schedule_from_spec,
)

_SCHEDULES = [
    ConstantSchedule(),
    PowerLawSchedule(alpha0=2.0, p=1.0),
    PowerLawSchedule(alpha0=0.5, p=0.5),
    PowerLawSchedule(alpha0=3.0, p=1.0 + 1e-10),
    PowerLawSchedule(alpha0=1.0, p=2.5),
    PiecewiseConstantSchedule(boundaries=(1.0, 4.0), factors=(0.5, 0.1)),
    FunctionSchedule(lambda a: np.exp(-0.1 * np.asarray(a)), name="exp"),
]


@pytest.mark.parametrize("schedule", _SCHEDULES, ids=lambda s: repr(s))
def test_integral_matches_quadrature_of_the_factor(schedule):
    alphas = np.array([0.0, 0.3, 1.0, 2.5, 4.0, 17.0, 300.0])
    F = schedule.integral(alphas)
    assert F.shape == alphas.shape and F[0] == 0.0
    for a, Fa in zip(alphas, F):
        ref = quad(lambda t: float(schedule.factor(t)), 0.0, a, points=[1.0, 4.0] if 1 < a else None, limit=400)[0]
        assert Fa == pytest.approx(ref, rel=1e-9, abs=1e-12)
        assert float(schedule.integral(a)) == pytest.approx(Fa, rel=1e-14)
    assert float(schedule.factor(0.0)) == 1.0


def test_factors_follow_their_definitions():
    a = np.array([0.0, 0.5, 1.0, 3.9, 4.0, 10.0])
    assert np.allclose(PowerLawSchedule(alpha0=2.0, p=1.5).factor(a), (1 + a / 2.0) ** -1.5, rtol=1e-15)
    assert PiecewiseConstantSchedule((1.0, 4.0), (0.5, 0.1)).factor(a).tolist() == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
    # p = 1: eta alpha0 / (alpha0 + alpha); the integral is alpha0 log(1 + alpha / alpha0)
    s = PowerLawSchedule(alpha0=2.0)
    assert s.p == 1.0 and float(s.integral(10.0)) == pytest.approx(2.0 * math.log(6.0), rel=1e-15)
    # the model's rate and natural time
    model = pk.Committee(1, 1, eta=0.4, eta_schedule=s)
    assert model.eta_at(2.0) == pytest.approx(0.2) and model.scaled_time(10.0) == pytest.approx(0.8 * math.log(6.0))
    assert not model.autonomous and pk.Committee(1, 1).autonomous


@pytest.mark.parametrize("spec", [
    "constant", {"kind": "constant"}, {"kind": "power_law", "alpha0": 5.0}, {"kind": "power_law", "alpha0": 5, "p": 2},
    {"kind": "piecewise_constant", "boundaries": [1, 2], "factors": [0.5, 0.25]},
])
def test_descriptions_round_trip(spec):
    s = schedule_from_spec(spec)
    again = schedule_from_spec(s.to_dict())
    assert again == s and again.to_dict() == s.to_dict()
    model = pk.Committee(1, 1, eta_schedule=spec)
    assert committee_from_parameters(model.parameters()).eta_schedule == s


def test_a_callable_is_a_schedule_but_cannot_be_rebuilt():
    s = schedule_from_spec(lambda a: 1.0 / (1.0 + a))  # not vectorised over arrays of times: still works
    assert s.factor(np.array([0.0, 1.0])).tolist() == [1.0, 0.5]
    assert s.to_dict()["kind"] == "callable"
    with pytest.raises(ValueError, match=r"eta_schedule: the callable .* cannot be rebuilt from its description"):
        schedule_from_spec(s.to_dict())


@pytest.mark.parametrize("spec,match", [
    ("cosine", r"eta_schedule: kind must be one of constant, power_law, piecewise_constant, got 'cosine'"),
    ({"alpha0": 1.0}, r"eta_schedule: kind must be one of .*, got None"),
    ({"kind": "power_law"}, r"eta_schedule: kind 'power_law' needs alpha0"),
    ({"kind": "power_law", "alpha0": -1}, r"eta_schedule: alpha0 must be > 0, got -1"),
    ({"kind": "power_law", "alpha0": 1, "p": -0.5}, r"eta_schedule: p must be >= 0, got -0.5"),
    ({"kind": "power_law", "alpha0": "1"}, r"eta_schedule: alpha0 must be a finite number, got '1'"),
    ({"kind": "power_law", "alpha0": 1, "q": 2}, r"eta_schedule: unknown parameter\(s\) \['q'\] for kind 'power_law'"),
    ({"kind": "constant", "p": 1}, r"eta_schedule: unknown parameter\(s\) \['p'\] for kind 'constant' \(allowed: none\)"),
    ({"kind": "piecewise_constant", "boundaries": [2, 1], "factors": [1, 1]},
     r"eta_schedule: boundaries must be > 0 and strictly increasing, got \[2.0, 1.0\]"),
    ({"kind": "piecewise_constant", "boundaries": [1], "factors": [1, 2]},
     r"eta_schedule: need as many factors as boundaries"),
    ({"kind": "piecewise_constant", "boundaries": [1], "factors": [0]}, r"eta_schedule: factors must be > 0"),
    ({"kind": "piecewise_constant", "boundaries": "1", "factors": [1]},
     r"eta_schedule: boundaries must be a list of numbers"),
    (lambda a: 2.0, r"eta_schedule: a schedule multiplies eta, so it must be 1 at alpha = 0, got f\(0\) = 2.0"),
    (lambda a: 1.0 - a, r"eta_schedule: the factor must be finite and > 0, got f\(1\) = 0.0"),
    (lambda a: "x", r"eta_schedule: the callable must map alpha to a number"),
    (3.0, r"eta_schedule: expected None, a kind name, a table with 'kind', a Schedule or a callable, got float 3.0"),
])
def test_bad_schedules_are_refused_with_one_line(spec, match):
    with pytest.raises(ValueError, match=match):
        schedule_from_spec(spec)
    with pytest.raises(ValueError, match=match):
        pk.Committee(1, 1, eta_schedule=spec)
