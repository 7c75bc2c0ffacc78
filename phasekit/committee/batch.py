"""Committees of one shape evaluated together: the flow of a batch of grid points in one call.

A phase diagram is many small runs of models that differ only in their
scalar parameters (``eta``, ``noise``, ``weight_decay``, ``drift``,
``eta_second_layer``).  :class:`CommitteeBatch` evaluates the flow of all of
them at once: the Gaussian tables are computed for the whole batch of states
(a leading batch axis, as :meth:`~phasekit.committee.model.Committee.rhs_vector`
already allows), and the per-point scalars enter as arrays over that axis.
Each row gives the same numbers as that model's own ``rhs_vector`` (the same
operations in the same order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.batch_ode import BatchEvent, _sum0, solve_batch
from ..core.closed_forms import erf_H2J2, erf_I4_blocks
from ..core.options import SolverOptions, coerce_options
from .dynamics import _samples, trajectory_dataset
from .flow import _ordered_sum
from .model import PSD_TOL, Committee, State
from .plateaus import Crossing

__all__ = ["BatchTrajectories", "CommitteeBatch", "PER_POINT", "batch_key", "integrate_batch"]


# Activations whose closed forms (I4 included) are rounded matrix by matrix: see CommitteeBatch.exact_rows.
_ROWWISE = ("erf", "linear", "relu")

# Parameters that may differ between the models of one batch.
PER_POINT = ("eta", "noise", "weight_decay", "drift", "eta_second_layer")


def batch_key(model: Committee) -> str | None:
    """What models of one batch share (every parameter but :data:`PER_POINT`); None for a schedule.

    A model with a learning-rate schedule has a flow that depends on alpha
    through it and is never batched.
    """
    if not model.autonomous:
        return None
    p = model.parameters()
    for k in PER_POINT:
        p.pop(k)
    return repr(sorted(p.items()))


class CommitteeBatch:
    """The flow of several committees of one shape, for a batch of states (one row per model).

    Parameters
    ----------
    models : sequence of Committee
        Autonomous models equal in every parameter but those of :data:`PER_POINT`
        (same ``K``, ``M``, activations, order, ``T``, weights, trained layer).

    Attributes
    ----------
    model : Committee
        The first model: its index tables, ``eg_vector`` and ``min_eigenvalue``
        serve every row (they do not depend on the per-point parameters).
    eta, noise, weight_decay, drift, eta_v : ndarray, shape (B,)
        The per-point parameters.
    """

    def __init__(self, models: Sequence[Committee]) -> None:
        models = list(models)
        if any(getattr(m, "subspace", None) is not None for m in models):
            raise ValueError("models: a reduced model (Committee.restrict) is not batched; integrate it with "
                             "integrate (its flow costs the same for every K), or batch the full models (model.parent)")
        if not models or not all(isinstance(m, Committee) for m in models):
            raise ValueError("models: need a non-empty sequence of phasekit.Committee")
        key = batch_key(models[0])
        if key is None:
            raise ValueError("models: a model with a learning-rate schedule cannot be batched (its flow depends "
                             "on alpha)")
        for j, m in enumerate(models[1:], start=1):
            if batch_key(m) != key:
                raise ValueError(f"models: model {j} differs from model 0 in more than {', '.join(PER_POINT)} "
                                 f"(or has a schedule); batch only models of one shape")
        self.models = models
        self.model = models[0]
        self.eta = np.array([m.eta for m in models])
        self.noise = np.array([m.noise for m in models])
        self.weight_decay = np.array([m.weight_decay for m in models])
        self.drift = np.array([m.drift for m in models])
        self.eta_v = np.array([m.eta_v for m in models])
        self._plan = _LeanPlan.of(self.model)
        # Terms present anywhere in the batch (a row without one adds an exact zero).
        self._noisy, self._decay, self._drift = (bool(np.any(x > 0)) for x in (self.noise, self.weight_decay,
                                                                                 self.drift))

    def __len__(self) -> int:
        return len(self.models)

    @property
    def exact_rows(self) -> bool:
        """Whether each row is rounded the same whatever the other rows of the batch.

        The batch contracts with ordered sums instead of BLAS products (which
        may round an entry differently with the batch's size), so where every
        expectation of the flow and of eps_g is an elementwise closed form,
        a model's trajectory does not depend on which models it is
        integrated with: erf, linear and relu (whose I4 factorises each
        block's covariance on its own and sums its nodes in a fixed order,
        :mod:`phasekit.core.orthant`).  Quadrature routes may differ in the
        last bits, and a trajectory by as much as the solver's tolerance allows.
        """
        m = self.model
        if m.mixed or not (m._closed2 and m._closed_I2):
            return False
        return m.activation.name in _ROWWISE

    def rhs(self, V: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """``d state / d alpha`` of models ``rows`` at their states ``V``.

        Parameters
        ----------
        V : ndarray, shape (m, n_state)
            One state per row.
        rows : ndarray of int, shape (m,), optional
            Which models (indices into the batch); default all, in order.

        Returns
        -------
        ndarray, shape (m, n_state)
        """
        base = self.model
        V = np.asarray(V, dtype=float)
        if rows is None:
            rows = slice(None)
        if self._plan is not None:
            return self._plan.rhs(V, self.eta[rows], self.noise[rows] if self._noisy else None,
                                  self.weight_decay[rows] if self._decay else None,
                                  self.drift[rows] if self._drift else None)
        eta = self.eta[rows][:, None]
        S = base._sigma(V)
        H, J = base._tables2(S)
        vs, c = (None, None) if base._soft else base._weights_of(V)
        out = base._first_order(S, H, J, vs, c, rowwise=True)
        KM, n0 = base.K * base.M, base.n_order
        if base.second_order:
            i4, j2 = base._second_parts(S, J, vs, c, rowwise=True)
            noise = self.noise[rows]
            if np.any(noise > 0):
                i4 = i4 + (noise * noise)[:, None] * j2
            out[:, KM:] += eta * i4
        out *= eta
        lam = self.weight_decay[rows]
        if np.any(lam > 0):
            el = (eta[:, 0] * lam)[:, None]
            out[:, :KM] -= el * V[:, :KM]
            out[:, KM:n0] -= (2.0 * el) * V[:, KM:n0]
        delta = self.drift[rows]
        if np.any(delta > 0):
            out[:, :KM] -= delta[:, None] * V[:, :KM]
        if base.train_second_layer:
            out = np.concatenate([out, self.eta_v[rows][:, None] * base._second_layer_part(S, c, rowwise=True)], axis=-1)
        return out

    def min_eigenvalue(self, V: np.ndarray) -> np.ndarray:
        """Smallest eigenvalue of each row's field covariance over its largest |entry|, shape ``(m,)``."""
        S = self.model._sigma(np.asarray(V, dtype=float))
        scale = np.maximum(1.0, np.abs(S).max(axis=(-2, -1)))
        return np.linalg.eigvalsh(S)[..., 0] / scale


class _LeanPlan:
    """The flow of a batch in few array operations, for closed-form activations and small committees.

    The same terms as :meth:`~phasekit.committee.model.Committee.rhs_vector`,
    with the batch as the last axis (every operation is elementwise over it,
    every contraction an ordered sum over another axis, so a row is rounded
    the same whatever its batch): every covariance entry a call reads is
    gathered from the state vectors and ``T`` at once, the entries of an I4
    block that depend only on its students ``(i, k)`` or only on its fields
    ``(u, w)`` broadcast against each other (erf: ``closed_forms["I4_blocks"]``).
    The numbers are those of the general route; a batch of 64 erf states at
    K = M = 2 costs about half as much, at K = M = 4 about a third.  erf's soft
    committee takes a leaner route still (:meth:`_erf_rhs`), into buffers the
    plan keeps (one plan per :class:`CommitteeBatch`: not for concurrent calls
    from several threads).
    """

    def __init__(self, model: Committee) -> None:
        K, L, n = model.K, model.L, model.n_state
        self.model, self.K, self.KM, self.n, self.n0 = model, K, K * model.M, n, model.n_order
        forms = model.activation.closed_forms
        self.h2j2 = forms.get("H2J2") or (lambda *e: (forms["H2"](*e), forms["J2"](*e)))
        self.i4 = forms["I4"] if model.second_order else None
        self.T_col = np.ascontiguousarray(model.T.ravel()[:, None])
        src = model._sigma_src.reshape(L, L)  # flat positions in [state vector, T.ravel()]
        self.L = L
        self.pieces = [("S", src), ("d", np.diagonal(src))]
        self.c = (model._signs if model._soft else model._coef)[None, :, None]
        self.vs = None if model._soft else model.student_weights[:, None, None]
        self.out_a, self.out_b = model._out_a, model._out_b
        self.qmask = model._out_qmask[:, None]
        if model.second_order:
            si, sk = model._iu_K
            pu, pw = model._pairs_all.T
            self.si, self.sk = si, sk
            self.ik = np.stack([src[si, si], src[sk, sk], src[si, sk]])[:, :, None]  # (3, P_s, 1)
            self.uw = np.stack([src[pu, pu], src[pw, pw], src[pu, pw]])[:, None, :]  # (3, 1, P_a)
            self.cross = np.stack([src[si[:, None], pu], src[si[:, None], pw], src[sk[:, None], pu],
                                   src[sk[:, None], pw]])  # (4, P_s, P_a)
            self.i4_blocks = forms.get("I4_blocks")
            self.pu, self.pw = pu, pw
            if self.i4_blocks is not None:  # its per-field tables join the one gather below
                self.pieces += [("ii", src[si, si]), ("kk", src[sk, sk]), ("ik", src[si, sk]), ("iu", src[si]),
                                ("ku", src[sk]), ("uw", src[pu, pw])]
            self.wp = model._w_pairs[None, :, None]
            self.vv = None if model._soft else model._vv_pairs[:, None]
        # erf's soft committee has a leaner route still (see _erf_rhs), with its own gather.
        self.erf = (model._soft and forms.get("H2J2") is erf_H2J2
                    and (not model.second_order or self.i4_blocks is erf_I4_blocks))
        self._buffers: dict[int, tuple] = {}
        self.extra = 0
        if self.erf:
            self.sgn2pi = ((2.0 / np.pi) * model._signs)[None, :, None]
            self.diag_K = np.arange(K) * (L + 1)  # JS[k, k] in JS.reshape(K * L, m)
            self.pieces = self.pieces[:2]
            if model.second_order:
                si, sk, pu, pw = self.si, self.sk, self.pu, self.pw
                b = len(si)
                # Student-pair entries, field pairs, then the per-field tables (L, b) last: the
                # rows after them hold p, q, r (see _erf_i4_sums), so that [c1, c2, p, q, r] is one table.
                self.pieces += [("iikk", np.stack([src[si, si], src[sk, sk]])), ("ik", src[si, sk]),
                                ("uw", src[pu, pw]), ("c12", np.stack([src[si].T, src[sk].T]))]
                self.extra = 3 * L * b
                bi = np.arange(b)[None, :]
                flat = lambda t, f: (t * L + f[:, None]) * b + bi  # noqa: E731
                self.lr = np.stack([flat(2, pu), flat(3, pu), flat(4, pu), flat(0, pw), flat(1, pw),
                                    flat(4, pw)])  # (6, P, b): [p, q, r] at u, [c1, c2, r] at w
                self.wp0 = model._w_pairs[:, None, None]
        self._lay_out_gather()

    def _lay_out_gather(self) -> None:
        """Every covariance entry a call reads (:attr:`pieces`), as one gather; each piece a view of it."""
        self.gather = np.concatenate([idx.ravel() for _, idx in self.pieces])
        bounds = np.cumsum([0] + [idx.size for _, idx in self.pieces])
        self.views = [(bounds[j], bounds[j + 1], idx.shape) for j, (_, idx) in enumerate(self.pieces)]

    @classmethod
    def of(cls, model: Committee) -> "_LeanPlan | None":
        """A plan for ``model``, or None where the general route is needed."""
        if (model.mixed or model.train_second_layer or not (model._closed2 and model._closed_I2)
                or model.activation.name not in _ROWWISE + ("relu",)):
            return None
        if model.second_order and (model.activation.name not in _ROWWISE or model._i4_full is None):
            return None
        return cls(model)

    def rhs(self, V: np.ndarray, eta: np.ndarray, noise: np.ndarray | None, lam: np.ndarray | None,
            delta: np.ndarray | None) -> np.ndarray:
        """``d state / d alpha`` ``(m, n_state)``; ``noise``, ``lam``, ``delta`` (m,) or None where all are 0."""
        if self.erf:
            return self._erf_rhs(V, eta, noise, lam, delta).T
        m = V.shape[0]
        E = np.empty((self.n + self.T_col.shape[0], m))
        E[:self.n] = V.T
        E[self.n:] = self.T_col
        G = E[self.gather]
        S, d, *t = [G[lo:hi].reshape(shape + (m,)) for lo, hi, shape in self.views]  # (L, L, m), (L, m), ...
        K = self.K
        H, J = self.h2j2(d[:K, None], d[None, :], S[:K])  # (K, L, m)
        c = self.c
        Hc = H * c
        hc = Hc[:, 0] + Hc[:, 1]  # (K, m): an ordered sum (see _ordered_sum), field by field
        for j in range(2, self.L):
            hc += Hc[:, j]
        Jc = J * c
        JS = Jc[:, 0, None, :] * S[0]  # (K, L, m): sum_j Jc_kj S_jl in index order, as an accumulation
        for j in range(1, self.L):
            JS += Jc[:, j, None, :] * S[j]
        A = S[:K] * hc[:, None, :] + JS
        if self.vs is not None:
            A = A * self.vs
        Af = A.reshape(-1, m)
        out = Af[self.out_a] + Af[self.out_b] * self.qmask  # (n_order, m)
        KM = self.KM
        if self.i4 is not None:
            if self.i4_blocks is not None:
                ii, kk, ik, iu, ku, uw = t
                vals = self.i4_blocks(ii, kk, ik, d, iu, ku, uw, self.pu, self.pw)
            else:
                e, u, x = E[self.ik], E[self.uw], E[self.cross]
                vals = self.i4(e[0], e[1], u[0], u[1], e[2], x[0], x[1], x[2], x[3], u[2])  # (P_s, P_a, m)
            i4 = np.add.accumulate(vals * self.wp, axis=1)[:, -1]  # (P_s, m)
            j2 = J[self.si, self.sk]
            if self.vv is not None:
                i4, j2 = i4 * self.vv, j2 * self.vv
            if noise is not None:
                i4 = i4 + (noise * noise) * j2
            out[KM:] += eta * i4
        return self._finish(out, E, eta, lam, delta).T

    def _buffers_for(self, m: int) -> tuple:
        """Per batch size ``m``: the gather's source (``T`` filled in once), the gather and its views.

        Kept for up to 32 sizes of at most 128 rows (the calls along a run, where
        the allocation is a visible part of a call); larger ones are allocated per call.
        """
        got = self._buffers.get(m)
        if got is None:
            if len(self._buffers) >= 32:
                self._buffers.clear()
            E = np.empty((self.n + self.T_col.shape[0], m))
            E[self.n:] = self.T_col
            ng = self.gather.size
            Gx = np.empty((ng + self.extra, m))
            views = [Gx[lo:hi].reshape(shape + (m,)) for lo, hi, shape in self.views]
            Z = Gx[self.views[-1][0]:].reshape(5, self.L, -1, m) if self.extra else None
            got = (E, Gx[:ng], views, Z)
            if m <= 128:
                self._buffers[m] = got
        return got

    def _erf_rhs(self, V: np.ndarray, eta: np.ndarray, noise: np.ndarray | None, lam: np.ndarray | None,
                 delta: np.ndarray | None) -> np.ndarray:
        """The flow of erf's soft committee, ``(n_order, m)`` (arguments as for :meth:`rhs`).

        With ``J_kj = (2/pi) / sqrt((1 + S_kk)(1 + S_jj) - S_kj^2)`` erf has
        ``H_kj = -S_kj J_kj / (1 + S_kk)``, so with ``W_kj = s_j J_kj`` and
        ``(JS)_kl = sum_j W_kj S_jl`` (an ordered sum) the first-order table is
        ``A_kl = (JS)_kl - S_kl (JS)_kk / (1 + S_kk)``: the sum over fields of
        ``H`` is a diagonal entry of ``JS``.  The same terms as the general
        route, rounded differently (to a few ulps).
        """
        m = V.shape[0]
        E, G, views, Z = self._buffers_for(m)
        E[:self.n] = V.T
        np.take(E, self.gather, axis=0, out=G, mode="clip")
        S, d = views[0], views[1]
        K, L = self.K, self.L
        ap = 1.0 + d  # (L, m)
        SK = S[:K]
        X = ap[:K, None] * ap[None]
        X -= SK * SK
        np.sqrt(X, out=X)
        W = self.sgn2pi / X  # (K, L, m)
        JS = _sum0(W.transpose(1, 0, 2)[:, :, None, :] * S[:, None])  # (K, L, m): sum over j first
        A = JS - SK * (JS.reshape(K * L, m)[self.diag_K] / ap[:K])[:, None]
        Af = A.reshape(K * L, m)
        out = Af[self.out_a] + Af[self.out_b] * self.qmask  # (n_order, m)
        KM = self.KM
        if Z is not None:
            i4 = self._erf_i4_sums(views, Z, ap)
            if noise is not None:
                i4 = i4 - (noise * noise) * W.reshape(K * L, m)[self.si * L + self.sk]  # J2 = -W (s = -1)
            out[KM:] += eta * i4
        return self._finish(out, E, eta, lam, delta)

    def _finish(self, out: np.ndarray, E: np.ndarray, eta: np.ndarray, lam: np.ndarray | None,
                delta: np.ndarray | None) -> np.ndarray:
        """``out`` (the gradient terms, ``(n_order, m)``) times eta, with weight decay and drift; in place."""
        KM = self.KM
        out *= eta
        if lam is not None:
            el = eta * lam
            out[:KM] -= el * E[:KM]
            out[KM:self.n0] -= (2.0 * el) * E[KM:self.n0]
        if delta is not None:
            out[:KM] -= delta * E[:KM]
        return out

    def _erf_i4_sums(self, views: list, Z: np.ndarray, ap: np.ndarray) -> np.ndarray:
        """``sum_{u <= w} wp_uw I4(x_i, x_k, u, w)`` for the student pairs ``i <= k``, ``(b, m)``.

        For the block ``(x_i, x_k, u, w)`` with ``a = 1 + S_ii``, ``c = 1 + S_kk``,
        ``e = S_ik`` and ``lam4 = a c - e^2``, erf's I4 is
        ``(4 / pi^2) lam4^(-1/2) asin(lam0 / sqrt(lam1(u) lam1(w)))``; ``lam0`` is
        bilinear in the fields' covariances with the pair, ``lam0 = lam4 S_uw
        - (p_u S_iw + q_u S_kw)`` with ``p_u = c S_iu - e S_ku`` and ``q_u = a S_ku
        - e S_iu``, and ``lam1(u) = lam4 (1 + S_uu) - p_u S_iu - q_u S_ku``: per
        field ``p, q`` and ``r = lam1^(-1/2)``, per field pair two products, and
        the block's factor after the sum over field pairs (the same terms as
        ``closed_forms["I4"]``, rounded differently).  ``Z`` ``(5, L, b, m)``:
        ``S_iu``, ``S_ku`` (gathered), then ``p, q, r`` are written.
        """
        a, c = 1.0 + views[2]  # (b, m) each
        e, uw = views[3], views[4]
        c1, c2, p, q, r = Z  # (L, b, m) each
        lam4 = a * c - e * e
        np.multiply(c, c1, out=p)
        p -= e * c2
        np.multiply(a, c2, out=q)
        q -= e * c1
        lam1 = lam4 * ap[:, None] - (p * c1 + q * c2)
        np.sqrt(lam1, out=r)
        np.divide(1.0, r, out=r)
        pu, qu, ru, c1w, c2w, rw = Z.reshape(-1, Z.shape[-1])[self.lr]  # (P, b, m) each
        x = lam4 * uw[:, None] - (pu * c1w + qu * c2w)  # lam0
        x *= ru
        x *= rw
        np.maximum(x, -1.0, out=x)
        np.minimum(x, 1.0, out=x)
        np.arcsin(x, out=x)
        x *= self.wp0
        return _sum0(x) * ((4.0 / np.pi**2) / np.sqrt(lam4))


@dataclass(frozen=True)
class BatchTrajectories:
    """Outcome of :func:`integrate_batch`.

    Attributes
    ----------
    datasets : list of xarray.Dataset
        One trajectory per model, as :func:`~phasekit.committee.dynamics.integrate` returns it.
    crossings : dict
        Per requested threshold, one :class:`~phasekit.committee.plateaus.Crossing`
        per model: the first alpha at which eps_g fell below it, as
        :func:`~phasekit.committee.plateaus.convergence_time` gives it for that trajectory.
    n_calls : int
        Calls of the batched right-hand side.
    """

    datasets: list
    crossings: dict = field(default_factory=dict)
    n_calls: int = 0


def _sample_times(alpha_max: np.ndarray, n_points: Any, alpha_eval: Any, spacing: str = "linear") -> list[np.ndarray]:
    B = alpha_max.size
    if alpha_eval is None:
        counts = np.broadcast_to(np.asarray(n_points), (B,))
        if np.any(counts < 2):
            raise ValueError(f"n_points: need at least 2 samples, got {n_points!r}")
        return [_samples(int(c), spacing, float(a)) for a, c in zip(alpha_max, counts)]
    rows = [np.asarray(alpha_eval, dtype=float)] * B if np.ndim(alpha_eval[0]) == 0 else \
        [np.asarray(r, dtype=float) for r in alpha_eval]
    if len(rows) != B:
        raise ValueError(f"alpha_eval: need one array of sample times per model ({B}), got {len(rows)}")
    for r, a in zip(rows, alpha_max):
        if r.ndim != 1 or np.any(np.diff(r) <= 0) or r[0] < 0 or r[-1] > a:
            raise ValueError("alpha_eval: must be strictly increasing within [0, alpha_max]")
    return rows


def integrate_batch(
    models: Sequence[Committee],
    starts: Sequence[State],
    alpha_max: Any,
    *,
    n_points: Any = 501,
    alpha_eval: Any = None,
    solver: SolverOptions | Mapping[str, Any] | None = None,
    stop_eg: float | None = None,
    thresholds: Sequence[float] = (),
    spacing: str = "linear",
) -> BatchTrajectories:
    """:func:`~phasekit.committee.dynamics.integrate` for many models of one shape at once.

    The flows of all models are integrated as one batch
    (:func:`phasekit.core.batch_ode.solve_batch`: DOP853 with per-model step
    sizes, events and status), their right-hand side evaluated for all
    models in one call (:class:`CommitteeBatch`).  Each trajectory equals the
    one :func:`integrate` computes for that model to the solver tolerance
    (the same steps, up to rounding), with the same events (leaving the
    positive-semidefinite cone, ``max_norm``, ``stop_eg``), status, message
    and attributes; ``n_rhs`` counts that model's rows of the batched calls
    (those that build the interpolants of its sampled steps included).

    Parameters
    ----------
    models : sequence of Committee
        Models equal in all but ``eta``, ``noise``, ``weight_decay``, ``drift``
        and ``eta_second_layer``, without a learning-rate schedule.
    starts : sequence of State
        One start per model.
    alpha_max : float or array_like, shape (B,)
        Horizon per model.
    n_points : int or array_like, shape (B,)
        Samples per model from 0 to where its run ends (as :func:`integrate`:
        a run that stops early is sampled as densely, from the dense output
        of its steps kept along the run; ignored with ``alpha_eval``).
    alpha_eval : array_like or sequence of arrays, optional
        Sample times, common or one array per model.
    solver : SolverOptions or mapping, optional
        As for :func:`integrate`; the method must be ``"DOP853"``.
    stop_eg : float, optional
        Common threshold: stop each run where eps_g falls below it.
    thresholds : sequence of float
        eps_g levels whose first downward crossing is located along the way
        (for convergence times; :attr:`BatchTrajectories.crossings`).
    spacing : {"linear", "log"}
        Spacing of the ``n_points`` samples, as for :func:`integrate`.

    Returns
    -------
    BatchTrajectories
    """
    batch = CommitteeBatch(models)
    base = batch.model
    B = len(batch)
    starts = list(starts)
    if len(starts) != B:
        raise ValueError(f"starts: need one start per model ({B}), got {len(starts)}")
    # A start is checked once however many models share it (the check reads only what models of one batch share).
    checked: dict[int, np.ndarray] = {}
    for s in starts:
        if id(s) not in checked:
            checked[id(s)] = base.state_vector(base.validate_state(s, "starts"), "starts")
    V0 = np.stack([checked[id(s)] for s in starts])
    alpha_max = np.array(np.broadcast_to(np.asarray(alpha_max, dtype=float), (B,)))
    if not np.all(np.isfinite(alpha_max) & (alpha_max > 0)):
        raise ValueError(f"alpha_max: must be finite and > 0, got {alpha_max.tolist()}")
    if spacing not in ("linear", "log"):
        raise ValueError(f"spacing: must be 'linear' or 'log', got {spacing!r}")
    times = _sample_times(alpha_max, n_points, alpha_eval, spacing)
    opts = coerce_options(solver, SolverOptions, "solver")
    if opts.method != "DOP853":
        raise ValueError(f"solver: the batched integration is DOP853 only, got method {opts.method!r}")
    if stop_eg is not None and not stop_eg > 0:
        raise ValueError(f"stop_eg: threshold must be > 0, got {stop_eg!r}")
    thresholds = [float(x) for x in thresholds]
    if not all(math.isfinite(x) and x > 0 for x in thresholds):
        raise ValueError(f"thresholds: must be finite and > 0, got {thresholds}")
    max_norm = opts.max_norm

    last: list = [None, None]  # the states of the latest call and their eps_g: shared by every level

    def level(thr: float):
        def g(_t: np.ndarray, V: np.ndarray, _rows: np.ndarray) -> np.ndarray:
            if thr < 1e-7:
                return _eg_near(base, V, thr) - thr
            if last[0] is not V:  # (holding V keeps its identity unique)
                last[0], last[1] = V, _eg_near(base, V, 1.0)
            return last[1] - thr
        return g

    events = [BatchEvent("cone_exit", lambda _t, V, _r: batch.min_eigenvalue(V) + 1e3 * PSD_TOL, direction=-1,
                         status="diverged", message="left the positive-semidefinite cone"),
              BatchEvent("blow_up", lambda _t, V, _r: max_norm - np.abs(V).max(axis=-1), direction=-1,
                         status="diverged", message=f"an order parameter exceeded {max_norm:g}")]
    if stop_eg is not None:
        events.append(BatchEvent("stop_eg", level(float(stop_eg)), direction=-1,
                                 message=f"eps_g fell below {stop_eg:g}"))
    for j, thr in enumerate(thresholds):
        events.append(BatchEvent(f"threshold_{j}", level(thr), direction=-1,
                                 terminal=False))

    def outside(V: np.ndarray, rows: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return ~np.all(np.isfinite(batch.rhs(V, rows)), axis=1) | (batch.min_eigenvalue(V) < 0)

    run = solve_batch(lambda _t, V, rows: batch.rhs(V, rows), V0, alpha_max, rtol=opts.rtol, atol=opts.atol,
                      events=events, diverged=outside, time_name="alpha", dense=True)
    # The samples once each run's end is known: a run that stopped early is sampled on
    # n_points up to its stop (as integrate does), all from the steps' interpolants at once.
    ends = run.t_end
    grids = []
    for r in range(B):
        g = times[r]
        if alpha_eval is None and ends[r] < g[-1]:
            g = _samples(g.size, spacing, float(ends[r]))
        grids.append(g[g < ends[r]])
    inner = run.sample(np.arange(B), [g[g > 0] for g in grids])
    parts = []
    for r, g in enumerate(grids):
        if run.n_steps[r] == 0:  # stopped on its first step: only the start is known
            parts.append((np.array([0.0]), V0[r][None, :]))
        else:
            at0 = np.repeat(V0[r][None, :], g.size - len(inner[r]), axis=0)  # samples at alpha = 0
            parts.append((np.append(g, ends[r]), np.concatenate([at0, inner[r], run.y_end[r][None, :]])))
    # eps_g of every sample of every run in one call (its cost is mostly per call): the
    # accurate route's products may round a value in its last bits with the other runs'
    # samples, which never feeds back into a run.
    eg_all = np.split(base.eg_vector(np.concatenate([Y for _, Y in parts])),
                      np.cumsum([len(a) for a, _ in parts])[:-1])
    datasets = []
    for r, model in enumerate(batch.models):
        a_end, status = float(run.t_end[r]), run.status[r]
        a, Y = parts[r]
        settings = {"rtol": opts.rtol, "atol": opts.atol, "method": opts.method, "stop_eg": stop_eg,
                    "max_norm": max_norm, "alpha_max": float(alpha_max[r])}
        ds = trajectory_dataset(model, a, Y, settings=settings, eg=eg_all[r])
        ds.attrs.update(status=status, message="reached alpha_max" if status == "ok" else run.message[r],
                        alpha_end=a_end, n_rhs=int(run.nfev[r]))
        datasets.append(ds)
    crossings = {}
    if thresholds:
        eg0 = base.eg_vector(V0)
        for j, thr in enumerate(thresholds):
            crossings[thr] = [_crossing(thr, float(eg0[r]), run.t_events[f"threshold_{j}"][r],
                                        run.directions[f"threshold_{j}"][r], run.status[r], float(run.t_end[r]))
                              for r in range(B)]
    return BatchTrajectories(datasets, crossings, run.n_calls)


def _eg_near(model: Committee, V: np.ndarray, level: float) -> np.ndarray:
    """eps_g of states ``V`` ``(m, n)`` for locating where it crosses ``level``, row by row.

    The plain sum over field pairs has an absolute error of ~1e-16 times the
    size of its terms, a relative error below ~1e-9 of any ``level >= 1e-7``:
    there it decides the crossing (and its location to far below the solver
    tolerance) at a fraction of the cost of the accurate
    :meth:`~phasekit.committee.model.Committee.eg_vector`, which is used for
    smaller levels, within a factor of four of the level.  Each row is
    rounded the same whatever the other rows (no BLAS product across rows).
    """
    if model._eg_route == "linear":
        return model.eg_vector(V)
    if not model._closed_I2:
        return np.array([model.eg_vector(v) for v in V]).reshape(len(V))
    I2 = model._i2_pairs(model._sigma(V))
    if model.train_second_layer:
        vs, c = model._weights_of(V)
        wp = model._pair_weights(vs, c)[0]
    else:
        wp = model._w_pairs
    plain = 0.5 * _ordered_sum(I2 * wp)
    if level < 1e-7 and model._eg_route == "matched":
        for r in np.flatnonzero((plain < 4.0 * level) & (plain > 0.25 * level)):
            plain[r] = model.eg_vector(V[r])
    return plain


def _crossing(thr: float, eg0: float, times: np.ndarray, signs: np.ndarray, status: str, a_end: float) -> Crossing:
    """The first downward crossing of ``thr``, decoded as :func:`~phasekit.committee.plateaus.convergence_time` does."""
    if eg0 < thr:
        return Crossing(alpha=0.0, threshold=thr, message=f"eps_g below {thr:g} at the start")
    down = times[signs < 0]
    if down.size:
        t = float(down[0])
        return Crossing(alpha=t, threshold=thr, message=f"eps_g fell below {thr:g} at alpha = {t:.6g}")
    if status == "diverged":
        return Crossing(alpha=math.inf, threshold=thr, status="diverged",
                        message=f"the flow diverged at alpha = {a_end:.6g} before eps_g fell below {thr:g}")
    if status == "failed":
        return Crossing(alpha=math.nan, threshold=thr, status="failed",
                        message=f"the solver failed at alpha = {a_end:.6g}")
    return Crossing(alpha=math.inf, threshold=thr, status="not_reached",
                    message=f"eps_g stayed above {thr:g} up to alpha = {a_end:.6g}")
