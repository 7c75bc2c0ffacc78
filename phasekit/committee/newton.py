"""Damped Newton iterations for ``d state / d alpha = 0`` that never leave the cone.

A Newton trial point outside the cone is pulled back along the segment to an
interior point.  A straight step along a curved face leaves the cone only at
second order, so this retraction keeps Newton's quadratic convergence to
roots on the boundary.  Roots that are degenerate along the directions
leaving a face (the erf plateau: separating the coinciding students costs
nothing to first order) are polished by Gauss-Newton on the flow together
with the face equations ``a^T W a = 0`` (``W = Q - R T^-1 R^T``, ``a`` its null
vectors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .cone import (
    _ROUNDOFF_MARGIN,
    _interior_reference,
    _inward_direction,
    _margin,
    _max_step,
    _perp_gram,
    _pull_inside,
    _scale,
)
from .jacobians import (
    _CENTRAL_STEP,
    _FORWARD_STEP,
    _central_jacobian,
    _forward_inward_jacobian,
)
from .model import Committee


@dataclass
class _NewtonResult:
    v: np.ndarray
    residual: float
    converged: bool
    iterations: int
    message: str


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
