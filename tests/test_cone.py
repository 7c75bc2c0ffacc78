"""phasekit.committee.cone: margins, feasible steps and the pull-back into the PSD cone.

Independent route: eigenvalues of the field covariance ``[[Q, R], [R^T, T]]``
built here from the state, and dense scans of the margin along segments.
"""

import numpy as np
import pytest

from helpers_committee import interior_vector
from phasekit.committee.cone import (_inward_direction, _interior_reference, _margin, _max_step, _perp_gram,
                                     _pull_inside)
from phasekit.committee.model import Committee, State


def _covariance(model, v):
    s = State.from_vector(v, model.K, model.M)
    return np.block([[s.Q, s.R], [s.R.T, model.T]])


def _own_margin(model, v):
    S = _covariance(model, v)
    return np.linalg.eigvalsh(S)[0] / max(1.0, np.abs(S).max())


@pytest.mark.parametrize("K,M", [(1, 1), (2, 3), (3, 2)])
def test_margin_is_the_relative_smallest_eigenvalue_and_is_batched(K, M):
    T = np.diag(np.linspace(0.8, 1.3, M))
    model = Committee(K, M, "erf", T=T)
    rng = np.random.default_rng(K + 10 * M)
    V = []
    for _ in range(5):  # students J = A B + W: R = A T, Q = A T A^T + W W^T
        A, W = rng.normal(size=(K, M)), rng.normal(scale=0.3, size=(K, K + 1))
        V.append(np.concatenate([(A @ T).ravel(), (A @ T @ A.T + W @ W.T)[np.triu_indices(K)]]))
    V = np.stack(V)
    V[-1, : K * M] *= 3.0  # large R: outside the cone
    got = _margin(model, V)
    assert got.shape == (5,)
    assert np.allclose(got, [_own_margin(model, v) for v in V], rtol=1e-12, atol=1e-15)
    assert got[-1] < 0 <= got[:-1].min()
    bad = V[0].copy()
    bad[0] = np.nan
    assert _margin(model, bad) == -np.inf


def test_max_step_lands_on_the_boundary():
    """Along a segment leaving the cone the margin is concave: the step ends where it crosses zero."""
    model = Committee(2, 2, "relu")
    rng = np.random.default_rng(3)
    for _ in range(5):
        v = interior_vector(rng, 2, 2)
        dv = rng.normal(size=v.size) * 3.0
        t = _max_step(model, v, dv)
        ts = np.linspace(0.0, 1.0, 2001)
        scan = np.array([_own_margin(model, v + s * dv) for s in ts])
        if scan[-1] >= 0:
            assert t == 1.0
            continue
        first_out = ts[np.argmax(scan < 0)]
        assert _margin(model, v + t * dv) >= 0
        assert first_out - 1e-3 <= t <= first_out
        assert _own_margin(model, v + min(1.0, t * (1 + 1e-6) + 1e-9) * dv) < 1e-9


def test_pull_inside_and_the_inward_direction():
    model = Committee(2, 2, "erf")
    outside = State(1.3 * np.eye(2), np.eye(2)).to_vector()
    assert _margin(model, outside) < 0
    v = _pull_inside(model, outside)
    assert -1e-14 <= _margin(model, v) <= 1e-9  # on the boundary, not deep inside
    xc, lam_c = _interior_reference(model, v)
    assert np.all(xc[:4] == 0) and lam_c > 0 and _own_margin(model, xc) > 0
    # x + h (d_in + gamma e_k) stays inside for 0 < h <= 1 (convexity of the cone)
    d_in, gamma = _inward_direction(model, v)
    for k in range(v.size):
        e = np.zeros(v.size)
        e[k] = 1.0
        for h in (1e-6, 1e-2, 0.5, 1.0):
            assert _own_margin(model, v + h * (d_in + gamma * e)) > -1e-14
    inside = State(0.3 * np.eye(2), np.eye(2)).to_vector()
    assert np.array_equal(_pull_inside(model, inside), inside)


def test_perp_gram_is_the_gram_matrix_outside_the_teachers():
    """Student vectors J = A B + W with W orthogonal to the teachers: W W^T comes back."""
    rng = np.random.default_rng(5)
    T = np.array([[1.0, 0.3], [0.3, 0.8]])
    model = Committee(3, 2, "erf", T=T)
    B = np.linalg.cholesky(T)  # teacher rows in a 2-d basis, padded with zeros below
    B = np.hstack([B, np.zeros((2, 3))])
    A = rng.normal(size=(3, 2))
    W = np.hstack([np.zeros((3, 2)), rng.normal(size=(3, 3))])
    J = A @ B + W
    v = State(J @ B.T, J @ J.T).to_vector()
    assert np.allclose(_perp_gram(model, v), W @ W.T, atol=1e-13)
