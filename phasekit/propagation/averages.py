"""Gaussian averages of an activation at the variances and correlations of signal propagation."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

from ..core.activations import Activation
from ..core.activations import activation as _lookup

Array = np.ndarray


_DELTA_SWITCH = 1e-4   # below: W by integrating J over [1 - delta, 1]; above: E[(g(u)-g(v))^2]


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
