"""Figures of deep linear networks: mode strengths against time, closed form and trained network."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .common import fmt, label, new_figure, register_figure

__all__ = ["plot_mode_panel", "plot_mode_trajectories"]


def plot_mode_panel(point: xr.Dataset, ax: Axes, *, title: str = "", legend: bool = True) -> None:
    """Mode strengths of one grid point: closed form (lines), trained network (circles), fixed points (dotted)."""
    t = point["time"].values
    keep = np.isfinite(t)
    for m in range(point.sizes["mode"]):
        s = float(point["singular_value"].values[m])
        if not np.isfinite(s):
            continue
        (h,) = ax.plot(t[keep], point["u"].values[m][keep], lw=1.8, label=f"s = {s:g}")
        fp = float(point["fixed_point"].values[m])
        if np.isfinite(fp):
            ax.axhline(fp, color=h.get_color(), ls=":", lw=0.8)
        if "u_sim" in point:
            ts, us = point["record_time"].values, point["u_sim"].values[m]
            ok = np.isfinite(ts)
            step = max(1, int(ok.sum()) // 25)
            ax.plot(ts[ok][::step], us[ok][::step], "o", ms=4, mfc="none", color=h.get_color())
    if "u_sim" in point:
        ax.plot([], [], "ko", mfc="none", ms=4, label="trained network (GD)")
    ax.plot([], [], "k:", lw=0.8, label="fixed point")
    ax.set_xlabel(label(point["time"]))
    ax.set_ylabel(label(point["u"]))
    ax.set_title(title, fontsize=10)
    if legend:
        ax.legend(fontsize=8)


@register_figure("mode_trajectories")
def plot_mode_trajectories(ds: xr.Dataset, title: str | None = None) -> Figure:
    """One panel per grid point (rows: the first grid dim, columns: the second)."""
    dims = [d for d in ds["status"].dims]
    rows = ds.sizes[dims[0]] if dims else 1
    cols = ds.sizes[dims[1]] if len(dims) > 1 else 1
    fig, axes = new_figure(rows, cols, figsize=(5.8 * cols, 4.2 * rows))
    for r in range(rows):
        for c in range(cols):
            sel = dict(zip(dims, (r, c)))
            point = ds.isel(sel)
            text = ", ".join(f"{d} = {fmt(point[d].values.item())}" for d in dims if d in point.coords)
            plot_mode_panel(point, axes[r, c], title=text, legend=False)
    # one legend beside the panels (the same modes in every panel), never over a curve
    entries: dict[str, Any] = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(lab, h)
    # beside the panels at mid height: at the top it would cover the end of the suptitle, which spans the figure
    fig.legend(list(entries.values()), list(entries), fontsize=8, loc="outside right center")
    lr = " (circles: a network trained by gradient descent)" if "u_sim" in ds else ""
    fig.suptitle(title or f"Deep linear network: mode strengths (lines: closed form){lr}")
    return fig
