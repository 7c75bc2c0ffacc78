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
Illinois modification, to a few ulps of ``t``), and a row's status is
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
from typing import Callable, Sequence

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
        Calls of ``fun`` (each on all rows still running).
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


def _combine(K: Array, coef: Array) -> Array:
    """``sum_s coef_s K[s]`` for stage values ``K`` ``(s, m, n)`` (an ordered sum, see :func:`_sum`)."""
    return _sum(coef[:, None, None] * K, axis=0)


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
    F[3:] = h[None, :, None] * _sum(_D[:, :, None, None] * Kx[None], axis=1)
    return F


def _dense_eval(F: Array, y_old: Array, x: Array) -> Array:
    """The interpolant at fractions ``x`` ``(m,)`` of the step, per row; shape ``(m, n)``."""
    y = np.zeros_like(y_old)
    xx = x[:, None]
    for i, f in enumerate(F[::-1]):
        y += f
        y *= xx if i % 2 == 0 else 1.0 - xx
    return y + y_old


def _locate(g, lo_g, hi_g, h, t_old):
    """Roots of ``g(x)`` (``(k,) -> (k,)``) bracketed in ``[0, 1]``: regula falsi, Illinois variant.

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
        # Illinois: halve the value kept twice in a row on the same side.
        new_gl = np.where(left, gm, np.where(s_old == -1, 0.5 * gl, gl))
        new_gu = np.where(left, np.where(s_old == 1, 0.5 * gu, gu), gm)
        side[idx] = np.where(left, 1, -1)
        lo[idx], hi[idx], glo[idx], ghi[idx] = new_l, new_u, new_gl, new_gu
        done = exact | (new_u - new_l <= tol[idx])
        x[idx] = np.where(exact, xs, np.where(done, 0.5 * (new_l + new_u), xs))
        open_[idx[done]] = False
    return x


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
    next_sample = at0.sum(axis=1)

    nfev = np.zeros(Bn, dtype=np.int64)
    n_calls = 0

    def f(tt: Array, Y: Array, rows: Array) -> Array:
        nonlocal n_calls
        nfev[rows] += 1
        n_calls += 1
        return fun(tt, Y, rows)

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
            m = act.size
            K = np.empty((_N_STAGES + 1, m, n))
            K[0] = fa
            for s in range(1, _N_STAGES):
                K[s] = f(ta + _C[s] * ha, ya + _combine(K[:s], _A[s, :s]) * hc, act)
            y_new = ya + hc * _combine(K[:_N_STAGES], _B)
            f_new = f(t_new, y_new, act)
            K[_N_STAGES] = f_new
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
            F_all = np.empty((7, acc.size, n))
            have = np.zeros(acc.size, dtype=bool)

            def coefficients(k: Array) -> Array:
                """Interpolants of the accepted rows ``k`` (positions in ``acc``), built once per step."""
                missing = k[~have[k]]
                if missing.size:
                    F_all[:, missing] = _dense_coefficients(f, t_old[missing], y_old[missing], yn[missing],
                                                            f_old[missing], fn[missing], Ks[:, missing],
                                                            hh[missing], acc[missing])
                    have[missing] = True
                return F_all[:, k]

            stop_t = np.full(acc.size, np.inf)
            stop_ev = np.full(acc.size, -1)
            found = []
            for j, e in enumerate(events):
                g0 = g_old[j][acc]
                g1 = np.asarray(e.function(tn, yn, acc), dtype=float)
                g_old[j][acc] = g1
                up = (g0 <= 0) & (g1 >= 0)
                down = (g0 >= 0) & (g1 <= 0)
                cross = up if e.direction > 0 else down if e.direction < 0 else (up | down)
                cross &= ~((g0 == 0) & (g1 == 0))
                cr = np.flatnonzero(cross)
                if cr.size == 0:
                    continue
                Fd = coefficients(cr)
                yo, to, hk = y_old[cr], t_old[cr], hh[cr]

                def g(x: Array, idx: Array, e=e, Fd=Fd, yo=yo, to=to, hk=hk, cr=cr) -> Array:
                    return np.asarray(e.function(to[idx] + x * hk[idx], _dense_eval(Fd[:, idx], yo[idx], x),
                                                 acc[cr[idx]]), dtype=float)

                x = _locate(g, g0[cr], g1[cr], hk, to)
                te_j = to + x * hk
                found.append((j, cr, te_j, np.where(g1[cr] > g0[cr], 1, -1)))
                if e.terminal:
                    better = te_j < stop_t[cr]
                    stop_t[cr] = np.where(better, te_j, stop_t[cr])
                    stop_ev[cr] = np.where(better, j, stop_ev[cr])
            for j, cr, te_j, sign in found:
                name = events[j].name
                for r, tt, sg in zip(cr, te_j, sign):
                    if tt <= stop_t[r]:  # crossings after the terminal one are not reached
                        t_ev[name][acc[r]].append(float(tt))
                        d_ev[name][acc[r]].append(int(sg))
            stopped = stop_ev >= 0
            t_fin = np.where(stopped, stop_t, tn)
            # Samples within (t_old, t_fin].
            if te.shape[1]:
                while True:
                    ns = next_sample[acc]
                    has = ns < n_eval[acc]
                    ts = np.where(has, te[acc, np.minimum(ns, te.shape[1] - 1)], np.inf)
                    take = has & (ts <= t_fin)
                    if not take.any():
                        break
                    k = np.flatnonzero(take)
                    x = (ts[k] - t_old[k]) / hh[k]
                    samples[acc[k], ns[k]] = _dense_eval(coefficients(k), y_old[k], x)
                    next_sample[acc[k]] += 1
            if stopped.any():
                k = np.flatnonzero(stopped)
                y[acc[k]] = _dense_eval(coefficients(k), y_old[k], (stop_t[k] - t_old[k]) / hh[k])
                t[acc[k]] = stop_t[k]
                status[acc[k]] = _EVENT
                fired[acc[k]] = stop_ev[k]
            go = ~stopped
            t[acc[go]], y[acc[go]], fy[acc[go]] = tn[go], yn[go], fn[go]
            status[acc[go & (tn >= t_max[acc])]] = _OK

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
    samples[te > t[:, None]] = np.nan
    return BatchFlowRun(
        status=st_out, message=msg_out, t_end=t, y_end=y, samples=samples, nfev=nfev, n_steps=n_steps,
        event=ev_out,
        t_events={k: [np.asarray(v, dtype=float) for v in rows] for k, rows in t_ev.items()},
        directions={k: [np.asarray(v, dtype=int) for v in rows] for k, rows in d_ev.items()},
        n_calls=n_calls)
