"""Many independent initial-value problems integrated at once: DOP853 with per-row step sizes.

:func:`solve_batch` integrates ``dy/dt = fun(t, Y, rows)`` for a batch of
rows (one problem each).  Each row has its own horizon, step size, error
control, events, samples and status; the right-hand side is called once per
Runge-Kutta stage for all rows still running, so a vectorised ``fun`` pays
its per-call overhead once per stage instead of once per row.

The method, its error estimate, its step-size control, its initial step and
its dense output are those of :class:`scipy.integrate.DOP853` (the
coefficients are scipy's), row by row: a row takes the steps
:func:`~phasekit.core.ode.solve_flow` would take for it alone, up to
rounding.  Events are located on the dense output (regula falsi with the
Anderson-Bjorck modification, to a few ulps of ``t``), once the run has ended,
all crossings of an event together (a row with a terminal crossing stops at
the end of that step and is set back to the crossing), and a row's status is
decoded as :func:`~phasekit.core.ode.solve_flow` decodes it:

=============  =============================================================
status         when
=============  =============================================================
``ok``         the row reached its horizon
``converged``  a terminal event with that status fired
``diverged``   a terminal event with that status fired, or the right-hand
               side stopped being finite (or the step size became too small)
               at a state ``diverged`` calls bad (default: not finite)
``failed``     the step size became too small otherwise
=============  =============================================================

A row whose right-hand side is not finite stops at its last accepted step
(:func:`~phasekit.core.ode.solve_flow` re-integrates up to its last finite
evaluation, which lies within that step).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from scipy.integrate import DOP853

from .ode import Event, event_list

__all__ = ["BatchEvent", "BatchFlowRun", "solve_batch"]

Array = np.ndarray

_A, _B, _C = DOP853.A, DOP853.B, DOP853.C
_E3, _E5 = DOP853.E3, DOP853.E5
_A_EXTRA, _C_EXTRA, _D = DOP853.A_EXTRA, DOP853.C_EXTRA, DOP853.D
_N_STAGES = DOP853.n_stages  # 12
_ERR_EXP = -1.0 / (DOP853.error_estimator_order + 1)
_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0
_EPS = np.finfo(float).eps
# Stage values kept for the dense output after a run (floats), and steps per interpolation call.
_STAGE_BUDGET = 2**24
_DENSE_CHUNK = 1024

_RUNNING, _OK, _EVENT, _TOO_SMALL, _NONFINITE = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class BatchEvent(Event):
    """A zero crossing of ``function(t, Y, rows) -> (m,)``, located per row.

    The attributes are those of :class:`~phasekit.core.ode.Event`; ``function``
    takes times ``t`` ``(m,)``, states ``Y`` ``(m, n)`` and the batch rows
    ``rows`` ``(m,)`` they belong to, and returns one value per row.  A
    terminal event stops each row at its own first crossing.
    """


@dataclass(frozen=True)
class BatchFlowRun:
    """Outcome of :func:`solve_batch` (``B`` rows).

    Attributes
    ----------
    status : list of str
        Per row, see the module docstring.
    message : list of str
        Per row, one line.
    t_end : ndarray, shape (B,)
        Where each row stopped.
    y_end : ndarray, shape (B, n)
        The states there.
    samples : ndarray, shape (B, n_eval, n)
        States at the requested times (``nan`` beyond ``t_end`` and beyond a row's own samples).
    nfev : ndarray of int, shape (B,)
        Right-hand-side evaluations per row.
    n_steps : ndarray of int, shape (B,)
        Accepted steps per row (0: the row stopped on its first step).
    event : list of str or None
        Per row, the terminal event that stopped it.
    t_events : dict
        Per event name, a list of ``B`` arrays: every crossing of that row (up
        to and including a terminal one that stopped it).
    directions : dict
        Per event name, a list of ``B`` arrays: the sign of each crossing (``+1`` upwards).
    n_calls : int
        Calls of ``fun`` (each on all rows still running, or on the steps that hold requested times).
    """

    status: list
    message: list
    t_end: Array
    y_end: Array
    samples: Array
    nfev: Array
    n_steps: Array
    event: list
    t_events: dict = field(default_factory=dict)
    directions: dict = field(default_factory=dict)
    n_calls: int = 0
    history: Any = field(default=None, repr=False)

    def sample(self, rows: Sequence[int], times: Sequence[Array]) -> list[Array]:
        """States of ``rows`` at ``times`` (one increasing array per row) from the dense output.

        Needs ``solve_batch(..., dense=True)``.  Times in ``(t0, t_end]`` of a
        row come from the interpolant of the step that holds them (as
        :attr:`samples` do), others give ``nan``; the interpolants of all
        requested steps are built together, a few right-hand-side calls on
        many states (counted in :attr:`nfev` and :attr:`n_calls`).  Returns
        one ``(len(times[k]), n)`` array per row.
        """
        if self.history is None:
            raise ValueError("times: this run kept no dense output (solve_batch(..., dense=True))")
        rows = np.asarray(rows, dtype=int)
        if len(times) != rows.size:
            raise ValueError(f"times: need one array of times per row ({rows.size}), got {len(times)}")
        calls = self.history.calls
        out = self.history.sample(rows, times)
        object.__setattr__(self, "n_calls", self.n_calls + self.history.calls - calls)
        return out


def _sum(x: Array, axis: int = -1) -> Array:
    """Sum over ``axis`` in index order, for every entry alike.

    BLAS products and numpy's ``sum`` may group an entry's terms differently
    with the shape of the array around it; an accumulation cannot.  Every
    reduction here is one, so that a row's steps do not depend on the other
    rows of the batch (nor on which are still running).
    """
    return np.take(np.add.accumulate(x, axis=axis), -1, axis=axis)


def _rms(x: Array) -> Array:
    return np.sqrt(_sum(x * x) / x.shape[-1])


def _sum0(x: Array) -> Array:
    """Sum over the first axis in index order, for every entry alike (see :func:`_sum`).

    Over an outer axis numpy's reduction adds whole slices in index order
    while a slice holds more than one entry; with one entry per slice it
    would add a pairwise sum, so that case accumulates.
    """
    return np.add.reduce(x, axis=0) if x[0].size > 1 else np.add.accumulate(x, axis=0)[-1]


def _combine(K: Array, coef: Array) -> Array:
    """``sum_s coef_s K[s]`` for stage values ``K`` ``(s, m, n)`` (an ordered sum, see :func:`_sum0`).

    The stages of coefficient 0 after the first (a third of DOP853's) would add
    an exact zero and are left out.
    """
    sel, c = _nonzero(coef)
    return _sum0(c * K[sel])


def _nonzero(coef: Array) -> tuple[Any, Array]:
    """The first stage and those after it with a nonzero coefficient, and their coefficients ``(k, 1, 1)``.

    DOP853's tables, keyed by their values; the stages as a slice where they are consecutive.
    """
    key = coef.tobytes()
    got = _NONZERO.get(key)
    if got is None:
        idx = [0] + [s for s in range(1, len(coef)) if coef[s] != 0]
        sel = slice(0, len(idx)) if idx == list(range(len(idx))) else np.array(idx)
        got = _NONZERO[key] = (sel, coef[idx][:, None, None])
    return got


_NONZERO: dict[bytes, tuple[Any, Array]] = {}


def _stages(f, t: Array, y: Array, h: Array, t_new: Array, rows: Array,
            f0: Array | None = None) -> tuple[Array, Array]:
    """One DOP853 step per row: the stage values ``K`` ``(13, m, n)`` (the last at the new state) and the new state.

    ``t_new``: where the step ends (``t + h`` up to rounding); ``f0``: the
    derivative at ``(t, y)`` when known (first same as last).
    """
    m, n = y.shape
    hc = h[:, None]
    K = np.empty((_N_STAGES + 1, m, n))
    K[0] = f(t, y, rows) if f0 is None else f0
    for s in range(1, _N_STAGES):
        K[s] = f(t + _C[s] * h, y + _combine(K[:s], _A[s, :s]) * hc, rows)
    y_new = y + hc * _combine(K[:_N_STAGES], _B)
    K[_N_STAGES] = f(t_new, y_new, rows)
    return K, y_new


def _dense_coefficients(f, t_old, y_old, y_new, f_old, f_new, K, h, rows):
    """DOP853's interpolant of one step per row (three extra stages), shape ``(7, m, n)``."""
    m, n = y_old.shape
    Kx = np.empty((16, m, n))
    Kx[:13] = K
    hc = h[:, None]
    for s, (a, c) in enumerate(zip(_A_EXTRA, _C_EXTRA), start=_N_STAGES + 1):
        Kx[s] = f(t_old + c * h, y_old + _combine(Kx[:s], a[:s]) * hc, rows)
    F = np.empty((7, m, n))
    dy = y_new - y_old
    F[0] = dy
    F[1] = hc * f_old - dy
    F[2] = 2 * dy - hc * (f_new + f_old)
    acc = _D[:, 0, None, None] * Kx[0]  # sum_s D_js Kx[s] in stage order (zero columns left out)
    for s in _D_NONZERO:
        acc += _D[:, s, None, None] * Kx[s]
    F[3:] = h[None, :, None] * acc
    return F


_D_NONZERO = [s for s in range(1, _D.shape[1]) if np.any(_D[:, s] != 0)]


class _StepHistory:
    """The accepted steps of every row, to evaluate the dense output anywhere after the run.

    Each step keeps its row, start, size and start state, and (while the
    stored values stay below :data:`_STAGE_BUDGET` floats) its stage values;
    a step without them is taken again from its start (the same arithmetic, so
    the same stages).  Interpolants are built only for the steps that hold a
    requested time, all of them in a few calls of the right-hand side on many
    states at once instead of three calls per step of the run.
    """

    def __init__(self, f, n_rows: int, n: int) -> None:
        self.f, self.n_rows, self.n = f, n_rows, n
        self.calls = 0  # calls of ``f`` by the interpolation
        self.chunks: list = []  # (rows, t_old, t_new, h, y_old, K or None)
        self.stored = 0

    def add(self, rows: Array, t_old: Array, t_new: Array, h: Array, y_old: Array, K: Array) -> None:
        keep = self.stored + K.size <= _STAGE_BUDGET
        self.stored += K.size if keep else 0
        self.chunks.append((rows, t_old, t_new, h, y_old, K if keep else None))

    def sample(self, rows: Array, times: Sequence[Array]) -> list[Array]:
        """States of rows ``rows`` at ``times`` (one increasing array per row, within each row's steps).

        Times outside a row's accepted steps give ``nan``; returns one ``(len(times[k]), n)`` array per row.
        """
        n = self.n
        out = [np.full((np.size(tt), n), np.nan) for tt in times]
        if not self.chunks or not len(rows):
            return out
        row = np.concatenate([c[0] for c in self.chunks])
        order = np.argsort(row, kind="stable")  # chronological within a row
        t_new = np.concatenate([c[2] for c in self.chunks])[order]
        t_old = np.concatenate([c[1] for c in self.chunks])[order]
        bounds = np.searchsorted(row[order], np.arange(self.n_rows + 1))
        step_of, where = [], []
        for k, (r, tt) in enumerate(zip(rows, times)):
            lo, hi = bounds[r], bounds[r + 1]
            tt = np.asarray(tt, dtype=float)
            j = lo + np.searchsorted(t_new[lo:hi], tt, side="left")  # the first step ending at or after tt
            ok = (j < hi) & (tt > t_old[np.minimum(j, len(t_old) - 1)])
            step_of.append(order[j[ok]])
            where.append((k, np.flatnonzero(ok), tt[ok]))
        steps = np.concatenate(step_of) if step_of else np.zeros(0, dtype=int)
        if steps.size == 0:
            return out
        uniq, inv = np.unique(steps, return_inverse=True)
        Y = self._evaluate(uniq, inv, np.concatenate([w[2] for w in where]))
        pos = 0
        for k, idx, tt in where:
            out[k][idx] = Y[pos:pos + idx.size]
            pos += idx.size
        return out

    def _evaluate(self, uniq: Array, inv: Array, tt: Array) -> Array:
        """The interpolants of steps ``uniq`` (flat indices) at times ``tt`` of steps ``uniq[inv]``."""
        starts = np.cumsum([0] + [len(c[0]) for c in self.chunks])
        ci = np.searchsorted(starts, uniq, side="right") - 1
        li = uniq - starts[ci]
        row = np.empty(uniq.size, dtype=int)
        t_old, t_new, h = np.empty(uniq.size), np.empty(uniq.size), np.empty(uniq.size)
        y_old = np.empty((uniq.size, self.n))
        K = np.full((_N_STAGES + 1, uniq.size, self.n), np.nan)
        have = np.zeros(uniq.size, dtype=bool)
        for c in np.unique(ci):
            sel = np.flatnonzero(ci == c)
            rows_c, to_c, tn_c, h_c, y_c, K_c = self.chunks[c]
            loc = li[sel]
            row[sel], t_old[sel], t_new[sel], h[sel], y_old[sel] = rows_c[loc], to_c[loc], tn_c[loc], h_c[loc], y_c[loc]
            if K_c is not None:
                K[:, sel] = K_c[:, loc]
                have[sel] = True
        Y = np.empty((tt.size, self.n))
        for lo in range(0, uniq.size, _DENSE_CHUNK):
            s = slice(lo, lo + _DENSE_CHUNK)
            redo = np.flatnonzero(~have[s]) + lo
            if redo.size:
                K[:, redo] = _stages(self.f, t_old[redo], y_old[redo], h[redo], t_new[redo], row[redo])[0]
            Ks = K[:, s]
            y_new = y_old[s] + h[s, None] * _combine(Ks[:_N_STAGES], _B)
            F = _dense_coefficients(self.f, t_old[s], y_old[s], y_new, Ks[0], Ks[_N_STAGES], Ks, h[s], row[s])
            at = np.flatnonzero((inv >= lo) & (inv < lo + _DENSE_CHUNK))
            u = inv[at] - lo
            Y[at] = _dense_eval(F[:, u], y_old[s][u], (tt[at] - t_old[s][u]) / h[s][u])
        return Y


def _dense_eval(F: Array, y_old: Array, x: Array) -> Array:
    """The interpolant at fractions ``x`` ``(m,)`` of the step, per row; shape ``(m, n)``."""
    y = np.zeros_like(y_old)
    xx = x[:, None]
    for i, f in enumerate(F[::-1]):
        y += f
        y *= xx if i % 2 == 0 else 1.0 - xx
    return y + y_old


def _locate(g, lo_g, hi_g, h, t_old):
    """Roots of ``g(x)`` (``(k,) -> (k,)``) bracketed in ``[0, 1]``: regula falsi, Anderson-Bjorck variant.

    Returns the fractions ``x`` ``(k,)`` to about ``4 eps`` of ``t``.
    """
    k = lo_g.size
    lo, hi = np.zeros(k), np.ones(k)
    glo, ghi = lo_g.astype(float).copy(), hi_g.astype(float).copy()
    tol = 4 * _EPS * np.maximum(1.0, np.abs(t_old) + h) / h
    side = np.zeros(k, dtype=int)
    x = np.ones(k)
    open_ = np.ones(k, dtype=bool)
    for _ in range(200):
        idx = np.flatnonzero(open_)
        if idx.size == 0:
            break
        l, u, gl, gu = lo[idx], hi[idx], glo[idx], ghi[idx]
        with np.errstate(invalid="ignore", divide="ignore"):
            xs = (l * gu - u * gl) / (gu - gl)
        bad = ~((xs > l) & (xs < u))
        xs = np.where(bad, 0.5 * (l + u), xs)
        gm = g(xs, idx)
        x[idx] = xs
        left = np.sign(gm) == np.sign(gl)  # root in (xs, u]
        exact = gm == 0
        s_old = side[idx]
        new_l, new_u = np.where(left, xs, l), np.where(left, u, xs)
        # Anderson-Bjorck: scale the value kept twice in a row on the same side by
        # 1 - g(new) / g(replaced) (by 1/2 where that is not positive).
        with np.errstate(invalid="ignore", divide="ignore"):
            m_ab = 1.0 - gm / np.where(left, gl, gu)
        m_ab = np.where(m_ab > 0, m_ab, 0.5)
        new_gl = np.where(left, gm, np.where(s_old == -1, m_ab * gl, gl))
        new_gu = np.where(left, np.where(s_old == 1, m_ab * gu, gu), gm)
        side[idx] = np.where(left, 1, -1)
        lo[idx], hi[idx], glo[idx], ghi[idx] = new_l, new_u, new_gl, new_gu
        done = exact | (new_u - new_l <= tol[idx])
        x[idx] = np.where(exact, xs, np.where(done, 0.5 * (new_l + new_u), xs))
        open_[idx[done]] = False
    return x


class _Pending:
    """The steps that hold event crossings, noted along a run and located after it (:func:`_locate_pending`).

    ``steps``: per step with crossings, its rows' ``(rows, t_old, y_old, y_new,
    f_old, f_new, K, h)``; ``crossings[j]``: per such step, event ``j``'s
    crossings as positions among all noted rows and the event's values at the
    step's two ends.
    """

    def __init__(self, events: Sequence[BatchEvent]) -> None:
        self.steps: list = []
        self.crossings: list[list] = [[] for _ in events]
        self.size = 0


def _locate_pending(pending: _Pending, events: Sequence[BatchEvent], f, t: Array, y: Array, fired: Array,
                    t_ev: dict, d_ev: dict) -> None:
    """Locate every noted crossing; stop the rows with a terminal one at the first.

    The interpolants of all noted steps are built together (three calls of
    ``f``) and each event's crossings located in one regula falsi: the same
    arithmetic row by row as locating them step by step.  Sets ``t``, ``y``
    and ``fired`` of the stopped rows and fills ``t_ev``, ``d_ev`` (in time
    order per row).
    """
    rows, t_old, y_old, y_new, f_old, f_new, K, h = (np.concatenate(parts, axis=1 if j == 6 else 0)
                                                     for j, parts in enumerate(zip(*pending.steps)))
    F = _dense_coefficients(f, t_old, y_old, y_new, f_old, f_new, K, h, rows)
    stop_t = np.full(rows.size, np.inf)
    stop_ev = np.full(rows.size, -1)
    found = []
    for j, e in enumerate(events):
        if not pending.crossings[j]:
            continue
        pos, g0, g1 = (np.concatenate(parts) for parts in zip(*pending.crossings[j]))
        Fd, yo, to, hk = F[:, pos], y_old[pos], t_old[pos], h[pos]

        def g(x: Array, idx: Array, e=e, Fd=Fd, yo=yo, to=to, hk=hk, pos=pos) -> Array:
            return np.asarray(e.function(to[idx] + x * hk[idx], _dense_eval(Fd[:, idx], yo[idx], x),
                                         rows[pos[idx]]), dtype=float)

        te = to + _locate(g, g0, g1, hk, to) * hk
        found.append((e.name, pos, te, np.where(g1 > g0, 1, -1)))
        if e.terminal:
            better = te < stop_t[pos]
            stop_t[pos] = np.where(better, te, stop_t[pos])
            stop_ev[pos] = np.where(better, j, stop_ev[pos])
    for name, pos, te, sign in found:
        for p, tt, sg in zip(pos, te, sign):
            if tt <= stop_t[p]:  # crossings after the terminal one are not reached
                t_ev[name][rows[p]].append(float(tt))
                d_ev[name][rows[p]].append(int(sg))
    k = np.flatnonzero(stop_ev >= 0)
    if k.size:
        r = rows[k]
        y[r] = _dense_eval(F[:, k], y_old[k], (stop_t[k] - t_old[k]) / h[k])
        t[r] = stop_t[k]
        fired[r] = stop_ev[k]


def solve_batch(
    fun: Callable[[Array, Array, Array], Array],
    y0: Array,
    t_max: Array,
    *,
    t0: Array | float = 0.0,
    rtol: float = 1e-9,
    atol: float = 1e-14,
    events: Sequence[BatchEvent] = (),
    t_eval: Array | Sequence[Array] | None = None,
    diverged: Callable[[Array, Array], Array] | None = None,
    time_name: str = "t",
    max_iterations: int = 10**7,
    dense: bool = False,
) -> BatchFlowRun:
    """Integrate ``dy/dt = fun(t, Y, rows)`` for every row of ``y0`` with DOP853.

    Parameters
    ----------
    fun : callable
        ``fun(t, Y, rows) -> dY/dt`` with times ``t`` ``(m,)``, states ``Y``
        ``(m, n)`` and the indices ``rows`` ``(m,)`` of those rows in the batch.
    y0 : array_like, shape (B, n)
        Initial states.
    t_max : float or array_like, shape (B,)
        Each row's horizon, ``> t0``.
    t0 : float or array_like, shape (B,)
        Start times.
    rtol, atol : float
        Tolerances, as in :func:`scipy.integrate.solve_ivp` (``rtol >= 100 eps``).
    events : sequence of BatchEvent
    t_eval : array_like, shape (n_eval,) or (B, n_eval), or a sequence of B arrays
        Increasing sample times per row within ``[t0, t_max]`` (common, or one
        row each; rows of different lengths are padded with ``nan``).
    diverged : callable, optional
        ``diverged(Y, rows) -> bool (m,)`` for the states where rows stopped on
        their own (right-hand side not finite at ``Y``, or a too small step):
        True makes the row ``diverged`` instead of ``failed``.  Default: ``Y`` not finite.
    time_name : str
        Name of the time variable in messages.
    max_iterations : int
        Safety bound on the step attempts of the batch.
    dense : bool
        Keep the accepted steps for :meth:`BatchFlowRun.sample` after the run.
        The samples at ``t_eval`` are taken that way too, once the run has
        ended, so a step's interpolant (three more right-hand sides) is built
        only for a step that holds a requested time, and all of them together.

    Returns
    -------
    BatchFlowRun
    """
    y0 = np.array(y0, dtype=float)
    if y0.ndim != 2:
        raise ValueError(f"y0: need initial states of shape (batch, n), got {y0.shape}")
    Bn, n = y0.shape
    t = np.array(np.broadcast_to(np.asarray(t0, dtype=float), (Bn,)))
    t_max = np.array(np.broadcast_to(np.asarray(t_max, dtype=float), (Bn,)))
    if not np.all(t_max > t):
        raise ValueError("t_max: every row's horizon must exceed its start time")
    events = event_list(events, BatchEvent)
    rtol = max(float(rtol), 100 * _EPS)
    # Sample times, padded to one (B, n_eval) table.
    if t_eval is None:
        te = np.full((Bn, 0), np.nan)
    elif not (isinstance(t_eval, (list, tuple)) and t_eval and np.ndim(t_eval[0]) == 1):
        t_eval = np.asarray(t_eval, dtype=float)
        if t_eval.ndim not in (1, 2):
            raise ValueError(f"t_eval: need sample times of shape (n_eval,) or (batch, n_eval), got {t_eval.shape}")
        te = np.array(np.broadcast_to(t_eval, (Bn, t_eval.shape[-1])))
    else:
        rows_te = [np.asarray(r, dtype=float) for r in t_eval]
        if len(rows_te) != Bn:
            raise ValueError(f"t_eval: need {Bn} rows of sample times, got {len(rows_te)}")
        te = np.full((Bn, max((r.size for r in rows_te), default=0)), np.nan)
        for j, r in enumerate(rows_te):
            te[j, :r.size] = r
    n_eval = np.sum(np.isfinite(te), axis=1)
    samples = np.full((Bn, te.shape[1], n), np.nan)
    at0 = te <= t[:, None]
    samples[at0] = np.broadcast_to(y0[:, None, :], samples.shape)[at0]

    nfev = np.zeros(Bn, dtype=np.int64)
    n_calls = 0

    def f(tt: Array, Y: Array, rows: Array) -> Array:
        nonlocal n_calls
        nfev[rows] += 1  # along the run each row appears once per call
        n_calls += 1
        return fun(tt, Y, rows)

    def f_dense(tt: Array, Y: Array, rows: Array) -> Array:
        np.add.at(nfev, rows, 1)  # the interpolants may be of several steps of one row
        history.calls += 1
        return fun(tt, Y, rows)

    def f_events(tt: Array, Y: Array, rows: Array) -> Array:
        nonlocal n_calls
        np.add.at(nfev, rows, 1)  # interpolants of the steps holding crossings: a row may have several
        n_calls += 1
        return fun(tt, Y, rows)

    want_dense = dense or te.shape[1] > 0
    history = _StepHistory(f_dense, Bn, n)
    pending = _Pending(events)

    y = y0.copy()
    status = np.full(Bn, _RUNNING)
    fired = np.full(Bn, -1)
    y_bad = np.full((Bn, n), np.nan)
    t_bad = np.full(Bn, np.nan)
    t_ev = {e.name: [[] for _ in range(Bn)] for e in events}
    d_ev = {e.name: [[] for _ in range(Bn)] for e in events}
    n_steps = np.zeros(Bn, dtype=np.int64)
    rows_all = np.arange(Bn)

    with np.errstate(all="ignore"):
        fy = f(t, y, rows_all)
        # Initial step (Hairer, Norsett and Wanner II.4, as scipy selects it).
        scale = atol + np.abs(y) * rtol
        span = t_max - t
        d0, d1 = _rms(y / scale), _rms(fy / scale)
        h0 = np.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / np.where(d1 > 0, d1, 1.0))
        h0 = np.minimum(h0, span)
        f1 = f(t + h0, y + h0[:, None] * fy, rows_all)
        d2 = _rms((f1 - fy) / scale) / h0
        dmax = np.maximum(d1, d2)
        h1 = np.where((d1 <= 1e-15) & (d2 <= 1e-15), np.maximum(1e-6, h0 * 1e-3),
                      (0.01 / np.where(dmax > 0, dmax, 1.0)) ** (1.0 / (DOP853.error_estimator_order + 1)))
        h = np.minimum(np.minimum(100 * h0, h1), span)
        bad0 = ~np.all(np.isfinite(fy), axis=1)
        if bad0.any():
            status[bad0] = _NONFINITE
            y_bad[bad0], t_bad[bad0] = y[bad0], t[bad0]
        rejected = np.zeros(Bn, dtype=bool)
        g_old = [np.asarray(e.function(t, y, rows_all), dtype=float) for e in events]

        for _ in range(max_iterations):
            act = np.flatnonzero(status == _RUNNING)
            if act.size == 0:
                break
            ta, ya, fa, ha = t[act], y[act], fy[act], h[act]
            min_step = 10 * np.abs(np.nextafter(ta, np.inf) - ta)
            tiny = ha < min_step
            if tiny.any():
                # scipy: raise a small step to the minimum, fail if a rejection brought it there.
                fail = tiny & rejected[act]
                ha = np.where(tiny, min_step, ha)
                if fail.any():
                    status[act[fail]] = _TOO_SMALL
                    keep = ~fail
                    act, ta, ya, fa, ha = act[keep], ta[keep], ya[keep], fa[keep], ha[keep]
                    if act.size == 0:
                        continue
            tm = t_max[act]
            t_new = ta + ha
            t_new = np.where(t_new > tm, tm, t_new)
            ha = t_new - ta
            hc = ha[:, None]
            K, y_new = _stages(f, ta, ya, ha, t_new, act, fa)
            f_new = K[_N_STAGES]
            finite = np.all(np.isfinite(K), axis=(0, 2)) & np.all(np.isfinite(y_new), axis=1)
            if not finite.all():
                nf = ~finite
                status[act[nf]] = _NONFINITE
                # The first stage that is not finite: where the flow stopped being defined.
                stage_bad = ~np.all(np.isfinite(K[:, nf]), axis=2)
                first = np.argmax(stage_bad, axis=0)
                t_bad[act[nf]] = ta[nf] + np.r_[_C[:_N_STAGES], 1.0][first] * ha[nf]
                y_bad[act[nf]] = ya[nf]
                keep = finite
                act, ta, ya, fa, ha, hc = act[keep], ta[keep], ya[keep], fa[keep], ha[keep], hc[keep]
                t_new, y_new, f_new, K = t_new[keep], y_new[keep], f_new[keep], K[:, keep]
                if act.size == 0:
                    continue
            scale = atol + np.maximum(np.abs(ya), np.abs(y_new)) * rtol
            e5 = _sum((_combine(K, _E5) / scale) ** 2)
            e3 = _sum((_combine(K, _E3) / scale) ** 2)
            denom = e5 + 0.01 * e3
            err = np.where(denom > 0, ha * e5 / np.sqrt(np.where(denom > 0, denom, 1.0) * n), 0.0)
            ok = err < 1
            fac = np.where(err == 0, _MAX_FACTOR, np.minimum(_MAX_FACTOR, _SAFETY * err ** _ERR_EXP))
            fac_ok = np.where(rejected[act], np.minimum(1.0, fac), fac)
            fac_bad = np.maximum(_MIN_FACTOR, _SAFETY * err ** _ERR_EXP)
            h[act] = ha * np.where(ok, fac_ok, fac_bad)
            rejected[act] = ~ok
            if not ok.any():
                continue
            sel = np.flatnonzero(ok)
            acc = act[sel]
            t_old, y_old, f_old = ta[sel], ya[sel], fa[sel]
            tn, yn, fn, hh = t_new[sel], y_new[sel], f_new[sel], ha[sel]
            Ks = K[:, sel]
            n_steps[acc] += 1
            if want_dense:
                history.add(acc, t_old, tn, hh, y_old, Ks)
            # Crossings are noted here and located after the run (_locate_pending), all of
            # an event's at once: a row with a terminal crossing stops at the end of this step,
            # its time and state set to the located ones afterwards.
            stop = np.zeros(acc.size, dtype=bool)
            hits = []
            for j, e in enumerate(events):
                g0 = g_old[j][acc]
                g1 = np.asarray(e.function(tn, yn, acc), dtype=float)
                g_old[j][acc] = g1
                up = (g0 <= 0) & (g1 >= 0)
                down = (g0 >= 0) & (g1 <= 0)
                cross = up if e.direction > 0 else down if e.direction < 0 else (up | down)
                cross &= ~((g0 == 0) & (g1 == 0))
                cr = np.flatnonzero(cross)
                if cr.size:
                    hits.append((j, cr, g0[cr], g1[cr]))
                    if e.terminal:
                        stop[cr] = True
            if hits:
                k = np.unique(np.concatenate([c[1] for c in hits]))
                pending.steps.append((acc[k], t_old[k], y_old[k], yn[k], f_old[k], fn[k], Ks[:, k], hh[k]))
                for j, cr, a0, a1 in hits:
                    pending.crossings[j].append((pending.size + np.searchsorted(k, cr), a0, a1))
                pending.size += k.size
            if stop.any():
                status[acc[stop]] = _EVENT
            go = ~stop
            t[acc[go]], y[acc[go]], fy[acc[go]] = tn[go], yn[go], fn[go]
            status[acc[go & (tn >= t_max[acc])]] = _OK

        if pending.size:
            _locate_pending(pending, events, f_events, t, y, fired, t_ev, d_ev)

        # Decode.
        bad_rows = np.flatnonzero((status == _NONFINITE) | (status == _TOO_SMALL))
        is_bad = np.zeros(Bn, dtype=bool)
        if bad_rows.size:
            probe = np.where((status[bad_rows] == _NONFINITE)[:, None], y_bad[bad_rows], y[bad_rows])
            is_bad[bad_rows] = (np.asarray(diverged(probe, bad_rows), dtype=bool) if diverged is not None
                                else ~np.all(np.isfinite(probe), axis=1))
    st_out, msg_out, ev_out = [], [], []
    for r in range(Bn):
        s = status[r]
        if s == _OK:
            st_out.append("ok")
            msg_out.append(f"reached {time_name} = {t_max[r]:.6g}")
            ev_out.append(None)
        elif s == _EVENT:
            e = events[fired[r]]
            st_out.append(e.status)
            msg_out.append(f"{e.message or e.name} at {time_name} = {t[r]:.6g}")
            ev_out.append(e.name)
        elif s == _TOO_SMALL:
            st_out.append("diverged" if is_bad[r] else "failed")
            msg_out.append(f"solver stopped at {time_name} = {t[r]:.6g}: Required step size is less than spacing "
                           f"between numbers.")
            ev_out.append(None)
        elif s == _NONFINITE:
            st_out.append("diverged" if is_bad[r] else "failed")
            msg_out.append(f"solver stopped at {time_name} = {t[r]:.6g}: the right-hand side is not finite at "
                           f"{time_name} = {t_bad[r]:.6g}")
            ev_out.append(None)
        else:
            st_out.append("failed")
            msg_out.append(f"stopped at {time_name} = {t[r]:.6g}: the batch reached max_iterations")
            ev_out.append(None)
    if te.shape[1]:
        # Samples within (t0, t_end] of each row, from its steps' interpolants (once, for all rows).
        live = [np.flatnonzero(~at0[r, :n_eval[r]] & (te[r, :n_eval[r]] <= t[r])) for r in range(Bn)]
        got = history.sample(rows_all, [te[r, k] for r, k in enumerate(live)])
        for r, k in enumerate(live):
            samples[r, k] = got[r]
        n_calls += history.calls
        history.calls = 0
    samples[te > t[:, None]] = np.nan
    return BatchFlowRun(
        status=st_out, message=msg_out, t_end=t, y_end=y, samples=samples, nfev=nfev, n_steps=n_steps,
        event=ev_out,
        t_events={k: [np.asarray(v, dtype=float) for v in rows] for k, rows in t_ev.items()},
        directions={k: [np.asarray(v, dtype=int) for v in rows] for k, rows in d_ev.items()},
        n_calls=n_calls, history=history if dense else None)
