"""phasekit.committee.landmarks: the perfect solution, the symmetric plateau and find_fixed_point.

References: the published ReLU K = M = 2 plateau and spectrum, and Saad and
Solla's closed-form erf plateau and escape eigenvalue.
"""

import math

import numpy as np
import pytest

import phasekit.committee as pc
from helpers_committee import saad_solla
from phasekit.committee.model import Committee, State


def test_relu_committee_plateau_matches_reference():
    model = Committee(2, 2, "relu", eta=0.1, second_order=False)
    fp = pc.symmetric_plateau(model)
    assert fp.status == "converged" and fp.residual < 1e-12
    R, Q = fp.state.R, fp.state.Q
    assert np.abs(R - 0.52458).max() < 5e-6
    assert abs(Q[0, 0] - 0.71776) < 5e-6 and abs(Q[1, 1] - 0.71776) < 5e-6
    assert abs(Q[0, 1] - 0.38298) < 5e-6
    assert abs(fp.eg - 0.073613) < 5e-7
    ref = [0.2392, -0.0049, -0.2308, -0.4399, -0.6443, -0.9568, -1.3583]
    assert np.abs(np.real(fp.eigenvalues) / model.eta - ref).max() < 5e-5
    assert np.abs(fp.escape_vector - [0.5, -0.5, -0.5, 0.5, 0, 0, 0]).max() < 1e-6
    assert abs(fp.escape_eigenvalue / model.eta - 0.2392) < 5e-5
    assert fp.n_unstable == 1 and fp.kind == "saddle" and fp.escape_multiplicity == 1


@pytest.mark.parametrize("K", [2, 3, 4, 5])
def test_erf_saad_solla_plateau(K):
    model = Committee(K, K, "erf", eta=1.0, second_order=False)
    fp = pc.symmetric_plateau(model)
    R, Q, eg, lam = saad_solla(K)
    assert fp.success
    assert np.abs(fp.state.R - R).max() < 1e-8
    assert np.abs(fp.state.Q - Q).max() < 1e-8  # Q = C: coinciding students
    assert abs(fp.eg - eg) < 1e-10
    assert abs(fp.escape_eigenvalue - lam) < 1e-6
    # the escape space carries the (K-1)^2 ways of specialising, and it breaks the symmetry
    assert fp.escape_multiplicity == (K - 1) ** 2
    assert np.abs(fp.escape_vector.reshape(-1)[: K * K].reshape(K, K).sum(axis=0)).max() < 1e-8
    model.validate_state(fp.state)  # on the boundary of the cone, not outside


def test_symmetric_plateau_failure_is_a_result():
    """ReLU K = M = 2 at eta = 5 (second order): the reduced flow diverges (eta_c = 3 - sqrt 3)."""
    fp = pc.symmetric_plateau(Committee(2, 2, "relu", eta=5.0, second_order=True))
    assert fp.status == "failed" and fp.kind == "unclassified" and fp.message
    assert fp.label == "symmetric_plateau" and np.all(np.isfinite(fp.vector))
    Committee(2, 2, "relu").validate_state(fp.state)


@pytest.mark.parametrize("M", [1, 2])
def test_symmetric_plateau_needs_two_students(M):
    with pytest.raises(ValueError, match="K >= 2"):
        pc.symmetric_plateau(Committee(1, M, "relu", eta=0.5))


def test_find_fixed_point_from_a_guess_and_its_options():
    """Newton from near the erf plateau's closed form lands on it; the options reach Newton."""
    model = Committee(2, 2, "erf", eta=1.0, second_order=False)
    R, Q, eg, _ = saad_solla(2)
    guess = State(np.full((2, 2), R) + 1e-3, np.full((2, 2), Q) + np.diag([2e-3, 1e-3]))
    fp = pc.find_fixed_point(model, guess, label="symmetric_plateau")
    assert fp.status == "converged" and fp.iterations >= 1 and abs(fp.eg - eg) < 1e-9
    assert fp.escape_eigenvalue == pytest.approx(saad_solla(2)[3], abs=1e-6)
    stopped = pc.find_fixed_point(model, guess, newton={"max_iter": 1})
    assert stopped.status == "failed" and stopped.iterations == 1 and stopped.kind == "unclassified"
    assert pc.perfect_solution(model, newton={"tol": 1e-9}).status == "ok"


def test_bad_inputs_raise_value_errors():
    model = Committee(2, 2, "erf", eta=1.0, second_order=False)
    with pytest.raises(ValueError, match="guess"):
        pc.find_fixed_point(model, np.zeros(3))
    with pytest.raises(ValueError, match="tol: must be a finite number > 0"):
        pc.find_fixed_point(model, np.ones(7), newton={"tol": 0})
    with pytest.raises(ValueError, match="newton: unknown option"):
        pc.find_fixed_point(model, np.ones(7), newton={"tolerance": 1e-9})
    with pytest.raises(ValueError, match="K == M"):
        pc.perfect_solution(Committee(2, 1, "erf"))
    with pytest.raises(ValueError, match="T = a I"):
        pc.symmetric_plateau(Committee(2, 2, "erf", T=[[1.0, 0.2], [0.2, 2.0]]))
    with pytest.raises(ValueError, match="guess: expected 3 numbers"):
        pc.symmetric_plateau(model, [0.1, 0.2])
    assert math.isfinite(pc.symmetric_plateau(model, [0.5, 0.33, 0.33]).eg)


# --- the general committee machine -------------------------------------------------


def test_erf_plateau_with_a_trained_second_layer_is_saad_sollas_with_v_equal_w():
    """The site-symmetric plateau with v in the state: Saad & Solla's (R, Q = C), v = w = 1, same escape rate."""
    R, Q, _, lam = saad_solla(2)
    model = Committee(2, 2, "erf", eta=0.1, second_order=False, train_second_layer=True)
    fp = pc.symmetric_plateau(model)
    assert fp.success and fp.state.v is not None
    assert np.allclose(fp.state.R, R, atol=1e-10) and np.allclose(fp.state.Q, Q, atol=1e-10)
    assert np.allclose(fp.state.v, 1.0, atol=1e-10)
    assert fp.escape_eigenvalue == pytest.approx(0.1 * lam, rel=1e-7)
    assert fp.labels[-2:] == ("v1", "v2")
    ds = fp.to_dataset()
    assert ds.v.dims == ("i",) and np.allclose(ds.v.values, 1.0, atol=1e-10)


def test_perfect_solution_with_weights():
    """R = Q = T with v = w: exact for a trained second layer and for matching fixed weights; refused ansatz
    of the plateau for unequal weights."""
    w = [1.4, 0.7]
    trained = pc.perfect_solution(Committee(2, 2, "erf", eta=0.5, teacher_weights=w, train_second_layer=True))
    assert trained.status == "ok" and trained.vector[-2:].tolist() == w and trained.kind == "stable"
    fixed = pc.perfect_solution(Committee(2, 2, "erf", eta=0.5, teacher_weights=w, student_weights=w))
    assert fixed.status == "ok" and fixed.eg == 0.0
    # fixed student weights that differ from the teacher's: no zero-error state, Newton finds the branch's point
    off = pc.perfect_solution(Committee(2, 2, "erf", eta=0.5, teacher_weights=w, student_weights=[1.0, 1.0]))
    assert off.status == "converged" and off.eg > 1e-3 and off.residual < 1e-12
    with pytest.raises(ValueError, match=r"model: the site-symmetric ansatz needs equal teacher weights"):
        pc.symmetric_plateau(Committee(2, 2, "erf", teacher_weights=w))
    with pytest.raises(ValueError, match=r"model: the site-symmetric ansatz needs equal fixed student weights"):
        pc.symmetric_plateau(Committee(2, 2, "erf", student_weights=w))
    with pytest.raises(ValueError, match=r"guess: expected 4 numbers \(R, Q, C, v\)"):
        pc.symmetric_plateau(Committee(2, 2, "erf", train_second_layer=True), guess=[0.4, 0.3, 0.3])
