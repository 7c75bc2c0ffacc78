"""Recipes for lazy versus feature-learning training of two-layer networks.

``lazy_vs_active``
    The phase picture against the initial scale tau: loss at the end of
    training, relative weight displacement and distance to the tangent model.
``lazy_width``
    Loss at the end of training against the width, ReLU and sigmoid students,
    in the feature-learning and in the lazy regime.
``lazy_scale``
    Distance between the trained network and its trained tangent model as the
    output scale grows, with the fitted exponents (smooth vs ReLU students,
    symmetrised vs centred initialisations).

Each writes netCDF datasets, PNG figures and a short Markdown report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import xarray as xr

from ...core.datasets import provenance_attrs
from ...plotting.common import save_figure
from ...plotting.two_layer import (
    plot_against_tau,
    plot_displacement_vs_tau,
    plot_distance_vs_scale,
    plot_loss_vs_tau,
    plot_loss_vs_width,
    plot_tangent_distance_vs_tau,
)
from ..scans import two_layer_sweep
from . import choices, recipe

__all__ = ["lazy_vs_active_recipe", "lazy_width_recipe", "lazy_scale_recipe", "scale_study", "fit_exponent",
           "classify_regime"]

# A run is lazy when its predictor stays within this fraction of |f*| of the tangent
# model's, and learns features when it beats the tangent model's infinite-time loss
# by at least this factor.
LAZY_DISTANCE = 0.1
ACTIVE_FACTOR = 0.1


def classify_regime(relative_tangent_distance: float, loss: float, tangent_loss_limit: float) -> str:
    """``"lazy"``, ``"feature learning"`` or ``"crossover"`` for one (median) run.

    Lazy: the trained network is within ``LAZY_DISTANCE |f*|`` of the trained tangent
    model.  Feature learning: its loss is below ``ACTIVE_FACTOR`` times the loss of the
    tangent model trained to convergence, i.e. no kernel fit on the initial features
    comes close.  Otherwise crossover.
    """
    if relative_tangent_distance < LAZY_DISTANCE:
        return "lazy"
    if loss < ACTIVE_FACTOR * tangent_loss_limit:
        return "feature learning"
    return "crossover"


def _fmt(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{x:.3g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


@recipe("lazy_vs_active", checks={"d": ">= 1", "m0": ">= 1", "widths": ">= 1", "tau_min": "> 0", "tau_max": "> 0",
                                 "n_tau": ">= 1", "seeds": ">= 0", "activation": "activation", "scale": "> 0",
                                 "T": "> 0", "threshold": "> 0", "n_workers": "workers"})
def lazy_vs_active_recipe(
    outdir: Path,
    quick: bool = False,
    *,
    d: int = 20,
    m0: int = 3,
    widths: Sequence[int] = (50,),
    tau_min: float = 1e-2,
    tau_max: float = 10.0,
    n_tau: int = 13,
    seeds: Sequence[int] = (0, 1, 2),
    activation: str = "relu",
    scale: float = 1.0,
    T: float = 200.0,
    threshold: float = 0.25,
    n_workers: int | None = None,
) -> dict[str, Path]:
    """Phase picture against the initial scale tau.

    Trains students of widths ``widths`` from ``n_tau`` log-spaced initial scales in
    ``[tau_min, tau_max]`` (gradient flow on the exact population loss, horizon
    :func:`phasekit.lazy_training.training.horizon`) together with their tangent models.  Writes
    ``lazy_vs_active.nc``, ``loss_vs_tau.png``, ``displacement_vs_tau.png``,
    ``tangent_distance_vs_tau.png``, ``time_to_threshold_vs_tau.png`` and ``report.md``.
    """
    outdir = Path(outdir)
    if quick:
        d, widths, n_tau, seeds, T, n_workers = 10, (8,), 3, (0,), 50.0, 1
    taus = np.geomspace(float(tau_min), float(tau_max), int(n_tau))
    ds = two_layer_sweep(taus, widths, seeds, activations=(activation,), scales=(scale,), d=d, m0=m0,
                            T=T, threshold=threshold, n_workers=n_workers)
    files: dict[str, Path] = {}
    path = outdir / "lazy_vs_active.nc"
    ds.to_netcdf(path, engine="scipy")
    files["dataset"] = path
    files["loss_figure"] = save_figure(plot_loss_vs_tau(ds), outdir / "loss_vs_tau.png")
    files["displacement_figure"] = save_figure(plot_displacement_vs_tau(ds), outdir / "displacement_vs_tau.png")
    files["distance_figure"] = save_figure(plot_tangent_distance_vs_tau(ds),
                                           outdir / "tangent_distance_vs_tau.png")
    files["time_figure"] = save_figure(plot_against_tau(ds, "time_to_threshold"),
                                       outdir / "time_to_threshold_vs_tau.png")
    files["report"] = _write_tau_report(ds, outdir / "report.md", threshold=threshold, T=T)
    return files


def _write_tau_report(ds: xr.Dataset, path: Path, *, threshold: float, T: float) -> Path:
    sub = ds.isel(activation=0, scale=0)
    act = str(sub["activation"].values)
    scale = float(sub["scale"])
    params = json.loads(ds.attrs.get("parameters", "{}"))
    parts = [
        "# Lazy versus feature learning: phase picture against the initial scale",
        "",
        f"Student: {act}, output scale {scale:g}, input dimension d = {params.get('d', '?')}, "
        f"teacher of {params.get('m0', '?')} ReLU units; gradient flow on the exact population "
        f"loss; medians over {sub.sizes['seed']} seeds.  Time t is the mean-field time "
        "dw/dt = -(m / scale^2) grad L; each run ends at t = T / max(1, tau^2) for ReLU "
        "(T / max(1, tau) for bounded activations) "
        f"(T = {T:g}), i.e. T units of tangent-kernel time for tau > 1 and T units of "
        "mean-field time below.",
        "",
        "Regimes: **lazy** when the trained network stays within "
        f"{LAZY_DISTANCE:g} |f*| of its trained tangent model (linearisation around the "
        "initialisation: a kernel method on the initial features); **feature learning** when "
        f"its loss is below {ACTIVE_FACTOR:g} times the loss the tangent model reaches at "
        "infinite time (the best fit any kernel on the initial features achieves), which "
        "requires the first-layer weights to move far from their initial directions; "
        "**crossover** in between.",
        "",
    ]
    for m in sub["m"].values:
        r = sub.sel(m=m).median("seed")
        rows = []
        for i, tau in enumerate(r["tau"].values):
            ri = r.isel(tau=i)
            regime = classify_regime(float(ri["relative_tangent_distance"]), float(ri["loss"]),
                                     float(ri["tangent_loss_limit"]))
            rows.append([f"{tau:.3g}", _fmt(float(ri["loss"])), _fmt(float(ri["relative_loss"])),
                         _fmt(float(ri["tangent_loss"])), _fmt(float(ri["tangent_loss_limit"])),
                         _fmt(float(ri["weight_displacement"])), _fmt(float(ri["relative_tangent_distance"])),
                         _fmt(float(ri["time_to_threshold"])), regime])
        parts += [f"## Width m = {int(m)}", "",
                  _table(["tau", "loss", "loss / initial", "tangent loss (same t)", "tangent loss (t = inf)",
                          "relative weight displacement", "distance to tangent / norm of f*",
                          f"time to {threshold:g} x initial loss", "regime"], rows), ""]
    parts += [
        "Reading: for small tau the weights start near the saddle w = 0, escape it in a time "
        "growing like log(1/tau), align with the teacher's units and drive the loss far below "
        "any kernel fit on the initial features (feature learning, mean-field regime).  For "
        "large tau the relative weight displacement falls like 1/tau^2 and the network "
        "coincides with its tangent model, whose loss is limited by the random initial features "
        "(lazy, tangent-kernel regime).",
        "",
        "Figures: loss_vs_tau.png, displacement_vs_tau.png, tangent_distance_vs_tau.png, "
        "time_to_threshold_vs_tau.png.",
        "",
    ]
    path.write_text("\n".join(parts))
    return path


@recipe("lazy_width", checks={"d": ">= 1", "m0": ">= 1", "widths": ">= 1", "seeds": ">= 0", "activations": "activation",
                             "active_tau": "> 0", "lazy_tau": "> 0", "lazy_scale": "> 0", "T": "> 0",
                             "n_workers": "workers"})
def lazy_width_recipe(
    outdir: Path,
    quick: bool = False,
    *,
    d: int = 20,
    m0: int = 3,
    widths: Sequence[int] = (4, 8, 16, 32, 64),
    seeds: Sequence[int] = (0, 1, 2),
    activations: Sequence[str] = ("relu", "sigmoid"),
    active_tau: float = 0.1,
    lazy_tau: float = 1.0,
    lazy_scale: float = 100.0,
    T: float = 200.0,
    n_workers: int | None = None,
) -> dict[str, Path]:
    """Loss at the end of training against the width in both regimes.

    Feature learning: initial scale ``active_tau`` at output scale 1.  Lazy:
    initial scale ``lazy_tau`` at output scale ``lazy_scale``.  Writes
    ``lazy_width.nc`` (dimensions ``regime, activation, m, seed``),
    ``loss_vs_width.png``, ``excess_loss_vs_width.png`` (loss above the symmetry
    floor of the activation) and ``report.md``.
    """
    outdir = Path(outdir)
    if quick:
        d, widths, seeds, T, n_workers = 8, (2, 4), (0,), 20.0, 1
    regimes = {"feature learning": (float(active_tau), 1.0), "lazy": (float(lazy_tau), float(lazy_scale))}
    parts = []
    for name, (tau, scale) in regimes.items():
        ds = two_layer_sweep([tau], widths, seeds, activations=activations, scales=[scale], d=d, m0=m0,
                                T=T, n_workers=n_workers)
        ds = ds.isel(tau=0, scale=0, drop=True)
        parts.append(ds.assign_coords(regime=name))
    ds = xr.concat(parts, dim="regime", combine_attrs="override")
    ds.attrs = {}
    ds = ds.assign_coords(
        regime_tau=("regime", [v[0] for v in regimes.values()], {"long_name": "initial scale tau", "units": "1"}),
        regime_scale=("regime", [v[1] for v in regimes.values()], {"long_name": "output scale", "units": "1"}),
    )
    ds["regime"].attrs.update(long_name="training regime", units="1")
    ds.attrs.update(provenance_attrs(
        dict(d=d, m0=m0, widths=list(widths), seeds=list(seeds), activations=list(activations),
             active_tau=active_tau, lazy_tau=lazy_tau, lazy_scale=lazy_scale, T=T),
        system="two-layer student-teacher: lazy versus feature learning",
        time_units="mean-field time t: dw/dt = -(m / scale^2) grad L",
    ))
    files: dict[str, Path] = {}
    path = outdir / "lazy_width.nc"
    ds.to_netcdf(path, engine="scipy")
    files["dataset"] = path
    files["figure"] = save_figure(plot_loss_vs_width(ds), outdir / "loss_vs_width.png")
    files["excess_figure"] = save_figure(plot_loss_vs_width(ds, "excess_loss"), outdir / "excess_loss_vs_width.png")
    rows = []
    med = ds.median("seed")
    for regime in ds["regime"].values:
        for act in ds["activation"].values:
            r = med.sel(regime=regime, activation=act)
            for m in ds["m"].values:
                q = r.sel(m=m)
                rows.append([str(regime), str(act), str(int(m)), _fmt(float(q["loss"])),
                             _fmt(float(q["loss_floor"])), _fmt(float(q["tangent_loss_limit"])),
                             _fmt(float(q["weight_displacement"])), _fmt(float(q["relative_tangent_distance"]))])
    text = "\n".join([
        "# Loss against width in the lazy and feature-learning regimes", "",
        f"Teacher: {m0} ReLU units in d = {d}; medians over {len(seeds)} seeds; horizon T = {T:g} "
        "(kernel time).  Feature learning: tau = "
        f"{active_tau:g}, scale 1.  Lazy: tau = {lazy_tau:g}, scale = {lazy_scale:g}.", "",
        _table(["regime", "activation", "m", "loss", "symmetry floor", "tangent loss (t = inf)",
                "relative weight displacement", "distance to tangent / norm of f*"], rows), "",
        "Reading: a lazy network is a kernel method on its random initial features, so its "
        "loss falls only slowly with the number of features (width) and stays near the "
        "tangent model's infinite-time loss.  A feature-learning ReLU network aligns its units "
        "with the teacher's and fits it once it has enough units, whatever the width; what "
        "remains at the end is the slow shrinking of redundant units, which is slower for "
        "wider students at a fixed horizon.  Without biases a sigmoid unit is 1/2 plus an odd "
        "function of its pre-activation, so a sigmoid student only builds constant-plus-odd "
        "functions and can never fit the even part of the ReLU teacher: its loss is bounded "
        "below by the symmetry floor in both regimes (excess_loss_vs_width.png shows the loss "
        "above it).  From a small initialisation a sigmoid student first fits the linear part "
        "of the teacher and leaves that near-linear region only slowly (sigmoid''(0) = 0), so "
        "at a finite horizon its feature-learning loss can exceed the lazy one.", "",
    ])
    files["report"] = outdir / "report.md"
    files["report"].write_text(text)
    return files


_SCALE_VARIANTS: dict[str, dict[str, Any]] = {
    "relu, symmetrised": dict(activation="relu", symmetric=True, centered=False),
    "erf, symmetrised": dict(activation="erf", symmetric=True, centered=False),
    "erf, centred": dict(activation="erf", symmetric=False, centered=True),
    "relu, centred": dict(activation="relu", symmetric=False, centered=True),
}

_SCALE_THEORY = {
    "relu, symmetrised": -0.5,
    "erf, symmetrised": -2.0,
    "erf, centred": -1.0,
    "relu, centred": -0.5,
}


def fit_exponent(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ``log y`` against ``log x``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(y) & (y > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def scale_study(
    scales: Sequence[float],
    *,
    variants: Sequence[str] = tuple(_SCALE_VARIANTS),
    d: int = 10,
    m0: int = 3,
    m: int = 20,
    tau: float = 1.0,
    seeds: Sequence[int] = (0,),
    T: float = 10.0,
    rtol: float = 1e-9,
    n_workers: int | None = None,
) -> xr.Dataset:
    """Distance to the tangent model against the output scale for several variants.

    Returns a dataset with dimensions ``(variant, scale, seed)`` and the fitted
    ``distance_exponent(variant)`` of the median distance.
    """
    unknown = [v for v in variants if v not in _SCALE_VARIANTS]
    if unknown:
        raise ValueError(f"variants: unknown {unknown}; available: {list(_SCALE_VARIANTS)}")
    parts = []
    for name in variants:
        opts = dict(_SCALE_VARIANTS[name])
        act = opts.pop("activation")
        ds = two_layer_sweep([tau], [m], seeds, activations=(act,), scales=scales, d=d, m0=m0,
                                t_final=T, rtol=rtol, n_workers=n_workers, **opts)
        ds = ds.isel(activation=0, m=0, tau=0, drop=True)
        parts.append(ds.assign_coords(variant=name))
    ds = xr.concat(parts, dim="variant", combine_attrs="override")
    ds.attrs = {}
    ds["variant"].attrs.update(long_name="student activation and initialisation", units="1")
    exps = [fit_exponent(ds["scale"].values, ds["tangent_distance"].sel(variant=v).median("seed").values)
            for v in variants]
    ds["distance_exponent"] = ("variant", np.array(exps),
                               {"long_name": "fitted exponent of distance vs scale", "units": "1"})
    ds["expected_exponent"] = ("variant", np.array([_SCALE_THEORY[v] for v in variants]),
                               {"long_name": "exponent predicted by the smoothness argument", "units": "1"})
    ds.attrs.update(provenance_attrs(
        dict(scales=list(scales), variants=list(variants), d=d, m0=m0, m=m, tau=tau, seeds=list(seeds),
             T=T, rtol=rtol),
        system="two-layer student-teacher: lazy versus feature learning",
        time_units="mean-field time t: dw/dt = -(m / scale^2) grad L",
    ))
    return ds


@recipe("lazy_scale", checks={"scales": "> 0", "variants": choices(*_SCALE_VARIANTS), "d": ">= 1", "m0": ">= 1",
                             "m": ">= 1", "tau": "> 0", "seeds": ">= 0", "T": "> 0", "n_workers": "workers"})
def lazy_scale_recipe(
    outdir: Path,
    quick: bool = False,
    *,
    scales: Sequence[float] = (8.0, 16.0, 32.0, 64.0, 128.0, 256.0),
    variants: Sequence[str] = tuple(_SCALE_VARIANTS),
    d: int = 10,
    m0: int = 3,
    m: int = 20,
    tau: float = 1.0,
    seeds: Sequence[int] = (0, 1),
    T: float = 10.0,
    n_workers: int | None = None,
) -> dict[str, Path]:
    """How fast the trained network approaches its trained tangent model as the output scale grows.

    Writes ``lazy_scale.nc``, ``tangent_distance_vs_scale.png`` and ``report.md``.
    """
    outdir = Path(outdir)
    if quick:
        scales, variants, m, seeds, n_workers = (16.0, 64.0), ("relu, symmetrised", "erf, centred"), 6, (0,), 1
    ds = scale_study(scales, variants=variants, d=d, m0=m0, m=m, tau=tau, seeds=seeds, T=T, n_workers=n_workers)
    files: dict[str, Path] = {}
    path = outdir / "lazy_scale.nc"
    ds.to_netcdf(path, engine="scipy")
    files["dataset"] = path
    files["figure"] = save_figure(plot_distance_vs_scale(ds), outdir / "tangent_distance_vs_scale.png")
    rows = [[str(v), _fmt(float(ds["distance_exponent"].sel(variant=v))),
             _fmt(float(ds["expected_exponent"].sel(variant=v)))] for v in ds["variant"].values]
    text = "\n".join([
        "# Distance between the trained network and its trained tangent model", "",
        f"Width m = {m}, d = {d}, teacher of {m0} ReLU units, initial scale tau = {tau:g}, both "
        f"trained by gradient flow to t = {T:g} (time rescaled by scale^2, so that the lazy "
        "dynamics is the same at every scale).", "",
        _table(["variant", "fitted exponent", "expected"], rows), "",
        "The lazy-training bound says the distance is O(1/scale) for a smooth model with "
        "f(w0) = 0.  It is attained by the centred smooth network f(w) - f(w0) started without "
        "symmetrisation.  With the symmetrised start (twins with opposite output weights) the "
        "twins move oppositely in the first layer and equally in the second to leading order, "
        "so the second-order Taylor term cancels within each pair and the distance falls like "
        "1/scale^2.  ReLU is not smooth: moving a unit by eps ~ 1/scale changes relu' on a "
        "slab of probability ~eps, so the linearisation error per unit is ~eps^(3/2) in L2 and "
        "the distance falls like (scale m)^(-1/2).", "",
    ])
    files["report"] = outdir / "report.md"
    files["report"].write_text(text)
    return files
