"""Quadrature routes of the kernels an :class:`~phasekit.core.activations.Activation` carries.

Used by the Activation's methods when it has no closed form for a kernel
(see :mod:`phasekit.core.activations`).  Every function takes the activation
(its ``g``, ``dg``, ``d2g``) as first argument.

* propagation kernels at variance ``q`` and correlation ``c = 1 - delta``: the
  composite 1-D rule (~1e-14) and the polar 2-D rule (~1e-10) of
  :mod:`phasekit.core.rules`, with ``W(q, delta)`` by Gauss-Legendre over ``J``
  below ``delta = 1e-4`` and as ``E[(g(u) - g(v))^2] / (2 q)`` above;
* pair moments of two-layer networks: Gauss-Hermite on the Cholesky factor of
  each 2x2 covariance, ``g'''`` by central differences of ``d2g``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .rules import (
    gauss_hermite_pairs,
    gauss_legendre_interval,
    normal_composite_rule,
    normal_expectation,
    polar_pair_expectation,
    relu_conditional_expectations,
)

__all__ = ["correlation_kernel", "curvature_moment", "delta_kernel", "pair_moments", "relu_moments",
           "slope_correlation_kernel", "slope_moment", "third_moments", "variance_map", "variance_map_slope"]


Array = np.ndarray


# Below this delta, W integrates J over [1 - delta, 1] (see delta_kernel).
_DELTA_SWITCH = 1e-4


def variance_map(act: Any, q: Array) -> Array:
    """``V(q) = E[g(sqrt(q) Z)^2]``."""
    g = act.g
    return normal_expectation(lambda x: g(x) ** 2, q)


def slope_moment(act: Any, q: Array) -> Array:
    """``E[g'(sqrt(q) Z)^2]``."""
    dg = act.dg
    return normal_expectation(lambda x: dg(x) ** 2, q)


def variance_map_slope(act: Any, q: Array) -> Array:
    """``dV/dq = E[g'^2 + g g'']`` (Stein); without ``d2g`` as ``E[g g' Z] / sqrt(q)``."""
    g, dg, d2g = act.g, act.dg, act.d2g
    if d2g is not None:
        return normal_expectation(lambda x: dg(x) ** 2 + g(x) * d2g(x), q)
    q = np.asarray(q, dtype=float)
    z, w = normal_composite_rule()
    x = np.sqrt(q)[..., None] * z
    with np.errstate(invalid="ignore", divide="ignore"):
        return (g(x) * dg(x) * z) @ w / np.sqrt(q)


def curvature_moment(act: Any, q: Array) -> Array:
    """``E[g''(sqrt(q) Z)^2]``; NaN without ``d2g``."""
    if act.d2g is None:
        return np.full(np.shape(q), np.nan)
    d2g = act.d2g
    return normal_expectation(lambda x: d2g(x) ** 2, q)


def correlation_kernel(act: Any, q1: Array, q2: Array, c: Array, *, n_angle: int) -> Array:
    """``E[g(u) g(v)]`` at variances ``q1, q2`` and correlation ``c``."""
    c = np.asarray(c, dtype=float)
    return polar_pair_expectation(act.g, act.g, q1, q2, 1.0 - c, n_angle=n_angle)


def slope_correlation_kernel(act: Any, q: Array, delta: Array, *, n_angle: int) -> Array:
    """``J = E[g'(u) g'(v)]`` at variance ``q`` and correlation ``1 - delta``."""
    return polar_pair_expectation(act.dg, act.dg, q, q, delta, n_angle=n_angle)


def delta_kernel(act: Any, q: Array, delta: Array, *, n_angle: int, n_t: int) -> Array:
    """``W(q, delta) = int_{1-delta}^1 J(q, s) ds`` (see :meth:`Activation.delta_kernel`)."""
    q, delta = np.broadcast_arrays(np.asarray(q, float), np.asarray(delta, float))
    out = np.empty(q.shape)
    big = delta >= _DELTA_SWITCH
    if np.any(big):
        g = act.g
        with np.errstate(invalid="ignore", divide="ignore"):
            out[big] = polar_pair_expectation(g, g, q[big], q[big], delta[big], difference=True,
                                              n_angle=n_angle) / (2.0 * q[big])
    small = ~big
    if np.any(small):
        # t = tau^2 absorbs the sqrt(1 - s) behaviour of J when g' jumps (relu-like g).
        tau, wt = gauss_legendre_interval(0.0, 1.0, n_t)
        qs, ds = q[small], delta[small]
        Jt = act.slope_correlation_kernel(qs[:, None], ds[:, None] * tau * tau, n_angle=n_angle)
        out[small] = ds * (Jt @ (2.0 * tau * wt))
    return out


def derivative(act: Any, k: int) -> Callable[[Array], Array]:
    """``d2g`` (``k = 2``) or ``g'''`` by central differences of it (``k = 3``); ``ValueError`` without ``d2g``."""
    if act.d2g is None:
        raise ValueError(f"activation: {act.name!r} has no second derivative d2g, which the gradient needs")
    d2g = act.d2g
    if k == 2:
        return d2g
    return lambda x: (d2g(x + 1e-4) - d2g(x - 1e-4)) / 2e-4


def pair_moments(act: Any, c11: Array, c22: Array, c12: Array, *, nodes: int) -> tuple[Array, Array, Array, Array]:
    """``E[g g]``, ``E[g'' g]``, ``E[g g'']``, ``E[g' g']`` by Gauss-Hermite on the Cholesky factor."""
    g, dg, d2g = act.g, act.dg, derivative(act, 2)
    K, H, Hb, J = gauss_hermite_pairs(c11, c22, c12, [(g, g), (d2g, g), (g, d2g), (dg, dg)], nodes)
    return K, H, Hb, J


def third_moments(act: Any, c11: Array, c22: Array, c12: Array, *, nodes: int) -> tuple[Array, Array]:
    """``E[g''' g']`` and ``E[g'' g'']`` by Gauss-Hermite on the Cholesky factor."""
    d2g = derivative(act, 2)
    T, D = gauss_hermite_pairs(c11, c22, c12, [(derivative(act, 3), act.dg), (d2g, d2g)], nodes)
    return T, D


def relu_moments(act: Any, c11: Array, c22: Array, c12: Array, *, nodes: int) -> tuple[Array, Array, Array]:
    """``E[g relu]``, ``E[g'' relu]``, ``E[g' step]`` by ``2 nodes``-point Gauss-Hermite over ``u``."""
    (K, H), (J,) = relu_conditional_expectations(c11, c22, c12, [act.g, derivative(act, 2)], [act.dg], 2 * nodes)
    return K, H, J
