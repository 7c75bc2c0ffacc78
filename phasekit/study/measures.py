"""The measures a study computes at each grid point, and their registry."""

from __future__ import annotations

import functools
import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import xarray as xr

from ..committee.model import Committee, State

__all__ = ['Measure', 'measure_asymptotic_eg', 'measure_convergence_time', 'measure_escape_eigenvalue', 'measure_eta_c', 'measure_final_eg', 'measure_plateau_eg', 'measure_plateau_length', 'point_trajectory', 'register_measure']


# Status of a grid point: "ok" (all measures computed), "diverged" (the
# trajectory left the state space or blew up), "failed" (solver failure or a
# measure raised), "missing" (not computed, e.g. its worker died).
SWEEP_STATUS = ("ok", "diverged", "failed", "missing")


# Integration settings that determine a trajectory (keys of [integration]).
_TRAJ_KEYS = ("alpha_max", "n_points", "rtol", "atol", "method", "stop_eg", "max_norm")


# Those of them that are fields of phasekit.core.options.SolverOptions.
_SOLVER_KEYS = ("rtol", "atol", "method", "max_norm")


@dataclass(frozen=True)
class Measure:
    """A quantity computed at each grid point.

    Attributes
    ----------
    name : str
    func : callable
        ``func(model, state0, settings) -> dict[str, float]``; ``settings``
        holds the study's integration settings (with ``alpha_max`` resolved)
        updated by the measure's own settings.
    outputs : dict
        Output variable name -> ``{"long_name": ..., "units": ...}``.
    settings : tuple of str
        Names of the settings a study may give it (all positive numbers).
    description : str
    """

    name: str
    func: Callable[[Committee, State, dict], dict]
    outputs: Mapping[str, Mapping[str, str]]
    settings: tuple[str, ...] = ()
    description: str = ""


MEASURES: dict[str, Measure] = {}


def register_measure(name: str, outputs: Mapping[str, tuple[str, str]], settings: tuple[str, ...] = (),
                     description: str = "") -> Callable[[Callable], Callable]:
    """Decorator adding ``func(model, state0, settings) -> dict`` to :data:`MEASURES`.

    ``outputs`` maps each returned key to ``(long_name, units)``; ``settings``
    names the (positive, numeric) settings a study file may give the measure.
    """

    def register(func: Callable) -> Callable:
        MEASURES[name] = Measure(name, func, {k: {"long_name": ln, "units": u} for k, (ln, u) in outputs.items()},
                                 tuple(settings), description or ((func.__doc__ or "").strip().splitlines() or [""])[0])
        return func

    return register


_local = threading.local()  # per-thread cache of the current point's trajectory


def point_trajectory(model: Committee, state0: State, settings: Mapping[str, Any]) -> xr.Dataset:
    """``phasekit.integrate`` with the study's settings, cached for the current point.

    The measures reading a trajectory (convergence time, plateau length,
    final error) share this single integration.
    """
    from ..committee.dynamics import integrate

    traj_settings = {k: settings.get(k) for k in _TRAJ_KEYS}
    key = (json.dumps(model.parameters(), sort_keys=True), state0.to_vector().tobytes(),
           json.dumps(traj_settings, sort_keys=True))
    cache: OrderedDict = getattr(_local, "trajectories", None)
    if cache is None:
        cache = _local.trajectories = OrderedDict()
    if key not in cache:
        kwargs = {k: v for k, v in traj_settings.items() if v is not None}
        alpha_max = kwargs.pop("alpha_max")
        solver = {k: kwargs.pop(k) for k in _SOLVER_KEYS if k in kwargs}
        cache[key] = integrate(model, state0, alpha_max, solver=solver, **kwargs)
        while len(cache) > 2:
            cache.popitem(last=False)
    return cache[key]


def _note(message: str) -> None:
    """Attach a remark to the current point's message without changing its status."""
    notes = getattr(_local, "notes", None)
    if notes is not None:
        notes.append(message)


def _last_trajectory() -> xr.Dataset | None:
    cache = getattr(_local, "trajectories", None)
    return next(reversed(cache.values())) if cache else None


@register_measure("final_eg", {"final_eg": ("eps_g at the end of the run", "1"),
                               "alpha_end": ("end of the run alpha", "1")})
def measure_final_eg(model: Committee, state0: State, settings: Mapping[str, Any]) -> dict:
    """Generalisation error at the end of the integrated trajectory."""
    traj = point_trajectory(model, state0, settings)
    return {"final_eg": float(traj["eg"].values[-1]), "alpha_end": float(traj.attrs["alpha_end"])}


@register_measure("convergence_time", {"convergence_time": ("convergence time alpha (eps_g < threshold)", "1")},
                  settings=("threshold",))
def measure_convergence_time(model: Committee, state0: State, settings: Mapping[str, Any]) -> dict:
    """First alpha with eps_g below ``threshold`` (default: ``stop_eg``, else 1e-3); inf if never.

    Exact to solver tolerance: either the trajectory itself stopped there
    (``stop_eg == threshold``) or :func:`phasekit.committee.plateaus.convergence_time`
    locates the crossing by event detection.
    """
    traj = point_trajectory(model, state0, settings)
    threshold = settings.get("threshold") or settings.get("stop_eg") or 1e-3
    status = traj.attrs["status"]
    if status == "converged" and settings.get("stop_eg") == threshold:
        return {"convergence_time": float(traj.attrs["alpha_end"])}
    if status in ("diverged", "failed"):
        return {"convergence_time": math.nan}  # unknown: the run stopped before it could converge
    if np.nanmin(traj["eg"].values) > 2 * threshold:
        return {"convergence_time": math.inf}  # nowhere near: no need to locate a crossing
    from ..committee.plateaus import convergence_time

    return {"convergence_time": float(convergence_time(traj, threshold))}


@register_measure("plateau_length", {"plateau_length": ("plateau length alpha", "1")}, settings=("band",))
def measure_plateau_length(model: Committee, state0: State, settings: Mapping[str, Any]) -> dict:
    """Time spent within ``band`` (relative, default 0.05) of the plateau's eps_g
    (:func:`phasekit.committee.plateaus.plateau_length`); nan if never near it, inf if it ends there."""
    from ..committee.plateaus import plateau_length

    traj = point_trajectory(model, state0, settings)
    kwargs = {"band": settings["band"]} if settings.get("band") is not None else {}
    return {"plateau_length": float(plateau_length(traj, **kwargs))}


@functools.lru_cache(maxsize=64)
def _symmetric_plateau(model_json: str) -> Any:
    from ..committee.model import committee_from_parameters
    from ..committee.landmarks import symmetric_plateau

    return symmetric_plateau(committee_from_parameters(model_json))


@register_measure("plateau_eg", {"plateau_eg": ("eps_g at the symmetric plateau", "1")})
def measure_plateau_eg(model: Committee, state0: State, settings: Mapping[str, Any]) -> dict:
    """eps_g of the symmetric plateau fixed point (:func:`phasekit.committee.landmarks.symmetric_plateau`)."""
    fp = _symmetric_plateau(json.dumps(model.parameters(), sort_keys=True))
    return {"plateau_eg": float(fp.eg)}


@register_measure("escape_eigenvalue", {"escape_eigenvalue": ("escape eigenvalue of the plateau", "1/alpha")})
def measure_escape_eigenvalue(model: Committee, state0: State, settings: Mapping[str, Any]) -> dict:
    """Unstable eigenvalue of the symmetric plateau, per unit alpha."""
    fp = _symmetric_plateau(json.dumps(model.parameters(), sort_keys=True))
    lam = fp.escape_eigenvalue
    return {"escape_eigenvalue": math.nan if lam is None else float(np.real(lam))}


@register_measure("asymptotic_eg", {"asymptotic_eg": ("asymptotic eps_g", "1")}, settings=("tol",))
def measure_asymptotic_eg(model: Committee, state0: State, settings: Mapping[str, Any]) -> dict:
    """eps_g of the fixed point the flow ends at (:func:`phasekit.committee.asymptotics.asymptotic_eg`).

    A run that has not stopped by its horizon keeps its last eps_g and says so
    in the message; a diverged run gives NaN.
    """
    from ..committee.asymptotics import asymptotic_eg

    solver = {k: settings[k] for k in _SOLVER_KEYS if settings.get(k) is not None}
    kwargs = {"speed_tol": settings["tol"]} if settings.get("tol") is not None else {}
    res = asymptotic_eg(model, state0, solver=solver, **kwargs)
    if res.status == "diverged" or (res.status == "failed" and math.isnan(res.eg)):
        raise _MeasureStatus(res.status, f"asymptotic_eg: {res.status} ({res.message})")
    if res.status != "converged":
        _note(f"asymptotic_eg: {res.status} at alpha = {res.alpha:.6g}")
    return {"asymptotic_eg": float(res.eg)}


@functools.lru_cache(maxsize=64)
def _critical_eta(model_json: str, eta_max: float | None) -> float:
    from ..committee.model import committee_from_parameters
    from ..committee.stability import critical_eta

    model = committee_from_parameters(model_json)
    return float(critical_eta(model) if eta_max is None else critical_eta(model, eta_max=eta_max))


@register_measure("eta_c", {"eta_c": ("critical learning rate eta_c", "1")}, settings=("eta_max",))
def measure_eta_c(model: Committee, state0: State, settings: Mapping[str, Any]) -> dict:
    """Critical learning rate of the perfect solution (:func:`phasekit.committee.stability.critical_eta`).

    Always for the exact (second-order) flow, whatever the study's ``second_order``.
    """
    # eta_c is a property of SGD with its eta^2 term and does not depend on the
    # model's eta: key the cache on the second-order model at a fixed eta.
    params = model.replace(eta=1.0, second_order=True).parameters()
    eta_max = settings.get("eta_max")
    return {"eta_c": _critical_eta(json.dumps(params, sort_keys=True), eta_max)}


class _MeasureStatus(Exception):
    """Raised by a measure to set the point's status without a traceback."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
