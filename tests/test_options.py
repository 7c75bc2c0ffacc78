"""Options objects: one set of defaults, validation, and parsing from study tables."""

import pytest

from phasekit.core.options import (NewtonOptions, ParallelOptions, SolverOptions, coerce_options,
                                   options_from_table)


def test_defaults_and_replace():
    s = SolverOptions()
    assert (s.method, s.rtol, s.atol, s.max_norm) == ("DOP853", 1e-9, 1e-14, 1e6)
    t = s.replace(rtol=1e-6)
    assert t.rtol == 1e-6 and s.rtol == 1e-9 and t.atol == s.atol
    assert NewtonOptions().tol == 1e-12 and NewtonOptions().max_iter == 100
    assert ParallelOptions().n_workers is None
    assert s.to_dict() == {"method": "DOP853", "rtol": 1e-9, "atol": 1e-14, "max_norm": 1e6}
    with pytest.raises(ValueError, match="rtl: not an option of SolverOptions"):
        s.replace(rtl=1.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "Euler"}, "method: must be one of DOP853"),
    ({"rtol": 0}, "rtol: must be a finite number > 0"),
    ({"atol": float("nan")}, "atol: must be a finite number > 0"),
    ({"rtol": True}, "rtol: must be a finite number > 0"),
])
def test_bad_solver_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SolverOptions(**kwargs)


def test_bad_newton_and_parallel_options():
    with pytest.raises(ValueError, match="max_iter: must be an integer >= 1"):
        NewtonOptions(max_iter=0)
    with pytest.raises(ValueError, match="n_workers"):
        ParallelOptions(n_workers=-1)
    with pytest.raises(ValueError, match="scheduler: must be an address"):
        ParallelOptions(scheduler=8786)


def test_coerce_and_tables():
    assert coerce_options(None, SolverOptions, "solver") == SolverOptions()
    assert coerce_options({"rtol": 1e-8}, SolverOptions, "solver").rtol == 1e-8
    with pytest.raises(ValueError, match="solver: unknown option"):
        coerce_options({"rtl": 1e-8}, SolverOptions, "solver")
    with pytest.raises(ValueError, match="solver: expected SolverOptions"):
        coerce_options(3, SolverOptions, "solver")
    assert options_from_table(SolverOptions, {"atol": 1e-12}, "solver").atol == 1e-12
    with pytest.raises(ValueError, match=r"^key 'solver.rtol': must be a finite number > 0, got -1"):
        options_from_table(SolverOptions, {"rtol": -1}, "solver")
    with pytest.raises(ValueError, match=r"^unknown key 'newton.tolerance'"):
        options_from_table(NewtonOptions, {"tolerance": 1e-9}, "newton")
