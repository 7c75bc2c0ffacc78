"""Plateaus, convergence times and the asymptotic error of on-line learning.

Definitions used throughout (times ``alpha`` are examples per input dimension;
rates are per unit ``alpha`` at the model's learning rate):

Plateau length
    Let ``eg_P`` be the generalisation error of the symmetric plateau
    (:func:`phasekit.fixed_points.symmetric_plateau`) and ``band`` a relative
    half-width (default 5 %).  The trajectory *enters* the plateau at the first
    ``alpha_in`` with ``|eg - eg_P| <= band * eg_P`` and *leaves* it at the
    first ``alpha_out > alpha_in`` with ``|eg - eg_P| > band * eg_P``; the
    plateau length is ``alpha_out - alpha_in``.  Both crossings are located by
    event detection on a re-integration of the flow from the trajectory's
    first sample (same solver settings), so the answer does not depend on how
    finely the trajectory was sampled.  Near the plateau the escape component
    grows like ``X exp(lambda_esc alpha)``, so ``alpha_out`` (and the length)
    grows like ``ln(1/X) / lambda_esc + const``.

Convergence time
    The first ``alpha`` with ``eg < threshold``, by the same event location;
    ``inf`` if it never happens within the trajectory.

Asymptotic error
    ``eps_g`` at the fixed point where the flow stops (max-norm of
    ``d state / d alpha`` below ``tol * eta``), refined by
    :func:`phasekit.fixed_points.find_fixed_point`.

The scaling of the plateau length with ``X`` is clean only when the part of
the state that is not along the escape direction has already relaxed.  From a
generic start (``R = X delta``, diagonal ``Q``) that relaxation is algebraic
for erf -- the erf plateau has coinciding students, on the boundary of the
positive-semidefinite cone, and the student-difference modes are marginal --
and biases the fitted slope by a few per cent even at ``X = 1e-10``.  The
``kind="plateau"`` start of :func:`initial_state` (the plateau displaced by
``X`` along its escape eigenvector) isolates the linear escape, and is the
default of :func:`plateau_scaling`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import xarray as xr
from scipy.integrate import solve_ivp
from scipy.optimize import minimize_scalar

from .committee import PSD_TOL, Committee, State, committee_from_parameters
from .dynamics import MAX_NORM, model_from_dataset, state_at
from .parallel import check_workers, parallel_map
from .provenance import provenance_attrs

__all__ = [
    "INITIAL_KINDS",
    "initial_state",
    "PlateauTimes",
    "plateau_times",
    "plateau_length",
    "Crossing",
    "convergence_time",
    "AsymptoticResult",
    "asymptotic_eg",
    "plateau_scaling",
    "convergence_time_vs_eta",
]

INITIAL_KINDS = ("diagonal", "uniform", "plateau")

# Solver settings of the integrations done here.  atol is far below 1e-12
# because the symmetry-breaking components start as small as X ~ 1e-12 and
# decide when the plateau ends.
_RTOL = 1e-10
_ATOL = 1e-14
_METHOD = "DOP853"

# Status codes stored as integers in datasets (netCDF3 has no string scalars).
_PLATEAU_STATUS = ("ok", "not_entered", "not_left", "diverged")
_CROSSING_STATUS = ("reached", "not_reached", "diverged")


# --- helpers -----------------------------------------------------------------------


def _check_model(model: Any) -> Committee:
    if not isinstance(model, Committee):
        raise ValueError(f"model: expected a phasekit.Committee, got {type(model).__name__}")
    return model


def _default_Q0(K: int) -> np.ndarray:
    # Evenly spaced student norms break the student permutation symmetry
    # without favouring any teacher; K = 1 takes the midpoint 0.25.
    return np.array([0.25]) if K == 1 else np.linspace(0.2, 0.3, K)


def _resolve_Q0(K: int, Q0: Any) -> np.ndarray:
    if Q0 is None:
        return _default_Q0(K)
    q = np.asarray(Q0, dtype=float)
    if q.ndim == 0:
        q = np.full(K, float(q))
    if q.shape != (K,):
        raise ValueError(f"Q0: expected a scalar or {K} diagonal entries, got shape {q.shape}")
    if not np.all(np.isfinite(q)) or np.any(q <= 0):
        raise ValueError(f"Q0: student norms must be finite and > 0, got {q.tolist()}")
    return q


def _symmetric_plateau(model: Committee) -> Any:
    from .fixed_points import symmetric_plateau

    fp = symmetric_plateau(model)
    if not getattr(fp, "converged", True):
        raise RuntimeError(
            f"symmetric_plateau did not converge for {model!r} (residual {getattr(fp, 'residual', float('nan')):.3g}); "
            "pass plateau= explicitly"
        )
    return fp


def _plateau_object(model: Committee, plateau: Any) -> Any:
    """A plateau with ``state``, ``eg`` (and ``escape_eigenvalue``, ``escape_vector``)."""
    if plateau is None:
        return _symmetric_plateau(model)
    if not (hasattr(plateau, "state") and hasattr(plateau, "eg")):
        raise ValueError("plateau: expected a FixedPoint (state, eg, escape_eigenvalue, escape_vector)")
    return plateau


def _plateau_eg(model: Committee, plateau: Any) -> float:
    if plateau is None or hasattr(plateau, "eg"):
        egP = float(_plateau_object(model, plateau).eg)
    else:
        try:
            egP = float(plateau)
        except (TypeError, ValueError):
            raise ValueError(f"plateau: expected a FixedPoint or the plateau eps_g, got {plateau!r}") from None
    if not (np.isfinite(egP) and egP > 0):
        raise ValueError(f"plateau: eps_g at the plateau must be finite and > 0, got {egP!r}")
    return egP


def _escape(plateau: Any) -> tuple[float, np.ndarray]:
    lam = getattr(plateau, "escape_eigenvalue", None)
    u = getattr(plateau, "escape_vector", None)
    if lam is None or u is None:
        raise ValueError("plateau: has no escape eigenvalue/vector (not a symmetric plateau?)")
    lam = complex(lam)
    if abs(lam.imag) > 1e-10 * max(1.0, abs(lam)) or not lam.real > 0:
        raise ValueError(f"plateau: escape eigenvalue must be real and > 0, got {lam!r}")
    u = np.real(np.asarray(u, dtype=complex))
    return lam.real, u / np.linalg.norm(u)


def _into_cone(model: Committee, v: np.ndarray) -> State:
    """Nearest state (changing Q only) whose covariance is positive semidefinite.

    With ``R`` fixed the condition is ``S = Q - R T^-1 R^T >= 0``; negative
    eigenvalues of S are clipped.  At a plateau on the cone boundary (erf:
    coinciding students) an R displacement of size X needs a Q correction of
    order X^2, which this supplies.
    """
    s = State.from_vector(v, model.K, model.M)
    base = s.R @ np.linalg.solve(model.T, s.R.T)
    base = 0.5 * (base + base.T)
    w, V = np.linalg.eigh(s.Q - base)
    if w[0] >= 0:
        return s
    Q = base + (V * np.clip(w, 0.0, None)) @ V.T
    return State(s.R, 0.5 * (Q + Q.T))


def _events_cone(model: Committee, max_norm: float) -> list[Callable]:
    def leave_cone(_a: float, v: np.ndarray) -> float:
        return model.min_eigenvalue(v) + 1e3 * PSD_TOL

    def blow_up(_a: float, v: np.ndarray) -> float:
        return max_norm - float(np.max(np.abs(v)))

    for ev in (leave_cone, blow_up):
        ev.terminal = True
        ev.direction = -1
    return [leave_cone, blow_up]


@dataclass
class _Run:
    alpha: float
    v: np.ndarray
    status: str  # "event", "end", "diverged", "failed"
    n_rhs: int = 0


def _run_until(model: Committee, v0: np.ndarray, a0: float, a1: float, event: Callable | None, *,
               rtol: float, atol: float, method: str, max_norm: float = MAX_NORM) -> _Run:
    """Integrate from ``(a0, v0)`` towards ``a1``; stop at the first zero of ``event`` (terminal)."""
    if a1 <= a0:
        return _Run(a0, v0, "end")
    events = _events_cone(model, max_norm)
    if event is not None:
        event.terminal = True
        events.append(event)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        sol = solve_ivp(lambda _a, v: model.rhs_vector(v), (a0, a1), v0, method=method, rtol=rtol, atol=atol,
                        events=events)
    if sol.status == 1:
        fired = [j for j, te in enumerate(sol.t_events) if len(te)]
        j = fired[0]
        a, v = float(sol.t_events[j][0]), sol.y_events[j][0]
        return _Run(a, v, "diverged" if j < 2 else "event", int(sol.nfev))
    v = sol.y[:, -1]
    if sol.status == -1:
        bad = not np.all(np.isfinite(model.rhs_vector(v))) or model.min_eigenvalue(v) < 0
        return _Run(float(sol.t[-1]), v, "diverged" if bad else "failed", int(sol.nfev))
    return _Run(float(sol.t[-1]), v, "end", int(sol.nfev))


def _trajectory_start(traj: xr.Dataset, **overrides: Any) -> tuple[Committee, float, np.ndarray, float, dict[str, Any]]:
    """Model, first sample (alpha, vector), end alpha and solver settings of a trajectory.

    ``overrides`` (rtol, atol, method) replace the trajectory's settings unless None.
    """
    if not isinstance(traj, xr.Dataset) or "R" not in traj or "Q" not in traj:
        raise ValueError("traj: expected a trajectory dataset from phasekit.integrate")
    if traj["R"].dims != ("alpha", "i", "n"):
        raise ValueError(f"traj: expected a single trajectory with R(alpha, i, n), got R{traj['R'].dims}")
    model = model_from_dataset(traj)
    alpha = traj["alpha"].values
    v0 = state_at(traj, 0).to_vector()
    a_end = float(traj.attrs.get("alpha_end", alpha[-1]))

    def setting(key: str, default: Any) -> Any:
        val = traj.attrs.get(key, default)
        return default if val in (None, "none") else val

    settings = {"rtol": float(setting("rtol", 1e-9)), "atol": float(setting("atol", 1e-12)),
                "method": str(setting("method", _METHOD)), "max_norm": float(setting("max_norm", MAX_NORM))}
    # a diverged trajectory ends at the divergence; its re-integration may stop a hair short of it
    settings["diverged"] = traj.attrs.get("status") == "diverged"
    for key, val in overrides.items():
        if val is not None:
            settings[key] = val
    if not (settings["rtol"] > 0 and settings["atol"] > 0):
        raise ValueError(f"rtol, atol: solver tolerances must be > 0, got {settings['rtol']!r}, {settings['atol']!r}")
    return model, float(alpha[0]), v0, a_end, settings


# --- initial states ------------------------------------------------------------------


def initial_state(
    model: Committee,
    X: float,
    *,
    Q0: float | Sequence[float] | None = None,
    kind: str = "diagonal",
    seed: int | None = None,
    plateau: Any = None,
) -> State:
    """A start at distance of order ``X`` from the symmetric subspace.

    Parameters
    ----------
    model : Committee
    X : float
        Symmetry-breaking amplitude, ``>= 0``; ``X = 0`` gives an exactly
        teacher-symmetric start (every ``R_in`` equal).
    Q0 : float or array_like, shape (K,), optional
        Student norms ``Q_ii`` (``> 0``); a scalar sets all of them.  Default:
        evenly spaced from 0.2 to 0.3 (0.25 for K = 1).  Not used by
        ``kind="plateau"``.
    kind : {"diagonal", "uniform", "plateau"}
        ``"diagonal"``: ``R_in = X delta_in``, ``Q = diag(Q0)``.
        ``"uniform"``: ``R_in`` and ``Q_ik`` (``i < k``) i.i.d. uniform on
        ``[0, X]``, ``Q_ii = Q0`` (the random draw is scaled by X, so one seed
        gives the same direction for every X).
        ``"plateau"``: the symmetric plateau displaced by ``X`` along its unit
        escape eigenvector (then Q adjusted at order ``X^2`` where the plateau
        lies on the boundary of the positive-semidefinite cone).
    seed : int, optional
        Seed of ``numpy.random.default_rng`` for ``kind="uniform"``.
    plateau : FixedPoint, optional
        The plateau for ``kind="plateau"``; default
        :func:`phasekit.fixed_points.symmetric_plateau`.

    Returns
    -------
    State

    Raises
    ------
    ValueError
        ``X`` negative or not finite, ``Q0`` not positive, unknown ``kind``,
        or the resulting covariance not positive semidefinite.
    """
    _check_model(model)
    try:
        X = float(X)
    except (TypeError, ValueError):
        raise ValueError(f"X: must be a number >= 0, got {X!r}") from None
    if not (np.isfinite(X) and X >= 0):
        raise ValueError(f"X: symmetry-breaking amplitude must be finite and >= 0, got {X!r}")
    if kind not in INITIAL_KINDS:
        raise ValueError(f"kind: must be one of {INITIAL_KINDS}, got {kind!r}")
    K, M = model.K, model.M
    if kind == "plateau":
        if Q0 is not None:
            raise ValueError("Q0: not used by kind='plateau' (the plateau fixes Q)")
        fp = _plateau_object(model, plateau)
        _, u = _escape(fp)
        state = _into_cone(model, fp.state.to_vector() + X * u)
        what = "X"
    else:
        q0 = _resolve_Q0(K, Q0)
        if kind == "diagonal":
            R = X * np.eye(K, M)
            Q = np.diag(q0)
        else:
            rng = np.random.default_rng(seed)
            R = X * rng.uniform(size=(K, M))
            off = np.triu(X * rng.uniform(size=(K, K)), 1)
            Q = np.diag(q0) + off + off.T
        state = State(R, Q)
        what = "X, Q0"
    lam = model.min_eigenvalue(state)
    if lam < -PSD_TOL:
        raise ValueError(
            f"{what}: the initial covariance [[Q, R], [R^T, T]] is not positive semidefinite "
            f"(smallest eigenvalue / scale = {lam:.3g}); decrease X or increase Q0"
        )
    return state


# --- plateau length --------------------------------------------------------------------


@dataclass(frozen=True)
class PlateauTimes:
    """Entry into and exit from the eps_g band around the plateau.

    Attributes
    ----------
    entry, exit : float
        ``alpha`` of entering / leaving the band (``nan`` if never entered,
        ``exit = inf`` if the trajectory ends inside the band).
    length : float
        ``exit - entry`` (units of alpha); ``nan`` / ``inf`` as above.
    status : str
        ``"ok"``, ``"not_entered"``, ``"not_left"`` or ``"diverged"``.
    eg_plateau : float
        Plateau value of eps_g used.
    band : float
        Relative half-width of the band.
    """

    entry: float
    exit: float
    length: float
    status: str
    eg_plateau: float
    band: float


def _band_times(model: Committee, v0: np.ndarray, a0: float, a_end: float, egP: float, band: float,
                settings: dict[str, Any]) -> PlateauTimes:
    half2 = (band * egP) ** 2

    def outside(_a: float, v: np.ndarray) -> float:
        # smooth in v (a square, not an absolute value) so the root finder is happy
        return float((model.eg_vector(v) - egP) ** 2 - half2)

    kw = dict(rtol=settings["rtol"], atol=settings["atol"], method=settings["method"],
              max_norm=settings.get("max_norm", MAX_NORM))
    nan, inf = float("nan"), float("inf")
    if outside(a0, v0) <= 0:
        a_in, v_in = a0, v0
    else:
        outside.direction = -1
        run = _run_until(model, v0, a0, a_end, outside, **kw)
        if run.status != "event":
            status = "diverged" if run.status == "diverged" or settings.get("diverged", False) else "not_entered"
            return PlateauTimes(nan, nan, nan, status, egP, band)
        a_in, v_in = run.alpha, run.v

    def leave(_a: float, v: np.ndarray) -> float:
        return outside(_a, v)

    leave.direction = 1
    run = _run_until(model, v_in, a_in, a_end, leave, **kw)
    if run.status == "event":
        return PlateauTimes(a_in, run.alpha, run.alpha - a_in, "ok", egP, band)
    if run.status == "diverged" or settings.get("diverged", False):
        return PlateauTimes(a_in, nan, nan, "diverged", egP, band)
    return PlateauTimes(a_in, inf, inf, "not_left", egP, band)


def _check_band(band: float) -> float:
    band = float(band)
    if not (0 < band < 1):
        raise ValueError(f"band: relative half-width must be in (0, 1), got {band!r}")
    return band


def plateau_times(traj: xr.Dataset, plateau: Any = None, *, band: float = 0.05, rtol: float | None = None,
                  atol: float | None = None, method: str | None = None) -> PlateauTimes:
    """Entry into and exit from the plateau of a trajectory (see the module docstring).

    Parameters
    ----------
    traj : xarray.Dataset
        A single trajectory from :func:`phasekit.integrate`.
    plateau : FixedPoint or float, optional
        The plateau (or just its eps_g, ``> 0``); default
        :func:`phasekit.fixed_points.symmetric_plateau` of the trajectory's model.
    band : float
        Relative half-width of the eps_g band, in ``(0, 1)``.
    rtol, atol, method : optional
        Solver settings of the re-integration; default: the trajectory's own.

    Returns
    -------
    PlateauTimes
        Crossings located to solver tolerance by re-integrating from the first
        sample with the trajectory's solver settings (independent of the sampling).
    """
    band = _check_band(band)
    model, a0, v0, a_end, settings = _trajectory_start(traj, rtol=rtol, atol=atol, method=method)
    egP = _plateau_eg(model, plateau)
    return _band_times(model, v0, a0, a_end, egP, band, settings)


def plateau_length(traj: xr.Dataset, plateau: Any = None, *, band: float = 0.05, rtol: float | None = None,
                   atol: float | None = None, method: str | None = None) -> float:
    """Time (units of alpha) spent within ``band * eg_P`` of the plateau's eps_g.

    Parameters and definition as in :func:`plateau_times`; returns its
    ``length``: ``exit - entry``, ``nan`` when the trajectory never comes near
    the plateau (or diverged), ``inf`` when it ends on the plateau.
    """
    return plateau_times(traj, plateau, band=band, rtol=rtol, atol=atol, method=method).length


# --- convergence time ------------------------------------------------------------------


@dataclass(frozen=True)
class Crossing:
    """First time eps_g falls below a threshold.

    Attributes
    ----------
    alpha : float
        The crossing (units of alpha), ``inf`` when not reached.
    status : str
        ``"reached"``, ``"not_reached"`` (trajectory ended first) or
        ``"diverged"`` (the flow left the cone or blew up first).
    threshold : float
    """

    alpha: float
    status: str
    threshold: float


def _first_crossing(model: Committee, v0: np.ndarray, a0: float, a_end: float, threshold: float,
                    settings: dict[str, Any]) -> Crossing:
    if float(model.eg_vector(v0)) < threshold:
        return Crossing(a0, "reached", threshold)

    def below(_a: float, v: np.ndarray) -> float:
        return float(model.eg_vector(v)) - threshold

    below.direction = -1
    run = _run_until(model, v0, a0, a_end, below, rtol=settings["rtol"], atol=settings["atol"],
                     method=settings["method"], max_norm=settings.get("max_norm", MAX_NORM))
    if run.status == "event":
        return Crossing(run.alpha, "reached", threshold)
    diverged = run.status == "diverged" or (run.status == "end" and settings.get("diverged", False))
    return Crossing(float("inf"), "diverged" if diverged else "not_reached", threshold)


def _check_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if not (np.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold: must be finite and > 0, got {threshold!r}")
    return threshold


def convergence_time(traj: xr.Dataset, threshold: float, *, full_output: bool = False, rtol: float | None = None,
                     atol: float | None = None, method: str | None = None) -> float | Crossing:
    """First alpha at which eps_g falls below ``threshold``.

    The crossing is located by event detection while re-integrating the flow
    from the trajectory's first sample with its own solver settings, so it is
    exact to solver tolerance and does not depend on the sampling.

    Parameters
    ----------
    traj : xarray.Dataset
        A single trajectory from :func:`phasekit.integrate`.
    threshold : float
        ``> 0``.
    full_output : bool
        Return a :class:`Crossing` (alpha and status) instead of the float.
    rtol, atol, method : optional
        Solver settings of the re-integration; default: the trajectory's own.
        The crossing is as accurate as eps_g, whose absolute error is about
        ``rtol`` times the order parameters: relative error ~ ``rtol / threshold``.

    Returns
    -------
    float or Crossing
        The crossing time in units of alpha; ``inf`` when eps_g stays above
        ``threshold`` up to the trajectory's end (status ``"not_reached"``) or
        the flow diverged first (``"diverged"``).
    """
    threshold = _check_threshold(threshold)
    model, a0, v0, a_end, settings = _trajectory_start(traj, rtol=rtol, atol=atol, method=method)
    res = _first_crossing(model, v0, a0, a_end, threshold, settings)
    return res if full_output else res.alpha


# --- asymptotic error --------------------------------------------------------------------


@dataclass
class AsymptoticResult:
    """Where the flow ends.

    Attributes
    ----------
    eg : float
        eps_g at the fixed point (``converged``), at the last state
        (``not_converged``) or ``nan`` (``diverged``).
    state : State
        The fixed point, or the last valid state.
    status : str
        ``"converged"``, ``"diverged"`` or ``"not_converged"``.
    fixed_point : FixedPoint or None
        Refined fixed point with its linearisation (``None`` unless converged).
        A start on the stable manifold of a saddle (e.g. an exactly symmetric
        start) converges to that saddle: check ``fixed_point.stable``.
    alpha : float
        Where the integration stopped.
    message : str
    """

    eg: float
    state: State
    status: str
    fixed_point: Any
    alpha: float
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def asymptotic_eg(
    model: Committee,
    state0: State,
    *,
    tol: float = 1e-6,
    alpha_max: float | None = None,
    rtol: float = _RTOL,
    atol: float = _ATOL,
    method: str = _METHOD,
    max_norm: float = MAX_NORM,
) -> AsymptoticResult:
    """Integrate until the flow stops, then refine the end point as a fixed point.

    Parameters
    ----------
    model : Committee
    state0 : State
    tol : float
        The flow counts as stopped when ``max |d state / d alpha| <= tol * eta``
        (a speed per unit ``eta alpha``, so the criterion does not depend on eta
        at first order).  The end point is then polished by Newton's method, so
        ``tol`` only needs to bring the flow into Newton's basin.  Much smaller
        values are expensive for ReLU: near the perfect solution its
        right-hand side has square-root (non-analytic) terms whose rounding
        noise forces tiny solver steps.
    alpha_max : float, optional
        Give up (``not_converged``) after this alpha; default ``1e4 / eta``.
    rtol, atol, method : solver settings.
    max_norm : float
        An order parameter beyond this counts as divergence.

    Returns
    -------
    AsymptoticResult

    Notes
    -----
    The stop is an event of the integration (the speed crossing ``tol * eta``).
    :func:`phasekit.fixed_points.find_fixed_point` then refines the end state;
    if it fails, the flow continues with a 100 times smaller ``tol`` (twice at
    most).  If the fixed point is unstable (the trajectory may only be passing
    a saddle such as a plateau), the flow continues for ``40 / Re(lambda_max)``
    -- long enough for a deviation along the unstable direction, even one of
    rounding size, to grow to order one -- and the run counts as converged to
    the saddle only if it is still within ``1e-3`` of it.
    """
    from .fixed_points import find_fixed_point

    _check_model(model)
    model.validate_state(state0, "state0")
    tol = float(tol)
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol: must be finite and > 0, got {tol!r}")
    eta = model.eta
    alpha_max = 1e4 / eta if alpha_max is None else float(alpha_max)
    if not (np.isfinite(alpha_max) and alpha_max > 0):
        raise ValueError(f"alpha_max: must be finite and > 0, got {alpha_max!r}")
    kw = dict(rtol=rtol, atol=atol, method=method, max_norm=max_norm)
    K, M = model.K, model.M
    v = state0.to_vector()
    alpha = 0.0
    saddles = 0
    retries = 0
    speed_tol = tol * eta

    def result(status: str, message: str, fp: Any = None, v_end: np.ndarray | None = None) -> AsymptoticResult:
        if fp is not None:
            return AsymptoticResult(float(fp.eg), fp.state, status, fp, alpha, message, {"saddles_passed": saddles})
        eg = float("nan") if status == "diverged" else float(model.eg_vector(v_end))
        return AsymptoticResult(eg, State.from_vector(v_end, K, M), status, None, alpha, message,
                                {"saddles_passed": saddles})

    while True:
        if float(np.abs(model.rhs_vector(v)).max()) > speed_tol:
            def stopped(_a: float, y: np.ndarray, speed_tol: float = speed_tol) -> float:
                return float(np.abs(model.rhs_vector(y)).max()) - speed_tol

            stopped.direction = -1
            run = _run_until(model, v, alpha, alpha_max, stopped, **kw)
            if run.status in ("diverged", "failed"):
                alpha = run.alpha
                return result("diverged", f"the flow {run.status} at alpha = {run.alpha:.6g}", v_end=v)
            v, alpha = run.v, run.alpha
            if run.status == "end":
                speed = float(np.abs(model.rhs_vector(v)).max())
                return result("not_converged",
                              f"max |d state/d alpha| = {speed:.3g} > tol * eta at alpha_max = {alpha_max:.6g}",
                              v_end=v)
        fp = find_fixed_point(model, v)
        close = float(np.abs(fp.state.to_vector() - v).max()) <= 1e-3 * (1.0 + float(np.abs(v).max()))
        if not (fp.converged and close):
            if retries >= 2 or speed_tol < 1e-14:
                return result("not_converged", "the flow stopped but find_fixed_point did not converge "
                              f"(residual {fp.residual:.3g})", v_end=v)
            retries += 1
            speed_tol /= 100.0
            continue
        if fp.n_unstable == 0:
            return result("converged", f"{fp.kind} fixed point", fp=fp)
        # A saddle (e.g. a plateau): see the Notes.
        lam_u = float(np.max(np.real(fp.eigenvalues)))
        vf = fp.state.to_vector()
        radius = 1e-3 * (1.0 + float(np.abs(vf).max()))

        def away(_a: float, y: np.ndarray, vf: np.ndarray = vf, radius: float = radius) -> float:
            return float(np.abs(y - vf).max()) - radius

        away.direction = 1
        hold = alpha + 40.0 / lam_u
        run = _run_until(model, v, alpha, min(hold, alpha_max), away, **kw)
        if run.status in ("diverged", "failed"):
            alpha = run.alpha
            return result("diverged", f"the flow {run.status} at alpha = {run.alpha:.6g}", v_end=v)
        if run.status == "end":
            alpha = run.alpha
            if hold > alpha_max:
                return result("not_converged", "still near a saddle at alpha_max", v_end=run.v)
            return result("converged", f"converged to a {fp.kind} fixed point (on its stable manifold)", fp=fp)
        saddles += 1
        v, alpha = run.v, run.alpha


# --- plateau scaling -----------------------------------------------------------------------


def _scaling_point(item: tuple) -> tuple[float, float, str]:
    """Entry, exit and status for one X (module level: runs on dask workers)."""
    params, X, kind, Q0, seed, plateau_data, band, settings, alpha_max = item
    model = committee_from_parameters(params)
    plateau = _PlateauData(*plateau_data)
    state0 = initial_state(model, X, Q0=Q0, kind=kind, seed=seed, plateau=plateau)
    pt = _band_times(model, state0.to_vector(), 0.0, alpha_max, plateau.eg, band, settings)
    return pt.entry, pt.exit, pt.status


@dataclass(frozen=True)
class _PlateauData:
    """Picklable stand-in for a FixedPoint: what the plateau functions use."""

    vector: np.ndarray
    K: int
    M: int
    eg: float
    escape_eigenvalue: float
    escape_vector: np.ndarray

    @property
    def state(self) -> State:
        return State.from_vector(self.vector, self.K, self.M)


def _attrs(name: str, units: str) -> dict[str, str]:
    return {"long_name": name, "units": units}


def plateau_scaling(
    model: Committee,
    X: Sequence[float] = tuple(np.logspace(-2, -12, 11)),
    *,
    kind: str = "plateau",
    plateau: Any = None,
    band: float = 0.05,
    Q0: float | Sequence[float] | None = None,
    seed: int | None = 0,
    fit_range: tuple[float, float] | None = None,
    alpha_max: float | None = None,
    rtol: float = _RTOL,
    atol: float = _ATOL,
    method: str = _METHOD,
    client: Any = None,
    n_workers: int | None = None,
) -> xr.Dataset:
    """Plateau length against the initial distance X from the symmetric subspace.

    One trajectory per X from :func:`initial_state` (``kind``), its plateau
    length (:func:`plateau_times`), a least-squares fit
    ``alpha_P = a ln(1/X) + b`` and the slope predicted by the linearisation,
    ``1 / lambda_esc``.

    Parameters
    ----------
    model : Committee
    X : sequence of float
        Amplitudes, each in ``(0, 0.1]``.
    kind : {"plateau", "diagonal", "uniform"}
        Start (see :func:`initial_state`).  ``"plateau"`` (default) displaces
        the plateau along the escape eigenvector, so X is the distance from
        the symmetric subspace measured along the escape direction and the
        slope is set by ``lambda_esc`` alone; the others start far from the
        plateau, whose approach (algebraic for erf) biases the slope.
    plateau : FixedPoint, optional
        Default :func:`phasekit.fixed_points.symmetric_plateau`.
    band : float
        Relative half-width of the eps_g band defining the plateau.
    Q0, seed : see :func:`initial_state` (``kind`` ``"diagonal"``/``"uniform"``).
    fit_range : (float, float), optional
        Fit only X within ``[min, max]``; default all X with a finite length.
    alpha_max : float, optional
        Integration limit per X; default ``2 ln(1/X) / lambda_esc + 1000 / eta``.
    rtol, atol, method : solver settings.
    client, n_workers : see :func:`phasekit.parallel.parallel_map` (default: in this
        process, or on the active dask client).

    Returns
    -------
    xarray.Dataset
        Coordinate ``X`` (and ``ln_inv_X``); variables ``entry``, ``exit``,
        ``plateau_length`` (units alpha), ``eta_plateau_length`` (units
        eta alpha), ``status`` (0 ok, 1 not_entered, 2 not_left, 3 diverged),
        ``in_fit`` (0/1); scalars ``lambda_esc`` (1/alpha, at the model's eta),
        ``lambda_esc_eta`` (per unit eta alpha), ``predicted_slope``
        (``1/lambda_esc``, alpha), ``fitted_slope``, ``fitted_slope_stderr``,
        ``fitted_intercept`` (alpha), ``slope_ratio`` (fitted / predicted),
        ``eg_plateau``.
    """
    _check_model(model)
    check_workers(n_workers)  # before the plateau is computed
    X = np.atleast_1d(np.asarray(X, dtype=float))
    if X.ndim != 1 or X.size == 0 or not np.all(np.isfinite(X)) or np.any(X <= 0) or np.any(X > 0.1):
        raise ValueError(f"X: amplitudes must be a non-empty 1-D sequence in (0, 0.1], got {X!r}")
    if kind not in INITIAL_KINDS:
        raise ValueError(f"kind: must be one of {INITIAL_KINDS}, got {kind!r}")
    band = _check_band(band)
    fp = _plateau_object(model, plateau)
    lam, u = _escape(fp)
    egP = float(fp.eg)
    if fit_range is not None:
        lo, hi = sorted(float(x) for x in fit_range)
        if not (lo > 0):
            raise ValueError(f"fit_range: bounds must be > 0, got {fit_range!r}")
    else:
        lo, hi = 0.0, np.inf
    if alpha_max is not None and not (np.isfinite(alpha_max) and alpha_max > 0):
        raise ValueError(f"alpha_max: must be finite and > 0, got {alpha_max!r}")
    pdata = (fp.state.to_vector(), model.K, model.M, egP, lam, u)
    settings = {"rtol": rtol, "atol": atol, "method": method, "max_norm": MAX_NORM}
    params = model.parameters()
    q0 = None if Q0 is None else np.asarray(Q0, dtype=float).tolist()
    items = []
    for x in X:
        amax = float(alpha_max) if alpha_max is not None else 2.0 * math.log(1.0 / x) / lam + 1e3 / model.eta
        items.append((params, float(x), kind, q0, seed, pdata, band, settings, amax))
    results = parallel_map(_scaling_point, items, client=client, n_workers=n_workers)
    entry = np.array([r[0] for r in results])
    exit_ = np.array([r[1] for r in results])
    status = np.array([_PLATEAU_STATUS.index(r[2]) for r in results], dtype=np.int32)
    length = exit_ - entry
    L = np.log(1.0 / X)
    in_fit = np.isfinite(length) & (X >= lo) & (X <= hi)
    slope = intercept = stderr = np.nan
    if in_fit.sum() >= 2:
        coef, cov = np.polyfit(L[in_fit], length[in_fit], 1, cov=True) if in_fit.sum() > 3 else \
            (np.polyfit(L[in_fit], length[in_fit], 1), np.full((2, 2), np.nan))
        slope, intercept = float(coef[0]), float(coef[1])
        stderr = float(np.sqrt(cov[0, 0])) if np.isfinite(cov[0, 0]) else np.nan
    predicted = 1.0 / lam
    eta = model.eta
    alpha_u, eta_alpha_u = "alpha", "eta alpha"
    ds = xr.Dataset(
        {
            "entry": ("X", entry, _attrs("entry into the plateau band alpha_in", alpha_u)),
            "exit": ("X", exit_, _attrs("exit from the plateau band alpha_out", alpha_u)),
            "plateau_length": ("X", length, _attrs("plateau length alpha_P", alpha_u)),
            "eta_plateau_length": ("X", eta * length, _attrs("plateau length eta alpha_P", eta_alpha_u)),
            "status": ("X", status, {**_attrs("plateau status", "1"),
                                     "flag_values": list(range(len(_PLATEAU_STATUS))),
                                     "flag_meanings": " ".join(_PLATEAU_STATUS)}),
            "in_fit": ("X", in_fit.astype(np.int32), _attrs("point used in the fit (1) or not (0)", "1")),
            "lambda_esc": ((), lam, _attrs("escape eigenvalue lambda_esc at the model's eta", "1/alpha")),
            "lambda_esc_eta": ((), lam / eta, _attrs("escape eigenvalue per unit eta alpha", "1/(eta alpha)")),
            "predicted_slope": ((), predicted, _attrs("predicted slope 1/lambda_esc", alpha_u)),
            "fitted_slope": ((), slope, _attrs("fitted slope a of alpha_P = a ln(1/X) + b", alpha_u)),
            "fitted_slope_stderr": ((), stderr, _attrs("standard error of the fitted slope", alpha_u)),
            "fitted_intercept": ((), intercept, _attrs("fitted intercept b", alpha_u)),
            "slope_ratio": ((), slope / predicted, _attrs("fitted slope / predicted slope", "1")),
            "eg_plateau": ((), egP, _attrs("eps_g at the symmetric plateau", "1")),
        },
        coords={
            "X": ("X", X, _attrs("initial distance from the symmetric subspace X", "1")),
            "ln_inv_X": ("X", L, _attrs("ln(1/X)", "1")),
        },
    )
    provenance = {"model": params, "X": X, "kind": kind, "band": band, "Q0": q0, "seed": seed,
                  "fit_range": None if fit_range is None else [lo, hi], "alpha_max": alpha_max,
                  "solver": settings}
    ds.attrs.update(provenance_attrs(provenance))
    ds.attrs.update(model=json.dumps(params), K=model.K, M=model.M, activation=params["activation"],
                    eta=eta, second_order=int(model.second_order), kind=kind, band=band,
                    n_fit=int(in_fit.sum()), fit_X_min=float(X[in_fit].min()) if in_fit.any() else np.nan,
                    fit_X_max=float(X[in_fit].max()) if in_fit.any() else np.nan)
    return ds


# --- convergence time against eta ------------------------------------------------------------


def _crossing_point(item: tuple) -> tuple[float, str]:
    params, eta, v0, threshold, alpha_max, settings = item
    model = committee_from_parameters({**params, "eta": eta})
    res = _first_crossing(model, np.asarray(v0), 0.0, alpha_max, threshold, settings)
    return res.alpha, res.status


def convergence_time_vs_eta(
    model: Committee,
    state0: State,
    eta: Sequence[float],
    *,
    threshold: float = 1e-3,
    eta_alpha_max: float = 2e3,
    refine: bool = True,
    eta_c: float | None = None,
    rtol: float = _RTOL,
    atol: float = _ATOL,
    method: str = _METHOD,
    client: Any = None,
    n_workers: int | None = None,
) -> xr.Dataset:
    """Convergence time (first alpha with eps_g < threshold) as a function of eta.

    Parameters
    ----------
    model : Committee
        Everything but eta is taken from it.
    state0 : State
        Common start.
    eta : sequence of float
        Learning rates, ``> 0``.
    threshold : float
        eps_g threshold, ``> 0``.
    eta_alpha_max : float
        Integration limit in units of ``eta alpha`` (``alpha_max = eta_alpha_max / eta``).
    refine : bool
        Refine the minimiser of the grid by bounded Brent minimisation
        between the grid neighbours of the smallest time.
    eta_c : float, optional
        Critical learning rate to record (for plots); default
        :func:`phasekit.fixed_points.critical_eta` when the model keeps the
        eta^2 term, has K = M and no noise, else nan.
    rtol, atol, method : solver settings.
    client, n_workers : see :func:`phasekit.parallel.parallel_map` (default: in this
        process, or on the active dask client).

    Returns
    -------
    xarray.Dataset
        Coordinate ``eta``; variables ``convergence_time`` (alpha, inf when
        not reached), ``eta_convergence_time`` (eta alpha), ``status``
        (0 reached, 1 not_reached, 2 diverged); scalars ``eta_opt``,
        ``convergence_time_min`` (alpha) and ``eta_c``.
    """
    _check_model(model)
    model.validate_state(state0, "state0")
    check_workers(n_workers)
    threshold = _check_threshold(threshold)
    eta = np.atleast_1d(np.asarray(eta, dtype=float))
    if eta.ndim != 1 or eta.size == 0 or not np.all(np.isfinite(eta)) or np.any(eta <= 0):
        raise ValueError(f"eta: learning rates must be a non-empty 1-D sequence of finite values > 0, got {eta!r}")
    if not (np.isfinite(eta_alpha_max) and eta_alpha_max > 0):
        raise ValueError(f"eta_alpha_max: must be finite and > 0, got {eta_alpha_max!r}")
    eta = np.sort(eta)
    params = model.parameters()
    settings = {"rtol": rtol, "atol": atol, "method": method, "max_norm": MAX_NORM}
    v0 = state0.to_vector()

    def item(e: float) -> tuple:
        return (params, float(e), v0, threshold, eta_alpha_max / float(e), settings)

    results = parallel_map(_crossing_point, [item(e) for e in eta], client=client, n_workers=n_workers)
    t = np.array([r[0] for r in results])
    status = np.array([_CROSSING_STATUS.index(r[1]) for r in results], dtype=np.int32)
    eta_opt = t_min = np.nan
    if np.any(np.isfinite(t)):
        j = int(np.nanargmin(np.where(np.isfinite(t), t, np.nan)))
        eta_opt, t_min = float(eta[j]), float(t[j])
        if refine and 0 < j < len(eta) - 1 and np.isfinite(t[j - 1]) and np.isfinite(t[j + 1]):
            def f(e: float) -> float:
                return _crossing_point(item(e))[0]

            res = minimize_scalar(f, bounds=(eta[j - 1], eta[j + 1]), method="bounded",
                                  options={"xatol": 1e-6 * eta[j]})
            if np.isfinite(res.fun) and res.fun <= t_min:
                eta_opt, t_min = float(res.x), float(res.fun)
    if eta_c is None:
        eta_c = np.nan
        if model.second_order and model.noise == 0 and model.K == model.M:
            from .fixed_points import critical_eta

            eta_c = float(critical_eta(model))
    ds = xr.Dataset(
        {
            "convergence_time": ("eta", t, _attrs(f"convergence time alpha (eps_g < {threshold:g})", "alpha")),
            "eta_convergence_time": ("eta", eta * t,
                                     _attrs(f"convergence time eta alpha (eps_g < {threshold:g})", "eta alpha")),
            "status": ("eta", status, {**_attrs("crossing status", "1"),
                                       "flag_values": list(range(len(_CROSSING_STATUS))),
                                       "flag_meanings": " ".join(_CROSSING_STATUS)}),
            "eta_opt": ((), eta_opt, _attrs("learning rate minimising the convergence time", "1")),
            "convergence_time_min": ((), t_min, _attrs("minimal convergence time alpha", "alpha")),
            "eta_c": ((), float(eta_c), _attrs("critical learning rate eta_c", "1")),
        },
        coords={"eta": ("eta", eta, _attrs("learning rate eta", "1"))},
    )
    ds.attrs.update(provenance_attrs({"model": params, "state0": v0, "eta": eta, "threshold": threshold,
                                      "eta_alpha_max": eta_alpha_max, "solver": settings}))
    ds.attrs.update(model=json.dumps(params), K=model.K, M=model.M, activation=params["activation"],
                    second_order=int(model.second_order), threshold=threshold,
                    state0=json.dumps(v0.tolist()))
    return ds
