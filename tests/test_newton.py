"""phasekit.committee.newton: Newton iterations that never leave the cone.

Independent routes: the cone's own margin and the flow's residual at the
result, and counts of right-hand-side evaluations.
"""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import phasekit.committee as pc
from helpers_committee import Counting, interior_vector
from phasekit.committee.cone import _inward_direction, _margin
from phasekit.committee.jacobians import _central_jacobian, _forward_inward_jacobian
from phasekit.committee.model import Committee
from phasekit.committee.newton import _newton


@st.composite
def guesses(draw):
    act = draw(st.sampled_from(["erf", "relu"]))
    K = draw(st.integers(1, 3))
    M = draw(st.integers(1, 2))
    n = K * M + K * (K + 1) // 2
    v = np.array(draw(st.lists(st.floats(-1.5, 1.5), min_size=n, max_size=n)))
    return act, K, M, v


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(guesses())
def test_random_guesses_never_leave_the_cone(case):
    act, K, M, v = case
    model = Committee(K, M, act, eta=0.5, second_order=False)
    fp = pc.find_fixed_point(model, v, newton={"max_iter": 40})
    model.validate_state(fp.state)  # PSD to the project tolerance and Q_ii > 0
    assert _margin(model, fp.vector) >= -1e-14
    assert np.isclose(fp.residual, np.abs(model.rhs_vector(fp.vector)).max(), rtol=1e-6, atol=1e-15)
    assert fp.residual < 1e-10 or fp.status == "failed"
    if fp.status == "failed":
        assert fp.kind == "unclassified" and not fp.stable and not fp.success


def test_newton_jacobians_cost_at_most_2n_plus_1_states():
    rng = np.random.default_rng(4)
    model = Counting(2, 2, "erf", eta=1.0, second_order=False)
    v = interior_vector(rng, 2, 2)
    n = model.n_state
    f, J = _central_jacobian(model.rhs_vector, v, 1e-6)
    assert model.rows == 2 * n + 1 and model.calls == 1
    d_in, gamma = _inward_direction(model, v)
    f2, J2 = _forward_inward_jacobian(model.rhs_vector, v, d_in, gamma, 1e-8)
    assert model.rows == (2 * n + 1) + (n + 2) and model.calls == 2
    assert np.abs(J2 - J).max() < 1e-6


def test_tolerance_and_iteration_limit_reach_the_iteration():
    """The ReLU K = M = 2 plateau from a nearby guess: quadratic convergence, stopped by tol or max_iter."""
    model = Committee(2, 2, "relu", eta=1.0, second_order=False)
    v0 = pc.symmetric_plateau(model).vector + 0.05 * np.array([0.3, -0.2, 0.1, 0.4, 0.2, -0.1, 0.3])
    loose = _newton(model, v0, tol=1e-3, max_iter=100)
    tight = _newton(model, v0, tol=1e-13, max_iter=100)
    assert loose.converged and tight.converged and loose.iterations < tight.iterations
    assert 1e-13 < loose.residual <= 1e-3 and tight.residual <= 1e-13
    one = _newton(model, v0, tol=1e-13, max_iter=1)
    assert not one.converged and one.message == "maximum number of iterations reached"
    fp = pc.find_fixed_point(model, v0, newton={"tol": 1e-13, "max_iter": 1})
    assert fp.status == "failed" and "maximum number of iterations" in fp.message
    assert pc.find_fixed_point(model, v0, newton={"tol": 1e-13}).status == "converged"
