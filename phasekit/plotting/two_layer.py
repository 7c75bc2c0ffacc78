"""Figures of the lazy versus feature-learning studies (:mod:`phasekit.lazy_training`).

Every function takes a dataset written by :func:`phasekit.study.scans.two_layer_sweep`
(or by the recipes, which stack such sweeps along ``regime`` or ``variant``)
and returns a matplotlib Figure.  Seeds are summarised by their median with a
min-max band.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from .common import label

__all__ = [
    "plot_against_tau",
    "plot_loss_vs_tau",
    "plot_displacement_vs_tau",
    "plot_tangent_distance_vs_tau",
    "plot_loss_vs_width",
    "plot_distance_vs_scale",
]


def _band(ax: plt.Axes, x: np.ndarray, da: xr.DataArray, **kwargs) -> None:
    """Median over ``seed`` as a line, min-max as a shaded band."""
    if "seed" in da.dims:
        med, lo, hi = da.median("seed"), da.min("seed"), da.max("seed")
    else:
        med = lo = hi = da
    (line,) = ax.plot(x, med.values, marker="o", ms=3, **kwargs)
    ax.fill_between(x, lo.values, hi.values, color=line.get_color(), alpha=0.2, lw=0)


def _select_single(ds: xr.Dataset, keep: tuple[str, ...]) -> xr.Dataset:
    """First entry of each of ``activation, scale, m, tau, regime, variant`` not in ``keep``."""
    for dim in ("activation", "scale", "m", "tau", "regime", "variant"):
        if dim in ds.dims and dim not in keep:
            ds = ds.isel({dim: 0})
    return ds


def _context(ds: xr.Dataset) -> str:
    parts = []
    for name in ("activation", "scale", "m", "tau"):
        if name in ds.coords and ds[name].ndim == 0:
            value = ds[name].values.item()
            parts.append(f"{name} = {value:g}" if isinstance(value, (int, float)) else f"{name} = {value}")
    return ", ".join(parts)


def plot_against_tau(ds: xr.Dataset, var: str, *, ax: plt.Axes | None = None,
                     reference: str | Sequence[str] | None = None, logy: bool = True,
                     title: str | None = None) -> plt.Figure:
    """``var`` against the initial scale tau (log axes), one line per width ``m``.

    Parameters
    ----------
    ds : xarray.Dataset
        A sweep with dimension ``tau`` (and optionally ``m``, ``seed``); other
        dimensions are reduced to their first entry.
    var : str
        Variable to draw.
    ax : matplotlib Axes, optional
    reference : str or sequence of str, optional
        Further variables drawn dashed, dotted, ... in the same colour (e.g. the
        tangent model's loss).
    logy : bool
        Logarithmic y axis.
    title : str, optional
    """
    if var not in ds:
        raise ValueError(f"var: {var!r} is not in the dataset; available: {sorted(ds.data_vars)}")
    ds = _select_single(ds, ("tau", "m"))
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 4))
    tau = ds["tau"].values
    widths = ds["m"].values if "m" in ds.dims else [None]
    for i, m in enumerate(widths):
        sub = ds.sel(m=m) if m is not None else ds
        colour = f"C{i}"
        tag = f"m = {int(m)}" if m is not None else ""
        _band(ax, tau, sub[var], color=colour, label=f"network {tag}".strip())
        refs = [reference] if isinstance(reference, str) else list(reference or [])
        for ref, style in zip(refs, ("--", ":", "-.")):
            _band(ax, tau, sub[ref], color=colour, ls=style,
                  label=f"{sub[ref].attrs.get('long_name', ref)} {tag}".strip())
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(label(ds["tau"]))
    ax.set_ylabel(label(ds[var]))
    ax.set_title(title or f"{ds[var].attrs.get('long_name', var)}\n{_context(ds)}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_loss_vs_tau(ds: xr.Dataset, ax: plt.Axes | None = None) -> plt.Figure:
    """Loss at the end of training against tau, with the tangent model's loss (dashed)."""
    refs = [v for v in ("tangent_loss", "tangent_loss_limit") if v in ds and np.isfinite(ds[v]).any()]
    return plot_against_tau(ds, "loss", ax=ax, reference=refs,
                            title=f"loss at the end of training vs initial scale\n{_context(_select_single(ds, ('tau', 'm')))}")


def plot_displacement_vs_tau(ds: xr.Dataset, ax: plt.Axes | None = None) -> plt.Figure:
    """Relative weight displacement ``|w - w0| / |w0|`` against tau."""
    return plot_against_tau(ds, "weight_displacement", ax=ax)


def plot_tangent_distance_vs_tau(ds: xr.Dataset, ax: plt.Axes | None = None) -> plt.Figure:
    """Distance between the trained network and the trained tangent model against tau."""
    return plot_against_tau(ds, "relative_tangent_distance", ax=ax)


def plot_loss_vs_width(ds: xr.Dataset, var: str = "loss") -> plt.Figure:
    """Loss against width, one panel per activation, one line per training regime.

    Parameters
    ----------
    ds : xarray.Dataset
        Dimensions ``(regime, activation, m, seed)`` as written by the ``lazy_width``
        recipe; ``loss_floor`` and ``tangent_loss_limit`` are drawn as references.
    var : str
        Variable on the y axis.
    """
    if "regime" not in ds.dims or "m" not in ds.dims:
        raise ValueError("ds: need dimensions 'regime' and 'm'")
    acts = list(ds["activation"].values) if "activation" in ds.dims else [None]
    fig, axes = plt.subplots(1, len(acts), figsize=(5 * len(acts), 4), squeeze=False)
    m = ds["m"].values
    for ax, act in zip(axes[0], acts):
        sub = ds.sel(activation=act) if act is not None else ds
        for i, regime in enumerate(sub["regime"].values):
            r = sub.sel(regime=regime)
            desc = f"{regime} (tau = {float(r['regime_tau']):g}, scale = {float(r['regime_scale']):g})"
            _band(ax, m, r[var], color=f"C{i}", label=desc)
            if var == "loss" and "tangent_loss_limit" in r and regime == "lazy":
                _band(ax, m, r["tangent_loss_limit"], color=f"C{i}", ls=":",
                      label="tangent model, infinite time")
        floor = float(sub["loss_floor"].max()) if "loss_floor" in sub else 0.0
        if var == "loss" and floor > 0:
            ax.axhline(floor, color="k", ls="--", lw=1, label="symmetry floor of g")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(label(ds["m"]))
        ax.set_title(f"{act} student" if act is not None else "student", fontsize=10)
        ax.set_ylabel(label(ds[var]))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{ds[var].attrs.get('long_name', var)} vs width", fontsize=11)
    return fig


def plot_distance_vs_scale(ds: xr.Dataset) -> plt.Figure:
    """Network-to-tangent-model distance against the output scale, one line per variant.

    Parameters
    ----------
    ds : xarray.Dataset
        Dimensions ``(variant, scale, seed)`` with ``tangent_distance`` and the
        fitted ``distance_exponent(variant)``, as written by the ``lazy_scale`` recipe.
    """
    if "variant" not in ds.dims or "scale" not in ds.dims:
        raise ValueError("ds: need dimensions 'variant' and 'scale'")
    fig, ax = plt.subplots(figsize=(6, 4.5))
    scale = ds["scale"].values
    for i, variant in enumerate(ds["variant"].values):
        r = ds.sel(variant=variant)
        slope = float(r["distance_exponent"]) if "distance_exponent" in r else np.nan
        _band(ax, scale, r["tangent_distance"], color=f"C{i}", label=f"{variant}: slope {slope:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(label(ds["scale"]))
    ax.set_ylabel(label(ds["tangent_distance"]))
    ax.set_title("distance between trained network and trained tangent model", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig
