"""Quadrature rules, and the Gaussian expectations that apply one of them directly.

Every rule phasekit integrates with is made here (nodes and weights, built
once and cached as read-only arrays):

* Gauss-Legendre on ``[-1, 1]`` or any interval (:func:`gauss_legendre`,
  :func:`gauss_legendre_interval`) and on panels with the Gaussian density
  folded into the weights (:func:`normal_panels`);
* probabilists' Gauss-Hermite for the standard Gaussian and its tensor
  products (:func:`gauss_hermite`, :func:`tensor_gauss_hermite`);
* composite Gauss-Legendre rules for the standard Gaussian, graded towards
  the origin: one-dimensional (:func:`normal_composite_rule`) and radial, for
  the 2-D Gaussian in polar coordinates (:func:`radial_rule`);
* the n-point Gauss rule of a discrete measure (:func:`gauss_from_measure`),
  from which the half-line rules of the Gaussian weight
  (:func:`half_line_rule`) and the scale rule of the logistic distribution as a
  Gaussian scale mixture (:func:`logistic_scale_rule`) are built.

Expectations of special form:

* :func:`normal_expectation`: ``E[f(sqrt(q) Z)]`` by the composite rule split
  at 0 (~1e-14), for the variance maps of signal propagation;
* :func:`polar_pair_expectation`: ``E[f(u) h(v)]`` at variances ``q1, q2`` and
  correlation ``1 - delta``, in polar coordinates with wedges ending on the
  kink lines, taking ``delta`` (never ``1 - delta``) so that nearly equal
  arguments keep their precision;
* :func:`gauss_hermite_pairs` and :func:`relu_conditional_expectations`:
  ``E[f(u) h(v)]`` for many pairs, smooth in the covariance, for the
  population loss of two-layer networks.

Expectations over covariance matrices of any dimension (tensor Gauss-Hermite,
nested conditional quadrature) are in :mod:`phasekit.core.quadrature`.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
from scipy import special

__all__ = ["gauss_from_measure", "gauss_hermite", "gauss_hermite_pairs", "gauss_legendre", "gauss_legendre_interval",
           "half_line_rule", "logistic_scale_rule", "normal_composite_rule", "normal_expectation", "normal_panels",
           "polar_pair_expectation", "radial_rule", "relu_conditional_expectations", "tensor_gauss_hermite"]


Array = np.ndarray


_SQRT_2PI = math.sqrt(2.0 * math.pi)


# Gaussian range: beyond |z| = Z_MAX the weight phi is below 1e-18.
Z_MAX = 9.0


# Grid spacing of the tabulated half-line rules; the rule for [c, oo) is the one for the
# nearest grid point c_r, applied with the exact weight ratio phi(z) / phi_r(z), a smooth
# factor exp(-(c - c_r) t) with |c - c_r| <= 1/8.
_HALF_DC = 0.25


def _read_only(*arrays: Array) -> tuple[Array, ...]:
    for a in arrays:
        a.setflags(write=False)
    return arrays


@lru_cache(maxsize=None)
def gauss_legendre(m: int) -> tuple[Array, Array]:
    """Gauss-Legendre nodes and weights on ``[-1, 1]``, each of shape ``(m,)``."""
    return _read_only(*np.polynomial.legendre.leggauss(m))


def gauss_legendre_interval(lo: float, hi: float, m: int) -> tuple[Array, Array]:
    """Gauss-Legendre nodes and weights on ``[lo, hi]``, each of shape ``(m,)``."""
    x, w = gauss_legendre(m)
    half = 0.5 * (hi - lo)
    return lo + half * (x + 1.0), half * w


def normal_panels(a: Array, b: Array, m: int, lead: int) -> tuple[Array, Array]:
    """Gauss-Legendre nodes on the panels ``[a, b]`` with weights times the Gaussian density.

    ``a`` and ``b`` broadcast to the panels' shape; nodes and weights are
    flattened after the first ``lead`` axes.
    """
    x, w = gauss_legendre(m)
    h = 0.5 * (b - a)[..., None]
    z = h * (x + 1.0) + a[..., None]
    wz = h * w * np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
    shape = z.shape[:lead] + (-1,)
    return z.reshape(shape), wz.reshape(shape)


@lru_cache(maxsize=None)
def gauss_hermite(n: int) -> tuple[Array, Array]:
    """Probabilists' Gauss-Hermite nodes and weights for ``E[f(Z)]``, ``Z ~ N(0, 1)``; shapes ``(n,)``."""
    z, w = np.polynomial.hermite_e.hermegauss(int(n))
    return _read_only(z, w / _SQRT_2PI)


@lru_cache(maxsize=None)
def tensor_gauss_hermite(n: int, d: int) -> tuple[Array, Array]:
    """Tensor product of :func:`gauss_hermite`: nodes ``(n**d, d)``, weights ``(n**d,)``."""
    x, w = gauss_hermite(n)
    grids = np.meshgrid(*([x] * d), indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], axis=-1)
    wgrids = np.meshgrid(*([w] * d), indexing="ij")
    weights = np.prod(np.stack([g.ravel() for g in wgrids], axis=-1), axis=-1)
    return _read_only(nodes, weights)


def _graded_nodes(n_gl: int, width: float, r_max: float, levels: int) -> tuple[Array, Array]:
    """Composite Gauss-Legendre on ``[0, r_max]``: nodes and plain weights.

    Uniform panels of ``width`` away from 0; the first one is halved towards 0
    over ``levels`` levels.
    """
    edges = np.concatenate([
        [0.0],
        width * 2.0 ** -np.arange(levels, 0, -1),
        np.arange(1, int(round(r_max / width)) + 1) * width,
    ])
    x, w = np.polynomial.legendre.leggauss(n_gl)
    a, b = edges[:-1, None], edges[1:, None]
    r = (0.5 * (b - a) * x + 0.5 * (a + b)).ravel()
    return r, (0.5 * (b - a) * w).ravel()


@lru_cache(maxsize=None)
def normal_composite_rule(n_gl: int = 16, z_max: float = 10.0, levels: int = 24) -> tuple[Array, Array]:
    """Nodes and weights for ``E[f(Z)]``, ``Z ~ N(0, 1)``, by composite Gauss-Legendre.

    Panels on ``[0, z_max]`` (mirrored to the negative half): uniform of width
    1/4 away from 0, halving towards 0 over ``levels`` levels.  Splitting at 0
    makes kinks at the origin harmless; the geometric panels keep
    Gauss-Legendre converging geometrically for ``f(sqrt(q) z)`` with tanh-like
    ``f``, whose complex poles approach the real axis like ``1/sqrt(q)`` at
    large ``q``.  Accuracy ~1e-14 for such functions.

    Returns
    -------
    nodes, weights : ndarray, shape (2 * n_gl * panels,)
    """
    z, h = _graded_nodes(n_gl, 0.25, z_max, levels)
    wz = h * np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
    return _read_only(np.concatenate([-z[::-1], z]), np.concatenate([wz[::-1], wz]))


@lru_cache(maxsize=None)
def radial_rule(n_gl: int = 8, width: float = 0.5, r_max: float = 9.5, levels: int = 12) -> tuple[Array, Array]:
    """Radial nodes and weights for ``int_0^oo f(r) r exp(-r^2 / 2) dr`` (the 2-D Gaussian in polar form).

    Composite Gauss-Legendre, uniform panels of ``width`` refined geometrically
    towards ``r = 0`` (where the features of ``g(sqrt(q) r cos(.))`` sit at large ``q``).
    """
    r, h = _graded_nodes(n_gl, width, r_max, levels)
    return _read_only(r, h * r * np.exp(-0.5 * r * r))


def gauss_from_measure(x: Array, w: Array, n: int) -> tuple[Array, Array]:
    """n-point Gauss rule of the discrete measure ``sum_i w_i delta(t - x_i)`` (Lanczos).

    Returns nodes and weights of shape ``(n,)``; the weights sum to ``sum(w)``.
    """
    q = np.zeros((n + 1, len(x)))
    q[0] = np.sqrt(w) / np.sqrt(w.sum())
    a = np.zeros(n)
    b = np.zeros(n)
    for k in range(n):
        v = x * q[k]
        a[k] = q[k] @ v
        for _ in range(2):  # full reorthogonalisation, twice is enough
            v = v - q[:k + 1].T @ (q[:k + 1] @ v)
        b[k] = np.linalg.norm(v)
        q[k + 1] = v / b[k]
    lam, vec = np.linalg.eigh(np.diag(a) + np.diag(b[:-1], 1) + np.diag(b[:-1], -1))
    return lam, w.sum() * vec[0] ** 2


@lru_cache(maxsize=None)
def _half_line_table(n: int) -> tuple[Array, Array, Array]:
    """Gauss rules for ``int_0^oo phi(c + t) G(t) dt`` on the grid ``c = -Z .. Z``.

    Returns the grid ``(nc,)``, nodes ``t`` and weights, each ``(nc, n)``; built
    once per ``n`` from a 2400-point composite Gauss-Legendre discretisation.
    """
    grid = np.arange(-Z_MAX, Z_MAX + 0.5 * _HALF_DC, _HALF_DC)
    xg, wg = np.polynomial.legendre.leggauss(20)
    nodes, weights = [], []
    for c in grid:
        edges = np.linspace(0.0, max(0.0, -c) + 11.0, 121)
        h = 0.5 * np.diff(edges)
        t = (h[:, None] * (xg + 1.0) + edges[:-1, None]).ravel()
        wt = (h[:, None] * wg).ravel() * np.exp(-0.5 * (c + t) ** 2) / np.sqrt(2.0 * np.pi)
        tk, wk = gauss_from_measure(t, wt, n)
        nodes.append(tk)
        weights.append(wk)
    return _read_only(grid, np.array(nodes), np.array(weights))


def half_line_rule(c: Array, n: int) -> tuple[Array, Array]:
    """Nodes and weights, shape ``c.shape + (n,)``, of ``int_c^oo phi(z) G(z) dz`` (``phi``: standard normal density)."""
    grid, T, W = _half_line_table(n)
    cc = np.clip(c, -Z_MAX, Z_MAX)
    r = np.rint((cc + Z_MAX) / _HALF_DC).astype(np.intp)
    d = (cc - grid[r])[..., None]
    t = T[r]
    w = W[r] * np.exp(-d * t - d * (0.5 * d + grid[r][..., None]))
    return cc[..., None] + t, np.where((c >= Z_MAX)[..., None], 0.0, w)


def _kolmogorov_pdf(k: Array) -> Array:
    """Density of the Kolmogorov distribution (two theta-function series, each where it converges fast)."""
    k = np.asarray(k, dtype=float)
    j = np.arange(1, 40)[:, None]
    out = np.empty_like(k)
    small = k < 1.0
    ks = k[small]
    if ks.size:
        q = (2 * j - 1) ** 2 * np.pi**2 / (8.0 * ks**2)
        out[small] = _SQRT_2PI / ks**2 * np.sum((2.0 * q - 1.0) * np.exp(-q), axis=0)
    kl = k[~small]
    if kl.size:
        out[~small] = 8.0 * kl * np.sum((-1.0) ** (j - 1) * j**2 * np.exp(-2.0 * j**2 * kl**2), axis=0)
    return out


@lru_cache(maxsize=None)
def logistic_scale_rule(n: int) -> tuple[Array, Array]:
    """Gauss rule ``(omega_q, w_q)`` of the logistic distribution as a Gaussian scale mixture.

    The logistic CDF is ``sigmoid(x) = E[Phi(x / omega)]`` with ``omega = 2 K``
    and ``K`` Kolmogorov-distributed; the n-point rule reproduces the sigmoid
    to ~2e-9 uniformly for ``n = 16``.  Weights sum to 1; shapes ``(n,)``.
    """
    # The density decays like exp(-pi^2/8k^2) and exp(-2k^2): the trapezoid rule in log k
    # is exact to round-off, and the Gauss rule of that discrete measure is the n-point rule.
    t = np.linspace(math.log(0.03), math.log(10.0), 6001)
    k = np.exp(t)
    lam, w = gauss_from_measure(2.0 * k, _kolmogorov_pdf(k) * k * (t[1] - t[0]), n)
    w /= w.sum()
    return _read_only(lam, w)


def normal_expectation(f: Callable[[np.ndarray], np.ndarray], q: np.ndarray) -> np.ndarray:
    """``E[f(sqrt(q) Z)]``, ``Z ~ N(0, 1)``, for an array of variances ``q`` (shape preserved).

    The composite rule of :func:`normal_composite_rule`
    (split at 0, graded towards it): ~1e-14 for kinks at the origin and for
    tanh-like functions at large variance.
    """
    q = np.asarray(q, dtype=float)
    z, w = normal_composite_rule()
    x = np.sqrt(q)[..., None] * z
    return f(x) @ w


# Batch elements per chunk of the polar rule (bounds the (batch, angles, radii) work array).
_PAIR_CHUNK = 32


def polar_pair_expectation(
    f: Callable[[np.ndarray], np.ndarray],
    h: Callable[[np.ndarray], np.ndarray],
    q1: np.ndarray,
    q2: np.ndarray,
    delta: np.ndarray,
    *,
    difference: bool = False,
    n_angle: int = 24,
) -> np.ndarray:
    """``E[f(u) h(v)]`` (or ``E[(f(u) - h(v))^2]``) for Gaussian ``(u, v)`` given by ``1 - c``.

    ``Var u = q1``, ``Var v = q2``, correlation ``c = 1 - delta``.  In whitened
    polar coordinates ``u = sqrt(q1) r cos(phi - psi)``, ``v = sqrt(q2) r cos(phi + psi)``
    with ``psi = asin(sqrt(delta / 2))`` (so ``cos 2 psi = c``; ``psi`` comes from
    ``delta`` without cancellation).  The lines ``u = 0`` and ``v = 0`` are the
    rays ``phi = +-pi/2 +- psi``; splitting the angle there puts every kink or
    jump of ``f``, ``h`` at the origin (elu's ``g'``, relu-like functions) on
    wedge boundaries, where Gauss-Legendre in angle (``n_angle`` nodes per
    wedge) and composite Gauss-Legendre in radius (refined towards 0) converge
    fast.  Tensor Gauss-Hermite, by contrast, converges only algebraically
    across such kinks (error ~1e-3 for elu's ``E[g'g']``).  Accuracy ~1e-10 or
    better for the registered activations at variances up to ~20.

    Shapes: ``q1, q2, delta`` broadcast to the batch shape of the result.
    """
    q1, q2, delta = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (q1, q2, delta)))
    shape = q1.shape
    q1f, q2f, df = q1.ravel(), q2.ravel(), delta.ravel()
    r, wr = radial_rule()
    x, w = gauss_legendre(n_angle)
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


def _cholesky2(c11: np.ndarray, c22: np.ndarray, c12: np.ndarray) -> tuple[np.ndarray, ...]:
    """``u = su z1``, ``v = beta z1 + s2 z2`` for the 2x2 covariances given by their entries (flattened)."""
    su = np.sqrt(c11).ravel()
    safe = np.where(su > 0, su, 1.0)
    beta = np.where(su > 0, c12.ravel() / safe, 0.0)
    s2 = np.sqrt(np.clip(c22.ravel() - beta * beta, 0.0, None))
    return su, beta, s2


# Pairs x nodes^2 of the Gauss-Hermite pair rule evaluated at once.
_GH_PAIR_CHUNK = 1 << 21


def gauss_hermite_pairs(
    c11: np.ndarray,
    c22: np.ndarray,
    c12: np.ndarray,
    combos: Sequence[tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]],
    n: int,
) -> list[np.ndarray]:
    """``E[f(u) h(v)]`` for each ``(f, h)`` of ``combos`` by ``n x n`` Gauss-Hermite on the Cholesky factor.

    ``u = sqrt(c11) z1``, ``v = beta z1 + s2 z2`` (``beta = c12 / sqrt(c11)``):
    the rule moves smoothly with the covariance (unlike one through its
    eigenvectors), so expectations and their derivatives in ``C`` agree to
    the quadrature error.  Exponentially convergent for smooth functions at
    moderate variances.

    Parameters
    ----------
    c11, c22, c12 : array_like
        Covariance entries, broadcast to the shape of the results.
    combos : sequence of (callable, callable)
        Vectorised function pairs; a function used several times is evaluated once.
    n : int
        Nodes per dimension.

    Returns
    -------
    list of ndarray
        One array per combo, with the broadcast shape of the entries.
    """
    c11, c22, c12 = np.broadcast_arrays(*(np.asarray(c, dtype=float) for c in (c11, c22, c12)))
    shape = c11.shape
    su, beta, s2 = _cholesky2(c11, c22, c12)
    z, w = gauss_hermite(n)
    fs = {id(f): f for f, _ in combos}
    hs = {id(h): h for _, h in combos}
    out = [np.empty(su.size) for _ in combos]
    step = max(1, _GH_PAIR_CHUNK // (n * n))
    for lo in range(0, su.size, step):
        sl = slice(lo, lo + step)
        U = su[sl, None] * z
        V = beta[sl, None, None] * z[:, None] + s2[sl, None, None] * z[None, :]
        FU = {k: f(U) * w for k, f in fs.items()}
        FV = {k: h(V) @ w for k, h in hs.items()}  # inner sum over z2 first: (pairs, n)
        for j, (f, h) in enumerate(combos):
            out[j][sl] = np.einsum("pz,pz->p", FV[id(h)], FU[id(f)])
    return [o.reshape(shape) for o in out]


def relu_conditional_expectations(
    c11: np.ndarray,
    c22: np.ndarray,
    c12: np.ndarray,
    relu_funcs: Sequence[Callable[[np.ndarray], np.ndarray]],
    step_funcs: Sequence[Callable[[np.ndarray], np.ndarray]],
    n: int,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``E[f(u) relu(v)]`` for each ``f`` of ``relu_funcs`` and ``E[h(u) step(v)]`` for each ``h`` of ``step_funcs``.

    One-dimensional Gauss-Hermite over ``u`` (``n`` nodes) with the conditional
    ``E[relu(v) | u] = mu Phi(mu / s) + s phi(mu / s)`` and ``P(v > 0 | u) = Phi(mu / s)``
    in closed form (``mu``, ``s``: conditional mean and standard deviation of ``v``).

    Returns
    -------
    (list, list) of ndarray
        The relu and the step expectations, with the broadcast shape of the entries.
    """
    c11, c22, c12 = np.broadcast_arrays(*(np.asarray(c, dtype=float) for c in (c11, c22, c12)))
    shape = c11.shape
    su, beta, s2 = _cholesky2(c11, c22, c12)
    z, w = gauss_hermite(n)
    U = su[:, None] * z
    mu = beta[:, None] * z
    s = s2[:, None]
    pos = s > 0
    ratio = np.where(pos, mu / np.where(pos, s, 1.0), np.sign(mu) * np.inf)
    cdf = special.ndtr(ratio)
    pdf = np.where(pos, np.exp(-0.5 * np.where(pos, ratio, 0.0) ** 2) / np.sqrt(2.0 * np.pi), 0.0)
    relu_mean = mu * cdf + s * pdf
    return ([np.sum(relu_mean * (f(U) * w), axis=-1).reshape(shape) for f in relu_funcs],
            [np.sum(cdf * (h(U) * w), axis=-1).reshape(shape) for h in step_funcs])
