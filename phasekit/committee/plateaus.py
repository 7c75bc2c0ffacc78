"""Plateau lengths and convergence times of trajectories.

Let ``eg_P`` be the generalisation error of the symmetric plateau and ``band``
a relative half-width (default 5 %).  A trajectory *enters* the plateau at
the first ``alpha_in`` with ``|eg - eg_P| <= band * eg_P`` and *leaves* it at
the first ``alpha_out > alpha_in`` with ``|eg - eg_P| > band * eg_P``; the
plateau length is ``alpha_out - alpha_in``.  The convergence time is the first
``alpha`` with ``eg < threshold``.  Both are located by event detection on a
re-integration of the flow from the trajectory's first sample with the solver
settings the trajectory stores (:func:`phasekit.committee.dynamics.integrate`
records them), so they do not depend on how finely the trajectory was
sampled; ``solver=`` changes them.  The results are :class:`PlateauTimes` and
:class:`Crossing` objects with a status from
:data:`phasekit.core.results.STATUS` (``ok``, ``not_reached``, ``diverged``,
``failed``) and a one-line message.
Near the plateau the escape component grows like ``X exp(lambda_esc alpha)``,
so ``alpha_out`` grows like ``ln(1/X) / lambda_esc + const``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

import numpy as np
import xarray as xr

from ..core.ode import Event
from ..core.options import SolverOptions, coerce_options
from ..core.results import ScalarResult
from .dynamics import _trajectory_solver, model_from_dataset, run_flow, state_at
from .model import Committee

__all__ = ['Crossing', 'PlateauTimes', 'convergence_time', 'plateau_length', 'plateau_times']


def _symmetric_plateau(model: Committee) -> Any:
    from .landmarks import symmetric_plateau

    fp = symmetric_plateau(model)
    if not fp.success:
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
        raise ValueError("plateau: expected a CommitteeFixedPoint (state, eg, escape_eigenvalue, escape_vector)")
    return plateau


def _plateau_eg(model: Committee, plateau: Any) -> float:
    if plateau is None:
        plateau = _symmetric_plateau(model)
    if isinstance(getattr(plateau, "extra", None), dict) and "subspace" in plateau.extra:
        egP = float(model.eg_vector(plateau.vector))  # a reduced model's fixed point, in its own coordinates
    elif hasattr(plateau, "eg"):
        egP = float(_plateau_object(model, plateau).eg)
    else:
        try:
            egP = float(plateau)
        except (TypeError, ValueError):
            raise ValueError(f"plateau: expected a CommitteeFixedPoint or the plateau eps_g, got {plateau!r}") from None
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


@dataclass
class _Run:
    alpha: float
    v: np.ndarray
    status: str  # "event", "end", "diverged", "failed"
    n_rhs: int = 0


def _run_until(model: Committee, v0: np.ndarray, a0: float, a1: float, event: Callable | None, *,
               solver: SolverOptions) -> _Run:
    """Integrate from ``(a0, v0)`` towards ``a1``; stop at the first zero of ``event`` (terminal)."""
    if a1 <= a0:
        return _Run(a0, v0, "end")
    events = [] if event is None else [Event("event", event, direction=getattr(event, "direction", 0))]
    run = run_flow(model, v0, (a0, a1), solver=solver, events=events)
    status = {"converged": "event", "ok": "end"}.get(run.status, run.status)
    return _Run(run.t_end, run.y_end, status, run.nfev)


@dataclass(frozen=True)
class _Start:
    """Where a re-integration of a trajectory starts, and with which solver."""

    model: Committee
    alpha: float
    v: np.ndarray
    alpha_end: float
    solver: SolverOptions
    diverged: bool  # the trajectory diverged: its re-integration may stop a hair short of it


def _resolve_solver(stored: SolverOptions, solver: Any) -> SolverOptions:
    """``solver`` given to a re-integration: ``None`` keeps ``stored``, a mapping changes the fields it names."""
    if solver is None:
        return stored
    if isinstance(solver, Mapping):
        coerce_options(dict(solver), SolverOptions, "solver")  # names the unknown keys
        return stored.replace(**solver)
    return coerce_options(solver, SolverOptions, "solver")


def _trajectory_start(traj: xr.Dataset, solver: Any = None) -> _Start:
    """Model, first sample, end alpha and solver settings of a trajectory (``solver`` as :func:`_resolve_solver`)."""
    if not isinstance(traj, xr.Dataset) or "R" not in traj or "Q" not in traj:
        raise ValueError("traj: expected a trajectory dataset from phasekit.integrate")
    reduced = "subspace" in traj.attrs  # a reduced model's trajectory: R(alpha), S, Q, C
    if traj["R"].dims != (("alpha",) if reduced else ("alpha", "i", "n")):
        expected = "R(alpha) (reduced)" if reduced else "R(alpha, i, n)"
        raise ValueError(f"traj: expected a single trajectory with {expected}, got R{traj['R'].dims}")
    model = model_from_dataset(traj)
    alpha = traj["alpha"].values
    v0 = state_at(traj, 0) if reduced else state_at(traj, 0).to_vector()
    a_end = float(traj.attrs.get("alpha_end", alpha[-1]))
    opts = _resolve_solver(_trajectory_solver(traj), solver)
    return _Start(model, float(alpha[0]), v0, a_end, opts, traj.attrs.get("status") == "diverged")


@dataclass(frozen=True, kw_only=True)
class PlateauTimes(ScalarResult):
    """Entry into and exit from the eps_g band around the plateau.

    ``float(times)`` is the length.

    Attributes
    ----------
    entry, exit : float
        ``alpha`` of entering / leaving the band (``entry = nan`` if never
        entered, ``exit = inf`` if the trajectory ends inside the band, ``nan``
        if it diverged or the solver failed there).
    length : float
        ``exit - entry`` (units of alpha); ``nan`` / ``inf`` as above.
    eg_plateau : float
        Plateau value of eps_g used.
    band : float
        Relative half-width of the band.
    n_rhs : int
        Right-hand-side evaluations of the re-integration.
    status : str
        ``"ok"`` (entered and left), ``"not_reached"`` (never entered, or
        still inside at the end of the trajectory: ``message`` says which),
        ``"diverged"`` or ``"failed"`` (solver failure).
    message : str
    """

    value_field: ClassVar[str] = "length"

    entry: float
    exit: float
    length: float
    eg_plateau: float
    band: float
    n_rhs: int = 0


def _band_times(model: Committee, v0: np.ndarray, a0: float, a_end: float, egP: float, band: float,
                solver: SolverOptions, diverged: bool = False) -> PlateauTimes:
    half2 = (band * egP) ** 2

    def outside(_a: float, v: np.ndarray) -> float:
        # smooth in v (a square, not an absolute value) so the root finder is happy
        return float((model.eg_vector(v) - egP) ** 2 - half2)

    nan, inf = math.nan, math.inf
    common = {"eg_plateau": egP, "band": band}
    where = f"the band eps_g = {egP:.6g} (1 +- {band:g})"
    n_rhs = 0
    if outside(a0, v0) <= 0:
        a_in, v_in = a0, v0
    else:
        outside.direction = -1
        run = _run_until(model, v0, a0, a_end, outside, solver=solver)
        n_rhs = run.n_rhs
        if run.status != "event":
            if run.status == "diverged" or diverged:
                status, message = "diverged", f"the flow diverged at alpha = {run.alpha:.6g} before entering {where}"
            elif run.status == "failed":
                status, message = "failed", f"the solver failed at alpha = {run.alpha:.6g} before entering {where}"
            else:
                status, message = "not_reached", f"never entered {where} up to alpha = {run.alpha:.6g}"
            return PlateauTimes(entry=nan, exit=nan, length=nan, status=status, message=message, n_rhs=n_rhs,
                                **common)
        a_in, v_in = run.alpha, run.v

    def leave(_a: float, v: np.ndarray) -> float:
        return outside(_a, v)

    leave.direction = 1
    run = _run_until(model, v_in, a_in, a_end, leave, solver=solver)
    n_rhs += run.n_rhs
    if run.status == "event":
        return PlateauTimes(entry=a_in, exit=run.alpha, length=run.alpha - a_in, status="ok", n_rhs=n_rhs,
                            message=f"entered {where} at alpha = {a_in:.6g} and left it at {run.alpha:.6g}",
                            **common)
    if run.status == "diverged" or diverged:
        return PlateauTimes(entry=a_in, exit=nan, length=nan, status="diverged", n_rhs=n_rhs,
                            message=f"the flow diverged at alpha = {run.alpha:.6g} inside {where}", **common)
    if run.status == "failed":
        return PlateauTimes(entry=a_in, exit=nan, length=nan, status="failed", n_rhs=n_rhs,
                            message=f"the solver failed at alpha = {run.alpha:.6g} inside {where}", **common)
    return PlateauTimes(entry=a_in, exit=inf, length=inf, status="not_reached", n_rhs=n_rhs,
                        message=f"entered {where} at alpha = {a_in:.6g} and was still inside at the end of the "
                                f"trajectory (alpha = {run.alpha:.6g})", **common)


def _check_band(band: float) -> float:
    band = float(band)
    if not (0 < band < 1):
        raise ValueError(f"band: relative half-width must be in (0, 1), got {band!r}")
    return band


def plateau_times(traj: xr.Dataset, plateau: Any = None, *, band: float = 0.05,
                  solver: SolverOptions | Mapping[str, Any] | None = None) -> PlateauTimes:
    """Entry into and exit from the plateau of a trajectory (see the module docstring).

    Parameters
    ----------
    traj : xarray.Dataset
        A single trajectory from :func:`phasekit.integrate`.
    plateau : CommitteeFixedPoint or float, optional
        The plateau (or just its eps_g, ``> 0``); default
        :func:`phasekit.committee.landmarks.symmetric_plateau` of the trajectory's model.
    band : float
        Relative half-width of the eps_g band, in ``(0, 1)``.
    solver : SolverOptions, mapping or None
        Solver settings of the re-integration: ``None`` uses the ones the
        trajectory stores, a mapping changes only the fields it names (e.g.
        ``{"rtol": 1e-12}``), a :class:`~phasekit.core.options.SolverOptions` replaces them.

    Returns
    -------
    PlateauTimes
        Crossings located to solver tolerance by re-integrating from the first
        sample (independent of the sampling).
    """
    band = _check_band(band)
    start = _trajectory_start(traj, solver)
    egP = _plateau_eg(start.model, plateau)
    return _band_times(start.model, start.v, start.alpha, start.alpha_end, egP, band, start.solver,
                       start.diverged)


def plateau_length(traj: xr.Dataset, plateau: Any = None, *, band: float = 0.05,
                   solver: SolverOptions | Mapping[str, Any] | None = None) -> float:
    """Time (units of alpha) spent within ``band * eg_P`` of the plateau's eps_g.

    Parameters and definition as in :func:`plateau_times`; returns its
    ``length``: ``exit - entry``, ``nan`` when the trajectory never comes near
    the plateau (or diverged), ``inf`` when it ends on the plateau.
    """
    return plateau_times(traj, plateau, band=band, solver=solver).length


@dataclass(frozen=True, kw_only=True)
class Crossing(ScalarResult):
    """First time eps_g falls below a threshold.

    ``float(crossing)`` is ``alpha``.

    Attributes
    ----------
    alpha : float
        The crossing (units of alpha); ``inf`` when not reached or diverged
        first, ``nan`` when the solver failed.
    threshold : float
    n_rhs : int
        Right-hand-side evaluations of the re-integration.
    status : str
        ``"ok"`` (located), ``"not_reached"`` (the trajectory ended first),
        ``"diverged"`` (the flow left the cone or blew up first) or ``"failed"``.
    message : str
    """

    value_field: ClassVar[str] = "alpha"

    alpha: float
    threshold: float
    n_rhs: int = 0


def _first_crossing(model: Committee, v0: np.ndarray, a0: float, a_end: float, threshold: float,
                    solver: SolverOptions, diverged: bool = False) -> Crossing:
    if float(model.eg_vector(v0)) < threshold:
        return Crossing(alpha=a0, threshold=threshold, message=f"eps_g below {threshold:g} at the start")

    def below(_a: float, v: np.ndarray) -> float:
        return float(model.eg_vector(v)) - threshold

    below.direction = -1
    run = _run_until(model, v0, a0, a_end, below, solver=solver)
    if run.status == "event":
        return Crossing(alpha=run.alpha, threshold=threshold, n_rhs=run.n_rhs,
                        message=f"eps_g fell below {threshold:g} at alpha = {run.alpha:.6g}")
    if run.status == "diverged" or (run.status == "end" and diverged):
        return Crossing(alpha=math.inf, threshold=threshold, n_rhs=run.n_rhs, status="diverged",
                        message=f"the flow diverged at alpha = {run.alpha:.6g} before eps_g fell below {threshold:g}")
    if run.status == "failed":
        return Crossing(alpha=math.nan, threshold=threshold, n_rhs=run.n_rhs, status="failed",
                        message=f"the solver failed at alpha = {run.alpha:.6g}")
    return Crossing(alpha=math.inf, threshold=threshold, n_rhs=run.n_rhs, status="not_reached",
                    message=f"eps_g stayed above {threshold:g} up to alpha = {run.alpha:.6g}")


def _check_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if not (np.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold: must be finite and > 0, got {threshold!r}")
    return threshold


def convergence_time(traj: xr.Dataset, threshold: float, *,
                     solver: SolverOptions | Mapping[str, Any] | None = None) -> Crossing:
    """First alpha at which eps_g falls below ``threshold``.

    The crossing is located by event detection while re-integrating the flow
    from the trajectory's first sample, so it is exact to solver tolerance and
    does not depend on the sampling.  ``float(convergence_time(traj, thr))``
    is the time.

    Parameters
    ----------
    traj : xarray.Dataset
        A single trajectory from :func:`phasekit.integrate`.
    threshold : float
        ``> 0``.
    solver : SolverOptions, mapping or None
        Solver settings of the re-integration: ``None`` uses the ones the
        trajectory stores, a mapping changes only the fields it names (e.g.
        ``{"rtol": 1e-12}``), a :class:`~phasekit.core.options.SolverOptions` replaces them.
        The crossing is as accurate as eps_g, whose absolute error is about
        ``rtol`` times the order parameters: relative error ~ ``rtol / threshold``.

    Returns
    -------
    Crossing
        ``alpha`` in units of alpha (``inf`` when eps_g stays above
        ``threshold`` up to the trajectory's end, status ``"not_reached"``, or
        the flow diverged first, ``"diverged"``).
    """
    threshold = _check_threshold(threshold)
    start = _trajectory_start(traj, solver)
    return _first_crossing(start.model, start.v, start.alpha, start.alpha_end, threshold, start.solver,
                           start.diverged)
