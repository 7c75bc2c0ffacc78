"""The generalisation error near zero error, without cancellation.

Near the perfect solution ``eps_g`` is a small difference of O(1) Gaussian
averages.  Each student is paired with its best-correlated teacher and the
error signal is written through the differences of their fields, whose
covariances are exact differences of order parameters; the averages of those
differences are closed forms (linear, ReLU) or short Gauss-Legendre integrals
along the segment between the paired fields.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

import numpy as np

# Where eps_g < _EG_CANCEL times the sum of the magnitudes of its pair terms, the plain
# sum has lost ~2 digits and eg_vector switches to the difference form.
_EG_CANCEL = 2e-2


# Gauss-Legendre rules per path parameter.  The integrands of the difference form vary
# on the scale D = 1 / (|z_i| / |y_pi(i)|) in s and t; for a kink (relu) they are
# singular where u and w become collinear, at a distance ~D = sin(smallest angle between
# two teachers) / (|z_i| / |y_pi(i)|).  Measured against 50-digit references (see the
# tests), 4 + 10 / sqrt(D) nodes reach rounding; states that would need more than the
# largest rule keep the plain sum.  A smooth activation (erf: no kink, the integrand analytic
# near the segment) reaches rounding with two nodes fewer (measured for |z_i|^2 / T_aa from
# 1e-3 to 30), which at the plateau's distances is one rule lower (16 -> 12 nodes).
_EG_RULES = (6, 8, 10, 12, 16, 20, 24, 32, 48, 64)


# (batch x pairs x nodes) elements per chunk of the difference form: a few hundred kB per
# array, which stay in cache (1 << 18 ran a third slower; below 1 << 14 the per-call cost shows).
_EG_CHUNK = 1 << 15


@lru_cache(maxsize=None)
def _gauss_legendre01(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (x + 1.0), 0.5 * w


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a + b = s + e`` exactly (Knuth's TwoSum)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _accurate_sum(x: np.ndarray) -> np.ndarray:
    """Sum over the last axis as if in twice the working precision.

    Pairwise TwoSum; the rounding errors of all levels are summed separately,
    so the error is ``eps |sum| + O(n eps^2) sum |x|``.
    """
    err = np.zeros(x.shape[:-1])
    while x.shape[-1] > 1:
        if x.shape[-1] % 2:
            x = np.concatenate([x, np.zeros(x.shape[:-1] + (1,))], axis=-1)
        x, e = _two_sum(x[..., 0::2], x[..., 1::2])
        err += e.sum(axis=-1)
    return x[..., 0] + err


def _sum3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``a + b + c`` with a relative error of ~2 ulps whatever the cancellation."""
    s, e1 = _two_sum(a, b)
    s, e2 = _two_sum(s, c)
    return s + (e1 + e2)


def _matching(S: np.ndarray, T: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    """Teacher of largest correlation per student, shape ``(B, K)``, and whether it is injective."""
    pi = np.argmax(S[:, :K, K:] / np.sqrt(np.diag(T)), axis=-1)
    if K == 1:
        return pi, np.ones(len(pi), dtype=bool)
    srt = np.sort(pi, axis=-1)
    return pi, np.all(srt[:, 1:] != srt[:, :-1], axis=-1)


def _differences(S: np.ndarray, T: np.ndarray, K: int, pi: np.ndarray):
    """``T_pi(i)pi(j)``, ``Q_ij - T_pi(i)pi(j)`` and ``R_i,pi(j) - T_pi(i)pi(j)``, each ``(B, K, K)``."""
    Tpp = T[pi[:, :, None], pi[:, None, :]]
    Rp = np.take_along_axis(S[:, :K, K:], np.broadcast_to(pi[:, None, :], pi.shape + (K,)), axis=2)
    return Tpp, S[:, :K, :K] - Tpp, Rp - Tpp


def _eg_linear(S: np.ndarray, T: np.ndarray, K: int, v: np.ndarray | None = None,
               w: np.ndarray | None = None) -> np.ndarray:
    """``eps_g`` of the linear activation, shape ``(B,)``.

    ``2 eps_g = sum_ik v_i v_k Q_ik - 2 sum_in v_i w_n R_in + sum_nm w_n w_m T_nm``
    is rewritten with any map ``pi`` as ``sum_ik v_i v_k (Q_ik - T_pi(i)pi(k))
    - 2 sum_in v_i w_n (R_in - T_pi(i)n) + sum_nm e_n e_m T_nm`` with
    ``e_n = w_n - sum_{i : pi(i) = n} v_i``, an identity; with ``pi`` the
    best-correlated teacher the differences are small and exact near the
    perfect solution, and the terms are summed in twice the working precision.
    ``v`` (B, K) and ``w`` (M,) are the second-layer weights (default ones).
    """
    B = S.shape[0]
    M = T.shape[0]
    pi, _ = _matching(S, T, K)
    _, dQ, _ = _differences(S, T, K, pi)
    dRn = S[:, :K, K:] - T[pi]  # R_in - T_pi(i)n
    hit = pi[:, :, None] == np.arange(M)
    if v is None:
        e = 1.0 - hit.sum(axis=1)
        pair_terms = [dQ.reshape(B, -1), -2.0 * dRn.reshape(B, -1)]
    else:
        # The differences cancel to order their square: their products with the
        # weights are split into float and rounding error so the sum stays exact.
        e = w[None, :] - (v[:, :, None] * hit).sum(axis=1)
        pair_terms = [*_exact_products(dQ, v[:, :, None], v[:, None, :]),
                      *(-2.0 * t for t in _exact_products(dRn, v[:, :, None], w[None, None, :]))]
        pair_terms = [t.reshape(B, -1) for t in pair_terms]
    eTe = (e[:, :, None] * e[:, None, :] * T).reshape(B, -1)
    terms = np.concatenate([*pair_terms, eTe], axis=-1)
    return 0.5 * _accurate_sum(terms)


def _two_product(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a * b = p + e`` exactly (Dekker's product with Veltkamp's split)."""
    p = a * b

    def split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = 134217729.0 * x  # 2^27 + 1
        hi = c - (c - x)
        return hi, x - hi

    ah, al = split(a)
    bh, bl = split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _exact_products(d: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    """``d * a * b`` as three floats whose sum is exact to ~eps^2 of the product (broadcasting)."""
    ab, ab_err = _two_product(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    p, p_err = _two_product(np.broadcast_to(d, np.broadcast_shapes(d.shape, ab.shape)), ab)
    return p, p_err, d * ab_err


def _eg_nodes(S: np.ndarray, pi: np.ndarray, T: np.ndarray, K: int, sine: float,
              smooth: bool = False) -> np.ndarray:
    """Gauss-Legendre nodes per path parameter for each state (0: none suffices), shape ``(B,)``.

    ``sine``: smallest sine of the angle between two teachers (1 for a smooth activation);
    ``smooth``: the activation has no kink (two nodes fewer suffice, see ``_EG_RULES``).
    """
    Tpp, dQ, dR = _differences(S, T, K, pi)
    ar = np.arange(K)
    z2 = np.max((dQ[:, ar, ar] - 2.0 * dR[:, ar, ar]) / Tpp[:, ar, ar], axis=-1)  # |z_i|^2 / T_aa
    with np.errstate(divide="ignore", invalid="ignore"):
        need = (2.0 if smooth else 4.0) + 10.0 * (np.maximum(z2, 0.0) / sine**2) ** 0.25
    rules = np.asarray(_EG_RULES)
    pos = np.searchsorted(rules, np.nan_to_num(need, nan=np.inf))
    return np.where(pos < len(rules), rules[np.minimum(pos, len(rules) - 1)], 0)


def _eg_matched(S: np.ndarray, pi: np.ndarray, T: np.ndarray, K: int,
                forms: Mapping[str, Any], n_nodes: int, v: np.ndarray | None = None,
                w: np.ndarray | None = None) -> np.ndarray:
    """``2 eps_g`` in the difference form (see above), shape ``(B,)``.

    ``S``: covariances ``(B, L, L)``; ``pi``: ``(B, K)`` teacher indices
    (distinct for an activation with a kink, whose pair averages are singular
    for two students paired with one teacher); ``forms``: the activation's
    closed forms (``"J2grad"``, ``"J2"``, ``"H2"``, ``"I2"`` and optionally
    ``"D2"``); ``n_nodes``: Gauss-Legendre nodes per path parameter.

    With second-layer weights ``v`` (B, K) and ``w`` (M,) the error signal is
    ``sigma - tau = sum_i v_i D_i - sum_n e_n g(y_n)``, ``D_i = g(x_i) -
    g(y_pi(i))``, ``e_n = w_n - sum_{i : pi(i) = n} v_i``, so each pair term
    carries ``v_i v_j``, each mixed term ``v_i e_n`` and each teacher term
    ``e_n e_m``; near the perfect solution (``v = w``) all are small.
    """
    B = S.shape[0]
    M = T.shape[0]
    Tpp, dQ, dR = _differences(S, T, K, pi)
    c = _sum3(dQ, -dR, -np.swapaxes(dR, 1, 2))  # Cov(z_i, z_j)
    ar = np.arange(K)
    Td, dRd, V = Tpp[:, ar, ar], dR[:, ar, ar], c[:, ar, ar]  # T_aa, Cov(z_i, y_a), Var(z_i)
    kink = "D2" in forms
    si, sj = np.triu_indices(K, 1 if kink else 0)
    pair_w = np.where(si == sj, 1.0, 2.0)
    s, ws = _gauss_legendre01(n_nodes)
    # s on the last but one axis, t on the last: what depends on one of them only is
    # formed on n nodes and broadcast (the same operations per node pair as on the grid).
    s2, t2 = s[:, None], s[None, :]
    w2 = np.outer(ws, ws).ravel()
    parts = []
    if len(si):
        # Per-pair inputs (B, pairs, 1): T_aa, T_bb, T_ab, Cov(z_i, y_a), Cov(z_j, y_b),
        # Var z_i, Var z_j, Cov(z_i, y_b), Cov(z_j, y_a), Cov(z_i, z_j).
        pair_in = np.stack([Td[:, si], Td[:, sj], Tpp[:, si, sj], dRd[:, si], dRd[:, sj],
                            V[:, si], V[:, sj], dR[:, si, sj], dR[:, sj, si], c[:, si, sj]])[..., None, None]
        Iij = np.empty((B, len(si)))
        step = max(1, _EG_CHUNK // (len(si) * len(w2)))
        for lo in range(0, B, step):
            Ta, Tb, Tab, ra, rb, Vi, Vj, rij, rji, cij = pair_in[:, lo:lo + step]
            au, bw = ra + s2 * Vi, rb + t2 * Vj  # Cov(z_i, u), Cov(z_j, w)
            aw, bu = rij + t2 * cij, rji + s2 * cij  # Cov(z_i, w), Cov(z_j, u)
            Cuu = Ta + s2 * (ra + au)
            Cww = Tb + t2 * (rb + bw)
            Cuw = (Tab + s2 * rij) + t2 * bu
            j2, j2uw, j2uu, j2ww = forms["J2grad"](Cuu, Cww, Cuw)
            F = cij * j2 + (au * bw + aw * bu) * j2uw + (au * bu) * j2uu + (aw * bw) * j2ww
            Iij[lo:lo + step] = F.reshape(F.shape[:2] + (-1,)) @ w2
        parts.append(pair_w * Iij if v is None else pair_w * Iij * (v[:, si] * v[:, sj]))
    if kink:
        d2 = forms["D2"](Td, dQ[:, ar, ar], dRd)
        parts.append(d2 if v is None else d2 * v * v)
    hit = pi[:, :, None] == np.arange(M)
    e = 1.0 - hit.sum(axis=1) if v is None else w[None, :] - (v[:, :, None] * hit).sum(axis=1)
    if np.any(e):
        # Teacher output weight not matched by paired students (e_n; with unit weights:
        # the teachers no student is paired with): <D_i g(y_n)> and I2(y_n, y_m).
        dRn = S[:, :K, K:] - T[pi]  # Cov(z_i, y_n)
        Tan = T[pi][..., None]  # (B, K, M, 1)
        au = (dRd[:, :, None] + s * V[:, :, None])[:, :, None, :]  # (B, K, 1, nodes)
        Cuu = Td[:, :, None, None] + s * (dRd[:, :, None, None] + au)
        Cun = Tan + s * dRn[..., None]
        Cnn = np.diag(T)[:, None]
        G = (au * forms["H2"](Cuu, Cnn, Cun) + dRn[..., None] * forms["J2"](Cuu, Cnn, Cun)) @ ws
        mixed = e[:, None, :] * G if v is None else v[:, :, None] * e[:, None, :] * G
        parts.append((-2.0 * mixed).reshape(B, -1))
        dT = np.diag(T)
        I2T = forms["I2"](dT[:, None], dT[None, :], T)
        parts.append((e[:, :, None] * e[:, None, :] * I2T).reshape(B, -1))
    return _accurate_sum(np.concatenate(parts, axis=-1))


def eg_of_vectors(model: Any, v: np.ndarray) -> np.ndarray:
    """``eps_g`` of state vectors ``(..., n_state)`` of ``model`` (a ``Committee``), shape ``(...)``.

    The routes and where each is used are described at
    :meth:`phasekit.committee.model.Committee.eg_vector`.
    """
    v = np.asarray(v, dtype=float)
    batch = v.shape[:-1]
    vf = v.reshape((-1, v.shape[-1]))
    S = model._sigma(vf)
    weighted = not model._soft
    if weighted:
        vs = np.broadcast_to(model.second_layer(vf), (len(vf), model.K))
        w = model.teacher_weights
        c = np.concatenate([-vs, np.broadcast_to(w, (len(vf), model.M))], axis=-1)
        wp = model._pair_weights(vs, c)[0] if model.train_second_layer else model._w_pairs
    else:
        vs = w = None
        wp = model._w_pairs
    if model._eg_route == "linear":
        eg = _eg_linear(S, model.T, model.K, vs, w)
    else:
        I2 = model._i2_pairs(S)
        eg = 0.5 * (I2 * wp).sum(axis=-1) if wp.ndim > 1 else 0.5 * (I2 @ wp)
        if model._eg_route == "matched":
            # The plain sum's absolute error is ~eps times the sum of magnitudes.
            absw = np.abs(wp)
            scale = 0.5 * ((np.abs(I2) * absw).sum(axis=-1) if wp.ndim > 1 else np.abs(I2) @ absw)
            need = np.flatnonzero(~(eg >= _EG_CANCEL * scale))
            if need.size:
                forms = model.activation.closed_forms
                pi, injective = _matching(S[need], model.T, model.K)
                if weighted and "D2" not in forms:
                    injective = np.ones_like(injective)
                idx, pi = need[injective], pi[injective]
                kink = "D2" in forms
                nodes = _eg_nodes(S[idx], pi, model.T, model.K, model._teacher_sine if kink else 1.0,
                                  smooth=not kink)
                for n in np.unique(nodes[nodes > 0]):
                    m = nodes == n
                    sel = idx[m]
                    eg[sel] = 0.5 * _eg_matched(S[sel], pi[m], model.T, model.K, forms, int(n),
                                                None if vs is None else vs[sel], w)
    return np.maximum(eg, 0.0).reshape(batch)

