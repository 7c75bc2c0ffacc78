"""Figures for deep linear networks: mode strengths against time."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from .common import label

__all__ = ["plot_mode_trajectories"]


def plot_mode_trajectories(theory: xr.Dataset, simulation: xr.Dataset | None = None,
                           ax: plt.Axes | None = None, *, title: str | None = None) -> plt.Figure:
    """Mode strengths ``u_alpha(t)``: theory as lines, a trained network as markers.

    Parameters
    ----------
    theory : xarray.Dataset
        From :func:`phasekit.deep_linear.modes.mode_trajectories`.
    simulation : xarray.Dataset, optional
        From :func:`phasekit.deep_linear.network.simulate_deep_linear` (same modes).
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.0, 4.2))
    else:
        fig = ax.figure
    t = theory["time"]
    for m in theory["mode"].values:
        s = float(theory["singular_value"].sel(mode=m))
        (h,) = ax.plot(t, theory["u"].sel(mode=m), lw=1.8, label=f"s = {s:g}")
        fp = float(theory["fixed_point"].sel(mode=m))
        if np.isfinite(fp):
            ax.axhline(fp, color=h.get_color(), ls=":", lw=0.8)
        if simulation is not None and m in simulation["mode"].values:
            sim = simulation["u_sim"].sel(mode=m)
            step = max(1, sim.sizes["time"] // 25)
            ax.plot(simulation["time"][::step], sim[::step], "o", ms=4, mfc="none",
                    color=h.get_color())
    if simulation is not None:
        ax.plot([], [], "ko", mfc="none", ms=4, label="trained network (GD)")
    ax.plot([], [], "k:", lw=0.8, label="fixed point")
    ax.set_xlabel(label(t))
    ax.set_ylabel(label(theory["u"]))
    if title is None:
        title = (f"depth {theory.attrs.get('depth')}, weight decay "
                 f"{theory.attrs.get('weight_decay', 0):g}")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig
