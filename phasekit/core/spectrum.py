"""Eigen-decompositions of Jacobians, and the eta-structure of linear pencils.

Two tools shared by the fixed points of :mod:`phasekit.committee` (the
committee machine) and :mod:`phasekit.deep_linear` (deep linear networks).

:func:`eigen_decomposition`
    Eigenvalues sorted by decreasing real part (ties: decreasing imaginary
    part) and unit eigenvectors as columns, each scaled so that its
    largest-magnitude component (the first of ties) is real and positive.
    Eigenvalues whose imaginary part is below ``real_tol`` count as real and
    get real eigenvectors.  LAPACK may return a repeated real eigenvalue
    (e.g. one forced by a permutation symmetry) as a real eigenvalue plus a
    pair with imaginary parts of order ``1e-17`` and complex eigenvectors;
    dropping their imaginary parts would leave vectors of norm below one
    that may not even span the eigenspace.  The columns of every repeated
    real eigenvalue (a cluster within ``1e-8`` of the spectral scale) are
    replaced by a real orthonormal basis of the span of the real and
    imaginary parts of its eigenvectors (normalised after the real part is
    taken).  A
    ``LinAlgError`` of the QR driver falls back to the QZ algorithm on
    ``(J, I)``; the result reports which one ran, and a failure of both (or
    a non-finite matrix) gives NaNs with ``converged = False`` instead of an
    exception.

:func:`split_pencil`
    For ``M(eta) = A + eta B`` (the Jacobian of on-line SGD at a fixed point
    that does not move with eta is ``eta M(eta)``), the parts of the
    spectrum that are exactly known for every eta: directions with
    ``A v = B v = 0`` (marginal at every eta, e.g. the tangent of a continuum
    of fixed points) and common eigenvectors ``A v = a v, B v = b v``, whose
    eigenvalue ``a + eta b`` is linear in eta.  Both are deflated (on either
    side: left null vectors are combinations the flow leaves unchanged), and
    the rest of the spectrum is that of a smaller pencil.  Where such a
    linear branch crosses another one, ``M`` is often defective (a Jordan
    block: the eigenvalues there are only accurate to ``sqrt(eps)``, and
    the computed Jacobian's errors turn the crossing into a narrow complex
    bubble or an avoided crossing); after the deflation the crossing is a
    simple zero of a difference of two well-conditioned eigenvalues.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import linalg

__all__ = ['PencilBranch', 'PencilSplit', 'Spectrum', 'eigen_decomposition', 'eigenvalue_order', 'eigenvalues_only', 'leading_pair_discriminant', 'split_pencil']


_EPS = np.finfo(float).eps


# Eigenvalues closer than this (relative to the spectral scale) form one cluster when
# their eigenvectors are rebuilt: rounding splits a repeated eigenvalue by far less.
_CLUSTER_TOL = 1e-8


# Components within this fraction of the largest magnitude tie for the phase convention.
_PHASE_TIE = 1e-8


# A null space is accepted only when the next singular value is this many tolerances away.
_GAP_FACTOR = 100.0


@dataclass(frozen=True)
class Spectrum:
    """Eigenvalues and eigenvectors of a square matrix with phasekit's conventions.

    Attributes
    ----------
    eigenvalues : ndarray, shape (n,)
        Sorted by decreasing real part (ties: decreasing imaginary part).
        Real dtype when every eigenvalue is real (``|imag| <= real_tol``), complex otherwise.
    eigenvectors : ndarray, shape (n, n)
        Unit eigenvectors as columns, each with its largest-magnitude
        component (the first of ties) real and positive; real columns for
        real eigenvalues, orthonormal within a repeated real eigenvalue.
    converged : bool
        False if no driver succeeded or the matrix was not finite (then everything is NaN).
    method : str
        ``"qr"`` (LAPACK geev), ``"qz"`` (ggev on ``(J, I)``, after the QR driver failed) or ``"none"``.
    defective : bool
        A cluster of real eigenvalues returned with complex eigenvectors
        whose real and imaginary parts span fewer dimensions than its size
        (a Jordan block): its columns repeat basis vectors.
    message : str
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    converged: bool = True
    method: str = "qr"
    defective: bool = False
    message: str = ""


def eigenvalue_order(w: np.ndarray, tol: float | None = None) -> np.ndarray:
    """Indices sorting ``w`` by decreasing real part, ties by decreasing imaginary part.

    Real parts within ``tol`` (default ``1e-12 * max(1, max |w|)``, chained)
    tie: rounding must not order ``-1 + 2i`` after ``-1 + 0.5i``.  NaNs go last.
    """
    w = np.asarray(w, dtype=complex)
    if w.size == 0:
        return np.zeros(0, dtype=int)
    finite = np.isfinite(w)
    re = np.where(finite, w.real, -np.inf)
    if tol is None:
        tol = 1e-12 * max(1.0, float(np.abs(w[finite]).max(initial=0.0)))
    key = re.copy()
    idx = np.nonzero(finite)[0]
    for group in _clusters(re[idx], tol):
        key[idx[group]] = re[idx[group]].max()
    return np.lexsort((-np.where(finite, w.imag, 0.0), -key))


def eigenvalues_only(matrix: Any) -> np.ndarray:
    """Eigenvalues of a real square matrix (complex dtype, unsorted); NaN instead of ``LinAlgError``."""
    J = np.asarray(matrix, dtype=float)
    if not np.all(np.isfinite(J)):
        return np.full(len(J), np.nan + 0j)
    try:
        return linalg.eigvals(J, check_finite=False).astype(complex)
    except (np.linalg.LinAlgError, ValueError):
        try:
            return linalg.eigvals(J, np.eye(len(J)), check_finite=False).astype(complex)
        except (np.linalg.LinAlgError, ValueError):
            return np.full(len(J), np.nan + 0j)


def _phase_normalise(V: np.ndarray) -> np.ndarray:
    """Unit columns with the largest-magnitude component (first of ties) real and positive."""
    V = V / np.linalg.norm(V, axis=0, keepdims=True)
    a = np.abs(V)
    j = np.argmax(a >= a.max(axis=0, keepdims=True) * (1.0 - _PHASE_TIE), axis=0)
    lead = V[j, np.arange(V.shape[1])]
    return V * (np.abs(lead) / lead)[None, :]


def _clusters(x: np.ndarray, tol: float) -> list[np.ndarray]:
    """Groups of indices of the sorted-by-value real numbers ``x`` chained by gaps <= tol."""
    order = np.argsort(x, kind="stable")
    groups, start = [], 0
    for k in range(1, len(order) + 1):
        if k == len(order) or x[order[k]] - x[order[k - 1]] > tol:
            groups.append(np.sort(order[start:k]))
            start = k
    return groups


def _raw_eig(J: np.ndarray) -> tuple[np.ndarray, np.ndarray, str, str]:
    try:
        w, V = linalg.eig(J, check_finite=False)
        if np.all(np.isfinite(w)) and np.all(np.isfinite(V)):
            return w, V, "qr", ""
        message = "the QR eigenvalue driver returned non-finite values"
    except (np.linalg.LinAlgError, ValueError) as exc:
        message = f"the QR eigenvalue driver failed ({exc})"
    try:
        # QZ on the pencil (J, I): a different algorithm, same eigenpairs
        w, V = linalg.eig(J, np.eye(len(J)), check_finite=False)
        if np.all(np.isfinite(w)) and np.all(np.isfinite(V)):
            return w, V, "qz", message + "; used the QZ driver instead"
        message += "; the QZ driver returned non-finite values"
    except (np.linalg.LinAlgError, ValueError) as exc:
        message += f"; the QZ driver failed too ({exc})"
    raise np.linalg.LinAlgError(message)


def eigen_decomposition(matrix: Any, *, real_tol: float | None = None) -> Spectrum:
    """Eigenvalues and unit eigenvectors of a real square matrix (module docstring).

    Parameters
    ----------
    matrix : array_like, shape (n, n)
        Real matrix.
    real_tol : float, optional
        Eigenvalues with ``|imag| <= real_tol`` are real; default
        ``1e-12 * max(1, max |eigenvalue|)``.

    Returns
    -------
    Spectrum
        Never raises ``LinAlgError``: a failure is reported by ``converged = False``.

    Raises
    ------
    ValueError
        If ``matrix`` is not a real square matrix.
    """
    J = np.asarray(matrix)
    if J.ndim != 2 or J.shape[0] != J.shape[1]:
        raise ValueError(f"matrix: must be square, got shape {J.shape}")
    if np.iscomplexobj(J):
        raise ValueError("matrix: must be real")
    J = J.astype(float)
    n = J.shape[0]
    if n == 0:
        return Spectrum(np.zeros(0), np.zeros((0, 0)))
    if not np.all(np.isfinite(J)):
        return Spectrum(np.full(n, np.nan), np.full((n, n), np.nan), converged=False, method="none",
                        message="the matrix has non-finite entries")
    try:
        w, V, method, message = _raw_eig(J)
    except np.linalg.LinAlgError as exc:
        return Spectrum(np.full(n, np.nan), np.full((n, n), np.nan), converged=False, method="none",
                        message=str(exc))
    scale = max(1.0, float(np.abs(w).max()))
    tol = 1e-12 * scale if real_tol is None else float(real_tol)
    is_real = np.abs(w.imag) <= tol
    w = np.where(is_real, w.real + 0j, w)
    order = eigenvalue_order(w)
    w, V, is_real = w[order], V[:, order], is_real[order]
    V = _phase_normalise(V.astype(complex))
    defective = False
    idx = np.nonzero(is_real)[0]
    for group in _clusters(w.real[idx], _CLUSTER_TOL * scale):
        cols = idx[group]
        block = V[:, cols]
        if len(cols) == 1 and np.abs(block.imag).max() <= 0.0:
            continue
        # a repeated real eigenvalue (its computed eigenvectors possibly complex): a real
        # orthonormal basis of the span of their real and imaginary parts
        U, s, _ = np.linalg.svd(np.concatenate([block.real, block.imag], axis=1), full_matrices=False)
        rank = int(np.sum(s > 1e-6 * s[0]))
        m = len(cols)
        if rank < m:
            defective = True
        basis = U[:, [k % max(rank, 1) for k in range(m)]]
        V[:, cols] = _phase_normalise(basis.astype(complex))
    if np.all(is_real):
        w, V = w.real.copy(), V.real.copy()
    else:
        V[:, is_real] = V[:, is_real].real
    if defective:
        message = (message + "; " if message else "") + "a repeated real eigenvalue is defective"
    return Spectrum(w, V, converged=True, method=method, defective=defective, message=message)


@dataclass(frozen=True)
class PencilBranch:
    """An eigenvalue ``a + eta b`` of ``A + eta B`` at every eta, with an eta-independent eigenspace.

    Attributes
    ----------
    a, b : float
        Eigenvalue of ``A`` and of ``B`` on the common eigenspace.
    multiplicity : int
        Dimension of the common eigenspace.
    side : str
        ``"right"`` (``A v = a v``, ``B v = b v``) or ``"left"`` (``u^T A = a u^T``, ...).
    residual : float
        Largest of the singular values of ``[A - a I; B - b I]`` accepted as zero.
    """

    a: float
    b: float
    multiplicity: int
    side: str
    residual: float

    def value(self, eta: float | np.ndarray) -> float | np.ndarray:
        """``a + eta b``."""
        return self.a + np.asarray(eta) * self.b


@dataclass(frozen=True)
class PencilSplit:
    """``spec(A + eta B) = {0 (n_null times)} + branches + spec(A_rest + eta B_rest)`` for every eta.

    Attributes
    ----------
    null_right : ndarray, shape (n, d_r)
        Orthonormal basis of ``{v : A v = B v = 0}`` (directions marginal at every eta).
    null_left : ndarray, shape (n, d_l)
        Orthonormal basis of ``{u : u^T A = u^T B = 0}`` (combinations the flow leaves unchanged).
    n_null : int
        Eigenvalues that vanish identically (deflated on either side, at any level).
    branches : tuple of PencilBranch
        Linear eigenvalue branches from common eigenvectors (with (a, b) != (0, 0)).
    A, B : ndarray, shape (r, r)
        The remaining pencil.
    tol : float
        Singular values at most this are zero (from the caller's error estimate).
    null_singular_values : tuple of ndarray
        Ascending singular values of ``[A; B]`` and ``[A^T; B^T]`` (diagnostics of the null spaces).
    """

    null_right: np.ndarray
    null_left: np.ndarray
    n_null: int
    branches: tuple
    A: np.ndarray
    B: np.ndarray
    tol: float
    null_singular_values: tuple = field(default_factory=tuple)

    @property
    def size(self) -> int:
        """Dimension of the full pencil."""
        return self.n_null + sum(br.multiplicity for br in self.branches) + len(self.A)

    def _rest_unsorted(self, eta: float) -> np.ndarray:
        if len(self.A) == 0:
            return np.zeros(0, dtype=complex)
        return eigenvalues_only(self.A + eta * self.B)

    def rest_eigenvalues(self, eta: float) -> np.ndarray:
        """Eigenvalues of ``A_rest + eta B_rest`` (sorted by decreasing real part)."""
        w = self._rest_unsorted(eta)
        return w[eigenvalue_order(w)]

    def eigenvalues(self, eta: float) -> np.ndarray:
        """Every eigenvalue that is not identically zero, sorted by decreasing real part."""
        parts = [np.repeat([complex(br.value(eta))], br.multiplicity) for br in self.branches]
        w = np.concatenate(parts + [self.rest_eigenvalues(eta)]) if parts or len(self.A) else np.zeros(0, complex)
        return w[eigenvalue_order(w)]

    def max_real(self, eta: float) -> float:
        """Largest real part over the non-null spectrum (``-inf`` if everything is null)."""
        # the maximum of :meth:`eigenvalues` without sorting them (a root search asks hundreds of times)
        re = np.concatenate([np.array([br.value(eta) for br in self.branches], dtype=complex).real,
                             self._rest_unsorted(eta).real])
        return float(re.max()) if len(re) else float("-inf")


def _null_space(S: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal basis of the right singular vectors of ``S`` with singular values <= tol.

    Accepted only with a clear gap to the next singular value (else empty).
    Returns (basis (n, d), ascending singular values).
    """
    n = S.shape[1]
    try:
        _, s, Vt = np.linalg.svd(S, full_matrices=S.shape[0] < n)
    except np.linalg.LinAlgError:
        try:  # the slower QR-iteration driver instead of divide and conquer
            _, s, Vt = linalg.svd(S, full_matrices=S.shape[0] < n, lapack_driver="gesvd")
        except (np.linalg.LinAlgError, ValueError):
            return np.zeros((n, 0)), np.full(n, np.nan)
    s_full = np.zeros(n)
    s_full[: len(s)] = s
    asc = np.sort(s_full)
    d = int(np.sum(s_full <= tol))
    if d and d < n and asc[d] <= _GAP_FACTOR * tol:
        d = 0  # no clear separation: not an exact structure
    return Vt[n - d:].T if d else np.zeros((n, 0)), asc


def _complement(V: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the orthogonal complement of the columns of ``V``."""
    n = V.shape[0]
    if V.shape[1] == 0:
        return np.eye(n)
    Q, _ = np.linalg.qr(V, mode="complete")
    return Q[:, V.shape[1]:]


def _orthonormal_span(V: np.ndarray) -> np.ndarray:
    U, s, _ = np.linalg.svd(V, full_matrices=False)
    return U[:, s > 1e-8 * max(s.max(initial=0.0), 1e-300)]


def _common_eigenspaces(A: np.ndarray, B: np.ndarray, tol: float, eta_scale: float
                        ) -> list[tuple[float, float, np.ndarray, float]]:
    """Common right eigenspaces ``{v : A v = a v, B v = b v}`` with (a, b) != (0, 0).

    Candidates (a, b) are the Rayleigh quotients of the real eigenvectors of
    ``A + e B`` at two unrelated e (a common eigenvector is an eigenvector at
    every e); each is confirmed, and its full eigenspace found, by the null
    space of ``[A - a I; B - b I]``.
    """
    n = len(A)
    found: list[tuple[float, float, np.ndarray, float]] = []
    I = np.eye(n)
    for e in (0.6180339887498949 * eta_scale, 1.4142135623730951 * eta_scale):
        sp = eigen_decomposition(A + e * B)
        if not sp.converged:
            continue
        w = np.asarray(sp.eigenvalues)
        V = np.asarray(sp.eigenvectors)
        for k in range(n):
            if np.iscomplexobj(w) and w[k].imag != 0:
                continue
            v = np.real(V[:, k])
            a, b = float(v @ A @ v), float(v @ B @ v)
            if max(np.linalg.norm(A @ v - a * v), np.linalg.norm(B @ v - b * v)) > 1e4 * tol:
                continue
            if abs(a) <= tol and abs(b) <= tol:
                continue  # null directions are handled separately
            if any(np.linalg.norm(N.T @ v) > 0.5 for _, _, N, _ in found):
                continue  # already found
            basis = None
            for _ in range(3):  # refine (a, b) on the eigenspace, then recompute it
                basis, asc = _null_space(np.vstack([A - a * I, B - b * I]), tol)
                if basis.shape[1] == 0:
                    break
                d = basis.shape[1]
                a_new = float(np.trace(basis.T @ A @ basis)) / d
                b_new = float(np.trace(basis.T @ B @ basis)) / d
                settled = abs(a_new - a) + abs(b_new - b) <= 1e-3 * tol
                a, b = a_new, b_new
                if settled:
                    break
            if basis is None or basis.shape[1] == 0:
                continue
            if any(np.linalg.norm(N.T @ basis, 2) > 0.5 for _, _, N, _ in found):
                continue
            res = float(asc[basis.shape[1] - 1])
            found.append((a, b, basis, res))
    return found


def split_pencil(A: Any, B: Any, tol: float) -> PencilSplit:
    """Deflate the eta-independent parts of the pencil ``A + eta B`` (module docstring).

    Parameters
    ----------
    A, B : array_like, shape (n, n)
        Real matrices.
    tol : float
        Absolute tolerance on singular values, ``> 0``: a multiple of the
        entrywise error of A and B (callers use ``20 n`` times it).

    Returns
    -------
    PencilSplit
    """
    A = np.asarray(A, dtype=float)
    B = np.asarray(B, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or B.shape != A.shape:
        raise ValueError(f"A, B: must be square matrices of the same shape, got {A.shape} and {B.shape}")
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol: must be finite and > 0, got {tol!r}")
    n = len(A)
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(B))):
        return PencilSplit(np.zeros((n, 0)), np.zeros((n, 0)), 0, (), A, B, float(tol))
    null_right, sv_r = _null_space(np.vstack([A, B]), tol)
    null_left, sv_l = _null_space(np.vstack([A.T, B.T]), tol)
    normB = float(np.linalg.norm(B, 2))
    eta_scale = float(np.linalg.norm(A, 2)) / normB if normB > 0 else 1.0
    if not np.isfinite(eta_scale) or eta_scale <= 0:
        eta_scale = 1.0
    Ya, Yb = A, B
    n_null = 0
    branches: list[PencilBranch] = []
    # Deflating right vectors (or left ones) keeps the compressed pencil C^T M C with C an
    # orthonormal basis of their complement; both sides alternate until nothing is left.
    for _ in range(2 * n + 2):
        changed = False
        for side in ("right", "left"):
            if len(Ya) == 0:
                break
            Ma, Mb = (Ya, Yb) if side == "right" else (Ya.T, Yb.T)
            N, _ = _null_space(np.vstack([Ma, Mb]), tol)
            spaces = [N] if N.shape[1] else []
            n_null += N.shape[1]
            for a, b, basis, res in _common_eigenspaces(Ma, Mb, tol, eta_scale):
                branches.append(PencilBranch(a, b, basis.shape[1], side, res))
                spaces.append(basis)
            if not spaces:
                continue
            span = _orthonormal_span(np.concatenate(spaces, axis=1))
            C = _complement(span)
            Ya, Yb = C.T @ Ya @ C, C.T @ Yb @ C
            changed = True
        if not changed:
            break
    return PencilSplit(null_right, null_left, n_null, tuple(branches), Ya, Yb, float(tol), (sv_r, sv_l))


def leading_pair_discriminant(M: np.ndarray) -> tuple[float, float] | None:
    """``(lambda_1 - lambda_2)^2`` and ``(lambda_1 + lambda_2) / 2`` of the two leading eigenvalues.

    The two eigenvalues with the largest real parts (a real pair or a
    complex-conjugate pair) are moved to the top of an ordered real Schur
    form; their 2 x 2 block ``T`` is well conditioned even where the pair is
    defective, so the discriminant ``(t11 - t22)^2 + 4 t12 t21`` (positive for
    a real pair, negative for a complex one) has a simple zero where two real
    eigenvalues coalesce into a complex pair, and the block's mean eigenvalue
    is accurate there.  ``None`` when the pair is not separated from the rest
    of the spectrum (or the leading eigenvalue is real and the next one complex).
    """
    M = np.asarray(M, dtype=float)
    n = len(M)
    if n < 2 or not np.all(np.isfinite(M)):
        return None
    w = eigenvalues_only(M)
    if not np.all(np.isfinite(w)):
        return None
    w = w[eigenvalue_order(w)]
    scale = max(1.0, float(np.abs(w).max()))
    if n > 2:
        third = w[2].real
        if w[1].real - third <= 1e-6 * scale:
            return None
        cut = 0.5 * (w[1].real + third)
    else:
        cut = -np.inf
    if abs(w[0].imag) <= 1e-12 * scale and abs(w[1].imag) > 1e-12 * scale:
        return None
    try:
        T, _, sdim = linalg.schur(M, output="real", sort=lambda x, y: x > cut)
    except (np.linalg.LinAlgError, ValueError):
        return None
    if sdim != 2:
        return None
    t11, t12, t21, t22 = T[0, 0], T[0, 1], T[1, 0], T[1, 1]
    return float((t11 - t22) ** 2 + 4.0 * t12 * t21), float(0.5 * (t11 + t22))
