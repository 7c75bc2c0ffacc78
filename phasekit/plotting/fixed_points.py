"""Figures of fixed points: the spectrum along a continuation branch, and one fixed point's spectrum.

(The stability boundary and the plateau escape rates of a grid are in :mod:`phasekit.plotting.sweeps`.)
"""

from __future__ import annotations

import xarray as xr
from matplotlib.figure import Figure

from .common import label, new_figure

__all__ = ["plot_continuation", "plot_spectrum"]


def plot_continuation(ds: xr.Dataset, n_modes: int = 4) -> Figure:
    """Leading real parts of the spectrum along a branch (from :func:`phasekit.committee.branches.continuation`).

    Vertical lines mark the located zero crossings.
    """
    fig, axes = new_figure(figsize=(6.0, 4.2))
    ax = axes[0, 0]
    eta = ds["eta"].values
    for m in range(min(n_modes, ds.sizes["mode"])):
        ax.plot(eta, ds["eigenvalue_real"].isel(mode=m).values, "-", lw=1.2, label=f"mode {m}")
    for c in range(ds.sizes.get("crossing", 0)):
        x = float(ds["crossing_eta"].isel(crossing=c))
        ax.axvline(x, color="k", ls="--", lw=0.8)
        ax.annotate(f"{x:.10g}", (x, 0), textcoords="offset points", xytext=(3, 5), fontsize=7)
    ax.axhline(0.0, color="grey", lw=0.6)
    ax.set_xlabel(label(ds["eta"]))
    ax.set_ylabel(label(ds["eigenvalue_real"]))
    ax.set_title(f"Spectrum along the branch ({ds.attrs.get('activation', '?')}, K={ds.attrs.get('K')}, "
                 f"M={ds.attrs.get('M')})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_spectrum(ds: xr.Dataset) -> Figure:
    """Eigenvalues of one fixed point (``FixedPoint.to_dataset()``) in the complex plane."""
    fig, axes = new_figure(figsize=(5.0, 4.2))
    ax = axes[0, 0]
    ax.plot(ds["eigenvalue_real"].values, ds["eigenvalue_imag"].values, "o", ms=6)
    ax.axvline(0.0, color="grey", lw=0.6)
    ax.axhline(0.0, color="grey", lw=0.6)
    ax.set_xlabel(label(ds["eigenvalue_real"]))
    ax.set_ylabel(label(ds["eigenvalue_imag"]))
    title = ds.attrs.get("label") or ds.attrs.get("kind", "fixed point")
    ax.set_title(f"Spectrum: {title} (eps_g = {float(ds['eg']):.4g})")
    ax.grid(alpha=0.3)
    return fig
