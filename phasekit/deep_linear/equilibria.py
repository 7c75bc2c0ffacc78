"""Fixed points of the deep-linear mode dynamics and their stability."""

from __future__ import annotations

import numpy as np

from ..core.results import FixedPoint, classify
from ..core.spectrum import eigen_decomposition
from .modes import (
    Array,
    _check_depth,
    _check_params,
    _layer_jacobian,
    _RationalFlow,
    layer_rhs,
    mode_rhs,
)

__all__ = ['fixed_points']


def _make_fixed_point(state: Array, jac: Array, residual: float) -> FixedPoint:
    labels = ("u",) if len(state) == 1 else tuple(f"a{j + 1}" for j in range(len(state)))
    # the layer Jacobian is symmetric with a (k-1)-fold eigenvalue at balanced points; the
    # shared decomposition returns a real orthonormal basis of such eigenspaces
    spec = eigen_decomposition(jac)
    lam, vec = spec.eigenvalues, spec.eigenvectors
    finite = np.abs(lam[np.isfinite(lam)])
    tol = 1e-12 * max(1.0, float(finite.max()) if finite.size else 1.0)
    n_unstable, kind = classify(lam, tol)
    # the roots are closed forms ("ok"); only the eigen-decomposition can fail
    return FixedPoint(vector=np.asarray(state, float), eigenvalues=lam, eigenvectors=vec,
                      jacobian=np.asarray(jac, float), jacobian_scheme="analytic", residual=float(residual),
                      kind=kind, n_unstable=n_unstable, eig_tol=tol, labels=labels,
                      status="ok" if spec.converged else "failed",
                      message=spec.message or ("exact root" if spec.converged else "eigen-decomposition failed"))


def fixed_points(s: float, *, depth: int = 2, weight_decay: float = 0.0, tau: float = 1.0,
                 coordinates: str = "layers") -> list[FixedPoint]:
    """Fixed points of one mode on the positive balanced branch, with their stability.

    Parameters
    ----------
    s, depth, weight_decay, tau
        As :func:`mode_rhs`.
    coordinates : {"layers", "mode"}
        ``"layers"``: state ``(a_1, ..., a_k)`` of the per-layer flow
        (:func:`layer_rhs`); the Jacobian there also shows the directions that
        break balance (eigenvalue ``-2 lambda / tau`` at nonzero fixed points, 0
        without weight decay: a continuous family of unbalanced solutions).
        ``"mode"``: state ``(u,)`` of :func:`mode_rhs`.  Away from the origin its
        eigenvalue equals the layers' balanced-direction eigenvalue; at the origin
        the two differ (``-k lambda`` against ``-lambda`` for ``k >= 3``) because
        ``u = v^k`` is not smoothly invertible there.

    Returns
    -------
    list of phasekit.core.results.FixedPoint
        ``vector`` is the state in ``coordinates``; sorted by mode strength: the origin first, then the positive roots of
        ``s - u = lambda u^(2/k - 1)`` (``u = s - lambda`` for ``k = 2``,
        ``s / (1 + lambda)`` for ``k = 1``).  For ``k = 1`` the single fixed point.
    """
    k = _check_depth(depth)
    s, lam, tau = _check_params(s, weight_decay, tau)
    if coordinates not in ("layers", "mode"):
        raise ValueError(f"coordinates: must be 'layers' or 'mode', got {coordinates!r}")
    if k == 1:
        us = [s / (1.0 + lam)]
    elif k == 2:
        us = [0.0] + ([s - lam] if s - lam > 0 else [])
    else:
        roots = _RationalFlow(k, s, lam, tau).real_positive_roots()
        us = [0.0] + [float(r) ** k for r in roots]
    out = []
    for u in us:
        if coordinates == "mode" or k == 1:
            res = float(np.abs(mode_rhs(u, s, depth=k, weight_decay=lam, tau=tau)))
            if k == 1:
                d = -(1.0 + lam) / tau
            else:
                # d/du of (k/tau)(u^(2-2/k)(s - u) - lam u)
                p = 2.0 - 2.0 / k
                grow = p * u ** (p - 1.0) * (s - u) if (u > 0 or p == 1.0) else 0.0
                d = (k / tau) * (grow - u**p - lam)
            out.append(_make_fixed_point(np.array([u]), np.array([[d]]), res))
        else:
            a = np.full(k, u ** (1.0 / k) if u > 0 else 0.0)
            res = float(np.max(np.abs(layer_rhs(a, s, weight_decay=lam, tau=tau))))
            out.append(_make_fixed_point(a, _layer_jacobian(a, s, lam, tau), res))
    return out
