"""Jacobians of the committee flow, inside the cone and on its boundary.

Inside the cone the Jacobian is a central difference: one batched call of
``model.rhs_vector`` on a stack of ``2 n + 1`` states (the centre gives the
residual), accurate to about ``1e-10``.

On the boundary the right-hand side may not be analytic (ReLU: corrections
in powers of ``(1 - rho)^(1/2)``) and the closed forms are not defined
outside, so the Jacobian is the limit taken from inside.  Along ``x0 + h d``
with ``d`` pointing into the cone the flow is
``f(x0) + h J d + c_3 h^(3/2) + c_4 h^2 + ...``, a power series in
``s = sqrt(h)``; it is sampled on a geometric grid of ``s`` in
``[0.01, 0.7]`` and fitted by Chebyshev polynomials of several degrees over
several ranges (weighted by the expected round-off, which grows like
``h^(-3/2)`` for the quotient; isolated round-off spikes are dropped first).
Per entry the estimate most stable under a change of degree is kept, and
that change is the reported error.

The inward direction at ``x0 = (R0, Q0)`` is ``d_in = x_c - x0`` towards the
interior point ``x_c = (0, Q0 + mu I)``: it shrinks R.  Because the cone is
convex, ``x0 + h (d_in + gamma e_k)`` stays strictly inside for ``0 < h <= 1``
whenever ``gamma`` is below half the smallest eigenvalue of ``Sigma(x_c)``,
so ``J e_k = (J (d_in + gamma e_k) - J d_in) / gamma`` gives every column.
For states symmetric under permutations of the units only one column per
orbit of coordinates is computed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..core.results import FixedPoint, Result
from .cone import _inward_direction, _margin, _scale
from .model import PSD_TOL, Committee, State, full_model_only, is_reduced
from .symmetry import _state_symmetry, _Symmetry

__all__ = ['Jacobian', 'jacobian']


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


def _inward_columns(fun: Callable[[np.ndarray], np.ndarray], v: np.ndarray, d_in: np.ndarray, steps: np.ndarray,
                    gammas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Directional derivatives along ``steps`` (rows ``gamma_j e_j``) as one-sided limits from inside the cone.

    Samples ``f`` at ``v + h d_in`` and ``v + h (d_in + step_j)`` for ``h = s^2`` on
    the ``_S_GRID`` (both point into the cone when ``d_in`` does and the steps are
    small enough), takes the limits ``h -> 0`` of the difference quotients
    (:func:`_one_sided_limit`) and returns ``(f(v), columns, their errors, n_rhs)``,
    columns ``(JD_j - JD_0) / gamma_j`` of shape ``(c, m)``.
    """
    n = v.size
    D = np.concatenate([d_in[None, :], d_in[None, :] + steps])  # (1 + c, n)
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
    g = np.asarray(gammas, dtype=float)[:, None]
    return f0, (JD[1:] - JD[0]) / g, (errD[1:] + errD[0]) / g, F.shape[0]


def _cone_jacobian(model: Committee, fun: Callable[[np.ndarray], np.ndarray], v: np.ndarray,
                   symmetry: _Symmetry | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Jacobian at a boundary point as the limit from inside the cone.

    Returns ``(f(v), J, J_error, n_rhs)``; ``J_error`` is the entrywise error estimate.
    """
    n = v.size
    d_in, gamma = _inward_direction(model, v)
    cols = np.arange(n) if symmetry is None else symmetry.representatives
    f0, Jc, Ec, n_rhs = _inward_columns(fun, v, d_in, gamma * np.eye(n)[cols], np.full(len(cols), gamma))
    m = Jc.shape[-1]
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
    return f0, J, E, n_rhs


@dataclass(frozen=True, kw_only=True, eq=False)
class Jacobian(Result):
    """A Jacobian of the committee flow with how it was obtained; ``np.asarray(jac)`` is the matrix.

    Attributes
    ----------
    matrix : ndarray, shape (m, n_state)
        ``J[a, b] = d f_a / d v_b`` (units 1/alpha for the flow itself).
    error : float
        Estimated max error of an entry; ``nan`` when not estimated (central differences,
        accurate to about ``1e-10`` relative).
    scheme : str
        ``"central"`` or ``"cone"`` (the scheme used, after ``"auto"`` chose).
    n_rhs : int
        States at which the flow was evaluated.
    margin : float
        Relative distance of the state to the boundary of the positive-semidefinite cone.
    rhs : ndarray, shape (m,)
        The flow at the state.
    step : float
        Difference step of the central scheme (``nan`` for the cone scheme).
    symmetry : str
        Permutation symmetry used by the cone scheme (``"none"``, ``"separate"``,
        ``"simultaneous"``; ``""`` for the central scheme).
    status : str
        ``"ok"``, or ``"failed"`` when an entry is not finite.
    """

    matrix: np.ndarray
    error: float = float("nan")
    scheme: str = ""
    n_rhs: int = 0
    margin: float = float("nan")
    rhs: np.ndarray
    step: float = float("nan")
    symmetry: str = ""

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = np.asarray(self.matrix, dtype=dtype)
        return out.copy() if copy else out

    @property
    def shape(self) -> tuple[int, ...]:
        return self.matrix.shape


SCHEMES = ("auto", "central", "cone")


def jacobian(model: Committee, state: State | np.ndarray, *, scheme: str = "auto") -> Jacobian:
    """Jacobian ``d (d state / d alpha) / d state`` of the flow at the model's eta.

    Parameters
    ----------
    model : Committee
    state : State, CommitteeFixedPoint or ndarray, shape (n_state,)
        A point inside the positive-semidefinite cone (or on its boundary).
    scheme : {"auto", "central", "cone"}
        ``"central"``: central differences, one batched call on ``2 n + 1``
        states (step ``6e-6`` times the state scale, reduced near the
        boundary so that the stencil stays inside), accurate to about
        ``1e-10``.  ``"cone"``: the one-sided limit from inside the cone
        (module docstring), for points on the boundary where the flow may not
        be analytic; it uses ``64 (c + 1)`` states, ``c`` being ``n`` or the
        number of symmetry orbits of coordinates.  ``"auto"``: ``"central"``
        when the stencil fits inside the cone, else ``"cone"``.

    Returns
    -------
    Jacobian
        ``matrix[a, b] = d f_a / d v_b`` in the state order of
        :func:`phasekit.committee.model.vector_labels` (units 1/alpha), with
        its error estimate, the scheme used, the cost and the flow at ``state``.
        For a reduced model (:meth:`Committee.restrict`) the Jacobian of the
        reduced flow in its coordinates (its own scheme: central inside the
        cone, one-sided on its boundary; ``scheme`` is not used).
    """
    if is_reduced(model):
        z = model.state_vector(state, "state")
        J, err, used = model.jacobian(z)
        f = model.rhs_vector(z)
        ok = bool(np.all(np.isfinite(J)))
        return Jacobian(matrix=J, error=err, scheme=used, margin=float(model.min_eigenvalue(z)), rhs=f,
                        status="ok" if ok else "failed", message=f"{used} scheme ({model.subspace} subspace)")
    v = _as_vector(model, state, "state")
    return _jacobian_of(model, model.rhs_vector, v, scheme=scheme)


def _jacobian_of(model: Committee, fun: Callable[[np.ndarray], np.ndarray], v: np.ndarray, *,
                 scheme: str = "auto", symmetry: Any = "detect") -> Jacobian:
    if scheme not in SCHEMES:
        raise ValueError(f"scheme: must be 'auto', 'central' or 'cone', got {scheme!r}")
    margin = float(_margin(model, v))
    if margin < -PSD_TOL:
        raise ValueError(f"state: outside the positive-semidefinite cone (relative margin {margin:.3g})")
    scale = float(_scale(model, v))
    use = scheme
    if scheme == "auto":
        use = "central" if margin > _BOUNDARY_MARGIN else "cone"
    extra: dict[str, Any]
    if use == "central":
        # keep the stencil inside: a unit coordinate step moves eigenvalues by at most |h|
        h = _CENTRAL_STEP * scale
        if margin * scale < 4 * h:
            h = max(margin * scale / 4, 1e-12 * scale)
        f0, J = _central_jacobian(fun, v, h)
        extra = {"error": float("nan"), "n_rhs": 2 * v.size + 1, "step": h}
    else:
        if symmetry == "detect":
            symmetry = _state_symmetry(model, v)
        f0, J, E, n_rhs = _cone_jacobian(model, fun, v, symmetry)
        extra = {"error": float(np.nanmax(E)), "n_rhs": n_rhs,
                 "symmetry": "none" if symmetry is None else symmetry.kind}
    ok = bool(np.all(np.isfinite(J)))
    return Jacobian(matrix=J, scheme=use, margin=margin, rhs=f0, status="ok" if ok else "failed",
                    message=f"{use} scheme" if ok else f"{use} scheme: the Jacobian has non-finite entries",
                    **extra)


def _as_vector(model: Committee, state: State | np.ndarray, name: str) -> np.ndarray:
    full_model_only(model, "the full-space fixed-point analysis")
    if isinstance(state, FixedPoint):  # a fixed-point result stands for its state
        state = state.vector
    model.require_autonomous("fixed-point analysis (Jacobians, fixed points, stability)")
    if isinstance(state, State):
        v = model.state_vector(state, name)
    else:
        v = np.asarray(state, dtype=float)
        if v.shape != (model.n_state,):
            raise ValueError(f"{name}: expected a State or a vector of length {model.n_state}, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name}: must be finite")
    return v.copy()
