"""Pair kernels of the two-layer network: ReLU arc-cosine forms, probit mixtures, quadrature."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
from scipy import special

from ..core.activations import Activation
from .networks import Array

_TWO_PI = 2.0 * np.pi


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
