"""Closed forms of the Gaussian expectations of erf, relu and linear, and of probit mixtures.

For zero-mean Gaussian arguments given by their covariance entries
``(c11, c22, c12)`` (broadcastable arrays) every function here is exact up
to rounding.  Three families of kernels, for three kinds of use:

* the committee moments ``I2, J2, H2, I4`` and the helpers ``H2J2``,
  ``J2grad``, ``D2`` (see :class:`phasekit.core.activations.Activation`);
* the kernels of signal propagation, taken in the variance ``q`` and in
  ``delta = 1 - c`` so that correlations near 1 keep their precision:
  ``variance_map`` ``V(q) = E[g(sqrt(q) Z)^2]``, ``variance_map_slope`` ``dV/dq``,
  ``slope_moment`` ``E[g'^2]``, ``curvature_moment`` ``E[g''^2]``,
  ``correlation_kernel`` ``E[g(u) g(v)]`` at variances ``q1, q2`` and
  correlation ``c``, ``slope_correlation_kernel`` ``J = E[g'(u) g'(v)]`` at
  variance ``q`` and correlation ``1 - delta``, ``delta_kernel``
  ``W(q, delta) = int_{1-delta}^1 J(s) ds``;
* ``relu_moments`` ``(E[g(u) relu(v)], E[g''(u) relu(v)], E[g'(u) step(v)])``,
  the student-teacher kernels of a two-layer network with a ReLU teacher.

ReLU: one set of arc-cosine kernels
-----------------------------------
With ``theta`` the angle between the two arguments (``cos theta = rho``), the
arc-cosine kernels are ``E[step step] = (pi - theta) / (2 pi)``,
``E[relu relu] = sqrt(c11 c22) (sin theta + (pi - theta) cos theta) / (2 pi)``
and ``E[delta(a) relu(b)] = sqrt(det) / (2 pi c11)``.  The angle comes from the
covariance entries as ``phi = pi - theta = atan2(sqrt(det), -c12)`` with the
determinant formed without cancellation (accurate for nearly collinear
arguments, where ``arccos(rho)`` is off by ``~1e-8``), or from ``delta = 1 - c`` as
``theta = 2 asin(sqrt(delta / 2))``; ``sin t - t cos t`` (which cancels for
small ``t``) is summed as its Taylor series.  I4 goes through the 4-variate
orthant integrals of :mod:`phasekit.core.orthant`.

erf
---
phasekit's erf is ``g(x) = erf(x / sqrt 2)``: ``I2 = (2/pi) asin(c12 / sqrt((1 + c11)(1 + c22)))``
and its relatives (Saad and Solla 1995); at variance ``q``,
``V(q) = (2/pi) asin(q / (1 + q))``, ``E[g'^2] = (2/pi) / sqrt(1 + 2 q)``, and
``W = (2 / (pi q)) (asin a - asin(a c))``, ``a = q / (1 + q)``, the difference of
arcsines taken as ``asin(a (1 - c^2) / (sqrt(1 - a^2 c^2) + c sqrt(1 - a^2)))``
for ``c >= 0`` with ``1 - c^2 = delta (2 - delta)``.

Probit mixtures
---------------
``g(x) = mean + amp sum_q w_q (Phi(x / omega_q) - 1/2)`` (:class:`ProbitMixture`):
every pair kernel, derivatives of any order included, is an arcsine or a
power of ``(omega_q^2 + c11)(omega_r^2 + c22) - c12^2``.  Exact for erf (one
term); the logistic sigmoid and tanh are represented to ~2e-9 by the
16-point Gauss rule of the logistic distribution as a Gaussian scale mixture.

The functions ``g``, ``g'``, ``g''`` of the built-in activations close the module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from .orthant import _CoincidencePlan as relu_I4_coinciding
from .orthant import _relu_I4_entries as relu_I4_entries
from .rules import logistic_scale_rule

__all__ = ["ERF_FORMS", "LINEAR_FORMS", "RELU_FORMS", "ProbitMixture", "erf_I4_blocks", "erf_mixture",
           "logistic_mixture", "relu_D2", "relu_H2", "relu_I2", "relu_I4", "relu_J2", "relu_J2grad", "tanh_mixture"]


Array = np.ndarray


_2_PI = 2.0 / np.pi


_TWO_PI = 2.0 * np.pi


_TINY = np.finfo(float).tiny


# --- erf: the committee moments ----------------------------------------------------------

def _clip_unit(x: Array) -> Array:
    """Rounding overshoots of ``|x| > 1`` clipped; complex ``x`` (a complex-step derivative) passes unchanged."""
    return x if np.iscomplexobj(x) else np.clip(x, -1.0, 1.0)


def erf_I2(c11: Array, c22: Array, c12: Array) -> Array:
    return _2_PI * np.arcsin(_clip_unit(c12 / np.sqrt((1.0 + c11) * (1.0 + c22))))


def erf_J2(c11: Array, c22: Array, c12: Array) -> Array:
    return _2_PI / np.sqrt((1.0 + c11) * (1.0 + c22) - c12 * c12)


def erf_H2(c11: Array, c22: Array, c12: Array) -> Array:
    a11 = 1.0 + c11
    return -_2_PI * c12 / (a11 * np.sqrt(a11 * (1.0 + c22) - c12 * c12))


def erf_H2J2(c11: Array, c22: Array, c12: Array) -> tuple[Array, Array]:
    a11 = 1.0 + c11
    j2 = _2_PI / np.sqrt(a11 * (1.0 + c22) - c12 * c12)
    return (-c12 / a11) * j2, j2


def erf_J2grad(c11: Array, c22: Array, c12: Array) -> tuple[Array, Array, Array, Array]:
    # J2 = (2/pi) lam^(-1/2), lam = (1 + c11)(1 + c22) - c12^2; Price's theorem gives
    # E[g''(a) g''(b)] = dJ2/dc12 and E[g'''(a) g'(b)] = 2 dJ2/dc11.
    a11 = 1.0 + c11
    a22 = 1.0 + c22
    inv = 1.0 / (a11 * a22 - c12 * c12)
    j2 = _2_PI * np.sqrt(inv)
    j3 = j2 * inv
    return j2, c12 * j3, -a22 * j3, -a11 * j3


def erf_I4(c11, c22, c33, c44, c12, c13, c14, c23, c24, c34):
    a11 = 1.0 + c11
    a22 = 1.0 + c22
    lam4 = a11 * a22 - c12 * c12
    lam0 = lam4 * c34 - c23 * c24 * a11 - c13 * c14 * a22 + c12 * (c13 * c24 + c14 * c23)
    lam1 = lam4 * (1.0 + c33) - c23 * c23 * a11 - c13 * c13 * a22 + 2.0 * c12 * c13 * c23
    lam2 = lam4 * (1.0 + c44) - c24 * c24 * a11 - c14 * c14 * a22 + 2.0 * c12 * c14 * c24
    ratio = _clip_unit(lam0 / np.sqrt(lam1 * lam2))
    return (4.0 / np.pi**2) / np.sqrt(lam4) * np.arcsin(ratio)


def erf_I4_blocks(ii, kk, ik, uu, iu, ku, uw, pu, pw):
    """erf's ``I4`` of the blocks ``(x_i, x_k, u, w)`` of student pairs ``b`` and field pairs ``p``, shape ``(b, p, ...)``.

    ``ii, kk, ik`` ``(b, ...)``: ``Var x_i``, ``Var x_k``, ``Cov(x_i, x_k)``;
    ``uu`` ``(L, ...)``: the fields' variances; ``iu, ku`` ``(b, L, ...)``:
    ``Cov(x_i, u)``, ``Cov(x_k, u)`` for every field; ``uw`` ``(p, ...)``:
    ``Cov(u, w)`` of the field pairs ``(pu[p], pw[p])``.  The determinant of
    ``(x_i, x_k, u)`` is formed once per field and taken for both ``u`` and
    ``w``: the same operations as the block-by-block closed form (``I4``),
    so the same numbers, in about half as many array operations.
    """
    a11 = 1.0 + ii[:, None]
    a22 = 1.0 + kk[:, None]
    c12 = ik[:, None]
    lam4 = a11 * a22 - c12 * c12
    side = lam4 * (1.0 + uu[None]) - ku * ku * a11 - iu * iu * a22 + 2.0 * c12 * iu * ku  # lam1 of every field
    c13, c14, c23, c24 = iu[:, pu], iu[:, pw], ku[:, pu], ku[:, pw]
    lam0 = lam4 * uw[None] - c23 * c24 * a11 - c13 * c14 * a22 + c12 * (c13 * c24 + c14 * c23)
    ratio = np.minimum(np.maximum(lam0 / np.sqrt(side[:, pu] * side[:, pw]), -1.0), 1.0)  # np.clip, cheaper
    return (4.0 / np.pi**2) / np.sqrt(lam4) * np.arcsin(ratio)


# --- relu: the arc-cosine kernels ----------------------------------------------------------

def _two_product(a: Array, b: Array) -> tuple[Array, Array]:
    """``a b = p + e`` exactly (Dekker's product with Veltkamp's splitting; no FMA needed)."""
    p = a * b
    t = 134217729.0 * a  # 2^27 + 1
    a_hi = t - (t - a)
    a_lo = a - a_hi
    t = 134217729.0 * b
    b_hi = t - (t - b)
    b_lo = b - b_hi
    return p, ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


def _det2(c11: Array, c22: Array, c12: Array) -> Array:
    """``c11 c22 - c12^2`` to a few ulps of the result, clipped at 0.

    The two products are formed exactly, so a nearly collinear pair (``rho``
    close to 1) keeps its small determinant accurate.
    """
    p, e = _two_product(c11, c22)
    q, f = _two_product(c12, c12)
    return np.clip((p - q) + (e - f), 0.0, None)


def _relu_angles(c11: Array, c22: Array, c12: Array) -> tuple[Array, Array]:
    """``sqrt(det)`` and ``phi = pi - theta``, ``theta = arccos(rho)`` the angle between the arguments.

    With the determinant formed without cancellation, ``atan2`` keeps the
    angles accurate where ``arcsin(rho)`` is not: near ``rho = +-1`` an error
    of one ulp in ``rho`` moves ``arcsin`` by ``~1e-8``.
    """
    sdet = np.sqrt(_det2(c11, c22, c12))
    return sdet, np.arctan2(sdet, -c12)


# Taylor coefficients of sin(t) - t cos(t) = sum_k (-1)^(k+1) 2k t^(2k+1) / (2k+1)!, k >= 1,
# as a polynomial in t^2 (times t^3), highest first; 11 terms reach 1e-17 relative for t <= 1.
_SIN_TCOS = np.array([(-1.0) ** (k + 1) * 2 * k / float(np.prod(np.arange(1.0, 2 * k + 2)))
                      for k in range(11, 0, -1)])


def _sin_minus_tcos(t: Array) -> Array:
    """``sin t - t cos t`` for ``0 <= t <= pi``; a series below ``t = 1``, where the difference cancels."""
    t = np.asarray(t, dtype=float)
    ts = np.minimum(t, 1.0)
    series = ts**3 * np.polyval(_SIN_TCOS, ts * ts)
    return np.where(t < 1.0, series, np.sin(t) - t * np.cos(t))


def relu_I2(c11: Array, c22: Array, c12: Array) -> Array:
    # Arc-cosine kernel sqrt(c11 c22) (sin theta + (pi - theta) cos theta) / (2 pi)
    # = (sqrt(det) + c12 phi) / (2 pi); for c12 < 0 the two terms cancel and the
    # form sqrt(c11 c22) (sin phi - phi cos phi) / (2 pi) is used.
    sdet, phi = _relu_angles(c11, c22, c12)
    direct = sdet + c12 * phi
    anti = np.sqrt(c11 * c22) * _sin_minus_tcos(phi)
    return np.where((c12 < 0) & (phi < 1.0), anti, direct) / (2.0 * np.pi)


def relu_J2(c11: Array, c22: Array, c12: Array) -> Array:
    # Orthant probability 1/4 + arcsin(rho) / (2 pi) = phi / (2 pi).
    return _relu_angles(c11, c22, c12)[1] / (2.0 * np.pi)


def relu_H2(c11: Array, c22: Array, c12: Array) -> Array:
    # E[delta(a) relu(b)] = phi(0; C_aa) E[relu(b) | a = 0]; 0 for a zero-variance a (det = 0 there).
    return np.sqrt(_det2(c11, c22, c12)) / (2.0 * np.pi * np.maximum(c11, _TINY))


def relu_J2grad(c11: Array, c22: Array, c12: Array) -> tuple[Array, Array, Array, Array]:
    # Price's theorem: d/dc12 E[theta theta] = E[delta(a) delta(b)] = 1 / (2 pi sqrt(det)),
    # 2 d/dc11 E[theta theta] = E[delta'(a) theta(b)] = -(c12 / c11) / (2 pi sqrt(det)).
    sdet, phi = _relu_angles(c11, c22, c12)
    phi2 = 1.0 / (2.0 * np.pi * sdet)
    return phi / (2.0 * np.pi), phi2, -(c12 / c11) * phi2, -(c12 / c22) * phi2


def relu_D2(c22: Array, dq: Array, dr: Array) -> Array:
    """``E[(relu(a) - relu(b))^2]`` for ``C_aa = c22 + dq``, ``C_ab = c22 + dr``, ``C_bb = c22``.

    Accurate to a few ulps of the result when ``a`` is close to ``b``, given
    ``dq`` and ``dr`` exactly (differences of nearby floats are):
    ``(sqrt C_aa - sqrt C_bb)^2 / 2 + 2 sqrt(C_aa C_bb) (1/2 - J(theta))``,
    ``J(theta) = (sin theta + (pi - theta) cos theta) / (2 pi)``, with
    ``det = C_aa C_bb - C_ab^2 = c22 (dq - 2 dr) - dr^2`` free of the ``c22^2``
    cancellation and ``2 pi (1/2 - J) = 2 pi sin^2(theta/2) - (sin theta - theta cos theta)``.
    """
    c11 = c22 + dq
    sdet = np.sqrt(np.clip(c22 * (dq - 2.0 * dr) - dr * dr, 0.0, None))
    theta = np.arctan2(sdet, c22 + dr)
    half_minus_j = (2.0 * np.pi * np.sin(0.5 * theta) ** 2 - _sin_minus_tcos(theta)) / (2.0 * np.pi)
    dsq = dq / (np.sqrt(c11) + np.sqrt(c22))
    return 0.5 * dsq * dsq + 2.0 * np.sqrt(c11 * c22) * half_minus_j


def relu_I4(*entries: Array) -> Array:
    # Entries in the order of erf_I4: the four variances, then the covariances
    # c12, c13, c14, c23, c24, c34 (the pair order of core.orthant).
    e = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in entries))
    return relu_I4_entries(np.stack(e[:4], -1), np.stack(e[4:], -1))


def _relu_theta(delta: Array) -> Array:
    """The angle ``theta = arccos(1 - delta) = 2 asin(sqrt(delta / 2))`` without cancellation."""
    return 2.0 * np.arcsin(np.sqrt(np.clip(0.5 * np.asarray(delta, dtype=float), 0.0, 1.0)))


def _relu_moments(c11: Array, c22: Array, c12: Array) -> tuple[Array, Array, Array]:
    return relu_I2(c11, c22, c12), relu_H2(c11, c22, c12), relu_J2(c11, c22, c12)


def _relu_correlation_kernel(q1: Array, q2: Array, c: Array) -> Array:
    q1, q2, c = (np.asarray(v, dtype=float) for v in (q1, q2, c))
    return np.sqrt(q1 * q2) * relu_I2(1.0, 1.0, np.clip(c, -1.0, 1.0))


def _relu_slope_correlation_kernel(q: Array, delta: Array) -> Array:
    theta = _relu_theta(delta)
    return np.broadcast_to((np.pi - theta) / _TWO_PI, np.broadcast_shapes(np.shape(q), theta.shape))


def _relu_delta_kernel(q: Array, delta: Array) -> Array:
    # W = int_{1-delta}^1 J = delta / 2 - (sin theta - theta cos theta) / (2 pi)
    delta = np.asarray(delta, dtype=float)
    out = 0.5 * delta - _sin_minus_tcos(_relu_theta(delta)) / _TWO_PI
    return np.broadcast_to(out, np.broadcast_shapes(np.shape(q), delta.shape))


def _constant(value: float):
    def f(q: Array) -> Array:
        return np.full(np.shape(q), value)

    return f


RELU_FORMS = {
    "I2": relu_I2, "J2": relu_J2, "H2": relu_H2, "I4": relu_I4, "J2grad": relu_J2grad, "D2": relu_D2,
    "I4_entries": relu_I4_entries, "I4_coinciding": relu_I4_coinciding,
    "relu_moments": _relu_moments,
    "variance_map": lambda q: 0.5 * np.asarray(q, dtype=float),
    "variance_map_slope": _constant(0.5),
    "slope_moment": _constant(0.5),
    "curvature_moment": _constant(np.nan),  # g'' is a delta function
    "correlation_kernel": _relu_correlation_kernel,
    "slope_correlation_kernel": _relu_slope_correlation_kernel,
    "delta_kernel": _relu_delta_kernel,
}


# --- erf: the propagation kernels ----------------------------------------------------------

def _erf_variance_map(q: Array) -> Array:
    q = np.asarray(q, dtype=float)
    return _2_PI * np.arcsin(q / (1.0 + q))


def _erf_slope_moment(q: Array) -> Array:
    q = np.asarray(q, dtype=float)
    return _2_PI / np.sqrt(1.0 + 2.0 * q)


def _erf_variance_map_slope(q: Array) -> Array:
    q = np.asarray(q, dtype=float)
    return _2_PI / ((1.0 + q) * np.sqrt(1.0 + 2.0 * q))


def _erf_curvature_moment(q: Array) -> Array:
    # E[g''^2] with g'' = -x sqrt(2/pi) exp(-x^2/2): (2/pi) q / (1 + 2q)^(3/2).
    q = np.asarray(q, dtype=float)
    return _2_PI * q / (1.0 + 2.0 * q) ** 1.5


def _erf_correlation_kernel(q1: Array, q2: Array, c: Array) -> Array:
    q1, q2, c = (np.asarray(v, dtype=float) for v in (q1, q2, c))
    x = c * np.sqrt(q1 * q2) / np.sqrt((1.0 + q1) * (1.0 + q2))
    return _2_PI * np.arcsin(np.clip(x, -1.0, 1.0))


def _erf_slope_correlation_kernel(q: Array, delta: Array) -> Array:
    q, delta = (np.asarray(v, dtype=float) for v in (q, delta))
    # (1+q)^2 - q^2 s^2 = 1 + 2q + q^2 (1 - s^2), 1 - s^2 = delta (2 - delta)
    return _2_PI / np.sqrt(1.0 + 2.0 * q + q * q * delta * (2.0 - delta))


def _erf_delta_kernel(q: Array, delta: Array) -> Array:
    q, delta = np.broadcast_arrays(np.asarray(q, float), np.asarray(delta, float))
    a = q / (1.0 + q)
    c = 1.0 - delta
    one_m_c2 = delta * (2.0 - delta)
    sa = np.sqrt(1.0 + 2.0 * q) / (1.0 + q)                 # sqrt(1 - a^2)
    sac = np.sqrt(sa * sa + a * a * one_m_c2)               # sqrt(1 - a^2 c^2)
    with np.errstate(invalid="ignore", divide="ignore"):
        # asin a - asin(a c) = asin(a sqrt(1 - a^2 c^2) - a c sqrt(1 - a^2)) for c >= 0
        inner = a * one_m_c2 / (sac + c * sa)
        diff_pos = np.arcsin(np.clip(inner, -1.0, 1.0))
        diff_neg = np.arcsin(a) - np.arcsin(a * c)  # c < 0: no cancellation
        out = _2_PI * np.where(c >= 0, diff_pos, diff_neg) / q
    # q -> 0 limit: J -> 2/pi everywhere, so W -> (2/pi) delta.
    return np.where(q > 0, out, _2_PI * delta)


ERF_FORMS = {
    "I2": erf_I2, "J2": erf_J2, "H2": erf_H2, "I4": erf_I4, "H2J2": erf_H2J2, "J2grad": erf_J2grad,
    "I4_blocks": erf_I4_blocks,
    "variance_map": _erf_variance_map,
    "variance_map_slope": _erf_variance_map_slope,
    "slope_moment": _erf_slope_moment,
    "curvature_moment": _erf_curvature_moment,
    "correlation_kernel": _erf_correlation_kernel,
    "slope_correlation_kernel": _erf_slope_correlation_kernel,
    "delta_kernel": _erf_delta_kernel,
}


# --- linear: polynomial moments ------------------------------------------------------------

def _shape(*c: Array) -> tuple[int, ...]:
    return np.broadcast_shapes(*(np.shape(x) for x in c))


def _zeros(*c: Array) -> Array:
    return np.zeros(_shape(*c))


def _ones(*c: Array) -> Array:
    return np.ones(_shape(*c))


LINEAR_FORMS = {
    "I2": lambda c11, c22, c12: c12 + 0.0 * (c11 + c22),
    "J2": _ones,
    "H2": _zeros,
    "I4": lambda *c: np.broadcast_arrays(*c)[-1] + 0.0,
    "J2grad": lambda *c: (_ones(*c), _zeros(*c), _zeros(*c), _zeros(*c)),
    # Stein: E[u relu(v)] = c12 P(v > 0) = c12 / 2
    "relu_moments": lambda c11, c22, c12: (0.5 * (c12 + 0.0 * (c11 + c22)), _zeros(c11, c22, c12),
                                           0.5 * _ones(c11, c22, c12)),
    "variance_map": lambda q: np.asarray(q, dtype=float),
    "variance_map_slope": _constant(1.0),
    "slope_moment": _constant(1.0),
    "curvature_moment": _constant(0.0),
    "correlation_kernel": lambda q1, q2, c: (np.asarray(c, dtype=float)
                                             * np.sqrt(np.asarray(q1, dtype=float) * np.asarray(q2, dtype=float))),
    "slope_correlation_kernel": _ones,
    "delta_kernel": lambda q, delta: np.broadcast_to(np.asarray(delta, dtype=float), _shape(q, delta)).copy(),
}


# --- probit mixtures -----------------------------------------------------------------------

# Pairs x mixture terms^2 of a work array (bounds memory for many pairs).
_CHUNK = 1 << 21


@dataclass(frozen=True, eq=False)
class ProbitMixture:
    """``g(x) = mean + amp sum_q w_q (Phi(x / omega_q) - 1/2)``, a mixture of Gaussian CDFs.

    Parameters
    ----------
    mean, amp : float
        Offset and amplitude.
    omega : ndarray, shape (Q,)
        Scales ``> 0``.
    weights : ndarray, shape (Q,)
        Weights ``> 0``.
    """

    mean: float
    amp: float
    omega: Array
    weights: Array

    def __post_init__(self) -> None:
        omega = np.array(self.omega, dtype=float).ravel()
        weights = np.array(self.weights, dtype=float).ravel()
        if omega.size < 1 or omega.shape != weights.shape:
            raise ValueError(f"omega, weights: need two arrays of the same length >= 1, got shapes "
                             f"{np.shape(self.omega)} and {np.shape(self.weights)}")
        if not (np.all(np.isfinite(omega)) and np.all(omega > 0) and np.all(np.isfinite(weights))
                and np.all(weights > 0)):
            raise ValueError("omega, weights: scales and weights must be finite and > 0")
        for name in ("mean", "amp"):
            try:
                value = float(getattr(self, name))
            except (TypeError, ValueError):
                value = float("nan")
            if not math.isfinite(value):
                raise ValueError(f"{name}: must be a finite number, got {getattr(self, name)!r}")
            object.__setattr__(self, name, value)
        omega.setflags(write=False)
        weights.setflags(write=False)
        object.__setattr__(self, "omega", omega)
        object.__setattr__(self, "weights", weights)

    def __call__(self, x: Array) -> Array:
        """``g(x)`` for an ndarray ``x``."""
        x = np.asarray(x, dtype=float)
        return self.mean + self.amp * ((special.ndtr(x[..., None] / self.omega) - 0.5) @ self.weights)

    def _terms(self, ca: Array, cb: Array, c: Array, third: bool) -> list[Array]:
        """``[asin-sum, J, H, Hb]`` or, with ``third``, ``[T, D]`` for 1-D entries."""
        o2 = self.omega**2
        W = np.outer(self.weights, self.weights) * (self.amp**2 / _TWO_PI)
        Q = len(self.omega)
        out = [np.empty(c.shape) for _ in range(2 if third else 4)]
        rows = max(1, _CHUNK // (Q * Q))
        for lo in range(0, c.shape[0], rows):
            sl = slice(lo, lo + rows)
            Aq = o2[None, :] + ca[sl, None]            # (n, Q)
            Ar = o2[None, :] + cb[sl, None]
            cc = c[sl, None, None]
            s2 = Aq[:, :, None] * Ar[:, None, :] - cc * cc   # > 0 because omega > 0
            if third:
                inv_s3 = s2**-1.5
                out[0][sl] = -np.einsum("nqr,nqr->n", inv_s3, W[None] * Ar[:, None, :])
                out[1][sl] = c[sl] * np.einsum("nqr,qr->n", inv_s3, W)
                continue
            s = np.sqrt(s2)
            out[0][sl] = np.einsum("nqr,qr->n", np.arctan2(cc, s), W)  # asin(c / sqrt(Aq Ar))
            inv_s = 1.0 / s
            out[1][sl] = np.einsum("nqr,qr->n", inv_s, W)
            out[2][sl] = -c[sl] * np.einsum("nqr,nqr->n", inv_s, W[None] / Aq[:, :, None])
            out[3][sl] = -c[sl] * np.einsum("nqr,nqr->n", inv_s, W[None] / Ar[:, None, :])
        return out

    def _broadcast(self, c11: Array, c22: Array, c12: Array, third: bool) -> list[Array]:
        c11, c22, c12 = np.broadcast_arrays(*(np.asarray(c, dtype=float) for c in (c11, c22, c12)))
        return [t.reshape(c12.shape) for t in self._terms(c11.ravel(), c22.ravel(), c12.ravel(), third)]

    def pair_moments(self, c11: Array, c22: Array, c12: Array) -> tuple[Array, Array, Array, Array]:
        """``E[g g]``, ``E[g'' g]``, ``E[g g'']``, ``E[g' g']`` for the covariance entries (broadcast)."""
        K, J, H, Hb = self._broadcast(c11, c22, c12, False)
        return K + self.mean**2, H, Hb, J

    def third_moments(self, c11: Array, c22: Array, c12: Array) -> tuple[Array, Array]:
        """``E[g'''(u) g'(v)]`` and ``E[g''(u) g''(v)]`` for the covariance entries (broadcast)."""
        T, D = self._broadcast(c11, c22, c12, True)
        return T, D

    def relu_moments(self, c11: Array, c22: Array, c12: Array) -> tuple[Array, Array, Array]:
        """``E[g(u) relu(v)]``, ``E[g''(u) relu(v)]``, ``E[g'(u) step(v)]``.

        From ``E[(Phi(u / w) - 1/2) relu(v)] = c12 / (2 sqrt(2 pi (w^2 + c11)))``;
        the ``c11``-dependent factors are formed at the shape of ``c11``.
        """
        c11, c22, c12 = (np.asarray(c, dtype=float) for c in (c11, c22, c12))
        Aq = self.omega ** 2 + c11[..., None]
        c0 = self.amp / (2.0 * math.sqrt(_TWO_PI))
        m1 = c0 * (Aq**-0.5 @ self.weights)
        m3 = c0 * (Aq**-1.5 @ self.weights)
        K = self.mean * np.sqrt(c22) / math.sqrt(_TWO_PI) + c12 * m1
        J = np.broadcast_to(m1, K.shape).copy()
        return K, -c12 * m3, J


def erf_mixture() -> ProbitMixture:
    """``erf(x / sqrt 2) = 2 Phi(x) - 1``: one term, exact."""
    return ProbitMixture(0.0, 2.0, np.array([1.0]), np.array([1.0]))


# Terms of the logistic scale mixture (the sigmoid to ~2e-9).
_LOGISTIC_NODES = 16


def logistic_mixture() -> ProbitMixture:
    """The logistic sigmoid as a 16-term probit mixture (to ~2e-9 uniformly)."""
    omega, w = logistic_scale_rule(_LOGISTIC_NODES)
    return ProbitMixture(0.5, 1.0, omega, w)


def tanh_mixture() -> ProbitMixture:
    """``tanh(x) = 2 sigmoid(2 x) - 1`` as a probit mixture (to ~4e-9)."""
    omega, w = logistic_scale_rule(_LOGISTIC_NODES)
    return ProbitMixture(0.0, 2.0, omega / 2.0, w)


# --- the built-in activations: g and its derivatives -----------------------------------------

def erf(x: Array) -> Array:
    return special.erf(x / np.sqrt(2.0))


def erf_prime(x: Array) -> Array:
    return np.sqrt(2.0 / np.pi) * np.exp(-0.5 * x * x)


def erf_second(x: Array) -> Array:
    return -x * erf_prime(x)


def sigmoid(x: Array) -> Array:
    return special.expit(x)


def sigmoid_prime(x: Array) -> Array:
    s = special.expit(x)
    return s * (1.0 - s)


def sigmoid_second(x: Array) -> Array:
    s = special.expit(x)
    return s * (1.0 - s) * (1.0 - 2.0 * s)


def tanh_prime(x: Array) -> Array:
    return 1.0 - np.tanh(x) ** 2


def tanh_second(x: Array) -> Array:
    t = np.tanh(x)
    return -2.0 * t * (1.0 - t * t)


def elu(x: Array) -> Array:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))


def elu_prime(x: Array) -> Array:
    return np.where(x > 0, 1.0, np.exp(np.minimum(x, 0.0)))


def elu_second(x: Array) -> Array:
    return np.where(x > 0, 0.0, np.exp(np.minimum(x, 0.0)))


def swish(x: Array) -> Array:
    return x * special.expit(x)


def swish_prime(x: Array) -> Array:
    s = special.expit(x)
    return s + x * s * (1.0 - s)


def swish_second(x: Array) -> Array:
    s = special.expit(x)
    return s * (1.0 - s) * (2.0 + x * (1.0 - 2.0 * s))


def softplus(x: Array) -> Array:
    return np.logaddexp(0.0, x)
