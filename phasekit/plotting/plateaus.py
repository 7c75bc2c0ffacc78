"""Figures for plateaus and convergence times (datasets from :mod:`phasekit.committee`)."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from .common import label

__all__ = ["plot_plateau_scaling", "plot_convergence_times"]


def _as_list(datasets: xr.Dataset | Sequence[xr.Dataset]) -> list[xr.Dataset]:
    return [datasets] if isinstance(datasets, xr.Dataset) else list(datasets)


def _case(ds: xr.Dataset) -> str:
    order = "2nd order" if int(ds.attrs.get("second_order", 0)) else "1st order"
    return f"{ds.attrs.get('activation', '?')} K=M={ds.attrs.get('K', '?')} ({order})"


def plot_plateau_scaling(datasets: xr.Dataset | Sequence[xr.Dataset]) -> plt.Figure:
    """Plateau length (units eta alpha) against ln(1/X), one panel per activation.

    Each dataset of :func:`phasekit.study.scans.plateau_scaling` gives markers
    (filled: start displaced from the plateau along the escape direction;
    open: another start kind), its least-squares line (solid; dotted for
    other starts) and, for the plateau start, the predicted slope
    ``1 / lambda_esc`` (dashed, through the centroid of the fitted points).
    """
    dss = _as_list(datasets)
    acts = list(dict.fromkeys(ds.attrs.get("activation", "?") for ds in dss))
    fig, axes = plt.subplots(1, len(acts), figsize=(5.2 * len(acts), 4.2), squeeze=False)
    colours: dict[tuple, str] = {}
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ds in dss:
        ax = axes[0, acts.index(ds.attrs.get("activation", "?"))]
        key = (ds.attrs.get("activation"), ds.attrs.get("K"), ds.attrs.get("second_order"))
        colour = colours.setdefault(key, cycle[len(colours) % len(cycle)])
        eta = float(ds.attrs["eta"])
        x = ds["ln_inv_X"].values
        y = ds["eta_plateau_length"].values
        plateau_start = ds.attrs.get("kind") == "plateau"
        fit = ds["in_fit"].values.astype(bool)
        ax.plot(x, y, "o", color=colour, mfc=colour if plateau_start else "none", ms=5,
                label=f"{_case(ds)}, start: {ds.attrs.get('kind')}")
        if np.isfinite(float(ds["fitted_slope"])):
            xs = np.linspace(x.min(), x.max(), 2)
            a, b = eta * float(ds["fitted_slope"]), eta * float(ds["fitted_intercept"])
            ax.plot(xs, a * xs + b, "-" if plateau_start else ":", color=colour, lw=1.2,
                    label=f"  fit: slope {a:.4g} (ratio {float(ds['slope_ratio']):.4f})")
            if plateau_start and fit.any():
                p = eta * float(ds["predicted_slope"])
                xc, yc = x[fit].mean(), y[fit].mean()
                ax.plot(xs, yc + p * (xs - xc), "--", color="k", lw=0.8,
                        label=f"  1/lambda_esc = {p:.4g}")
    for ax, act in zip(axes[0], acts):
        ax.set_xlabel(label(dss[0]["ln_inv_X"]))
        ax.set_ylabel(label(dss[0]["eta_plateau_length"]))
        ax.set_title(f"Plateau length vs ln(1/X): {act}")
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_convergence_times(datasets: xr.Dataset | Sequence[xr.Dataset]) -> plt.Figure:
    """Convergence time against eta, one panel per dataset of
    :func:`phasekit.study.scans.convergence_time_vs_eta`, with ``eta_c`` (dashed)
    and the minimiser (star)."""
    dss = _as_list(datasets)
    fig, axes = plt.subplots(1, len(dss), figsize=(5.0 * len(dss), 4.0), squeeze=False)
    for ax, ds in zip(axes[0], dss):
        t = ds["convergence_time"]
        ok = np.isfinite(t.values)
        ax.semilogy(ds["eta"].values[ok], t.values[ok], "o-", ms=3, label="first eps_g < threshold")
        if (~ok).any():
            top = np.nanmax(t.values[ok]) if ok.any() else 1.0
            ax.semilogy(ds["eta"].values[~ok], np.full((~ok).sum(), top), "x", color="grey",
                        label="not reached")
        eta_c = float(ds["eta_c"])
        if np.isfinite(eta_c):
            ax.axvline(eta_c, ls="--", color="r", lw=1, label=f"eta_c = {eta_c:.4g}")
        eta_opt = float(ds["eta_opt"])
        if np.isfinite(eta_opt):
            ax.semilogy([eta_opt], [float(ds["convergence_time_min"])], "*", color="k", ms=11,
                        label=f"minimum at eta = {eta_opt:.4g}: alpha = {float(ds['convergence_time_min']):.4g}")
        ax.set_xlabel(label(ds["eta"]))
        ax.set_ylabel(label(t))
        ax.set_title(f"Convergence time: {_case(ds)}")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig
