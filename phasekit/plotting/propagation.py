"""Figures of signal propagation: order/chaos phase diagrams and depth profiles of correlations."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure

from .common import label, new_figure, register_figure

__all__ = ["plot_phase_diagram", "plot_phase_diagrams", "plot_depth_profiles"]


def _panels(ds: xr.Dataset) -> list[xr.Dataset]:
    """One dataset over ``(sigma_b2, sigma_w2)`` per activation (dependent grids: by position)."""
    if "activation" in ds.dims:
        subs = [ds.isel(activation=j) for j in range(ds.sizes["activation"])]
    else:
        subs = [ds]
    out = []
    for sub in subs:
        for name in ("sigma_b2", "sigma_w2"):
            index = f"{name}_index"
            if index in sub.dims:
                sub = sub.swap_dims({index: name}) if sub[name].dims == (index,) else sub
        out.append(sub)
    return out


def plot_phase_diagram(ds: xr.Dataset, ax: Axes, *, variable: str = "xi_c", vmax_xi: float = 100.0) -> None:
    """One phase diagram over ``(sigma_b2, sigma_w2)`` with the edge of chaos, drawn into ``ax``.

    Colour: ``xi_c`` (depth scale, log colour scale capped at ``vmax_xi``),
    ``chi_1`` or ``c_star``; grey: unbounded variance; red: the critical line
    (stored by the ``edge_of_chaos`` analysis), dotted where its ``q*`` repels
    the variance map; white dashed: ``chi_1 = 1`` on the grid.
    """
    fig = ax.figure
    sb, sw = ds["sigma_b2"].values, ds["sigma_w2"].values
    da = ds[variable].transpose("sigma_b2", "sigma_w2")
    values = da.values.T  # rows: sigma_w2, columns: sigma_b2
    if variable == "xi_c":
        shown = np.clip(values, 0.1, vmax_xi)
        mesh = ax.pcolormesh(sb, sw, shown, shading="nearest", cmap="viridis",
                             norm=LogNorm(vmin=max(0.1, np.nanmin(shown)), vmax=vmax_xi))
    else:
        mesh = ax.pcolormesh(sb, sw, values, shading="nearest", cmap="viridis")
    fig.colorbar(mesh, ax=ax, label=label(da))
    unbounded = ds["phase"].transpose("sigma_b2", "sigma_w2").values.T == 2
    if unbounded.any():
        ax.pcolormesh(sb, sw, np.where(unbounded, 1.0, np.nan), shading="nearest",
                      cmap=ListedColormap(["0.75"]), vmin=0, vmax=1)
        ax.plot([], [], "s", color="0.75", label="variance unbounded")
    if "eoc_sigma_w2" in ds:
        line = ds["eoc_sigma_w2"].values
        ok = np.isfinite(line)
        attracting = ds["eoc_q_attracting"].values > 0 if "eoc_q_attracting" in ds else ok
        if ok.sum() >= 2:
            ax.plot(sb, np.where(ok & attracting, line, np.nan), "r-", lw=2, label="edge of chaos")
            dotted = np.where(ok & ~attracting, line, np.nan)
            if np.isfinite(dotted).any():
                ax.plot(sb, dotted, "r:", lw=2, label="edge of chaos, q* repelling")
        elif ok.sum() == 1:
            ax.plot(sb[ok], line[ok], "r*", ms=14, label="edge of chaos")
    ax.set_ylim(float(sw.min()), float(sw.max()))
    chi = ds["chi_1"].transpose("sigma_b2", "sigma_w2").values.T
    if np.isfinite(chi).any() and np.nanmin(chi) < 1 < np.nanmax(chi):
        ax.contour(sb, sw, chi, levels=[1.0], colors="w", linestyles="--", linewidths=1)
    ax.set_xlabel(label(ds["sigma_b2"]))
    ax.set_ylabel(label(ds["sigma_w2"]))
    act = ds["activation"].values.item() if "activation" in ds.coords else ""
    ax.set_title(f"{act}: ordered below, chaotic above the line", fontsize=10)
    # below the axes: over the map it would hide cells and the chi_1 = 1 contour
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=7, frameon=False)


@register_figure("phase_diagrams")
def plot_phase_diagrams(ds: xr.Dataset, variable: str = "xi_c", title: str | None = None) -> Figure:
    """Side-by-side phase diagrams, one panel per activation."""
    subs = _panels(ds)
    ncol = min(len(subs), 3)
    nrow = -(-len(subs) // ncol)
    fig, axes = new_figure(nrow, ncol, figsize=(5.4 * ncol, 4.4 * nrow))
    for ax, sub in zip(axes.ravel(), subs):
        plot_phase_diagram(sub, ax, variable=variable)
    for ax in axes.ravel()[len(subs):]:
        ax.set_visible(False)
    fig.suptitle(title or "Signal propagation: depth scale of correlations and the edge of chaos "
                          "(white dashed: chi_1 = 1 on the grid)")
    return fig


@register_figure("depth_profiles")
def plot_depth_profiles(ds: xr.Dataset, title: str | None = None) -> Figure:
    """``1 - c_l`` and ``l^p (1 - c_l)`` against depth, with the predicted constants.

    One profile per grid point; ``p`` is 2 for relu, 1 otherwise.  First panel
    ``1 - c_l`` (log-log), then one panel per ``p`` with the predicted asymptotes (dashed).
    """
    case = ds["one_minus_c"].dims[0] if ds["one_minus_c"].ndim > 1 else None
    runs = [ds.isel({case: j}) for j in range(ds.sizes[case])] if case else [ds]
    powers = [2 if str(r["activation"].values.item()) == "relu" else 1 for r in runs]
    distinct = sorted(set(powers), reverse=True)
    fig, axes = new_figure(1, 1 + len(distinct), figsize=(5.4 * (1 + len(distinct)), 4.4))
    ax0 = axes[0, 0]
    panel = {p: axes[0, 1 + j] for j, p in enumerate(distinct)}
    for r, p in zip(runs, powers):
        d = r["one_minus_c"].values
        n = int(np.sum(np.isfinite(d)))
        layer = np.arange(1, n)
        d = d[1:n]
        sw = float(r["sigma_w2"].values) if "sigma_w2" in r else np.nan
        name = (f"{r['activation'].values.item()}, sigma_w2 = {sw:.4g}, "
                f"sigma_b2 = {float(r['sigma_b2'].values):.3g}")
        (h,) = ax0.loglog(layer, d, label=name)
        panel[p].semilogx(layer, layer.astype(float) ** p * d, color=h.get_color(), label=name)
        asym = float(r["asymptote"].values)
        if np.isfinite(asym):
            panel[p].axhline(asym, color=h.get_color(), ls="--", lw=1, label=f"predicted {asym:.4g}")
    ax0.set_xlabel("layer l")
    ax0.set_ylabel(label(ds["one_minus_c"]))
    ax0.set_title("1 - c_l on the edge of chaos", fontsize=10)
    ax0.legend(fontsize=7)
    for p, ax in panel.items():
        ax.set_xlabel("layer l")
        ax.set_ylabel(f"l^{p} (1 - c_l)")
        ax.set_title(f"l^{p} (1 - c_l)" + (" (relu: 9 pi^2 / 2)" if p == 2 else ""), fontsize=10)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig
