"""The systems' parameter specifications: types, ranges and literals, checked with one-line problems."""

import pytest

from phasekit.study.systems import SYSTEMS, Parameter, get_system


def test_every_parameter_has_a_table_a_long_name_and_a_default_that_checks():
    for system in SYSTEMS.values():
        for name, p in system.parameters.items():
            assert p.name == name and p.long_name and p.table in system.tables
            if p.default is not None:
                assert p.check(p.default) == p.default


@pytest.mark.parametrize("param, value, problem", [
    (Parameter("eta", "number", low=0.0, low_open=True), 0.0, "must be > 0, got 0"),
    (Parameter("K", "integer", low=1), 2.5, "must be an integer >= 1, got float 2.5"),
    (Parameter("K", "integer", low=1), True, "must be an integer"),
    (Parameter("b", "boolean"), 1, "must be true or false"),
    (Parameter("k", "choice", choices=("a", "b")), "c", "must be one of a, b, got 'c'"),
    (Parameter("g", "activation"), "sine", "unknown activation 'sine'"),
    (Parameter("q", "numbers", low=0.0, low_open=True), [0.2, -1.0], "[1] must be > 0, got -1"),
    (Parameter("r", "matrix"), [[1.0], [1.0, 2.0]], "rows must have equal lengths"),
])
def test_bad_values_are_named(param, value, problem):
    with pytest.raises(ValueError) as info:
        param.check(value)
    assert problem in str(info.value)


def test_literals_and_lists():
    assert get_system("committee").parameters["M"].check("K") == "K"
    assert get_system("propagation").parameters["sigma_w2"].check("edge_of_chaos") == "edge_of_chaos"
    q0 = get_system("committee").parameters["Q0"]
    assert q0.check(0.25) == 0.25 and q0.check([0.2, 0.3]) == [0.2, 0.3] and q0.check([[1, 0], [0, 1]]) == [[1, 0], [0, 1]]
    with pytest.raises(ValueError, match="must be one of committee, propagation, deep_linear, lazy_training"):
        get_system("spin_glass")
