"""Shared eigen-decomposition and pencil splitting.

Independent routes: symmetric and similarity-constructed matrices whose
eigenspaces are known by construction (projectors compared with those of
``eigh`` or of the construction), a second LAPACK driver, and closed-form
pencils (linear eigenvalue branches, a coalescence at a known eta).
"""

import numpy as np
import pytest
from scipy import linalg

from phasekit import deep_linear as ld
from phasekit.core import spectrum as sp


def _projector(V):
    Q, _ = np.linalg.qr(V)
    return Q @ Q.T


def _check_conventions(J, s):
    w, V = s.eigenvalues, s.eigenvectors
    assert s.converged
    # unit columns, largest-magnitude component (first of ties) real and positive
    assert np.allclose(np.linalg.norm(V, axis=0), 1.0, rtol=0, atol=1e-12)
    a = np.abs(V)
    lead = np.argmax(a >= a.max(axis=0) * (1 - 1e-8), axis=0)
    top = V[lead, np.arange(V.shape[1])]
    assert np.all(np.real(top) > 0) and np.allclose(np.imag(top), 0.0, atol=1e-15)
    # eigenpairs
    scale = max(1.0, np.abs(J).max())
    assert np.abs(J @ V - V * w[None, :]).max() <= 1e-10 * scale
    # decreasing real part
    assert np.all(np.diff(np.real(w)) <= 1e-12 * scale)


def _repeated_cases():
    """Real matrices with a repeated real eigenvalue, and the exact eigenspace of it."""
    cases = []
    for seed in range(100, 120):
        rng = np.random.default_rng(seed)
        S = rng.normal(size=(5, 5))
        J = S @ np.diag([-0.5, -0.5, -0.5, -1.25, 0.3]) @ np.linalg.inv(S)
        cases.append((f"similar{seed}", J, -0.5, S[:, :3]))
    for k in (3, 4, 5):
        # the layer Jacobian of a deep linear chain at its balanced fixed points (symmetric)
        for fp in ld.fixed_points(1.0, depth=k, weight_decay=0.1):
            J = fp.jacobian
            lam, U = np.linalg.eigh(J)
            vals, counts = np.unique(np.round(lam, 9), return_counts=True)
            if counts.max() > 1:
                v = vals[np.argmax(counts)]
                cases.append((f"layers{k}", J, float(v), U[:, np.abs(lam - v) < 1e-9]))
    return cases


@pytest.mark.parametrize("name,J,lam,E", _repeated_cases(), ids=lambda x: x if isinstance(x, str) else "")
def test_repeated_real_eigenvalue_has_a_real_orthonormal_eigenbasis(name, J, lam, E):
    s = sp.eigen_decomposition(J)
    _check_conventions(J, s)
    assert s.eigenvalues.dtype == float and s.eigenvectors.dtype == float
    sel = np.abs(s.eigenvalues - lam) <= 1e-7 * max(1.0, abs(lam))
    assert sel.sum() == E.shape[1]
    Vc = s.eigenvectors[:, sel]
    # the columns of the eigenspace span it (compared with the construction / eigh)
    assert np.abs(_projector(Vc) - _projector(E)).max() <= 1e-8
    assert np.linalg.svd(Vc, compute_uv=False).min() > 1e-3


def test_symmetric_matrices_agree_with_eigh():
    rng = np.random.default_rng(7)
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    J = Q @ np.diag([0.3, 0.3, -0.5, -0.5, -0.5, -1.25]) @ Q.T
    s = sp.eigen_decomposition(J)
    _check_conventions(J, s)
    assert np.allclose(s.eigenvalues, [0.3, 0.3, -0.5, -0.5, -0.5, -1.25], rtol=0, atol=1e-12)
    # a symmetric matrix: the whole basis is orthonormal
    assert np.abs(s.eigenvectors.T @ s.eigenvectors - np.eye(6)).max() <= 1e-10


def test_order_and_phase_of_complex_pairs():
    """Equal real parts: decreasing imaginary part, even when rounding splits the real parts."""
    blocks = [np.array([[-1.0, -2.0], [2.0, -1.0]]), np.array([[-1.0, -0.5], [0.5, -1.0]]), np.array([[-1.0]]),
              np.array([[0.2]])]
    D = linalg.block_diag(*blocks)
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    J = Q @ D @ Q.T
    s = sp.eigen_decomposition(J)
    _check_conventions(J, s)
    expected = np.array([0.2, -1 + 2j, -1 + 0.5j, -1.0, -1 - 0.5j, -1 - 2j])
    assert np.abs(s.eigenvalues - expected).max() <= 1e-12
    # the real eigenvalues have real eigenvectors inside the complex array
    assert np.abs(s.eigenvectors[:, [0, 3]].imag).max() == 0.0


def test_qz_fallback_and_failures(monkeypatch):
    rng = np.random.default_rng(5)
    J = rng.normal(size=(5, 5))
    ref = sp.eigen_decomposition(J)
    assert ref.method == "qr"
    original = sp.linalg.eig

    def no_qr(a, b=None, **kw):
        if b is None:
            raise np.linalg.LinAlgError("eig algorithm did not converge")
        return original(a, b, **kw)

    monkeypatch.setattr(sp.linalg, "eig", no_qr)
    s = sp.eigen_decomposition(J)
    _check_conventions(J, s)
    assert s.method == "qz" and "QR" in s.message
    assert np.abs(s.eigenvalues - ref.eigenvalues).max() <= 1e-12

    def nothing(*args, **kw):
        raise np.linalg.LinAlgError("eig algorithm did not converge")

    monkeypatch.setattr(sp.linalg, "eig", nothing)
    s = sp.eigen_decomposition(J)
    assert not s.converged and s.method == "none" and np.all(np.isnan(s.eigenvalues))
    assert "failed" in s.message
    monkeypatch.undo()
    s = sp.eigen_decomposition(np.array([[1.0, np.nan], [0.0, 1.0]]))
    assert not s.converged and "non-finite" in s.message
    with pytest.raises(ValueError, match="matrix"):
        sp.eigen_decomposition(np.ones((2, 3)))


# --- pencils ------------------------------------------------------------------------------


def _pencil(seed, noise=0.0):
    """A + eta B = S diag-ish S^-1 with a common null vector, a common eigenvector
    (a, b) = (-0.5, 0.25) and a generic 2 x 2 rest; plus an entrywise perturbation."""
    rng = np.random.default_rng(seed)
    S = rng.normal(size=(4, 4))
    Si = np.linalg.inv(S)
    Da = np.zeros((4, 4))
    Db = np.zeros((4, 4))
    Da[1, 1], Db[1, 1] = -0.5, 0.25
    Da[2:, 2:] = [[-1.0, 0.4], [0.3, -0.7]]
    Db[2:, 2:] = [[0.2, -0.1], [0.5, 0.1]]
    # couplings above the diagonal keep the blocks' spectra but hide the structure
    Da[0, 2:], Db[0, 3] = [0.3, -0.2], 0.7
    Da[1, 3] = 0.4
    A, B = S @ Da @ Si, S @ Db @ Si
    if noise:
        A = A + noise * rng.normal(size=A.shape)
        B = B + noise * rng.normal(size=B.shape)
    return A, B, S, Da, Db


@pytest.mark.parametrize("noise", [0.0, 1e-12])
def test_split_pencil_finds_the_null_and_linear_branches(noise):
    A, B, S, Da, Db = _pencil(11, noise)
    split = sp.split_pencil(A, B, 1e-8)
    assert split.n_null == 1 and split.null_right.shape[1] == 1
    assert np.abs(_projector(split.null_right) - _projector(S[:, :1])).max() <= 1e-8
    assert len(split.branches) == 1
    br = split.branches[0]
    assert abs(br.a + 0.5) <= 1e-9 and abs(br.b - 0.25) <= 1e-9 and br.multiplicity == 1
    assert split.size == 4 and len(split.A) == 2
    for eta in (0.3, 1.7, 4.0):
        rest = np.linalg.eigvals(Da[2:, 2:] + eta * Db[2:, 2:])
        rest = rest[np.argsort(-rest.real)]
        assert np.abs(split.rest_eigenvalues(eta) - rest).max() <= 1e-9
        full = np.linalg.eigvals(A + eta * B)
        full = np.sort_complex(full[np.abs(full) > 1e-6])
        assert np.abs(np.sort_complex(split.eigenvalues(eta)) - full).max() <= 1e-8
        assert split.max_real(eta) == split.eigenvalues(eta).real.max()  # unsorted, the same maximum
        assert abs(split.max_real(eta) - full.real.max()) <= 1e-8


def test_split_pencil_left_side_and_transpose():
    A, B, S, _, _ = _pencil(12)
    split = sp.split_pencil(A.T, B.T, 1e-8)
    assert split.n_null == 1 and split.null_left.shape[1] == 1
    assert [(round(b.a, 9), round(b.b, 9)) for b in split.branches] == [(-0.5, 0.25)]
    for eta in (0.5, 2.0):
        assert np.abs(np.sort_complex(split.eigenvalues(eta))
                      - np.sort_complex(sp.split_pencil(A, B, 1e-8).eigenvalues(eta))).max() <= 1e-9


def test_defective_crossing_is_resolved_after_the_split():
    """Two linear branches crossing at a Jordan block: the split locates the crossing to
    the data's precision, while the full eigenvalues there are only good to sqrt(noise).

    A = [[-p, q], [p, -2q]], B = [[0, 0], [-r, r/2]] with p = 8q/3 has the common right
    eigenvector (1, 2) (eigenvalue -p/4, 0) and the common left eigenvector (2, -1)
    (eigenvalue -3p/2, r/2); the branches cross at eta* = 5p / (2r).
    """
    q, r = 0.2, 0.35
    p = 8 * q / 3
    A = np.array([[-p, q], [p, -2 * q]])
    B = np.array([[0.0, 0.0], [-r, r / 2]])
    eta_star = 5 * p / (2 * r)
    rng = np.random.default_rng(0)
    noise = 1e-11
    An, Bn = A + noise * rng.normal(size=A.shape), B + noise * rng.normal(size=B.shape)
    split = sp.split_pencil(An, Bn, 1e-9)
    assert split.n_null == 0 and len(split.A) == 0
    vals = sorted((br.a, br.b) for br in split.branches)
    assert np.allclose(vals, sorted([(-p / 4, 0.0), (-3 * p / 2, r / 2)]), rtol=0, atol=1e-10)
    (a1, b1), (a2, b2) = vals
    crossing = (a2 - a1) / (b1 - b2)
    assert abs(crossing - eta_star) <= 1e-9
    # the full 2 x 2 spectrum at the crossing is split by ~sqrt(noise), not by noise
    w = np.linalg.eigvals(An + eta_star * Bn)
    assert abs(w[0] - w[1]) > 1e-7


def test_leading_pair_discriminant_at_a_coalescence():
    """M(eta) = [[-1 + eta/4, 1], [0.6 - eta/5, -1 + eta/4]] (plus a far third mode):
    eigenvalues -1 + eta/4 +- sqrt(0.6 - eta/5), coalescing at eta = 3."""
    def M(eta):
        out = np.zeros((3, 3))
        out[:2, :2] = [[-1 + eta / 4, 1.0], [0.6 - eta / 5, -1 + eta / 4]]
        out[2, 2] = -5.0
        out[0, 2] = 0.7
        rng = np.random.default_rng(1)
        Q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        return Q @ out @ Q.T

    for eta in (2.0, 3.0 - 1e-9, 3.0, 3.0 + 1e-9, 3.5):
        D, mean = sp.leading_pair_discriminant(M(eta))
        assert abs(D - 4 * (0.6 - eta / 5)) <= 1e-14
        assert abs(mean - (-1 + eta / 4)) <= 1e-14
    # a real leading eigenvalue followed by a complex pair: no pair to report
    assert sp.leading_pair_discriminant(np.diag([1.0, -1.0, -2.0])) is not None
    R = linalg.block_diag([[0.5]], [[-1.0, -1.0], [1.0, -1.0]])
    assert sp.leading_pair_discriminant(R) is None
