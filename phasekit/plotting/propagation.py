"""Figures for signal propagation: order/chaos phase diagrams and depth profiles."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.colors import ListedColormap

from .common import label

__all__ = ["plot_phase_diagram", "plot_phase_diagrams", "plot_depth_profiles"]


def plot_phase_diagram(ds: xr.Dataset, ax: plt.Axes | None = None, *,
                       variable: str = "xi_c", vmax_xi: float = 100.0) -> plt.Figure:
    """One phase diagram over ``(sigma_b2, sigma_w2)`` with the edge of chaos.

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`phasekit.propagation.phases.phase_diagram`.
    ax : matplotlib Axes, optional
    variable : str
        Colour: ``"xi_c"`` (depth scale, log colour scale capped at ``vmax_xi``),
        ``"chi_1"`` or ``"c_star"``.
    vmax_xi : float
        Upper end of the ``xi_c`` colour scale (it diverges on the edge of chaos).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.0, 4.0))
    else:
        fig = ax.figure
    sb, sw = ds["sigma_b2"], ds["sigma_w2"]
    da = ds[variable]
    values = da.values.T  # rows: sigma_w2, columns: sigma_b2
    if variable == "xi_c":
        from matplotlib.colors import LogNorm

        shown = np.clip(values, 0.1, vmax_xi)
        mesh = ax.pcolormesh(sb.values, sw.values, shown, shading="nearest", cmap="viridis",
                             norm=LogNorm(vmin=max(0.1, np.nanmin(shown)), vmax=vmax_xi))
    else:
        mesh = ax.pcolormesh(sb.values, sw.values, values, shading="nearest", cmap="viridis")
    fig.colorbar(mesh, ax=ax, label=label(da))
    unbounded = (ds["phase"].values.T == 2).astype(float)
    if unbounded.any():
        ax.pcolormesh(sb.values, sw.values, np.where(unbounded > 0, 1.0, np.nan), shading="nearest",
                      cmap=ListedColormap(["0.75"]), vmin=0, vmax=1)
        ax.plot([], [], "s", color="0.75", label="variance unbounded")
    line = ds["eoc_sigma_w2"].values
    ok = np.isfinite(line)
    attracting = ds["eoc_q_attracting"].values > 0 if "eoc_q_attracting" in ds else ok
    if ok.sum() >= 2:
        solid = np.where(ok & attracting, line, np.nan)
        dotted = np.where(ok & ~attracting, line, np.nan)
        ax.plot(sb.values, solid, "r-", lw=2, label="edge of chaos")
        if np.isfinite(dotted).any():
            ax.plot(sb.values, dotted, "r:", lw=2, label="edge of chaos, q* repelling")
    elif ok.sum() == 1:
        ax.plot(sb.values[ok], line[ok], "r*", ms=14, label="edge of chaos")
    ax.set_ylim(float(sw.values.min()), float(sw.values.max()))
    if ds["chi_1"].notnull().any():
        ax.contour(sb.values, sw.values, ds["chi_1"].values.T, levels=[1.0], colors="w",
                   linestyles="--", linewidths=1)
    ax.set_xlabel(label(sb))
    ax.set_ylabel(label(sw))
    ax.set_title(f"{ds.attrs.get('activation', '')}: ordered below, chaotic above the line")
    ax.legend(loc="upper left", fontsize=8, framealpha=0.8)
    return fig


def plot_phase_diagrams(datasets: Sequence[xr.Dataset], *, variable: str = "xi_c") -> plt.Figure:
    """Side-by-side phase diagrams (one panel per activation)."""
    n = len(datasets)
    if n == 0:
        raise ValueError("datasets: need at least one phase diagram")
    ncol = min(n, 3)
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 4.2 * nrow), squeeze=False)
    for ax, ds in zip(axes.ravel(), datasets):
        plot_phase_diagram(ds, ax, variable=variable)
        ax.set_title(str(ds.attrs.get("activation", "")))
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.suptitle("Signal propagation: depth scale of correlations and the edge of chaos "
                 "(white dashed: chi_1 = 1 on the grid)")
    fig.tight_layout()
    return fig


def plot_depth_profiles(datasets: Sequence[xr.Dataset], powers: Sequence[int] | None = None
                        ) -> plt.Figure:
    """``1 - c_l`` and ``l^p (1 - c_l)`` against depth, with the predicted constants.

    Parameters
    ----------
    datasets : sequence of xarray.Dataset
        From :func:`phasekit.propagation.depth.correlation_depth_profile`.
    powers : sequence of int, optional
        ``p`` per dataset; default 2 for relu, 1 otherwise.

    Returns
    -------
    matplotlib.figure.Figure
        First panel: ``1 - c_l`` (log-log); then one panel per distinct ``p`` with
        ``l^p (1 - c_l)`` and the predicted asymptotes (dashed).
    """
    if len(datasets) == 0:
        raise ValueError("datasets: need at least one depth profile")
    if powers is None:
        powers = [2 if ds.attrs.get("activation") == "relu" else 1 for ds in datasets]
    distinct = sorted(set(powers), reverse=True)
    fig, axes = plt.subplots(1, 1 + len(distinct), figsize=(5.2 * (1 + len(distinct)), 4.2))
    ax0 = axes[0]
    panel = {p: axes[1 + j] for j, p in enumerate(distinct)}
    for ds, p in zip(datasets, powers):
        layer = ds["layer"].values[1:]
        d = ds["one_minus_c"].values[1:]
        name = (f"{ds.attrs.get('activation')}, sigma_w2={_param(ds, 'sigma_w2'):.4g}, "
                f"sigma_b2={_param(ds, 'sigma_b2'):.3g}")
        (h,) = ax0.loglog(layer, d, label=name)
        ax = panel[p]
        ax.semilogx(layer, layer.astype(float) ** p * d, color=h.get_color(), label=name)
        asym = float(ds.attrs.get("asymptote", np.nan))
        if np.isfinite(asym):
            ax.axhline(asym, color=h.get_color(), ls="--", lw=1, label=f"predicted {asym:.4g}")
    ax0.set_xlabel(label(datasets[0]["layer"]))
    ax0.set_ylabel(label(datasets[0]["one_minus_c"]))
    ax0.set_title("1 - c_l on the edge of chaos")
    ax0.legend(fontsize=7)
    for p, ax in panel.items():
        ax.set_xlabel(label(datasets[0]["layer"]))
        ax.set_ylabel(f"l^{p} (1 - c_l) [1]")
        ax.set_title(f"l^{p} (1 - c_l)" + (" (relu: 9 pi^2 / 2)" if p == 2 else ""))
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _param(ds: xr.Dataset, name: str) -> float:
    import json

    try:
        return float(json.loads(ds.attrs["parameters"])[name])
    except (KeyError, ValueError, TypeError):
        return float("nan")
