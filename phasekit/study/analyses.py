"""Analyses: computations on the assembled grid whose results are stored in the dataset.

A study lists them in ``[analyses.<name>]`` tables (``kind`` defaults to the
name); the runner runs them after assembling the grid and adds their outputs
to the dataset, so that figures and reports only read them:

``plateau_fit``
    Least-squares line ``alpha_P = a ln(1/X) + b`` through a plateau length
    along the X axis, its standard error, and the slope ``1 / lambda_esc``
    predicted by the escape eigenvalue.
``optimum``
    The minimum of a measure along an axis and the values of chosen
    variables there; ``refine = true`` polishes it by bounded Brent
    minimisation between the grid neighbours (computing new points).
``power_law``
    Exponent, its standard error and the prefactor of ``y = c x^p`` along an
    axis (after a median over other axes), with an expected exponent.
``inverse_fit``
    Least squares ``x^p y = a + b / x`` along an axis (a large-x law, e.g.
    ``K eta_c = a + b / K``) on a range of x, with the standard errors, the
    scaled values ``x^p y`` themselves and an expected limit ``a``.
``regime``
    Lazy, feature-learning or crossover, from the medians of a lazy-training grid.
``edge_of_chaos``
    The critical line of a propagation grid along its ``sigma_b2`` values.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import xarray as xr

from .systems import Parameter

__all__ = ["ANALYSES", "Analysis", "classify_regime", "register_analysis", "LAZY_DISTANCE", "ACTIVE_FACTOR"]


@dataclass(frozen=True)
class Analysis:
    """A registered analysis.

    Attributes
    ----------
    name : str
    func : callable
        ``func(ds, settings, probe) -> {name: DataArray}``; ``probe(index,
        changes)`` evaluates the measures at grid point ``index`` with some
        grid values changed (only analyses that compute new points use it).
    settings : dict
        Setting name -> :class:`~phasekit.study.systems.Parameter`.
    required : tuple of str
        Settings a study must give.
    output_names : callable
        ``output_names(settings) -> list``: the variables it adds.
    check : callable
        ``check(settings, variables, dims) -> problem or None`` (``"<setting>: <problem>"``).
    computes : bool
        It evaluates the system (its results are kept with the checkpoints).
    description : str
    """

    name: str
    func: Callable[..., dict[str, xr.DataArray]]
    settings: Mapping[str, Parameter] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    output_names: Callable[[dict], list[str]] = lambda s: []
    check: Callable[[dict, set, set], "str | None"] = lambda s, v, d: None
    computes: bool = False
    description: str = ""


#: Every registered analysis by name (:func:`register_analysis` adds one).
ANALYSES: dict[str, Analysis] = {}


def register_analysis(name: str, *, settings: Mapping[str, Parameter] | None = None, required: tuple[str, ...] = (),
                      output_names: Callable[[dict], list[str]] | None = None,
                      check: Callable[[dict, set, set], "str | None"] | None = None,
                      computes: bool = False) -> Callable[[Callable], Callable]:
    """Decorator adding an analysis ``func(ds, settings, probe) -> {name: DataArray}`` to :data:`ANALYSES`."""
    def register(func: Callable) -> Callable:
        doc = (func.__doc__ or "").strip().splitlines()
        ANALYSES[name] = Analysis(name, func, dict(settings or {}), required, output_names or (lambda s: []),
                                  check or (lambda s, v, d: None), computes, doc[0] if doc else "")
        return func

    return register


def _string(name: str, default: Any = None, long_name: str = "") -> Parameter:
    return Parameter(name, "string", default, long_name or name, table="analyses")


def _needs(settings: dict, variables: set, dims: set, var_keys: tuple[str, ...], dim_keys: tuple[str, ...]
           ) -> str | None:
    for k in var_keys:
        names = settings.get(k)
        for v in ([names] if isinstance(names, str) else names or []):
            if v not in variables and v not in dims:
                return f"{k}: {v!r} is not a variable of the study (variables: {', '.join(sorted(variables))})"
    for k in dim_keys:
        names = settings.get(k)
        for d in ([names] if isinstance(names, str) else names or []):
            if d not in dims:
                return f"{k}: {d!r} is not a grid axis of the study"
    return None


def _along(ds: xr.Dataset, var: str, dim: str, extra: tuple[str, ...] = ()) -> tuple[xr.DataArray, list[str]]:
    """``ds[var]`` with ``dim`` last, and the other dims (each combination is analysed on its own).

    A variable without some grid dims (``eta_c`` has no ``eta`` dim) is
    repeated along them, so that it lines up with the grid's other variables.
    """
    da = ds[var]
    if "status" in ds and not set(ds["status"].dims) <= set(da.dims):
        da = da.broadcast_like(ds["status"])
    dim = _dim_of(ds, dim)
    others = [d for d in da.dims if d != dim and d not in extra]
    return da.transpose(*others, dim, *extra), others


def _dim_of(ds: xr.Dataset, name: str) -> str:
    """The dim of a grid axis (itself, or the dim of its 1-D coordinate, e.g. a case axis named after N)."""
    if name in ds.dims:
        return name
    if name in ds.coords and ds[name].ndim == 1:
        return ds[name].dims[0]
    raise ValueError(f"{name!r} is not a dim of the dataset")


def _combos(da: xr.DataArray, others: list[str]) -> list[dict[str, int]]:
    return [dict(zip(others, idx)) for idx in itertools.product(*(range(da.sizes[d]) for d in others))]


def _out(da: xr.DataArray, others: list[str], values: np.ndarray, long_name: str, units: str, **attrs: Any
         ) -> xr.DataArray:
    coords = {d: da[d] for d in others if d in da.coords}
    return xr.DataArray(values, dims=others, coords=coords, attrs={"long_name": long_name, "units": units, **attrs})


# --- the plateau law --------------------------------------------------------------------------------

def _fit_names(settings: dict) -> list[str]:
    return ["in_fit", "fitted_slope", "fitted_slope_stderr", "fitted_intercept", "predicted_slope", "slope_ratio",
            "n_fit"]


@register_analysis("plateau_fit", settings={
    "var": _string("var", "plateau_length", "the plateau length"),
    "over": _string("over", "X", "the axis of the initial distance X"),
    "rate": _string("rate", "escape_eigenvalue", "the escape eigenvalue predicting the slope"),
    "fit_range": Parameter("fit_range", "numbers", None, "X range of the fit", table="analyses", low=0.0,
                           low_open=True),
}, output_names=_fit_names, check=lambda s, v, d: _needs(s, v, d, ("var", "rate"), ("over",)))
def plateau_fit(ds: xr.Dataset, settings: dict, probe: Any = None) -> dict[str, xr.DataArray]:
    """Plateau length against ln(1/X): fitted slope and intercept, standard error, predicted slope 1/lambda_esc."""
    var, over = settings.get("var", "plateau_length"), settings.get("over", "X")
    rate = settings.get("rate", "escape_eigenvalue")
    da, others = _along(ds, var, over)
    X = np.asarray(ds[over].values, dtype=float)
    fr = settings.get("fit_range")
    lo, hi = (sorted(float(x) for x in fr) if fr else (0.0, np.inf))
    L = np.log(1.0 / X)
    lam_da, _ = _along(ds, rate, over) if rate in ds else (None, None)
    shape = [da.sizes[d] for d in others]
    res = {k: np.full(shape, np.nan) for k in ("slope", "stderr", "intercept", "predicted", "ratio")}
    n_fit = np.zeros(shape, dtype=np.int32)
    in_fit_all = np.zeros(da.shape, dtype=np.int32)
    for sel in _combos(da, others):
        idx = tuple(sel[d] for d in others)
        length = da.isel(sel).values.astype(float)
        in_fit = np.isfinite(length) & (X >= lo) & (X <= hi)
        in_fit_all[idx] = in_fit
        n_fit[idx] = int(in_fit.sum())
        if in_fit.sum() >= 2:
            if in_fit.sum() > 3:
                coef, cov = np.polyfit(L[in_fit], length[in_fit], 1, cov=True)
            else:
                coef, cov = np.polyfit(L[in_fit], length[in_fit], 1), np.full((2, 2), np.nan)
            res["slope"][idx], res["intercept"][idx] = float(coef[0]), float(coef[1])
            res["stderr"][idx] = float(np.sqrt(cov[0, 0])) if np.isfinite(cov[0, 0]) else np.nan
        if lam_da is not None:
            lam = lam_da.isel(sel).values.astype(float)
            lam = lam[np.isfinite(lam) & (lam > 0)]
            if lam.size:
                res["predicted"][idx] = 1.0 / lam[0]
        res["ratio"][idx] = res["slope"][idx] / res["predicted"][idx]
    units = ds[var].attrs.get("units", "1")
    return {
        "in_fit": xr.DataArray(in_fit_all, dims=da.dims, coords={d: da[d] for d in da.dims if d in da.coords},
                               attrs={"long_name": "point used in the plateau fit (1) or not (0)", "units": ""}),
        "fitted_slope": _out(da, others, res["slope"], "fitted slope a of alpha_P = a ln(1/X) + b", units),
        "fitted_slope_stderr": _out(da, others, res["stderr"], "standard error of the fitted slope", units),
        "fitted_intercept": _out(da, others, res["intercept"], "fitted intercept b", units),
        "predicted_slope": _out(da, others, res["predicted"], "predicted slope 1/lambda_esc", units),
        "slope_ratio": _out(da, others, res["ratio"], "fitted slope / predicted slope", "1"),
        "n_fit": _out(da, others, n_fit, "points in the plateau fit", ""),
    }


# --- optimum along an axis --------------------------------------------------------------------------

def _optimum_names(settings: dict) -> list[str]:
    report = settings.get("report") or [settings["over"]]
    return [f"{settings['var']}_min"] + [f"{r}_opt" for r in report]


@register_analysis("optimum", settings={
    "var": _string("var", None, "the variable to minimise"),
    "over": _string("over", None, "the grid axis to minimise along"),
    "report": Parameter("report", "strings", None, "variables reported at the minimum", table="analyses",
                        scalar_ok=True),
    "refine": Parameter("refine", "boolean", False, "polish the minimum by Brent's method", table="analyses"),
}, required=("var", "over"), output_names=_optimum_names, computes=True,
    check=lambda s, v, d: _needs(s, v, d, ("var", "report"), ("over",)))
def optimum(ds: xr.Dataset, settings: dict, probe: Any = None) -> dict[str, xr.DataArray]:
    """Minimum of a variable along a grid axis, and chosen variables there (optionally refined between grid points)."""
    from scipy.optimize import minimize_scalar

    var, over = settings["var"], settings["over"]
    report = list(settings.get("report") or [over])
    refine = bool(settings.get("refine"))
    da, others = _along(ds, var, over)
    dim = _dim_of(ds, over)
    xs = np.asarray(ds[over].values, dtype=float)
    shape = [da.sizes[d] for d in others]
    best = np.full(shape, np.nan)
    at = {r: np.full(shape, np.nan) for r in report}
    for sel in _combos(da, others):
        idx = tuple(sel[d] for d in others)
        t = da.isel(sel).values.astype(float)
        if not np.isfinite(t).any():
            continue
        j = int(np.nanargmin(np.where(np.isfinite(t), t, np.nan)))
        best[idx] = t[j]
        point = {**sel, dim: j}
        for r in report:
            at[r][idx] = float(ds[r].isel({k: v for k, v in point.items() if k in ds[r].dims}).values)
        if refine and probe is not None and 0 < j < len(xs) - 1 and np.isfinite(t[j - 1]) and np.isfinite(t[j + 1]):
            index = int(np.ravel_multi_index([point[d] for d in ds[var].dims], [ds.sizes[d] for d in ds[var].dims]))
            records: dict[float, dict] = {}

            def f(x: float) -> float:
                records[x] = probe(index, {over: float(x)})
                return float(records[x].get(var, np.nan))

            res = minimize_scalar(f, bounds=(xs[j - 1], xs[j + 1]), method="bounded", options={"xatol": 1e-6 * xs[j]})
            if np.isfinite(res.fun) and res.fun <= t[j]:
                best[idx] = float(res.fun)
                rec = records.get(res.x) or probe(index, {over: float(res.x)})
                for r in report:
                    at[r][idx] = float(res.x) if r == over else float(rec.get(r, np.nan))
    out = {f"{var}_min": _out(da, others, best, f"minimum of {ds[var].attrs.get('long_name', var)} over {over}",
                              ds[var].attrs.get("units", "1"))}
    for r in report:
        src = ds[r]
        out[f"{r}_opt"] = _out(da, others, at[r], f"{src.attrs.get('long_name', r)} at the minimum of {var}",
                               src.attrs.get("units", "1"))
    return out


# --- power laws ---------------------------------------------------------------------------------------

def _range_problem(settings: dict) -> str | None:
    lo, hi = settings.get("x_min"), settings.get("x_max")
    if lo is not None and hi is not None and not lo < hi:
        return f"x_min: must be < x_max, got x_min = {lo:g}, x_max = {hi:g}"
    return None


def _in_range(xv: np.ndarray, settings: dict) -> np.ndarray:
    """Which ``x`` values lie in ``[x_min, x_max]`` (either end open when not given)."""
    lo, hi = settings.get("x_min"), settings.get("x_max")
    return (xv >= (-np.inf if lo is None else lo)) & (xv <= (np.inf if hi is None else hi))

def _power_names(settings: dict) -> list[str]:
    p = settings.get("prefix", "")
    names = [f"{p}exponent", f"{p}exponent_stderr", f"{p}prefactor"]
    return names + ([f"{p}expected_exponent"] if settings.get("expected") is not None else [])


@register_analysis("power_law", settings={
    "y": _string("y", None, "the variable"),
    "x": _string("x", None, "the grid axis (or its coordinate)"),
    "median_over": Parameter("median_over", "strings", None, "axes to take the median over first",
                             table="analyses", scalar_ok=True),
    "prefix": _string("prefix", "", "prefix of the output names"),
    "expected": Parameter("expected", "number_map", None, "expected exponent (or one per value of an axis)",
                          table="analyses"),
    "x_min": Parameter("x_min", "number", None, "smallest x fitted", table="analyses"),
    "x_max": Parameter("x_max", "number", None, "largest x fitted", table="analyses"),
}, required=("y", "x"), output_names=_power_names,
    check=lambda s, v, d: _range_problem(s) or _needs(s, v, d, ("y",), ("x", "median_over")))
def power_law(ds: xr.Dataset, settings: dict, probe: Any = None) -> dict[str, xr.DataArray]:
    """Least-squares exponent of ``y = c x^p`` in log-log, with its standard error and the prefactor ``c``.

    On ``x_min <= x <= x_max`` when those are given (the whole axis otherwise).
    """
    y, x, prefix = settings["y"], settings["x"], settings.get("prefix", "")
    da = ds[y]
    med = [_dim_of(ds, d) for d in settings.get("median_over") or []]
    if med:
        da = da.median(med)
    dim = _dim_of(ds, x)
    xv = np.asarray(ds[x].values, dtype=float)
    in_range = _in_range(xv, settings)
    others = [d for d in da.dims if d != dim]
    da = da.transpose(*others, dim)
    shape = [da.sizes[d] for d in others]
    slope, err, pre = (np.full(shape, np.nan) for _ in range(3))
    for sel in _combos(da, others):
        idx = tuple(sel[d] for d in others)
        yy = da.isel(sel).values.astype(float)
        ok = np.isfinite(yy) & (yy > 0) & (xv > 0) & in_range
        if ok.sum() < 2:
            continue
        if ok.sum() >= 3:
            coef, cov = np.polyfit(np.log(xv[ok]), np.log(yy[ok]), 1, cov=True)
            err[idx] = float(np.sqrt(cov[0, 0]))
        else:
            coef = np.polyfit(np.log(xv[ok]), np.log(yy[ok]), 1)
        slope[idx], pre[idx] = float(coef[0]), float(np.exp(coef[1]))
    name = ds[y].attrs.get("long_name", y)
    out = {f"{prefix}exponent": _out(da, others, slope, f"fitted exponent of {name} against {x}", "1"),
           f"{prefix}exponent_stderr": _out(da, others, err, "standard error of the exponent", "1"),
           f"{prefix}prefactor": _out(da, others, pre, f"fitted prefactor of {name}", ds[y].attrs.get("units", "1"))}
    if settings.get("expected") is not None:
        out[f"{prefix}expected_exponent"] = _expected(da, others, settings["expected"], "exponent", "1")
    return out


def _expected(da: xr.DataArray, others: list[str], expected: Any, what: str, units: str) -> xr.DataArray:
    """An ``expected`` setting as a variable: one number, or one per value of the first of ``others``."""
    if isinstance(expected, Mapping):
        key = others[0] if others else None
        vals = [float(expected.get(str(v), np.nan)) for v in da[key].values] if key else [np.nan]
        return _out(da, others[:1], np.array(vals), f"{what} predicted by theory", units)
    return _out(da, [], np.array(float(expected)), f"{what} predicted by theory", units)


# --- large-x laws a + b / x ------------------------------------------------------------------------------

def _inverse_names(settings: dict) -> list[str]:
    p = settings.get("prefix", "")
    names = [f"{p}scaled", f"{p}limit", f"{p}limit_stderr", f"{p}slope", f"{p}slope_stderr", f"{p}n_fit"]
    return names + ([f"{p}expected_limit"] if settings.get("expected") is not None else [])




@register_analysis("inverse_fit", settings={
    "y": _string("y", None, "the variable"),
    "x": _string("x", None, "the grid axis (or its coordinate)"),
    "power": Parameter("power", "number", 0.0, "power p of x the variable is scaled by", table="analyses"),
    "x_min": Parameter("x_min", "number", None, "smallest x fitted", table="analyses"),
    "x_max": Parameter("x_max", "number", None, "largest x fitted", table="analyses"),
    "prefix": _string("prefix", "", "prefix of the output names"),
    "expected": Parameter("expected", "number_map", None, "expected limit a (or one per value of an axis)",
                          table="analyses"),
}, required=("y", "x"), output_names=_inverse_names,
    check=lambda s, v, d: _range_problem(s) or _needs(s, v, d, ("y",), ("x",)))
def inverse_fit(ds: xr.Dataset, settings: dict, probe: Any = None) -> dict[str, xr.DataArray]:
    """Least squares ``x^p y = a + b / x`` on ``x_min <= x <= x_max``: the large-x limit ``a`` and the slope ``b``.

    Points where ``y`` is not finite are left out; fewer than two points give
    NaN, two give no standard errors.  ``scaled`` is ``x^p y`` at every grid
    point (what the fit sees), over the grid dims of ``y``.
    """
    y, x, prefix = settings["y"], settings["x"], settings.get("prefix", "")
    power = float(settings.get("power") or 0.0)
    da, others = _along(ds, y, x)
    dim = _dim_of(ds, x)
    xv = np.asarray(ds[x].values, dtype=float)
    lo, hi = settings.get("x_min"), settings.get("x_max")
    in_range = _in_range(xv, settings) & (xv != 0)
    scaled = da * xr.DataArray(np.abs(xv) ** power, dims=[dim])
    shape = [da.sizes[d] for d in others]
    a, a_err, b, b_err, n = (np.full(shape, np.nan) for _ in range(5))
    for sel in _combos(da, others):
        idx = tuple(sel[d] for d in others)
        yy = scaled.isel(sel).values.astype(float)
        ok = in_range & np.isfinite(yy)
        n[idx] = ok.sum()
        if ok.sum() < 2:
            continue
        A = np.stack([np.ones(ok.sum()), 1.0 / xv[ok]], axis=1)
        coef, *_ = np.linalg.lstsq(A, yy[ok], rcond=None)
        a[idx], b[idx] = coef
        if ok.sum() > 2:
            resid = yy[ok] - A @ coef
            cov = np.linalg.inv(A.T @ A) * float(resid @ resid) / (ok.sum() - 2)
            a_err[idx], b_err[idx] = np.sqrt(np.diag(cov))
    name = ds[y].attrs.get("long_name", y)
    units = ds[y].attrs.get("units", "1")
    xs = x if power == 0 else f"{x}^{power:g}"
    scaled_name = name if power == 0 else f"{xs} times {name}"
    where = f" on {'' if lo is None else f'{lo:g} <= '}{x}{'' if hi is None else f' <= {hi:g}'}"
    out = {f"{prefix}scaled": scaled.transpose(*others, dim).assign_attrs(long_name=scaled_name, units=units),
           f"{prefix}limit": _out(da, others, a, f"fitted large-{x} limit a of {scaled_name} = a + b / {x}{where}",
                                  units),
           f"{prefix}limit_stderr": _out(da, others, a_err, "standard error of the limit a", units),
           f"{prefix}slope": _out(da, others, b, f"fitted slope b of {scaled_name} = a + b / {x}", units),
           f"{prefix}slope_stderr": _out(da, others, b_err, "standard error of the slope b", units),
           f"{prefix}n_fit": _out(da, others, n, "points in the fit", "")}
    if settings.get("expected") is not None:
        out[f"{prefix}expected_limit"] = _expected(da, others, settings["expected"], "limit", units)
    return out


# --- lazy or feature learning -----------------------------------------------------------------------------

# A run is lazy when its predictor stays within this fraction of |f*| of the tangent
# model's, and learns features when it beats the tangent model's infinite-time loss
# by at least this factor.
LAZY_DISTANCE = 0.1
ACTIVE_FACTOR = 0.1
REGIMES = ("lazy", "feature learning", "crossover")


def classify_regime(relative_tangent_distance: float, loss: float, tangent_loss_limit: float) -> str:
    """``"lazy"``, ``"feature learning"`` or ``"crossover"`` for one (median) run.

    Lazy: the trained network is within ``LAZY_DISTANCE |f*|`` of the trained
    tangent model.  Feature learning: its loss is below ``ACTIVE_FACTOR``
    times the loss of the tangent model trained to convergence, i.e. no
    kernel fit on the initial features comes close.  Otherwise crossover.
    """
    if relative_tangent_distance < LAZY_DISTANCE:
        return "lazy"
    if loss < ACTIVE_FACTOR * tangent_loss_limit:
        return "feature learning"
    return "crossover"


@register_analysis("regime", settings={
    "median_over": Parameter("median_over", "strings", ["seed"], "axes to take the median over first",
                             table="analyses", scalar_ok=True),
}, output_names=lambda s: ["training_regime"],
    check=lambda s, v, d: (None if {"loss", "relative_tangent_distance", "tangent_loss_limit"} <= v else
                           "median_over: needs the measures training and tangent"))
def regime(ds: xr.Dataset, settings: dict, probe: Any = None) -> dict[str, xr.DataArray]:
    """Lazy, feature learning or crossover from the seed medians of a lazy-training grid."""
    med = [d for d in settings.get("median_over", ["seed"]) if d in ds.dims]
    r = ds[["relative_tangent_distance", "loss", "tangent_loss_limit"]]
    r = r.median(med) if med else r
    dist, loss, limit = (r[v].values for v in ("relative_tangent_distance", "loss", "tangent_loss_limit"))
    codes = np.vectorize(lambda a, b, c: REGIMES.index(classify_regime(a, b, c)), otypes=[np.int8])(dist, loss, limit)
    attrs = {"long_name": "training regime", "units": "", "flag_values": list(range(len(REGIMES))),
             "flag_meanings": " ".join(x.replace(" ", "_") for x in REGIMES),
             "lazy_distance": LAZY_DISTANCE, "active_factor": ACTIVE_FACTOR}
    return {"training_regime": xr.DataArray(codes, dims=r["loss"].dims,
                                            coords={d: r[d] for d in r["loss"].dims if d in r.coords}, attrs=attrs)}


# --- the edge of chaos ----------------------------------------------------------------------------------

@register_analysis("edge_of_chaos", settings={"over": _string("over", "sigma_b2", "the bias-variance axis")},
                   output_names=lambda s: ["eoc_sigma_w2", "eoc_q_star", "eoc_q_attracting"], computes=True,
                   check=lambda s, v, d: _needs(s, v, d, (), ("over",)))
def edge_of_chaos(ds: xr.Dataset, settings: dict, probe: Any = None) -> dict[str, xr.DataArray]:
    """The critical line (weight variance and q* on the edge of chaos) at the grid's sigma_b2 values."""
    from ..propagation import edge_of_chaos_line

    sb = ds[settings.get("over", "sigma_b2")]
    dim = sb.dims[-1] if sb.ndim else None
    others = [d for d in sb.dims if d != dim]
    shape = [sb.sizes[d] for d in sb.dims]
    out = {k: np.full(shape, np.nan) for k in ("sigma_w2", "q_star")}
    attr = np.zeros(shape, dtype=np.int32)
    for sel in _combos(sb, others):
        idx = tuple(sel[d] for d in others)
        act = ds["activation"].isel({k: v for k, v in sel.items() if k in ds["activation"].dims}).values.item()
        line = edge_of_chaos_line(str(act), np.atleast_1d(sb.isel(sel).values.astype(float)))
        out["sigma_w2"][idx], out["q_star"][idx], attr[idx] = line["sigma_w2"], line["q_star"], line["attracting"]
    coords = {d: sb[d] for d in sb.dims if d in sb.coords}
    return {
        "eoc_sigma_w2": xr.DataArray(out["sigma_w2"], dims=sb.dims, coords=coords,
                                     attrs={"long_name": "weight variance on the edge of chaos", "units": "1"}),
        "eoc_q_star": xr.DataArray(out["q_star"], dims=sb.dims, coords=coords,
                                   attrs={"long_name": "q* on the edge of chaos", "units": "1"}),
        "eoc_q_attracting": xr.DataArray(attr, dims=sb.dims, coords=coords,
                                         attrs={"long_name": "q* on the edge of chaos attracts the variance map "
                                                             "(1) or not (0)", "units": ""}),
    }



# --- the lines of the SGD phase diagram in (delta, kappa) -----------------------------------------

def _zero_crossing(x: np.ndarray, y: np.ndarray) -> float:
    """The first ``x`` where the piecewise-linear ``y(x)`` (``x`` ascending) crosses zero, NaN if none."""
    for j in range(len(x) - 1):
        a, b = y[j], y[j + 1]
        if np.isfinite(a) and np.isfinite(b) and a * b <= 0 and a != b:
            return float(x[j] - a * (x[j + 1] - x[j]) / (b - a))
    return np.nan


@register_analysis("sgd_phase_lines", settings={
    "over": _string("over", "delta", "the learning-rate exponent axis"),
}, output_names=lambda s: ["sgd_line_both_delta", "sgd_line_both_delta_analytic", "sgd_line_ode_delta",
                           "sgd_line_ode_delta_analytic", "sgd_line_ode_delta_code", "sgd_regime_agreement"],
    check=lambda s, v, d: (None if {"ratio_exponent", "step_exponent", "sgd_regime"} <= v and
                           {s.get("over", "delta"), "kappa"} <= d else
                           "over: needs the measure sgd_regime on a grid over delta and kappa"))
def sgd_phase_lines(ds: xr.Dataset, settings: dict, probe: Any = None) -> dict[str, xr.DataArray]:
    """The lines of the (delta, kappa) diagram from the flow's exponents, next to the published ones.

    Along ``delta`` at each ``kappa``: where the exponent of the ratio of the
    eta^2/noise terms to the first-order terms crosses zero (the line on which
    both survive) and where the exponent of the change per example does (the
    end of the ODE limit), by linear interpolation between grid neighbours;
    the lines of the published figure, ``-kappa`` and ``-kappa - 1/2``, the
    line ``-(1 + kappa)/2`` of the authors' code's region test, and the
    fraction of points whose regime from the flow is the figure's.
    """
    over = settings.get("over", "delta")
    keep = ["ratio_exponent", "step_exponent", "sgd_regime"] + (["sgd_regime_analytic"]
                                                                if "sgd_regime_analytic" in ds else [])
    sub = ds[keep].sortby(over).transpose("kappa", over, ...)
    x = sub[over].values.astype(float)
    kappa = sub["kappa"].values.astype(float)
    both, ode, agree = (np.full(len(kappa), np.nan) for _ in range(3))
    for j in range(len(kappa)):
        ratio = sub["ratio_exponent"].values[j].reshape(len(x), -1)
        step = sub["step_exponent"].values[j].reshape(len(x), -1)
        both[j] = _zero_crossing(x, np.nanmedian(ratio, axis=1))
        ode[j] = _zero_crossing(x, np.nanmedian(step, axis=1))
        if "sgd_regime_analytic" in sub:
            agree[j] = float(np.mean(sub["sgd_regime"].values[j] == sub["sgd_regime_analytic"].values[j]))
    coords = {"kappa": sub["kappa"]}

    def out(values: np.ndarray, long_name: str) -> xr.DataArray:
        return xr.DataArray(values, dims=("kappa",), coords=coords, attrs={"long_name": long_name, "units": "1"})

    return {
        "sgd_line_both_delta": out(both, "delta where both terms survive (flow's exponents)"),
        "sgd_line_both_delta_analytic": out(-kappa, "delta = -kappa (published)"),
        "sgd_line_ode_delta": out(ode, "delta where the ODE limit ends (flow's exponents)"),
        "sgd_line_ode_delta_analytic": out(-kappa - 0.5, "delta = -kappa - 1/2 (published figure)"),
        "sgd_line_ode_delta_code": out(-(1.0 + kappa) / 2.0, "delta = -(1 + kappa)/2 (authors' code's region test)"),
        "sgd_regime_agreement": out(agree, "fraction of delta values whose regime is the published one"),
    }
