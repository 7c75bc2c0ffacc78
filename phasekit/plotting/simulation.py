"""Figures of finite-N simulations: overlays on the ODE, and fluctuations against N."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from .common import label

__all__ = ["plot_overlay", "plot_finite_size"]


def _pairs(ds: xr.Dataset, var: str) -> list[tuple[str, dict]]:
    """Component names and selectors of R (all i, n) or Q (i <= k)."""
    if var == "R":
        return [(f"R{i}{n}", {"i": i, "n": n}) for i in ds["i"].values for n in ds["n"].values]
    return [(f"Q{i}{k}", {"i": i, "k": k}) for i in ds["i"].values for k in ds["k"].values if i <= k]


def plot_overlay(sim: xr.Dataset, ode: xr.Dataset, title: str = "") -> plt.Figure:
    """R, Q and eps_g against eta*alpha: simulation runs (thin) over the ODE (dashed black).

    Parameters
    ----------
    sim : xarray.Dataset
        Output of :func:`phasekit.committee.simulation.simulate` (dimension ``run``).
    ode : xarray.Dataset
        Output of :func:`phasekit.integrate` for the same model and start.
    title : str
        Figure title; the model, N and the number of runs are appended.
    """
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    x_sim, x_ode = sim["eta_alpha"].values, ode["eta_alpha"].values
    for ax, var in zip(axes[:2], ("R", "Q")):
        for c, (name, sel) in enumerate(_pairs(sim, var)):
            color = colors[c % len(colors)]
            runs = sim[var].sel(sel).values  # (run, alpha)
            for r, run in enumerate(runs):
                ax.plot(x_sim, run, color=color, lw=0.8, alpha=0.7, label=f"{name} simulation" if r == 0 else None)
            ax.plot(x_ode, ode[var].sel(sel).values, "k--", lw=1.0)
        ax.plot([], [], "k--", lw=1.0, label="ODE")
        ax.set_xlabel(label(sim["eta_alpha"]))
        ax.set_ylabel(label(sim[var]))
        ax.legend(fontsize="small", ncol=2)
    ax = axes[2]
    for r, run in enumerate(sim["eg"].values):
        ax.plot(x_sim, run, color=colors[0], lw=0.8, alpha=0.7, label="simulation" if r == 0 else None)
    if "eg_test" in sim:
        for r, run in enumerate(sim["eg_test"].values):
            ax.plot(x_sim, run, ".", color=colors[1], ms=2, label="test set" if r == 0 else None)
    ax.plot(x_ode, ode["eg"].values, "k--", lw=1.0, label="ODE")
    # Log scale down to the simulation's finite-N floor (the ODE's error keeps falling).
    eg_sim = sim["eg"].values
    if np.any(eg_sim > 0):
        ax.set_yscale("log")
        ax.set_ylim(bottom=max(eg_sim[eg_sim > 0].min(), 1e-8 * eg_sim.max()) / 2)
    ax.set_xlabel(label(sim["eta_alpha"]))
    ax.set_ylabel(label(sim["eg"]))
    ax.legend(fontsize="small")
    a = sim.attrs
    ode_kind = "second-order" if ode.attrs.get("second_order", 1) else "first-order"
    fig.suptitle(f"{title + ': ' if title else ''}{a.get('activation', '')} K={a.get('K')}, M={a.get('M')}, "
                 f"eta={a.get('eta')}, N={a.get('N')}, {sim.sizes['run']} {a.get('method', '')} run(s) "
                 f"vs {ode_kind} ODE")
    return fig


def plot_finite_size(ds: xr.Dataset) -> plt.Figure:
    """Run-to-run standard deviation of each order parameter against N, with power-law fits.

    Parameters
    ----------
    ds : xarray.Dataset
        Output of the ``finite_size`` recipe: ``std(N, component)``,
        ``exponent(component)``, ``prefactor(component)``.
    """
    fig, ax = plt.subplots(figsize=(6, 4.5), constrained_layout=True)
    N = ds["N"].values
    for comp in ds["component"].values:
        sd = ds["std"].sel(component=comp).values
        (line,) = ax.loglog(N, sd, "o", label=f"{comp}: exponent {float(ds['exponent'].sel(component=comp)):.3f}")
        fit = float(ds["prefactor"].sel(component=comp)) * N ** float(ds["exponent"].sel(component=comp))
        ax.loglog(N, fit, "-", color=line.get_color(), lw=0.8)
    mid = np.exp(np.mean(np.log(ds["std"].values)))
    ax.loglog(N, mid * np.sqrt(np.exp(np.mean(np.log(N))) / N), "k:", label="N^(-1/2)")
    ax.set_xlabel(label(ds["N"]))
    ax.set_ylabel(label(ds["std"]))
    a = ds.attrs
    ax.set_title(f"spread over {a.get('n_runs')} runs at alpha = {a.get('alpha')} ({a.get('method')})")
    ax.legend(fontsize="small")
    return fig
