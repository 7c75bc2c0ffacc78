"""phasekit.committee.pencil: the Jacobian as eta A + eta^2 B at a fixed point that does not move with eta.

Independent routes: the exact ReLU perceptron pencil (published spectrum), and
the Jacobian of the flow at a given eta computed directly (central or cone
scheme) against ``eta A + eta^2 B``.
"""

import numpy as np
import pytest

import phasekit.committee as pc
from helpers_committee import A_PERCEPTRON, B_PERCEPTRON
from phasekit.committee.model import Committee, State


@pytest.fixture(scope="module")
def perceptron_structure():
    return pc.eta_structure(Committee(1, 1, "relu", eta=1.0, second_order=True))


def test_one_sided_jacobian_of_relu_perceptron_is_exact(perceptron_structure):
    st_ = perceptron_structure
    assert st_.scheme == "cone"
    assert np.abs(st_.A - A_PERCEPTRON).max() < 1e-10
    assert np.abs(st_.B - B_PERCEPTRON).max() < 1e-10
    # the reported error estimate is honest (within a factor of ten)
    err = max(np.abs(st_.A - A_PERCEPTRON).max(), np.abs(st_.B - B_PERCEPTRON).max())
    assert err <= 10 * st_.error
    assert st_.residual == 0.0  # R = Q = T is fixed for every eta
    # the spectrum of A + eta B at eta = 1: -1/2 (twice), and the decay rate eta/2
    assert st_.max_real(1.0) == pytest.approx(-0.5, abs=1e-9)
    assert st_.decay_rate(1.0) == pytest.approx(0.5, abs=1e-9)


@pytest.mark.parametrize("act,K", [("erf", 2), ("relu", 2)])
def test_structure_reproduces_the_jacobian_at_each_eta(act, K):
    """eta A + eta^2 B equals the Jacobian of the flow at that eta, computed directly."""
    model = Committee(K, K, act, eta=1.0, second_order=True)
    st_ = pc.eta_structure(model)
    for eta in (0.3, 1.7):
        direct = pc.jacobian(model.replace(eta=eta), State(np.eye(K), np.eye(K)), scheme=st_.scheme)
        tol = 20 * max(st_.entry_error, direct.error if np.isfinite(direct.error) else 1e-9) * (1 + eta) ** 2
        assert np.abs(st_.jacobian(eta) - np.asarray(direct)).max() <= tol


def test_first_order_structure_has_no_eta_squared_part():
    st_ = pc.eta_structure(Committee(2, 2, "erf", eta=0.5, second_order=False))
    assert np.array_equal(st_.B, np.zeros_like(st_.A)) and np.abs(st_.A).max() > 0.1


def test_structure_at_a_state_that_moves_with_eta_reports_its_residual():
    model = Committee(2, 2, "relu", eta=1.0, second_order=False)
    plateau = pc.symmetric_plateau(model)
    st_ = pc.eta_structure(model.replace(second_order=True), plateau)
    assert st_.residual > 1e-6  # its eta^2 part does not vanish there
    with pytest.raises(ValueError, match="pass the fixed point of interest as state"):
        pc.eta_structure(Committee(2, 1, "relu"))
    with pytest.raises(ValueError, match="structure: was computed at a different state"):
        pc.critical_eta(Committee(1, 1, "relu"), state=State([[0.5]], [[1.0]]),
                        structure=pc.eta_structure(Committee(1, 1, "relu")))
    with pytest.raises(ValueError, match="scheme"):
        pc.eta_structure(Committee(1, 1, "relu"), scheme="exact")


def test_split_names_marginal_modes_on_a_synthetic_pencil():
    """A mode with A v = B v = 0 is split off as a right and a left null vector, named by its component."""
    A, B = np.diag([0.0, -1.0, -3.0]), np.diag([0.0, 0.5, 0.1])
    st_ = pc.EtaStructure(A, B, 1e-14, State([[1.0]], [[1.0]]), "synthetic")
    assert st_.split.n_null == 1
    res = pc.critical_eta(Committee(1, 1, "relu"), structure=st_)
    modes = res.marginal_modes
    assert all(isinstance(m, pc.MarginalMode) for m in modes)
    assert [m.side for m in modes] == ["right", "left"]
    for m in modes:
        assert np.allclose(m.vector, [1.0, 0.0, 0.0]) and m.components == ("R11",) and "R11" in m.description
