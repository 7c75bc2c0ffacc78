"""The erf site-symmetric reduced flow in extended precision (mpmath): references for its double evaluation.

The same pattern sums (the reduced model's own tables of index patterns and counts) with the erf
closed forms written out in mpmath and derivatives by central differences with a step far below
double precision: an independent evaluation of the part of the flow that loses digits at large K
(sums weighted by counts up to K^2 that cancel at the perfect solution).  mpmath is a test extra.
"""

import mpmath
import numpy as np


def _mp_erf_parts(red, dps=40):
    """The erf reduced flow's parts (first order, eta^2 term; no noise) in ``dps``-digit arithmetic.

    The same pattern sums (the reduced model's tables) with the erf closed forms written out in
    mpmath: an independent evaluation of the rounding-sensitive part (the cancelling K^2-weighted
    sums).  Returns ``(ctx, parts)``, ``parts(z) -> (first, second)`` lists of 4 numbers.
    """
    ctx = mpmath.MPContext()
    ctx.dps = dps
    sqrt, asin = np.frompyfunc(ctx.sqrt, 1, 1), np.frompyfunc(ctx.asin, 1, 1)
    two_pi = 2 / ctx.pi

    def J2(C, _t):
        return two_pi / sqrt((1 + C[..., 0, 0]) * (1 + C[..., 1, 1]) - C[..., 0, 1] ** 2)

    def H2(C, _t):
        a11 = 1 + C[..., 0, 0]
        return -two_pi * C[..., 0, 1] / (a11 * sqrt(a11 * (1 + C[..., 1, 1]) - C[..., 0, 1] ** 2))

    def I4(C, _t):
        c = {(a, b): C[..., a, b] for a in range(4) for b in range(4)}
        a11, a22 = 1 + c[0, 0], 1 + c[1, 1]
        lam4 = a11 * a22 - c[0, 1] ** 2
        lam0 = lam4 * c[2, 3] - c[1, 2] * c[1, 3] * a11 - c[0, 2] * c[0, 3] * a22 + c[0, 1] * (
            c[0, 2] * c[1, 3] + c[0, 3] * c[1, 2])
        lam1 = lam4 * (1 + c[2, 2]) - c[1, 2] ** 2 * a11 - c[0, 2] ** 2 * a22 + 2 * c[0, 1] * c[0, 2] * c[1, 2]
        lam2 = lam4 * (1 + c[3, 3]) - c[1, 3] ** 2 * a11 - c[0, 3] ** 2 * a22 + 2 * c[0, 1] * c[0, 3] * c[1, 3]
        return (4 / ctx.pi ** 2) / sqrt(lam4) * asin(lam0 / sqrt(lam1 * lam2))

    def parts(z):
        # the model's own extended vector (its covariance classes, then Td, To, 1) and term tables
        ext = red._ext(np.array([ctx.mpf(x) for x in z], dtype=object))
        cx, cy, v = -red.v_fixed, red.w, red.v_fixed
        h = red._h(H2, ext, cx, cy)
        A = (ext[red._term_pos] * h[red._term_cls] + red._first(J2, ext, cx, cy)) * v
        first = [sum(f * A[t] for t, f in terms) for terms in red._coord_terms]
        s = red._second(I4, ext, cx, cy) * v * v
        second = [0] * len(first)
        for j, pos in enumerate(np.flatnonzero(red._is_q)):
            second[pos] = s[j]
        return first, second

    return ctx, parts


def _mp_jacobian(ctx, fun, z, m):
    """Central differences of ``fun`` (``m`` outputs) at ``z`` with a step far below double precision."""
    step = ctx.mpf(10) ** (-ctx.dps // 2)
    J = ctx.matrix(m, len(z))
    for j in range(len(z)):
        zp, zm = list(z), list(z)
        zp[j] += step
        zm[j] -= step
        fp, fm = fun(zp), fun(zm)
        for i in range(m):
            J[i, j] = (fp[i] - fm[i]) / (2 * step)
    return J


def mp_erf_reference(red):
    """eta_c and the pencil A, B (plain coordinates) of the erf reduced flow at the perfect solution, 40 digits."""
    ctx, parts = _mp_erf_parts(red)
    z0 = [ctx.mpf(red.Td), ctx.mpf(red.To), ctx.mpf(red.Td), ctx.mpf(red.To)]
    AB = _mp_jacobian(ctx, lambda z: sum(parts(z), []), z0, 8)
    A, B = AB[:4, :], AB[4:, :]
    # real crossings: det(A + eta B) = 0, eta = -1 / mu for the eigenvalues mu of A^-1 B
    mu = ctx.eig(ctx.inverse(A) * B)[0]
    eta_c = min(-1 / ctx.re(x) for x in mu if abs(ctx.im(x)) < ctx.mpf(10) ** -20 and ctx.re(x) < 0)
    return float(eta_c), np.array(A.tolist(), dtype=float), np.array(B.tolist(), dtype=float)


def mp_erf_plateau(red, guess):
    """Newton on R = S at 40 digits from ``guess``; the fixed point and its escape (largest) eigenvalue."""
    ctx, parts = _mp_erf_parts(red)
    eta = ctx.mpf(red.eta)

    def flow(z):
        a, b = parts(z)
        return [eta * x + eta * eta * y for x, y in zip(a, b)]

    def tied(y):
        f = flow([y[0], y[0], y[1], y[2]])
        return [f[0] + f[1], f[2], f[3]]

    y = [ctx.mpf(guess[0]), ctx.mpf(guess[2]), ctx.mpf(guess[3])]
    for _ in range(6):
        step = ctx.lu_solve(_mp_jacobian(ctx, tied, y, 3), ctx.matrix([-x for x in tied(y)]))
        y = [y[i] + step[i] for i in range(3)]
    z = [y[0], y[0], y[1], y[2]]
    escape = max(ctx.re(x) for x in ctx.eig(_mp_jacobian(ctx, flow, z, 4))[0])
    return np.array([float(x) for x in z]), float(escape)
