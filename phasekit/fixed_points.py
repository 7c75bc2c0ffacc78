"""Fixed points of the committee-machine flow, their linearisation and stability boundaries.

A fixed point is a state with ``d state / d alpha = 0``.  Several landmarks
of the model lie on the boundary of the positive-semidefinite (PSD) cone of
the field covariance ``Sigma = [[Q, R], [R^T, T]]``: at the perfect solution
each student field equals a teacher field, at the erf plateau the students
coincide, and at the ReLU plateau the students' mean lies in the teachers'
span.  Three consequences shape this module.

* Root finding never leaves the cone.  A Newton trial point outside it is
  pulled back along the segment to an interior point (the smallest
  eigenvalue of ``Sigma`` is concave along a line, so the feasible part of a
  segment is one interval, found by a monotone Newton iteration).  A straight
  step along a curved face leaves the cone only at second order, so this
  retraction keeps Newton's quadratic convergence to boundary roots.  Roots
  that are degenerate along the directions leaving a face (the erf plateau:
  separating the coinciding students costs nothing to first order) are
  polished by Gauss-Newton on the flow together with the face equations
  ``a^T W a = 0`` (``W = Q - R T^-1 R^T``, ``a`` its null vectors).
* The right-hand side may not be analytic at the boundary (ReLU: corrections
  in powers of ``(1 - rho)^(1/2)``), and the closed forms are not defined
  outside.  Jacobians at boundary points are therefore limits taken from
  inside: along ``x0 + h d`` with ``d`` pointing into the cone the flow is
  ``f(x0) + h J d + c_3 h^(3/2) + c_4 h^2 + ...``, i.e. a power series in
  ``s = sqrt(h)``.  The module samples it on a geometric grid of ``s`` in
  ``[0.01, 0.7]``, fits Chebyshev polynomials of several degrees over several
  ranges (weighted by the expected round-off, which grows like ``h^(-3/2)``
  for the quotient; isolated round-off spikes, e.g. where a quadrature
  switches rules, are dropped first) and keeps, per entry, the estimate that
  is most stable under a change of degree; that change is the reported
  error.  For the ReLU perceptron the entries come out within ``3e-11`` of the
  exact Jacobian (checked in the tests), a few times ``1e-11`` for the other
  cases tried.
* Inside the cone, Jacobians are central differences: one batched call of
  ``model.rhs_vector`` on a stack of ``2 n + 1`` states (the centre gives the
  residual), accurate to about ``1e-10``.

The inward direction at ``x0 = (R0, Q0)`` is ``d_in = x_c - x0`` towards the
interior point ``x_c = (0, Q0 + mu I)``: it shrinks R.  Because the cone is
convex, ``x0 + h (d_in + gamma e_k)`` stays strictly inside for ``0 < h <= 1``
whenever ``gamma`` is below half the smallest eigenvalue of ``Sigma(x_c)``,
so ``J e_k = (J (d_in + gamma e_k) - J d_in) / gamma`` gives every column.
When the state is symmetric under permutations of the units (perfect solution
with ``T = I``, symmetric plateau), only the columns of one representative per
orbit of coordinates are computed and the rest follow from equivariance.

Learning-rate structure: the flow is ``eta a(x) + eta^2 b(x)``.  At a fixed
point that does not move with eta (the perfect solution without noise, any
zero-error state) the Jacobian is ``eta A + eta^2 B`` with A, B independent
of eta.  The parts of ``spec(A + eta B)`` known for every eta are split off
first (:func:`phasekit.spectrum.split_pencil`): eigenvalues that vanish
identically (common null vectors of A and B: a continuum of fixed points)
are marginal modes, excluded and named; common eigenvectors give linear
branches ``a + eta b``.  The critical learning rate is the first zero of the
largest real part of the rest, found by a bracketing scan (signs trusted only
outside the eigenvalue error band derived from the Jacobian's error
estimate) and Brent's method, and polished with the generalised eigenvalue
problem ``A v = -eta B v`` when the crossing eigenvalue is real.  The optimal
learning rate often sits on a crossing of two branches at a defective
Jacobian (erf K = M); after the split that crossing is a simple zero of a
difference of well-conditioned eigenvalues.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Sequence

import numpy as np
import xarray as xr
from scipy import linalg, optimize

from .committee import PSD_TOL, Committee, State, vector_labels
from .provenance import provenance_attrs
from .spectrum import PencilSplit, eigen_decomposition, eigenvalues_only, leading_pair_discriminant, split_pencil

__all__ = [
    "FixedPoint",
    "jacobian",
    "linearise",
    "find_fixed_point",
    "symmetric_plateau",
    "perfect_solution",
    "fixed_points",
    "eta_structure",
    "EtaStructure",
    "critical_eta",
    "optimal_eta",
    "continuation",
]

# Relative step of central differences: cube root of machine epsilon balances
# truncation (h^2) against round-off (eps / h).
_CENTRAL_STEP = 6e-6
# Relative step of the one-sided inward differences used inside Newton iterations.
_FORWARD_STEP = 1e-8
# Below this relative cone margin a point counts as lying on the boundary and
# its Jacobian is the one-sided limit from inside the cone.
_BOUNDARY_MARGIN = 1e-9
# Sampling of the one-sided expansion in s = sqrt(h).
_S_GRID = np.geomspace(0.01, 0.7, 64)
_S_RANGES = (0.15, 0.2, 0.3, 0.45, 0.7)
_S_MINS = (0.01, 0.02, 0.04)
_DEGREES = tuple(range(4, 19))
# States whose relative cone margin is above -this are inside up to rounding (the
# boundary itself is computed with errors of a few 1e-17).
_ROUNDOFF_MARGIN = 1e-14
# Duplicates: states closer than this (max-norm, relative to the state scale).
_DEDUP_TOL = 1e-6


# --- the cone --------------------------------------------------------------------


def _scale(model: Committee, v: np.ndarray) -> np.ndarray:
    S = model.covariance(v)
    return np.maximum(1.0, np.abs(S).max(axis=(-2, -1)))


def _margin(model: Committee, V: np.ndarray) -> np.ndarray:
    """Smallest eigenvalue of the field covariance over its scale, batched over rows of ``V``.

    ``-inf`` for states that are not finite (a diverged flow or Newton step).
    """
    S = model.covariance(np.asarray(V, dtype=float))
    batch = S.shape[:-2]
    S = S.reshape((-1,) + S.shape[-2:])
    out = np.full(len(S), -np.inf)
    ok = np.all(np.isfinite(S), axis=(-2, -1))
    if np.any(ok):
        Sf = S[ok]
        scale = np.maximum(1.0, np.abs(Sf).max(axis=(-2, -1)))
        try:
            lam = np.linalg.eigvalsh(Sf)[..., 0]
        except np.linalg.LinAlgError:  # one row failed: redo row by row
            lam = np.full(len(Sf), -np.inf)
            for k, Sk in enumerate(Sf):
                try:
                    lam[k] = np.linalg.eigvalsh(Sk)[0]
                except np.linalg.LinAlgError:
                    pass
        out[ok] = np.where(np.isfinite(lam), lam / scale, -np.inf)
    return out.reshape(batch)


def _max_step(model: Committee, v: np.ndarray, dv: np.ndarray, floor: float = 0.0) -> float:
    """Largest ``t`` in ``[0, 1]`` with ``margin(v + t dv) >= floor`` (``v`` itself feasible).

    ``phi(t) = lambda_min(Sigma(v) + t L(dv))`` is concave (a minimum of linear
    functions), so the feasible set is an interval ``[0, t*]`` and Newton's
    method started on the infeasible side, with the supergradient
    ``u^T L(dv) u`` (``u`` the bottom eigenvector), decreases monotonically to
    ``t*`` without overshooting.
    """
    if not (np.all(np.isfinite(v)) and np.all(np.isfinite(dv))):
        return 0.0
    S0 = model.covariance(v)
    D = model.covariance(dv) - model.covariance(np.zeros_like(dv))
    scale = max(1.0, float(np.abs(S0).max()), float(np.abs(S0 + D).max()))
    target = floor * scale

    def phi(t: float) -> tuple[float, float]:
        lam, U = np.linalg.eigh(S0 + t * D)
        u = U[:, 0]
        return float(lam[0]) - target, float(u @ D @ u)

    f1, g1 = phi(1.0)
    if f1 >= 0:
        return 1.0
    t = 1.0
    for _ in range(60):
        if g1 >= 0:  # cannot happen for a feasible start; fall back to bisection
            break
        t_new = t - f1 / g1
        if not (0.0 <= t_new < t):
            break
        t = t_new
        f1, g1 = phi(t)
        if f1 >= 0:
            return t
        if abs(f1) <= 4e-16 * scale:
            break
    # land on the feasible side: bisection between 0 and the current infeasible t
    lo, hi = 0.0, t
    if phi(lo)[0] < 0:
        return 0.0
    # the root is within a few rounding units of hi: try points just below it first
    for k in range(1, 40):
        cand = hi * (1.0 - 2.0 ** (-52 + k))
        if phi(cand)[0] >= 0:
            return cand
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if phi(mid)[0] >= 0:
            lo = mid
        else:
            hi = mid
    return lo


def _interior_reference(model: Committee, v: np.ndarray) -> tuple[np.ndarray, float]:
    """Interior point ``x_c = (0, Q + mu I)`` and the smallest eigenvalue of its covariance."""
    K, M = model.K, model.M
    Q = model.covariance(v)[:K, :K]
    mu = 0.5 * max(float(np.mean(np.diag(Q))), 1e-3)
    lam_q = float(np.linalg.eigvalsh(Q)[0])
    if lam_q + mu <= 0.5 * mu:  # Q itself not PSD (a guess outside the cone): push further in
        mu = mu - lam_q
    xc = np.concatenate([np.zeros(K * M), (Q + mu * np.eye(K))[np.triu_indices(K)]])
    lam_c = min(lam_q + mu, float(np.linalg.eigvalsh(model.T)[0]))
    return xc, lam_c


def _inward_direction(model: Committee, v: np.ndarray) -> tuple[np.ndarray, float]:
    """``d_in = x_c - v`` and the largest safe ``gamma`` for ``d_in + gamma e_k``."""
    xc, lam_c = _interior_reference(model, v)
    return xc - v, 0.5 * lam_c


def _pull_inside(model: Committee, v: np.ndarray) -> np.ndarray:
    """Move ``v`` towards the interior reference until it is inside the cone (non-finite: unchanged)."""
    if _margin(model, v) >= 0 or not np.all(np.isfinite(v)):
        return v
    xc, _ = _interior_reference(model, v)
    d = v - xc
    t = _max_step(model, xc, d, floor=0.0)
    return xc + t * d


# --- symmetry of a state -----------------------------------------------------------


def _coordinate_permutation(K: int, M: int, sigma: Sequence[int], tau: Sequence[int]) -> np.ndarray:
    """Index map ``pi`` with ``P e_k = e_pi[k]`` for student permutation sigma, teacher permutation tau."""
    idx_q = {}
    iu = np.triu_indices(K)
    for j, (a, b) in enumerate(zip(*iu)):
        idx_q[(int(a), int(b))] = K * M + j
    pi = np.empty(K * M + len(iu[0]), dtype=int)
    for i in range(K):
        for n in range(M):
            pi[i * M + n] = sigma[i] * M + tau[n]
    for (a, b), j in idx_q.items():
        x, y = sorted((sigma[a], sigma[b]))
        pi[j] = idx_q[(x, y)]
    return pi


def _perm_sending(size: int, targets: Sequence[int]) -> list[int]:
    """A permutation of ``range(size)`` sending 0 -> targets[0], 1 -> targets[1], ..."""
    perm = [-1] * size
    for a, b in enumerate(targets):
        perm[a] = b
    free = [x for x in range(size) if x not in targets]
    for a in range(len(targets), size):
        perm[a] = free.pop(0)
    return perm


def _swap(size: int, i: int) -> list[int]:
    p = list(range(size))
    p[i], p[i + 1] = p[i + 1], p[i]
    return p


@dataclass(frozen=True)
class _Symmetry:
    """For every coordinate j: a representative r[j] and a map pi_j with J[pi_j, j] = J[:, r[j]]."""

    reps: np.ndarray
    perms: np.ndarray  # (n, n)
    kind: str
    generators: tuple = ()  # coordinate maps of adjacent transpositions generating the group

    @property
    def representatives(self) -> np.ndarray:
        return np.unique(self.reps)

    def symmetrise(self, J: np.ndarray) -> np.ndarray:
        """Average ``J`` over the group: ``J[a, b]`` becomes the mean over the orbit of ``(a, b)``.

        Equivariance ``P J P^T = J`` then holds to rounding, so eigenvalues of
        different symmetry sectors cross exactly instead of repelling at the
        square root of the numerical error.  Rows may stack several state-shaped blocks.
        """
        n = self.perms.shape[0]
        m = J.shape[0]
        rows = np.arange(m)
        labels = np.arange(m * n).reshape(m, n)
        maps = []
        for g in self.generators:
            g_rows = np.concatenate([g + b * n for b in range(m // n)])
            maps.append((g_rows, g))
        # label propagation to the smallest index of each pair orbit (pairs (a, b) -> (g a, g b))
        while True:
            old = labels.copy()
            for g_rows, g in maps:
                img = np.empty_like(labels)
                img[g_rows[:, None], g[None, :]] = labels[rows[:, None], np.arange(n)[None, :]]
                labels = np.minimum(labels, img)
                back = labels[g_rows[:, None], g[None, :]]
                labels = np.minimum(labels, back)
            if np.array_equal(labels, old):
                break
        flat = labels.ravel()
        sums = np.bincount(flat, weights=J.ravel(), minlength=m * n)
        counts = np.bincount(flat, minlength=m * n)
        return (sums[flat] / counts[flat]).reshape(m, n)


def _state_symmetry(model: Committee, v: np.ndarray, tol: float = 1e-12) -> _Symmetry | None:
    """Detect invariance of ``v`` under all unit permutations (separate or simultaneous)."""
    K, M = model.K, model.M
    n = model.n_state
    T = model.T
    scale = max(1.0, float(np.abs(v).max()))

    def invariant(pi: np.ndarray, tau: Sequence[int]) -> bool:
        w = np.empty_like(v)
        w[pi] = v
        Tp = T[np.ix_(tau, tau)]
        return bool(np.abs(w - v).max() <= tol * scale and np.abs(Tp - T).max() <= tol)

    def build(kind: str) -> _Symmetry | None:
        reps = np.empty(n, dtype=int)
        perms = np.empty((n, n), dtype=int)
        iu = np.triu_indices(K)
        coords = [("R", i, m) for i in range(K) for m in range(M)] + [("Q", int(a), int(b)) for a, b in zip(*iu)]
        index = {c: j for j, c in enumerate(coords)}
        for j, (typ, a, b) in enumerate(coords):
            if kind == "separate":
                if typ == "R":
                    rep, sigma, tau = ("R", 0, 0), _perm_sending(K, [a]), _perm_sending(M, [b])
                elif a == b:
                    rep, sigma, tau = ("Q", 0, 0), _perm_sending(K, [a]), list(range(M))
                else:
                    rep, sigma, tau = ("Q", 0, 1), _perm_sending(K, [a, b]), list(range(M))
            else:  # simultaneous permutation of students and teachers (K == M)
                if typ == "R" and a == b:
                    rep, sigma = ("R", 0, 0), _perm_sending(K, [a])
                elif typ == "R":
                    rep, sigma = ("R", 0, 1), _perm_sending(K, [a, b])
                elif a == b:
                    rep, sigma = ("Q", 0, 0), _perm_sending(K, [a])
                else:
                    rep, sigma = ("Q", 0, 1), _perm_sending(K, [a, b])
                tau = sigma
            pi = _coordinate_permutation(K, M, sigma, tau)
            if not invariant(pi, tau):
                return None
            reps[j] = index[rep]
            perms[j] = pi
        if kind == "separate":
            gens = [(_swap(K, i), list(range(M))) for i in range(K - 1)]
            gens += [(list(range(K)), _swap(M, a)) for a in range(M - 1)]
        else:
            gens = [(_swap(K, i), _swap(K, i)) for i in range(K - 1)]
        generators = tuple(_coordinate_permutation(K, M, sg, tg) for sg, tg in gens)
        return _Symmetry(reps, perms, kind, generators)

    if K * M == 1:
        return None
    sym = build("separate")
    if sym is None and K == M:
        sym = build("simultaneous")
    if sym is not None and len(sym.representatives) >= n:
        return None
    return sym


# --- Jacobians ---------------------------------------------------------------------


def _central_jacobian(fun: Callable[[np.ndarray], np.ndarray], v: np.ndarray, h: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Central differences from ONE batched call on ``2 n + 1`` states; returns (f(v), J)."""
    n = v.size
    E = h * np.eye(n)
    V = np.concatenate([v[None, :], v + E, v - E])
    F = fun(V)
    return F[0], (F[1:n + 1] - F[n + 1:]).T / (2.0 * h)


def _forward_inward_jacobian(fun: Callable[[np.ndarray], np.ndarray], v: np.ndarray, d_in: np.ndarray,
                             gamma: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    """One-sided differences along directions that point into the cone (``n + 2`` states)."""
    n = v.size
    D = d_in[None, :] + gamma * np.eye(n)
    V = np.concatenate([v[None, :], (v + h * d_in)[None, :], v + h * D])
    F = fun(V)
    return F[0], (F[2:] - F[1]).T / (h * gamma)


def _inliers(G: np.ndarray, s: np.ndarray, degree: int = 14, threshold: float = 10.0) -> np.ndarray:
    """Samples that are not isolated spikes of round-off (e.g. a quadrature switching rules).

    A weighted Chebyshev fit of high degree over all samples gives residuals
    at the noise level; a sample whose residual exceeds ``threshold`` robust
    standard deviations in any column is dropped (at most 15 % of the samples).
    """
    h = s * s
    w = h ** 1.5
    w = w / w.max()
    x = 2.0 * (s - s.min()) / (s.max() - s.min()) - 1.0
    V = np.polynomial.chebyshev.chebvander(x, degree)
    coef = np.linalg.lstsq(V * w[:, None], G * w[:, None], rcond=None)[0]
    r = np.abs(V @ coef - G) * w[:, None]
    sigma = 1.4826 * np.median(r, axis=0) + 1e-300
    score = (r / sigma).max(axis=1)
    keep = np.ones(len(s), dtype=bool)
    n_max = int(0.15 * len(s))
    worst = np.argsort(score)[::-1][:n_max]
    keep[worst[score[worst] > threshold]] = False
    return keep


def _one_sided_limit(G: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value at ``s = 0`` of each column of ``G(s)`` (rows: samples), with an error estimate.

    Weighted least-squares Chebyshev fits of several degrees on several ranges
    ``[s_min, s_max]``; per column, keep the estimate that changes least when
    the degree moves by one in either direction (the change is the error).
    """
    G = G.reshape(len(s), -1)
    finite = np.all(np.isfinite(G), axis=1)  # e.g. a flow that overflows at the far end
    s, G = s[finite], G[finite]
    if len(s) < 16:
        return np.full(G.shape[1], np.nan), np.full(G.shape[1], np.inf)
    keep = _inliers(G, s)
    s, G = s[keep], G[keep]
    h = s * s
    best = np.full(G.shape[1], np.nan)
    err = np.full(G.shape[1], np.inf)
    for smin, smax in itertools.product(_S_MINS, _S_RANGES):
        sel = (s <= smax * (1 + 1e-12)) & (s >= smin * (1 - 1e-12))
        if sel.sum() < 12:
            continue
        ss = s[sel]
        a, b = ss.min(), ss.max()
        x = 2.0 * (ss - a) / (b - a) - 1.0
        x0 = np.array([2.0 * (0.0 - a) / (b - a) - 1.0])
        w = h[sel] ** 1.5  # quotient round-off grows like h^(-3/2) for square-root corrections
        w = w / w.max()
        degrees = [p for p in _DEGREES if p + 4 <= len(ss)]
        if not degrees:
            continue
        # one QR of the weighted Vandermonde matrix serves every degree: the least-squares
        # fit on the leading p + 1 columns uses the leading block of the same factors
        V = np.polynomial.chebyshev.chebvander(x, degrees[-1]) * w[:, None]
        Qf, Rf = np.linalg.qr(V)
        rhs = Qf.T @ (G[sel] * w[:, None])
        at0 = np.polynomial.chebyshev.chebvander(x0, degrees[-1])[0]
        # the inverse of a triangular matrix's leading block is the leading block of its inverse
        Rinv = np.linalg.inv(Rf)
        est = []
        for p in degrees:
            row = at0[: p + 1] @ Rinv[: p + 1, : p + 1]
            est.append(row @ rhs[: p + 1])
        est = np.array(est)
        for j in range(1, len(est) - 1):
            e = np.maximum(np.abs(est[j] - est[j - 1]), np.abs(est[j] - est[j + 1]))
            better = e < err
            best = np.where(better, est[j], best)
            err = np.where(better, e, err)
    return best, err


def _cone_jacobian(model: Committee, fun: Callable[[np.ndarray], np.ndarray], v: np.ndarray,
                   symmetry: _Symmetry | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Jacobian at a boundary point as the limit from inside the cone.

    Returns ``(f(v), J, J_error, n_rhs)``; ``J_error`` is the entrywise error estimate.
    """
    n = v.size
    d_in, gamma = _inward_direction(model, v)
    cols = np.arange(n) if symmetry is None else symmetry.representatives
    D = np.concatenate([d_in[None, :], d_in[None, :] + gamma * np.eye(n)[cols]])  # (1 + c, n)
    s = _S_GRID
    h = s * s
    V = v[None, None, :] + h[:, None, None] * D[None, :, :]
    F = fun(np.concatenate([v[None, :], V.reshape(-1, n)]))
    f0 = F[0]
    m = F.shape[-1]
    G = (F[1:].reshape(len(s), len(D), m) - f0) / h[:, None, None]
    JD, errD = _one_sided_limit(G, s)
    JD = JD.reshape(len(D), m)
    errD = errD.reshape(len(D), m)
    Jc = (JD[1:] - JD[0]) / gamma  # columns for `cols`, shape (c, m)
    Ec = (errD[1:] + errD[0]) / gamma
    J = np.empty((m, n))
    E = np.empty((m, n))
    if symmetry is None:
        J[:] = Jc.T
        E[:] = Ec.T
    else:
        pos = {int(c): j for j, c in enumerate(cols)}
        # outputs may stack several state-shaped blocks (e.g. the A and B parts)
        blocks = m // n
        for j in range(n):
            r = pos[int(symmetry.reps[j])]
            pi = np.concatenate([symmetry.perms[j] + b * n for b in range(blocks)])
            J[pi, j] = Jc[r]
            E[pi, j] = Ec[r]
        J = symmetry.symmetrise(J)
    return f0, J, E, F.shape[0]


def jacobian(model: Committee, state: State | np.ndarray, *, method: str = "auto",
             full_output: bool = False) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
    """Jacobian ``d (d state / d alpha) / d state`` of the flow at the model's eta.

    Parameters
    ----------
    model : Committee
    state : State or ndarray, shape (n_state,)
        A point inside the positive-semidefinite cone (or on its boundary).
    method : {"auto", "central", "cone"}
        ``"central"``: central differences, one batched call on ``2 n + 1``
        states (step ``6e-6`` times the state scale, reduced near the
        boundary so that the stencil stays inside), accurate to about
        ``1e-10``.  ``"cone"``: the one-sided limit from inside the cone
        (module docstring), for points on the boundary where the flow may not
        be analytic; it uses ``64 (c + 1)`` states, ``c`` being ``n`` or the
        number of symmetry orbits of coordinates.  ``"auto"``: ``"central"``
        when the stencil fits inside the cone, else ``"cone"``.
    full_output : bool
        Also return a dict with ``method``, ``error`` (estimated max error of
        an entry; ``nan`` when not estimated), ``n_rhs`` (states evaluated),
        ``rhs`` (the flow at ``state``) and ``margin`` (relative distance to
        the cone boundary).

    Returns
    -------
    ndarray, shape (n_state, n_state)
        ``J[a, b] = d f_a / d v_b`` in the state order of :func:`phasekit.committee.vector_labels`; units 1/alpha.
    """
    v = _as_vector(model, state, "state")
    return _jacobian_of(model, model.rhs_vector, v, method=method, full_output=full_output)


def _jacobian_of(model: Committee, fun: Callable[[np.ndarray], np.ndarray], v: np.ndarray, *,
                 method: str = "auto", full_output: bool = False, symmetry: Any = "detect"):
    if method not in ("auto", "central", "cone"):
        raise ValueError(f"method: must be 'auto', 'central' or 'cone', got {method!r}")
    margin = float(_margin(model, v))
    if margin < -PSD_TOL:
        raise ValueError(f"state: outside the positive-semidefinite cone (relative margin {margin:.3g})")
    scale = float(_scale(model, v))
    use = method
    if method == "auto":
        use = "central" if margin > _BOUNDARY_MARGIN else "cone"
    if use == "central":
        # keep the stencil inside: a unit coordinate step moves eigenvalues by at most |h|
        h = _CENTRAL_STEP * scale
        if margin * scale < 4 * h:
            h = max(margin * scale / 4, 1e-12 * scale)
        f0, J = _central_jacobian(fun, v, h)
        info = {"method": "central", "error": float("nan"), "n_rhs": 2 * v.size + 1, "step": h}
    else:
        if symmetry == "detect":
            symmetry = _state_symmetry(model, v)
        f0, J, E, n_rhs = _cone_jacobian(model, fun, v, symmetry)
        info = {"method": "cone", "error": float(np.nanmax(E)), "n_rhs": n_rhs,
                "symmetry": "none" if symmetry is None else symmetry.kind}
    info.update(rhs=f0, margin=margin)
    return (J, info) if full_output else J


def _as_vector(model: Committee, state: State | np.ndarray, name: str) -> np.ndarray:
    if not isinstance(model, Committee):
        raise ValueError(f"model: expected a phasekit.Committee, got {type(model).__name__}")
    if isinstance(state, FixedPoint):
        state = state.state
    if isinstance(state, State):
        if state.R.shape != (model.K, model.M):
            raise ValueError(f"{name}: R has shape {state.R.shape}, model needs ({model.K}, {model.M})")
        v = state.to_vector()
    else:
        v = np.asarray(state, dtype=float)
        if v.shape != (model.n_state,):
            raise ValueError(f"{name}: expected a State or a vector of length {model.n_state}, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name}: must be finite")
    return v.copy()


# --- fixed points ------------------------------------------------------------------


@dataclass(eq=False)
class FixedPoint:
    """A fixed point of a flow and its linearisation.

    The result type of every fixed-point search in phasekit: the committee
    machine here, and deep linear networks (:mod:`phasekit.linear_dynamics`,
    where ``state`` is a plain vector, ``model`` is ``None`` and ``eg`` is nan).

    Attributes
    ----------
    state : State or ndarray
        The order parameters (a :class:`State` for the committee machine).
    eigenvalues : ndarray, shape (n_state,)
        Spectrum of the Jacobian of ``d state / d alpha`` at the model's eta
        (units 1/alpha), sorted by decreasing real part (ties: decreasing
        imaginary part).  Real dtype when the spectrum is real, complex otherwise.
    eigenvectors : ndarray, shape (n_state, n_state)
        Matching unit eigenvectors as columns, in the state order (R row-major,
        then the upper triangle of Q); each is scaled so that its
        largest-magnitude component (the first of ties) is real and positive,
        and the columns of a repeated real eigenvalue are a real orthonormal
        basis of its eigenspace (:func:`phasekit.spectrum.eigen_decomposition`).
    eg : float
        Generalisation error at the fixed point.
    n_unstable : int
        Eigenvalues with real part above the tolerance ``eig_tol``.
    stable : bool
        Converged and every eigenvalue has real part below ``-eig_tol``.
    residual : float
        ``max |d state / d alpha|`` at ``state``.
    converged : bool
        Whether the root finder met its tolerance.
    kind : str
        ``"stable"``, ``"saddle"``, ``"unstable"`` (every direction unstable),
        ``"marginal"`` (an eigenvalue within ``eig_tol`` of zero, none above)
        or ``"not_converged"``.
    label : str
        ``"perfect"``, ``"symmetric_plateau"`` or ``""``.
    escape_eigenvalue, escape_vector
        For a symmetric plateau: the leading eigenvalue whose eigenvector
        breaks the permutation symmetry, and a unit vector of its eigenspace
        (the projection of the direction "student 1 moves towards teacher 1",
        R11 component positive); ``None`` otherwise.
    escape_multiplicity : int
        Dimension of the escape eigenspace (0 when not a plateau).
    jacobian : ndarray, shape (n_state, n_state)
    jacobian_error : float
        Estimated max error of a Jacobian entry (``nan`` if not estimated).
    jacobian_method : str
    eig_tol : float
        Threshold separating stable, marginal and unstable eigenvalues.
    model : Committee
    iterations : int
    message : str
    """

    state: State
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    eg: float
    n_unstable: int
    stable: bool
    residual: float
    converged: bool
    kind: str
    model: Committee | None
    jacobian: np.ndarray
    jacobian_error: float = float("nan")
    jacobian_method: str = ""
    eig_tol: float = 0.0
    label: str = ""
    escape_eigenvalue: float | None = None
    escape_vector: np.ndarray | None = None
    escape_multiplicity: int = 0
    iterations: int = 0
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        lead = self.eigenvalues[0] if len(self.eigenvalues) else float("nan")
        return (f"FixedPoint({self.kind}, label={self.label!r}, eg={self.eg:.6g}, n_unstable={self.n_unstable}, "
                f"leading eigenvalue={lead:.6g}, residual={self.residual:.2g}, state={self.state!r})")

    @property
    def vector(self) -> np.ndarray:
        """The state as a vector (R row-major, then the upper triangle of Q)."""
        return self.state.to_vector() if isinstance(self.state, State) else np.asarray(self.state)

    def to_dataset(self) -> xr.Dataset:
        """The fixed point as an ``xarray.Dataset``.

        Coordinates ``i``, ``k`` (students), ``n`` (teachers), ``component``
        (state components, e.g. ``"R12"``) and ``mode`` (eigenvalue index,
        0 = largest real part).  Variables ``R``, ``Q``, ``eigenvalue_real``,
        ``eigenvalue_imag``, ``eigenvector_real``, ``eigenvector_imag``
        ``(component, mode)``, ``jacobian`` ``(component, component_in)``,
        scalars ``eg``, ``residual``, ``n_unstable``, ``stable``,
        ``escape_eigenvalue`` (nan if none).
        """
        return _fixed_point_dataset(self)


def _fixed_point_dataset(fp: FixedPoint) -> xr.Dataset:
    model = fp.model
    if model is None:
        raise ValueError("to_dataset: only committee-machine fixed points have a dataset layout")
    K, M, n = model.K, model.M, model.n_state
    labels = vector_labels(K, M)
    ev = np.asarray(fp.eigenvalues, dtype=complex)
    vec = np.asarray(fp.eigenvectors, dtype=complex)
    one = {"units": "1"}
    rate = {"units": "1/alpha"}
    esc_vec = np.full(n, np.nan) if fp.escape_vector is None else np.real(fp.escape_vector)
    ds = xr.Dataset(
        {
            "R": (("i", "n"), fp.state.R, {"long_name": "student-teacher overlap R_in", **one}),
            "Q": (("i", "k"), fp.state.Q, {"long_name": "student-student overlap Q_ik", **one}),
            "eigenvalue_real": ("mode", ev.real, {"long_name": "real part of Jacobian eigenvalue", **rate}),
            "eigenvalue_imag": ("mode", ev.imag, {"long_name": "imaginary part of Jacobian eigenvalue", **rate}),
            "eigenvector_real": (("component", "mode"), vec.real,
                                 {"long_name": "real part of Jacobian eigenvector", **one}),
            "eigenvector_imag": (("component", "mode"), vec.imag,
                                 {"long_name": "imaginary part of Jacobian eigenvector", **one}),
            "jacobian": (("component", "component_in"), fp.jacobian,
                         {"long_name": "Jacobian d(d state/d alpha)/d state", **rate}),
            "eg": ((), fp.eg, {"long_name": "generalisation error eps_g", **one}),
            "residual": ((), fp.residual, {"long_name": "max |d state / d alpha| at the fixed point", **rate}),
            "n_unstable": ((), fp.n_unstable, {"long_name": "number of unstable directions", **one}),
            "stable": ((), int(fp.stable), {"long_name": "linearly stable (1) or not (0)", **one}),
            "escape_eigenvalue": ((), np.nan if fp.escape_eigenvalue is None else fp.escape_eigenvalue,
                                  {"long_name": "escape eigenvalue of the symmetric plateau", **rate}),
            "escape_vector": ("component", esc_vec, {"long_name": "escape eigenvector", **one}),
        },
        coords={
            "i": ("i", np.arange(1, K + 1), {"long_name": "student unit", **one}),
            "k": ("k", np.arange(1, K + 1), {"long_name": "student unit", **one}),
            "n": ("n", np.arange(1, M + 1), {"long_name": "teacher unit", **one}),
            "component": ("component", labels, {"long_name": "state component", **one}),
            "component_in": ("component_in", labels, {"long_name": "state component (derivative)", **one}),
            "mode": ("mode", np.arange(n), {"long_name": "eigenmode (0 = largest real part)", **one}),
        },
    )
    params = model.parameters()
    attrs = provenance_attrs({"model": params, "label": fp.label})
    attrs.update(model=json.dumps(params), K=K, M=M, activation=params["activation"], eta=model.eta,
                 second_order=int(model.second_order), noise=model.noise, kind=fp.kind, label=fp.label,
                 converged=int(fp.converged), jacobian_method=fp.jacobian_method,
                 jacobian_error=float(fp.jacobian_error), eig_tol=float(fp.eig_tol),
                 escape_multiplicity=int(fp.escape_multiplicity), message=fp.message)
    ds.attrs.update(attrs)
    return ds


def _classify(w: np.ndarray, tol: float, converged: bool) -> tuple[int, bool, str]:
    re = np.real(w)
    n_unst = int(np.sum(re > tol))
    if not converged:
        return n_unst, False, "not_converged"
    if n_unst == 0:
        if np.all(re < -tol):
            return 0, True, "stable"
        return 0, False, "marginal"
    if n_unst == len(w):
        return n_unst, False, "unstable"
    return n_unst, False, "saddle"


def linearise(model: Committee, state: State | np.ndarray, *, converged: bool = True, label: str = "",
              method: str = "auto", iterations: int = 0, message: str = "") -> FixedPoint:
    """Linearise the flow at ``state`` and classify it.

    Parameters
    ----------
    model : Committee
    state : State or ndarray
        A fixed point (or any state: ``residual`` reports how far from one).
    converged : bool
        Passed through to the result (root finders set it).
    label : str
        ``"symmetric_plateau"`` also computes the escape eigenvalue and vector.
    method : str
        Jacobian method, see :func:`jacobian`.

    Returns
    -------
    FixedPoint
    """
    v = _as_vector(model, state, "state")
    J, info = _jacobian_of(model, model.rhs_vector, v, method=method, full_output=True)
    f0 = np.asarray(info["rhs"])
    residual = float(np.abs(f0).max()) if np.all(np.isfinite(f0)) else float("inf")
    spec = eigen_decomposition(J)
    w, V = spec.eigenvalues, spec.eigenvectors
    if not spec.converged:
        # a Jacobian that could not be formed or decomposed: report, do not classify
        converged = False
        message = "; ".join(x for x in (message, f"linearisation failed: {spec.message}") if x)
    elif spec.message:  # e.g. the QZ driver stood in for the QR one
        message = "; ".join(x for x in (message, spec.message) if x)
    err = info["error"]
    finite_J = np.abs(J[np.isfinite(J)])
    jnorm = max(float(finite_J.max()) if finite_J.size else 1.0, 1e-300)
    # eigenvalues within a few Jacobian errors of zero cannot be signed
    nominal = 1e-8 * jnorm if not np.isfinite(err) else 0.0
    tol = max(1e-9 * jnorm, 10.0 * (err if np.isfinite(err) else 0.0) * v.size, nominal)
    n_unst, stable, kind = _classify(w, tol, converged)
    info["spectrum"] = {"method": spec.method, "defective": spec.defective, "message": spec.message}
    fp = FixedPoint(
        state=State.from_vector(v, model.K, model.M), eigenvalues=w, eigenvectors=V,
        eg=float(model.eg_vector(v)), n_unstable=n_unst, stable=stable, residual=residual,
        converged=converged, kind=kind, model=model, jacobian=J, jacobian_error=err,
        jacobian_method=info["method"], eig_tol=tol, label=label, iterations=iterations, message=message,
        extra={"jacobian_info": {k: val for k, val in info.items() if k != "rhs"}},
    )
    if label == "symmetric_plateau" and spec.converged:
        _attach_escape(fp)
    return fp


def _symmetric_basis(K: int, M: int) -> np.ndarray:
    """Columns spanning the site-symmetric subspace (R_in = R, Q_ii = Q, Q_ik = C)."""
    n = K * M + K * (K + 1) // 2
    cols = [np.r_[np.ones(K * M), np.zeros(n - K * M)]]
    iu = np.triu_indices(K)
    diag = np.zeros(n)
    diag[K * M:] = (iu[0] == iu[1])
    cols.append(diag)
    if K > 1:
        off = np.zeros(n)
        off[K * M:] = (iu[0] != iu[1])
        cols.append(off)
    return np.stack(cols, axis=1)


def _attach_escape(fp: FixedPoint) -> None:
    K, M = fp.model.K, fp.model.M
    P = _symmetric_basis(K, M)
    Qb, _ = np.linalg.qr(P)
    V = np.asarray(fp.eigenvectors, dtype=complex)
    w = np.asarray(fp.eigenvalues, dtype=complex)
    off = np.linalg.norm(V - Qb @ (Qb.T @ V), axis=0)
    cand = np.nonzero(off > 0.5)[0]
    if len(cand) == 0:
        return
    j = cand[0]
    lam = w[j]
    tol = max(fp.eig_tol, 1e-8 * max(1.0, abs(lam)))
    same = np.nonzero(np.abs(w - lam) <= tol)[0]
    E = V[:, same]
    # canonical member: "student 1 moves towards teacher 1" with its symmetric part removed
    target = np.zeros(V.shape[0])
    target[0] = 1.0
    target = target - Qb @ (Qb.T @ target)
    coef = np.linalg.lstsq(E, target.astype(complex), rcond=None)[0]
    u = E @ coef
    if np.linalg.norm(u) < 1e-8:
        u = E[:, 0]
    u = u / np.linalg.norm(u)
    # phase: R11 component real and positive (it is nonzero by construction unless degenerate)
    k = 0 if abs(u[0]) > 1e-8 else int(np.argmax(np.abs(u)))
    u = u * (np.abs(u[k]) / u[k])
    fp.escape_eigenvalue = float(lam.real) if abs(lam.imag) <= 1e-12 * max(1.0, abs(lam)) else complex(lam)
    fp.escape_vector = u.real.copy() if np.all(np.abs(u.imag) <= 1e-10) else u
    fp.escape_multiplicity = int(len(same))


# --- Newton in the cone -----------------------------------------------------------


@dataclass
class _NewtonResult:
    v: np.ndarray
    residual: float
    converged: bool
    iterations: int
    message: str


def _perp_gram(model: Committee, V: np.ndarray) -> np.ndarray:
    """``W = Q - R T^-1 R^T``: Gram matrix of the student components outside the teachers' span."""
    K = model.K
    V = np.asarray(V, dtype=float)
    S = model.covariance(V)
    R = S[..., :K, K:]
    return S[..., :K, :K] - R @ np.linalg.solve(model.T, np.swapaxes(R, -1, -2))


def _solve(model: Committee, fun: Callable[[np.ndarray], np.ndarray], z: np.ndarray, P: np.ndarray,
           Pinv: np.ndarray, *, tol: float, max_iter: int, max_norm: float) -> tuple[np.ndarray, float, int, str]:
    """Damped (Gauss-)Newton for ``fun(z) = 0`` with ``v = P z`` kept inside the cone."""

    def full(z: np.ndarray) -> np.ndarray:
        return P @ z

    message = "maximum number of iterations reached"
    f = fun(z[None, :])[0]
    res = float(np.abs(f).max())
    it = 0
    for it in range(1, max_iter + 1):
        if not np.all(np.isfinite(f)):
            message = "non-finite flow"
            break
        if res <= tol:
            message = "converged"
            it -= 1
            break
        v = full(z)
        scale = float(_scale(model, v))
        margin = float(_margin(model, v))
        d_in_full, gamma = _inward_direction(model, v)
        z_in = Pinv @ d_in_full
        hc = _CENTRAL_STEP * scale
        stencil = z[None, :] + hc * np.concatenate([np.eye(len(z)), -np.eye(len(z))])
        if margin * scale > 4 * hc and np.all(_margin(model, stencil @ P.T) >= 0):
            f, J = _central_jacobian(fun, z, hc)
        else:
            f, J = _forward_inward_jacobian(fun, z, z_in, gamma, _FORWARD_STEP * scale)
        res = float(np.abs(f).max())
        if res <= tol:
            message = "converged"
            it -= 1
            break
        if not np.all(np.isfinite(J)):
            message = "non-finite Jacobian"
            break
        try:
            if J.shape[0] != J.shape[1]:
                raise np.linalg.LinAlgError
            dz = np.linalg.solve(J, -f)
            if not np.all(np.isfinite(dz)):
                raise np.linalg.LinAlgError
        except np.linalg.LinAlgError:
            try:
                dz = np.linalg.lstsq(J, -f, rcond=1e-12)[0]
            except np.linalg.LinAlgError:
                message = "the Newton step could not be solved for"
                break
        # Backtracking along the Newton direction; a trial point outside the cone is
        # pulled back along the segment to the interior reference point.  A straight
        # step tangent to a curved face (e.g. Q + (K-1) C = K M R^2) leaves the cone at
        # second order, so the retraction is a second-order correction and Newton keeps
        # its quadratic convergence towards roots on the boundary.
        xc, _ = _interior_reference(model, v)
        ts = 0.5 ** np.arange(30)
        Vt = v[None, :] + ts[:, None] * full(dz)[None, :]
        bad = np.nonzero(_margin(model, Vt) < 0)[0]
        if len(bad) > 3:  # retract the longest three; by concavity the rest lie between
            keep = np.setdiff1d(np.arange(len(ts)), bad[3:])
            Vt, ts = Vt[keep], ts[keep]
            bad = bad[:3]
        for j in bad:
            Vt[j] = xc + _max_step(model, xc, Vt[j] - xc, floor=0.0) * (Vt[j] - xc)
        trials = Vt @ Pinv.T
        Ft = fun(trials)
        rt = np.abs(Ft).max(axis=1)
        ok = np.nonzero(np.isfinite(rt) & (rt <= (1 - 1e-4 * ts) * res))[0]
        if len(ok) == 0:
            ok = np.nonzero(np.isfinite(rt) & (rt < res))[0]
        if len(ok) == 0:
            message = "no feasible step reduces the residual"
            break
        j = ok[0]
        z, f, res = trials[j], Ft[j], float(rt[j])
        if float(np.abs(full(z)).max()) > max_norm:
            message = f"an order parameter exceeded {max_norm:g}"
            break
    return z, res, it, message


def _newton(model: Committee, v0: np.ndarray, *, basis: np.ndarray | None = None, tol: float = 1e-12,
            max_iter: int = 100, max_norm: float = 1e3) -> _NewtonResult:
    """Damped Newton for ``rhs = 0`` on the linear subspace ``v = basis @ z`` inside the cone.

    ``basis`` (n x p, orthonormal columns) restricts the search to an invariant
    subspace (the flow is tangent to it, so the projected residual is the full one).

    Roots on a face of the cone can be degenerate: at the erf plateau the
    directions that separate the coinciding students carry a zero eigenvalue,
    so Newton converges only linearly and a residual of 1e-13 still leaves the
    state ~1e-6 off.  When the perpendicular Gram matrix ``W = Q - R T^-1 R^T``
    has (nearly) null directions ``a`` at the result, a second phase solves the
    flow together with the face equations ``a^T W a = 0`` by Gauss-Newton; the
    face equations restore a full-rank Jacobian and quadratic convergence.
    """
    n = model.n_state
    P = np.eye(n) if basis is None else basis
    Pinv = np.linalg.pinv(P)

    def fun(Z: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return model.rhs_vector(Z @ P.T) @ Pinv.T

    z0 = Pinv @ _pull_inside(model, v0)
    z, res, it, message = _solve(model, fun, z0, P, Pinv, tol=tol, max_iter=max_iter, max_norm=max_norm)
    z = _polish_on_face(model, fun, z, P, Pinv, res, tol=tol)
    v = P @ z
    if _margin(model, v) < -_ROUNDOFF_MARGIN:
        v = _pull_inside(model, v)
    K = model.K
    if np.min(np.diag(model.covariance(v)[:K, :K])) <= 0:
        # a student norm collapsed to zero (a dead unit, outside the state space):
        # step minimally towards the interior so that the state stays valid
        xc, _ = _interior_reference(model, v)
        v = v + 1e-9 * (xc - v)
        message = "a student norm collapsed to zero"
    f_full = model.rhs_vector(v)
    res_full = float(np.abs(f_full).max()) if np.all(np.isfinite(f_full)) else float("inf")
    converged = res_full <= tol and message != "a student norm collapsed to zero"
    if converged:
        message = "converged"
    return _NewtonResult(v, res_full, converged, it, message)


# Perpendicular Gram eigenvalues below this (relative) mark a face of the cone.
_FACE_TOL = 1e-3


def _polish_on_face(model: Committee, fun: Callable[[np.ndarray], np.ndarray], z: np.ndarray, P: np.ndarray,
                    Pinv: np.ndarray, res: float, *, tol: float) -> np.ndarray:
    v = P @ z
    if not np.all(np.isfinite(v)) or not np.isfinite(res):
        return z
    scale = float(_scale(model, v))
    lam, U = np.linalg.eigh(_perp_gram(model, v))
    A = U[:, lam <= _FACE_TOL * scale]
    if A.shape[1] == 0 or res > 1e-4:
        return z
    iu = np.triu_indices(A.shape[1])
    # weight the face equations like the flow (both vanish at the root)
    weight = model.eta

    def aug(Z: np.ndarray) -> np.ndarray:
        V = Z @ P.T
        W = _perp_gram(model, V)
        c = (A.T @ W @ A)[..., iu[0], iu[1]]
        return np.concatenate([fun(Z), weight * c], axis=-1)

    z1, _, _, _ = _solve(model, aug, z, P, Pinv, tol=min(tol, 1e-3 * max(res, 1e-300)) * 1e-2,
                         max_iter=30, max_norm=1e3)
    f1 = fun(z1[None, :])[0]
    r1 = float(np.abs(f1).max())
    moved = float(np.abs(P @ (z1 - z)).max())
    if np.isfinite(r1) and r1 <= max(res, tol) and moved <= 1e-3 * scale \
            and _margin(model, P @ z1) >= -_ROUNDOFF_MARGIN:
        return z1
    return z


def find_fixed_point(model: Committee, guess: State | np.ndarray, *, tol: float = 1e-12,
                     max_iter: int = 100, label: str = "", method: str = "auto") -> FixedPoint:
    """Newton-type root finding of ``model.rhs`` that stays inside the PSD cone.

    Parameters
    ----------
    model : Committee
    guess : State or ndarray, shape (n_state,)
        Starting point.  A guess outside the cone is first moved inside along
        the segment to an interior point.
    tol : float
        Convergence threshold on ``max |d state / d alpha|`` (units 1/alpha).
    max_iter : int
        Newton iterations.
    label : str
        Stored in the result; ``"symmetric_plateau"`` adds the escape mode.
    method : str
        Jacobian method of the final linearisation (see :func:`jacobian`).

    Returns
    -------
    FixedPoint
        Always inside the cone (boundary included).  ``converged`` is False
        (and ``kind == "not_converged"``) when the residual stayed above ``tol``.
    """
    v0 = _as_vector(model, guess, "guess")
    if not (tol > 0):
        raise ValueError(f"tol: must be > 0, got {tol!r}")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter: must be >= 1, got {max_iter!r}")
    try:
        res = _newton(model, v0, tol=tol, max_iter=int(max_iter))
    except np.linalg.LinAlgError as exc:
        return _failed_point(model, v0, label, f"the Newton iteration failed: {exc}")
    return _linearise_result(model, res, v0, label, method)


def _failed_point(model: Committee, v: np.ndarray, label: str, message: str, iterations: int = 0) -> FixedPoint:
    """A not-converged result without a linearisation (NaN spectrum) at the finite state ``v``."""
    n = model.n_state
    v = _pull_inside(model, v)
    f = model.rhs_vector(v)
    residual = float(np.abs(f).max()) if np.all(np.isfinite(f)) else float("inf")
    nan = np.full(n, np.nan)
    return FixedPoint(state=State.from_vector(v, model.K, model.M), eigenvalues=nan, eigenvectors=np.full((n, n), np.nan),
                      eg=float(model.eg_vector(v)), n_unstable=0, stable=False, residual=residual, converged=False,
                      kind="not_converged", model=model, jacobian=np.full((n, n), np.nan), label=label,
                      iterations=iterations, message=message)


def _linearise_result(model: Committee, res: _NewtonResult, v_start: np.ndarray, label: str,
                      method: str) -> FixedPoint:
    """Linearise a Newton result; a non-finite end point becomes a not-converged result at the start."""
    if not np.all(np.isfinite(res.v)):
        return _failed_point(model, v_start, label, f"{res.message} (the iteration left the finite states)",
                             res.iterations)
    try:
        return linearise(model, res.v, converged=res.converged, label=label, method=method,
                         iterations=res.iterations, message=res.message)
    except np.linalg.LinAlgError as exc:
        return _failed_point(model, res.v, label, f"{res.message}; the linearisation failed: {exc}", res.iterations)


# --- landmarks ---------------------------------------------------------------------


def perfect_solution(model: Committee, *, tol: float = 1e-12, method: str = "auto") -> FixedPoint:
    """The perfect solution ``R = Q = T`` (K = M), linearised from inside the cone.

    With output noise and the ``eta^2`` term the perfect solution is no longer
    a fixed point; the fixed point of that branch is then found by Newton
    from ``R = Q = T``.

    Returns
    -------
    FixedPoint
        ``label == "perfect"``.
    """
    if not isinstance(model, Committee):
        raise ValueError(f"model: expected a phasekit.Committee, got {type(model).__name__}")
    if model.K != model.M:
        raise ValueError(f"model: the perfect solution needs K == M, got K={model.K}, M={model.M}")
    v = State(model.T, model.T).to_vector()
    f = model.rhs_vector(v)
    res = float(np.abs(f).max())
    if res <= tol:
        try:
            return linearise(model, v, converged=True, label="perfect", method=method,
                             message="exact fixed point R = Q = T")
        except np.linalg.LinAlgError as exc:
            return _failed_point(model, v, "perfect", f"the linearisation failed: {exc}")
    return find_fixed_point(model, v, tol=tol, label="perfect", method=method)


def _check_symmetric_teacher(model: Committee) -> None:
    T = model.T
    M = model.M
    if M > 1:
        off = T[~np.eye(M, dtype=bool)]
        if not (np.allclose(np.diag(T), T[0, 0], rtol=0, atol=1e-12) and np.allclose(off, off[0], rtol=0, atol=1e-12)):
            raise ValueError("model: the site-symmetric ansatz needs T = a I + b (all ones), e.g. the identity")


def symmetric_plateau(model: Committee, guess: State | Sequence[float] | None = None, *, tol: float = 1e-12,
                      method: str = "auto", alpha_flow: float = 400.0) -> FixedPoint:
    """The symmetric (unspecialised) plateau and its escape mode.

    Solves the reduced site-symmetric equations for ``R_in = R``, ``Q_ii = Q``,
    ``Q_ik = C`` (unknowns (R, Q, C)) -- the subspace is invariant for any K,
    M when T is invariant under teacher permutations -- then embeds the
    solution and linearises in the full space.

    Parameters
    ----------
    model : Committee
        ``K >= 2`` (one student has no symmetry to break); T must be
        ``a I + b (ones)`` (default identity).
    guess : State or (R, Q, C), optional
        Starting point; default: the end of the reduced flow from a small
        symmetric state (``R = 0.01``, ``Q = 0.5``, ``C = 0``), integrated up to
        ``eta alpha = alpha_flow`` (first-order units).
    tol : float
        Residual tolerance (units 1/alpha).

    Returns
    -------
    FixedPoint
        ``label == "symmetric_plateau"``; ``escape_eigenvalue`` and
        ``escape_vector`` set.  When the search fails (e.g. the reduced flow
        diverges above the critical learning rate) ``converged`` is False,
        ``kind == "not_converged"`` and ``message`` says why.

    Raises
    ------
    ValueError
        For ``K < 2`` or a teacher without permutation symmetry.
    """
    if not isinstance(model, Committee):
        raise ValueError(f"model: expected a phasekit.Committee, got {type(model).__name__}")
    if model.K < 2:
        raise ValueError(
            f"model: the symmetric plateau needs K >= 2 student units, got K = {model.K}: a single student has "
            "no permutation symmetry to break (for M = 1 the site-symmetric subspace is the whole state space "
            "and its fixed point is the perfect solution); use find_fixed_point for K = 1")
    _check_symmetric_teacher(model)
    K, M = model.K, model.M
    P = _symmetric_basis(K, M)
    Pn = P / np.linalg.norm(P, axis=0)
    if guess is None:
        z0 = np.array([0.01, 0.5, 0.0])
        v0 = P @ z0
        v0 = _reduced_flow(model, Pn, v0, alpha_flow / model.eta)
    elif isinstance(guess, (State, FixedPoint)):
        v0 = _as_vector(model, guess, "guess")
        v0 = Pn @ (Pn.T @ v0)
    else:
        z0 = np.asarray(guess, dtype=float)
        if z0.shape != (P.shape[1],):
            raise ValueError(f"guess: expected {P.shape[1]} numbers (R, Q, C), got {z0.shape}")
        v0 = P @ z0
    if not np.all(np.isfinite(v0)):
        raise ValueError("guess: must be finite")
    try:
        res = _newton(model, v0, basis=Pn, tol=tol)
        if not res.converged and guess is None:
            # a slow direction inside the symmetric subspace: flow longer, then polish
            v1 = _reduced_flow(model, Pn, res.v if np.all(np.isfinite(res.v)) else v0, 10 * alpha_flow / model.eta)
            res = _newton(model, v1, basis=Pn, tol=tol)
    except np.linalg.LinAlgError as exc:
        return _failed_point(model, v0, "symmetric_plateau", f"the Newton iteration failed: {exc}")
    return _linearise_result(model, res, v0, "symmetric_plateau", method)


def _reduced_flow(model: Committee, Pn: np.ndarray, v0: np.ndarray, alpha: float) -> np.ndarray:
    """Integrate the flow restricted to span(Pn) from v0 (stays inside the cone).

    Stops where the state would leave the cone or the order parameters exceed
    ``1e3`` (a flow that diverges, e.g. above the critical learning rate);
    returns the last state inside the cone (the start if the integration fails).
    """
    from scipy.integrate import solve_ivp

    v_start = _pull_inside(model, v0)
    z0 = Pn.T @ v_start

    def rhs(_t: float, z: np.ndarray) -> np.ndarray:
        f = Pn.T @ model.rhs_vector(Pn @ z)
        return f if np.all(np.isfinite(f)) else np.zeros_like(f)

    # event functions stay finite (brentq locates them on the dense output)
    def leave(_t: float, z: np.ndarray) -> float:
        return max(float(_margin(model, Pn @ z)), -1.0) + 1e-12

    def diverge(_t: float, z: np.ndarray) -> float:
        big = float(np.abs(Pn @ z).max()) if np.all(np.isfinite(z)) else np.inf
        return 1.0 - min(big, 1e6) / 1e3

    leave.terminal = True
    diverge.terminal = True
    try:
        with np.errstate(all="ignore"):
            sol = solve_ivp(rhs, (0.0, alpha), z0, method="LSODA", rtol=1e-10, atol=1e-12,
                            events=[leave, diverge])
    except (ValueError, RuntimeError, np.linalg.LinAlgError):
        return v_start
    for k in range(sol.y.shape[1] - 1, -1, -1):
        z = sol.y[:, k]
        if np.all(np.isfinite(z)) and _margin(model, Pn @ z) >= 0:
            return _pull_inside(model, Pn @ z)
    return v_start


# --- multi-start search ---------------------------------------------------------------


def _random_states(model: Committee, n: int, rng: np.random.Generator) -> np.ndarray:
    """States of random student vectors ``J_i = sum_n A_in B_n + w_i`` (inside the cone)."""
    K, M = model.K, model.M
    Lt = np.linalg.cholesky(model.T)
    out = np.empty((n, model.n_state))
    iu = np.triu_indices(K)
    for j in range(n):
        a = rng.uniform(0.1, 1.2)
        A = rng.normal(scale=a, size=(K, M)) / math.sqrt(M)
        Wf = rng.normal(scale=rng.uniform(0.05, 1.0), size=(K, K + 1)) / math.sqrt(K + 1)
        B = A @ Lt  # teacher-space coordinates
        R = B @ Lt.T
        Q = B @ B.T + Wf @ Wf.T
        out[j] = np.concatenate([R.ravel(), Q[iu]])
    return out


def _batched_flow(model: Committee, V0: np.ndarray, alpha: float, n_steps: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-step RK4 on all starts at once; returns (end states, states of smallest |rhs|).

    The minimum of ``|rhs| / (1 + |v|)`` is taken over the first half of each
    trajectory, where the plateaus (saddles) are visited.
    """
    dt = alpha / n_steps
    V = V0.copy()
    alive = np.ones(len(V), dtype=bool)
    best = V0.copy()
    best_val = np.full(len(V), np.inf)
    for step in range(n_steps):
        with np.errstate(all="ignore"):
            k1 = model.rhs_vector(V)
            if step < n_steps // 2:
                val = np.abs(k1).max(axis=1) / (1 + np.abs(V).max(axis=1))
                upd = alive & (val < best_val) & (step > 0)
                best[upd], best_val[upd] = V[upd], val[upd]
            k2 = model.rhs_vector(V + 0.5 * dt * k1)
            k3 = model.rhs_vector(V + 0.5 * dt * k2)
            k4 = model.rhs_vector(V + dt * k3)
            Vn = V + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        ok = np.all(np.isfinite(Vn), axis=1) & (np.abs(Vn).max(axis=1) < 1e3)
        ok &= _margin(model, np.where(ok[:, None], Vn, V)) >= 0
        move = alive & ok
        V[move] = Vn[move]
        alive &= ok
        if not alive.any():
            break
    return V, best


def _permutation_distance(model: Committee, a: np.ndarray, b: np.ndarray) -> float:
    """Smallest max-norm distance between states a and b over permutations of the students."""
    K, M = model.K, model.M
    sa, sb = State.from_vector(a, K, M), State.from_vector(b, K, M)
    best = np.inf
    if K <= 7:
        perms = itertools.permutations(range(K))
    else:  # match students greedily by their overlaps with the teachers
        order_a = np.lexsort(np.round(sa.R.T, 6)[::-1])
        order_b = np.lexsort(np.round(sb.R.T, 6)[::-1])
        p = np.empty(K, dtype=int)
        p[order_a] = order_b
        perms = [tuple(p)]
    for p in perms:
        p = list(p)
        d = max(float(np.abs(sa.R - sb.R[p]).max()), float(np.abs(sa.Q - sb.Q[np.ix_(p, p)]).max()))
        best = min(best, d)
        if best == 0:
            break
    return best


def _same_point(model: Committee, a: np.ndarray, b: np.ndarray, tol: float = _DEDUP_TOL) -> bool:
    scale = max(1.0, float(np.abs(a).max()), float(np.abs(b).max()))
    return _permutation_distance(model, a, b) <= tol * scale


def fixed_points(model: Committee, n_starts: int = 64, seed: int = 0, *, tol: float = 1e-12,
                 alpha_flow: float = 200.0, include_landmarks: bool = True) -> list[FixedPoint]:
    """Every distinct fixed point found by a multi-start Newton search.

    Starts: ``n_starts`` random states inside the cone (random student
    vectors), plus, for each, the point of smallest ``|rhs|`` along its flow
    (where it lingers near a saddle) and the end of the flow after
    ``eta alpha = alpha_flow``; plus the landmarks (perfect solution when
    K = M, symmetric plateau when T allows).  Converged roots are deduplicated
    modulo permutations of the student units (max-norm distance ``1e-6``
    relative) and each is linearised and classified.

    Parameters
    ----------
    model : Committee
    n_starts : int
        Random starting states, ``>= 1``.
    seed : int
        Seed of the random starts.
    tol : float
        Residual tolerance of Newton (units 1/alpha).
    alpha_flow : float
        Flow time of the seeding trajectories in units of ``eta alpha``.
    include_landmarks : bool
        Also try the perfect solution and the symmetric plateau.

    Returns
    -------
    list of FixedPoint
        Converged fixed points sorted by generalisation error; the perfect
        solution and the symmetric plateau carry their ``label``.
    """
    if not isinstance(model, Committee):
        raise ValueError(f"model: expected a phasekit.Committee, got {type(model).__name__}")
    if int(n_starts) < 1:
        raise ValueError(f"n_starts: must be >= 1, got {n_starts!r}")
    rng = np.random.default_rng(seed)
    starts = _random_states(model, int(n_starts), rng)
    ends, lingering = _batched_flow(model, starts, alpha_flow / model.eta, n_steps=int(4 * alpha_flow))
    candidates: list[tuple[np.ndarray, str]] = []
    if include_landmarks:
        if model.K == model.M:
            candidates.append((State(model.T, model.T).to_vector(), "perfect"))
        try:
            _check_symmetric_teacher(model)
            plateau = symmetric_plateau(model, tol=tol)
            if plateau.converged:
                candidates.append((plateau.vector, "symmetric_plateau"))
        except ValueError:
            pass
    candidates += [(v, "") for v in np.concatenate([lingering, ends, starts])]

    roots: list[tuple[np.ndarray, str]] = []
    for v0, lab in candidates:
        if not np.all(np.isfinite(v0)):
            continue
        if lab == "perfect" and float(np.abs(model.rhs_vector(v0)).max()) <= tol:
            res_v, ok = v0, True
        else:
            res = _newton(model, v0, tol=tol)
            res_v, ok = res.v, res.converged
        if not ok:
            continue
        if any(_same_point(model, res_v, r) for r, _ in roots):
            continue
        roots.append((res_v, lab))

    # name the landmarks even when a random start found them first
    perfect_v = State(model.T, model.T).to_vector() if model.K == model.M else None
    Qb, _ = np.linalg.qr(_symmetric_basis(model.K, model.M))
    try:
        _check_symmetric_teacher(model)
        symmetric_ok = model.K >= 2  # one student: no plateau (see symmetric_plateau)
    except ValueError:
        symmetric_ok = False
    found: list[FixedPoint] = []
    for v, lab in roots:
        if not lab:
            if perfect_v is not None and _same_point(model, v, perfect_v):
                lab = "perfect"
            elif symmetric_ok and np.abs(v - Qb @ (Qb.T @ v)).max() <= _DEDUP_TOL * max(1.0, float(np.abs(v).max())):
                lab = "symmetric_plateau"
        found.append(linearise(model, v, converged=True, label=lab, message="converged"))
    out = _merge_families(found)
    out.sort(key=lambda fp: (fp.eg, fp.n_unstable))
    return out


def _is_isolated(fp: FixedPoint) -> bool:
    """Whether the Jacobian is clearly non-singular.

    Singular values, unlike eigenvalues, are not blown up by a Jordan block
    (a defective zero eigenvalue is perturbed by the square root of the error),
    so the test is ``sigma_min > 1e-5 sigma_max``.
    """
    if not np.all(np.isfinite(fp.jacobian)):
        return True  # no linearisation: never merged with others
    try:
        sv = np.linalg.svd(fp.jacobian, compute_uv=False)
    except np.linalg.LinAlgError:
        return True
    return bool(sv[-1] > 1e-5 * sv[0])


def _merge_families(points: list[FixedPoint]) -> list[FixedPoint]:
    """Keep one representative of fixed points that are not isolated and share eps_g.

    A zero eigenvalue means the root is degenerate: either a continuum of fixed
    points (ReLU is positively homogeneous, so collinear students can trade
    norm at no cost) or a root that Newton locates only to ~1e-6 (the erf
    plateau outside its symmetric subspace).  Such points with equal eps_g
    (relative 1e-9) are reported once; the representative is a labelled
    landmark if there is one, else the member with the fewest unstable
    directions, and ``extra["family_size"]`` counts the members found.
    """
    groups: list[list[FixedPoint]] = []
    for fp in points:
        if _is_isolated(fp):
            groups.append([fp])
            continue
        for g in groups:
            rep = g[0]
            if not _is_isolated(rep) and abs(rep.eg - fp.eg) <= 1e-9 * max(1.0, abs(fp.eg)):
                g.append(fp)
                break
        else:
            groups.append([fp])
    out = []
    for g in groups:
        rep = min(g, key=lambda f: (f.label == "", f.n_unstable))
        rep.extra["family_size"] = len(g)
        rep.extra["isolated"] = _is_isolated(rep)
        out.append(rep)
    return out


# --- learning-rate structure -------------------------------------------------------

# Entrywise error assumed for Jacobians without an estimate of their own (central
# differences), relative to the largest entry.
_NOMINAL_REL_ERROR = 1e-9
# A state counts as a fixed point for every eta when both parts a(x), b(x) of the flow
# eta a(x) + eta^2 b(x) vanish to this (units 1/alpha per unit eta and eta^2).
_FIXED_FOR_EVERY_ETA = 1e-10


@dataclass(frozen=True)
class EtaStructure:
    """Jacobian split ``J(eta) = eta A + eta^2 B`` at a fixed point that does not move with eta.

    Attributes
    ----------
    A, B : ndarray, shape (n_state, n_state)
        First-order part (per unit eta) and second-order part (per unit eta^2).
    error : float
        Estimated max entrywise error of A and B (``nan`` if not estimated).
    state : State
    method : str
    residual : float
        ``max(|a(x)|, |b(x)|)`` of the two parts of the flow ``eta a + eta^2 b`` at
        ``state``: zero (to rounding) where the state is fixed for every eta.
    """

    A: np.ndarray
    B: np.ndarray
    error: float
    state: State
    method: str
    residual: float = float("nan")

    def jacobian(self, eta: float) -> np.ndarray:
        """``eta A + eta^2 B``."""
        return eta * self.A + eta * eta * self.B

    def max_real(self, eta: float) -> float:
        """Largest real part of the spectrum of ``A + eta B`` (same sign as that of J(eta))."""
        w = eigenvalues_only(self.A + eta * self.B)
        return float(np.max(w.real)) if len(w) else float("nan")

    def decay_rate(self, eta: float) -> float:
        """Slowest asymptotic decay rate ``-max Re spec J(eta)`` (units 1/alpha)."""
        return -eta * self.max_real(eta)

    @property
    def entry_error(self) -> float:
        """Entrywise error of A and B behind every tolerance: ``error``, or a nominal one if not estimated."""
        if np.isfinite(self.error):
            return float(self.error)
        scale = max(1.0, float(np.abs(self.A).max(initial=0.0)), float(np.abs(self.B).max(initial=0.0)))
        return _NOMINAL_REL_ERROR * scale

    def eigenvalue_error(self, eta: float) -> float:
        """Error of a well-conditioned eigenvalue of ``A + eta B``: ``||dA + eta dB|| <= n err (1 + eta)``."""
        return len(self.A) * self.entry_error * (1.0 + abs(eta))

    @cached_property
    def split(self) -> PencilSplit:
        """The eta-independent parts of the spectrum (:func:`phasekit.spectrum.split_pencil`).

        Singular values below ``20 n`` times :attr:`entry_error` count as zero.
        """
        return split_pencil(self.A, self.B, 20.0 * len(self.A) * self.entry_error)


def eta_structure(model: Committee, state: State | np.ndarray | None = None, *, method: str = "auto") -> EtaStructure:
    """The matrices A and B of ``J(eta) = eta A + eta^2 B`` at ``state`` (default: the perfect solution).

    Valid as the Jacobian at every eta only where the state is a fixed point
    for every eta (the perfect solution without output noise, or any
    zero-error state); ``residual`` of the result says whether it is.  B is
    zero for a first-order model.

    Parameters
    ----------
    model : Committee
        Its eta is irrelevant.
    state : State, FixedPoint or ndarray, optional
        Default: the perfect solution ``R = Q = T`` (K = M).
    method : str
        Jacobian method, see :func:`jacobian`.
    """
    if not isinstance(model, Committee):
        raise ValueError(f"model: expected a phasekit.Committee, got {type(model).__name__}")
    if state is None:
        if model.K != model.M:
            raise ValueError(f"model: the perfect solution needs K == M, got K={model.K}, M={model.M}; "
                             "pass the fixed point of interest as state")
        state = State(model.T, model.T)
    v = _as_vector(model, state, "state")
    first = model.replace(eta=1.0, second_order=False)
    if model.second_order:
        full = model.replace(eta=1.0, second_order=True)

        def fun(V: np.ndarray) -> np.ndarray:
            a = first.rhs_vector(V)
            return np.concatenate([a, full.rhs_vector(V) - a], axis=-1)
    else:
        fun = first.rhs_vector
    J, info = _jacobian_of(model, fun, v, method=method, full_output=True)
    n = v.size
    A = J[:n]
    B = J[n:] if model.second_order else np.zeros_like(A)
    err = info["error"]
    f0 = np.asarray(info["rhs"])
    residual = float(np.abs(f0).max()) if np.all(np.isfinite(f0)) else float("inf")
    return EtaStructure(A, B, err, State.from_vector(v, model.K, model.M), info["method"], residual)


def _structure_for(model: Committee, state: Any, structure: EtaStructure | None) -> EtaStructure:
    """The eta structure at ``state`` (default: perfect solution), checked to be fixed for every eta."""
    if structure is not None:
        if not isinstance(structure, EtaStructure):
            raise ValueError(f"structure: expected an EtaStructure, got {type(structure).__name__}")
        if state is not None:
            v = _as_vector(model, state, "state")
            if np.abs(v - structure.state.to_vector()).max() > 1e-12 * max(1.0, float(np.abs(v).max())):
                raise ValueError("structure: was computed at a different state than the one passed as state")
        st = structure
    else:
        st = eta_structure(model, state)
    if np.isfinite(st.residual) and st.residual > _FIXED_FOR_EVERY_ETA or st.residual == np.inf:
        raise ValueError(
            f"state: not a fixed point for every eta (max |a|, |b| = {st.residual:.3g} for the flow "
            f"eta a + eta^2 b), so the Jacobian is not eta A + eta^2 B; follow the branch with continuation()")
    return st


def _null_modes(basis: np.ndarray, labels: Sequence[str], side: str) -> list[dict[str, Any]]:
    """Describe a null space: one vector per pivot component (reduced echelon form), unit, largest entry > 0."""
    d = basis.shape[1]
    if d == 0:
        return []
    _, _, piv = linalg.qr(basis.T, pivoting=True)
    E = basis @ np.linalg.inv(basis[piv[:d], :])
    out = []
    for k in range(d):
        e = E[:, k] / np.linalg.norm(E[:, k])
        big = int(np.argmax(np.abs(e)))
        e = e * np.sign(e[big])
        comps = [labels[i] for i in np.nonzero(np.abs(e) > 1e-6 * np.abs(e[big]))[0]]
        what = "moves" if side == "right" else "the flow leaves unchanged the combination of"
        out.append({"side": side, "vector": e, "components": comps,
                    "description": f"{'direction' if side == 'right' else 'left null vector'}: {what} "
                                   + ", ".join(comps)})
    return out


def _marginal_summary(split: PencilSplit, modes: list[dict[str, Any]]) -> str:
    if split.n_null == 0:
        return ""
    right = [m for m in modes if m["side"] == "right"]
    left = [m for m in modes if m["side"] == "left"]
    parts = []
    if right:
        parts.append("directions with A v = B v = 0 moving " + "; ".join(", ".join(m["components"]) for m in right))
    if left:
        parts.append("combinations with u^T A = u^T B = 0 of " + "; ".join(", ".join(m["components"]) for m in left))
    return (f"{split.n_null} eigenvalue(s) vanish for every eta and are excluded ("
            + "; ".join(parts) + ")")


def _lead_piece(st: EtaStructure, eta: float) -> dict[str, Any]:
    """Leading eigenvalue of the non-marginal spectrum at eta, its d/d eta and condition number."""
    split = st.split
    vals = [br.value(eta) for br in split.branches]
    best: dict[str, Any] = {"value": -np.inf, "slope": np.nan, "cond": 1.0, "piece": None, "imag": 0.0}
    for k, (br, val) in enumerate(zip(split.branches, vals)):
        if val > best["value"]:
            best = {"value": float(val), "slope": float(br.b), "cond": 1.0, "piece": k, "imag": 0.0}
    if len(split.A):
        try:
            w, vl, vr = linalg.eig(split.A + eta * split.B, left=True, right=True)
        except (np.linalg.LinAlgError, ValueError):
            return best
        k = int(np.argmax(w.real))
        if w[k].real >= best["value"]:
            overlap = vl[:, k].conj() @ vr[:, k]
            slope = (vl[:, k].conj() @ split.B @ vr[:, k]) / overlap
            cond = float(np.linalg.norm(vl[:, k]) * np.linalg.norm(vr[:, k]) / abs(overlap))
            best = {"value": float(w[k].real), "slope": float(slope.real), "cond": cond, "piece": -1,
                    "imag": float(w[k].imag)}
    return best


def critical_eta(model: Committee, *, state: State | FixedPoint | np.ndarray | None = None, eta_max: float = 1e3,
                 rtol: float = 1e-10, full_output: bool = False,
                 structure: EtaStructure | None = None) -> float | tuple[float, dict[str, Any]]:
    """Learning rate at which a fixed point (default: the perfect solution) loses linear stability.

    At a state that is a fixed point for every eta the Jacobian is
    ``eta A + eta^2 B`` (A, B from :func:`eta_structure`, the one-sided limit
    inside the cone on its boundary), so eta_c is the first zero of
    ``max Re spec(A + eta B)``.  First the parts of the spectrum that are
    exact for every eta are split off (:func:`phasekit.spectrum.split_pencil`):
    eigenvalues that vanish identically (a continuum of fixed points, e.g.
    ReLU students that share a teacher's norm, or an antiparallel pair of
    erf students) are *marginal modes*, excluded from the search and named in
    the result; common eigenvectors of A and B give linear branches
    ``a + eta b`` whose zeros are closed forms.  On the rest, the zero is
    bracketed on a geometric grid from ``1e-3`` to ``eta_max`` (signs decided
    only outside the eigenvalue error band ``3 n err (1 + eta)``, err the
    entrywise Jacobian error) and refined by Brent's method to ``rtol``
    relative; a real crossing is polished with the generalised eigenvalue
    problem ``A v = -eta B v``.

    Parameters
    ----------
    model : Committee
        No output noise (otherwise use :func:`continuation`).  The model's
        eta is irrelevant; ``second_order`` must be True for a finite answer
        (without the eta^2 term the fixed point is stable at every eta or at none).
    state : State, FixedPoint or ndarray, optional
        The fixed point of interest; it must be fixed for every eta (e.g. any
        zero-error state).  Default: the perfect solution (K = M).
    eta_max : float
        Upper end of the search; ``inf`` is returned when stable up to there.
    rtol : float
        Relative tolerance of the root.
    full_output : bool
        Also return a dict: ``status`` (``"converged"``, ``"stable"``,
        ``"unstable_at_small_eta"``, ``"uncertain"`` (the sign of the leading
        eigenvalue is within its error band over several grid cells before
        the crossing), ``"indeterminate"`` or ``"all_marginal"``),
        ``message``, ``marginal_modes`` (list of dicts: ``side`` ``"right"``
        (a direction in state space, ``A v = B v = 0``) or ``"left"`` (a
        combination of components the linearised flow does not change),
        ``vector`` (unit, state order), ``components`` (the labels it
        involves, e.g. ``"R22"``), ``description``), ``n_marginal`` (how many
        eigenvalues vanish identically), ``bracket`` (lo, hi), ``precision``
        (half the final bracket), ``jacobian_error`` and ``eta_error``
        (first-order propagation of the Jacobian error into eta_c),
        ``crossing`` (``"real"``, ``"complex"`` or ``"none"``),
        ``linear_branches`` (the (a, b, multiplicity) of the split-off
        branches), ``structure`` (the :class:`EtaStructure`).

    Returns
    -------
    float
        ``eta_c`` (``0.0`` if unstable already for small eta, ``inf`` if none
        below ``eta_max``, ``nan`` if undetermined: see ``status``).

    Raises
    ------
    ValueError
        For bad parameters, output noise, or a state that is not fixed for every eta.
    """
    if not isinstance(model, Committee):
        raise ValueError(f"model: expected a phasekit.Committee, got {type(model).__name__}")
    if model.noise > 0 and model.second_order:
        raise ValueError("model: with output noise the perfect solution moves with eta; use continuation()")
    if not (eta_max > 1e-3):
        raise ValueError(f"eta_max: must be > 1e-3, got {eta_max!r}")
    if not (0 < rtol < 1):
        raise ValueError(f"rtol: must be in (0, 1), got {rtol!r}")
    st = _structure_for(model, state, structure)
    split = st.split
    n = len(st.A)
    err = st.entry_error
    modes = (_null_modes(split.null_right, vector_labels(model.K, model.M), "right")
             + _null_modes(split.null_left, vector_labels(model.K, model.M), "left"))
    note = _marginal_summary(split, modes)
    info: dict[str, Any] = {
        "structure": st, "jacobian_error": st.error, "marginal_modes": modes, "n_marginal": int(split.n_null),
        "linear_branches": [(br.a, br.b, br.multiplicity) for br in split.branches], "crossing": "none",
        "bracket": (float("nan"), float("nan")), "precision": float("nan"), "eta_error": float("nan"),
        "iterations": 0,
    }

    def done(value: float, status: str, message: str) -> float | tuple[float, dict[str, Any]]:
        info.update(status=status, message="; ".join(x for x in (message, note) if x))
        return (value, info) if full_output else value

    if split.n_null == n:
        return done(float("nan"), "all_marginal", "every eigenvalue vanishes for every eta: no crossing to find")
    g = split.max_real
    grid = np.geomspace(1e-3, eta_max, 400)
    vals = np.array([g(e) for e in grid])
    if not np.all(np.isfinite(vals)):
        return done(float("nan"), "indeterminate", "the spectrum could not be computed on the search grid")
    band = 3.0 * np.array([st.eigenvalue_error(e) for e in grid])
    sign = np.where(vals > band, 1, np.where(vals < -band, -1, 0))
    if sign[0] == 1:
        info.update(bracket=(0.0, float(grid[0])), precision=float(grid[0]))
        return done(0.0, "unstable_at_small_eta", "unstable already at small eta")
    pos = np.nonzero(sign == 1)[0]
    if len(pos) == 0:
        info.update(bracket=(float(eta_max), float("inf")), precision=float("inf"))
        return done(float("inf"), "stable", f"stable up to eta_max = {eta_max:g}")
    p = int(pos[0])
    neg = np.nonzero(sign[:p] == -1)[0]
    if len(neg) == 0:
        info.update(bracket=(0.0, float(grid[p])), precision=float(grid[p]))
        return done(float("nan"), "indeterminate",
                    f"the leading eigenvalue is within its error band of zero for eta up to {grid[p]:.6g}")
    q = int(neg[-1])
    lo, hi = float(grid[q]), float(grid[p])
    status = "converged"
    message = "converged"
    if p - q > 2:
        status = "uncertain"
        message = (f"the leading eigenvalue is within its error band of zero for eta in "
                   f"[{grid[q + 1]:.6g}, {grid[p - 1]:.6g}]; the root there is not resolved")
    root, r = optimize.brentq(g, lo, hi, xtol=1e-300, rtol=max(rtol * 1e-2, 1e-15), full_output=True)
    eta_c = float(root)
    lead = _lead_piece(st, eta_c)
    scale = max(1.0, abs(lead["value"]))
    crossing = "real" if abs(lead["imag"]) <= 1e-8 * scale else "complex"
    if crossing == "real":
        # exact zeros: linear branches a + eta b, and det(A + eta B) = 0 on the rest of the pencil
        cand = [-br.a / br.b for br in split.branches if br.b != 0]
        if len(split.A):
            try:
                ge = linalg.eigvals(split.A, -split.B)
                ge = ge[np.isfinite(ge) & (np.abs(ge.imag) <= 1e-8 * np.abs(ge))].real
                cand += list(ge)
            except (np.linalg.LinAlgError, ValueError):
                pass
        cand = np.array([c for c in cand if c > 0])
        if len(cand):
            best = float(cand[np.argmin(np.abs(cand - eta_c))])
            if abs(best - eta_c) <= 1e-6 * eta_c:
                eta_c = best
                lead = _lead_piece(st, eta_c)
    # a tight bracket around the final value for the report (widened until it brackets)
    step = max(rtol * eta_c, 1e-15 * eta_c)
    for _ in range(10):
        a, b = eta_c - step, eta_c + step
        if g(a) <= 0 <= g(b):
            lo, hi = a, b
            break
        step *= 10
    # first-order propagation of the Jacobian error: d lambda / d eta and the condition number
    err_lambda = lead["cond"] * err * (1 + eta_c) * np.sqrt(n)
    slope = lead["slope"]
    eta_err = float(err_lambda / abs(slope)) if np.isfinite(slope) and slope != 0 else float("inf")
    info.update(bracket=(float(lo), float(hi)), precision=float(0.5 * (hi - lo)), eta_error=eta_err,
                crossing=crossing, iterations=int(r.iterations))
    return done(eta_c, status, message)


def optimal_eta(model: Committee, *, state: State | FixedPoint | np.ndarray | None = None, rtol: float = 1e-10,
                full_output: bool = False,
                structure: EtaStructure | None = None) -> float | tuple[float, dict[str, Any]]:
    """Learning rate that maximises the slowest asymptotic decay rate at a fixed point (default: perfect solution).

    Maximises ``r(eta) = -eta max Re spec(A + eta B)`` over ``(0, eta_c)``
    with the marginal modes excluded (see :func:`critical_eta`).  The
    maximum is often a kink where the lead changes hands: where two branches
    cross (often at a defective Jacobian: for erf K = M the branch of a common
    eigenvector of A and B meets another one in a Jordan block, where
    eigenvalues are only accurate to ``sqrt(eps)``; after splitting off the
    common eigenvector the crossing is a simple zero of a difference of two
    well-conditioned eigenvalues) or where two real eigenvalues coalesce into
    a complex pair (a simple zero of the discriminant of their 2 x 2 Schur
    block, :func:`phasekit.spectrum.leading_pair_discriminant`).  Candidates:
    Brent's bounded maximiser in the best cell of a 401-point scan, the
    crossings and coalescences in that cell, and the smooth maxima of each
    branch; among those within the rate's error band of the best
    (``eta n err (1 + eta)`` times the eigenvalue condition number) the kinks win.

    Parameters
    ----------
    model : Committee
        As for :func:`critical_eta`.
    state : State, FixedPoint or ndarray, optional
        The fixed point (fixed for every eta); default: the perfect solution.
    rtol : float
        Relative tolerance of Brent's maximiser (the kinks are solved to rounding).
    full_output : bool
        Also return a dict with ``rate`` (the decay rate at eta_opt, units
        1/alpha), ``rate_error``, ``eta_error`` (propagated Jacobian error),
        ``eta_c``, ``kink`` (bool), ``kink_type`` (``"crossing"``,
        ``"coalescence"`` or ``None``), ``candidates`` (list of (eta, rate,
        type)), ``status``, ``message``, ``marginal_modes``, ``structure``
        and ``eta_c_info``.

    Returns
    -------
    float
        ``eta_opt``.

    Raises
    ------
    ValueError
        If there is no finite positive critical learning rate (the optimum is then undefined).
    """
    if not (0 < rtol < 1):
        raise ValueError(f"rtol: must be in (0, 1), got {rtol!r}")
    st = _structure_for(model, state, structure)
    eta_c, cinfo = critical_eta(model, full_output=True, structure=st)
    if not np.isfinite(eta_c) or eta_c <= 0:
        raise ValueError(f"model: no finite critical learning rate (eta_c = {eta_c}, {cinfo['message']}); "
                         "the optimum is undefined")
    split = st.split
    n = len(st.A)
    err = st.entry_error
    branches = split.branches
    has_rest = len(split.A) > 0

    def rest_eig(e: float) -> np.ndarray:
        return split.rest_eigenvalues(e)

    def value(piece: int, e: float) -> float:
        """Branch ``piece`` (index) or, for -1, the leading real part of the remaining pencil."""
        if piece >= 0:
            return float(branches[piece].value(e))
        w = rest_eig(e)
        return float(w[0].real) if len(w) else -np.inf

    pieces = list(range(len(branches))) + ([-1] if has_rest else [])

    def rate(e: float) -> float:
        return -e * split.max_real(e)

    def dlam(e: float) -> float:
        return 3.0 * np.sqrt(n) * err * (1.0 + e)

    def leaders(e: float, slack: float) -> set[int]:
        vals = {p: value(p, e) for p in pieces}
        top = max(vals.values())
        return {p for p, v in vals.items() if v >= top - slack}

    grid = np.linspace(0.0, eta_c, 401)[1:-1]
    rates = np.array([rate(e) for e in grid])
    j = int(np.argmax(rates))
    cell = (float(grid[j - 1]) if j > 0 else 1e-9 * eta_c, float(grid[min(j + 1, len(grid) - 1)]))
    mid = float(grid[j])
    subs = [(cell[0], mid), (mid, cell[1])]
    cands: list[tuple[float, str, Any]] = []

    res = optimize.minimize_scalar(lambda e: -rate(e), bounds=cell, method="bounded",
                                   options={"xatol": max(rtol * 1e-2, 1e-13) * eta_c, "maxiter": 500})
    cands.append((float(res.x), "smooth", "brent"))

    near = set()
    for x in (cell[0], mid, cell[1]):
        near |= leaders(x, 10 * dlam(x))
    near = sorted(near)

    # crossings of two pieces (the only kinks between pieces)
    for p, q in itertools.combinations(near, 2):
        def diff(e: float, p: int = p, q: int = q) -> float:
            return value(p, e) - value(q, e)

        for x0, x1 in subs:
            f0, f1 = diff(x0), diff(x1)
            if not (np.isfinite(f0) and np.isfinite(f1)) or f0 * f1 > 0:
                continue
            if p >= 0 and q >= 0:
                bp, bq = branches[p], branches[q]
                if bp.b == bq.b:
                    continue
                root = (bq.a - bp.a) / (bp.b - bq.b)
                if not (x0 <= root <= x1):
                    continue
            elif f0 == 0 or f1 == 0:
                root = x0 if f0 == 0 else x1
            else:
                try:
                    root = optimize.brentq(diff, x0, x1, xtol=1e-15 * x1, rtol=4 * np.finfo(float).eps)
                except (ValueError, RuntimeError):
                    continue
            if value(p, root) >= split.max_real(root) - dlam(root):
                cands.append((float(root), "crossing", (p, q)))

    # smooth maxima of single pieces
    for p in near:
        if p >= 0:
            br = branches[p]
            if br.b > 0 and cell[0] <= -br.a / (2 * br.b) <= cell[1]:
                cands.append((float(-br.a / (2 * br.b)), "smooth", p))
            continue

        def rest_slope(e: float) -> float:
            """d/d eta of eta * (leading real part of the remaining pencil), by perturbation theory."""
            w, vl, vr = linalg.eig(split.A + e * split.B, left=True, right=True)
            k = int(np.argmax(w.real))
            dl = (vl[:, k].conj() @ split.B @ vr[:, k]) / (vl[:, k].conj() @ vr[:, k])
            return float((w[k] + e * dl).real)

        for x0, x1 in subs:
            try:
                if rest_slope(x0) * rest_slope(x1) < 0:
                    cands.append((float(optimize.brentq(rest_slope, x0, x1, xtol=1e-15 * x1, rtol=1e-15)),
                                  "smooth", -1))
            except (ValueError, RuntimeError, np.linalg.LinAlgError):
                pass

    # inside the remaining pencil: two real eigenvalues coalescing into a complex pair, or
    # two of its branches exchanging the lead
    def disc(e: float) -> float:
        out = leading_pair_discriminant(split.A + e * split.B) if has_rest else None
        return float("nan") if out is None else out[0]

    if has_rest and -1 in near:
        def rest_lead_vector(e: float) -> np.ndarray:
            w, vr = linalg.eig(split.A + e * split.B)
            k = int(np.argmax(w.real))
            return vr[:, k] / np.linalg.norm(vr[:, k])

        def tracked(e: float, ref: np.ndarray) -> complex:
            w, vr = linalg.eig(split.A + e * split.B)
            vr = vr / np.linalg.norm(vr, axis=0)
            return w[int(np.argmax(np.abs(ref.conj() @ vr)))]

        for x0, x1 in subs:
            try:
                d0, d1 = disc(x0), disc(x1)
                if np.isfinite(d0) and np.isfinite(d1) and d0 * d1 < 0:
                    root = optimize.brentq(disc, x0, x1, xtol=1e-15 * x1, rtol=4 * np.finfo(float).eps)
                    cands.append((float(root), "coalescence", -1))
                v0, v1 = rest_lead_vector(x0), rest_lead_vector(x1)
                if len(v0) > 1 and abs(v0.conj() @ v1) < 0.99:
                    def gap(e: float, v0: np.ndarray = v0, v1: np.ndarray = v1) -> float:
                        return float(tracked(e, v0).real - tracked(e, v1).real)

                    if gap(x0) * gap(x1) < 0:
                        root = optimize.brentq(gap, x0, x1, xtol=1e-15 * x1, rtol=4 * np.finfo(float).eps)
                        cands.append((float(root), "crossing", -1))
            except (ValueError, RuntimeError, np.linalg.LinAlgError):
                pass

    def rate_at(e: float, kind: str) -> float:
        if kind == "coalescence":
            # the mean of the coalescing pair is well conditioned where each eigenvalue is not
            out = leading_pair_discriminant(split.A + e * split.B)
            if out is not None:
                others = [br.value(e) for br in branches]
                return -e * max([out[1]] + others)
        return rate(e)

    scored = [(e, rate_at(e, kind), kind) for e, kind, _ in cands if cell[0] <= e <= cell[1]]
    best_rate = max(r_ for _, r_, _ in scored)
    e_best = max(scored, key=lambda t: t[1])[0]
    lead = _lead_piece(st, e_best)
    rate_err = e_best * min(max(lead["cond"], 1.0), 1e8) * dlam(e_best)
    # within the error band of the best rate the kinks (exact solutions) win over Brent's estimate
    tied = [t for t in scored if t[1] >= best_rate - rate_err]
    kinks = [t for t in tied if t[2] != "smooth"]
    eta_o, rate_o, kind = max(kinks or tied, key=lambda t: t[1])
    kink = kind != "smooth"

    # error of eta_opt propagated from the Jacobian error
    lead = _lead_piece(st, eta_o)
    dl = min(max(lead["cond"], 1.0), 1e8) * dlam(eta_o)
    h = 1e-6 * eta_o
    if kind == "crossing":
        left = _lead_piece(st, eta_o - 1e-3 * (cell[1] - cell[0]))
        right = _lead_piece(st, eta_o + 1e-3 * (cell[1] - cell[0]))
        ds = abs(left["slope"] - right["slope"])
        eta_err = float(2 * dl / ds) if ds > 0 else float("inf")
    elif kind == "coalescence":
        dd = (disc(eta_o + h) - disc(eta_o - h)) / (2 * h)
        T = np.abs(split.A + eta_o * split.B).max()
        eta_err = float(8 * T * dl / abs(dd)) if dd else float("inf")
    else:
        h2 = 1e-4 * eta_o
        curv = abs(rate(eta_o + h2) - 2 * rate_o + rate(eta_o - h2)) / h2 ** 2
        eta_err = float(np.sqrt(2 * rate_err / curv)) if curv > 0 else float("inf")
    message = "converged" if kink or len(tied) == 1 else "converged (smooth maximum)"
    if cinfo.get("n_marginal"):
        message += "; " + _marginal_summary(split, cinfo["marginal_modes"])
    info = {"rate": float(rate_o), "rate_error": float(rate_err), "eta_error": eta_err, "eta_c": eta_c,
            "kink": bool(kink), "kink_type": kind if kink else None,
            "candidates": [(float(e), float(r_), k) for e, r_, k in scored], "status": "converged",
            "message": message, "marginal_modes": cinfo["marginal_modes"], "structure": st, "eta_c_info": cinfo}
    return (eta_o, info) if full_output else eta_o


# --- continuation ------------------------------------------------------------------


def _flow_eta_derivative(model: Committee, v: np.ndarray) -> np.ndarray:
    """``d f / d eta`` at fixed state: ``a + 2 eta b``."""
    first = model.replace(eta=1.0, second_order=False)
    a = first.rhs_vector(v)
    if not model.second_order:
        return a
    b = model.replace(eta=1.0).rhs_vector(v) - a
    return a + 2.0 * model.eta * b


def continuation(model: Committee, start: FixedPoint | State | np.ndarray | str, eta_values: Sequence[float], *,
                 tol: float = 1e-12, rtol: float = 1e-10, max_bisect: int = 60) -> xr.Dataset:
    """Follow a fixed point as eta varies (tangent predictor, Newton corrector).

    Parameters
    ----------
    model : Committee
        Everything but eta is taken from here.
    start : FixedPoint, State, ndarray or {"perfect", "symmetric_plateau"}
        Starting guess at ``eta_values[0]``.
    eta_values : sequence of float
        Strictly monotonic learning rates along the branch.
    tol : float
        Newton residual tolerance.
    rtol : float
        Relative width to which each zero crossing is bisected.
    max_bisect : int
        Bisection steps per crossing at most.

    Returns
    -------
    xarray.Dataset
        Dims ``eta``, ``mode``, ``i``, ``k``, ``n``, ``crossing``.  Variables
        ``R``, ``Q``, ``eg``, ``residual``, ``converged``, ``n_unstable``,
        ``max_real`` (largest real part, 1/alpha), ``eigenvalue_real``,
        ``eigenvalue_imag`` ``(eta, mode)``; per crossing ``crossing_eta``
        (midpoint), ``crossing_low``, ``crossing_high`` (the final bisection
        interval), ``crossing_precision`` (half its width),
        ``crossing_n_before``/``crossing_n_after`` (unstable directions on
        either side).  The branch stops (remaining entries nan) where Newton fails.
    """
    etas = np.asarray(eta_values, dtype=float)
    if etas.ndim != 1 or len(etas) < 2 or np.any(etas <= 0) or not (np.all(np.diff(etas) > 0) or np.all(np.diff(etas) < 0)):
        raise ValueError("eta_values: need >= 2 strictly monotonic positive learning rates")
    if isinstance(start, str):
        m0 = model.replace(eta=float(etas[0]))
        if start == "perfect":
            v = perfect_solution(m0).vector
        elif start == "symmetric_plateau":
            v = symmetric_plateau(m0).vector
        else:
            raise ValueError(f"start: unknown landmark {start!r}; use 'perfect' or 'symmetric_plateau'")
    else:
        v = _as_vector(model, start, "start")
    K, M, n = model.K, model.M, model.n_state
    points: list[FixedPoint | None] = []
    prev_fp: FixedPoint | None = None
    prev_eta = None
    for eta in etas:
        m = model.replace(eta=float(eta))
        guess = v
        if prev_fp is not None and prev_fp.converged:
            # tangent predictor: J dv/deta = -df/deta
            dfde = _flow_eta_derivative(prev_fp.model, prev_fp.vector)
            try:
                tangent = np.linalg.solve(prev_fp.jacobian, -dfde)
                guess = _pull_inside(m, prev_fp.vector + (eta - prev_eta) * tangent)
            except np.linalg.LinAlgError:
                guess = prev_fp.vector
        res = _newton(m, guess, tol=tol)
        if not res.converged and prev_fp is not None:
            res = _newton(m, prev_fp.vector, tol=tol)
        if not res.converged:
            points.append(None)
            break
        fp = linearise(m, res.v, converged=True)
        points.append(fp)
        v, prev_fp, prev_eta = res.v, fp, eta
    n_done = len(points)

    crossings = []
    for j in range(n_done - 1):
        a, b = points[j], points[j + 1]
        if a is None or b is None or a.n_unstable == b.n_unstable:
            continue
        lo, hi = float(etas[j]), float(etas[j + 1])
        fp_lo, fp_hi = a, b
        # the eigenvalue that crosses: index min(n_lo, n_hi) in decreasing real part
        kc = min(a.n_unstable, b.n_unstable)

        def crossing_value(fp: FixedPoint) -> float:
            return float(np.real(np.asarray(fp.eigenvalues)[kc]))

        side_lo = crossing_value(a) > 0
        for _ in range(max_bisect):
            if abs(hi - lo) <= rtol * max(abs(lo), abs(hi)):
                break
            mid = 0.5 * (lo + hi)
            mm = model.replace(eta=mid)
            w_lo = (mid - lo) / (hi - lo)
            res = _newton(mm, (1 - w_lo) * fp_lo.vector + w_lo * fp_hi.vector, tol=tol)
            if not res.converged:
                break
            fm = linearise(mm, res.v, converged=True)
            if (crossing_value(fm) > 0) == side_lo:
                lo, fp_lo = mid, fm
            else:
                hi, fp_hi = mid, fm
        lo_, hi_ = min(lo, hi), max(lo, hi)
        crossings.append((0.5 * (lo_ + hi_), lo_, hi_, 0.5 * (hi_ - lo_), a.n_unstable, b.n_unstable))

    nan = np.nan
    R = np.full((len(etas), K, M), nan)
    Qm = np.full((len(etas), K, K), nan)
    eg = np.full(len(etas), nan)
    resid = np.full(len(etas), nan)
    conv = np.zeros(len(etas), dtype=int)
    nun = np.full(len(etas), -1, dtype=int)
    mx = np.full(len(etas), nan)
    ev_re = np.full((len(etas), n), nan)
    ev_im = np.full((len(etas), n), nan)
    for j, fp in enumerate(points):
        if fp is None:
            continue
        R[j], Qm[j] = fp.state.R, fp.state.Q
        eg[j], resid[j], conv[j], nun[j] = fp.eg, fp.residual, int(fp.converged), fp.n_unstable
        w = np.asarray(fp.eigenvalues, dtype=complex)
        ev_re[j], ev_im[j] = w.real, w.imag
        mx[j] = w.real.max()
    cr = np.array(crossings, dtype=float).reshape(-1, 6)
    one, rate = {"units": "1"}, {"units": "1/alpha"}
    ds = xr.Dataset(
        {
            "R": (("eta", "i", "n"), R, {"long_name": "student-teacher overlap R_in", **one}),
            "Q": (("eta", "i", "k"), Qm, {"long_name": "student-student overlap Q_ik", **one}),
            "eg": ("eta", eg, {"long_name": "generalisation error eps_g", **one}),
            "residual": ("eta", resid, {"long_name": "max |d state / d alpha|", **rate}),
            "converged": ("eta", conv, {"long_name": "Newton converged (1) or not (0)", **one}),
            "n_unstable": ("eta", nun, {"long_name": "number of unstable directions (-1: no point)", **one}),
            "max_real": ("eta", mx, {"long_name": "largest real part of the spectrum", **rate}),
            "eigenvalue_real": (("eta", "mode"), ev_re, {"long_name": "real part of Jacobian eigenvalue", **rate}),
            "eigenvalue_imag": (("eta", "mode"), ev_im,
                                {"long_name": "imaginary part of Jacobian eigenvalue", **rate}),
            "crossing_eta": ("crossing", cr[:, 0], {"long_name": "learning rate of a zero crossing", **one}),
            "crossing_low": ("crossing", cr[:, 1], {"long_name": "lower end of the crossing interval", **one}),
            "crossing_high": ("crossing", cr[:, 2], {"long_name": "upper end of the crossing interval", **one}),
            "crossing_precision": ("crossing", cr[:, 3],
                                   {"long_name": "half width of the crossing interval", **one}),
            "crossing_n_before": ("crossing", cr[:, 4].astype(int),
                                  {"long_name": "unstable directions at the lower-eta side", **one}),
            "crossing_n_after": ("crossing", cr[:, 5].astype(int),
                                 {"long_name": "unstable directions at the higher-eta side", **one}),
        },
        coords={
            "eta": ("eta", etas, {"long_name": "learning rate eta", **one}),
            "mode": ("mode", np.arange(n), {"long_name": "eigenmode (0 = largest real part)", **one}),
            "i": ("i", np.arange(1, K + 1), {"long_name": "student unit", **one}),
            "k": ("k", np.arange(1, K + 1), {"long_name": "student unit", **one}),
            "n": ("n", np.arange(1, M + 1), {"long_name": "teacher unit", **one}),
            "crossing": ("crossing", np.arange(len(cr)), {"long_name": "zero crossing index", **one}),
        },
    )
    params = model.parameters()
    ds.attrs.update(provenance_attrs({"model": params, "eta_values": etas.tolist(), "tol": tol, "rtol": rtol}))
    ds.attrs.update(model=json.dumps(params), K=K, M=M, activation=params["activation"],
                    second_order=int(model.second_order), noise=model.noise,
                    n_points=int(n_done), complete=int(n_done == len(etas) and points[-1] is not None))
    return ds
