"""phasekit.committee.jacobians: central differences inside the cone, the one-sided limit on its boundary.

Independent routes: five-point finite differences coded here, the exact ReLU
perceptron Jacobian on the boundary (published spectrum), and the full
(unreduced) cone scheme against the symmetry-reduced one.
"""

import numpy as np
import pytest

import phasekit as pk
import phasekit.committee as pc
from helpers_committee import A_PERCEPTRON, B_PERCEPTRON, Counting, interior_vector
from phasekit.committee.jacobians import _cone_jacobian
from phasekit.committee.model import Committee, State
from phasekit.committee.symmetry import _state_symmetry


def _richardson_jacobian(f, v, h):
    """Five-point central differences (error O(h^4)), coded independently of the module."""
    n = v.size
    J = np.empty((f(v).size, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = h
        J[:, j] = (-f(v + 2 * e) + 8 * f(v + e) - 8 * f(v - e) + f(v - 2 * e)) / (12 * h)
    return J


@pytest.mark.parametrize("act,second", [("erf", True), ("relu", False), ("tanh", False)])
def test_interior_jacobian_costs_one_call_of_2n_plus_1_states(act, second):
    rng = np.random.default_rng(3)
    model = Counting(2, 2, act, eta=0.7, second_order=second)
    v = interior_vector(rng, 2, 2)
    jac = pc.jacobian(model, v)
    assert jac.scheme == "central" and jac.n_rhs == 2 * model.n_state + 1
    assert model.calls == 1 and model.rows <= 2 * model.n_state + 1
    ref = _richardson_jacobian(model.rhs_vector, v, 1e-3)
    assert np.abs(np.asarray(jac) - ref).max() < 1e-8 * max(1.0, np.abs(ref).max())
    assert np.allclose(jac.rhs, model.rhs_vector(v), rtol=0, atol=1e-15)


@pytest.mark.parametrize("eta", [0.5, 1.5])
def test_cone_jacobian_of_relu_perceptron_is_exact(eta):
    """At R = Q = 1 the ReLU flow is not analytic; the one-sided limit is eta A + eta^2 B exactly."""
    model = Committee(1, 1, "relu", eta=eta, second_order=True)
    jac = pc.jacobian(model, State([[1.0]], [[1.0]]))
    assert jac.scheme == "cone" and jac.margin <= 1e-12
    exact = eta * A_PERCEPTRON + eta**2 * B_PERCEPTRON
    err = np.abs(jac.matrix - exact).max()
    assert err < 1e-10 and err <= 10 * jac.error
    assert jac.symmetry == "none" and np.array_equal(jac.rhs, [0.0, 0.0])


def test_symmetry_reduced_cone_jacobian_equals_the_full_one():
    model = Committee(3, 3, "erf", eta=1.0, second_order=False)
    v = pc.symmetric_plateau(model).vector
    sym = _state_symmetry(model, v)
    _, J_sym, _, n_sym = _cone_jacobian(model, model.rhs_vector, v, sym)
    _, J_full, _, n_full = _cone_jacobian(model, model.rhs_vector, v, None)
    assert n_sym < n_full
    assert np.abs(J_sym - J_full).max() < 1e-9
    jac = pc.jacobian(model, v)
    assert jac.scheme == "cone" and jac.symmetry == "separate" and jac.n_rhs == n_sym


def test_jacobian_result():
    model = Committee(2, 2, "erf", eta=0.5)
    v = interior_vector(np.random.default_rng(1), 2, 2)
    jac = pc.jacobian(model, v)
    assert isinstance(jac, pk.Jacobian) and isinstance(jac, pk.Result)
    assert jac.status == "ok" and jac.success and jac.message == "central scheme"
    assert np.isnan(jac.error) and jac.step > 0 and jac.margin > 0 and jac.shape == (7, 7)
    assert np.array_equal(np.asarray(jac), jac.matrix) and np.asarray(jac, dtype=np.float32).dtype == np.float32
    assert np.allclose(jac @ np.ones(7), jac.matrix @ np.ones(7))
    # the schemes agree inside the cone; a fixed-point result stands for its state
    cone = pc.jacobian(model, v, scheme="cone")
    assert cone.scheme == "cone" and np.abs(cone.matrix - jac.matrix).max() < 1e-7
    fp = pc.linearise(model, v)
    assert np.array_equal(pc.jacobian(model, fp).matrix, jac.matrix)


def test_bad_inputs():
    model = Committee(2, 2, "erf", eta=1.0, second_order=False)
    with pytest.raises(ValueError, match=r"scheme: must be 'auto', 'central' or 'cone', got 'complex'"):
        pc.jacobian(model, State(np.eye(2), np.eye(2)), scheme="complex")
    with pytest.raises(ValueError, match="outside"):
        pc.jacobian(model, State(2 * np.eye(2), np.eye(2)))
    with pytest.raises(ValueError, match="state: expected a State or a vector of length 7"):
        pc.jacobian(model, np.zeros(3))
    with pytest.raises(TypeError):
        pc.jacobian(model, State(np.eye(2), np.eye(2)), method="central")  # the old name is gone


def test_cone_jacobian_with_trained_weights_uses_the_symmetry_exactly():
    """ReLU K = M = 3 at the perfect solution with v = w: one column per orbit (v included) equals every column."""
    from phasekit.committee.jacobians import _jacobian_of

    model = Committee(3, 3, "relu", eta=0.5, train_second_layer=True)
    v = State(np.eye(3), np.eye(3), [1.0, 1.0, 1.0]).to_vector()
    with_sym = _jacobian_of(model, model.rhs_vector, v, scheme="cone")
    without = _jacobian_of(model, model.rhs_vector, v, scheme="cone", symmetry=None)
    assert with_sym.symmetry == "simultaneous" and with_sym.n_rhs < without.n_rhs
    assert np.abs(with_sym.matrix - without.matrix).max() < 10 * max(without.error, 1e-12)
    # the v rows against a central difference of the closed forms from inside the cone
    inside = v.copy()
    inside[model.n_order - 1] += 0.05  # Q33 up: off the boundary
    J = pk.jacobian(model, inside)
    h = 1e-6
    e = np.zeros(model.n_state)
    e[-1] = h
    col = (model.rhs_vector(inside + e) - model.rhs_vector(inside - e)) / (2 * h)
    assert np.allclose(J.matrix[:, -1], col, atol=1e-7)


def test_jacobian_linearise_and_eta_structure_of_a_reduced_model_are_the_projected_full_ones():
    """erf K = M = 3 at an interior site-symmetric state: the reduced Jacobian is pinv(P) J P of the full one;
    linearise and eta_structure take the reduced model too (the reduced flow's spectrum, pencil)."""
    from phasekit.committee.subspaces import site_symmetric_basis

    full = pk.Committee(3, 3, "erf", eta=0.5, second_order=True)
    red = full.restrict("site_symmetric")
    z = np.array([0.3, 0.2, 0.5, 0.1])
    P = site_symmetric_basis(3)
    jac = pc.jacobian(red, z)
    assert jac.status == "ok" and jac.shape == (4, 4)
    projected = np.linalg.pinv(P) @ pc.jacobian(full, red.embed(z)).matrix @ P
    np.testing.assert_allclose(jac.matrix, projected, rtol=0, atol=1e-8)
    np.testing.assert_allclose(jac.rhs, red.rhs_vector(z), rtol=0, atol=1e-15)
    fp = pc.linearise(red, red.perfect_vector(), label="perfect")
    assert fp.stable and fp.extra["subspace"] == "site_symmetric"
    st = pc.eta_structure(red)
    np.testing.assert_allclose(st.A, red.eta_structure().A, rtol=0, atol=1e-14)
