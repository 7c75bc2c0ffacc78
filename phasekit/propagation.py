"""Signal propagation through deep random networks: order, chaos and their edge.

A fully connected network with weights ``W_ij ~ N(0, sigma_w2 / fan_in)`` and
biases ``b_i ~ N(0, sigma_b2)`` maps the pre-activation variance ``q`` and the
correlation ``c`` of two inputs from layer to layer (mean-field limit of wide
layers, MODEL.md section 3):

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
Closed forms (see the helpers below) for

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

Every other activation uses quadrature of this module's own.  1-D
expectations (``V``, ``E[g'^2]``, ``dV/dq``) use a composite Gauss-Legendre rule
split at 0 and refined geometrically towards 0, so that kinks at the origin
and the complex poles of tanh-like functions (which approach the real axis
like ``1/sqrt(q)``) are resolved: ~1e-14 accuracy.  2-D expectations (the
correlation map, ``J``, ``W``) use the polar rule of :func:`_pair_expectation`,
whose angular wedges end on the lines ``u = 0`` and ``v = 0``.  The registry's
tensor Gauss-Hermite rules (used by ``Activation.I2``) converge only
algebraically across kinks (elu's ``g'``: errors ~1e-3) and slowly for tanh at
variances of a few, too slowly for edge-of-chaos positions to 1e-8 or
correlation fixed points to 1e-10; 1-D and polar 2-D integrals are cheap enough
to do accurately here.

Edge of chaos by parameterising the critical line
-------------------------------------------------
``chi_1 = 1`` and ``q* = sigma_b2 + sigma_w2 V(q*)`` give, for each ``q*``,
``sigma_w2 = 1 / E[g'(sqrt(q*) Z)^2]`` and ``sigma_b2 = B(q*) = q* - V(q*) /
E[g'^2]``.  :func:`edge_of_chaos` solves the 1-D equation ``B(q*) = sigma_b2``
(scan of ``q*`` on a log grid, then Brent), no 2-D search.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import xarray as xr
from scipy import optimize

from .activations import Activation, activation as _lookup
from .parallel import parallel_map
from .provenance import provenance_attrs

__all__ = [
    "q_map",
    "q_star",
    "chi_1",
    "chi_q",
    "c_map",
    "delta_map",
    "c_star",
    "xi_q",
    "xi_c",
    "edge_of_chaos",
    "critical_line",
    "phase_diagram",
    "correlation_depth_profile",
    "eoc_asymptote",
    "PHASE_ORDERED",
    "PHASE_CHAOTIC",
    "PHASE_UNBOUNDED",
]

Array = np.ndarray

#: Phase codes stored in :func:`phase_diagram` datasets.
PHASE_ORDERED = 0
PHASE_CHAOTIC = 1
#: The variance map has no finite attracting fixed point (``q_l -> infinity``).
PHASE_UNBOUNDED = 2

_Q_MAX = 1e12          # beyond this a growing variance map counts as unbounded
_Q_SCAN_MIN = 1e-8     # smallest q* on the edge-of-chaos scan grid
_DELTA_SWITCH = 1e-4   # below: W by integrating J over [1 - delta, 1]; above: E[(g(u)-g(v))^2]


# --- quadrature rules ------------------------------------------------------------

@lru_cache(maxsize=None)
def _rule_1d(n_gl: int = 16, z_max: float = 10.0, levels: int = 24) -> tuple[Array, Array]:
    """Nodes and weights for ``E[f(Z)]``, ``Z ~ N(0, 1)``, by composite Gauss-Legendre.

    Panels on ``[0, z_max]`` (mirrored to the negative half): uniform of width
    1/4 away from 0, halving towards 0 over ``levels`` levels.  Splitting at 0
    makes kinks of ``g`` at the origin harmless; the geometric panels keep
    Gauss-Legendre converging geometrically for tanh-like ``g`` whose complex
    poles approach the real axis like ``1/sqrt(q)`` at large variance ``q``.
    """
    width = 0.25
    edges = np.concatenate([
        [0.0],
        width * 2.0 ** -np.arange(levels, 0, -1),
        np.arange(1, int(round(z_max / width)) + 1) * width,
    ])
    x, w = np.polynomial.legendre.leggauss(n_gl)
    a, b = edges[:-1, None], edges[1:, None]
    z = (0.5 * (b - a) * x + 0.5 * (a + b)).ravel()
    wz = (0.5 * (b - a) * w).ravel() * np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
    nodes = np.concatenate([-z[::-1], z])
    weights = np.concatenate([wz[::-1], wz])
    nodes.setflags(write=False)
    weights.setflags(write=False)
    return nodes, weights


@lru_cache(maxsize=None)
def _rule_radial(n_gl: int = 8, width: float = 0.5, r_max: float = 9.5,
                 levels: int = 12) -> tuple[Array, Array]:
    """Radial nodes and weights for ``int_0^inf f(r) r exp(-r^2/2) dr`` (the 2-D Gaussian).

    Composite Gauss-Legendre, uniform panels of ``width`` refined geometrically
    towards ``r = 0`` (where the features of ``g(sqrt(q) r cos(.))`` sit at large ``q``).
    """
    edges = np.concatenate([
        [0.0],
        width * 2.0 ** -np.arange(levels, 0, -1),
        np.arange(1, int(round(r_max / width)) + 1) * width,
    ])
    x, w = np.polynomial.legendre.leggauss(n_gl)
    a, b = edges[:-1, None], edges[1:, None]
    r = (0.5 * (b - a) * x + 0.5 * (a + b)).ravel()
    wr = (0.5 * (b - a) * w).ravel() * r * np.exp(-0.5 * r * r)
    r.setflags(write=False)
    wr.setflags(write=False)
    return r, wr


@lru_cache(maxsize=None)
def _rule_gl(m: int) -> tuple[Array, Array]:
    """Gauss-Legendre nodes and weights on [-1, 1]."""
    x, w = np.polynomial.legendre.leggauss(m)
    x.setflags(write=False)
    w.setflags(write=False)
    return x, w


@lru_cache(maxsize=None)
def _rule_gl01(m: int) -> tuple[Array, Array]:
    """Gauss-Legendre on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(m)
    t, wt = 0.5 * (x + 1.0), 0.5 * w
    t.setflags(write=False)
    wt.setflags(write=False)
    return t, wt


# Batch elements per chunk of the 2-D rule (bounds the (batch, angles, radii) work array).
_PAIR_CHUNK = 32


def _pair_expectation(
    f: Callable[[Array], Array],
    h: Callable[[Array], Array],
    q1: Array,
    q2: Array,
    delta: Array,
    *,
    difference: bool = False,
    n_angle: int = 24,
) -> Array:
    """``E[f(u) h(v)]`` (or ``E[(f(u) - h(v))^2]``) for Gaussian ``(u, v)``.

    ``Var u = q1``, ``Var v = q2``, correlation ``c = 1 - delta``.  In whitened
    polar coordinates ``u = sqrt(q1) r cos(phi - psi)``, ``v = sqrt(q2) r cos(phi + psi)``
    with ``psi = asin(sqrt(delta / 2))`` (so ``cos 2 psi = c``; ``psi`` comes from
    ``delta`` without cancellation).  The lines ``u = 0`` and ``v = 0`` are the
    rays ``phi = +-pi/2 +- psi``; splitting the angle there puts every kink or
    jump of ``f``, ``h`` at the origin (elu's ``g'``, relu-like functions) on
    wedge boundaries, where Gauss-Legendre in angle and composite Gauss-Legendre
    in radius (refined towards 0) converge fast.  Tensor Gauss-Hermite, by
    contrast, converges only algebraically across such kinks (error ~1e-3 for
    elu's ``E[g'g']``).  Accuracy ~1e-10 or better for the registered activations
    at variances up to ~20 (tested against adaptive quadrature).

    Shapes: ``q1, q2, delta`` broadcast to the batch shape of the result.
    """
    q1, q2, delta = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (q1, q2, delta)))
    shape = q1.shape
    q1f, q2f, df = q1.ravel(), q2.ravel(), delta.ravel()
    r, wr = _rule_radial()
    x, w = _rule_gl(n_angle)
    out = np.empty(q1f.size)
    for start in range(0, q1f.size, _PAIR_CHUNK):
        sl = slice(start, start + _PAIR_CHUNK)
        psi = np.arcsin(np.sqrt(np.clip(0.5 * df[sl], 0.0, 1.0)))[:, None]
        # wedge boundaries: -pi/2 + psi, pi/2 - psi, pi/2 + psi, 3pi/2 - psi, 3pi/2 + psi
        bounds = np.concatenate([
            -0.5 * np.pi + psi, 0.5 * np.pi - psi, 0.5 * np.pi + psi,
            1.5 * np.pi - psi, 1.5 * np.pi + psi], axis=1)
        lo, hi = bounds[:, :-1, None], bounds[:, 1:, None]
        phi = (0.5 * (hi - lo) * x + 0.5 * (hi + lo)).reshape(len(psi), -1)
        wphi = (0.5 * (hi - lo) * w).reshape(len(psi), -1) / (2.0 * np.pi)
        cu = np.sqrt(q1f[sl])[:, None] * np.cos(phi - psi)
        cv = np.sqrt(q2f[sl])[:, None] * np.cos(phi + psi)
        U = cu[:, :, None] * r
        V = cv[:, :, None] * r
        vals = (f(U) - h(V)) ** 2 if difference else f(U) * h(V)
        out[sl] = np.einsum("bar,ba,r->b", vals, wphi, wr)
    return out.reshape(shape)


def _expect_1d(f: Callable[[Array], Array], q: Array) -> Array:
    """``E[f(sqrt(q) Z)]`` for an array of variances ``q`` (shape preserved)."""
    q = np.asarray(q, dtype=float)
    z, w = _rule_1d()
    x = np.sqrt(q)[..., None] * z
    return f(x) @ w


# --- kernels: the Gaussian integrals the maps need ------------------------------

@dataclass(frozen=True, eq=False)
class _Kernel:
    """Gaussian integrals of one activation for the propagation maps.

    ``V(q) = E[g^2]``, ``D(q) = E[g'^2]``, ``dV(q) = dV/dq``,
    ``I(q1, q2, c) = E[g(u) g(v)]``, ``J(q, s) = E[g'(u) g'(v)]`` (equal variances),
    ``W(q, delta) = int_{1-delta}^1 J(q, s) ds``, ``d2(q) = E[g''^2]`` (or NaN).
    """

    act: Activation
    n_angle: int = 24
    n_t: int = 8

    def V(self, q: Array) -> Array:
        g = self.act.g
        return _expect_1d(lambda x: g(x) ** 2, q)

    def D(self, q: Array) -> Array:
        dg = self.act.dg
        return _expect_1d(lambda x: dg(x) ** 2, q)

    def dV(self, q: Array) -> Array:
        # d/dq E[g(sqrt q Z)^2] = E[g'^2 + g g''] (Stein); without g'' use E[g g' Z] / sqrt(q).
        g, dg, d2g = self.act.g, self.act.dg, self.act.d2g
        if d2g is not None:
            return _expect_1d(lambda x: dg(x) ** 2 + g(x) * d2g(x), q)
        q = np.asarray(q, dtype=float)
        z, w = _rule_1d()
        sq = np.sqrt(q)[..., None]
        x = sq * z
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (g(x) * dg(x) * z) @ w / np.sqrt(q)
        return out

    def d2(self, q: Array) -> Array:
        if self.act.d2g is None:
            return np.full(np.shape(q), np.nan)
        d2g = self.act.d2g
        return _expect_1d(lambda x: d2g(x) ** 2, q)

    def I(self, q1: Array, q2: Array, c: Array) -> Array:
        c = np.asarray(c, dtype=float)
        g = self.act.g
        return _pair_expectation(g, g, q1, q2, 1.0 - c, n_angle=self.n_angle)

    def J(self, q: Array, delta: Array) -> Array:
        """``E[g'(u) g'(v)]`` at variance ``q`` and correlation ``1 - delta``."""
        dg = self.act.dg
        return _pair_expectation(dg, dg, q, q, delta, n_angle=self.n_angle)

    def W(self, q: Array, delta: Array) -> Array:
        # delta >= _DELTA_SWITCH: W = E[(g(u) - g(v))^2] / (2 q) (a mean of squares, since
        #   E[g(u)^2] = E[g(v)^2] = V); the difference g(u) - g(v) costs ~eps / sqrt(delta)
        #   relative precision, harmless above the switch.
        # delta < _DELTA_SWITCH: W = delta int_0^1 J(1 - delta t) dt by Gauss-Legendre in
        #   sqrt(t) (J is smooth on so short an interval), exact to the last digit as delta -> 0.
        q, delta = np.broadcast_arrays(np.asarray(q, float), np.asarray(delta, float))
        out = np.empty(q.shape)
        big = delta >= _DELTA_SWITCH
        if np.any(big):
            g = self.act.g
            with np.errstate(invalid="ignore", divide="ignore"):
                out[big] = _pair_expectation(g, g, q[big], q[big], delta[big], difference=True,
                                             n_angle=self.n_angle) / (2.0 * q[big])
        small = ~big
        if np.any(small):
            # t = tau^2 absorbs the sqrt(1 - s) behaviour of J when g' jumps (relu-like g).
            tau, wt = _rule_gl01(self.n_t)
            qs, ds = q[small], delta[small]
            Jt = self.J(qs[:, None], ds[:, None] * tau * tau)
            out[small] = ds * (Jt @ (2.0 * tau * wt))
        return out


class _ReluKernel(_Kernel):
    def V(self, q):
        return 0.5 * np.asarray(q, dtype=float)

    def D(self, q):
        return np.full(np.shape(q), 0.5)

    def dV(self, q):
        return np.full(np.shape(q), 0.5)

    def d2(self, q):
        return np.full(np.shape(q), np.nan)  # g'' is a delta function

    def I(self, q1, q2, c):
        q1, q2, c = (np.asarray(v, dtype=float) for v in (q1, q2, c))
        c = np.clip(c, -1.0, 1.0)
        theta = np.arccos(c)
        return np.sqrt(q1 * q2) * (np.sin(theta) + (np.pi - theta) * c) / (2.0 * np.pi)

    def J(self, q, delta):
        delta = np.asarray(delta, dtype=float)
        theta = 2.0 * np.arcsin(np.sqrt(np.clip(0.5 * delta, 0.0, 1.0)))
        return np.broadcast_to((np.pi - theta) / (2.0 * np.pi), np.broadcast_shapes(np.shape(q), delta.shape))

    def W(self, q, delta):
        delta = np.asarray(delta, dtype=float)
        theta = 2.0 * np.arcsin(np.sqrt(np.clip(0.5 * delta, 0.0, 1.0)))
        out = 0.5 * delta - _sin_minus_theta_cos(theta) / (2.0 * np.pi)
        return np.broadcast_to(out, np.broadcast_shapes(np.shape(q), delta.shape))


def _sin_minus_theta_cos(theta: Array) -> Array:
    """``sin(theta) - theta cos(theta)`` without cancellation at small ``theta``.

    Series ``sum_{k>=1} (-1)^(k+1) 2k theta^(2k+1) / (2k+1)!`` below 1 (truncation
    after k = 10 leaves < 1e-22 relative), the direct formula above.
    """
    theta = np.asarray(theta, dtype=float)
    small = theta < 1.0
    ts = np.where(small, theta, 0.0)
    t2 = ts * ts
    # Horner on the series divided by theta^3.
    series = np.zeros_like(ts)
    for k in range(10, 0, -1):
        coef = (-1) ** (k + 1) * 2 * k / _factorial(2 * k + 1)
        series = series * t2 + coef
    # series currently holds sum coef_k t2^(k-1)
    small_val = series * ts**3
    big_val = np.sin(theta) - theta * np.cos(theta)
    return np.where(small, small_val, big_val)


@lru_cache(maxsize=None)
def _factorial(n: int) -> float:
    return float(np.prod(np.arange(1, n + 1, dtype=float)))


class _ErfKernel(_Kernel):
    # g(x) = erf(x / sqrt 2): E[g(u) g(v)] = (2/pi) asin(C12 / sqrt((1 + C11)(1 + C22))).
    def V(self, q):
        q = np.asarray(q, dtype=float)
        return (2.0 / np.pi) * np.arcsin(q / (1.0 + q))

    def D(self, q):
        q = np.asarray(q, dtype=float)
        return (2.0 / np.pi) / np.sqrt(1.0 + 2.0 * q)

    def dV(self, q):
        q = np.asarray(q, dtype=float)
        return (2.0 / np.pi) / ((1.0 + q) * np.sqrt(1.0 + 2.0 * q))

    def d2(self, q):
        # E[g''^2] with g'' = -x sqrt(2/pi) exp(-x^2/2): (2/pi) q / (1 + 2q)^(3/2).
        q = np.asarray(q, dtype=float)
        return (2.0 / np.pi) * q / (1.0 + 2.0 * q) ** 1.5

    def I(self, q1, q2, c):
        q1, q2, c = (np.asarray(v, dtype=float) for v in (q1, q2, c))
        x = c * np.sqrt(q1 * q2) / np.sqrt((1.0 + q1) * (1.0 + q2))
        return (2.0 / np.pi) * np.arcsin(np.clip(x, -1.0, 1.0))

    def J(self, q, delta):
        q, delta = (np.asarray(v, dtype=float) for v in (q, delta))
        # (1+q)^2 - q^2 s^2 = 1 + 2q + q^2 (1 - s^2), 1 - s^2 = delta (2 - delta)
        return (2.0 / np.pi) / np.sqrt(1.0 + 2.0 * q + q * q * delta * (2.0 - delta))

    def W(self, q, delta):
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
            out = (2.0 / np.pi) * np.where(c >= 0, diff_pos, diff_neg) / q
        # q -> 0 limit: J -> 2/pi everywhere, so W -> (2/pi) delta.
        return np.where(q > 0, out, (2.0 / np.pi) * delta)


class _LinearKernel(_Kernel):
    def V(self, q):
        return np.asarray(q, dtype=float)

    def D(self, q):
        return np.ones(np.shape(q))

    def dV(self, q):
        return np.ones(np.shape(q))

    def d2(self, q):
        return np.zeros(np.shape(q))

    def I(self, q1, q2, c):
        q1, q2, c = (np.asarray(v, dtype=float) for v in (q1, q2, c))
        return c * np.sqrt(q1 * q2)

    def J(self, q, delta):
        return np.ones(np.broadcast_shapes(np.shape(q), np.shape(delta)))

    def W(self, q, delta):
        delta = np.asarray(delta, dtype=float)
        return np.broadcast_to(delta, np.broadcast_shapes(np.shape(q), delta.shape)).copy()


_CLOSED_KERNELS: dict[str, type[_Kernel]] = {
    "relu": _ReluKernel,
    "erf": _ErfKernel,
    "linear": _LinearKernel,
}


def _is_registered(act: Activation) -> bool:
    try:
        return _lookup(act.name) is act
    except ValueError:
        return False


def _kernel(act: str | Activation, n_angle: int = 24, n_t: int = 8) -> _Kernel:
    """The integrals of ``act``: closed forms for the registered relu, erf, linear."""
    act = _lookup(act)
    cls = _CLOSED_KERNELS.get(act.name, _Kernel)
    if cls is not _Kernel and not _is_registered(act):
        cls = _Kernel  # an unregistered copy under a closed-form name: use quadrature
    return cls(act, n_angle, n_t)


# --- validation ------------------------------------------------------------------

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


# --- the maps --------------------------------------------------------------------

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
    return sb + sw * _kernel(activation).V(q)


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
    k = _kernel(activation)

    def F(q: float) -> float:
        return float(sb + sw * k.V(q) - q)

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
    k = _kernel(activation)
    return float(sigma_w2 * k.D(_q_eff(qs)))


def chi_q(activation: str | Activation, sigma_w2: float, sigma_b2: float, *, q0: float = 1.0) -> float:
    """Slope of the variance map at ``q*``: ``sigma_w2 dV/dq = sigma_w2 E[g'^2 + g g'']``."""
    qs = q_star(activation, sigma_w2, sigma_b2, q0=q0)
    if not np.isfinite(qs):
        return float("nan")
    return float(sigma_w2 * _kernel(activation).dV(_q_eff(qs)))


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
    ``I2(C) = E[g(u) g(v)]`` comes from this module's kernels (closed forms for
    relu, erf, linear; the polar quadrature of :func:`_pair_expectation` otherwise).  Near
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
    k = _kernel(activation)
    if q1 is None or q2 is None:
        qs = q_star(activation, sw, sb)
        if not np.isfinite(qs) or qs <= 0:
            raise ValueError(f"q1, q2: q* = {qs} is not finite and positive; pass the variances")
        q1 = qs if q1 is None else q1
        q2 = qs if q2 is None else q2
    q1 = _check_nonneg(q1, "q1")
    q2 = _check_nonneg(q2, "q2")
    num = sb + sw * k.I(q1, q2, c)
    den = np.sqrt((sb + sw * k.V(q1)) * (sb + sw * k.V(q2)))
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
    return sw * _kernel(activation).W(qs, delta)


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
    k = _kernel(activation, n_angle=n_angle)
    if sw * float(k.D(qs)) <= 1.0:
        return 1.0

    def G(d: float) -> float:
        return float(sw * k.W(qs, d) / d - 1.0)

    # Coarse scan for the first sign change of G (G > 0 just above delta = 0 when chi_1 > 1).
    grid = np.array([0.125, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0])
    vals = sw * k.W(qs, grid) / grid - 1.0
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


def _slope_c(k: _Kernel, sw: float, qs: float, cs: float) -> float:
    """Slope of the correlation map at ``c*``: ``sigma_w2 J(q*, c*)``."""
    return float(sw * k.J(qs, 1.0 - cs))


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
    k = _kernel(activation)
    slope = sw * float(k.D(_q_eff(qs))) if cs == 1.0 else _slope_c(k, sw, qs, cs)
    return _xi(slope)


# --- the edge of chaos ----------------------------------------------------------

def _eoc_scalar(k: _Kernel, sb: float) -> tuple[float, float]:
    def B(q: Array) -> Array:
        return q - k.V(q) / k.D(q)

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
            return float(1.0 / k.D(1.0)), float("nan")
        raise ValueError(
            f"sigma_b2: {k.act.name!r} is positively homogeneous; its edge of chaos is the "
            f"single point sigma_b2 = 0 (got {sb})"
        )
    if sb == 0.0 and b[0] > 0:
        # B(q) > 0 for q > 0 and B(0) = 0: the EOC meets sigma_b2 = 0 at q* = 0.
        return float(1.0 / k.D(_q_eff(0.0))), 0.0
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
            f"sigma_b2: no edge of chaos for {k.act.name!r} at sigma_b2 = {sb} "
            f"(B(q*) = q* - V/E[g'^2] ranges over [{b.min():.4g}, {b.max():.4g}] on q* in "
            f"[{_Q_SCAN_MIN:g}, {_Q_MAX:g}])"
        )
    roots = sorted(set(roots))
    # Prefer a q* that attracts the variance map (slope sigma_w2 dV/dq < 1).
    for r in roots:
        sw = 1.0 / float(k.D(r))
        if sw * float(k.dV(r)) < 1.0:
            return sw, r
    return 1.0 / float(k.D(roots[0])), roots[0]


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
    k = _kernel(activation)
    if sb.ndim == 0:
        return _eoc_scalar(k, float(sb))
    out = [_eoc_scalar(k, float(v)) for v in sb.ravel()]
    sw = np.array([o[0] for o in out]).reshape(sb.shape)
    qs = np.array([o[1] for o in out]).reshape(sb.shape)
    return sw, qs


def critical_line(activation: str | Activation, sigma_b2: Any) -> tuple[Array, Array]:
    """:func:`edge_of_chaos` on an array of ``sigma_b2``, NaN where there is none."""
    sb = np.atleast_1d(_check_nonneg(sigma_b2, "sigma_b2"))
    k = _kernel(activation)
    sw = np.full(sb.shape, np.nan)
    qs = np.full(sb.shape, np.nan)
    for i, v in enumerate(sb.ravel()):
        try:
            sw.flat[i], qs.flat[i] = _eoc_scalar(k, float(v))
        except ValueError:
            pass
    return sw, qs


# --- phase diagram ---------------------------------------------------------------

def _phase_point(item: tuple[str | Activation, float, float, int, float]) -> tuple[float, ...]:
    """Order parameters of one ``(sigma_w2, sigma_b2)`` point (module level: picklable)."""
    act, sw, sb, n_angle, q0 = item
    k = _kernel(act, n_angle=n_angle)
    qs = q_star(act, sw, sb, q0=q0)
    chi = float(sw * k.D(_q_eff(qs)))
    if not np.isfinite(qs):
        return (qs, float("nan"), chi, float("nan"), float("nan"), float("nan"), PHASE_UNBOUNDED)
    cq = float(sw * k.dV(_q_eff(qs)))
    cs = c_star(act, sw, sb, q=qs, n_angle=n_angle)
    slope = chi if cs == 1.0 else _slope_c(k, sw, qs, cs)
    phase = PHASE_CHAOTIC if chi > 1.0 else PHASE_ORDERED
    return (qs, cs, chi, cq, _xi(cq), _xi(slope), phase)


def phase_diagram(
    activation: str | Activation,
    sigma_w2: Any = None,
    sigma_b2: Any = None,
    *,
    n_angle: int = 24,
    q0: float = 1.0,
    client: Any = None,
    n_workers: int | None = None,
) -> xr.Dataset:
    """Order/chaos phase diagram over a grid of ``(sigma_b2, sigma_w2)``.

    Points are independent: ``n_workers >= 2`` or a dask ``client`` spread them
    through :func:`phasekit.parallel.parallel_map` (default: in this process).

    Parameters
    ----------
    activation : str or Activation
    sigma_w2 : array_like, optional
        1-D grid of weight variances (default ``linspace(0.5, 5, 46)``).
    sigma_b2 : array_like, optional
        1-D grid of bias variances (default ``linspace(0, 0.5, 26)``).
    n_angle : int
        Gauss-Legendre nodes per angular wedge of the 2-D correlation integrals.
    q0 : float
        Input variance from which the variance map is iterated (:func:`q_star`).
    client, n_workers
        Passed to :func:`~phasekit.parallel.parallel_map` (``n_workers=1``: serial).

    Returns
    -------
    xarray.Dataset
        Dims ``(sigma_b2, sigma_w2)``; variables ``q_star``, ``c_star``, ``chi_1``,
        ``chi_q``, ``xi_q``, ``xi_c``, ``phase`` (0 ordered, 1 chaotic, 2
        unbounded variance), and the critical line ``eoc_sigma_w2``,
        ``eoc_q_star`` along ``sigma_b2`` (NaN where there is none) with
        ``eoc_q_attracting`` (1 where that ``q*`` attracts the variance map).
        Where the variance map has several attracting fixed points (swish), the
        one reached from ``q0`` is used.
    """
    act = _lookup(activation)
    sw = np.linspace(0.5, 5.0, 46) if sigma_w2 is None else np.atleast_1d(np.asarray(sigma_w2, float))
    sb = np.linspace(0.0, 0.5, 26) if sigma_b2 is None else np.atleast_1d(np.asarray(sigma_b2, float))
    if sw.ndim != 1 or sb.ndim != 1:
        raise ValueError("sigma_w2, sigma_b2: must be 1-D grids")
    _check_sw(sw)
    _check_nonneg(sb, "sigma_b2")
    # Registered activations travel by name so that workers use the same closed forms.
    token = act.name if _is_registered(act) else act
    items = [(token, float(w), float(b), int(n_angle), float(q0)) for b in sb for w in sw]
    results = np.array(parallel_map(_phase_point, items, client=client, n_workers=n_workers),
                       dtype=float).reshape(sb.size, sw.size, 7)
    eoc_sw, eoc_q = critical_line(act, sb)
    k = _kernel(act)
    with np.errstate(invalid="ignore"):
        # Whether q* on the line attracts the variance map (it need not: swish at small sigma_b2).
        eoc_attr = np.where(np.isfinite(eoc_q) & (eoc_q > 0),
                            (eoc_sw * k.dV(np.where(np.isfinite(eoc_q), eoc_q, 1.0)) < 1.0), True)
    eoc_attr = np.where(np.isfinite(eoc_sw), eoc_attr, False).astype(np.int32)
    dims = ("sigma_b2", "sigma_w2")
    specs = [
        ("q_star", "fixed point of the variance map q*", "1"),
        ("c_star", "attracting fixed point of the correlation map c*", "1"),
        ("chi_1", "slope of the correlation map at c = 1, chi_1", "1"),
        ("chi_q", "slope of the variance map at q*", "1"),
        ("xi_q", "depth scale of the variance map xi_q", "layers"),
        ("xi_c", "depth scale of the correlation map xi_c", "layers"),
    ]
    data_vars = {
        name: (dims, results[..., j], {"long_name": ln, "units": u})
        for j, (name, ln, u) in enumerate(specs)
    }
    data_vars["phase"] = (dims, results[..., 6].astype(np.int32), {
        "long_name": "phase (0 ordered, 1 chaotic, 2 unbounded variance)", "units": "1",
        "flag_values": "0 1 2", "flag_meanings": "ordered chaotic unbounded"})
    data_vars["eoc_sigma_w2"] = ("sigma_b2", eoc_sw, {
        "long_name": "weight variance on the edge of chaos", "units": "1"})
    data_vars["eoc_q_star"] = ("sigma_b2", eoc_q, {
        "long_name": "q* on the edge of chaos", "units": "1"})
    data_vars["eoc_q_attracting"] = ("sigma_b2", eoc_attr, {
        "long_name": "q* on the edge of chaos attracts the variance map (1) or not (0)",
        "units": "1"})
    coords = {
        "sigma_b2": ("sigma_b2", sb, {"long_name": "bias variance sigma_b^2", "units": "1"}),
        "sigma_w2": ("sigma_w2", sw, {"long_name": "weight variance sigma_w^2", "units": "1"}),
    }
    params = {"activation": act.name, "sigma_w2": sw, "sigma_b2": sb, "n_angle": n_angle,
              "q0": q0}
    return xr.Dataset(data_vars, coords, attrs=provenance_attrs(
        params, activation=act.name, kind="phase_diagram"))


# --- depth profiles ------------------------------------------------------------

def eoc_asymptote(activation: str | Activation, sigma_w2: float, sigma_b2: float) -> float:
    """Predicted large-depth constant of ``1 - c_l`` on the edge of chaos.

    Smooth ``g``: ``delta' = delta - (sigma_w2 J'(1) / 2) delta^2 + ...`` with
    ``J'(1) = q* E[g''(sqrt(q*) Z)^2]``, so ``l (1 - c_l) -> 2 / (sigma_w2 q* E[g''^2])``.
    relu: ``delta' = delta - (2 sqrt 2 / (3 pi)) delta^(3/2) + ...``, so
    ``l^2 (1 - c_l) -> 9 pi^2 / 2``.  Returns NaN when ``g''`` is not available.
    """
    act = _lookup(activation)
    k = _kernel(act)
    if isinstance(k, _ReluKernel):
        return 4.5 * np.pi**2
    qs = q_star(act, sigma_w2, sigma_b2)
    d2 = float(k.d2(qs))
    if not np.isfinite(d2) or d2 <= 0 or not np.isfinite(qs) or qs <= 0:
        return float("nan")
    return 2.0 / (sigma_w2 * qs * d2)


def correlation_depth_profile(
    activation: str | Activation,
    sigma_w2: float,
    sigma_b2: float,
    depth: int,
    *,
    c0: float = 0.0,
    q: float | None = None,
    n_angle: int = 24,
) -> xr.Dataset:
    """Correlation ``c_l`` of two inputs through ``depth`` layers at the variance fixed point.

    Iterates the cancellation-free map of ``delta_l = 1 - c_l`` (:func:`delta_map`),
    so ``1 - c_l`` keeps full relative precision even at ``1e-300``.

    Parameters
    ----------
    activation : str or Activation
    sigma_w2, sigma_b2 : float
    depth : int
        Number of layers ``>= 1``.
    c0 : float
        Input correlation in ``[-1, 1]``.
    q : float, optional
        The fixed point ``q*`` (both inputs are taken to sit at it); default
        :func:`q_star`.  For relu at ``(2, 0)`` every ``q`` is fixed and the
        profile does not depend on it.
    n_angle : int
        Gauss-Legendre nodes per angular wedge of the 2-D integrals (quadrature activations).

    Returns
    -------
    xarray.Dataset
        Coordinate ``layer`` (0..depth); variables ``c`` and ``one_minus_c``;
        attrs ``q_star``, ``chi_1``, ``asymptote`` (:func:`eoc_asymptote`).
    """
    if not isinstance(depth, (int, np.integer)) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"depth: must be an integer >= 1, got {depth!r}")
    c0 = float(_check_corr(_scalar(c0, "c0"), "c0"))
    sw = float(_check_sw(_scalar(sigma_w2, "sigma_w2")))
    sb = float(_check_nonneg(_scalar(sigma_b2, "sigma_b2"), "sigma_b2"))
    act = _lookup(activation)
    k = _kernel(act, n_angle=n_angle)
    qs = q_star(act, sw, sb) if q is None else float(q)
    if not np.isfinite(qs) or qs <= 0:
        raise ValueError(f"q: the variance fixed point q* = {qs} must be finite and positive")
    delta = np.empty(depth + 1)
    delta[0] = 1.0 - c0
    d = delta[0]
    W = k.W
    for layer in range(1, depth + 1):
        d = sw * float(W(qs, d))
        delta[layer] = d
    layers = np.arange(depth + 1)
    chi = float(sw * k.D(qs))
    attrs = provenance_attrs(
        {"activation": act.name, "sigma_w2": sw, "sigma_b2": sb, "depth": int(depth),
         "c0": c0, "q": qs, "n_angle": n_angle},
        activation=act.name, kind="correlation_depth_profile", q_star=qs, chi_1=chi,
        asymptote=float(eoc_asymptote(act, sw, sb)),
    )
    return xr.Dataset(
        {
            "c": ("layer", 1.0 - delta, {"long_name": "correlation c_l", "units": "1"}),
            "one_minus_c": ("layer", delta, {"long_name": "1 - c_l", "units": "1"}),
        },
        coords={"layer": ("layer", layers, {"long_name": "layer l", "units": "1"})},
        attrs=attrs,
    )
