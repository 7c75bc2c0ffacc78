"""The edge of chaos and the phase of deep random networks at a point ``(sigma_w2, sigma_b2)``."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import optimize

from ..core.activations import Activation
from ..core.activations import activation as _lookup
from .maps import (
    _Q_MAX,
    _Q_SCAN_MIN,
    Array,
    PHASE_CHAOTIC,
    PHASE_ORDERED,
    PHASE_UNBOUNDED,
    _check_nonneg,
    _q_eff,
    _slope_c,
    _xi,
    c_star,
    q_star,
)

__all__ = ['critical_line', 'edge_of_chaos', 'edge_of_chaos_line', 'eoc_asymptote', 'phase_point']


def _eoc_scalar(act: Activation, sb: float) -> tuple[float, float]:
    def B(q: Array) -> Array:
        return q - act.variance_map(q) / act.slope_moment(q)

    def B1(q: float) -> float:
        # One evaluation path for the scan and for Brent's method: batched and scalar
        # quadratures round differently, and at a root on a grid node (e.g. q* = 10)
        # a sign flip of 1e-15 between them would leave Brent without a bracket.
        return float(B(np.array([q]))[0])

    grid = np.geomspace(_Q_SCAN_MIN, _Q_MAX, 201)
    b = np.array([B1(q) for q in grid])
    if np.all(np.abs(b) <= 1e-10 * grid):
        # Positively homogeneous g (relu, linear): every q* lies on the single EOC point.
        if sb == 0.0:
            return float(1.0 / act.slope_moment(1.0)), float("nan")
        raise ValueError(
            f"sigma_b2: {act.name!r} is positively homogeneous; its edge of chaos is the "
            f"single point sigma_b2 = 0 (got {sb})"
        )
    if sb == 0.0 and b[0] > 0:
        # B(q) > 0 for q > 0 and B(0) = 0: the EOC meets sigma_b2 = 0 at q* = 0.
        return float(1.0 / act.slope_moment(_q_eff(0.0))), 0.0
    f = b - sb
    roots = []
    for j in np.nonzero(np.sign(f[:-1]) * np.sign(f[1:]) <= 0)[0]:
        lo, hi = grid[j], grid[j + 1]
        if f[j] == 0.0:
            roots.append(float(lo))
            continue
        r = optimize.brentq(lambda q: B1(q) - sb, lo, hi, xtol=1e-300,
                            rtol=4 * np.finfo(float).eps, maxiter=500)
        roots.append(float(r))
    if not roots:
        raise ValueError(
            f"sigma_b2: no edge of chaos for {act.name!r} at sigma_b2 = {sb} "
            f"(B(q*) = q* - V/E[g'^2] ranges over [{b.min():.4g}, {b.max():.4g}] on q* in "
            f"[{_Q_SCAN_MIN:g}, {_Q_MAX:g}])"
        )
    roots = sorted(set(roots))
    # Prefer a q* that attracts the variance map (slope sigma_w2 dV/dq < 1).
    for r in roots:
        sw = 1.0 / float(act.slope_moment(r))
        if sw * float(act.variance_map_slope(r)) < 1.0:
            return sw, r
    return 1.0 / float(act.slope_moment(roots[0])), roots[0]


def edge_of_chaos(activation: str | Activation, sigma_b2: Any) -> tuple[Any, Any]:
    """Weight variance on the edge of chaos for a given bias variance.

    Solves ``B(q*) = q* - V(q*) / E[g'(sqrt(q*) Z)^2] = sigma_b2`` for ``q*`` (the
    critical line parameterised by ``q*``), then ``sigma_w2 = 1 / E[g'^2]``.

    Parameters
    ----------
    activation : str or Activation
    sigma_b2 : float or array_like
        Bias variance(s) ``>= 0``.

    Returns
    -------
    sigma_w2, q_star : float or ndarray (shape of ``sigma_b2``)
        For positively homogeneous activations (relu, linear) the EOC is the
        single point ``sigma_b2 = 0`` with every ``q*`` critical: ``q_star`` is NaN.
        When ``B(q*) = sigma_b2`` has several roots the smallest whose variance map
        is attracting is returned; if none attracts (swish at small ``sigma_b2``:
        the variance map's slope at ``q*`` exceeds 1, so deep networks leave this
        ``q*``) the smallest root is returned.

    Raises
    ------
    ValueError
        If there is no edge of chaos at this ``sigma_b2`` (e.g. relu with
        ``sigma_b2 > 0``, softplus).
    """
    sb = _check_nonneg(sigma_b2, "sigma_b2")
    act = _lookup(activation)
    if sb.ndim == 0:
        return _eoc_scalar(act, float(sb))
    out = [_eoc_scalar(act, float(v)) for v in sb.ravel()]
    sw = np.array([o[0] for o in out]).reshape(sb.shape)
    qs = np.array([o[1] for o in out]).reshape(sb.shape)
    return sw, qs


def critical_line(activation: str | Activation, sigma_b2: Any) -> tuple[Array, Array]:
    """:func:`edge_of_chaos` on an array of ``sigma_b2``, NaN where there is none."""
    sb = np.atleast_1d(_check_nonneg(sigma_b2, "sigma_b2"))
    act = _lookup(activation)
    sw = np.full(sb.shape, np.nan)
    qs = np.full(sb.shape, np.nan)
    for i, v in enumerate(sb.ravel()):
        try:
            sw.flat[i], qs.flat[i] = _eoc_scalar(act, float(v))
        except ValueError:
            pass
    return sw, qs


def phase_point(activation: str | Activation, sigma_w2: float, sigma_b2: float, *, n_angle: int = 24,
                q0: float = 1.0) -> dict[str, float]:
    """Order parameters of the deep random network at one ``(sigma_w2, sigma_b2)``.

    Parameters
    ----------
    activation : str or Activation
    sigma_w2, sigma_b2 : float
        Weight and bias variances.
    n_angle : int
        Gauss-Legendre nodes per angular wedge of the 2-D correlation integrals.
    q0 : float
        Input variance from which the variance map is iterated (:func:`q_star`);
        where the variance map has several attracting fixed points (swish), the
        one reached from ``q0`` is used.

    Returns
    -------
    dict
        ``q_star``, ``c_star``, ``chi_1``, ``chi_q``, ``xi_q``, ``xi_c`` (depth
        scales in layers) and ``phase`` (:data:`PHASE_ORDERED`,
        :data:`PHASE_CHAOTIC` or :data:`PHASE_UNBOUNDED`: the variance map has
        no fixed point).
    """
    act = _lookup(activation)
    qs = q_star(act, sigma_w2, sigma_b2, q0=q0)
    chi = float(sigma_w2 * act.slope_moment(_q_eff(qs)))
    nan = float("nan")
    if not np.isfinite(qs):
        return {"q_star": qs, "c_star": nan, "chi_1": chi, "chi_q": nan, "xi_q": nan, "xi_c": nan,
                "phase": PHASE_UNBOUNDED}
    cq = float(sigma_w2 * act.variance_map_slope(_q_eff(qs)))
    cs = c_star(act, sigma_w2, sigma_b2, q=qs, n_angle=n_angle)
    slope = chi if cs == 1.0 else _slope_c(act, sigma_w2, qs, cs, n_angle)
    phase = PHASE_CHAOTIC if chi > 1.0 else PHASE_ORDERED
    return {"q_star": qs, "c_star": cs, "chi_1": chi, "chi_q": cq, "xi_q": _xi(cq), "xi_c": _xi(slope),
            "phase": phase}


def edge_of_chaos_line(activation: str | Activation, sigma_b2: Any) -> dict[str, Array]:
    """The edge of chaos along ``sigma_b2``, and whether its ``q*`` attracts the variance map.

    Returns
    -------
    dict
        ``sigma_w2`` and ``q_star`` (:func:`critical_line`, NaN where there is
        none) and ``attracting`` (1 where ``q*`` attracts the variance map, 0
        where it repels it -- swish at small ``sigma_b2`` -- or there is no line).
    """
    act = _lookup(activation)
    sw, qs = critical_line(act, sigma_b2)
    with np.errstate(invalid="ignore"):
        slope = act.variance_map_slope(np.where(np.isfinite(qs), qs, 1.0))
        attr = np.where(np.isfinite(qs) & (qs > 0), (sw * slope < 1.0), True)
    return {"sigma_w2": sw, "q_star": qs, "attracting": np.where(np.isfinite(sw), attr, False).astype(np.int32)}


def eoc_asymptote(activation: str | Activation, sigma_w2: float, sigma_b2: float) -> float:
    """Predicted large-depth constant of ``1 - c_l`` on the edge of chaos.

    Smooth ``g``: ``delta' = delta - (sigma_w2 J'(1) / 2) delta^2 + ...`` with
    ``J'(1) = q* E[g''(sqrt(q*) Z)^2]``, so ``l (1 - c_l) -> 2 / (sigma_w2 q* E[g''^2])``.
    A positively homogeneous ``g`` whose slope jumps by ``Delta`` at 0 (relu:
    ``Delta = 1``) has ``J(1 - delta) = E[g'^2] - Delta^2 sqrt(2 delta) / (2 pi) + ...``,
    so on its edge of chaos (``sigma_w2 E[g'^2] = 1``)
    ``delta' = delta - B delta^(3/2)``, ``B = sqrt 2 Delta^2 / (3 pi E[g'^2])``, and
    ``l^2 (1 - c_l) -> 4 / B^2 = 18 pi^2 E[g'^2]^2 / Delta^4`` (``9 pi^2 / 2`` for relu).
    Returns NaN when ``g''`` is not available.
    """
    act = _lookup(activation)
    if act.positively_homogeneous:
        jump = float(act.dg(np.array(1.0)) - act.dg(np.array(-1.0)))
        if jump != 0.0:
            return 18.0 * np.pi**2 * float(act.slope_moment(1.0)) ** 2 / jump**4
    qs = q_star(act, sigma_w2, sigma_b2)
    d2 = float(act.curvature_moment(qs))
    if not np.isfinite(d2) or d2 <= 0 or not np.isfinite(qs) or qs <= 0:
        return float("nan")
    return 2.0 / (sigma_w2 * qs * d2)
