"""Orthant probabilities and exact Gaussian expectations of ReLU products.

For a zero-mean Gaussian vector ``x`` with covariance ``C`` this module gives

==============  ==========================================  ===========
function        quantity                                    ``C`` shape
==============  ==========================================  ===========
``orthant2``    ``P(x1 > 0, x2 > 0)``                       (..., 2, 2)
``orthant3``    ``P(x1 > 0, x2 > 0, x3 > 0)``               (..., 3, 3)
``orthant4``    ``P(x1 > 0, ..., x4 > 0)``                  (..., 4, 4)
``relu_I4``     ``E[theta(a) theta(b) relu(c) relu(d)]``    (..., 4, 4)
==============  ==========================================  ===========

with ``theta`` the unit step and ``relu(x) = max(x, 0)``.  All functions are
vectorised over the leading axes and return an array of shape ``C.shape[:-2]``
(a NumPy scalar for a single matrix).  The two- and three-variable ReLU
expectations are the arc-cosine kernels of :mod:`phasekit.core.closed_forms`
(``E[theta(a) theta(b)]`` is :func:`orthant2`).

Conventions
-----------
* Functions are evaluated pointwise with ``theta(0) = 0`` and ``relu(0) = 0``
  (strict inequalities), so an argument with zero variance gives exactly ``0``
  for every quantity above.  This matches ``dg(x) = (x > 0)`` of the ReLU
  activation.  Negative variances raise :class:`ValueError`.
* Singular covariances are allowed: coinciding arguments (``a`` and ``b`` the
  same variable), collinear pairs (correlation exactly +-1) and any other rank
  deficiency.  With all variances positive every quantity above is continuous
  in ``C`` on the cone of positive semidefinite matrices, and the value
  returned is that continuous extension.
* Round-off is treated as such: pairwise correlations within ``1e-14`` of
  +-1 (or beyond) are set to +-1, and eigenvalues of the correlation matrix
  below ``1e-14`` (down to ``-1e-6``, a round-off violation of positive
  semidefiniteness) are set to zero.  Near such points every quantity varies
  like the square root of the distance, so this keeps a coinciding pair that
  was assembled with rounding errors of ``1e-16`` from being off by ``1e-8``.
  Eigenvalues below ``-1e-6`` raise :class:`ValueError`.

The 4-variable quantities
-------------------------
There is no closed form for the quadrivariate orthant probability, so
``orthant4`` and ``relu_I4`` integrate along the straight path of correlation
matrices ``R_t = (1 - t) I + t R`` from ``t = 0`` (independent variables) to
``t = 1``.  For ``E_t = E[f(x)]`` under ``R_t`` the heat-equation identity
``dE/dR_ij = E[d_i d_j f]`` (``i != j``; Price's theorem, i.e. Gaussian
integration by parts twice) gives ``dE/dt = sum_{i<j} r_ij E_t[d_i d_j f]``,
and for step and ReLU factors every ``E_t[d_i d_j f]`` is closed form:

* ``f = theta(x1) ... theta(x4)`` (Plackett's identity):
  ``E[d_i d_j f] = phi2_ij Q_ij`` where ``phi2_ij = 1 / (2 pi sqrt(1 - r_ij^2))``
  is the bivariate density of ``(x_i, x_j)`` at the origin and
  ``Q_ij = 1/4 + asin(rho_kl|ij) / (2 pi)`` is the orthant probability of the
  other two variables ``(k, l)`` given ``x_i = x_j = 0`` (``rho_kl|ij`` their
  partial correlation).  Hence ``P4 = 1/16 + int_0^1 sum_{i<j} r_ij phi2_ij Q_ij dt``.
* ``f = theta(a) theta(b) relu(c) relu(d)`` (indices ``a, b, c, d = 0, 1, 2, 3``):

  - ``E[d_c d_d f] = P4(R_t)``;
  - ``E[d_a d_b f] = phi2_ab E[relu(c) relu(d) | a = b = 0]
    = phi2_ab (S_cd Q_ab + sqrt(det S) / (2 pi))`` with ``S`` the conditional
    covariance of ``(c, d)`` given ``a = b = 0``;
  - ``E[d_k d_x f] = E[delta(x_k) relu(y) theta(others)]`` for ``k`` in
    ``{a, b}``, ``x`` in ``{c, d}`` and ``y`` the other ReLU argument.  Stein's
    lemma on the factor ``y`` under the conditional law given ``x_k = 0``
    gives ``sum_{m != k} S^(k)_ym phi2_km Q_km`` with
    ``S^(k)_ym = r_ym - r_yk r_km`` the conditional covariance given
    ``x_k = 0`` (``S^(k)_yy = 1 - r_ky^2``).

  Starting from ``E_0 = E[theta]^2 E[relu]^2 = 1 / (8 pi)`` and exchanging
  the order of the two integrals that the ``P4(R_t)`` term produces,
  ``I4(R) = 1/(8 pi) + r_cd / 16 + int_0^1 [r_ab G_ab + r_ac G_ac + r_ad G_ad
  + r_bc G_bc + r_bd G_bd + r_cd (1 - t) sum_{i<j} r_ij phi2_ij Q_ij] dt``
  where ``G_ij = E_t[d_i d_j f]`` (all ``r`` above are entries of ``R_t``
  inside the integrals).  For a covariance ``C = sigma R sigma`` with
  ``sigma`` the standard deviations, ``I4(C) = sigma_c sigma_d I4(R)``.

Evaluating the limit from inside the positive-definite cone (every ``R_t``
with ``t < 1`` is positive definite) is what makes singular ``C`` need no
special cases: coinciding or collinear arguments, and quantities such as the
partial correlation of two variables that are both determined by the
conditioning pair, all enter only through their limits.  The partial
correlations are computed from the eigen-decomposition ``R = V diag(lam) V^T``
as ``R_t^{-1} = V diag(1 / (t lam + 1 - t)) V^T``, which stays accurate when
``R_t`` is nearly singular (no cancellation of large terms).  Well-conditioned
``R`` (smallest eigenvalue above 0.01, the plain rules' range, decided with
the rule by Sylvester's criterion on ``R - mu I``, no eigen-decomposition) use
the adjugate instead: its entries and ``det R_t`` are polynomials of degree 3
and 4 in ``t`` with coefficients in the correlations, and partial
correlations are ratios of its entries; every minor of ``R_t`` is then at
least ``0.01^3``, and the integrals agree with the eigen route to ``2e-15``
(clustered small eigenvalues included).

Quadrature
----------
Near ``t = 1`` the integrands of singular ``R`` behave like powers of
``sqrt(1 - t)`` (e.g. ``phi2_ij ~ (1 - t)^(-1/2)`` for a collinear pair), so
the substitution ``t = 1 - s^2`` makes them analytic in ``s`` and fixed
Gauss-Legendre nodes in ``s`` converge exponentially.  A principal block of
``R`` with a small but non-zero eigenvalue ``mu`` puts a branch point at
distance ``~sqrt(mu)`` from ``s = 0``, i.e. a boundary layer of that width.
The smallest such ``mu`` over all principal blocks (for non-singular ``R``
simply its smallest eigenvalue) selects the rule: 12, 14, 16, 20, 24 or 32
plain nodes for ``mu >= 0.5, 0.3, 0.1, 5e-2, 3e-2, 1e-2`` (at least 24 for an
exactly singular matrix).  Below that a boundary layer of width
``b = 8^-L <= sqrt(mu)`` (``L = 2 .. 8``) gets the substitution
``s = b sinh(u)`` on ``[0, 1/8]``: every branch point ``s = +-i b_k`` with
``b_k >= b`` lands on ``Im u = +-pi/2``, so Gauss-Legendre in ``u`` on
``[0, asinh(1 / (8 b))]`` converges geometrically at a rate set by that
interval's length (``8 + 3 asinh(8^(L-1))`` nodes, 17 to 54), plus 18 plain
nodes on ``[1/8, 1]``: 35 to 72 nodes.  Matrices are grouped by route and
rule, each group one vectorised pass; the adjugate route's rules share a
pass where that pays, every matrix on its own nodes padded with zero-weight
ones to the longest rule, which leaves each matrix's value bit for bit what
its own pass gives.

Coinciding arguments
--------------------
Where two arguments of ``relu_I4`` are exactly the same variable (equal
variances, covariance and cross covariances, bit for bit, as in the blocks
``i = k``, ``u = w`` or ``u = x_i`` of the committee flow), ``theta^2 = theta``
and ``theta(x) relu(x) = relu(x)`` leave three variables, and Stein's lemma
on one ReLU factor gives closed forms in the pair correlations alone:

* ``E[theta(a) relu(c) relu(d)] = (r_ac s_ad + s_cd + r_ad s_ac) / (4 pi) + r_cd P3(a, c, d)``;
* ``E[theta(a) theta(b) relu(c)^2] = P3(a, b, c) + (r_ac s_ac + r_bc s_bc + N / s_ab) / (4 pi)``,
  ``N = 2 r_ac r_bc - r_ab (r_ac^2 + r_bc^2)``,

with ``s = sqrt(1 - r^2)`` (correlation units).  They need no special case
for further coincidences or collinear pairs (``s = 0``), and near collinear
pairs they are more accurate than the path integral, whose eigenvalues of a
nearly singular matrix carry the rounding of the decomposition.

Accuracy (absolute, correlation units, i.e. ``relu_I4 / (sigma_c sigma_d)``),
measured against a 1050-node composite rule and, independently, against
closed forms, nested adaptive quadrature and Monte Carlo (``tests``):

* random matrices at every conditioning, exactly singular patterns
  (coinciding, collinear, rank 2 and 3) and their neighbours at distance
  ``1e-1 .. 1e-6``: below ``1e-12``, typically ``1e-15``, for both
  ``orthant4`` and ``relu_I4``;
* eigenvalues ``0 < mu < 1e-14`` are round-off territory and treated as exact
  zeros, which changes the result by ``O(sqrt(mu)) < 1e-7`` (the functions
  themselves vary like ``sqrt(mu)`` there: ``orthant2`` near ``rho = 1`` is
  ``1/2 - sqrt(2 (1 - rho)) / (2 pi) + ...``, and ``relu_I4`` at a pair
  correlation ``1 - eta`` differs from its value at ``1`` by ``~sqrt(eta)``).

Cost: about 35 ms of CPU time for ``relu_I4`` on 10^4 random blocks (one
thread; less for well-conditioned ones, which take fewer nodes and no
eigen-decomposition), about twice that when most blocks are nearly singular
(smallest eigenvalue ~1e-6); blocks with coinciding arguments cost a few
closed-form pair terms.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np

from .rules import gauss_legendre_interval

__all__ = ['orthant2', 'orthant3', 'orthant4', 'relu_I4']


Array = np.ndarray


_TWO_PI = 2.0 * np.pi


# Eigenvalues of the correlation matrix below -_PSD_TOL are taken as a genuinely
# indefinite input; smaller violations are round-off (e.g. a singular
# covariance assembled from separately computed overlaps) and are set to zero.
_PSD_TOL = 1e-6


# Quadrature design (see the module docstring).  Eigenvalues below _LAM_EXACT
# are round-off zeros of an exactly singular matrix: they leave the integrand
# analytic in s.  The smallest genuinely positive eigenvalue lam* of a
# principal block picks the rule: plain Gauss-Legendre with _PLAIN[i][1] nodes
# if lam* >= _PLAIN[i][0] (the node counts reach 1e-12 there), otherwise the
# boundary layer of width ~sqrt(lam*) gets graded panels [q^-(j+1), q^-j]
# down to ~sqrt(lam*)/kappa.
_LAM_EXACT = 1e-14


_PLAIN = ((0.5, 12), (0.3, 14), (0.1, 16), (5e-2, 20), (3e-2, 24), (1e-2, 32))


# Fewest nodes for an exactly singular matrix (the level of that plain rule).
_SINGULAR_NODES = 24


_SINGULAR_LEVEL = [n for _, n in _PLAIN].index(_SINGULAR_NODES)


_GRADE_RATIO = 8.0


_GRADE_KAPPA = 1.0


# Graded rules (see _rule): on [0, 1/q] the substitution s = b sinh(u),
# b = q^-depth, with ceil(_SINH_NODES[0] + _SINH_NODES[1] U) Gauss-Legendre
# nodes in u on [0, U], U = asinh(1 / (q b)); _N_TOP nodes on [1/q, 1].
_SINH_NODES = (8.0, 3.0)


_N_TOP = 18


# (matrices x nodes) evaluated at once.  The temporaries (a few dozen of up to
# 10x this many doubles) then stay in cache, which is faster than one big pass.
_CHUNK_ELEMENTS = 1 << 12


# A pass of the integrand costs a fixed overhead of about this many (matrix,
# node) elements' worth of arithmetic (its ~60 NumPy calls), so the adjugate
# route's levels share one pass, each matrix with its own rule padded by
# zero-weight nodes, while the padding costs less than the passes it saves.
_PASS_ELEMENTS = 600


# Where padded nodes sit: an interior point, at which every R_t is positive
# definite and the integrands finite.
_PAD_NODE = 0.5


# Plain levels (thresholds of the smallest eigenvalue, _PLAIN order) that
# well-conditioned matrices take without an eigen-decomposition; the last is
# the smallest eigenvalue for which the closed-form adjugate of R_t is used.
_ADJUGATE_LEVELS = tuple(lam for lam, _ in _PLAIN)


# Index pairs (i, j), i < j, of a 4x4 matrix.  The complementary pair of
# _PAIRS[p] is _PAIRS[5 - p].
_PAIRS = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))


# Position of a pair in _PAIRS, for either order of its indices.
_PAIR_INDEX = {pair: n for n, p in enumerate(_PAIRS) for pair in (p, p[::-1])}


# Row/column indices of the 10 distinct entries of a symmetric 4x4 matrix: the
# diagonal first, then _PAIRS.
_ROWS = np.array([0, 1, 2, 3] + [i for i, _ in _PAIRS])


_COLS = np.array([0, 1, 2, 3] + [j for _, j in _PAIRS])


# For pair p: index of the complementary pair and its two members.
_COMPLEMENT = np.array([5 - p for p in range(6)])


_COMP_U = np.array([_PAIRS[5 - p][0] for p in range(6)])


_COMP_W = np.array([_PAIRS[5 - p][1] for p in range(6)])


def _as_covariance(C: Array, d: int) -> Array:
    """Validate shape, finiteness and non-negative variances; return a float array."""
    C = np.asarray(C, dtype=float)
    if C.ndim < 2 or C.shape[-2:] != (d, d):
        raise ValueError(f"C: expected shape (..., {d}, {d}), got {C.shape}")
    if not np.all(np.isfinite(C)):
        raise ValueError("C: entries must be finite")
    if np.any(np.diagonal(C, axis1=-2, axis2=-1) < 0):
        raise ValueError("C: variances (diagonal entries) must be non-negative")
    return C


def _scalar_or_array(x: Array) -> Array:
    # A single matrix gives a NumPy scalar, like NumPy reductions do.
    return x[()] if x.ndim == 0 else x


def _correlation(C: Array, i: int, j: int) -> tuple[Array, Array]:
    """Correlation ``C_ij / sqrt(C_ii C_jj)`` and the zero-variance mask.

    The correlation is clipped to [-1, 1], and values within ``_LAM_EXACT`` of
    +-1 are set to +-1: they are round-off of a coinciding or collinear pair,
    and near +-1 the closed forms vary like ``sqrt(1 - |rho|)``, so a rounding
    error of 1e-16 would otherwise show up as 1e-8.  Where a variance vanishes
    the correlation is set to 0 so that formulas stay finite; callers overwrite
    those entries by the pointwise-convention value.
    """
    vv = C[..., i, i] * C[..., j, j]
    zero = vv <= 0.0
    rho = np.where(zero, 0.0, C[..., i, j] / np.sqrt(np.where(zero, 1.0, vv)))
    rho = np.where(np.abs(rho) > 1.0 - _LAM_EXACT, np.sign(rho), rho)
    return rho, zero


def orthant2(C: Array) -> Array:
    """Bivariate orthant probability ``P(x1 > 0, x2 > 0)``, ``x ~ N(0, C)``.

    Sheppard's formula ``1/4 + asin(rho) / (2 pi)``.

    Parameters
    ----------
    C : array_like, shape (..., 2, 2)
        Covariance matrices (positive semidefinite; singular allowed).

    Returns
    -------
    ndarray, shape (...)
        0 where a variance vanishes (strict inequality).

    Examples
    --------
    >>> round(float(orthant2([[1.0, 0.5], [0.5, 1.0]])), 15)  # 1/4 + (pi/6) / (2 pi)
    0.333333333333333
    """
    C = _as_covariance(C, 2)
    rho, zero = _correlation(C, 0, 1)
    out = 0.25 + np.arcsin(rho) / _TWO_PI
    return _scalar_or_array(np.where(zero, 0.0, out))


def orthant3(C: Array) -> Array:
    """Trivariate orthant probability ``P(x1 > 0, x2 > 0, x3 > 0)``, ``x ~ N(0, C)``.

    ``1/8 + (asin r12 + asin r13 + asin r23) / (4 pi)``.

    Parameters
    ----------
    C : array_like, shape (..., 3, 3)
        Covariance matrices (positive semidefinite; singular allowed).

    Returns
    -------
    ndarray, shape (...)
        0 where a variance vanishes.
    """
    C = _as_covariance(C, 3)
    total = np.zeros(C.shape[:-2])
    zero = np.zeros(C.shape[:-2], dtype=bool)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        rho, z = _correlation(C, i, j)
        total = total + np.arcsin(rho)
        zero |= z
    out = 0.125 + total / (4.0 * np.pi)
    return _scalar_or_array(np.where(zero, 0.0, out))


@lru_cache(maxsize=None)
def _rule(level: int) -> tuple[Array, Array]:
    """Nodes ``s`` and weights ``2 s w`` (the Jacobian of ``t = 1 - s^2`` folded in).

    Levels ``0 .. len(_PLAIN) - 1`` are plain Gauss-Legendre on [0, 1]; a
    higher level, with ``L = level - len(_PLAIN) + 1``, resolves a boundary
    layer of width ``b = q^-L``: the branch points of the integrand sit at
    ``s = +-i b_k`` with ``b_k >= b``, and ``s = b sinh(u)`` maps all of them
    onto the lines ``Im u = +-pi/2``, so Gauss-Legendre in ``u`` on
    ``[0, asinh(1 / (q b))]`` (the part ``s <= 1/q``) converges at a rate set
    by the length of that interval, ``~ L ln q``; ``[1/q, 1]`` takes
    ``_N_TOP`` plain nodes.
    """
    if level < len(_PLAIN):
        s, w = gauss_legendre_interval(0.0, 1.0, _PLAIN[level][1])
    else:
        q = _GRADE_RATIO
        b = q ** -(level - len(_PLAIN) + 1)
        U = float(np.arcsinh(1.0 / (q * b)))
        u, wu = gauss_legendre_interval(0.0, U, int(np.ceil(_SINH_NODES[0] + _SINH_NODES[1] * U)))
        top = gauss_legendre_interval(1.0 / q, 1.0, _N_TOP)
        s = np.concatenate([b * np.sinh(u), top[0]])
        w = np.concatenate([wu * b * np.cosh(u), top[1]])
    weights = 2.0 * s * w
    s.setflags(write=False)
    weights.setflags(write=False)
    return s, weights


def _levels(R: Array, lam: Array, gap: Array) -> Array:
    """Quadrature level per matrix.

    Parameters
    ----------
    R : ndarray, shape (N, 4, 4)
        Correlation matrices.
    lam : ndarray, shape (N, 4)
        Their eigenvalues, round-off zeros set to 0.
    gap : ndarray, shape (N, 6)
        ``1 - |r_ij|`` (the small eigenvalue of each 2x2 block), round-off
        zeros set to 0.

    Returns
    -------
    ndarray of int, shape (N,)
    """
    # Branch points of the integrands sit where a principal minor of R_t
    # vanishes; a principal block with eigenvalue mu > 0 puts one at distance
    # ~sqrt(mu) from s = 0, i.e. a boundary layer of that width.  Exact zeros
    # create none (the integrand is analytic in s there).  For non-singular R
    # interlacing makes its smallest eigenvalue the smallest of all blocks; a
    # singular R can hide a nearly singular block (e.g. a nearly collinear pair
    # inside an exactly rank-2 matrix), so its 3x3 blocks and pairs are checked.
    lam_star = np.where(lam > 0.0, lam, np.inf).min(axis=-1)
    singular = lam[:, 0] == 0.0
    if singular.any():
        Rs = R[singular]
        blocks = np.stack([Rs[:, keep][:, :, keep] for keep in ([1, 2, 3], [0, 2, 3],
                                                                    [0, 1, 3], [0, 1, 2])], 1)
        mu = np.linalg.eigvalsh(blocks).reshape(-1, 12)
        mu = np.concatenate([mu, gap[singular]], axis=-1)
        mu_star = np.where(mu >= _LAM_EXACT, mu, np.inf).min(axis=-1)
        lam_star[singular] = np.minimum(lam_star[singular], mu_star)
    width = np.sqrt(np.minimum(lam_star, 1.0))
    depth = np.maximum(np.ceil(np.log(_GRADE_KAPPA / width) / np.log(_GRADE_RATIO)), 1)
    level = depth + (len(_PLAIN) - 1)
    for i in range(len(_PLAIN) - 1, -1, -1):
        level = np.where(lam_star >= _PLAIN[i][0], i, level)
    # An exactly singular matrix keeps terms like s^2 / lam_t = 1 in its integrand
    # whose rounding the fewest nodes resolve less well: at least _SINGULAR_NODES.
    return np.where(singular, np.maximum(level, _SINGULAR_LEVEL), level).astype(int)


def _stein_terms() -> tuple[Array, ...]:
    """Index tables of the ``relu_I4`` weights ``alpha``, ``beta``, ``gamma`` (see :func:`_pair_coefficients`).

    dI4/dt contains ``r_kx E_t[delta(x_k) relu(x_y) theta(x_m') theta(x_x)]``
    for ``k`` in ``{a, b} = {0, 1}`` and ``{x, y} = {c, d} = {2, 3}``.  Stein's
    lemma on ``x_y`` given ``x_k = 0`` turns it into a sum over ``m != k`` of
    ``S_ym phi2_km Q_km`` with ``S_ym = t r_ym - t^2 r_yk r_km = t (r_ym - r_yk r_km)
    + t s^2 r_yk r_km`` (the first bracket vanishes exactly for a collinear pair
    ``(k, m)``, so it is formed from ``R`` and not from ``R_t``), and
    ``S_yy phi2_ky = sqrt(det2_ky) / (2 pi)``.  Per term of ``alpha`` / ``beta``:
    the pairs ``(k, x)``, ``(y, m)``, ``(y, k)``, ``(k, m)`` and the 0/1 matrix
    that adds it to pair ``(k, m)``; per term of ``gamma``: ``(k, x)`` onto ``(k, y)``.
    """
    w, ym, yk, km, g_w, g_p = [], [], [], [], [], []
    for k in (0, 1):
        for y in (2, 3):
            x = 5 - y
            g_w.append(_PAIR_INDEX[k, x])
            g_p.append(_PAIR_INDEX[k, y])
            for m in (1 - k, x):
                w.append(_PAIR_INDEX[k, x])
                ym.append(_PAIR_INDEX[y, m])
                yk.append(_PAIR_INDEX[y, k])
                km.append(_PAIR_INDEX[k, m])
    scatter = np.zeros((len(km), 6))
    scatter[np.arange(len(km)), km] = 1.0
    g_scatter = np.zeros((len(g_p), 6))
    g_scatter[np.arange(len(g_p)), g_p] = 1.0
    return (np.array(w), np.array(ym), np.array(yk), np.array(km), scatter,
            np.array(g_w), g_scatter)


_STEIN_W, _STEIN_YM, _STEIN_YK, _STEIN_KM, _STEIN_SCATTER, _GAMMA_W, _GAMMA_SCATTER = _stein_terms()


def _gather_index(scatter: Array) -> Array:
    """Per column of a 0/1 ``scatter`` (n_terms, 6): its terms' indices, padded with ``n_terms`` (a zero)."""
    cols = [np.flatnonzero(scatter[:, p]) for p in range(scatter.shape[1])]
    width = max(len(c) for c in cols)
    return np.array([list(c) + [scatter.shape[0]] * (width - len(c)) for c in cols])


_STEIN_GATHER, _GAMMA_GATHER = _gather_index(_STEIN_SCATTER), _gather_index(_GAMMA_SCATTER)


def _scatter_sum(terms: Array, gather: Array) -> Array:
    """``terms @ scatter`` (N, 6) as additions in a fixed order, entry by entry.

    A BLAS product may round an entry differently with the number of rows it
    is computed with; these sums do not, so a matrix's ``relu_I4`` does not
    depend on the other matrices of the call (the batched committee flow
    relies on it).
    """
    g = np.concatenate([terms, np.zeros((terms.shape[0], 1))], axis=1)[:, gather]   # (N, 6, width)
    out = g[..., 0]
    for c in range(1, g.shape[-1]):
        out = out + g[..., c]
    return out


def _node_sum(values: Array, weights: Array, axis: int = -1) -> Array:
    """``sum_n values * weights`` along the node ``axis``, in node order for every matrix alike (see :func:`_scatter_sum`)."""
    return np.take(np.add.accumulate(values * weights, axis=axis), -1, axis=axis)


def _pair_coefficients(R: Array) -> dict[str, Array]:
    """Per-matrix constants of the path integrands (independent of ``t``).

    Returns arrays of shape (N, 6) indexed by :data:`_PAIRS` (``r``, ``absr``,
    ``gap = 1 - |r|``, and the ``relu_I4`` weights ``alpha``, ``beta``,
    ``gamma``; see :func:`_path_integrand`).
    """
    r = R[:, _ROWS[4:], _COLS[4:]]
    absr = np.abs(r)
    # The terms of _stein_terms, each added onto its pair by a 0/1 matrix.
    w = r[:, _STEIN_W]
    yk_km = r[:, _STEIN_YK] * r[:, _STEIN_KM]
    alpha = _scatter_sum(w * (r[:, _STEIN_YM] - yk_km), _STEIN_GATHER)
    beta = _scatter_sum(w * yk_km, _STEIN_GATHER)
    gamma = _scatter_sum(r[:, _GAMMA_W], _GAMMA_GATHER)
    # 1 - |r| is an eigenvalue of the pair's 2x2 block; like eigenvalues of R,
    # values below _LAM_EXACT are round-off of a collinear pair.
    gap = 1.0 - absr
    gap = np.where(gap < _LAM_EXACT, 0.0, gap)
    return {"r": r, "absr": absr, "gap": gap,
            "alpha": alpha, "beta": beta, "gamma": gamma}


def _path_integrand(lam: Array, V: Array, coef: dict[str, Array], s: Array,
                    with_relu: bool) -> tuple[Array, Array | None]:
    """Integrands of ``orthant4`` and ``relu_I4`` at nodes ``s`` (``t = 1 - s^2``), from the eigen-decomposition.

    Parameters
    ----------
    lam, V : ndarray, shapes (N, 4) and (N, 4, 4)
        Eigen-decomposition of the correlation matrices ``R`` (eigenvalues
        clipped at 0).
    coef : dict of ndarray, each (N, 6)
        Output of :func:`_pair_coefficients` for the same matrices.
    s : ndarray, shape (n,)
        Nodes.
    with_relu : bool
        Also return the ``relu_I4`` integrand.

    Returns
    -------
    h, F : ndarray, shape (N, n)
        ``dP4/dt`` and ``dI4/dt`` at ``R_t`` (``F`` is None unless ``with_relu``).
    """
    return _eigen_integrand(lam, V, coef, s, with_relu, _NODES_INNER)


class _Layout:
    """Axis order of the integrands' arrays: (quantity, matrix, node) or (quantity, node, matrix).

    Elementwise passes run faster over long inner rows: the matrices of the
    well-conditioned (adjugate) route, which are many and take short rules,
    go inner; the eigen route keeps the nodes inner for its stacked products.
    ``node`` shapes a vector over nodes, ``mat`` an array whose last axis runs
    over matrices; ``axis`` is the node axis of a result.
    """

    def __init__(self, nodes_inner: bool):
        self.nodes_inner = nodes_inner
        self.axis = -1 if nodes_inner else 0

    def node(self, x: Array) -> Array:
        """A vector over nodes (n,), or per-matrix nodes (N, n), in this layout's order."""
        if x.ndim == 2:
            return x if self.nodes_inner else x.T
        return x if self.nodes_inner else x[:, None]

    def mat(self, x: Array) -> Array:
        return x[..., None] if self.nodes_inner else x[..., None, :]

    def contract(self, w: Array, x: Array) -> Array:
        """``sum_q w[:, k, q] x[q]`` for per-matrix weights ``w`` (N, k, m) and ``x`` (m, ...): shape (k, ...).

        A stacked product per matrix (the nodes inner) or sums in a fixed
        order (the matrices inner): either way a matrix's result does not
        depend on the other matrices (see :func:`_scatter_sum`).
        """
        if self.nodes_inner:
            return np.matmul(w, x.transpose(1, 0, 2)).transpose(1, 0, 2)
        wq = np.ascontiguousarray(w.transpose(2, 1, 0))[:, :, None, :]   # (m, k, 1, N)
        out = np.multiply(wq[0], x[0])
        term = np.empty_like(out)
        for q in range(1, wq.shape[0]):
            out += np.multiply(wq[q], x[q], out=term)
        return out


_NODES_INNER, _MATRICES_INNER = _Layout(True), _Layout(False)


def _eigen_integrand(lam: Array, V: Array, coef: dict[str, Array], s: Array,
                     with_relu: bool, lay: _Layout) -> tuple[Array, Array | None]:
    """:func:`_path_integrand` with results in the axis order ``lay``."""
    s2 = lay.node(s * s)
    t = 1.0 - s2
    # Eigenvalues of R_t = (1 - t) I + t R, written as s^2 + t lam so that the
    # small ones keep full relative accuracy near t = 1.
    lam_t = t * lay.mat(lam.T)
    lam_t += s2                                                     # (4, n, N)
    inv = np.divide(1.0, lam_t)
    # Entries of the precision matrix R_t^{-1} = V diag(1 / lam_t) V^T: no
    # cancellation between large terms even when R_t is nearly singular.
    prec = lay.contract(V[:, _ROWS, :] * V[:, _COLS, :], inv)       # (10, ...)
    det = lam_t[0] * lam_t[1]
    det *= lam_t[2]
    det *= lam_t[3]
    return _integrand(prec, det, -prec[4 + _PAIR_INDEX[2, 3]] * det, coef, s2, t, with_relu, lay)


def _minor_tables() -> tuple[Array, Array]:
    """Pair indices of the adjugate entries: per variable ``i`` the pairs ``(jk, jl, kl)`` of the other three
    (shape (3, 4)); per pair ``(i, j)`` with ``k, l`` the other two, ``(ik, jk, il, jl)`` (shape (4, 6))."""
    diag = [[_PAIR_INDEX[j, k], _PAIR_INDEX[j, l], _PAIR_INDEX[k, l]]
            for j, k, l in ([x for x in range(4) if x != i] for i in range(4))]
    off = [[_PAIR_INDEX[i, k], _PAIR_INDEX[j, k], _PAIR_INDEX[i, l], _PAIR_INDEX[j, l]]
           for (i, j), (k, l) in zip(_PAIRS, _PAIRS[::-1])]
    return np.array(diag).T, np.array(off).T


_DIAG_MINOR, _OFF_MINOR = _minor_tables()


def _adjugate_polynomials(r: Array) -> tuple[Array, Array, Array]:
    """Coefficients in ``t`` of ``adj(R_t)`` and ``det(R_t)`` for ``R_t = I + t (R - I)``.

    ``r`` (6, N): the correlations in :data:`_PAIRS` order.  Returns the
    coefficients of ``t^2, t^3`` of the diagonal entries (``adj_ii = 1 + c2 t^2
    + c3 t^3``, shape (2, 4, N)), of ``t, t^2, t^3`` of the off-diagonal ones
    (``_PAIRS`` order, (3, 6, N)) and of ``t^2, t^3, t^4`` of the determinant
    (``1 + d2 t^2 + d3 t^3 + d4 t^4``, (3, N)).  ``adj_ii`` is the principal
    minor of the other three variables; for ``i != j`` with ``k, l`` the other
    two, ``adj_ij = -t r_ij + t^2 (r_ik r_jk + r_il r_jl)
    + t^3 r_kl (r_ij r_kl - r_ik r_jl - r_il r_jk)``.
    """
    sq = r * r
    jk, jl, kl = _DIAG_MINOR
    diag = np.stack([-(sq[jk] + sq[jl] + sq[kl]), 2.0 * r[jk] * r[jl] * r[kl]])
    ik, jk, il, jl = (r[x] for x in _OFF_MINOR)
    comp = r[::-1]
    off = np.stack([-r, ik * jk + il * jl, comp * (r * comp - ik * jl - il * jk)])
    x, y, z = r[0] * r[5], r[1] * r[4], r[2] * r[3]
    d4 = x * x + y * y + z * z - 2.0 * (x * y + x * z + y * z)
    # diag[1] sums to twice the sum over the four triangles.
    return diag, off, np.stack([-sq.sum(axis=0), diag[1].sum(axis=0), d4])


def _exceeds(poly: tuple[Array, Array, Array], r01: Array, c: Array) -> Array:
    """Whether the smallest eigenvalue of each correlation matrix exceeds ``c``.

    ``poly`` from :func:`_adjugate_polynomials`, ``r01`` (N,) the first
    correlation, ``c`` (m, 1): (m, N) booleans from Sylvester's criterion on
    ``R - c I``: its leading principal minors, the 3x3 one and the last one
    (the characteristic polynomial ``det(R - c I)``) in the sums of principal
    minors of ``R`` that ``poly`` holds.
    """
    diag, _, (d2, d3, d4) = poly
    d = 1.0 - c
    m2 = d * d - r01 * r01
    m3 = d * (d * d + diag[0, 3]) + diag[1, 3]
    m4 = c * c * (c * c - 4.0 * c + 6.0 + d2) - c * (4.0 + 2.0 * d2 + d3) + (1.0 + d2 + d3 + d4)
    return (m2 > 0.0) & (m3 > 0.0) & (m4 > 0.0)


def _adjugate_integrand(poly: tuple[Array, Array, Array], coef: dict[str, Array], s: Array,
                        with_relu: bool, lay: _Layout) -> tuple[Array, Array | None]:
    """:func:`_eigen_integrand` from the adjugate of ``R_t`` in closed form (well-conditioned ``R``).

    ``poly``: the output of :func:`_adjugate_polynomials`.  The partial
    correlations are ratios of entries of ``adj(R_t) = det(R_t) R_t^{-1}``,
    and ``S_cd det2_ab = -adj_cd``; with the smallest eigenvalue of ``R``
    above ``_ADJUGATE_LEVELS[-1]`` neither has cancellation beyond a few
    units of rounding.
    """
    diag, off, dp = poly
    s2 = lay.node(s * s)
    t = 1.0 - s2
    t2 = t * t
    N, n = diag.shape[-1], s.shape[-1]
    adj = np.empty((10, N, n) if lay.nodes_inner else (10, n, N))
    a = adj[:4]
    np.multiply(lay.mat(diag[1]), t, out=a)
    a += lay.mat(diag[0])
    a *= t2
    a += 1.0
    b = adj[4:]
    np.multiply(lay.mat(off[2]), t, out=b)
    b += lay.mat(off[1])
    b *= t
    b += lay.mat(off[0])
    b *= t
    det = lay.mat(dp[2]) * t
    det += lay.mat(dp[1])
    det *= t
    det += lay.mat(dp[0])
    det *= t2
    det += 1.0
    return _integrand(adj, det, -adj[4 + _PAIR_INDEX[2, 3]], coef, s2, t, with_relu, lay)


def _integrand(P: Array, det: Array, s_cd_det2: Array, coef: dict[str, Array], s2: Array, t: Array,
               with_relu: bool, lay: _Layout) -> tuple[Array, Array | None]:
    """The integrands from ``P`` (10, n, N), a positive multiple per node of the entries of ``R_t^{-1}``.

    ``det`` (n, N) is ``det R_t`` and ``s_cd_det2`` (n, N) the conditional
    covariance ``S_cd`` of ``(c, d)`` given ``a = b = 0`` times ``det2_ab``
    (``-det R_t (R_t^{-1})_cd``); ``s2``, ``t`` over nodes.  The shapes are
    those of the layout ``lay`` ((10, N, n) etc. with the nodes inner).  Pair quantities are
    formed in the order of the complementary pairs (``q = 5 - p``), in which
    the partial correlation of pair ``p``'s complement comes from ``P[4 + q]``.
    """
    d = P[:4]
    # P_uu P_ww of each pair (u, w) in _PAIRS order.
    norm = np.empty((6,) + P.shape[1:])
    np.multiply(d[0], d[1:4], out=norm[0:3])
    np.multiply(d[1], d[2:4], out=norm[3:5])
    np.multiply(d[2], d[3], out=norm[5])
    np.sqrt(norm, out=norm)
    # Q of pair 5 - q: 1/4 + asin(rho) / (2 pi), rho = -P_uw / sqrt(P_uu P_ww) of pair q.
    x = np.divide(P[4:], norm, out=norm)
    np.minimum(x, 1.0, out=x)
    np.maximum(x, -1.0, out=x)
    Q = np.arcsin(x, out=x)
    Q *= -1.0 / _TWO_PI
    Q += 0.25

    def rev(name: str) -> Array:
        return lay.mat(np.ascontiguousarray(coef[name][:, ::-1].T))   # complementary order

    # 2x2 determinants 1 - t^2 r^2 = (s^2 + t (1 - |r|)) (1 + t |r|): the first
    # factor is an eigenvalue of the pair's block, kept accurate for |r| -> 1.
    det2 = rev("gap") * t
    det2 += s2
    other = rev("absr") * t
    other += 1.0
    det2 *= other
    sqrt_det2 = np.sqrt(det2, out=other)
    phi = np.divide(1.0 / _TWO_PI, sqrt_det2)                       # phi2 of each pair
    phiQ = np.multiply(phi, Q, out=det2)
    r = coef["r"][:, ::-1]
    if not with_relu:
        return lay.contract(r[:, None, :], phiQ)[0], None

    ab = 5 - _PAIR_INDEX[0, 1]
    # E_t[delta(a) delta(b) relu(c) relu(d)] = phi2_ab E[relu(c) relu(d) | a = b = 0]
    # = phi2_ab (S_cd Q_ab + sqrt(det S) / (2 pi)), S = cov(c, d | a, b) with
    # det S = det R_t / det2_ab; with phi2_ab = 1 / (2 pi sqrt(det2_ab)) that is
    # phi2_ab^2 (4 pi^2 S_cd det2_ab phi2_ab Q_ab + sqrt(det R_t)).
    G_ab = s_cd_det2 * phiQ[ab]
    G_ab *= _TWO_PI * _TWO_PI
    G_ab += np.sqrt(det)
    G_ab *= phi[ab] * phi[ab]
    sqrt_det2 *= Q
    sums = lay.contract(np.stack([coef["alpha"][:, ::-1], coef["beta"][:, ::-1], r], axis=1), phiQ)
    h = sums[2]
    r_ab, r_cd = lay.mat(coef["r"][:, 0]), lay.mat(coef["r"][:, 5])
    F = r_ab * G_ab
    F += t * sums[0]
    F += (t * s2) * sums[1]
    F += lay.contract(coef["gamma"][:, None, ::-1], sqrt_det2)[0] / _TWO_PI
    # d_c d_d term: r_cd P4(R_t); the double integral over P4's own path
    # becomes int (1 - t) dP4/dt dt = int s^2 h dt.
    F += (r_cd * s2) * h
    return h, F


def _correlations(Cf: Array) -> tuple[Array, Array, Array]:
    """Correlation matrices of covariances ``Cf`` (N, 4, 4), the zero-variance mask and the standard deviations.

    Both quantities are scale-free in the step arguments and homogeneous in
    the ReLU ones, so the work is done on correlation matrices.  Symmetrise
    (eigh reads one triangle only), make the diagonal exactly 1 and clip
    rounding overshoots of ``|r| > 1``; matrices with a zero variance get a
    harmless placeholder (their result is overwritten by the caller).
    """
    var = np.diagonal(Cf, axis1=-2, axis2=-1)
    zero = np.any(var <= 0.0, axis=-1)
    sd = np.sqrt(np.where(zero[:, None], 1.0, var))
    R = Cf / (sd[:, :, None] * sd[:, None, :])
    R = 0.5 * (R + np.swapaxes(R, -1, -2))
    R[zero] = np.eye(4)
    idx = np.arange(4)
    R[:, idx, idx] = 1.0
    return np.clip(R, -1.0, 1.0), zero, sd


# Levels _path_values can pick: the plain ones and boundary layers down to the
# width sqrt(_LAM_EXACT) (smaller eigenvalues are exact zeros).
_N_LEVELS = len(_PLAIN) + int(np.ceil(np.log(_GRADE_KAPPA / np.sqrt(_LAM_EXACT)) / np.log(_GRADE_RATIO)))


@lru_cache(maxsize=None)
def _node_counts(rule: Callable) -> Array:
    """The node count of ``rule(level)`` per level, shape (_N_LEVELS,)."""
    return np.array([rule(level)[0].size for level in range(_N_LEVELS)])


@lru_cache(maxsize=None)
def _padded_rules(rule: Callable, n: int) -> tuple[Array, Array]:
    """Nodes and weights of every level's ``rule`` padded to ``n`` nodes, shape (_N_LEVELS, n).

    Padded nodes sit at ``_PAD_NODE`` with weight 0; levels with more than
    ``n`` nodes get rows of NaN (never used).
    """
    s, w = np.full((_N_LEVELS, n), np.nan), np.full((_N_LEVELS, n), np.nan)
    for level in range(_N_LEVELS):
        rs, rw = rule(level)
        if rs.size <= n:
            s[level], w[level] = _PAD_NODE, 0.0
            s[level, :rs.size], w[level, :rs.size] = rs, rw
    s.setflags(write=False)
    w.setflags(write=False)
    return s, w


def _passes(key: Array) -> list[tuple[int, Array, Array, Array]]:
    """The integrand passes of :func:`_path_values` for route-and-level keys ``key`` (N,) (even: adjugate route).

    Returns ``(k, members, s, weights)`` per pass: a key of the pass (its
    route's parity), the matrices, and the rule's nodes and weights, shape
    (n,), or per matrix (len(members), n) where several levels share the
    pass.  The adjugate route's levels share one pass, padded to its longest
    rule, where the padding costs less than the passes it saves
    (``_PASS_ELEMENTS``); padded nodes (zero weights, summed after a
    matrix's own nodes) leave every matrix's value what its own rule gives,
    bit for bit.  The eigen route takes a pass per level: its stacked
    products may round a node's value differently with the number of nodes,
    and padding them measured no cheaper.
    """
    n_nodes = _node_counts(_rule)
    level, eigen = key // 2, key % 2 == 1
    out = []
    if not eigen.all():
        adj = np.flatnonzero(~eigen)
        counts = np.bincount(level[adj], minlength=_N_LEVELS)
        used = np.flatnonzero(counts)
        n = int(n_nodes[used].max())
        if used.size > 1 and np.dot(counts[used], n - n_nodes[used]) <= _PASS_ELEMENTS * (used.size - 1):
            s, w = _padded_rules(_rule, n)
            out.append((0, adj, s[level[adj]], w[level[adj]]))
        else:
            out += [(0, np.flatnonzero(key == 2 * lv), *_rule(int(lv))) for lv in used]
    if eigen.any():
        out += [(1, np.flatnonzero(key == 2 * lv + 1), *_rule(int(lv))) for lv in np.unique(level[eigen])]
    return out


def _path_values(R: Array, with_relu: bool) -> tuple[Array, Array | None]:
    """``P4`` and (``with_relu``) ``I4`` in correlation units by the path integral, for ``R`` (N, 4, 4)."""
    N = R.shape[0]
    P4 = np.empty(N)
    I4 = np.empty(N) if with_relu else None
    if not N:
        return P4, I4
    coef = _pair_coefficients(R)
    # Well-conditioned matrices (smallest eigenvalue above _ADJUGATE_LEVELS[-1],
    # by Sylvester's criterion) take the adjugate of R_t in closed form and
    # their plain rule from the same test; the others the eigen-decomposition.
    poly = _adjugate_polynomials(np.ascontiguousarray(coef["r"].T))
    exceeds = _exceeds(poly, coef["r"][:, 0], np.array(_ADJUGATE_LEVELS)[:, None])
    well = exceeds[-1]
    level = np.empty(N, dtype=int)
    level[well] = len(_ADJUGATE_LEVELS) - exceeds[:, well].sum(axis=0)
    # Row of each matrix in its route's arrays.
    pos = np.empty(N, dtype=int)
    pos[well] = np.flatnonzero(well)
    rest = np.flatnonzero(~well)
    pos[rest] = np.arange(rest.size)
    if rest.size:
        lam, V = np.linalg.eigh(R[rest])
        if np.any(lam[:, 0] < -_PSD_TOL):
            raise ValueError("C: not positive semidefinite (correlation-matrix eigenvalue "
                             f"{lam[:, 0].min():.3g} < -{_PSD_TOL:g})")
        # Round-off zeros (and clipped tiny negatives) become exact zeros.
        lam = np.where(lam < _LAM_EXACT, 0.0, lam)
        level[rest] = _levels(R[rest], lam, coef["gap"][rest])
    r_cd = R[:, 2, 3]
    # One vectorised evaluation per route and group of quadrature levels (a
    # handful; see _passes), in chunks sized for the CPU cache.
    key = np.where(well, 2 * level, 2 * level + 1)
    for k, members, s, weights in _passes(key):
        # The adjugate route's matrices are many and its rules short; the eigen
        # route's stacked products want the nodes inner.
        lay = _MATRICES_INNER if k % 2 == 0 else _NODES_INNER
        step = max(1, _CHUNK_ELEMENTS // s.shape[-1])
        for start in range(0, members.size, step):
            sel = members[start:start + step]
            if s.ndim == 2:  # per-matrix rules (matrices, nodes)
                s_sel, w = s[start:start + step], lay.node(weights[start:start + step])
            else:
                s_sel, w = s, lay.node(weights)
            c = {name: v[sel] for name, v in coef.items()}
            p = pos[sel]
            if k % 2 == 0:
                h, F = _adjugate_integrand(tuple(x[..., p] for x in poly), c, s_sel, with_relu, lay)
            else:
                h, F = _eigen_integrand(lam[p], V[p], c, s_sel, with_relu, lay)
            # Node sums in node order for every matrix alike (see _scatter_sum);
            # padded nodes add exact zeros after a matrix's own nodes.
            P4[sel] = 1.0 / 16.0 + _node_sum(h, w, lay.axis)
            if with_relu:
                I4[sel] = 1.0 / (8.0 * np.pi) + r_cd[sel] / 16.0 + _node_sum(F, w, lay.axis)
    return P4, I4


def orthant4(C: Array) -> Array:
    """Quadrivariate orthant probability ``P(x1 > 0, ..., x4 > 0)``, ``x ~ N(0, C)``.

    Plackett's identity ``dP/dr_ij = phi2_ij(0, 0) P(other two > 0 | x_i = x_j = 0)``
    integrated along ``R_t = (1 - t) I + t R`` with fixed Gauss-Legendre rules
    in ``s = sqrt(1 - t)``.  Deterministic; absolute error below ``1e-12``
    for well-conditioned, nearly singular and singular matrices alike (see
    the module docstring).

    Parameters
    ----------
    C : array_like, shape (..., 4, 4)
        Covariance matrices (positive semidefinite; singular allowed).

    Returns
    -------
    ndarray, shape (...)
        0 where a variance vanishes.

    Examples
    --------
    >>> R = np.full((4, 4), 0.5) + 0.5 * np.eye(4)
    >>> round(float(orthant4(R)), 12)  # equicorrelated rho = 1/2: 1/5
    0.2
    """
    C = _as_covariance(C, 4)
    R, zero, _ = _correlations(C.reshape(-1, 4, 4))
    P4, _ = _path_values(R, False)
    return _scalar_or_array(np.where(zero, 0.0, P4).reshape(C.shape[:-2]))


# Coinciding arguments of relu_I4, as (first, second) positions in (a, b, c, d):
# two variables with equal variances and covariance (bitwise) and equal
# covariances with the other two are the same variable.
_COINCIDING = ((2, 3), (0, 1), (0, 2), (1, 2), (0, 3), (1, 3))


# Rows of the pair table (_PAIRS order) that the closed forms read, per kind of
# coincidence: c = d -> (a, b), (a, c), (b, c) for E[theta(a) theta(b) relu(c)^2];
# a step argument dropped -> (k, c), (k, d), (c, d) with k the step argument kept
# (b when a coincides with b, c or d; a when b coincides with c or d).
_REDUCED_PAIRS = np.array([(0, 1, 3), (3, 4, 5), (3, 4, 5), (1, 2, 5), (3, 4, 5), (1, 2, 5)])


def _coincidence_tables() -> tuple[Array, ...]:
    """Per pair ``(i, j)`` of :data:`_COINCIDING`: ``i``, ``j``, the pair's index and those of ``(i, k), (j, k),
    (i, m), (j, m)`` with ``k, m`` the other two variables."""
    rows = []
    for i, j in _COINCIDING:
        k, m = (x for x in range(4) if x not in (i, j))
        rows.append([i, j, _PAIR_INDEX[i, j], _PAIR_INDEX[i, k], _PAIR_INDEX[j, k],
                     _PAIR_INDEX[i, m], _PAIR_INDEX[j, m]])
    return tuple(np.array(col) for col in zip(*rows))


_CO_I, _CO_J, _CO_IJ, _CO_IK, _CO_JK, _CO_IM, _CO_JM = _coincidence_tables()


def _coinciding(var: Array, off: Array) -> Array:
    """Per matrix, the first pair of :data:`_COINCIDING` that coincides exactly, else -1.

    ``var`` (N, 4) are the variances, ``off`` (N, 6) the covariances in :data:`_PAIRS` order.
    """
    vi = var[:, _CO_I]
    same = ((vi == var[:, _CO_J]) & (vi == off[:, _CO_IJ])
            & (off[:, _CO_IK] == off[:, _CO_JK]) & (off[:, _CO_IM] == off[:, _CO_JM]))   # (N, 6)
    return np.where(same.any(axis=-1), same.argmax(axis=-1), -1)


def _reduced_relu_I4(r3: Array, c_equals_d: Array) -> Array:
    """``relu_I4`` in correlation units for matrices with a coinciding pair (closed forms of three variables).

    ``theta^2 = theta`` and ``theta(x) relu(x) = relu(x)`` leave a product of
    three variables.  ``c = d`` gives ``E[theta(a) theta(b) relu(c)^2]``, and
    a step argument equal to the other one or to a ReLU argument drops out,
    leaving ``E[theta(k) relu(c) relu(d)]``.  Stein's lemma on one ReLU factor
    (see the module docstring) gives both in the pair correlations alone, so
    coinciding or collinear pairs (``s = sqrt(1 - r^2) = 0``) need no special
    case.

    Parameters
    ----------
    r3 : ndarray, shape (N, 3)
        Correlations of the pairs :data:`_REDUCED_PAIRS` of each matrix:
        ``(r_ab, r_ac, r_bc)`` where ``c_equals_d``, else ``(r_kc, r_kd, r_cd)``.
    c_equals_d : ndarray of bool, shape (N,)
    """
    # |r| within _LAM_EXACT of 1 is a collinear pair, as everywhere in this module.
    gap = 1.0 - np.abs(r3)
    collinear = gap < _LAM_EXACT
    r = np.where(collinear, np.sign(r3), r3)
    s = np.sqrt(np.where(collinear, 0.0, gap * (1.0 + np.abs(r))))
    p3 = 0.125 + np.arcsin(r).sum(axis=-1) / (4.0 * np.pi)
    r1, r2, r3 = r.T
    s1, s2, s3 = s.T
    # E[theta(k) relu(c) relu(d)] = (r_kc s_kd + s_cd + r_kd s_kc) / (4 pi) + r_cd P3.
    steps = (r1 * s2 + s3 + r2 * s1) / (4.0 * np.pi) + r3 * p3
    # E[theta(a) theta(b) relu(c)^2] = P3 + (r_ac s_ac + r_bc s_bc + N / s_ab) / (4 pi),
    # N = 2 r_ac r_bc - r_ab (r_ac^2 + r_bc^2) = -r_ab (r_ac -+ r_bc)^2 + 2 r_ac r_bc (1 +- r_ab)
    # (sign of r_ab): N vanishes with s_ab at a = +-b, and in this form
    # N / s_ab = -r_ab (r_ac -+ r_bc)^2 / s_ab + 2 r_ac r_bc s_ab / (1 -+ r_ab) has no
    # cancellation; its first term is 0 at s_ab = 0.
    diff = r2 - np.where(r1 >= 0.0, r3, -r3)
    square = np.where(s1 > 0.0, diff * diff / np.where(s1 > 0.0, s1, 1.0), 0.0)
    ratio = -r1 * square + 2.0 * r2 * r3 * s1 / (1.0 + np.abs(r1))
    squares = p3 + (r2 * s2 + r3 * s3 + ratio) / (4.0 * np.pi)
    return np.where(c_equals_d, squares, steps)


def _check_reduced(r3: Array) -> None:
    """The positive-semidefiniteness test of :func:`_path_values` for matrices reduced to three variables.

    ``r3`` (N, 3) are the three correlations of the distinct variables; a 3x3
    correlation matrix (``|r| <= 1``) is positive semidefinite when its
    determinant is.  A negative determinant means one negative eigenvalue
    ``l1 = det / (l2 l3)``, and ``l2 l3 = e2 - l1 (l2 + l3) >= e2``
    (``e2 = 3 - sum r^2``, the sum of the 2x2 principal minors), so
    ``det >= -_PSD_TOL e2`` is round-off (``l1 >= -_PSD_TOL``); only the others
    get the eigenvalue test.
    """
    r1, r2, r3 = r3.T
    sq = r1 * r1 + r2 * r2 + r3 * r3
    bad = 1.0 - sq + 2.0 * r1 * r2 * r3 < -_PSD_TOL * (3.0 - sq)
    if bad.any():
        R3 = np.empty((int(bad.sum()), 3, 3))
        R3[:, [0, 1, 2], [0, 1, 2]] = 1.0
        for (i, j), r in zip(((0, 1), (0, 2), (1, 2)), (r1, r2, r3)):
            R3[:, i, j] = R3[:, j, i] = r[bad]
        lam = np.linalg.eigvalsh(R3)[:, 0]
        if np.any(lam < -_PSD_TOL):
            raise ValueError("C: not positive semidefinite (correlation-matrix eigenvalue "
                             f"{lam.min():.3g} < -{_PSD_TOL:g})")


class _CoincidencePlan:
    """The exactly coinciding arguments of a fixed table of blocks, found once from its entries' positions.

    ``var_at`` (n, 4) and ``off_at`` (n, 6) label the entries of ``n`` blocks
    (:data:`_PAIRS` order) such that equal labels are equal entries (the
    committee flow's positions in its covariance).  :func:`_coinciding` of the
    labels gives the structural coincidences (``i = k``, ``u = w``, a student
    field among ``u, w``); :func:`_relu_I4_entries` then skips their detection,
    gathers the three correlations of the reduced blocks by precomputed
    positions, and looks for accidental coincidences (two equal fields) among
    the other blocks only.  (A block with both kinds, e.g. ``u = w`` where two
    students are equal, may then take another of the two closed forms than
    detection would: the same value to rounding.)
    """

    def __init__(self, var_at: Array, off_at: Array) -> None:
        which = _coinciding(np.asarray(var_at).reshape(-1, 4), np.asarray(off_at).reshape(-1, 6))
        self.n = which.size
        self.reduced = np.flatnonzero(which >= 0)
        self.path = np.flatnonzero(which < 0)
        # Positions of the reduced blocks' three correlations in the flat (n, 6) table.
        self.r3_at = self.reduced[:, None] * 6 + _REDUCED_PAIRS[which[self.reduced]]
        self.c_equals_d = which[self.reduced] == 0


def _relu_I4_entries(var: Array, off: Array, plan: _CoincidencePlan | None = None) -> Array:
    """``relu_I4`` from the variances ``var`` (..., 4) and covariances ``off`` (..., 6) in :data:`_PAIRS` order.

    The driver of :func:`relu_I4` and of the committee flow's closed form
    (which gathers the entries of many blocks from one covariance).  Matrices
    with exactly coinciding arguments take the closed forms of
    :func:`_reduced_relu_I4`, the others the path integral.  ``plan``: the
    structural coincidences of the last axis's blocks (``var.shape[-2] ==
    plan.n``), found once by the caller (see :class:`_CoincidencePlan`); else
    every block's are detected from its values.
    """
    if not (np.all(np.isfinite(var)) and np.all(np.isfinite(off))):
        raise ValueError("C: entries must be finite")
    if np.any(var < 0):
        raise ValueError("C: variances (diagonal entries) must be non-negative")
    shape = var.shape[:-1]
    var, off = var.reshape(-1, 4), off.reshape(-1, 6)
    zero = np.any(var <= 0.0, axis=-1)
    sd = np.sqrt(np.where(zero[:, None], 1.0, var))
    # Correlations, with rounding overshoots of |r| > 1 clipped (as _correlations does).
    r = np.clip(off / (sd[:, _ROWS[4:]] * sd[:, _COLS[4:]]), -1.0, 1.0)
    r[zero] = 0.0
    out = np.empty(var.shape[0])
    if plan is None:
        path = np.arange(var.shape[0])
    else:
        n_sets = var.shape[0] // plan.n
        shift = plan.n * np.arange(n_sets)[:, None]
        if plan.reduced.size:
            r3 = r.reshape(-1)[(6 * shift[:, :, None] + plan.r3_at).reshape(-1, 3)]
            _check_reduced(r3)
            out[(shift + plan.reduced).reshape(-1)] = _reduced_relu_I4(r3, np.tile(plan.c_equals_d, n_sets))
        path = (shift + plan.path).reshape(-1)
    # (With a plan: fields that are equal by value, not by position.)
    which = _coinciding(var[path], off[path])
    if np.any(which >= 0):
        more, kind = path[which >= 0], which[which >= 0]
        r3 = np.take_along_axis(r[more], _REDUCED_PAIRS[kind], axis=1)
        _check_reduced(r3)
        out[more] = _reduced_relu_I4(r3, kind == 0)
        path = path[which < 0]
    if path.size:
        R = np.empty((path.size, 4, 4))
        R[:, _ROWS[4:], _COLS[4:]] = R[:, _COLS[4:], _ROWS[4:]] = r[path]
        R[:, _ROWS[:4], _COLS[:4]] = 1.0
        out[path] = _path_values(R, True)[1]
    out = np.where(zero, 0.0, out * sd[:, 2] * sd[:, 3])
    return out.reshape(shape)


def relu_I4(C: Array) -> Array:
    """``E[theta(a) theta(b) relu(c) relu(d)]`` for ``(a, b, c, d) ~ N(0, C)``.

    Equivalently ``E[c d 1(a > 0, b > 0, c > 0, d > 0)]``.  Computed by the
    path integral of the module docstring, or, where two arguments are
    exactly the same variable, by the closed forms of three variables given
    there ("Coinciding arguments").  The same value follows from
    Stein's lemma applied twice,
    ``C_cd P4 + sum_{k in (a,b,c)} C_ck phi(0; C_kk) E[d 1(others > 0) | x_k = 0]``
    with the conditional expectation reduced again to 1-D densities times
    2-D orthant probabilities; but on singular ``C`` that closed form has
    ``0/0`` partial correlations (and, near singular ``C``, terms whose
    rounding errors do not cancel), which the path integral resolves as
    limits from the interior of the cone.

    Parameters
    ----------
    C : array_like, shape (..., 4, 4)
        Covariance of ``(a, b, c, d)``; positive semidefinite, singular
        allowed (coinciding or collinear arguments, any rank deficiency).

    Returns
    -------
    ndarray, shape (...)
        Absolute error below ``1e-12 sqrt(C_cc C_dd)`` for well-conditioned,
        nearly singular and singular ``C`` alike (module docstring).  0 where
        a variance vanishes (``theta(0) = relu(0) = 0``).

    Examples
    --------
    >>> C = np.ones((4, 4))  # a = b = c = d: E[relu(a)^2] = 1/2
    >>> round(float(relu_I4(C)), 12)
    0.5
    """
    C = _as_covariance(C, 4)
    # The upper triangle of the symmetrised matrix (as the eigen-decomposition reads it).
    off = 0.5 * (C[..., _ROWS[4:], _COLS[4:]] + C[..., _COLS[4:], _ROWS[4:]])
    return _scalar_or_array(_relu_I4_entries(np.diagonal(C, axis1=-2, axis2=-1), off))
