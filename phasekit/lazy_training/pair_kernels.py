"""Pair kernels between the weight rows of two-layer networks, from the activation's pair moments.

For rows ``a`` of ``A`` and ``b`` of ``B`` the arguments ``u = a . x``,
``v = b . x`` (``x ~ N(0, I)``) have covariance entries ``(|a|^2, |b|^2, a . b)``;
every expectation below is a pair moment of the activation
(:meth:`phasekit.Activation.pair_moments`, :meth:`~phasekit.Activation.third_moments`,
:meth:`~phasekit.Activation.relu_moments`) at those entries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.activations import Activation
from ..core.closed_forms import relu_I2
from .networks import Array

_TWO_PI = 2.0 * np.pi


@dataclass(frozen=True)
class _Pairs:
    """Expectations over ``u = a_i . x``, ``v = b_k . x``; every array has shape (m_a, m_b)."""

    K: Array   # E[g(u) h(v)]
    H: Array   # E[g''(u) h(v)]
    Hb: Array  # E[g(u) h''(v)]
    J: Array   # E[g'(u) h'(v)]


def _norms2(A: Array) -> Array:
    return np.einsum("ij,ij->i", A, A)


def student_pairs(act: Activation, A: Array, B: Array, nodes: int) -> _Pairs:
    """Student-student pair kernels between the rows of ``A`` and ``B``."""
    caa = _norms2(A)
    C = A @ B.T
    if A is not B:
        K, H, Hb, J = act.pair_moments(caa[:, None], _norms2(B)[None, :], C, nodes=nodes)
        return _Pairs(K, H, Hb, J)
    # One set of units: each unordered pair once (H and Hb swap under transposition), and
    # a unit with itself exactly collinear (the matrix product rounds its diagonal apart
    # from the squared norms, which puts an angle of ~1e-8 between a row and itself).
    iu, ku = np.triu_indices(A.shape[0])
    c12 = np.where(iu == ku, caa[iu], C[iu, ku])
    k_, h_, hb_, j_ = act.pair_moments(caa[iu], caa[ku], c12, nodes=nodes)
    K, J, H = np.empty(C.shape), np.empty(C.shape), np.empty(C.shape)
    K[iu, ku] = K[ku, iu] = k_
    J[iu, ku] = J[ku, iu] = j_
    H[iu, ku] = h_
    H[ku, iu] = hb_
    return _Pairs(K, H, H.T.copy(), J)


def third_pairs(act: Activation, A: Array, nodes: int) -> tuple[Array, Array]:
    """``T = E[g'''(u) g'(v)]`` and ``D = E[g''(u) g''(v)]`` between the rows of ``A``, shapes (m, m)."""
    caa = _norms2(A)
    C = A @ A.T
    np.fill_diagonal(C, caa)  # a row is exactly collinear with itself (see student_pairs)
    with np.errstate(divide="ignore", invalid="ignore"):
        T, D = act.third_moments(caa[:, None], caa[None, :], C, nodes=nodes)
    if act.d2g is None:
        # g'' is a delta function (relu): E[delta(u) delta(v)] = 1 / (2 pi sqrt(det)) and
        # E[delta'(u) step(v)] diverge for parallel rows, but in E[g'g' x x^T] they combine
        # into a term that vanishes there: use that limit where det <= 1e-20 |a|^2 |b|^2.
        with np.errstate(invalid="ignore", over="ignore"):
            ok = D * (_TWO_PI * np.sqrt(caa[:, None] * caa[None, :])) < 1e10
        T, D = np.where(ok, T, 0.0), np.where(ok, D, 0.0)
    return T, D


def teacher_pairs(act: Activation, A: Array, B: Array, nodes: int) -> _Pairs:
    """Student-teacher pair kernels against ReLU units with rows ``B`` (``Hb`` is not needed: NaN)."""
    K, H, J = act.relu_moments(_norms2(A)[:, None], _norms2(B)[None, :], A @ B.T, nodes=nodes)
    return _Pairs(K, H, np.full_like(K, np.nan), J)


def relu_gram(B: Array) -> Array:
    """``E[relu(b_j . x) relu(b_k . x)]`` between the rows of ``B`` (the teacher's units)."""
    cbb = _norms2(B)
    C = B @ B.T
    np.fill_diagonal(C, cbb)
    return relu_I2(cbb[:, None], cbb[None, :], C)
