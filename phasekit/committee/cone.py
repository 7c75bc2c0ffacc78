"""Geometry of the positive-semidefinite cone of the field covariance.

A state is admissible when ``Sigma = [[Q, R], [R^T, T]]`` is positive
semidefinite.  Several fixed points lie on the boundary of this cone (the
perfect solution, the erf and ReLU plateaus), so root finders, Jacobians and
trajectories need: the relative margin (smallest eigenvalue over scale), the
largest feasible step along a segment (``lambda_min`` is concave along a line,
so the feasible part of a segment is one interval), an interior reference
point and the pull-back of an infeasible point onto the segment towards it,
and the Gram matrix ``W = Q - R T^-1 R^T`` of the students' components outside
the teachers' span.
"""

from __future__ import annotations

import numpy as np

from .model import Committee

# States whose relative cone margin is above -this are inside up to rounding (the
# boundary itself is computed with errors of a few 1e-17).
_ROUNDOFF_MARGIN = 1e-14


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
    """Interior point ``x_c = (0, Q + mu I[, v])`` and the smallest eigenvalue of its covariance.

    Trained second-layer weights do not enter the covariance: ``x_c`` keeps those of ``v``.
    """
    K, M = model.K, model.M
    Q = model.covariance(v)[:K, :K]
    mu = 0.5 * max(float(np.mean(np.diag(Q))), 1e-3)
    lam_q = float(np.linalg.eigvalsh(Q)[0])
    if lam_q + mu <= 0.5 * mu:  # Q itself not PSD (a guess outside the cone): push further in
        mu = mu - lam_q
    xc = np.concatenate([np.zeros(K * M), (Q + mu * np.eye(K))[np.triu_indices(K)],
                         np.asarray(v, dtype=float)[model.n_order:]])
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


def _perp_gram(model: Committee, V: np.ndarray) -> np.ndarray:
    """``W = Q - R T^-1 R^T``: Gram matrix of the student components outside the teachers' span."""
    K = model.K
    V = np.asarray(V, dtype=float)
    S = model.covariance(V)
    R = S[..., :K, K:]
    return S[..., :K, :K] - R @ np.linalg.solve(model.T, np.swapaxes(R, -1, -2))
