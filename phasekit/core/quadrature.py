"""Gaussian expectations ``E[prod_j f_j(x_j)]``, ``x ~ N(0, C)``, by quadrature.

Expectations over covariance matrices ``C`` of any dimension; the rules
(nodes and weights) and the expectations of special form that apply one rule
directly are in :mod:`phasekit.core.rules`.  Two routes:

* :func:`nested_expectation` (the route of activations without closed forms:
  tanh, sigmoid, elu, softplus, swish, user activations, mixed teacher/student
  pairs): nested conditional integration along a semi-definite Cholesky
  factor, each one-dimensional level split at the kinks of the functions, with
  node counts that adapt to the conditional variances.  2-D expectations to
  ~1e-11 and 4-D ones to ~1e-8 (absolute, for functions of order one and
  their arguments) for variances up to 10, for smooth functions and for
  functions with kinks.
* :func:`gaussian_expectation`: tensor-product Gauss-Hermite through the eigen-
  decomposition of ``C``; fast and exponentially convergent for entire
  functions at moderate variances, but only algebraically convergent for
  kinks or for poles near the real axis (tanh at large variance).

Both accept singular (positive-semidefinite) covariances, such as two
coinciding hidden units, without special cases.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .rules import Z_MAX, half_line_rule, normal_panels, tensor_gauss_hermite

__all__ = ['gaussian_expectation', 'nested_expectation', 'psd_factor']


# Elements of the (batch x nodes x d) work array processed at once; bounds memory.
_CHUNK_ELEMENTS = 1 << 22


def psd_factor(C: np.ndarray) -> np.ndarray:
    """Return ``L`` with ``L @ L^T == C`` for symmetric PSD ``C`` of shape ``(..., d, d)``.

    Uses the eigen-decomposition so that singular matrices are allowed; tiny
    negative eigenvalues from round-off are clipped to zero.
    """
    lam, V = np.linalg.eigh(C)
    return V * np.sqrt(np.clip(lam, 0.0, None))[..., None, :]


def _check_arguments(C: np.ndarray, funcs: Sequence[Callable]) -> tuple[np.ndarray, int]:
    """``C`` as a float array of shape ``(..., d, d)`` with ``d`` functions, and ``d``."""
    C = np.asarray(C, dtype=float)
    if C.ndim < 2 or C.shape[-2] != C.shape[-1]:
        raise ValueError(f"C: need covariances of shape (..., d, d), got {C.shape}")
    d = C.shape[-1]
    if len(funcs) != d:
        raise ValueError(f"funcs: need {d} functions for a {d}x{d} covariance, got {len(funcs)}")
    return C, d


def gaussian_expectation(
    C: np.ndarray,
    funcs: Sequence[Callable[[np.ndarray], np.ndarray]],
    n_nodes: int,
) -> np.ndarray:
    """``E[prod_j f_j(x_j)]`` for ``x ~ N(0, C)``.

    Parameters
    ----------
    C : ndarray, shape ``(..., d, d)``
        Covariance matrices (symmetric positive semidefinite).
    funcs : sequence of d callables
        Vectorised functions applied to each coordinate.
    n_nodes : int
        Gauss-Hermite nodes per dimension (``n_nodes**d`` in total).

    Returns
    -------
    ndarray, shape (...)
    """
    C, d = _check_arguments(C, funcs)
    if isinstance(n_nodes, (bool, np.bool_)) or not isinstance(n_nodes, (int, np.integer)) or n_nodes < 1:
        raise ValueError(f"n_nodes: must be an integer >= 1, got {n_nodes!r}")
    batch_shape = C.shape[:-2]
    Cf = C.reshape(-1, d, d)
    nodes, weights = tensor_gauss_hermite(n_nodes, d)
    out = np.empty(Cf.shape[0])
    step = max(1, _CHUNK_ELEMENTS // (nodes.shape[0] * d))
    for start in range(0, Cf.shape[0], step):
        L = psd_factor(Cf[start:start + step])
        # x[b, p, j] = sum_m L[b, j, m] z[p, m]
        x = np.einsum("pm,bjm->bpj", nodes, L, optimize=True)
        prod = funcs[0](x[..., 0])
        for j in range(1, d):
            prod = prod * funcs[j](x[..., j])
        out[start:start + step] = prod @ weights
    return out.reshape(batch_shape)


# Half-width of the analytic strip assumed for activations, in units of their argument
# (tanh has poles at +-i pi/2, sigmoid, softplus and swish at +-i pi).
_POLE_DISTANCE = 0.7


# Graded panels around a feature: breakpoints width * 2^k up to _GRADE_RADIUS (a panel
# [a, 2a] sees a pole at height <= a over the feature at >= 3 half-widths from its centre).
_GRADE_RADIUS = 1.5


_GRADE_RATIO = 2.0


# At most this many graded panels per side (the narrowest is then ~1.5 * 2^-17 ~ 1e-5 wide;
# a smoothed kink narrower than that is integrated as an exact one).
_GRADE_MAX = 18


# Inner kink lines sharper than this width (in units of z_j) become feature points; the
# half-line rules alone resolve wider ones (the "half" tables below reach s_eff = 1).
_LINE_WIDTH = 0.7


# Relative variance below which a Cholesky pivot is taken as exactly zero (round-off of
# a singular covariance; the same convention as phasekit.core.orthant).
_PIVOT_TOL = 1e-14


# Points x nodes processed at once.
_NESTED_CHUNK = 1 << 21


# Accuracy classes.  A level whose sharpest feature has width w (in units of z; the own
# function's poles give w = _POLE_DISTANCE / s for a conditional standard deviation s)
# is integrated like a pole at s_eff = _POLE_DISTANCE / w: up to the last bound of
# "half", plain splits with that many Gauss nodes per half-line; beyond, panels graded
# from w up to _GRADE_RADIUS and "graded_half" nodes per half-line; "panel" Gauss-Legendre
# nodes per graded or gap panel.  Measured on tanh, sigmoid, softplus, swish and elu
# for s <= 3.2: "fine" reaches ~1e-12 per level, "coarse" ~1e-9.
_CLASSES = {
    "fine": dict(half=((0.3, 12), (0.5, 14), (0.7, 16), (1.0, 20)), graded_half=16, panel=8),
    "coarse": dict(half=((0.3, 8), (0.5, 10), (0.7, 12), (1.0, 16), (1.5, 20)), graded_half=12, panel=6),
}


def _semidefinite_cholesky(C: np.ndarray) -> np.ndarray:
    """Lower-triangular ``L`` with ``L L^T = C`` for PSD ``C`` of shape ``(B, d, d)``.

    Pivots below ``_PIVOT_TOL`` times the variance are set to zero together
    with their column (that argument is then determined by the earlier ones).
    """
    B, d, _ = C.shape
    L = np.zeros_like(C)
    for j in range(d):
        piv = C[:, j, j] - np.sum(L[:, j, :j] ** 2, axis=-1)
        if np.any(piv < -1e-8 * np.abs(C[:, j, j])) or np.any(C[:, j, j] < 0):
            raise ValueError("C: covariances must be positive semidefinite")
        ok = piv > _PIVOT_TOL * np.maximum(C[:, j, j], np.finfo(float).tiny)
        ljj = np.sqrt(np.where(ok, piv, 1.0))
        L[:, j, j] = np.where(ok, ljj, 0.0)
        for k in range(j + 1, d):
            L[:, k, j] = np.where(ok, (C[:, k, j] - np.sum(L[:, k, :j] * L[:, j, :j], axis=-1)) / ljj, 0.0)
    # Entries at the round-off level of their row are zeros of a singular covariance (an
    # argument that repeats an earlier one must not depend on later z's).
    scale = np.sqrt(np.diagonal(C, axis1=-2, axis2=-1))[:, :, None]
    return np.where(np.abs(L) <= 1e-13 * scale, 0.0, L)


def _level_rule(p: np.ndarray, eps: np.ndarray, n_grade: int, n_half: int, m: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """One level's nodes and weights (``phi`` included), shape ``(..., N)``.

    ``p``: feature points ``(..., F)``; ``eps``: their widths ``(..., F)``
    (graded panels from ``eps`` up to ``_GRADE_RADIUS``); ``n_grade`` graded
    panels per side (0: plain splits); ``n_half`` Gauss nodes per outer
    half-line; ``m`` Gauss-Legendre nodes per panel.
    """
    p = np.sort(p, axis=-1)
    # Every feature is graded down to the sharpest width: the panels between two features
    # are shared, and a wide panel of a smooth feature must not cover a sharp neighbour.
    eps = np.broadcast_to(np.min(eps, axis=-1, keepdims=True), p.shape)
    F = p.shape[-1]
    if F > 1:
        # Features beyond the Gaussian range merge into their nearest neighbour inside it
        # (no gap panels over the bulk for a kink where phi is negligible).
        far = Z_MAX + _GRADE_RADIUS
        inside = np.abs(p) <= far
        first = np.min(np.where(inside, p, np.inf), axis=-1, keepdims=True)
        last = np.max(np.where(inside, p, -np.inf), axis=-1, keepdims=True)
        p = np.where(p < -far, np.where(np.isfinite(first), first, -far), p)
        p = np.where(p > far, np.where(np.isfinite(last), last, far), p)
    gap = np.diff(p, axis=-1)
    radius = _GRADE_RADIUS if n_grade else 0.0
    half_gap = np.minimum(radius, 0.5 * gap)
    inf = np.full(p.shape[:-1] + (1,), radius)
    r_lo = np.concatenate([inf, half_gap], axis=-1)  # extent of the graded panels left of p_f
    r_hi = np.concatenate([half_gap, inf], axis=-1)  # ... and right of p_f
    z_parts, w_parts = [], []
    zl, wl = half_line_rule(-(p[..., 0] - r_lo[..., 0]), n_half)
    z_parts.append(-zl)
    w_parts.append(wl)
    zr, wr = half_line_rule(p[..., -1] + r_hi[..., -1], n_half)
    z_parts.append(zr)
    w_parts.append(wr)
    if n_grade:
        k = _GRADE_RATIO ** np.arange(n_grade - 1)
        for side, r in ((-1.0, r_lo), (1.0, r_hi)):
            # breakpoints 0, eps, eps q, ..., r (clipped to r), as distances from p
            d = np.minimum(eps[..., None] * k, r[..., None])
            d = np.concatenate([np.zeros(d.shape[:-1] + (1,)), d, r[..., None]], axis=-1)
            a = p[..., None] + side * d[..., :-1]
            b = p[..., None] + side * d[..., 1:]
            z, w = normal_panels(np.minimum(a, b), np.maximum(a, b), m, p.ndim - 1)
            z_parts.append(z)
            w_parts.append(w)
    if F > 1:
        lo = p[..., :-1] + r_hi[..., :-1]
        hi = p[..., 1:] - r_lo[..., 1:]
        # the gaps need panels of width <= ~1 where phi lives
        length = np.clip(hi, -Z_MAX, Z_MAX) - np.clip(lo, -Z_MAX, Z_MAX)
        n_mid = max(1, int(np.ceil(np.max(length, initial=0.0) / 1.0)))
        t = np.linspace(0.0, 1.0, n_mid + 1)
        e = lo[..., None] + (hi - lo)[..., None] * t
        z, w = normal_panels(e[..., :-1], e[..., 1:], m, p.ndim - 1)
        z_parts.append(z)
        w_parts.append(w)
    return np.concatenate(z_parts, axis=-1), np.concatenate(w_parts, axis=-1)


def _level_counts(width: np.ndarray, accuracy: str) -> tuple[np.ndarray, np.ndarray]:
    """Gauss nodes per half-line and graded panels per side for sharpest feature widths ``width``."""
    cls = _CLASSES[accuracy]
    bounds, counts = (np.asarray(x) for x in zip(*cls["half"]))
    with np.errstate(divide="ignore"):
        s_eff = _POLE_DISTANCE / width
        n_grade = np.ceil(np.log(_GRADE_RADIUS / width) / np.log(_GRADE_RATIO)) + 1
    pos = np.searchsorted(bounds, s_eff)
    graded = pos >= len(bounds)
    n_half = np.where(graded, cls["graded_half"], counts[np.minimum(pos, len(bounds) - 1)])
    return n_half, np.where(graded, np.minimum(n_grade, _GRADE_MAX), 0).astype(int)


def nested_expectation(
    C: np.ndarray,
    funcs: Sequence[Callable[[np.ndarray], np.ndarray]],
    kinks: Sequence[Sequence[float]] | None = None,
    accuracy: str = "fine",
) -> np.ndarray:
    """``E[prod_j f_j(x_j)]`` for ``x ~ N(0, C)`` by nested conditional quadrature.

    Each conditional one-dimensional integral is split at the kinks of its
    function and at the kink lines of nearly determined later arguments, with
    Gauss rules for the Gaussian weight on the two outer half-lines and
    Gauss-Legendre panels graded towards the splits; node counts adapt to the
    conditional standard deviations (see the comments in the module).

    Parameters
    ----------
    C : ndarray, shape ``(..., d, d)``
        Covariances (symmetric positive semidefinite), any scale up to
        variances ~10; pivots below ``1e-14`` of their variance count as zero.
    funcs : sequence of d callables
        Vectorised functions of each coordinate, analytic except at their kinks
        and with no singularity closer than ``~0.7`` to the real axis.
    kinks : sequence of d sequences of float, optional
        Points where each function (or a derivative) is not analytic; default
        ``(0.0,)`` for every function.
    accuracy : {"fine", "coarse"}
        ``"fine"``: ~1e-12 per level (2-D expectations to ~1e-11 times their
        scale); ``"coarse"``: ~1e-9 per level, for 4-D expectations.

    Returns
    -------
    ndarray, shape (...)
    """
    C, d = _check_arguments(C, funcs)
    if accuracy not in _CLASSES:
        raise ValueError(f"accuracy: must be one of {sorted(_CLASSES)}, got {accuracy!r}")
    try:
        kinks = [(0.0,)] * d if kinks is None else [tuple(float(k) for k in ks) for ks in kinks]
    except (TypeError, ValueError):
        raise ValueError(f"kinks: must be {d} sequences of numbers, got {kinks!r}") from None
    if len(kinks) != d or not all(np.all(np.isfinite(ks)) for ks in kinks):
        raise ValueError(f"kinks: need {d} sequences of finite kink locations, got {kinks!r}")
    if not np.all(np.isfinite(C)):
        raise ValueError("C: entries must be finite")
    batch = C.shape[:-2]
    Cf = C.reshape(-1, d, d)
    if len(Cf) == 0:
        return np.empty(batch)
    L = _semidefinite_cholesky(0.5 * (Cf + np.swapaxes(Cf, -1, -2)))
    diag = np.diagonal(L, axis1=-2, axis2=-1)  # (B, d)
    # rem[:, k, j]: standard deviation of x_k left once z_0..z_j are fixed.
    sq = L**2
    rem = np.sqrt(np.clip(np.cumsum(sq[:, :, ::-1], axis=-1)[:, :, ::-1] - sq, 0.0, None))
    out = np.empty(len(Cf))
    for key, (idx, level_counts) in _plan(L, diag, rem, kinks, accuracy).items():
        out[idx] = _nested_group(L[idx], rem[idx], key, level_counts, funcs, kinks, accuracy)
    return out.reshape(batch)


def _features(L: np.ndarray, rem: np.ndarray, j: int, kinks: list[tuple[float, ...]]
              ) -> list[tuple[int, float, np.ndarray]]:
    """Candidate features of level ``j``: ``(k, kappa, width)`` with widths ``(B,)`` (inf: none).

    ``k == j``: a kink of the level's own function (width: the pole distance in
    units of ``z_j``); ``k > j``: the kink line of a later argument.
    """
    out = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(j, L.shape[1]):
            coef = np.abs(L[:, k, j])
            r = rem[:, k, j]
            if k == j:
                width = np.where(coef > 0, _POLE_DISTANCE / coef, np.inf)
            else:
                # exactly determined: an exact kink (poles at the usual distance);
                # otherwise a kink smoothed over rem / |L_kj|
                width = np.where(r > 0, np.minimum(_POLE_DISTANCE, r), _POLE_DISTANCE) / coef
                width = np.where(coef > 0, width, np.inf)
            # A function without kinks still splits its level (at 0, where it costs nothing).
            for kappa in (kinks[k] or (0.0,)) if k == j else kinks[k]:
                out.append((k, kappa, width))
    return out


def _level_features(L: np.ndarray, rem: np.ndarray, diag: np.ndarray, j: int,
                    kinks: list[tuple[float, ...]]) -> tuple[list, np.ndarray, np.ndarray]:
    """Features of level ``j`` with coinciding ones merged.

    Returns the candidates ``(k, kappa)``, whether each is active ``(B, n)``
    and its width ``(B, n)`` (the smallest of the merged ones).
    """
    feats = _features(L, rem, j, kinks)
    widths = np.stack([w for _, _, w in feats], axis=-1)
    own = np.array([k == j for k, _, _ in feats])
    exact = np.stack([(rem[:, k, j] == 0) | (k == j) for k, _, _ in feats], axis=-1)
    # Split at own kinks, exactly determined kink lines and lines sharper than _LINE_WIDTH;
    # smoother lines only raise the node count (see _plan).
    active = (own | exact | (widths < _LINE_WIDTH)) & np.isfinite(widths)
    active &= (diag[:, j] > 0)[:, None]
    # Features at the same point for every value of the earlier z's count once.
    with np.errstate(divide="ignore", invalid="ignore"):
        for a in range(len(feats)):
            ka, kap_a, _ = feats[a]
            ra = L[:, ka, :j + 1] / L[:, ka, j:j + 1]
            oa = kap_a / L[:, ka, j]
            for b in range(a):
                kb, kap_b, _ = feats[b]
                rb = L[:, kb, :j + 1] / L[:, kb, j:j + 1]
                ob = kap_b / L[:, kb, j]
                same = np.all(np.abs(ra - rb) <= 1e-12 * (1 + np.abs(ra)), axis=-1)
                same &= np.abs(oa - ob) <= 1e-12 * (1 + np.abs(oa))
                same &= active[:, a] & active[:, b]
                widths[:, b] = np.where(same, np.minimum(widths[:, a], widths[:, b]), widths[:, b])
                active[:, a] &= ~same
    return [(k, kappa) for k, kappa, _ in feats], active, widths


def _plan(L, diag, rem, kinks, accuracy) -> dict[tuple, tuple[np.ndarray, list]]:
    """Group the covariances by the structure of their nested rule.

    Keys: per level, whether it is integrated and which features are active;
    values: the member indices and, per level, the largest ``(n_half, n_grade)``
    the members need.
    """
    B, d = diag.shape
    cols, counts = [], []
    for j in range(d):
        _, active, widths = _level_features(L, rem, diag, j, kinks)
        n_half, _ = _level_counts(np.min(widths, axis=-1), accuracy)
        _, n_grade = _level_counts(np.min(np.where(active, widths, np.inf), axis=-1), accuracy)
        live = diag[:, j] > 0
        n_half, n_grade = np.where(live, n_half, 0), np.where(live, n_grade, 0)
        # Grouping by the counts too keeps one demanding covariance from setting the
        # rule of many cheap ones; the graded panels are counted in steps of two.
        cols += [live[:, None].astype(int), active.astype(int), n_half[:, None], (n_grade[:, None] + 1) // 2]
        counts.append((n_half, n_grade))
    table = np.concatenate(cols, axis=-1)
    keys, inverse = np.unique(table, axis=0, return_inverse=True)
    out = {}
    for g, k in enumerate(keys):
        idx = np.flatnonzero(inverse.ravel() == g)
        out[tuple(int(x) for x in k)] = (idx, [(int(h[idx].max()), int(n[idx].max())) for h, n in counts])
    return out


# The last of d >= 3 nested levels is a smoothed copy of its function,
# h(mu) = E[f(mu + s Z)], needed at every node of the levels above.  It is tabulated once
# per covariance, as a piecewise Chebyshev interpolant on panels graded around the kinks
# (width s / 2 at the kink: h is entire with growth exp(y^2 / 2 s^2) off the real axis)
# and 2 wide elsewhere, which turns the d-dimensional nesting into a (d-1)-dimensional one.
_TABLE_DEGREE = 15


_TABLE_WIDTH = 2.0


class _Smoothed:
    """Piecewise Chebyshev interpolant of ``h(mu) = E[f(mu + s Z)]`` per covariance."""

    def __init__(self, f: Callable, kinks: tuple[float, ...], s: np.ndarray, reach: np.ndarray) -> None:
        Bc = len(s)
        w0 = 0.5 * np.minimum(s, _POLE_DISTANCE)
        n_grade = int(np.max(np.ceil(np.log2(_TABLE_WIDTH / w0)))) + 1 if len(kinks) else 0
        n_uni = int(np.max(np.ceil(reach / _TABLE_WIDTH))) + 1
        pts = [np.linspace(-1.0, 1.0, 2 * n_uni + 1) * (n_uni * _TABLE_WIDTH)]
        pts = [np.broadcast_to(pts[0], (Bc, 2 * n_uni + 1))]
        for kappa in kinks:
            d = w0[:, None] * 2.0 ** np.arange(n_grade)
            d = np.minimum(d, _TABLE_WIDTH)
            pts += [kappa - d, np.full((Bc, 1), kappa), kappa + d]
        edges = np.sort(np.concatenate(pts, axis=-1), axis=-1)
        edges = np.clip(edges, -reach[:, None], reach[:, None])
        self.lo, self.hi = edges[:, :-1], edges[:, 1:]
        # Chebyshev points of the first kind; values by the one-level rule ("fine").
        k = np.arange(_TABLE_DEGREE + 1)
        t = np.cos(np.pi * (k + 0.5) / (_TABLE_DEGREE + 1))
        mid, half = 0.5 * (self.lo + self.hi), 0.5 * (self.hi - self.lo)
        mu = mid[..., None] + half[..., None] * t  # (Bc, panels, deg + 1)
        flat = mu.reshape(Bc, -1)
        vals = _smooth_values(f, kinks, s, flat).reshape(mu.shape)
        # Chebyshev coefficients (DCT-II of the values at first-kind points).
        T = np.cos(np.pi * np.outer(k, k + 0.5) / (_TABLE_DEGREE + 1)) * (2.0 / (_TABLE_DEGREE + 1))
        coef = vals @ T.T
        coef[..., 0] *= 0.5
        # Flat per-panel arrays (panel p of covariance b at b * n_panels + p) and the
        # coefficients column-wise, so each evaluation gathers contiguous rows.
        self.mid, self.half = mid.ravel(), half.ravel()
        self.coef = np.ascontiguousarray(coef.reshape(-1, _TABLE_DEGREE + 1).T)
        self.reach = reach
        self.offset = (np.arange(Bc) * 4.0 * (reach.max() + 1.0))[:, None]
        self.starts = (self.lo + self.offset).ravel()

    def __call__(self, mu: np.ndarray) -> np.ndarray:
        """``h`` at ``mu`` of shape ``(Bc, P)``."""
        Bc, n_pan = self.lo.shape
        mu = np.clip(mu, -self.reach[:, None], self.reach[:, None])
        # One global search: covariance b's panels shifted by offset[b].
        g = np.searchsorted(self.starts, (mu + self.offset).ravel(), side="right") - 1
        base = np.repeat(np.arange(Bc) * n_pan, mu.shape[1])
        g = np.clip(g, base, base + n_pan - 1)
        half = self.half[g]
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(half > 0, (mu.ravel() - self.mid[g]) / half, 0.0)
        # Clenshaw
        x2 = 2.0 * x
        b1 = np.zeros_like(x)
        b2 = np.zeros_like(x)
        for c in self.coef[:0:-1]:
            b1, b2 = x2 * b1 - b2 + c[g], b1
        return (x * b1 - b2 + self.coef[0][g]).reshape(mu.shape)


def _smooth_values(f: Callable, kinks: tuple[float, ...], s: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """``E[f(mu + s Z)]`` for ``mu`` of shape ``(Bc, P)``, ``s`` of shape ``(Bc,)``, one fine level."""
    if not kinks:
        kinks = (0.0,)
    sc = s[:, None, None]
    p = (np.asarray(kinks)[None, None, :] - mu[..., None]) / sc
    p = np.clip(p, -Z_MAX - 2 * _GRADE_RADIUS, Z_MAX + 2 * _GRADE_RADIUS)
    width = _POLE_DISTANCE / s
    n_half, n_grade = _level_counts(width, "fine")
    eps = np.broadcast_to(width[:, None, None], p.shape)
    z, w = _level_rule(p, eps, int(n_grade.max()), int(n_half.max()), _CLASSES["fine"]["panel"])
    return np.sum(w * f(mu[..., None] + sc * z), axis=-1)


def _nested_group(L, rem, key, level_counts, funcs, kinks, accuracy) -> np.ndarray:
    """``E[prod f_j(x_j)]`` for covariances that share the rule structure ``key``."""
    B, d, _ = L.shape
    m = _CLASSES[accuracy]["panel"]
    levels, pos = [], 0
    for j in range(d):
        n_feat = max(len(kinks[j]), 1) + sum(len(kinks[k]) for k in range(j + 1, d))
        n_half, n_grade = level_counts[j]
        levels.append((n_half, n_grade, np.asarray(key[pos + 1:pos + 1 + n_feat], dtype=bool)))
        pos += 3 + n_feat
    # Nodes per level (the gaps between features are sized at run time; ~8 panels assumed).
    size = 1
    for j, (n_half, n_grade, active) in enumerate(levels):
        F = int(active.sum())
        if n_half and not (j == d - 1 and d >= 3):
            size *= 2 * n_half + 2 * F * n_grade * m + max(F - 1, 0) * 8 * m
    out = np.empty(B)
    step = max(1, _NESTED_CHUNK // max(size, 1))
    for lo in range(0, B, step):
        Lc, rc = L[lo:lo + step], rem[lo:lo + step]
        Bc = len(Lc)
        W = np.ones((Bc, 1))
        mu = np.zeros((Bc, 1, d))
        for j, (n_half, n_grade, active) in enumerate(levels):
            if not n_half:
                W = W * funcs[j](mu[..., j])
                continue
            if j == d - 1 and d >= 3:
                reach = (Z_MAX + 2 * _GRADE_RADIUS + 12.0) * np.sum(np.abs(Lc[:, j, :j]), axis=-1) + 1.0
                W = W * _Smoothed(funcs[j], kinks[j], Lc[:, j, j], reach)(mu[..., j])
                continue
            feats, _, widths = _level_features(Lc, rc, np.diagonal(Lc, axis1=1, axis2=2), j, kinks)
            feats = [f for f, a in zip(feats, active) if a]
            with np.errstate(divide="ignore", invalid="ignore"):
                p = np.stack([(kappa - mu[..., k]) / Lc[:, k, j, None] for k, kappa in feats], axis=-1)
            eps = np.broadcast_to(widths[:, active][:, None, :], p.shape)
            p = np.clip(p, -Z_MAX - 2 * _GRADE_RADIUS, Z_MAX + 2 * _GRADE_RADIUS)
            z, w = _level_rule(p, eps, n_grade, n_half, m)  # (Bc, P, N)
            s = Lc[:, j, j][:, None, None]
            W = (W[..., None] * w * funcs[j](mu[..., j, None] + s * z)).reshape(Bc, -1)
            if j + 1 < d:
                mu = (mu[..., None, :] + z[..., None] * Lc[:, None, None, :, j]).reshape(Bc, -1, d)
        out[lo:lo + step] = W.sum(axis=-1)
    return out
