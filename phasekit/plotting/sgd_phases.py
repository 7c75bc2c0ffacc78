"""The phase diagram of SGD over the learning-rate and width exponents ``(delta, kappa)``."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from .common import label, new_figure, register_figure

__all__ = ["plot_sgd_phase_diagram"]

# The colours of the regions in Veiga et al.'s figure: green, blue, orange, red.
_COLOURS = ("#5aae61", "#4575b4", "#f99d3e", "#d73027")


@register_figure("sgd_phase_diagram")
def plot_sgd_phase_diagram(ds: xr.Dataset, title: str | None = None) -> Figure:
    """The regime from the flow over ``(delta, kappa)`` (axes as Veiga et al.'s figure), with the lines over it.

    Cells: ``sgd_regime`` (measure ``sgd_regime``); solid: ``delta = -kappa``,
    dashed: ``delta = -kappa - 1/2`` (the lines of the published figure),
    dotted: ``delta = -(1 + kappa)/2`` (the authors' code's region test);
    markers: the lines' positions from the flow's exponents (analysis
    ``sgd_phase_lines``), where stored.
    """
    da = ds["sgd_regime"].transpose("kappa", "delta")
    kappa, delta = ds["kappa"].values.astype(float), ds["delta"].values.astype(float)
    meanings = [m.replace("_", " ") for m in str(da.attrs.get("flag_meanings", "")).split()]
    fig, axes = new_figure(1, 1, figsize=(6.4, 5.0))
    ax = axes[0, 0]
    cmap = ListedColormap(_COLOURS)
    ax.pcolormesh(delta, kappa, da.values, shading="nearest", cmap=cmap,
                  norm=BoundaryNorm(np.arange(-0.5, len(_COLOURS)), len(_COLOURS)))
    for code, name in enumerate(meanings):
        ax.plot([], [], "s", ms=9, color=_COLOURS[code], label=f"{name} (flow)")
    k = np.linspace(float(kappa.min()), float(kappa.max()), 50)
    ax.plot(-k, k, "k-", lw=1.8, label="delta = -kappa (published)")
    ax.plot(-k - 0.5, k, "k--", lw=1.8, label="delta = -kappa - 1/2 (published)")
    ax.plot(-(1.0 + k) / 2.0, k, "k:", lw=1.8, label="delta = -(1 + kappa)/2 (authors' code)")
    for var, marker, text in (("sgd_line_both_delta", "o", "both terms survive (flow's exponents)"),
                              ("sgd_line_ode_delta", "^", "ODE limit ends (flow's exponents)")):
        if var in ds:
            ax.plot(ds[var].values, ds["kappa"].values, marker, color="w", mec="k", ms=6, ls="none", label=text)
    ax.set_xlabel(label(ds["delta"]))
    ax.set_ylabel(label(ds["kappa"]))
    ax.set_xlim(float(delta.min()), float(delta.max()))
    ax.set_ylim(float(kappa.min()), float(kappa.max()))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=7, frameon=False)
    fig.suptitle(title or "Which terms of SGD's flow survive\n(eta = eta0 d^-delta, K = p0 d^kappa, 1/K committee)")
    return fig
