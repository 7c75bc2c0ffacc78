"""Figures of finite-N simulations: overlays on the ODE, and the size of fluctuations against N."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from .common import colours, fmt, label, new_figure, register_figure

__all__ = ["plot_overlay", "plot_finite_size"]


def _components(K: int, M: int, var: str) -> list[tuple[str, tuple[int, int]]]:
    if var == "R":
        return [(f"R{i + 1}{n + 1}", (i, n)) for i in range(K) for n in range(M)]
    return [(f"Q{i + 1}{k + 1}", (i, k)) for i in range(K) for k in range(K) if i <= k]


def _overlay_panel(point: xr.Dataset, axes: np.ndarray, name: str) -> None:
    eta = float(point["eta"].values) if "eta" in point else 1.0
    a_sim = point["sim_alpha"].values
    ok = np.isfinite(a_sim)
    a_ode = point["alpha"].values
    okd = np.isfinite(a_ode)
    K = int(np.sum(np.isfinite(point["R"].values[0, :, 0])))
    M = int(np.sum(np.isfinite(point["R"].values[0, 0, :])))
    cols = colours(K * M + K * (K + 1) // 2)
    c = 0
    runs = [r for r in range(point.sizes["run"]) if np.isfinite(point["sim_eg"].values[r, 0])]
    for ax, var in zip(axes[:2], ("R", "Q")):
        for comp, (i, j) in _components(K, M, var):
            for r in runs:
                ax.plot(eta * a_sim[ok], point[f"sim_{var}"].values[r, ok, i, j], color=cols[c], lw=0.8, alpha=0.7,
                        label=f"{comp} simulation" if r == runs[0] else None)
            ax.plot(eta * a_ode[okd], point[var].values[okd, i, j], "k--", lw=1.0)
            c += 1
        ax.plot([], [], "k--", lw=1.0, label="ODE")
        ax.set_ylabel(label(point[var]))
        ax.legend(fontsize="small", ncol=2)
    ax = axes[2]
    eg = point["sim_eg"].values[runs][:, ok]
    for r, run in enumerate(eg):
        ax.plot(eta * a_sim[ok], run, color=cols[0], lw=0.8, alpha=0.7, label="simulation" if r == 0 else None)
    ax.plot(eta * a_ode[okd], point["eg"].values[okd], "k--", lw=1.0, label="ODE")
    if np.any(eg > 0):  # log scale down to the simulation's finite-N floor
        ax.set_yscale("log")
        ax.set_ylim(bottom=max(eg[eg > 0].min(), 1e-8 * eg.max()) / 2)
    ax.set_ylabel(label(point["eg"]))
    ax.legend(fontsize="small")
    for a in axes:
        a.set_xlabel("scaled time eta alpha")
        a.set_title(name, fontsize=10)


@register_figure("simulation_overlay")
def plot_overlay(ds: xr.Dataset, title: str | None = None) -> list[tuple[str, str, Figure]]:
    """R, Q and eps_g against eta alpha: simulated runs (thin) over the ODE (dashed black), one figure per point."""
    dims = list(ds["status"].dims)
    out = []
    shape = [ds.sizes[d] for d in dims]
    for j in range(int(np.prod(shape, dtype=int))):
        sel = dict(zip(dims, np.unravel_index(j, shape)))
        point = ds.isel({d: int(v) for d, v in sel.items()})
        name = ", ".join(f"{point[d].values.item()}" for d in dims) or ds.attrs.get("study_name", "")
        fig, axes = new_figure(1, 3, figsize=(14, 4.2))
        _overlay_panel(point, axes[0], name)
        fig.suptitle(title or f"{name}: finite-N SGD ({point.sizes['run']} runs) against the ODE")
        suffix = str(point[dims[0]].values.item()) if dims else ""
        out.append((suffix, f"Simulation against the ODE: {name}", fig))
    return out


@register_figure("finite_size")
def plot_finite_size(ds: xr.Dataset, title: str | None = None) -> Figure:
    """Run-to-run standard deviation of each order parameter against N, with the stored power-law fits."""
    fig, axes = new_figure(figsize=(6.5, 4.6))
    ax = axes[0, 0]
    N = ds["N"].values.astype(float)
    for comp in range(ds.sizes["component"]):
        sd = ds["std"].isel(component=comp).values
        name = str(ds["component"].values[comp])
        p = float(ds["exponent"].isel(component=comp)) if "exponent" in ds else np.nan
        (line,) = ax.loglog(N, sd, "o", label=f"{name}: exponent {fmt(p, 3)}")
        if "prefactor" in ds:
            ax.loglog(N, float(ds["prefactor"].isel(component=comp)) * N ** p, "-", color=line.get_color(), lw=0.8)
    mid = np.exp(np.nanmean(np.log(ds["std"].values)))
    ax.loglog(N, mid * np.sqrt(np.exp(np.mean(np.log(N))) / N), "k:", label="N^(-1/2)")
    ax.set_xlabel(label(ds["N"]))
    ax.set_ylabel(label(ds["std"]))
    ax.set_title(title or "run-to-run spread of the order parameters", fontsize=10)
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig
