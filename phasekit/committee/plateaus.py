"""Plateau lengths and convergence times of trajectories.

Let ``eg_P`` be the generalisation error of the symmetric plateau and ``band``
a relative half-width (default 5 %).  A trajectory *enters* the plateau at
the first ``alpha_in`` with ``|eg - eg_P| <= band * eg_P`` and *leaves* it at
the first ``alpha_out > alpha_in`` with ``|eg - eg_P| > band * eg_P``; the
plateau length is ``alpha_out - alpha_in``.  The convergence time is the first
``alpha`` with ``eg < threshold``.  Both are located by event detection on a
re-integration of the flow from the trajectory's first sample (same solver
settings), so they do not depend on how finely the trajectory was sampled.
Near the plateau the escape component grows like ``X exp(lambda_esc alpha)``,
so ``alpha_out`` grows like ``ln(1/X) / lambda_esc + const``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import xarray as xr
from scipy.integrate import solve_ivp

from .dynamics import MAX_NORM, model_from_dataset, state_at
from .model import PSD_TOL, Committee

__all__ = ['Crossing', 'PlateauTimes', 'convergence_time', 'plateau_length', 'plateau_times']


# Solver settings of the integrations done here.  atol is far below 1e-12
# because the symmetry-breaking components start as small as X ~ 1e-12 and
# decide when the plateau ends.
_RTOL = 1e-10


_ATOL = 1e-14


_METHOD = "DOP853"


# Status codes stored as integers in datasets (netCDF3 has no string scalars).
_PLATEAU_STATUS = ("ok", "not_entered", "not_left", "diverged")


_CROSSING_STATUS = ("reached", "not_reached", "diverged")


def _check_model(model: Any) -> Committee:
    if not isinstance(model, Committee):
        raise ValueError(f"model: expected a phasekit.Committee, got {type(model).__name__}")
    return model


def _symmetric_plateau(model: Committee) -> Any:
    from .landmarks import symmetric_plateau

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
        :func:`phasekit.committee.landmarks.symmetric_plateau` of the trajectory's model.
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
