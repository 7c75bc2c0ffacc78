"""Ready-made grids: plateau length against X, convergence time against eta, lazy-training sweeps."""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr
from scipy.optimize import minimize_scalar

from ..committee.model import Committee, State, committee_from_parameters
from ..committee.plateaus import (
    _band_times,
    _check_band,
    _check_model,
    _check_threshold,
    _escape,
    _first_crossing,
    _plateau_object,
)
from ..committee.starts import INITIAL_KINDS, initial_state
from ..core.activations import activation as get_activation
from ..core.datasets import provenance_attrs
from ..core.options import SolverOptions, coerce_options
from ..core.parallel import check_workers, parallel_map
from ..core.results import status_attrs, status_codes
from ..lazy_training.networks import _check_int, _check_positive
from ..lazy_training.training import _MEASURES, run_two_layer

__all__ = ['convergence_time_vs_eta', 'plateau_scaling', 'two_layer_sweep']


def _scaling_point(item: tuple) -> tuple[float, float, str]:
    """Entry, exit and status for one X (module level: runs on dask workers)."""
    params, X, kind, Q0, seed, plateau_data, band, solver, alpha_max = item
    model = committee_from_parameters(params)
    plateau = _PlateauData(*plateau_data)
    state0 = initial_state(model, X, Q0=Q0, kind=kind, seed=seed, plateau=plateau)
    pt = _band_times(model, state0.to_vector(), 0.0, alpha_max, plateau.eg, band, SolverOptions(**solver))
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
    solver: SolverOptions | Mapping[str, Any] | None = None,
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
        Default :func:`phasekit.committee.landmarks.symmetric_plateau`.
    band : float
        Relative half-width of the eps_g band defining the plateau.
    Q0, seed : see :func:`initial_state` (``kind`` ``"diagonal"``/``"uniform"``).
    fit_range : (float, float), optional
        Fit only X within ``[min, max]``; default all X with a finite length.
    alpha_max : float, optional
        Integration limit per X; default ``2 ln(1/X) / lambda_esc + 1000 / eta``.
    solver : SolverOptions, mapping or None
        ODE solver settings (default :class:`~phasekit.core.options.SolverOptions`).
    client, n_workers : see :func:`phasekit.core.parallel.parallel_map` (default: in this
        process, or on the active dask client).

    Returns
    -------
    xarray.Dataset
        Coordinate ``X`` (and ``ln_inv_X``); variables ``entry``, ``exit``,
        ``plateau_length`` (units alpha), ``eta_plateau_length`` (units
        eta alpha), ``status`` (codes of :data:`phasekit.core.results.STATUS`
        with CF flags: ``ok``, ``not_reached`` (never entered, or still on the
        plateau at ``alpha_max``), ``diverged``, ``failed``),
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
    settings = coerce_options(solver, SolverOptions, "solver").to_dict()
    params = model.parameters()
    q0 = None if Q0 is None else np.asarray(Q0, dtype=float).tolist()
    items = []
    for x in X:
        amax = float(alpha_max) if alpha_max is not None else 2.0 * math.log(1.0 / x) / lam + 1e3 / model.eta
        items.append((params, float(x), kind, q0, seed, pdata, band, settings, amax))
    results = parallel_map(_scaling_point, items, client=client, n_workers=n_workers)
    entry = np.array([r[0] for r in results])
    exit_ = np.array([r[1] for r in results])
    status = status_codes([r[2] for r in results])
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
            "status": ("X", status, status_attrs("plateau status")),
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


def _crossing_point(item: tuple) -> tuple[float, str]:
    params, eta, v0, threshold, alpha_max, solver = item
    model = committee_from_parameters({**params, "eta": eta})
    res = _first_crossing(model, np.asarray(v0), 0.0, alpha_max, threshold, SolverOptions(**solver))
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
    solver: SolverOptions | Mapping[str, Any] | None = None,
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
        :func:`phasekit.committee.stability.critical_eta` when the model keeps the
        eta^2 term, has K = M and no noise, else nan.
    solver : SolverOptions, mapping or None
        ODE solver settings (default :class:`~phasekit.core.options.SolverOptions`).
    client, n_workers : see :func:`phasekit.core.parallel.parallel_map` (default: in this
        process, or on the active dask client).

    Returns
    -------
    xarray.Dataset
        Coordinate ``eta``; variables ``convergence_time`` (alpha, inf when
        not reached), ``eta_convergence_time`` (eta alpha), ``status`` (codes
        of :data:`phasekit.core.results.STATUS` with CF flags: ``ok``,
        ``not_reached``, ``diverged``, ``failed``); scalars ``eta_opt``,
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
    settings = coerce_options(solver, SolverOptions, "solver").to_dict()
    v0 = state0.to_vector()

    def item(e: float) -> tuple:
        return (params, float(e), v0, threshold, eta_alpha_max / float(e), settings)

    results = parallel_map(_crossing_point, [item(e) for e in eta], client=client, n_workers=n_workers)
    t = np.array([r[0] for r in results])
    status = status_codes([r[1] for r in results])
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
            from ..committee.stability import critical_eta

            eta_c = float(critical_eta(model))
    ds = xr.Dataset(
        {
            "convergence_time": ("eta", t, _attrs(f"convergence time alpha (eps_g < {threshold:g})", "alpha")),
            "eta_convergence_time": ("eta", eta * t,
                                     _attrs(f"convergence time eta alpha (eps_g < {threshold:g})", "eta alpha")),
            "status": ("eta", status, status_attrs("crossing status")),
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


def _sweep_point(kwargs: Mapping[str, Any]) -> dict[str, float]:
    return run_two_layer(**kwargs)


def two_layer_sweep(
    taus: Sequence[float],
    widths: Sequence[int],
    seeds: Sequence[int] = (0, 1, 2),
    *,
    activations: Sequence[str] = ("relu",),
    scales: Sequence[float] = (1.0,),
    d: int = 20,
    m0: int = 3,
    client: Any = None,
    n_workers: int | None = None,
    **run_kwargs: Any,
) -> xr.Dataset:
    """Train a grid of students through :func:`phasekit.core.parallel.parallel_map`.

    Parameters
    ----------
    taus : sequence of float
        Initial scales (``> 0``), typically log-spaced from 1e-2 to 1e1.
    widths : sequence of int
        Student widths ``m`` (``>= 1``; even for the symmetrised initialisation).
    seeds : sequence of int
        Student seeds; the teacher is the same for all points (``teacher_seed``).
    activations : sequence of str
        Student activations.
    scales : sequence of float
        Output scales.
    d, m0 : int
        Input dimension and teacher units.
    client, n_workers
        Passed to :func:`phasekit.core.parallel.parallel_map`.
    **run_kwargs
        Further arguments of :func:`run_two_layer` (``T``, ``threshold``, ``tangent``,
        ``trainer``, ``teacher_seed``, ``symmetric``, ``centered``, ...).

    Returns
    -------
    xarray.Dataset
        Dimensions ``(activation, scale, m, tau, seed)``; one variable per
        measure of :func:`run_two_layer`, with provenance attributes.
    """
    taus = [_check_positive(t, "taus") for t in taus]
    widths = [_check_int(w, "widths", 1) for w in widths]
    scales = [_check_positive(s, "scales") for s in scales]
    seeds = [int(s) for s in seeds]
    activations = [get_activation(a).name for a in activations]
    d = _check_int(d, "d", 1)
    m0 = _check_int(m0, "m0", 1)
    if not (taus and widths and seeds and activations and scales):
        raise ValueError("taus, widths, seeds, activations, scales: need at least one value each")
    if run_kwargs.get("symmetric", True):
        for w in widths:
            if w % 2:
                raise ValueError(f"widths: the symmetrised initialisation needs even widths, got {w}")
    unknown = set(run_kwargs) - set(inspect.signature(run_two_layer).parameters)
    if unknown or {"d", "m0", "m", "tau", "seed", "activation", "scale"} & set(run_kwargs):
        raise ValueError(f"run_kwargs: unknown or duplicated argument(s) {sorted(unknown or run_kwargs)}")
    points = [dict(d=d, m0=m0, m=w, tau=t, seed=s, activation=a, scale=sc, **run_kwargs)
              for a in activations for sc in scales for w in widths for t in taus for s in seeds]
    results = parallel_map(_sweep_point, points, client=client, n_workers=n_workers)
    shape = (len(activations), len(scales), len(widths), len(taus), len(seeds))
    dims = ("activation", "scale", "m", "tau", "seed")
    data = {}
    for key, (long_name, units) in _MEASURES.items():
        values = np.array([r[key] for r in results], dtype=float).reshape(shape)
        data[key] = (dims, values, {"long_name": long_name, "units": units})
    coords = {
        "activation": ("activation", np.array(activations), {"long_name": "student activation", "units": "1"}),
        "scale": ("scale", np.array(scales), {"long_name": "output scale", "units": "1"}),
        "m": ("m", np.array(widths), {"long_name": "student width m", "units": "1"}),
        "tau": ("tau", np.array(taus), {"long_name": "initial scale tau", "units": "1"}),
        "seed": ("seed", np.array(seeds), {"long_name": "student seed", "units": "1"}),
    }
    parameters = dict(taus=taus, widths=widths, seeds=seeds, activations=activations, scales=scales,
                      d=d, m0=m0, **run_kwargs)
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(provenance_attrs(
        parameters,
        system="two-layer student-teacher: lazy versus feature learning",
        time_units="mean-field time t: dw/dt = -(m / scale^2) grad L",
        horizon="T / max(1, tau^2) for relu, T / max(1, tau) otherwise, unless t_final is given",
    ))
    return ds
