"""Signal propagation through deep random networks: order, chaos and their edge.

A fully connected network with weights ``W_ij ~ N(0, sigma_w2 / fan_in)`` and
biases ``b_i ~ N(0, sigma_b2)`` maps the pre-activation variance ``q`` and the
correlation ``c`` of two inputs from layer to layer (mean-field limit of wide
layers)::

    q'  = sigma_b2 + sigma_w2 V(q),               V(q) = E[g(sqrt(q) Z)^2]
    c'  = (sigma_b2 + sigma_w2 I(q1, q2, c)) / sqrt(q1' q2'),
                                                  I = E[g(u) g(v)],
    (u, v) ~ N(0, [[q1, c sqrt(q1 q2)], [c sqrt(q1 q2), q2]]).

At the fixed point ``q*`` of the variance map the slope of the correlation map
at ``c = 1`` is ``chi_1 = sigma_w2 E[g'(sqrt(q*) Z)^2]``: ``chi_1 < 1`` is the
ordered phase (``c -> 1``), ``chi_1 > 1`` the chaotic phase (``c -> c* < 1``),
``chi_1 = 1`` the edge of chaos (EOC).  Depth scales are ``xi = -1 / ln(slope)``.

Precision near ``c = 1``
------------------------
Writing ``delta = 1 - c`` and using Price's theorem
``dI/dc = q* J(c)`` with ``J(s) = E[g'(u) g'(v)]`` at variance ``q*`` and
correlation ``s``, together with ``q* - sigma_b2 = sigma_w2 V(q*)``, gives

    delta' = sigma_w2 W(q*, delta),   W(q, delta) = int_{1-delta}^{1} J(s) ds
                                                  = delta int_0^1 J(1 - delta t) dt,

an integral over an interval of length ``delta`` of a positive function: no
two nearly equal numbers are subtracted, ``delta = 0`` maps to 0 exactly and the
relative precision of ``delta`` is kept however small it is.  For quadrature
activations ``W`` is taken this way below ``delta = 1e-4``; above it as
``W = E[(g(u) - g(v))^2] / (2 q)`` (also a mean of non-negative numbers, since
``E[g(u)^2] = E[g(v)^2]``; one 2-D integral instead of several).  All 2-D
integrals use whitened polar coordinates ``u = sqrt(q) r cos(phi - psi)``,
``v = sqrt(q) r cos(phi + psi)``, ``psi = asin(sqrt(delta / 2))``, which need only
``delta`` (never ``1 - c``).
Every kernel comes from the activation (:class:`phasekit.Activation`:
:meth:`~phasekit.Activation.variance_map`, :meth:`~phasekit.Activation.delta_kernel`,
...), which has closed forms (:mod:`phasekit.core.closed_forms`) for

- ``relu``: with ``theta = arccos c = 2 asin(sqrt(delta/2))``,
  ``W = delta/2 - (sin theta - theta cos theta) / (2 pi)``, the bracket summed
  as its Taylor series for small ``theta`` (it is ``theta^3/3 - ...``);
- ``erf`` (phasekit's ``g(x) = erf(x / sqrt 2)``):
  ``W = (2 / (pi q)) (asin a - asin(a c))``, ``a = q / (1 + q)``, the difference
  of arcsines taken as ``asin(a (1 - c^2) / (sqrt(1 - a^2 c^2) + c sqrt(1 - a^2)))``
  for ``c >= 0`` with ``1 - c^2 = delta (2 - delta)``;
- ``linear``: ``W = delta``.

Closed forms and the edge of chaos
----------------------------------
``relu``: ``V = q/2``, ``E[g'^2] = 1/2``, so ``chi_1 = sigma_w2 / 2`` and the
EOC is the single point ``(sigma_b2, sigma_w2) = (0, 2)`` with any ``q*``.

``erf`` **with phasekit's scaling** ``g(x) = erf(x / sqrt 2)``:
``V(q) = (2/pi) asin(q / (1 + q))``, ``E[g'^2] = (2/pi) / sqrt(1 + 2 q)``.
Parameterised by ``q*`` the critical line is

    sigma_w2 = (pi / 2) sqrt(1 + 2 q*),
    sigma_b2 = q* - sqrt(1 + 2 q*) asin(q* / (1 + q*))   (= q*^3 / 3 + O(q*^4)),

starting at ``(0, pi/2)``.  It differs from the line quoted in the literature
for ``erf(x)`` without the ``1/sqrt 2``: since ``erf(x) = g(sqrt(2) x)``, rescaling
the pre-activations by ``sqrt 2`` maps a point ``(sigma_w2, sigma_b2)`` for
``erf(x)`` to ``(2 sigma_w2, 2 sigma_b2)`` here (e.g. ``pi/4`` there, ``pi/2`` here
at ``sigma_b2 = 0``).

Every other activation uses the activation's quadrature routes for these
kernels.  1-D expectations (``V``, ``E[g'^2]``, ``dV/dq``) use a composite
Gauss-Legendre rule split at 0 and refined geometrically towards 0, so that
kinks at the origin and the complex poles of tanh-like functions (which
approach the real axis like ``1/sqrt(q)``) are resolved: ~1e-14 accuracy.  2-D
expectations (the correlation map, ``J``, ``W``) use the polar rule of
:func:`phasekit.core.rules.polar_pair_expectation`, whose angular wedges end
on the lines ``u = 0`` and ``v = 0``.  Tensor Gauss-Hermite rules converge only
algebraically across kinks (elu's ``g'``: errors ~1e-3) and slowly for tanh at
variances of a few, too slowly for edge-of-chaos positions to 1e-8 or
correlation fixed points to 1e-10; 1-D and polar 2-D integrals are cheap
enough to do accurately.

Edge of chaos by parameterising the critical line
-------------------------------------------------
``chi_1 = 1`` and ``q* = sigma_b2 + sigma_w2 V(q*)`` give, for each ``q*``,
``sigma_w2 = 1 / E[g'(sqrt(q*) Z)^2]`` and ``sigma_b2 = B(q*) = q* - V(q*) /
E[g'^2]``.  :func:`edge_of_chaos` solves the 1-D equation ``B(q*) = sigma_b2``
(scan of ``q*`` on a log grid, then Brent), no 2-D search.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import optimize

from ..core.activations import Activation
from ..core.activations import activation as _lookup

Array = np.ndarray

__all__ = ['c_map', 'c_star', 'chi_1', 'chi_q', 'delta_map', 'q_map', 'q_star', 'xi_c', 'xi_q']


#: Phase codes of :func:`phasekit.propagation.phases.phase_point` (and of phase-diagram datasets).
#: The ordered phase: correlations go to 1 with depth (``chi_1 < 1``).
PHASE_ORDERED = 0


#: The chaotic phase: correlations go to ``c* < 1`` with depth (``chi_1 > 1``).
PHASE_CHAOTIC = 1


#: The variance map has no finite attracting fixed point (``q_l -> infinity``).
PHASE_UNBOUNDED = 2


_Q_MAX = 1e12          # beyond this a growing variance map counts as unbounded


_Q_SCAN_MIN = 1e-8     # smallest q* on the edge-of-chaos scan grid


def _q_eff(qs: float) -> float:
    """``q*`` clipped into (0, _Q_MAX]: one-sided limits at 0 (relu's g' jumps there) and infinity."""
    return float(min(max(qs, 1e-300), _Q_MAX))


def _check_nonneg(value: Any, name: str) -> Array:
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name}: must be finite and >= 0, got {value!r}")
    return arr


def _check_sw(sigma_w2: Any) -> Array:
    arr = np.asarray(sigma_w2, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"sigma_w2: must be finite and > 0, got {sigma_w2!r}")
    return arr


def _check_corr(c: Any, name: str = "c") -> Array:
    arr = np.asarray(c, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(np.abs(arr) > 1.0):
        raise ValueError(f"{name}: correlations must lie in [-1, 1], got {c!r}")
    return arr


def _scalar(x: Any, name: str) -> float:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 0:
        raise ValueError(f"{name}: expected a scalar, got shape {arr.shape}")
    return float(arr)


def q_map(activation: str | Activation, q: Any, sigma_w2: Any, sigma_b2: Any) -> Array:
    """One layer of the variance map ``q' = sigma_b2 + sigma_w2 E[g(sqrt(q) Z)^2]``.

    Parameters
    ----------
    activation : str or Activation
    q : array_like
        Pre-activation variance(s) of the layer, ``>= 0``.
    sigma_w2, sigma_b2 : array_like
        Weight variance (times fan-in) ``> 0`` and bias variance ``>= 0``; broadcast with ``q``.

    Returns
    -------
    ndarray
        ``q'`` with the broadcast shape.
    """
    q = _check_nonneg(q, "q")
    sw, sb = _check_sw(sigma_w2), _check_nonneg(sigma_b2, "sigma_b2")
    return sb + sw * _lookup(activation).variance_map(q)


def q_star(activation: str | Activation, sigma_w2: float, sigma_b2: float, *, q0: float = 1.0) -> float:
    """Fixed point of the variance map reached by iterating it from ``q0``.

    The map ``q -> sigma_b2 + sigma_w2 V(q)`` is increasing, so its iterates move
    monotonically to the nearest fixed point in the direction of
    ``F(q0) = sigma_b2 + sigma_w2 V(q0) - q0``; that root is bracketed on a
    geometric grid and refined with Brent's method (no slow iteration near
    marginal slopes).

    Parameters
    ----------
    activation : str or Activation
    sigma_w2 : float
        ``> 0``.
    sigma_b2 : float
        ``>= 0``.
    q0 : float
        Starting variance ``> 0`` (the input's ``|x|^2 / N``).  Only matters when the
        map has several attracting fixed points (or, for relu at ``(sigma_w2,
        sigma_b2) = (2, 0)``, where every ``q`` is fixed and ``q0`` is returned).

    Returns
    -------
    float
        ``q*``; ``inf`` when the iterates grow without bound (e.g. relu-like
        activations with ``sigma_w2 > 2``), 0 when they shrink to 0.
    """
    sw = float(_check_sw(_scalar(sigma_w2, "sigma_w2")))
    sb = float(_check_nonneg(_scalar(sigma_b2, "sigma_b2"), "sigma_b2"))
    q0 = _scalar(q0, "q0")
    if not (np.isfinite(q0) and q0 > 0):
        raise ValueError(f"q0: must be finite and > 0, got {q0!r}")
    act = _lookup(activation)

    def F(q: float) -> float:
        return float(sb + sw * act.variance_map(q) - q)

    f0 = F(q0)
    if f0 == 0.0:
        return q0
    if f0 > 0:
        lo = q0
        hi = q0 * 2.0
        while F(hi) > 0:
            lo, hi = hi, hi * 2.0
            if hi > _Q_MAX * max(1.0, q0):
                return float("inf")
        return optimize.brentq(F, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
    hi = q0
    lo = q0 / 2.0
    while F(lo) < 0:
        hi, lo = lo, lo / 2.0
        if lo < 1e-200:
            if F(0.0) <= 0:
                return 0.0
            lo = 0.0
            break
    return optimize.brentq(F, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)


def chi_1(activation: str | Activation, sigma_w2: float, sigma_b2: float, *, q0: float = 1.0) -> float:
    """Slope of the correlation map at ``c = 1``: ``sigma_w2 E[g'(sqrt(q*) Z)^2]``.

    Equal to ``sigma_w2 * J2([[q*, q*], [q*, q*]])``.  For unbounded ``q*`` the
    large-``q`` limit of ``E[g'^2]`` is used (evaluated at ``q = 1e12``); for
    ``q* = 0`` the limit ``q -> 0+`` (``g'(0)^2``, or 1/2 for relu-like kinks).
    """
    qs = q_star(activation, sigma_w2, sigma_b2, q0=q0)
    return float(sigma_w2 * _lookup(activation).slope_moment(_q_eff(qs)))


def chi_q(activation: str | Activation, sigma_w2: float, sigma_b2: float, *, q0: float = 1.0) -> float:
    """Slope of the variance map at ``q*``: ``sigma_w2 dV/dq = sigma_w2 E[g'^2 + g g'']``."""
    qs = q_star(activation, sigma_w2, sigma_b2, q0=q0)
    if not np.isfinite(qs):
        return float("nan")
    return float(sigma_w2 * _lookup(activation).variance_map_slope(_q_eff(qs)))


def c_map(
    activation: str | Activation,
    c: Any,
    sigma_w2: float,
    sigma_b2: float,
    *,
    q1: Any = None,
    q2: Any = None,
) -> Array:
    """One layer of the correlation map.

    ``c' = (sigma_b2 + sigma_w2 I2(C)) / sqrt(q1' q2')`` with
    ``C = [[q1, c sqrt(q1 q2)], [c sqrt(q1 q2), q2]]`` and ``q' = q_map(q)``.
    ``I2(C) = E[g(u) g(v)]`` is the activation's :meth:`~phasekit.Activation.correlation_kernel`
    (closed forms for relu, erf, linear; polar quadrature otherwise).  Near
    ``c = 1`` use :func:`delta_map`, which keeps the relative precision of ``1 - c``.

    Parameters
    ----------
    activation : str or Activation
    c : array_like
        Correlations in ``[-1, 1]``.
    sigma_w2, sigma_b2 : float
    q1, q2 : array_like, optional
        Variances of the two inputs; default ``q*``.

    Returns
    -------
    ndarray, shape of ``c`` (broadcast with ``q1, q2``)
    """
    c = _check_corr(c)
    sw = float(_check_sw(_scalar(sigma_w2, "sigma_w2")))
    sb = float(_check_nonneg(_scalar(sigma_b2, "sigma_b2"), "sigma_b2"))
    act = _lookup(activation)
    if q1 is None or q2 is None:
        qs = q_star(activation, sw, sb)
        if not np.isfinite(qs) or qs <= 0:
            raise ValueError(f"q1, q2: q* = {qs} is not finite and positive; pass the variances")
        q1 = qs if q1 is None else q1
        q2 = qs if q2 is None else q2
    q1 = _check_nonneg(q1, "q1")
    q2 = _check_nonneg(q2, "q2")
    num = sb + sw * act.correlation_kernel(q1, q2, c)
    den = np.sqrt((sb + sw * act.variance_map(q1)) * (sb + sw * act.variance_map(q2)))
    return num / den


def delta_map(activation: str | Activation, delta: Any, sigma_w2: float, sigma_b2: float,
              *, q: float | None = None) -> Array:
    """One layer of the map of ``delta = 1 - c`` at the variance fixed point.

    ``delta' = sigma_w2 int_{1-delta}^1 J(s) ds`` (see the module docstring): exact
    at the fixed point ``q*`` and free of cancellation, so ``delta`` keeps its
    relative precision down to the smallest doubles.

    Parameters
    ----------
    activation : str or Activation
    delta : array_like
        ``1 - c`` in ``[0, 2]``.
    sigma_w2, sigma_b2 : float
    q : float, optional
        The fixed point ``q*`` if already known.

    Returns
    -------
    ndarray, shape of ``delta``
    """
    delta = np.asarray(delta, dtype=float)
    if not np.all(np.isfinite(delta)) or np.any((delta < 0) | (delta > 2)):
        raise ValueError(f"delta: 1 - c must lie in [0, 2], got {delta!r}")
    sw = float(_check_sw(_scalar(sigma_w2, "sigma_w2")))
    qs = q_star(activation, sw, sigma_b2) if q is None else float(q)
    if not np.isfinite(qs) or qs <= 0:
        raise ValueError(f"q: q* = {qs} must be finite and positive for the correlation map")
    return sw * _lookup(activation).delta_kernel(qs, delta)


def c_star(activation: str | Activation, sigma_w2: float, sigma_b2: float, *,
           q: float | None = None, n_angle: int = 24) -> float:
    """Attracting fixed point of the correlation map at ``q*``.

    ``1`` in the ordered phase (``chi_1 <= 1``).  In the chaotic phase the
    smallest ``delta > 0`` with ``sigma_w2 W(q*, delta) = delta`` (grid scan in
    ``delta`` then Brent on the cancellation-free ``delta`` map).  NaN when
    ``q*`` is unbounded; 1 when ``q* = 0``.
    """
    sw = float(_check_sw(_scalar(sigma_w2, "sigma_w2")))
    qs = q_star(activation, sw, sigma_b2) if q is None else float(q)
    if not np.isfinite(qs):
        return float("nan")
    if qs == 0.0:
        return 1.0
    act = _lookup(activation)
    if sw * float(act.slope_moment(qs)) <= 1.0:
        return 1.0

    def G(d: float) -> float:
        return float(sw * act.delta_kernel(qs, d, n_angle=n_angle) / d - 1.0)

    # Coarse scan for the first sign change of G (G > 0 just above delta = 0 when chi_1 > 1).
    grid = np.array([0.125, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0])
    vals = sw * act.delta_kernel(qs, grid, n_angle=n_angle) / grid - 1.0
    # Within rounding of 0 counts as a root (odd g at sigma_b2 = 0: c* = 0 exactly, and G > 0
    # again on (1, 2), so a sign test alone could miss it).
    neg = np.nonzero(vals <= 1e-13)[0]
    if neg.size == 0:
        return -1.0
    j = int(neg[0])
    if abs(vals[j]) <= 1e-13:
        return float(1.0 - grid[j])
    if j == 0:
        hi = grid[0]
        lo = 0.5 * hi
        while G(lo) < 0:  # root below the first grid point: shrink towards 0
            hi, lo = lo, 0.5 * lo
            if lo < 1e-300:
                return 1.0
    else:
        lo, hi = grid[j - 1], grid[j]
    d = optimize.brentq(G, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
    return float(1.0 - d)


def _slope_c(act: Activation, sw: float, qs: float, cs: float, n_angle: int = 24) -> float:
    """Slope of the correlation map at ``c*``: ``sigma_w2 J(q*, c*)``."""
    return float(sw * act.slope_correlation_kernel(qs, 1.0 - cs, n_angle=n_angle))


def _xi(slope: float) -> float:
    if not np.isfinite(slope) or slope <= 0:
        return float("nan")
    if slope == 1.0:
        return float("inf")
    return float(-1.0 / np.log(slope))


def xi_q(activation: str | Activation, sigma_w2: float, sigma_b2: float) -> float:
    """Depth scale of the variance map, ``-1 / ln(chi_q)`` (layers)."""
    return _xi(chi_q(activation, sigma_w2, sigma_b2))


def xi_c(activation: str | Activation, sigma_w2: float, sigma_b2: float) -> float:
    """Depth scale of the correlation map, ``-1 / ln(sigma_w2 J(q*, c*))`` (layers).

    ``inf`` on the edge of chaos, where the slope at ``c* = 1`` is 1.
    """
    sw = float(_check_sw(_scalar(sigma_w2, "sigma_w2")))
    qs = q_star(activation, sw, sigma_b2)
    if not np.isfinite(qs):
        return float("nan")
    cs = c_star(activation, sw, sigma_b2, q=qs)
    act = _lookup(activation)
    slope = sw * float(act.slope_moment(_q_eff(qs))) if cs == 1.0 else _slope_c(act, sw, qs, cs)
    return _xi(slope)
