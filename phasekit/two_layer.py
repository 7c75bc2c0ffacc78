"""Lazy versus feature-learning training of a two-layer network on a teacher.

Model
-----
Inputs ``x ~ N(0, I_d)``.  The teacher has ``m0`` unit-norm ReLU units,

    f*(x) = sum_j s_j relu(b_j . x),      |b_j| = 1,  s_j = +-1 (alternating),

and the student, with both layers trained, is

    f(x) = (scale / m) sum_i c_i g(a_i . x).

Initial scale ``tau``: first-layer rows ``a_i ~ N(0, tau^2 I_d / d)`` (so that
``|a_i| ~= tau`` and the pre-activation ``a_i . x`` has standard deviation
``~= tau``; the teacher's units correspond to ``tau = 1``) and output weights
``c_i ~ N(0, tau^2)``.  The symmetrised initialisation draws ``m / 2`` units and
duplicates each with the opposite output weight, so that ``f = 0`` exactly at
``t = 0``.  For a ReLU student only ``scale * tau^2`` matters up to a change
of time unit (the model is 2-homogeneous): small values give feature learning
(mean-field regime), large ones lazy (tangent-kernel) training.

Population loss and its gradient
--------------------------------
``L = (1/2) E[(f - f*)^2]`` only involves the pair kernels
``K(a, b) = E[g(a.x) h(b.x)]`` of the 2x2 covariance of ``(a.x, b.x)``, and
Price's theorem (``dK/dC_uu = E[g'' h] / 2``, ``dK/dC_uv = E[g' h']``) gives

    grad_a K(a, b) = E[g''(u) h(v)] a + E[g'(u) h'(v)] b,    u = a.x, v = b.x.

ReLU: arc-cosine kernels; with ``theta`` the angle between ``a`` and ``b``,
``K = |a||b| (sin theta + (pi - theta) cos theta) / (2 pi)``,
``E[g' h'] = (pi - theta) / (2 pi)``, ``E[g'' h] = |b| sin theta / (2 pi |a|)``.
Sigmoid, tanh, erf: probit mixtures ``g = mean + amp sum_q w_q (Phi(x/omega_q) - 1/2)``
(exact for erf; for the logistic from its Gaussian scale-mixture form), where
every kernel is an orthant probability in closed form, exact derivatives
included.  Any other activation: Gauss-Hermite quadrature on the Cholesky
factor of each 2x2 covariance.  No sampling anywhere.

Time
----
Gradient flow runs in the *mean-field time rescaled by scale^2*,

    dw/dt = -(m / scale^2) grad_w L,

the normalisation of Chizat, Oyallon and Bach (a flow on ``L / scale^2`` with a
per-unit learning rate ``m``).  In it the lazy dynamics has the same speed for
every output ``scale``.  The tangent kernel of a ReLU network grows like
``tau^2`` (like ``tau`` for bounded activations), whereas small-``tau`` runs
first escape the saddle at ``w = 0`` in a time growing like ``log(1 / tau)``;
:func:`horizon` therefore runs each point of a sweep to ``T / max(1, tau^2)``
(``T / max(1, tau)``): ``T`` units of kernel time when the kernel grows
(``tau > 1``), ``T`` units of mean-field time otherwise.  Mini-batch SGD with
learning rate ``lr`` advances ``t`` by ``lr`` per step.

Tangent model
-------------
The linearisation ``f_lin(x; w) = f(x; w0) + grad_w f(x; w0) . (w - w0)`` has
a quadratic population loss ``(1/2) theta^T G theta - b^T theta + L(w0)``;
``G`` and ``b`` are Gaussian expectations too (the ``d x d`` blocks need
``E[g'(u) g'(v) x x^T] = E[g'g'] I + E[g'''g'] a a^T + E[g''g''] (a b^T + b a^T)
+ E[g'g'''] b b^T``, closed forms for ReLU and the probit mixtures).  Units
with identical first-layer weights (the symmetrised pairs) have identical or
proportional features and are merged, which halves the size of ``G``.  The
gradient flow of the tangent model, in the same time units, is solved exactly
through the eigen-decomposition of ``G``.

How close the trained network stays to the trained tangent model as the
output scale grows depends on the smoothness of ``g`` and on the
initialisation.  The lazy-training bound ``O(1/scale)`` is attained by a
smooth network whose second-order Taylor term survives, e.g. the centred
predictor ``f(w) - f(w0)`` (``TwoLayer(offset=w0)``) from an unsymmetrised
start.  With the symmetrised start the twins' displacements are opposite in
``a`` and equal in ``c`` to leading order, so the second-order term cancels
within each pair and the distance falls like ``1/scale^2``.  A ReLU network is
not smooth: moving ``a`` by ``eps`` flips ``relu'`` on a slab of probability
``~eps``, so its linearisation error is ``~eps^(3/2)`` in L2 per unit and the
distance falls only like ``(scale m)^(-1/2)``.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import xarray as xr
from scipy import special
from scipy.integrate import solve_ivp

from .activations import Activation, activation as get_activation
from .parallel import parallel_map
from .provenance import provenance_attrs

__all__ = [
    "Teacher",
    "Student",
    "TwoLayer",
    "TangentModel",
    "Trajectory",
    "make_teacher",
    "init_student",
    "train_gradient_flow",
    "train_sgd",
    "horizon",
    "run_two_layer",
    "two_layer_sweep",
]

Array = np.ndarray
_TWO_PI = 2.0 * np.pi


# --- validation ----------------------------------------------------------------

def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_positive(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a finite number > 0, got {value!r}") from None
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"{name}: must be a finite number > 0, got {value!r}")
    return v


# --- teacher and student -----------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Teacher:
    """A ReLU teacher ``f*(x) = sum_j s_j relu(b_j . x)``.

    Parameters
    ----------
    weights : ndarray, shape (m0, d)
        Unit-norm first-layer rows ``b_j``.
    signs : ndarray, shape (m0,)
        Output weights ``s_j`` (+-1 in the standard set-up).
    """

    weights: Array
    signs: Array

    def __post_init__(self) -> None:
        B = np.array(self.weights, dtype=float)
        s = np.array(self.signs, dtype=float)
        if B.ndim != 2 or B.shape[0] < 1 or B.shape[1] < 1:
            raise ValueError(f"weights: need shape (m0 >= 1, d >= 1), got {B.shape}")
        if s.shape != (B.shape[0],):
            raise ValueError(f"signs: need shape ({B.shape[0]},), got {s.shape}")
        B.setflags(write=False)
        s.setflags(write=False)
        object.__setattr__(self, "weights", B)
        object.__setattr__(self, "signs", s)

    @property
    def m0(self) -> int:
        return self.weights.shape[0]

    @property
    def d(self) -> int:
        return self.weights.shape[1]

    def output(self, x: Array) -> Array:
        """``f*(x)`` for inputs ``x`` of shape (n, d); returns shape (n,)."""
        return np.maximum(x @ self.weights.T, 0.0) @ self.signs


def make_teacher(d: int, m0: int, seed: int = 0, signs: Sequence[float] | None = None) -> Teacher:
    """Random teacher with ``m0`` unit-norm ReLU units in ``d`` dimensions.

    Parameters
    ----------
    d : int
        Input dimension, ``>= 1``.
    m0 : int
        Teacher units, ``>= 1``.
    seed : int
        Seed of the directions ``b_j`` (uniform on the sphere).
    signs : sequence of float, optional
        Output weights; default alternating ``+1, -1, +1, ...``.
    """
    d = _check_int(d, "d", 1)
    m0 = _check_int(m0, "m0", 1)
    rng = np.random.default_rng([int(seed), 0x7EAC])
    B = rng.standard_normal((m0, d))
    B /= np.linalg.norm(B, axis=1, keepdims=True)
    s = np.array([1.0 if j % 2 == 0 else -1.0 for j in range(m0)]) if signs is None else signs
    return Teacher(B, np.asarray(s, dtype=float))


@dataclass(frozen=True, eq=False)
class Student:
    """Student weights: first layer ``a`` of shape (m, d), output weights ``c`` of shape (m,)."""

    a: Array
    c: Array

    def __post_init__(self) -> None:
        a = np.asarray(self.a, dtype=float)
        c = np.asarray(self.c, dtype=float)
        if a.ndim != 2 or c.shape != (a.shape[0],):
            raise ValueError(f"a, c: need shapes (m, d) and (m,), got {a.shape} and {c.shape}")
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "c", c)

    @property
    def m(self) -> int:
        return self.a.shape[0]

    @property
    def d(self) -> int:
        return self.a.shape[1]

    def flat(self) -> Array:
        """All weights as one vector ``(a.ravel(), c)`` of length ``m (d + 1)``."""
        return np.concatenate([self.a.ravel(), self.c])

    @classmethod
    def from_flat(cls, w: Array, m: int, d: int) -> "Student":
        """Inverse of :meth:`flat`."""
        w = np.asarray(w, dtype=float)
        return cls(w[: m * d].reshape(m, d), w[m * d:])


def init_student(m: int, d: int, tau: float, seed: int = 0, symmetric: bool = True) -> Student:
    """Random student at initial scale ``tau``.

    Parameters
    ----------
    m : int
        Hidden units, ``>= 1`` (even when ``symmetric``).
    d : int
        Input dimension, ``>= 1``.
    tau : float
        Initial scale, ``> 0``: ``a_i ~ N(0, tau^2 I_d / d)``, ``c_i ~ N(0, tau^2)``.
    seed : int
        Random seed.
    symmetric : bool
        Units in pairs ``(a, c), (a, -c)`` so that the output is exactly 0 at start.

    Returns
    -------
    Student
        For symmetric inits the twins are units ``2p`` and ``2p + 1``.
    """
    m = _check_int(m, "m", 1)
    d = _check_int(d, "d", 1)
    tau = _check_positive(tau, "tau")
    if symmetric and m % 2:
        raise ValueError(f"m: the symmetrised initialisation needs an even number of units, got {m}")
    rng = np.random.default_rng([int(seed), 0x57D])
    n = m // 2 if symmetric else m
    a = rng.standard_normal((n, d)) * (tau / math.sqrt(d))
    c = rng.standard_normal(n) * tau
    if symmetric:
        a = np.repeat(a, 2, axis=0)
        c = np.stack([c, -c], axis=1).ravel()
    return Student(a, c)


# --- Gaussian pair expectations --------------------------------------------------

@dataclass(frozen=True)
class _Pairs:
    """Expectations over ``u = a_i . x``, ``v = b_k . x``; every array has shape (m_a, m_b)."""

    K: Array   # E[g(u) h(v)]
    H: Array   # E[g''(u) h(v)]
    Hb: Array  # E[g(u) h''(v)]
    J: Array   # E[g'(u) h'(v)]


def _row_chunks(n_rows: int, per_row: int) -> list[slice]:
    """Row slices keeping the work arrays near ``_CHUNK`` elements."""
    rows = max(1, _CHUNK // max(1, per_row))
    return [slice(i, i + rows) for i in range(0, n_rows, rows)]


# Elements of a work array per chunk (bounds memory for wide students).
_CHUNK = 1 << 21


class _ReluKernels:
    """ReLU student: arc-cosine kernels in closed form."""

    @staticmethod
    def _angles(A: Array, B: Array) -> tuple[Array, Array, Array, Array, Array]:
        na = np.linalg.norm(A, axis=1)
        nb = np.linalg.norm(B, axis=1)
        prod = na[:, None] * nb[None, :]
        pos = prod > 0
        cos = np.clip(np.where(pos, (A @ B.T) / np.where(pos, prod, 1.0), 0.0), -1.0, 1.0)
        theta = np.arccos(cos)
        return na, nb, cos, theta, np.sin(theta)

    def pairs(self, A: Array, B: Array) -> _Pairs:
        na, nb, cos, theta, sin = self._angles(A, B)
        K = na[:, None] * nb[None, :] * (sin + (np.pi - theta) * cos) / _TWO_PI
        J = (np.pi - theta) / _TWO_PI
        # E[delta(u) relu(v)] = |b| sin(theta) / (2 pi |a|); a zero unit contributes nothing.
        ia = np.where(na > 0, 1.0 / np.where(na > 0, na, 1.0), 0.0)
        ib = np.where(nb > 0, 1.0 / np.where(nb > 0, nb, 1.0), 0.0)
        H = (ia[:, None] * nb[None, :]) * sin / _TWO_PI
        Hb = (na[:, None] * ib[None, :]) * sin / _TWO_PI
        return _Pairs(K, H, Hb, J)

    def teacher(self, A: Array, B: Array) -> _Pairs:
        return self.pairs(A, B)

    def third(self, A: Array, B: Array) -> tuple[Array, Array]:
        """``T = E[g'''(u) g'(v)]`` and ``D = E[g''(u) g''(v)]`` (delta functions for ReLU)."""
        caa = np.einsum("ij,ij->i", A, A)
        cbb = np.einsum("ij,ij->i", B, B)
        C = A @ B.T
        det = np.clip(caa[:, None] * cbb[None, :] - C * C, 0.0, None)
        # E[delta(u) delta(v)] = 1 / (2 pi sqrt(det)) and E[delta'(u) step(v)] = -C_uv / (2 pi C_uu
        # sqrt(det)); in E[g'g' x x^T] they combine into a term that vanishes for parallel rows,
        # where the separate pieces diverge and cancel catastrophically: use the limit there.
        ok = det > 1e-20 * caa[:, None] * cbb[None, :]
        D = np.where(ok, 1.0 / (_TWO_PI * np.sqrt(np.where(ok, det, 1.0))), 0.0)
        T = -C / np.where(caa > 0, caa, 1.0)[:, None] * D
        return T, D


# --- probit mixtures: sigmoid, tanh, erf ---------------------------------------------
#
# The logistic distribution is a Gaussian scale mixture: X = 2 K Z with K Kolmogorov-
# distributed and Z standard normal (Andrews & Mallows 1974), so sigmoid(x) =
# E_K[Phi(x / 2K)].  A Gauss rule for omega = 2K turns the sigmoid into
# sum_q w_q Phi(x / omega_q) with a uniform error of 1e-9 (16 nodes), and with
# Phi(u / omega) = P(omega Y < u) every Gaussian expectation becomes an orthant
# probability: E[(Phi(u/w1) - 1/2)(Phi(v/w2) - 1/2)] = asin(C_uv / sqrt(A1 A2)) / (2 pi),
# A_i = w_i^2 + C_ii.  Derivatives follow from Price's theorem, exactly for the rule, so
# loss and gradient are consistent to round-off whatever the size of the weights.

_MIXTURE_NODES = 16


def _kolmogorov_pdf(k: Array) -> Array:
    """Density of the Kolmogorov distribution (two theta-function series, each where it converges fast)."""
    k = np.asarray(k, dtype=float)
    j = np.arange(1, 40)[:, None]
    out = np.empty_like(k)
    small = k < 1.0
    ks = k[small]
    if ks.size:
        q = (2 * j - 1) ** 2 * np.pi**2 / (8.0 * ks**2)
        out[small] = math.sqrt(_TWO_PI) / ks**2 * np.sum((2.0 * q - 1.0) * np.exp(-q), axis=0)
    kl = k[~small]
    if kl.size:
        out[~small] = 8.0 * kl * np.sum((-1.0) ** (j - 1) * j**2 * np.exp(-2.0 * j**2 * kl**2), axis=0)
    return out


@lru_cache(maxsize=None)
def _logistic_scale_rule(n: int) -> tuple[Array, Array]:
    """Gauss rule ``(omega_q, w_q)`` for the scale ``omega = 2K`` of the logistic mixture."""
    # The density decays like exp(-pi^2/8k^2) and exp(-2k^2): the trapezoid rule in log k
    # is exact to round-off; the Stieltjes procedure then yields the n-point Gauss rule.
    t = np.linspace(math.log(0.03), math.log(10.0), 6001)
    k = np.exp(t)
    ws = _kolmogorov_pdf(k) * k * (t[1] - t[0])
    xs = 2.0 * k
    p_prev, p = np.zeros_like(xs), np.full_like(xs, 1.0 / math.sqrt(ws.sum()))
    alpha, beta, b_prev = [], [], 0.0
    for _ in range(n):
        a = float(np.sum(ws * xs * p * p))
        q = (xs - a) * p - b_prev * p_prev
        b = float(math.sqrt(np.sum(ws * q * q)))
        alpha.append(a)
        beta.append(b)
        p_prev, p, b_prev = p, q / b, b
    jac = np.diag(alpha) + np.diag(beta[:-1], 1) + np.diag(beta[:-1], -1)
    lam, V = np.linalg.eigh(jac)
    w = V[0] ** 2
    w /= w.sum()
    lam.setflags(write=False)
    w.setflags(write=False)
    return lam, w


@dataclass(frozen=True)
class _MixtureKernels:
    """``g(x) = mean + amp * sum_q w_q (Phi(x / omega_q) - 1/2)``: all kernels in closed form."""

    mean: float
    amp: float
    omega: Array
    weights: Array

    def _terms(self, ca: Array, cb: Array, c: Array, third: bool = False) -> list[Array]:
        """Kernels for a list of pairs with variances ``ca, cb`` and covariances ``c`` (1-D).

        Returns ``[asin-sum, J, H, Hb]`` or, with ``third``, ``[T, D]``.
        """
        o2 = self.omega**2
        W = np.outer(self.weights, self.weights) * (self.amp**2 / _TWO_PI)
        Q = len(self.omega)
        out = [np.empty(c.shape) for _ in range(2 if third else 4)]
        for sl in _row_chunks(c.shape[0], Q * Q):
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

    def _ordered(self, A: Array, B: Array, third: bool) -> list[Array]:
        caa = np.einsum("ij,ij->i", A, A)
        cbb = np.einsum("ij,ij->i", B, B)
        C = A @ B.T
        ca = np.broadcast_to(caa[:, None], C.shape).ravel()
        cb = np.broadcast_to(cbb[None, :], C.shape).ravel()
        return [t.reshape(C.shape) for t in self._terms(ca, cb, C.ravel(), third)]

    def pairs(self, A: Array, B: Array) -> _Pairs:
        if A is not B:
            K, J, H, Hb = self._ordered(A, B, False)
            return _Pairs(K + self.mean**2, H, Hb, J)
        # one set of units: each unordered pair once; H and Hb swap under transposition
        caa = np.einsum("ij,ij->i", A, A)
        C = A @ A.T
        iu, ku = np.triu_indices(A.shape[0])
        k_, j_, h_, hb_ = self._terms(caa[iu], caa[ku], C[iu, ku])
        K, J, H = np.empty(C.shape), np.empty(C.shape), np.empty(C.shape)
        K[iu, ku] = K[ku, iu] = k_
        J[iu, ku] = J[ku, iu] = j_
        H[iu, ku] = h_
        H[ku, iu] = hb_
        return _Pairs(K + self.mean**2, H, H.T.copy(), J)

    def third(self, A: Array, B: Array) -> tuple[Array, Array]:
        T, D = self._ordered(A, B, True)
        return T, D

    def teacher(self, A: Array, B: Array) -> _Pairs:
        """Against ReLU units ``B``: ``E[(Phi(u/w) - 1/2) relu(v)] = C_uv / (2 sqrt(2 pi A))``."""
        caa = np.einsum("ij,ij->i", A, A)
        nb = np.linalg.norm(B, axis=1)
        C = A @ B.T
        Aq = self.omega[None, :] ** 2 + caa[:, None]
        c0 = self.amp / (2.0 * math.sqrt(_TWO_PI))
        m1 = c0 * (Aq**-0.5 @ self.weights)    # (m_a,)
        m3 = c0 * (Aq**-1.5 @ self.weights)
        K = self.mean * nb[None, :] / math.sqrt(_TWO_PI) + C * m1[:, None]
        J = np.broadcast_to(m1[:, None], C.shape).copy()
        H = -C * m3[:, None]
        return _Pairs(K, H, np.full_like(K, np.nan), J)


def _mixture_for(name: str) -> _MixtureKernels | None:
    if name == "erf":  # erf(x / sqrt 2) = 2 Phi(x) - 1
        return _MixtureKernels(0.0, 2.0, np.array([1.0]), np.array([1.0]))
    if name in ("sigmoid", "tanh"):
        omega, w = _logistic_scale_rule(_MIXTURE_NODES)
        if name == "sigmoid":
            return _MixtureKernels(0.5, 1.0, omega, w)
        return _MixtureKernels(0.0, 2.0, omega / 2.0, w)  # tanh(x) = 2 sigmoid(2x) - 1
    return None


# --- Gauss-Hermite for any other smooth activation -------------------------------

def _derivative(act: Activation, k: int) -> Callable[[Array], Array]:
    if k == 0:
        return act.g
    if k == 1:
        return act.dg
    if act.d2g is None:
        raise ValueError(f"activation: {act.name!r} has no second derivative d2g, which the gradient needs")
    if k == 2:
        return act.d2g
    d2g = act.d2g  # third derivative (tangent model only) by central differences
    return lambda x: (d2g(x + 1e-4) - d2g(x - 1e-4)) / 2e-4


@lru_cache(maxsize=None)
def _gauss_hermite(n: int) -> tuple[Array, Array]:
    """Probabilists' Gauss-Hermite nodes and weights normalised to the standard Gaussian."""
    z, w = np.polynomial.hermite_e.hermegauss(int(n))
    w = w / math.sqrt(_TWO_PI)
    z.setflags(write=False)
    w.setflags(write=False)
    return z, w


def _cholesky_2x2(A: Array, B: Array) -> tuple[Array, Array, Array]:
    """``u = su z1``, ``v = beta z1 + s2 z2``: returns ``su (m_a,)``, ``beta, s2 (m_a, m_b)``."""
    su = np.linalg.norm(A, axis=1)
    safe = np.where(su > 0, su, 1.0)
    beta = np.where(su[:, None] > 0, (A @ B.T) / safe[:, None], 0.0)
    cvv = np.einsum("kj,kj->k", B, B)
    s2 = np.sqrt(np.clip(cvv[None, :] - beta * beta, 0.0, None))
    return su, beta, s2


@dataclass(frozen=True)
class _QuadratureKernels:
    """Tensor Gauss-Hermite on the Cholesky factor of each 2x2 covariance (smooth in the
    weights, so loss and gradient agree up to the quadrature error)."""

    act: Activation
    n: int

    def _smooth(self, A: Array, B: Array, combos: Sequence[tuple[int, int]]) -> list[Array]:
        z, w = _gauss_hermite(self.n)
        su, beta, s2 = _cholesky_2x2(A, B)
        U = su[:, None] * z[None, :]
        FU = {p: _derivative(self.act, p)(U) * w for p in {p for p, _ in combos}}
        out = [np.empty((A.shape[0], B.shape[0])) for _ in combos]
        for sl in _row_chunks(A.shape[0], B.shape[0] * self.n * self.n):
            V = beta[sl, :, None, None] * z[:, None] + s2[sl, :, None, None] * z[None, :]
            # inner sum over z2 first: (rows, m_b, n) per derivative order
            FV = {q: _derivative(self.act, q)(V) @ w for q in {q for _, q in combos}}
            for j, (p, q) in enumerate(combos):
                out[j][sl] = np.einsum("ikz,iz->ik", FV[q], FU[p][sl])
        return out

    def pairs(self, A: Array, B: Array) -> _Pairs:
        return _Pairs(*self._smooth(A, B, [(0, 0), (2, 0), (0, 2), (1, 1)]))

    def third(self, A: Array, B: Array) -> tuple[Array, Array]:
        T, D = self._smooth(A, B, [(3, 1), (2, 2)])
        return T, D

    def teacher(self, A: Array, B: Array) -> _Pairs:
        """One-dimensional quadrature over ``u``: ``E[relu(v) | u]`` and ``P(v > 0 | u)`` are closed forms."""
        z, w = _gauss_hermite(2 * self.n)
        su, beta, s2 = _cholesky_2x2(A, B)
        U = su[:, None] * z[None, :]
        mu = beta[:, :, None] * z  # conditional mean of v given z1, shape (m_a, m_b, n)
        s = s2[:, :, None]
        pos = s > 0
        ratio = np.where(pos, mu / np.where(pos, s, 1.0), np.sign(mu) * np.inf)
        cdf = special.ndtr(ratio)
        pdf = np.where(pos, np.exp(-0.5 * np.where(pos, ratio, 0.0) ** 2) / math.sqrt(_TWO_PI), 0.0)
        relu_mean = mu * cdf + s * pdf
        K, H, J = (np.einsum("ikz,iz->ik", inner, _derivative(self.act, p)(U) * w)
                   for inner, p in ((relu_mean, 0), (relu_mean, 2), (cdf, 1)))
        return _Pairs(K, H, np.full_like(K, np.nan), J)


def _kernels_for(act: Activation, n: int):
    if act.name == "relu":
        return _ReluKernels()
    mixture = _mixture_for(act.name)
    if mixture is not None:
        return mixture
    if act.d2g is None:
        raise ValueError(f"activation: {act.name!r} has no second derivative d2g, which the gradient needs")
    return _QuadratureKernels(act, n)


# --- the problem -----------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class TwoLayer:
    """A student architecture facing a teacher: population loss, gradient, flow.

    Parameters
    ----------
    teacher : Teacher
    activation : str or Activation
        Student activation from the registry.  ``"relu"``: arc-cosine kernels;
        ``"sigmoid"``, ``"tanh"``, ``"erf"``: closed forms of a probit mixture
        (exact for erf; sigmoid and tanh to 1e-9 uniformly); any other activation
        needs ``d2g`` and uses Gauss-Hermite quadrature (``quadrature_nodes``).
    scale : float
        Output scale ``> 0`` in ``f = (scale / m) sum_i c_i g(a_i . x)``.
    quadrature_nodes : int
        Gauss-Hermite nodes per dimension for non-ReLU students (``>= 4``).
    offset : Student, optional
        Centred predictor ``f(x; w) - f(x; offset)`` (usually ``offset = w0``), which
        vanishes at ``w0`` for any initialisation; without it the plain network.
    """

    teacher: Teacher
    activation: str | Activation = "relu"
    scale: float = 1.0
    quadrature_nodes: int = 32
    offset: Student | None = None
    act: Activation = field(init=False, repr=False)
    kernels: Any = field(init=False, repr=False)
    _target_norm2: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.teacher, Teacher):
            raise ValueError(f"teacher: expected a phasekit.two_layer.Teacher, got {type(self.teacher).__name__}")
        act = get_activation(self.activation)
        object.__setattr__(self, "act", act)
        object.__setattr__(self, "scale", _check_positive(self.scale, "scale"))
        object.__setattr__(self, "quadrature_nodes", _check_int(self.quadrature_nodes, "quadrature_nodes", 4))
        object.__setattr__(self, "kernels", _kernels_for(act, self.quadrature_nodes))
        norm2 = self.teacher_norm2()
        s = self.teacher.signs
        if self.offset is not None:
            self._check(self.offset)
            off = self.offset
            k = self.scale / off.m
            norm2 += k * k * off.c @ self.student_pairs(off.a, off.a).K @ off.c
            norm2 += 2.0 * k * off.c @ self.teacher_pairs(off.a).K @ s
        object.__setattr__(self, "_target_norm2", norm2)

    def _check(self, student: Student) -> None:
        if not isinstance(student, Student):
            raise ValueError(f"student: expected a phasekit.two_layer.Student, got {type(student).__name__}")
        if student.d != self.teacher.d:
            raise ValueError(f"student: input dimension {student.d} differs from the teacher's {self.teacher.d}")

    # pair expectations -------------------------------------------------------
    def student_pairs(self, A: Array, B: Array) -> _Pairs:
        """Student-student expectations between rows of ``A`` and ``B``, shapes (len(A), len(B))."""
        return self.kernels.pairs(A, B)

    def teacher_pairs(self, A: Array) -> _Pairs:
        """Student-teacher expectations ``E[g(a_i.x) relu(b_j.x)]`` etc., shapes (len(A), m0)."""
        return self.kernels.teacher(A, self.teacher.weights)

    def teacher_norm2(self) -> float:
        """``E[f*(x)^2]``."""
        B, s = self.teacher.weights, self.teacher.signs
        return float(s @ _ReluKernels().pairs(B, B).K @ s)

    def loss_floor(self) -> float:
        """Lower bound on the loss of any width from the symmetry of the activation.

        Without biases, an activation ``g = mean + odd`` (sigmoid, tanh, erf) only
        builds constant-plus-odd functions (odd ones if ``mean = 0``), so the even,
        non-constant part of ``f*`` can never be fitted:
        ``L >= (1/2) (E[e^2] - [mean != 0] E[e]^2)`` with ``e = sum_j s_j |b_j.x| / 2``,
        and ``E[|u||v|] = 4 E[relu(u) relu(v)] - C_uv``.  Zero for other activations
        (and for a centred predictor, whose target includes the initial network).
        """
        if not isinstance(self.kernels, _MixtureKernels) or self.offset is not None:
            return 0.0
        B, s = self.teacher.weights, self.teacher.signs
        abs_abs = 4.0 * _ReluKernels().pairs(B, B).K - B @ B.T
        even2 = 0.25 * float(s @ abs_abs @ s)
        mean = float(s @ np.linalg.norm(B, axis=1)) / math.sqrt(_TWO_PI)
        return 0.5 * (even2 - (mean * mean if self.kernels.mean != 0.0 else 0.0))

    def target_output(self, x: Array) -> Array:
        """What the network ``(scale/m) sum c_i g(a_i.x)`` must match: ``f*(x)`` plus the
        offset network when the predictor is centred; ``x`` of shape (n, d)."""
        y = self.teacher.output(x)
        if self.offset is not None:
            y = y + self.network_output(self.offset, x)
        return y

    def network_output(self, student: Student, x: Array) -> Array:
        """``(scale/m) sum_i c_i g(a_i . x)`` (not centred) for ``x`` of shape (n, d)."""
        return (self.scale / student.m) * (self.act.g(x @ student.a.T) @ student.c)

    # outputs -------------------------------------------------------------------
    def output(self, student: Student, x: Array) -> Array:
        """Student predictor for inputs ``x`` of shape (n, d) (centred if ``offset``); shape (n,)."""
        self._check(student)
        out = self.network_output(student, x)
        if self.offset is not None:
            out = out - self.network_output(self.offset, x)
        return out

    # loss and gradient -------------------------------------------------------------
    def loss(self, student: Student) -> float:
        """Population loss ``(1/2) E[(f - f*)^2]`` (exact)."""
        return self.loss_and_gradient(student, gradient=False)[0]

    def loss_and_gradient(self, student: Student, gradient: bool = True) -> tuple[float, Student | None]:
        """Exact population loss and its gradient (as a :class:`Student` of the same shapes)."""
        self._check(student)
        A, c, m = student.a, student.c, student.m
        s, B = self.teacher.signs, self.teacher.weights
        k = self.scale / m
        ss = self.student_pairs(A, A)
        st = self.teacher_pairs(A)
        # overlap with the target: f* and, for a centred predictor, the offset network
        y_c = st.K @ s
        y_h = st.H @ s
        y_a = (st.J * s[None, :]) @ B
        if self.offset is not None:
            off = self.offset
            ko = self.scale / off.m
            so = self.student_pairs(A, off.a)
            y_c = y_c + ko * (so.K @ off.c)
            y_h = y_h + ko * (so.H @ off.c)
            y_a = y_a + ko * ((so.J * off.c[None, :]) @ off.a)
        loss = 0.5 * (k * k * c @ ss.K @ c - 2.0 * k * c @ y_c + self._target_norm2)
        if not gradient:
            return float(loss), None
        grad_c = k * k * (ss.K @ c) - k * y_c
        r = k * (ss.H @ c) - y_h
        grad_a = k * c[:, None] * (r[:, None] * A + k * ((ss.J * c[None, :]) @ A) - y_a)
        return float(loss), Student(grad_a, grad_c)

    def velocity(self, student: Student) -> Student:
        """Gradient-flow velocity ``dw/dt = -(m / scale^2) grad L`` (see the module docstring)."""
        _, g = self.loss_and_gradient(student)
        f = -student.m / self.scale**2
        return Student(f * g.a, f * g.c)

    def predictor_distance(self, s1: Student, s2: Student) -> float:
        """Population L2 distance ``sqrt(E[(f_1 - f_2)^2])`` between two students."""
        self._check(s1)
        self._check(s2)
        k1, k2 = self.scale / s1.m, self.scale / s2.m
        e11 = k1 * k1 * s1.c @ self.student_pairs(s1.a, s1.a).K @ s1.c
        e22 = k2 * k2 * s2.c @ self.student_pairs(s2.a, s2.a).K @ s2.c
        e12 = k1 * k2 * s1.c @ self.student_pairs(s1.a, s2.a).K @ s2.c
        return float(np.sqrt(max(e11 + e22 - 2.0 * e12, 0.0)))

    def tangent(self, student0: Student) -> "TangentModel":
        """The tangent (linearised) model around ``student0``."""
        return TangentModel(self, student0)


# --- the tangent model ---------------------------------------------------------------

class TangentModel:
    """Linearisation of a :class:`TwoLayer` student around ``w0`` and its exact gradient flow.

    Units sharing a first-layer row are merged into one group ``p`` with
    parameters ``y_p = sum_{i in p} (c_i - c_i0)`` and
    ``z_p = sum_{i in p} c_i0 (a_i - a_i0)`` (of dimension ``d``):
    ``f_lin = f0 + (scale/m) sum_p [y_p g(a_p.x) + g'(a_p.x) z_p . x]``.
    The full-space flow ``dw/dt = -(m/scale^2) grad L_lin`` maps onto
    ``dtheta/dt = -(m/scale^2) W (G theta - b)`` with ``W = diag(n_p, S_p 1_d)``
    (``n_p`` units and ``S_p = sum c_i0^2`` in group ``p``), solved exactly by
    the eigen-decomposition of ``W^1/2 G W^1/2``.

    Parameters
    ----------
    problem : TwoLayer
    student0 : Student
        The expansion point (the initialisation).
    """

    def __init__(self, problem: TwoLayer, student0: Student) -> None:
        problem._check(student0)
        self.problem = problem
        self.student0 = student0
        A0, c0, m, d = student0.a, student0.c, student0.m, student0.d
        Ap, inverse, counts = np.unique(A0, axis=0, return_inverse=True, return_counts=True)
        inverse = np.asarray(inverse).ravel()
        P = Ap.shape[0]
        self.groups = inverse
        self.A_groups = Ap
        k = problem.scale / m
        S = np.bincount(inverse, weights=c0 * c0, minlength=P)
        # Groups whose output weights are all zero have no first-layer feature.
        self._w = np.concatenate([counts.astype(float), np.repeat(S, d)])

        pp = problem.student_pairs(Ap, Ap)
        Mzz = self._feature_gram(Ap, pp)                        # (P, d, P, d)
        Gyz = pp.J[:, :, None] * Ap[:, None, :] + pp.Hb[:, :, None] * Ap[None, :, :]  # E[g(u_p) g'(u_q) x]
        n = P * (d + 1)
        G = np.empty((n, n))
        G[:P, :P] = pp.K
        G[:P, P:] = Gyz.reshape(P, P * d)
        G[P:, :P] = G[:P, P:].T
        G[P:, P:] = Mzz.reshape(P * d, P * d)
        G *= k * k
        self.G = 0.5 * (G + G.T)

        st = problem.teacher_pairs(Ap)
        s, B = problem.teacher.signs, problem.teacher.weights
        ip = problem.student_pairs(A0, Ap)                      # initial student vs groups
        by = k * (st.K @ s) - k * k * (c0 @ ip.K)
        # E[f0 g'(u_p) x] = k sum_i c_i (J_ip a_i + Hb_ip a_p)
        f0_a = k * (((ip.J * c0[:, None]).T @ A0) + (c0 @ ip.Hb)[:, None] * Ap)
        bz = k * (st.H @ s)[:, None] * Ap + k * (st.J * s[None, :]) @ B - k * f0_a
        if problem.offset is not None:
            # the centred predictor's target includes the offset network
            off = problem.offset
            ko = problem.scale / off.m
            op = problem.student_pairs(off.a, Ap)
            by = by + k * ko * (off.c @ op.K)
            bz = bz + k * ko * (((op.J * off.c[:, None]).T @ off.a) + (off.c @ op.Hb)[:, None] * Ap)
        self.b = np.concatenate([by, bz.ravel()])
        self.loss0 = problem.loss(student0)
        self._f0_norm2 = k * k * c0 @ problem.student_pairs(A0, A0).K @ c0
        self._Ef0psi = np.concatenate([k * k * (c0 @ ip.K), (k * f0_a).ravel()])

        sw = np.sqrt(self._w)
        Ghat = sw[:, None] * self.G * sw[None, :]
        lam, V = np.linalg.eigh(Ghat)
        self.eigenvalues = np.clip(lam, 0.0, None)
        self._V = V
        self._bhat = V.T @ (sw * self.b)
        self.rate = m / problem.scale**2

    def _feature_gram(self, Ap: Array, pp: _Pairs) -> Array:
        """``E[g'(u_p) g'(u_q) x x^T]`` of shape (P, d, P, d)."""
        d = Ap.shape[1]
        T, D = self.problem.kernels.third(Ap, Ap)
        J = pp.J
        M = J[:, None, :, None] * np.eye(d)[None, :, None, :]
        M += T[:, None, :, None] * (Ap[:, :, None, None] * Ap[:, None, None, :])   # a_p a_p^T
        M += T.T[:, None, :, None] * (Ap[None, None, :, :] * Ap.T[None, :, :, None])  # a_q a_q^T
        M += D[:, None, :, None] * (Ap[:, :, None, None] * Ap[None, None, :, :])   # a_p a_q^T
        M += D[:, None, :, None] * (Ap.T[None, :, :, None] * Ap[:, None, None, :])  # a_q a_p^T
        return M

    # the flow ------------------------------------------------------------------
    def theta(self, t: float) -> Array:
        """Group parameters ``theta = (y, z)`` after time ``t`` of gradient flow (from 0)."""
        x = self.rate * self.eigenvalues * float(t)
        # (1 - exp(-rate lam t)) / lam, with its limit rate t at lam = 0
        factor = np.where(x > 1e-12, -np.expm1(-x) / np.where(x > 1e-12, self.eigenvalues, 1.0),
                          self.rate * float(t) * (1.0 - 0.5 * x))
        phi = self._V @ (factor * self._bhat)
        return np.sqrt(self._w) * phi

    def loss(self, t: float) -> float:
        """Population loss of the tangent model at time ``t``."""
        th = self.theta(t)
        return float(0.5 * th @ self.G @ th - th @ self.b + self.loss0)

    def loss_limit(self) -> float:
        """Loss at ``t -> infinity`` (the projection of the teacher on the tangent space)."""
        lam = self.eigenvalues
        keep = lam > 1e-12 * max(lam.max(), 1e-300)
        return float(self.loss0 - 0.5 * np.sum(self._bhat[keep] ** 2 / lam[keep]))

    def displacement(self, t: float) -> float:
        """Weight displacement ``||w - w0||`` of the tangent model at time ``t``."""
        th = self.theta(t)
        w = self._w
        return float(np.sqrt(np.sum(np.where(w > 0, th * th / np.where(w > 0, w, 1.0), 0.0))))

    def distance(self, student: Student, t: float) -> float:
        """Population L2 distance between ``student``'s predictor and the tangent model at ``t``."""
        p = self.problem
        p._check(student)
        th = self.theta(t)
        k = p.scale / student.m
        ip = p.student_pairs(student.a, self.A_groups)
        Ap, A, c = self.A_groups, student.a, student.c
        e_ff = k * k * c @ p.student_pairs(A, A).K @ c
        # E[f psi_p]: k^2 sum_i c_i K(a_i, a_p) and k^2 sum_i c_i (J_ip a_i + Hb_ip a_p)
        efpsi = np.concatenate([k * k * (c @ ip.K),
                                (k * k * (((ip.J * c[:, None]).T @ A) + (c @ ip.Hb)[:, None] * Ap)).ravel()])
        c0 = self.student0.c
        e_f0 = k * k * c @ p.student_pairs(A, self.student0.a).K @ c0
        e_ll = self._f0_norm2 + 2.0 * th @ self._Ef0psi + th @ self.G @ th
        e_fl = e_f0 + th @ efpsi
        return float(np.sqrt(max(e_ff + e_ll - 2.0 * e_fl, 0.0)))

    def output(self, x: Array, t: float) -> Array:
        """Tangent-model output for inputs ``x`` of shape (n, d) at time ``t``; shape (n,)."""
        p = self.problem
        th = self.theta(t)
        P, d = self.A_groups.shape
        k = p.scale / self.student0.m
        U = x @ self.A_groups.T
        y, z = th[:P], th[P:].reshape(P, d)
        return p.output(self.student0, x) + k * (p.act.g(U) @ y + np.sum(p.act.dg(U) * (x @ z.T), axis=1))


# --- training ---------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Trajectory:
    """Result of a training run.

    Attributes
    ----------
    t : ndarray, shape (n,)
        Sample times (units of the module docstring).
    loss : ndarray, shape (n,)
        Exact population loss at ``t``.
    student : Student
        Weights at the last sample.
    time_to_threshold : float
        First time the loss fell below ``loss_threshold`` (NaN if never).
    n_evaluations : int
        Loss-gradient evaluations (flow) or steps (SGD).
    status : str
        ``"ok"`` or ``"failed"`` (solver failure, or a non-finite SGD loss;
        samples end where the solver stopped).
    message : str
        The solver's message (empty for SGD).
    """

    t: Array
    loss: Array
    student: Student
    time_to_threshold: float
    n_evaluations: int
    status: str = "ok"
    message: str = ""


def _time_grid(t_final: float, n_points: int) -> Array:
    if n_points < 2:
        raise ValueError(f"n_points: need at least 2 samples, got {n_points!r}")
    t1 = min(1e-3, t_final / 10.0)
    return np.concatenate([[0.0], np.geomspace(t1, t_final, n_points - 1)])


def train_gradient_flow(
    problem: TwoLayer,
    student0: Student,
    t_final: float,
    *,
    n_points: int = 61,
    loss_threshold: float | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    method: str = "RK45",
) -> Trajectory:
    """Gradient flow ``dw/dt = -(m / scale^2) grad L`` on the exact population loss.

    Parameters
    ----------
    problem : TwoLayer
    student0 : Student
        Initial weights.
    t_final : float
        Final time ``> 0``.
    n_points : int
        Samples (0, then log-spaced up to ``t_final``).
    loss_threshold : float, optional
        Record the first time the loss falls below this value (``> 0``).
    rtol, atol : float
        Tolerances of the adaptive integrator (:func:`scipy.integrate.solve_ivp`).
    method : str
        ``solve_ivp`` method.

    Returns
    -------
    Trajectory
    """
    problem._check(student0)
    t_final = _check_positive(t_final, "t_final")
    n_points = _check_int(n_points, "n_points", 2)
    if loss_threshold is not None:
        loss_threshold = _check_positive(loss_threshold, "loss_threshold")
    m, d = student0.m, student0.d
    factor = -m / problem.scale**2
    counter = [0]

    def rhs(_t: float, w: Array) -> Array:
        counter[0] += 1
        _, g = problem.loss_and_gradient(Student.from_flat(w, m, d))
        return factor * g.flat()

    events = None
    if loss_threshold is not None:
        def below(_t: float, w: Array) -> float:
            return problem.loss(Student.from_flat(w, m, d)) - loss_threshold

        below.terminal = False
        below.direction = -1
        events = [below]
    t_eval = _time_grid(t_final, n_points)
    sol = solve_ivp(rhs, (0.0, t_final), student0.flat(), method=method, t_eval=t_eval,
                    rtol=rtol, atol=atol, events=events)
    t = sol.t
    losses = np.array([problem.loss(Student.from_flat(w, m, d)) for w in sol.y.T])
    tt = np.nan
    if loss_threshold is not None:
        if losses[0] <= loss_threshold:
            tt = 0.0
        elif len(sol.t_events[0]):
            tt = float(sol.t_events[0][0])
    status = "ok" if sol.status == 0 else "failed"
    return Trajectory(t, losses, Student.from_flat(sol.y[:, -1], m, d), tt, counter[0], status, sol.message)


def train_sgd(
    problem: TwoLayer,
    student0: Student,
    t_final: float,
    *,
    learning_rate: float = 0.01,
    batch_size: int = 64,
    seed: int = 0,
    n_points: int = 41,
    loss_threshold: float | None = None,
) -> Trajectory:
    """Mini-batch SGD on fresh Gaussian samples, in the time units of the flow.

    Each step draws ``batch_size`` new inputs and moves
    ``w <- w - learning_rate (m / scale^2) grad_w Lhat`` with ``Lhat`` the
    batch mean of ``(f - f*)^2 / 2``; time advances by ``learning_rate`` per step,
    so that small learning rates follow :func:`train_gradient_flow`.

    Parameters
    ----------
    problem : TwoLayer
    student0 : Student
    t_final : float
        Final time ``> 0`` (``ceil(t_final / learning_rate)`` steps).
    learning_rate : float
        Step in time units, ``> 0``.
    batch_size : int
        Fresh samples per step, ``>= 1``.
    seed : int
        Seed of the samples.
    n_points : int
        Roughly log-spaced checkpoints at which the exact population loss is recorded.
    loss_threshold : float, optional
        Record the first checkpoint time with loss below this value.
    """
    problem._check(student0)
    t_final = _check_positive(t_final, "t_final")
    lr = _check_positive(learning_rate, "learning_rate")
    batch = _check_int(batch_size, "batch_size", 1)
    n_points = _check_int(n_points, "n_points", 2)
    n_steps = int(math.ceil(t_final / lr))
    checkpoints = np.unique(np.round(np.geomspace(1, n_steps, n_points - 1)).astype(int))
    rng = np.random.default_rng([int(seed), 0x5CD])
    A, c = student0.a.copy(), student0.c.copy()
    m = student0.m
    k = problem.scale / m
    step_factor = lr * m / problem.scale**2
    g, dg = problem.act.g, problem.act.dg
    t_list, l_list = [0.0], [problem.loss(student0)]
    next_cp = 0
    for step in range(1, n_steps + 1):
        x = rng.standard_normal((batch, student0.d))
        U = x @ A.T
        gU = g(U)
        err = k * (gU @ c) - problem.target_output(x)  # (batch,)
        grad_c = k * (gU.T @ err) / batch
        grad_a = k * c[:, None] * ((dg(U) * err[:, None]).T @ x) / batch
        A -= step_factor * grad_a
        c -= step_factor * grad_c
        if next_cp < len(checkpoints) and step == checkpoints[next_cp]:
            t_list.append(step * lr)
            l_list.append(problem.loss(Student(A, c)))
            next_cp += 1
    losses = np.array(l_list)
    t = np.array(t_list)
    tt = np.nan
    if loss_threshold is not None:
        below = np.nonzero(losses <= _check_positive(loss_threshold, "loss_threshold"))[0]
        tt = float(t[below[0]]) if below.size else np.nan
    status = "ok" if np.all(np.isfinite(losses)) else "failed"
    return Trajectory(t, losses, Student(A, c), tt, n_steps, status, "")


# --- single runs and sweeps ---------------------------------------------------------

def horizon(tau: float, T: float, activation: str = "relu") -> float:
    """Final time of a sweep point: ``T / max(1, kappa(tau))``.

    ``kappa`` is how the tangent kernel grows with the initial scale: ``tau^2``
    for ReLU (homogeneous of degree 2 in the weights), ``tau`` for bounded
    activations (sigmoid, tanh, erf, ...: ``E[g'(u)^2] ~ 1 / tau`` for wide
    pre-activations).  Every run thus covers ``T`` units of its kernel time
    ``kappa t`` when ``kappa > 1``, and ``T`` units of mean-field time otherwise
    (see the module docstring).
    """
    tau = _check_positive(tau, "tau")
    kappa = tau**2 if get_activation(activation).name == "relu" else tau
    return _check_positive(T, "T") / max(1.0, kappa)


_MEASURES: dict[str, tuple[str, str]] = {
    "loss": ("population loss at the end of training", "1"),
    "loss_initial": ("population loss at initialisation", "1"),
    "relative_loss": ("final loss / initial loss", "1"),
    "loss_floor": ("lower bound on the loss from the symmetry of the activation", "1"),
    "excess_loss": ("final loss minus the symmetry floor", "1"),
    "weight_displacement": ("relative weight displacement |w - w0| / |w0|", "1"),
    "tangent_loss": ("population loss of the trained tangent model", "1"),
    "tangent_loss_limit": ("loss of the tangent model at infinite time", "1"),
    "tangent_displacement": ("relative weight displacement of the tangent model", "1"),
    "tangent_distance": ("L2 distance between network and tangent-model predictors", "1"),
    "relative_tangent_distance": ("tangent distance / teacher L2 norm", "1"),
    "time_to_threshold": ("time to reach the loss threshold (NaN: never)", "mean-field time t"),
    "t_final": ("final time of the run", "mean-field time t"),
    "n_evaluations": ("loss-gradient evaluations or SGD steps", "1"),
    "failed": ("run failed (1) or not (0)", "1"),
}


def run_two_layer(
    *,
    d: int,
    m0: int,
    m: int,
    tau: float,
    seed: int = 0,
    teacher_seed: int = 0,
    activation: str = "relu",
    scale: float = 1.0,
    symmetric: bool = True,
    centered: bool = False,
    t_final: float | None = None,
    T: float = 200.0,
    threshold: float = 0.25,
    tangent: bool = True,
    trainer: str = "flow",
    learning_rate: float = 0.01,
    batch_size: int = 64,
    quadrature_nodes: int = 32,
    rtol: float = 1e-6,
) -> dict[str, float]:
    """Train one student on a teacher and return the measures of :data:`_MEASURES`.

    Parameters
    ----------
    d, m0, m : int
        Input dimension, teacher units, student units.
    tau : float
        Initial scale (:func:`init_student`).
    seed, teacher_seed : int
        Seeds of the student initialisation and of the teacher.
    activation : str
        Student activation.
    scale : float
        Output scale.
    symmetric : bool
        Symmetrised initialisation (output exactly 0 at start; ``m`` even).
    centered : bool
        Train the centred predictor ``f(w) - f(w0)`` (:class:`TwoLayer` ``offset``).
    t_final : float, optional
        Final time; default :func:`horizon` ``(tau, T, activation)``.
    T : float
        Horizon parameter of :func:`horizon`.
    threshold : float
        Loss threshold, as a fraction of the initial loss, for ``time_to_threshold``.
    tangent : bool
        Also train the tangent model and measure the distance to it.
    trainer : {"flow", "sgd"}
        Gradient flow on the exact loss, or mini-batch SGD on fresh samples.
    learning_rate, batch_size : float, int
        SGD settings.
    quadrature_nodes : int
        Gauss-Hermite nodes for activations without closed forms.
    rtol : float
        Relative tolerance of the flow (absolute tolerance ``1e-3 rtol tau``).

    Returns
    -------
    dict
        Scalars named as in :data:`_MEASURES` (NaN where not computed).
    """
    if trainer not in ("flow", "sgd"):
        raise ValueError(f"trainer: must be 'flow' or 'sgd', got {trainer!r}")
    threshold = _check_positive(threshold, "threshold")
    teacher = make_teacher(d, m0, teacher_seed)
    student0 = init_student(m, d, tau, seed, symmetric=bool(symmetric))
    problem = TwoLayer(teacher, activation, scale, quadrature_nodes,
                       offset=student0 if centered else None)
    tf = horizon(tau, T, activation) if t_final is None else _check_positive(t_final, "t_final")
    loss0 = problem.loss(student0)
    if trainer == "flow":
        traj = train_gradient_flow(problem, student0, tf, loss_threshold=threshold * loss0, rtol=rtol,
                                   atol=rtol * 1e-3 * tau)
    else:
        traj = train_sgd(problem, student0, tf, learning_rate=learning_rate, batch_size=batch_size,
                         seed=seed, loss_threshold=threshold * loss0)
    w0 = student0.flat()
    out = {key: np.nan for key in _MEASURES}
    t_end = float(traj.t[-1])
    floor = problem.loss_floor()
    out.update(
        loss=float(traj.loss[-1]),
        loss_initial=loss0,
        relative_loss=float(traj.loss[-1]) / loss0,
        loss_floor=floor,
        excess_loss=float(traj.loss[-1]) - floor,
        weight_displacement=float(np.linalg.norm(traj.student.flat() - w0) / np.linalg.norm(w0)),
        time_to_threshold=traj.time_to_threshold,
        t_final=t_end,
        n_evaluations=float(traj.n_evaluations),
        failed=float(traj.status != "ok"),
    )
    if tangent:
        tm = problem.tangent(student0)
        dist = tm.distance(traj.student, t_end)
        out.update(
            tangent_loss=tm.loss(t_end),
            tangent_loss_limit=tm.loss_limit(),
            tangent_displacement=tm.displacement(t_end) / float(np.linalg.norm(w0)),
            tangent_distance=dist,
            relative_tangent_distance=dist / math.sqrt(problem.teacher_norm2()),
        )
    return out


def _sweep_point(kwargs: Mapping[str, Any]) -> dict[str, float]:
    return run_two_layer(**kwargs)


def two_layer_sweep(
    taus: Sequence[float],
    widths: Sequence[int],
    seeds: Sequence[int] = (0, 1, 2),
    *,
    activations: Sequence[str] = ("relu",),
    scales: Sequence[float] = (1.0,),
    d: int = 20,
    m0: int = 3,
    client: Any = None,
    n_workers: int | None = None,
    **run_kwargs: Any,
) -> xr.Dataset:
    """Train a grid of students through :func:`phasekit.parallel.parallel_map`.

    Parameters
    ----------
    taus : sequence of float
        Initial scales (``> 0``), typically log-spaced from 1e-2 to 1e1.
    widths : sequence of int
        Student widths ``m`` (``>= 1``; even for the symmetrised initialisation).
    seeds : sequence of int
        Student seeds; the teacher is the same for all points (``teacher_seed``).
    activations : sequence of str
        Student activations.
    scales : sequence of float
        Output scales.
    d, m0 : int
        Input dimension and teacher units.
    client, n_workers
        Passed to :func:`phasekit.parallel.parallel_map`.
    **run_kwargs
        Further arguments of :func:`run_two_layer` (``T``, ``threshold``, ``tangent``,
        ``trainer``, ``teacher_seed``, ``symmetric``, ``centered``, ...).

    Returns
    -------
    xarray.Dataset
        Dimensions ``(activation, scale, m, tau, seed)``; one variable per
        measure of :func:`run_two_layer`, with provenance attributes.
    """
    taus = [_check_positive(t, "taus") for t in taus]
    widths = [_check_int(w, "widths", 1) for w in widths]
    scales = [_check_positive(s, "scales") for s in scales]
    seeds = [int(s) for s in seeds]
    activations = [get_activation(a).name for a in activations]
    d = _check_int(d, "d", 1)
    m0 = _check_int(m0, "m0", 1)
    if not (taus and widths and seeds and activations and scales):
        raise ValueError("taus, widths, seeds, activations, scales: need at least one value each")
    if run_kwargs.get("symmetric", True):
        for w in widths:
            if w % 2:
                raise ValueError(f"widths: the symmetrised initialisation needs even widths, got {w}")
    unknown = set(run_kwargs) - set(inspect.signature(run_two_layer).parameters)
    if unknown or {"d", "m0", "m", "tau", "seed", "activation", "scale"} & set(run_kwargs):
        raise ValueError(f"run_kwargs: unknown or duplicated argument(s) {sorted(unknown or run_kwargs)}")
    points = [dict(d=d, m0=m0, m=w, tau=t, seed=s, activation=a, scale=sc, **run_kwargs)
              for a in activations for sc in scales for w in widths for t in taus for s in seeds]
    results = parallel_map(_sweep_point, points, client=client, n_workers=n_workers)
    shape = (len(activations), len(scales), len(widths), len(taus), len(seeds))
    dims = ("activation", "scale", "m", "tau", "seed")
    data = {}
    for key, (long_name, units) in _MEASURES.items():
        values = np.array([r[key] for r in results], dtype=float).reshape(shape)
        data[key] = (dims, values, {"long_name": long_name, "units": units})
    coords = {
        "activation": ("activation", np.array(activations), {"long_name": "student activation", "units": "1"}),
        "scale": ("scale", np.array(scales), {"long_name": "output scale", "units": "1"}),
        "m": ("m", np.array(widths), {"long_name": "student width m", "units": "1"}),
        "tau": ("tau", np.array(taus), {"long_name": "initial scale tau", "units": "1"}),
        "seed": ("seed", np.array(seeds), {"long_name": "student seed", "units": "1"}),
    }
    parameters = dict(taus=taus, widths=widths, seeds=seeds, activations=activations, scales=scales,
                      d=d, m0=m0, **run_kwargs)
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(provenance_attrs(
        parameters,
        system="two-layer student-teacher: lazy versus feature learning",
        time_units="mean-field time t: dw/dt = -(m / scale^2) grad L",
        horizon="T / max(1, tau^2) for relu, T / max(1, tau) otherwise, unless t_final is given",
    ))
    return ds
