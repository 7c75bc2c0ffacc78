"""The order-parameter flow of the committee machine: field covariance, Gaussian tables, ``d state / d alpha``.

Notation: K student units (fields ``x_i``), M teacher units (fields ``y_n``),
order parameters ``R_in = J_i . B_n``, ``Q_ik = J_i . J_k``, ``T_nm = B_n . B_m``,
time ``alpha = mu / N``.  All K + M fields are stacked as ``(x_1..x_K, y_1..y_M)``
with covariance ``Sigma = [[Q, R], [R^T, T]]`` and signs ``s_u = -1`` (student),
``+1`` (teacher).

The right-hand side uses Stein's lemma on the linear argument of I3,
``I3(x_i, v, u) = Sigma_iv H2(x_i, u) + Sigma_vu J2(x_i, u)``, so the whole
first-order flow is two K x (K+M) tables of 2-D expectations and two small
matrix products:

    A_iv = Sigma_iv h_i + sum_u J2_iu s_u Sigma_uv,   h_i = sum_u s_u H2_iu,
    dR/dalpha = eta A[:, teachers],   dQ/dalpha = eta (A[:, students] + A^T) + eta^2 (...).

The eta^2 term evaluates I4 once per distinct block, using its symmetries in
(i, k) and (u, w): ``K(K+1)/2 x L(L+1)/2`` blocks, contracted with the weights
``s_u s_w`` (doubled off the diagonal).
With second-layer weights the signs become coefficients ``c_u = -v_j``
(student field) and ``w_n`` (teacher field), ``A`` carries a factor ``v_i``
and the eta^2 term ``v_i v_k``; weight decay, teacher drift and the
second layer's own flow are added in :meth:`CommitteeFlow.rhs_vector`.
:class:`CommitteeFlow` holds the index tables and the flow;
:class:`~phasekit.committee.model.Committee` (parameters, validation) builds on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.activations import _LINEAR, expect_H2, expect_I2, expect_I4, expect_J2

__all__ = ["CommitteeFlow", "FlowParts"]


# I4 blocks evaluated per chunk: keeps temporaries in cache and memory bounded.
_I4_CHUNK = 1 << 15


# Up to this many I4 blocks, gather all entries contiguously instead of broadcasting.
_I4_FULL_GATHER = 1 << 12


# The attributes CommitteeFlow._build_indices sets (built together on first access).
_TABLES = frozenset({
    "_signs", "_iu_K", "_idx2", "_pairs_all", "_w_pairs", "_pairs_s", "_sigma_src", "_out_a", "_out_b",
    "_out_qmask", "_uw_flat", "_i4_chunks", "_i4_full", "_pair_type", "_closed2", "_closed4", "_closed_I2",
    "_eg_route", "_teacher_sine", "_soft", "_pair_double", "_vv_pairs", "_coef", "_i2_student", "_extras",
    "_i4_entries", "_i4_chunk_which",
})



def _ordered_sum(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Sum over ``axis`` in index order, for every entry alike.

    A BLAS product, and even numpy's own ``sum``, may group the terms of an
    entry differently with the shape of the array it sits in; an
    accumulation cannot.  The batched flow (:mod:`phasekit.committee.batch`)
    sums this way so that a state's derivative does not depend on the other
    states of its batch.
    """
    return np.take(np.add.accumulate(x, axis=axis), -1, axis=axis)


def _block_entries(ik: np.ndarray, cross: np.ndarray, uw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Variances ``(..., rows, P_a, 4)`` and covariances ``(..., rows, P_a, 6)`` of the I4 blocks of one chunk.

    ``ik`` ``(..., 3, rows, 1)`` holds ``S_ii, S_kk, S_ik`` of the student pairs, ``cross``
    ``(..., 4, rows, P_a)`` ``S_iu, S_iw, S_ku, S_kw`` and ``uw`` ``(..., 3, 1, P_a)`` ``S_uu, S_ww,
    S_uw`` (entries, or their positions in Sigma); covariances in the pair order
    ``12, 13, 14, 23, 24, 34`` of ``(x_i, x_k, u, w)``.
    """
    e = np.broadcast_arrays(ik[..., 0, :, :], ik[..., 1, :, :], uw[..., 0, :, :], uw[..., 1, :, :],
                            ik[..., 2, :, :], *(cross[..., j, :, :] for j in range(4)), uw[..., 2, :, :])
    return np.stack(e[:4], -1), np.stack(e[4:], -1)


def _contract(vals: np.ndarray, w: np.ndarray, rowwise: bool = False) -> np.ndarray:
    """``vals @ w`` over the last axis (also a matrix times a vector), ``w`` constant ``(P,)`` or per state ``(..., P)``.

    ``rowwise``: as a product and an ordered sum (:func:`_ordered_sum`).
    """
    if rowwise:
        return _ordered_sum(vals * (w if w.ndim == 1 else w[..., None, :]))
    if w.ndim == 1:
        return vals @ w
    return np.einsum("...sp,...p->...s", vals, w)


def _matmul(A: np.ndarray, B: np.ndarray, rowwise: bool = False) -> np.ndarray:
    """``A @ B`` for stacks of matrices (``rowwise``: see :func:`_contract`)."""
    if rowwise:
        return _ordered_sum(A[..., :, :, None] * B[..., None, :, :], axis=-2)
    return A @ B



class CommitteeFlow:
    """Index tables and the flow of a committee machine (the base of :class:`~phasekit.committee.model.Committee`).

    The index tables are built on the first access to any of them
    (:meth:`__getattr__`), not by the constructor: their size grows like
    ``K^2 (K + M)^2`` and a model used only through a reduced flow
    (:meth:`~phasekit.committee.model.Committee.restrict`) never needs them.
    """

    def __getattr__(self, name: str) -> Any:
        # Called only when normal lookup fails: once the tables exist this costs nothing.
        d = self.__dict__
        if name in _TABLES and not d.get("_tables_built", False) and not d.get("_building", False):
            d["_building"] = True
            try:
                self._build_indices()
                d["_tables_built"] = True
            finally:
                d["_building"] = False
            if name in d:
                return d[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _build_indices(self) -> None:
        K, M, L = self.K, self.M, self.L
        self._signs = np.r_[-np.ones(K), np.ones(M)]
        self._iu_K = np.triu_indices(K)
        # 2-D blocks (x_i, u) for every student i and field u, i-major.
        ii, uu = np.meshgrid(np.arange(K), np.arange(L), indexing="ij")
        self._idx2 = np.stack([ii.ravel(), uu.ravel()], axis=-1)
        # Field pairs u <= w with weights s_u s_w (doubled off the diagonal).
        pu, pw = np.triu_indices(L)
        self._pairs_all = np.stack([pu, pw], axis=-1)
        self._w_pairs = self._signs[pu] * self._signs[pw] * np.where(pu == pw, 1.0, 2.0)
        # Student pairs i <= k.
        si, sk = self._iu_K
        self._pairs_s = np.stack([si, sk], axis=-1)
        P_a = len(pu)
        # Sigma as one gather from the concatenation [state vector, T.ravel()].
        src = np.empty((L, L), dtype=np.intp)
        src[:K, K:] = np.arange(K * M).reshape(K, M)
        src[K:, :K] = src[:K, K:].T
        q = np.empty((K, K), dtype=np.intp)
        q[self._iu_K] = K * M + np.arange(K * (K + 1) // 2)
        q[self._iu_K[1], self._iu_K[0]] = q[self._iu_K]
        src[:K, :K] = q
        src[K:, K:] = self.n_state + np.arange(M * M).reshape(M, M)
        self._sigma_src = src.ravel()
        # State-derivative entries as gathers from the (K, L) table A (see rhs_vector).
        ri, rn = np.divmod(np.arange(K * M), M)
        self._out_a = np.r_[ri * L + K + rn, si * L + sk]
        self._out_b = np.r_[ri * L + K + rn, sk * L + si]
        self._out_qmask = np.r_[np.zeros(K * M), np.ones(len(si))]
        # I4 blocks (i, k, u, w) in chunks of whole ik rows; flat indices into Sigma of
        # the entries that depend on (i, k) only, (u, w) only, or both.
        self._uw_flat = np.stack([pu * L + pu, pw * L + pw, pu * L + pw])
        self._i4_chunks = []
        if self.second_order:
            rows = max(1, _I4_CHUNK // P_a)
            for start in range(0, len(si), rows):
                a, b = si[start:start + rows, None], sk[start:start + rows, None]
                ik = np.stack([a[:, 0] * L + a[:, 0], b[:, 0] * L + b[:, 0], a[:, 0] * L + b[:, 0]])
                cross = np.stack([a * L + pu, a * L + pw, b * L + pu, b * L + pw])
                self._i4_chunks.append((start, start + len(a), ik, cross))
        # Few blocks: one contiguous gather of all ten entries beats broadcasting
        # (numpy's small 2-D broadcasts are slow); many blocks: broadcast in chunks.
        self._i4_full = None
        if self.second_order and len(si) * P_a <= _I4_FULL_GATHER:
            ik, cross = self._i4_chunks[0][2:]
            shape = cross[0].shape
            rows = [np.broadcast_to(x[:, None], shape) for x in ik]
            cols = [np.broadcast_to(x, shape) for x in self._uw_flat]
            self._i4_full = np.stack([rows[0], rows[1], cols[0], cols[1], rows[2], *cross, cols[2]]).reshape(10, -1)
        # Type of each field pair for mixed activations: 0 ss, 1 st, 2 tt.
        self._pair_type = (pu >= K).astype(int) + (pw >= K).astype(int)
        # Closed forms in covariance entries let whole tables broadcast (see _tables2, _i4_sum).
        forms = self.activation.closed_forms
        self._closed2 = not self.mixed and "H2" in forms and "J2" in forms
        self._closed4 = not self.mixed and "I4" in forms
        self._closed_I2 = not self.mixed and "I2" in forms
        # A closed form from entries (relu) is told the blocks' exactly coinciding
        # arguments (i = k, u = w, a student field among u, w): equal positions in
        # Sigma are equal entries, so the positions give them, once per model.
        self._i4_entries, self._i4_chunk_which = None, None
        if self.second_order and self._closed4 and "I4_entries" in forms:
            coinciding = forms["I4_coinciding"]
            # Labels of Sigma's entries: its source in the state vector, and for T the
            # entry of the upper triangle where T is exactly symmetric.
            key = self._sigma_src.reshape(L, L).copy()
            tk = key[K:, K:]
            upper = np.triu(np.ones((self.M, self.M), dtype=bool))
            tk[...] = np.where(~upper & (self.T == self.T.T), tk.T, tk)
            key = key.ravel()
            if self._i4_full is not None:
                var_at = np.ascontiguousarray(self._i4_full[:4].T)
                off_at = np.ascontiguousarray(self._i4_full[4:].T)
                self._i4_entries = (var_at, off_at, coinciding(key[var_at], key[off_at]))
            else:
                self._i4_chunk_which = [coinciding(*(key[at] for at in _block_entries(ik[..., None], cross,
                                                                                      self._uw_flat[:, None, :])))
                                        for _, _, ik, cross in self._i4_chunks]
        # eps_g route (see eg_vector): exact quadratic form, difference form near the
        # perfect solution, or the plain sum over field pairs.
        if not self.mixed and self.activation is _LINEAR:
            self._eg_route = "linear"
        elif not self.mixed and all(k in forms for k in ("I2", "J2", "H2", "J2grad")):
            self._eg_route = "matched"
        else:
            self._eg_route = "plain"
        # Smallest sine of the angle between two teachers (sets the nodes of that route).
        d = np.sqrt(np.diag(self.T))
        cos = np.abs(self.T / np.outer(d, d))[~np.eye(self.M, dtype=bool)]
        self._teacher_sine = float(np.sqrt(max(0.0, 1.0 - cos.max(initial=0.0) ** 2)))
        # Second-layer weights.  The soft committee machine (v = w = 1 fixed) keeps the
        # signs s_u as coefficients; otherwise c_u = -v_j (student field) or w_n
        # (teacher field), constant unless the second layer is trained.
        self._soft = (not self.train_second_layer and bool(np.all(self.student_weights == 1.0))
                      and bool(np.all(self.teacher_weights == 1.0)))
        self._pair_double = np.where(pu == pw, 1.0, 2.0)
        self._vv_pairs = None
        if not self._soft and not self.train_second_layer:
            c = np.r_[-self.student_weights, self.teacher_weights]
            self._coef = c
            self._w_pairs = c[pu] * c[pw] * self._pair_double
            self._vv_pairs = self.student_weights[si] * self.student_weights[sk]
        # I2(x_i, u) of student i and field u as positions in the pair list (trained v).
        pos = np.empty((L, L), dtype=np.intp)
        pos[pu, pw] = np.arange(P_a)
        pos[pw, pu] = np.arange(P_a)
        self._i2_student = pos[:K]
        self._extras = self.weight_decay > 0 or self.drift > 0 or self.train_second_layer

    def _sigma(self, v: np.ndarray) -> np.ndarray:
        if v.ndim == 0 or v.shape[-1] != self.n_state:
            raise ValueError(f"v: state vectors must have length n_state = {self.n_state} "
                             f"(K = {self.K}, M = {self.M}), got shape {v.shape}")
        batch = v.shape[:-1]
        ext = np.concatenate([v, np.broadcast_to(self.T.ravel(), batch + (self.M * self.M,))], axis=-1)
        return ext[..., self._sigma_src].reshape(batch + (self.L, self.L))


    # --- the flow --------------------------------------------------------------

    def _tables2(self, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """H2 and J2 tables over (student i, field u), shape ``(..., K, L)``."""
        K, L = self.K, self.L
        batch = S.shape[:-2]
        if self._closed2:
            diag = np.diagonal(S, axis1=-2, axis2=-1)
            ent = (diag[..., :K, None], diag[..., None, :], S[..., :K, :])
            forms = self.activation.closed_forms
            if "H2J2" in forms:
                return forms["H2J2"](*ent)
            return forms["H2"](*ent), forms["J2"](*ent)
        i2 = self._idx2
        C = S[..., i2[:, :, None], i2[:, None, :]].reshape(batch + (K, L, 2, 2))
        sa, ta = self.activation, self.teacher_activation
        H = np.concatenate([expect_H2(C[..., :, :K, :, :], sa, sa),
                            expect_H2(C[..., :, K:, :, :], sa, ta)], axis=-1)
        J = np.concatenate([expect_J2(C[..., :, :K, :, :], sa, sa),
                            expect_J2(C[..., :, K:, :, :], sa, ta)], axis=-1)
        return H, J

    def _i4_sum(self, S: np.ndarray, w_pairs: np.ndarray | None = None, rowwise: bool = False) -> np.ndarray:
        """``sum_{u,w} c_u c_w I4(x_i, x_k, u, w)`` for i <= k, shape ``(..., K(K+1)/2)``.

        ``w_pairs``: weights ``c_u c_w`` of the field pairs ``u <= w`` (doubled off
        the diagonal), shape ``(P,)`` or ``(..., P)``; default the model's constant ones.
        ``rowwise``: contract without BLAS (see :func:`_contract`).
        """
        wp = self._w_pairs if w_pairs is None else w_pairs
        batch = S.shape[:-2]
        L = self.L
        P_s = len(self._pairs_s)
        Sflat = S.reshape(batch + (L * L,))
        if self._i4_entries is not None:
            var_at, off_at, which = self._i4_entries
            vals = self.activation.closed_forms["I4_entries"](Sflat[..., var_at], Sflat[..., off_at], which)
            return _contract(vals.reshape(batch + (P_s, -1)), wp, rowwise)
        if self._closed4 and self._i4_full is not None:
            e = Sflat[..., self._i4_full]  # (..., 10, blocks)
            vals = self.activation.closed_forms["I4"](*(e if e.ndim == 2 else np.moveaxis(e, -2, 0)))
            return _contract(vals.reshape(batch + (P_s, -1)), wp, rowwise)
        out = np.empty(batch + (P_s,))
        if self._closed4:
            # Entries depending on (i, k) only or (u, w) only broadcast against each
            # other; only the four cross covariances are gathered per block.
            i4 = self.activation.closed_forms["I4"]
            uw = Sflat[..., self._uw_flat][..., None, :]  # (..., 3, 1, P_a)
        sa, ta = self.activation, self.teacher_activation
        for n, (start, stop, ik, cross) in enumerate(self._i4_chunks):
            if self._i4_chunk_which is not None:
                var, off = _block_entries(Sflat[..., ik][..., None], Sflat[..., cross], uw)
                vals = self.activation.closed_forms["I4_entries"](var, off, self._i4_chunk_which[n])
            elif self._closed4:
                e = Sflat[..., ik][..., None]  # (..., 3, rows, 1)
                c = Sflat[..., cross]  # (..., 4, rows, P_a)
                vals = i4(e[..., 0, :, :], e[..., 1, :, :], uw[..., 0, :, :], uw[..., 1, :, :],
                          e[..., 2, :, :], c[..., 0, :, :], c[..., 1, :, :], c[..., 2, :, :],
                          c[..., 3, :, :], uw[..., 2, :, :])
            else:
                si, sk = self._pairs_s[start:stop].T
                pu, pw = self._pairs_all.T
                idx = np.stack(np.broadcast_arrays(si[:, None], sk[:, None], pu, pw), axis=-1)
                C = S[..., idx[..., :, None], idx[..., None, :]]  # (..., rows, P_a, 4, 4)
                vals = np.empty(C.shape[:-2])
                for t, (ac, ad) in enumerate([(sa, sa), (sa, ta), (ta, ta)]):
                    m = self._pair_type == t
                    if m.any():
                        vals[..., m] = expect_I4(C[..., m, :, :], sa, ac, ad)
            out[..., start:stop] = _contract(vals, wp, rowwise)
        return out

    def _weights_of(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Student weights ``(..., K)`` and field coefficients ``c`` ``(..., L)`` (constants when fixed)."""
        if not self.train_second_layer:
            return self.student_weights, self._coef
        vs = v[..., self.n_order:]
        c = np.concatenate([-vs, np.broadcast_to(self.teacher_weights, vs.shape[:-1] + (self.M,))], axis=-1)
        return vs, c

    def _pair_weights(self, vs: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``c_u c_w`` over field pairs (doubled off the diagonal) and ``v_i v_k`` over student pairs."""
        if not self.train_second_layer:
            return self._w_pairs, self._vv_pairs
        pu, pw = self._pairs_all.T
        si, sk = self._iu_K
        return c[..., pu] * c[..., pw] * self._pair_double, vs[..., si] * vs[..., sk]

    def _eta_for(self, alpha: Any) -> Any:
        if self.eta_schedule is None:
            return self.eta
        if alpha is None:
            raise ValueError("alpha: the learning rate follows a schedule, so the flow needs the time alpha "
                             "(rhs_vector(v, alpha))")
        eta = self.eta_at(alpha)
        return eta if np.ndim(eta) == 0 else np.asarray(eta)[..., None]

    def _first_order(self, S: np.ndarray, H: np.ndarray, J: np.ndarray, vs: Any, c: Any,
                     rowwise: bool = False) -> np.ndarray:
        """First-order part per unit eta of the (R, Q) components, shape ``(..., n_order)``.

        ``rowwise``: the products without BLAS (see :func:`_contract`).
        """
        K, L = self.K, self.L
        if self._soft:
            s = self._signs
            A = S[..., :K, :] * _contract(H, s, rowwise)[..., :, None] + _matmul(J * s, S, rowwise)  # (..., K, L)
        else:
            A = (S[..., :K, :] * _contract(H, c, rowwise)[..., :, None]
                 + _matmul(J * c[..., None, :], S, rowwise)) * vs[..., :, None]
        # dR_in = eta A_i,K+n;  dQ_ik = eta (A_ik + A_ki): two gathers from A.
        Af = A.reshape(S.shape[:-2] + (K * L,))
        return Af[..., self._out_a] + Af[..., self._out_b] * self._out_qmask

    def _second_parts(self, S: np.ndarray, J: np.ndarray, vs: Any, c: Any,
                      rowwise: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The eta^2 parts of dQ: ``v_i v_k sum c_u c_w I4`` and ``v_i v_k J2(x_i, x_k)``, each ``(..., K(K+1)/2)``."""
        j2 = J[..., self._iu_K[0], self._iu_K[1]]
        if self._soft:
            return self._i4_sum(S, rowwise=rowwise), j2
        wp, vv = self._pair_weights(vs, c)
        return self._i4_sum(S, wp, rowwise) * vv, j2 * vv

    def _second_layer_part(self, S: np.ndarray, c: np.ndarray, rowwise: bool = False) -> np.ndarray:
        """``dv_i / d alpha`` per unit eta_v: ``sum_u c_u I2(x_i, u)``, shape ``(..., K)``."""
        I2 = self._i2_pairs(S)
        terms = I2[..., self._i2_student] * c[..., None, :]
        return _ordered_sum(terms) if rowwise else terms.sum(axis=-1)

    def rhs_vector(self, v: np.ndarray, alpha: Any = None) -> np.ndarray:
        """``d state / d alpha`` for state vectors ``v`` of shape ``(..., n_state)``.

        The hot path: no validation.  Batched over leading axes (used by
        finite-difference Jacobians and ensembles).  ``alpha`` (a number or an
        array broadcasting against the leading axes) is needed only with a
        learning-rate schedule.  The flow is

            eta (first + eta (I4 + noise^2 J2)) - eta lambda (R, 2Q) - delta (R, 0) [, eta_v dv]

        (:meth:`flow_parts` returns the parts separately).
        """
        v = np.asarray(v, dtype=float)
        eta = self._eta_for(alpha)
        S = self._sigma(v)
        H, J = self._tables2(S)
        vs, c = (None, None) if self._soft else self._weights_of(v)
        out = self._first_order(S, H, J, vs, c)
        if self.second_order:
            i4, j2 = self._second_parts(S, J, vs, c)
            second = i4 + self.noise**2 * j2 if self.noise > 0 else i4
            out[..., self.K * self.M:] += eta * second
        out *= eta
        if not self._extras:
            return out
        KM, n0 = self.K * self.M, self.n_order
        if self.weight_decay > 0:
            out[..., :KM] -= (eta * self.weight_decay) * v[..., :KM]
            out[..., KM:n0] -= (2.0 * eta * self.weight_decay) * v[..., KM:n0]
        if self.drift > 0:
            out[..., :KM] -= self.drift * v[..., :KM]
        if self.train_second_layer:
            eta_v = self.eta_v if self.eta_schedule is None else self.eta_v * eta / self.eta
            out = np.concatenate([out, eta_v * self._second_layer_part(S, c)], axis=-1)
        return out

    def flow_parts(self, v: np.ndarray) -> "FlowParts":
        """The flow as parts with scalar coefficients, for state vectors ``v`` of shape ``(..., n_state)``.

        ``d state / d alpha = eta first + eta^2 (i4 + noise^2 j2) + eta lambda decay
        + delta drift + eta_v second_layer`` (:meth:`FlowParts.combine`), every
        part of shape ``(..., n_state)``.  A caller can combine them with
        per-point ``eta``, ``noise``, ``lambda``, ``delta``, ``eta_v`` (arrays
        over the leading axes).  ``i4`` and ``j2`` are ``None`` for a
        first-order model.
        """
        v = np.asarray(v, dtype=float)
        S = self._sigma(v)
        H, J = self._tables2(S)
        vs, c = (None, None) if self._soft else self._weights_of(v)
        n, n0, KM = self.n_state, self.n_order, self.K * self.M
        batch = v.shape[:-1]

        def full(part: np.ndarray, lo: int) -> np.ndarray:
            out = np.zeros(batch + (n,))
            out[..., lo:lo + part.shape[-1]] = part
            return out

        first = full(self._first_order(S, H, J, vs, c), 0)
        i4 = j2 = None
        if self.second_order:
            a, b = self._second_parts(S, J, vs, c)
            i4, j2 = full(a, KM), full(b, KM)
        decay = np.zeros(batch + (n,))
        decay[..., :KM] = -v[..., :KM]
        decay[..., KM:n0] = -2.0 * v[..., KM:n0]
        drift = np.zeros(batch + (n,))
        drift[..., :KM] = -v[..., :KM]
        second = full(self._second_layer_part(S, c), n0) if self.train_second_layer else np.zeros(batch + (n,))
        return FlowParts(model=self, first=first, i4=i4, j2=j2, decay=decay, drift=drift, second_layer=second)

    def _i2_pairs(self, S: np.ndarray) -> np.ndarray:
        """``I2(u, w)`` for the field pairs ``u <= w`` of ``_pairs_all``, shape ``(B, pairs)``."""
        pu, pw = self._pairs_all.T
        if self._closed_I2:
            diag = np.diagonal(S, axis1=-2, axis2=-1)
            return self.activation.closed_forms["I2"](diag[..., pu], diag[..., pw], S[..., pu, pw])
        p = self._pairs_all
        C = S[..., p[:, :, None], p[:, None, :]]
        I2 = np.empty(C.shape[:-2])
        sa, ta = self.activation, self.teacher_activation
        for t, (a, b) in enumerate([(sa, sa), (sa, ta), (ta, ta)]):
            m = self._pair_type == t
            I2[..., m] = expect_I2(C[..., m, :, :], a, b)
        return I2


@dataclass(frozen=True, eq=False)
class FlowParts:
    """The committee flow split into parts with scalar coefficients (:meth:`Committee.flow_parts`).

    Every part has the shape ``(..., n_state)`` of the state vectors it was
    computed at:

    ``first``
        first-order part per unit eta (R and Q components).
    ``i4``, ``j2``
        the eta^2 term per unit eta^2: ``v_i v_k sum c_u c_w I4`` and, per unit
        noise variance, ``v_i v_k J2(x_i, x_k)`` (Q components); ``None`` at first order.
    ``decay``
        weight decay per unit ``eta lambda``: ``(-R, -2 Q, 0)``.
    ``drift``
        teacher drift per unit ``delta``: ``(-R, 0, 0)``.
    ``second_layer``
        second-layer learning per unit ``eta_v``: ``sum_u c_u I2(x_i, u)`` (v components).
    """

    model: Any  # the Committee the parts belong to
    first: np.ndarray
    i4: np.ndarray | None
    j2: np.ndarray | None
    decay: np.ndarray
    drift: np.ndarray
    second_layer: np.ndarray

    def combine(self, eta: Any = None, *, noise: Any = None, weight_decay: Any = None, drift: Any = None,
                eta_second_layer: Any = None) -> np.ndarray:
        """``eta first + eta^2 (i4 + noise^2 j2) + eta lambda decay + delta drift + eta_v second_layer``.

        Each coefficient defaults to the model's value and may be a number or
        an array broadcasting against the leading axes of the parts (one value
        per point of a batch).  ``eta_second_layer`` defaults to ``eta`` when
        the model ties the two learning rates.
        """
        m = self.model
        eta_given = eta is not None
        eta = m.eta if eta is None else eta
        noise = m.noise if noise is None else noise
        lam = m.weight_decay if weight_decay is None else weight_decay
        delta = m.drift if drift is None else drift
        if eta_second_layer is None:
            eta_second_layer = (eta if eta_given else m.eta_v) if m.eta_second_layer is None else m.eta_second_layer
        e, sn, lam_, d, ev = (np.asarray(x, dtype=float)[..., None] for x in (eta, noise, lam, delta,
                                                                          eta_second_layer))
        out = e * self.first + (e * lam_) * self.decay + d * self.drift
        if self.i4 is not None:
            out = out + e * e * (self.i4 + sn * sn * self.j2)
        if m.train_second_layer:
            out = out + ev * self.second_layer
        return out

    def derivative(self, parameter: str, eta: Any = None) -> np.ndarray:
        """``d flow / d parameter`` at fixed state, for ``"eta"``, ``"weight_decay"``, ``"drift"`` or ``"noise"``.

        The other parameters are the model's (``eta`` may be given); a second
        layer tied to eta follows it.  Shape of the parts.
        """
        m = self.model
        eta = m.eta if eta is None else eta
        e = np.asarray(eta, dtype=float)[..., None]
        i4 = 0.0 if self.i4 is None else self.i4
        j2 = 0.0 if self.j2 is None else self.j2
        if parameter == "eta":
            out = self.first + m.weight_decay * self.decay + 2.0 * e * (i4 + m.noise**2 * j2)
            if m.train_second_layer and m.eta_second_layer is None:
                out = out + self.second_layer
            return out
        if parameter == "weight_decay":
            return e * self.decay
        if parameter == "drift":
            return self.drift
        if parameter == "noise":
            return 2.0 * m.noise * e * e * j2 + np.zeros_like(self.first)
        raise ValueError(f"parameter: must be 'eta', 'weight_decay', 'drift' or 'noise', got {parameter!r}")
