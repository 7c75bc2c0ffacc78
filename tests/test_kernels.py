"""The kernels an Activation carries (phasekit.core.kernels): quadrature routes against closed forms,
and one set of kernels per activation object in every system."""

import numpy as np
import pytest

import phasekit as pk
from phasekit import propagation as prop
from phasekit.lazy_training import TwoLayer, init_student, make_teacher

from helpers_activations import ERF_QUAD, RELU_QUAD

Q = np.array([0.05, 0.7, 3.0, 15.0])
DELTA = np.array([1e-200, 1e-9, 5e-5, 1e-3, 0.3, 1.0, 1.9])


@pytest.mark.parametrize("closed,quad", [("erf", ERF_QUAD), ("relu", RELU_QUAD)])
def test_propagation_kernels_quadrature_against_closed_forms(closed, quad):
    exact = pk.activation(closed)
    for name, tol in (("variance_map", 1e-13), ("slope_moment", 1e-13), ("variance_map_slope", 1e-12)):
        np.testing.assert_allclose(getattr(quad, name)(Q), getattr(exact, name)(Q), rtol=tol, err_msg=name)
    if closed == "erf":
        np.testing.assert_allclose(quad.curvature_moment(Q), exact.curvature_moment(Q), rtol=1e-12)
    else:
        assert np.all(np.isnan(exact.curvature_moment(Q)))  # g'' is a delta function
    c = np.array([-0.95, -0.3, 0.0, 0.6, 0.999])
    np.testing.assert_allclose(quad.correlation_kernel(0.8, 2.5, c), exact.correlation_kernel(0.8, 2.5, c),
                               atol=1e-11)
    for q in (0.3, 4.0):
        np.testing.assert_allclose(quad.slope_correlation_kernel(q, DELTA[3:]),
                                   exact.slope_correlation_kernel(q, DELTA[3:]), atol=1e-10)
        # W keeps the relative precision of delta over 200 decades
        np.testing.assert_allclose(quad.delta_kernel(q, DELTA) / exact.delta_kernel(q, DELTA), 1.0, atol=1e-10)


def test_pair_moments_quadrature_against_closed_forms():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(8, 2, 3)) * 0.5
    C = A @ np.swapaxes(A, -1, -2)
    e = (C[:, 0, 0], C[:, 1, 1], C[:, 0, 1])
    erf = pk.activation("erf")
    for x, y in zip(ERF_QUAD.pair_moments(*e, nodes=40), erf.pair_moments(*e)):
        np.testing.assert_allclose(x, y, atol=1e-12)
    T, D = ERF_QUAD.third_moments(*e, nodes=40)
    T_exact, D_exact = erf.third_moments(*e)
    np.testing.assert_allclose(D, D_exact, atol=1e-12)
    np.testing.assert_allclose(T, T_exact, atol=1e-8)  # g''' by central differences
    for x, y in zip(ERF_QUAD.relu_moments(*e, nodes=40), erf.relu_moments(*e)):
        np.testing.assert_allclose(x, y, atol=1e-10)
    # the committee moments of the same pairs
    np.testing.assert_allclose(erf.pair_moments(*e)[0], erf.I2(C), rtol=1e-15)
    np.testing.assert_allclose(pk.activation("relu").pair_moments(*e)[3], pk.activation("relu").J2(C), rtol=1e-15)


def test_closed_forms_only_helpers():
    C = np.array([[1.0, 0.3], [0.3, 2.0]])
    assert pk.activation("relu").J2grad(C)[0] == pytest.approx(pk.activation("relu").J2(C), rel=1e-15)
    assert pk.activation("relu").D2(1.0, 0.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="activation: 'tanh' has no closed form 'J2grad'"):
        pk.activation("tanh").J2grad(C)
    assert pk.activation("relu").positively_homogeneous and pk.activation("linear").positively_homogeneous
    assert not pk.activation("tanh").positively_homogeneous and not pk.activation("elu").positively_homogeneous


def _kernels_in_every_system(act):
    """A number from each system that asks the activation for its kernels."""
    committee = pk.Committee(K=2, M=2, activation=act, eta=0.5, second_order=True)
    state = pk.State(np.array([[0.4, 0.1], [0.05, 0.3]]), np.array([[0.6, 0.1], [0.1, 0.5]]))
    flow = committee.rhs_vector(state.to_vector())
    maps = np.array([prop.q_map(act, 0.8, 1.5, 0.1), prop.c_map(act, 0.4, 1.5, 0.1, q1=0.7, q2=1.2),
                     prop.delta_map(act, 1e-6, 1.5, 0.1, q=0.9)])
    problem = TwoLayer(make_teacher(4, 2, seed=1), act)
    loss = problem.loss(init_student(4, 4, 0.7, seed=2, symmetric=False))
    return flow, maps, loss


def test_a_user_activation_gets_the_same_kernels_in_every_system():
    """Kernels come from the object, never from its name: a user copy of relu with relu's closed forms
    equals relu everywhere; an object *named* relu but computing 2 relu gets 2 relu's kernels."""
    relu = pk.activation("relu")
    copy = pk.register_activation("relu-user", relu.g, relu.dg, closed_forms=relu.closed_forms, overwrite=True)
    for a, b in zip(_kernels_in_every_system("relu"), _kernels_in_every_system(copy)):
        np.testing.assert_array_equal(a, b)
    double = pk.Activation("relu", lambda x: 2.0 * np.maximum(x, 0.0), lambda x: 2.0 * (x > 0),
                           lambda x: np.zeros_like(x))
    # 2 relu has twice relu's variance map and four times its pair kernels (quadrature routes)
    assert prop.q_map(double, 0.8, 1.5, 0.1) == pytest.approx(0.1 + 1.5 * 4 * 0.4, rel=1e-13)
    p_relu = TwoLayer(make_teacher(4, 2, seed=1), "relu", scale=2.0)
    p_double = TwoLayer(make_teacher(4, 2, seed=1), double, quadrature_nodes=64)
    s = init_student(4, 4, 0.7, seed=2, symmetric=False)
    assert p_double.loss(s) == pytest.approx(p_relu.loss(s), rel=2e-3)  # relu's kink limits Gauss-Hermite


def test_an_unregistered_copy_without_closed_forms_gets_quadrature_everywhere():
    for a, b, tol in zip(_kernels_in_every_system("erf"), _kernels_in_every_system(ERF_QUAD), (1e-7, 1e-11, 1e-11)):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
