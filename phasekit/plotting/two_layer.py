"""Figures of lazy versus feature-learning grids (studies of the ``lazy_training`` system).

Seeds are summarised by their median with a min-max band.
"""

from __future__ import annotations

import textwrap
from typing import Sequence

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .common import fmt, label, new_figure, register_figure

__all__ = ["plot_against_tau", "plot_loss_vs_width", "plot_distance_vs_scale"]


def _ylabel(ax: Axes, text: str) -> None:
    """A y label wrapped onto lines short enough for the axes' height (these labels are long)."""
    ax.set_ylabel("\n".join(textwrap.wrap(text, 44)))


def _band(ax: Axes, x: np.ndarray, da: xr.DataArray, **kwargs) -> None:
    """Median over ``seed`` as a line, min-max as a shaded band."""
    if "seed" in da.dims:
        med, lo, hi = da.median("seed"), da.min("seed"), da.max("seed")
    else:
        med = lo = hi = da
    (line,) = ax.plot(x, med.values, marker="o", ms=3, **kwargs)
    ax.fill_between(x, lo.values, hi.values, color=line.get_color(), alpha=0.2, lw=0)


def _first_of_others(ds: xr.Dataset, keep: tuple[str, ...]) -> tuple[xr.Dataset, str]:
    note = []
    for dim in list(ds["status"].dims) if "status" in ds else []:
        if dim not in keep and dim != "seed":
            note.append(f"{dim} = {fmt(ds[dim].values[0]) if dim in ds.coords else 0}")
            ds = ds.isel({dim: 0})
    return ds, ", ".join(note)


@register_figure("against_tau")
def plot_against_tau(ds: xr.Dataset, var: str, reference: str | Sequence[str] | None = None, logy: bool = True,
                     title: str | None = None) -> Figure:
    """``var`` against the initial scale tau (log axes), one line per width ``m``; ``reference``: further variables dashed."""
    if var not in ds:
        raise ValueError(f"var: {var!r} is not in the dataset; available: {sorted(ds.data_vars)}")
    ds, note = _first_of_others(ds, ("tau", "m"))
    fig, axes = new_figure(figsize=(6.4, 4.4))
    ax = axes[0, 0]
    tau = ds["tau"].values
    widths = ds["m"].values if "m" in ds.dims else [None]
    refs = [reference] if isinstance(reference, str) else list(reference or [])
    for i, m in enumerate(widths):
        sub = ds.sel(m=m) if m is not None else ds
        tag = f"m = {int(m)}" if m is not None else ""
        _band(ax, tau, sub[var], color=f"C{i}", label=f"network {tag}".strip())
        for ref, style in zip(refs, ("--", ":", "-.")):
            if ref in sub and np.isfinite(sub[ref].values).any():
                _band(ax, tau, sub[ref], color=f"C{i}", ls=style,
                      label=f"{sub[ref].attrs.get('long_name', ref)} {tag}".strip())
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(label(ds["tau"]))
    _ylabel(ax, label(ds[var]))
    ax.set_title((title or ds[var].attrs.get("long_name", var)) + (f"\n{note}" if note else ""), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


@register_figure("loss_vs_width")
def plot_loss_vs_width(ds: xr.Dataset, var: str = "loss", title: str | None = None) -> Figure:
    """Loss against width, one panel per activation, one line per training regime (a ``regime`` case axis).

    ``loss_floor`` (the symmetry floor of the activation) and, for the lazy
    regime, ``tangent_loss_limit`` are drawn as references.
    """
    if "regime" not in ds.dims or "m" not in ds.dims:
        raise ValueError("ds: need dimensions 'regime' and 'm'")
    acts = list(ds["activation"].values) if "activation" in ds.dims else [None]
    fig, axes = new_figure(1, len(acts), figsize=(5.4 * len(acts), 4.4))
    m = ds["m"].values
    for ax, act in zip(axes[0], acts):
        sub = ds.sel(activation=act) if act is not None else ds
        for i, regime in enumerate(sub["regime"].values):
            r = sub.sel(regime=regime)
            desc = f"{regime} (tau = {float(r['tau']):g}, scale = {float(r['scale']):g})"
            _band(ax, m, r[var], color=f"C{i}", label=desc)
            if var == "loss" and "tangent_loss_limit" in r and regime == "lazy":
                _band(ax, m, r["tangent_loss_limit"], color=f"C{i}", ls=":", label="tangent model, infinite time")
        floor = float(sub["loss_floor"].max()) if "loss_floor" in sub else 0.0
        if var == "loss" and floor > 0:
            ax.axhline(floor, color="k", ls="--", lw=1, label="symmetry floor of g")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(label(ds["m"]))
        ax.set_title(f"{act} student" if act is not None else "student", fontsize=10)
        _ylabel(ax, label(ds[var]))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title or f"{ds[var].attrs.get('long_name', var)} vs width", fontsize=11)
    return fig


@register_figure("distance_vs_scale")
def plot_distance_vs_scale(ds: xr.Dataset, title: str | None = None) -> Figure:
    """Network-to-tangent-model distance against the output scale, one line per variant, with the stored exponents."""
    if "variant" not in ds.dims or "scale" not in ds.dims:
        raise ValueError("ds: need dimensions 'variant' and 'scale'")
    fig, axes = new_figure(figsize=(7.2, 4.6))
    ax = axes[0, 0]
    scale = ds["scale"].values
    for i, variant in enumerate(ds["variant"].values):
        r = ds.sel(variant=variant)
        slope = float(r["distance_exponent"]) if "distance_exponent" in r else np.nan
        exp = float(r["distance_expected_exponent"]) if "distance_expected_exponent" in r else np.nan
        _band(ax, scale, r["tangent_distance"], color=f"C{i}",
              label=f"{variant}: slope {fmt(slope, 3)} (expected {fmt(exp, 2)})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(label(ds["scale"]))
    _ylabel(ax, label(ds["tangent_distance"]))
    ax.set_title(title or "distance between trained network and trained tangent model", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig
