"""One driver for every ODE phasekit integrates, with its events and one status decoding.

:func:`solve_flow` runs :func:`scipy.integrate.solve_ivp` with the settings of
:class:`~phasekit.core.options.SolverOptions` and a list of :class:`Event`\\ s,
and decodes the outcome once, into the status vocabulary of
:mod:`phasekit.core.results`:

=============  =============================================================
status         when
=============  =============================================================
``ok``         the run reached the end of its time span
``converged``  a terminal event with that status fired (a threshold crossed)
``diverged``   a terminal event with that status fired (the state left its
               domain or blew up), or the solver stopped at a state that
               ``diverged`` calls bad (default: not finite)
``failed``     the solver stopped otherwise (step size too small, ...)
=============  =============================================================

Event builders cover what every system needs: :func:`cone_exit` (a margin
function falls below zero), :func:`blow_up` (the largest ``|y_i|`` exceeds
``max_norm``) and :func:`crossing` (a scalar function of the state crosses a
level in a given direction); any other :class:`Event` can be passed as well.
The result, a :class:`FlowRun`, holds the end point, the samples at the
requested times (from the solver's dense output, so they do not depend on
the steps) and which event fired.

:func:`rk4_batch` is the fixed-step classical Runge-Kutta method for a batch
of starts integrated at once (cheap seeding flows), each row stopping at its
first invalid step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy.integrate import solve_ivp

from .options import SolverOptions, coerce_options
from .results import Result, check_status

__all__ = ["BatchRun", "Event", "FlowRun", "blow_up", "cone_exit", "crossing", "rk4_batch", "solve_flow"]


Array = np.ndarray


@dataclass(frozen=True)
class Event:
    """A zero crossing of ``function(t, y)`` that the solver locates (to machine precision on its dense output).

    Attributes
    ----------
    name : str
        Key of the event in :attr:`FlowRun.t_events` and the value of :attr:`FlowRun.event`.
    function : callable
        ``function(t, y) -> float``; the event is a zero of it.
    direction : int
        ``-1``: only crossings from positive to negative count, ``+1`` the
        opposite, ``0`` both.
    terminal : bool
        Whether the run stops at the first crossing.
    status : str
        Status of the run when this terminal event stops it (``"converged"`` or ``"diverged"``).
    message : str
        What happened, e.g. ``"left the cone"``; the run's message adds where.
    """

    name: str
    function: Callable[[float, Array], float]
    direction: int = 0
    terminal: bool = True
    status: str = "converged"
    message: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: must be a non-empty string, got {self.name!r}")
        if not callable(self.function):
            raise ValueError(f"function: must be callable, got {type(self.function).__name__}")
        if self.direction not in (-1, 0, 1):
            raise ValueError(f"direction: must be -1, 0 or 1, got {self.direction!r}")
        if check_status(self.status) not in ("converged", "diverged"):
            raise ValueError(f"status: a terminal event ends a run as 'converged' or 'diverged', got {self.status!r}")

    def _scipy(self) -> Callable[[float, Array], float]:
        f = self.function

        def event(t: float, y: Array) -> float:
            return f(t, y)

        event.terminal = bool(self.terminal)
        event.direction = self.direction
        return event


def cone_exit(margin: Callable[[Array], float], *, offset: float = 0.0,
              message: str = "left the positive-semidefinite cone") -> Event:
    """Terminal event ``margin(y) + offset`` falling through 0: the state leaves its domain (status ``diverged``).

    ``margin(y)`` is positive inside (e.g. the smallest eigenvalue of a
    covariance built from ``y``); ``offset`` lets the run stop a little outside
    (``> 0``) or inside (``< 0``).
    """
    offset = float(offset)
    return Event("cone_exit", lambda _t, y: margin(y) + offset, direction=-1, status="diverged", message=message)


def blow_up(max_norm: float, *, message: str | None = None) -> Event:
    """Terminal event: the largest ``|y_i|`` exceeds ``max_norm`` (status ``diverged``)."""
    max_norm = float(max_norm)
    if not (np.isfinite(max_norm) and max_norm > 0):
        raise ValueError(f"max_norm: must be finite and > 0, got {max_norm!r}")
    text = f"an entry of the state exceeded {max_norm:g}" if message is None else message
    return Event("blow_up", lambda _t, y: max_norm - float(np.max(np.abs(y))), direction=-1, status="diverged",
                 message=text)


def crossing(fun: Callable[[Array], float], level: float, *, direction: int = -1, terminal: bool = True,
             name: str = "threshold", status: str = "converged", message: str | None = None) -> Event:
    """Event: the scalar ``fun(y)`` crosses ``level`` (``direction=-1``: from above).

    The event function is ``fun(y) - level``; a smooth ``fun`` lets the root
    finder locate the crossing to machine precision.
    """
    level = float(level)
    text = f"{name} crossed {level:g}" if message is None else message
    return Event(name, lambda _t, y: float(fun(y)) - level, direction=direction, terminal=terminal,
                 status=status, message=text)


@dataclass(frozen=True, kw_only=True)
class FlowRun(Result):
    """Outcome of :func:`solve_flow`.

    Attributes
    ----------
    status, message : str
        See the module docstring; ``success`` is True for ``ok`` and ``converged``.
    t_end : float
        Where the run stopped: the end of the span, the time of the terminal
        event, or where the solver stopped.
    y_end : ndarray, shape (n,)
        The state there.
    t : ndarray, shape (k,)
        Sample times: the requested ones up to ``t_end``, or the solver's steps
        when none were requested.
    y : ndarray, shape (k, n)
        The states at ``t``.
    nfev : int
        Right-hand-side evaluations.
    n_steps : int
        Accepted steps (0: the solver failed on its first step).
    event : str or None
        Name of the terminal event that stopped the run.
    t_events, y_events : dict
        Every event's crossings (times ``(c,)`` and states ``(c, n)``), terminal ones included.
    """

    t_end: float
    y_end: Array
    t: Array
    y: Array
    nfev: int
    n_steps: int
    event: str | None = None
    t_events: Mapping[str, Array] = field(default_factory=dict)
    y_events: Mapping[str, Array] = field(default_factory=dict)
    dense: Any = field(default=None, repr=False)

    def sample(self, times: Array) -> Array:
        """States at ``times`` within ``[t0, t_end]`` from the dense output (``dense=True``), shape ``(len(times), n)``."""
        times = np.asarray(times, dtype=float)
        if self.n_steps == 0 and self.t.size:  # the solver failed on its first step: only the start is known
            return np.repeat(self.y_end[None], times.size, axis=0)
        if self.dense is None:
            raise ValueError("times: this run kept no dense output (solve_flow(..., dense=True))")
        return np.asarray(self.dense(times)).T


def event_list(events: Sequence[Any], kind: type) -> list:
    """``events`` as a list, checked: each an instance of ``kind``, names distinct."""
    events = list(events)
    if not all(isinstance(e, kind) for e in events):
        raise ValueError(f"events: expected a sequence of {kind.__module__}.{kind.__qualname__}")
    names = [e.name for e in events]
    if len(set(names)) != len(names):
        raise ValueError(f"events: names must be distinct, got {names}")
    return events


def solve_flow(
    fun: Callable[[float, Array], Array],
    y0: Array,
    t_span: tuple[float, float],
    *,
    events: Sequence[Event] = (),
    options: SolverOptions | Mapping[str, Any] | None = None,
    t_eval: Array | None = None,
    dense: bool = False,
    diverged: Callable[[Array], bool] | None = None,
    time_name: str = "t",
) -> FlowRun:
    """Integrate ``dy/dt = fun(t, y)`` over ``t_span`` and decode the outcome.

    Parameters
    ----------
    fun : callable
        ``fun(t, y) -> dy/dt`` for a state ``y`` of shape ``(n,)``.
    y0 : array_like, shape (n,)
        Initial state.
    t_span : (float, float)
        Start and end time.
    events : sequence of Event
        Zero crossings to locate (:func:`cone_exit`, :func:`blow_up`,
        :func:`crossing` or any :class:`Event`); a terminal one stops the run
        and sets its status.
    options : SolverOptions or mapping, optional
        Solver method and tolerances (default :class:`SolverOptions()`);
        ``max_norm`` is not used here (pass :func:`blow_up` for it).
    t_eval : array_like, optional
        Increasing sample times within ``t_span``; the samples up to ``t_end``
        come from the dense output.
    dense : bool
        Keep the dense output for :meth:`FlowRun.sample`.
    diverged : callable, optional
        ``diverged(y) -> bool`` for the state where the solver stopped on its
        own: True makes the run ``diverged`` instead of ``failed``.  Default:
        a state that is not finite.
    time_name : str
        Name of the time variable in messages (``"alpha"``, ``"t"``).

    Returns
    -------
    FlowRun
    """
    opts = coerce_options(options, SolverOptions, "options")
    events = event_list(events, Event)
    t0, t1 = (float(t) for t in t_span)
    y0 = np.asarray(y0, dtype=float)
    if t_eval is not None:
        t_eval = np.asarray(t_eval, dtype=float)
    keep = dense or t_eval is not None
    sol, bad_at = _solve_finite(fun, y0, t0, t1, opts, keep, events)
    t_events = {e.name: np.asarray(sol.t_events[j], dtype=float) for j, e in enumerate(events)} if events else {}
    y_events = {e.name: np.asarray(sol.y_events[j], dtype=float).reshape(-1, y0.size)
                for j, e in enumerate(events)} if events else {}
    t_end, y_end = float(sol.t[-1]), sol.y[:, -1]
    fired = None
    status, message = "ok", f"reached {time_name} = {t1:.6g}"
    if sol.status == 1:
        # The terminal event that stopped the run is the one recorded at the final time.
        for e in events:
            if e.terminal and t_events[e.name].size and t_events[e.name][-1] == t_end:
                fired = e
                break
        if fired is None:  # pragma: no cover - solve_ivp always records the terminal event
            fired = next(e for e in events if e.terminal and t_events[e.name].size)
        t_end, y_end = float(t_events[fired.name][-1]), y_events[fired.name][-1]
        status = fired.status
        message = f"{fired.message or fired.name} at {time_name} = {t_end:.6g}"
    elif sol.status == -1:
        bad = diverged(y_end) if diverged is not None else not np.all(np.isfinite(y_end))
        status = "diverged" if bad else "failed"
        message = f"solver stopped at {time_name} = {t_end:.6g}: {sol.message}"
    elif bad_at is not None:
        t_bad, y_bad = bad_at
        bad = diverged(y_bad) if diverged is not None else not np.all(np.isfinite(y_bad))
        status = "diverged" if bad else "failed"
        message = (f"solver stopped at {time_name} = {t_end:.6g}: the right-hand side is not finite "
                   f"at {time_name} = {t_bad:.6g}")
    n_steps = len(sol.t) - 1
    if t_eval is not None:
        t = t_eval[t_eval <= t_end]
        # (a solver that failed on its first step knows only the start)
        y = sol.sol(t).T if (t.size and n_steps) else np.repeat(y0[None], t.size, 0)
    else:
        t, y = sol.t, sol.y.T
    return FlowRun(status=status, message=message, t_end=t_end, y_end=np.asarray(y_end, dtype=float), t=t, y=y,
                   nfev=int(sol.nfev), n_steps=int(n_steps), event=None if fired is None else fired.name,
                   t_events=t_events, y_events=y_events, dense=sol.sol if keep else None)


class _NonFinite(Exception):
    def __init__(self, t: float, y: Array) -> None:
        super().__init__(t)
        self.t, self.y = t, y


class _Start:
    """What ``solve_ivp`` would return for a run that failed on its first step: the start only."""

    def __init__(self, t0: float, y0: Array, n_events: int) -> None:
        self.t, self.y = np.array([t0]), y0[:, None]
        self.t_events = [np.empty(0) for _ in range(n_events)]
        self.y_events = [np.empty((0, y0.size)) for _ in range(n_events)]
        self.nfev, self.status, self.sol = 0, 0, None


def _solve_finite(fun, y0, t0, t1, opts, keep, events):
    """``solve_ivp`` that stops where ``fun`` stops being finite.

    With a non-finite derivative scipy's step-size control computes a NaN step
    and never returns, so the derivative is checked; on the first non-finite
    value the run is repeated up to the time of the last finite evaluation
    (the accepted steps before it are the same), a few times if need be.
    Returns the solution and ``(t, y)`` of the bad evaluation (None if all
    were finite).
    """
    t_last = [t0]

    def checked(t: float, y: Array) -> Array:
        dy = fun(t, y)
        if not np.all(np.isfinite(dy)):
            raise _NonFinite(float(t), np.array(y, dtype=float))
        t_last[0] = max(t_last[0], float(t)) if t1 >= t0 else min(t_last[0], float(t))
        return dy

    bad_at = None
    end = t1
    for _attempt in range(8):
        t_last[0] = t0
        try:
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                sol = solve_ivp(checked, (t0, end), y0, method=opts.method, rtol=opts.rtol, atol=opts.atol,
                                dense_output=keep, events=[e._scipy() for e in events] or None)
            return sol, bad_at
        except _NonFinite as err:
            if bad_at is None:
                bad_at = (err.t, err.y)
            # The last finite evaluation before the bad one; strictly inside the span.
            new_end = t_last[0] if t_last[0] != end else t0 + 0.5 * (end - t0)
            if new_end == t0:
                break
            end = new_end
    return _Start(t0, y0, len(events)), bad_at


@dataclass(frozen=True)
class BatchRun:
    """Outcome of :func:`rk4_batch`.

    Attributes
    ----------
    y : ndarray, shape (batch, n)
        Each row's last valid state.
    alive : ndarray of bool, shape (batch,)
        Rows whose every step was valid.
    steps : int
        Steps taken (fewer than asked when every row stopped).
    """

    y: Array
    alive: Array
    steps: int


def rk4_batch(
    fun: Callable[[float, Array], Array],
    Y0: Array,
    t_span: tuple[float, float],
    n_steps: int,
    *,
    valid: Callable[[Array, Array], Array] | None = None,
    observe: Callable[[int, Array, Array, Array], None] | None = None,
) -> BatchRun:
    """Classical fourth-order Runge-Kutta with ``n_steps`` equal steps for a batch of starts.

    Parameters
    ----------
    fun : callable
        ``fun(t, Y) -> dY/dt`` for states ``Y`` of shape ``(batch, n)`` (vectorised over rows).
    Y0 : array_like, shape (batch, n)
        Starts.
    t_span : (float, float)
        Start and end time.
    n_steps : int
        Equal steps, ``>= 1``.
    valid : callable, optional
        ``valid(Y_new, Y_old) -> bool (batch,)``: a row whose new state is not
        valid keeps its last valid state and stops.  Default: finite rows.
    observe : callable, optional
        ``observe(step, Y, F, alive)`` before each step, with the states, their
        slopes ``F = fun(t, Y)`` and the rows still moving (e.g. to record where
        each flow is slowest).

    Returns
    -------
    BatchRun
        The run ends early when no row is left.
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps: must be an integer >= 1, got {n_steps!r}")
    t0, t1 = (float(t) for t in t_span)
    dt = (t1 - t0) / n_steps
    V = np.array(Y0, dtype=float)
    if V.ndim != 2:
        raise ValueError(f"Y0: need starts of shape (batch, n), got {V.shape}")
    alive = np.ones(len(V), dtype=bool)
    step = 0
    for step in range(n_steps):
        t = t0 + step * dt
        with np.errstate(all="ignore"):
            k1 = fun(t, V)
            if observe is not None:
                observe(step, V, k1, alive)
            k2 = fun(t + 0.5 * dt, V + 0.5 * dt * k1)
            k3 = fun(t + 0.5 * dt, V + 0.5 * dt * k2)
            k4 = fun(t + dt, V + dt * k3)
            Vn = V + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        ok = np.all(np.isfinite(Vn), axis=1) if valid is None else np.asarray(valid(Vn, V), dtype=bool)
        move = alive & ok
        V[move] = Vn[move]
        alive &= ok
        if not alive.any():
            break
    return BatchRun(V, alive, step + 1)
