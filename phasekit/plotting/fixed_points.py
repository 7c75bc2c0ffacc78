"""Figures for fixed points and stability boundaries (datasets from :mod:`phasekit.study.recipes.fixed_points`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from .common import label

__all__ = ["plot_stability_boundary", "plot_plateau_escape", "plot_continuation", "plot_spectrum"]

_MARKERS = {"erf": "o", "relu": "s"}


def plot_stability_boundary(ds: xr.Dataset) -> plt.Figure:
    """Critical and optimal learning rates of the perfect solution against K = M.

    Left: ``eta_c`` (filled) and ``eta_opt`` (open) per activation; right: the
    slowest asymptotic decay rate at ``eta_opt``.  Error bars (usually far
    below the marker size) show the propagated Jacobian error of ``eta_c``.
    """
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10.5, 4.2))
    K = ds["K"].values
    for j, act in enumerate(ds["activation"].values):
        sub = ds.sel(activation=act)
        colour = f"C{j}"
        mk = _MARKERS.get(str(act), "^")
        ax.errorbar(K, sub["eta_c"].values, yerr=np.nan_to_num(sub["eta_c_error"].values), fmt=mk + "-",
                    color=colour, ms=5, capsize=2, label=f"{act}: eta_c (critical)")
        ax.plot(K, sub["eta_opt"].values, mk + "--", color=colour, mfc="none", ms=5,
                label=f"{act}: eta_opt (fastest convergence)")
        ax2.plot(K, sub["rate_opt"].values, mk + "-", color=colour, ms=5, label=str(act))
    ax.set_xlabel(label(ds["K"]))
    ax.set_ylabel("learning rate eta [1]")
    ax.set_yscale("log")
    ax.set_title("Stability boundary of the perfect solution (eta^2 terms kept)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    for a in (ax, ax2):
        a.set_xticks(K)
    ax2.set_xlabel(label(ds["K"]))
    ax2.set_ylabel(label(ds["rate_opt"]))
    ax2.set_yscale("log")
    ax2.set_title("Slowest asymptotic decay rate at eta_opt")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def plot_plateau_escape(ds: xr.Dataset) -> plt.Figure:
    """Escape eigenvalue of the symmetric plateau against K = M (first order, per unit eta alpha).

    Markers: computed; line: the Saad-Solla closed form where the dataset has it (erf).
    Right panel: eps_g at the plateau.
    """
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10.5, 4.2))
    K = ds["K"].values
    for j, act in enumerate(ds["activation"].values):
        sub = ds.sel(activation=act)
        colour = f"C{j}"
        mk = _MARKERS.get(str(act), "^")
        ax.plot(K, sub["escape_eigenvalue"].values, mk, color=colour, ms=6, label=f"{act}: computed")
        closed = sub["escape_closed_form"].values
        if np.isfinite(closed).any():
            ax.plot(K, closed, "-", color=colour, lw=1, label=f"{act}: Saad-Solla closed form")
        ax2.plot(K, sub["eg"].values, mk + "-", color=colour, ms=5, label=str(act))
    ax.set_xlabel(label(ds["K"]))
    ax.set_ylabel(label(ds["escape_eigenvalue"]))
    ax.set_yscale("log")
    ax.set_title("Escape eigenvalue of the symmetric plateau")
    for a in (ax, ax2):
        a.set_xticks(K)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax2.set_xlabel(label(ds["K"]))
    ax2.set_ylabel(label(ds["eg"]))
    ax2.set_title("Generalisation error on the plateau")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_continuation(ds: xr.Dataset, n_modes: int = 4) -> plt.Figure:
    """Leading real parts of the spectrum along a branch (from :func:`phasekit.committee.branches.continuation`).

    Vertical lines mark the located zero crossings.
    """
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
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
    fig.tight_layout()
    return fig


def plot_spectrum(ds: xr.Dataset) -> plt.Figure:
    """Eigenvalues of one fixed point (``FixedPoint.to_dataset()``) in the complex plane."""
    fig, ax = plt.subplots(figsize=(5.0, 4.2))
    ax.plot(ds["eigenvalue_real"].values, ds["eigenvalue_imag"].values, "o", ms=6)
    ax.axvline(0.0, color="grey", lw=0.6)
    ax.axhline(0.0, color="grey", lw=0.6)
    ax.set_xlabel(label(ds["eigenvalue_real"]))
    ax.set_ylabel(label(ds["eigenvalue_imag"]))
    title = ds.attrs.get("label") or ds.attrs.get("kind", "fixed point")
    ax.set_title(f"Spectrum: {title} (eps_g = {float(ds['eg']):.4g})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
