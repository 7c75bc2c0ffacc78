"""Figures of committee-machine trajectories (datasets of :func:`phasekit.integrate`)."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from .common import label

__all__ = ["order_parameters", "eg_curves", "learning_rate_scan", "stacked_order_parameters"]


def _time(ds: xr.Dataset, time: str | None) -> tuple[np.ndarray, str]:
    if time is None:
        time = "eta_alpha" if int(ds.attrs.get("second_order", 1)) == 0 else "alpha"
    return ds[time].values, label(ds[time], time)


def _model_text(ds: xr.Dataset) -> str:
    order = "first order" if int(ds.attrs.get("second_order", 1)) == 0 else "with eta^2 term"
    return (f"{ds.attrs.get('activation', '')}, K = {ds.attrs.get('K')}, M = {ds.attrs.get('M')}, "
            f"eta = {float(ds.attrs.get('eta', np.nan)):.3g}, {order}")


def order_parameters(ds: xr.Dataset, *, time: str | None = None, title: str | None = None,
                     log_eg: bool = True, reference_eg: float | None = None) -> plt.Figure:
    """Three panels: ``R_in``, ``Q_ik`` (i <= k) and ``eps_g`` against time.

    Parameters
    ----------
    ds : xarray.Dataset
        A trajectory (``R(alpha, i, n)``, ``Q(alpha, i, k)``, ``eg(alpha)``).
    time : {"alpha", "eta_alpha"}, optional
        Horizontal axis; default ``eta_alpha`` for first-order runs, else ``alpha``.
    title : str, optional
    log_eg : bool
        Logarithmic eps_g axis.
    reference_eg : float, optional
        Draw this eps_g (e.g. the symmetric plateau's) as a dashed line.
    """
    t, tlabel = _time(ds, time)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    _panel_lines(axes[0], t, ds, "R")
    _panel_lines(axes[1], t, ds, "Q")
    axes[2].plot(t, ds["eg"].values, color="k", label="eps_g")
    if reference_eg is not None and np.isfinite(reference_eg):
        axes[2].axhline(reference_eg, color="C3", ls="--", lw=1,
                        label=f"symmetric plateau, eps_g = {reference_eg:.4g}")
    status = ds.attrs.get("status", "ok")
    if status == "diverged":
        for ax, y in zip(axes, (ds["R"].values[-1].ravel(), np.diag(ds["Q"].values[-1]), [ds["eg"].values[-1]])):
            ax.plot(np.full(len(y), t[-1]), y, "x", color="crimson", ms=8)
        axes[2].plot([], [], "x", color="crimson", label="diverged here")
    axes[0].set_ylabel(label(ds["R"]))
    axes[1].set_ylabel(label(ds["Q"]))
    axes[2].set_ylabel(label(ds["eg"]))
    if log_eg:
        eg = ds["eg"].values
        floor = max(np.nanmax(eg) * 1e-8, 1e-12) if np.isfinite(eg).any() else 1e-12
        axes[2].set_yscale("log")
        axes[2].set_ylim(bottom=max(floor, np.nanmin(np.where(eg > 0, eg, np.nan)) * 0.5))
    for ax, name in zip(axes, ("student-teacher overlaps", "student-student overlaps", "generalisation error")):
        ax.set_xlabel(tlabel)
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2 if len(ax.get_legend_handles_labels()[0]) > 6 else 1)
    fig.suptitle(title or _model_text(ds), fontsize=11)
    return fig


def eg_curves(trajectories: Sequence[xr.Dataset], *, labels: Sequence[str] | None = None,
              time: str | None = None, title: str | None = None, log_eg: bool = True,
              ax: plt.Axes | None = None) -> plt.Figure:
    """eps_g against time for several trajectories (e.g. several learning rates).

    A run that diverged is drawn up to where it stopped and marked there with
    a red ``x``.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4.2))
    else:
        fig = ax.figure
    labels = list(labels) if labels is not None else [f"eta = {float(t.attrs['eta']):.3g}" for t in trajectories]
    marked = False
    # Keep the axes on the learning curves: a diverging run leaves through the top.
    top = 10.0 * max(float(np.nanmax(t_["eg"].values[:1])) for t_ in trajectories)
    for j, (ds, name) in enumerate(zip(trajectories, labels)):
        t, tlabel = _time(ds, time)
        eg = ds["eg"].values
        status = ds.attrs.get("status", "ok")
        ax.plot(t, eg, color=f"C{j}", label=name + (" (diverged)" if status == "diverged" else ""))
        if status == "diverged":
            ax.plot(t[-1], min(eg[-1], 0.5 * top), "x", color="crimson", ms=9, mew=2)
            marked = True
    if marked:
        ax.plot([], [], "x", color="crimson", ms=9, mew=2, label="run stopped: diverged")
    if log_eg:
        ax.set_yscale("log")
    ax.set_ylim(top=top)
    ax.set_xlabel(tlabel)
    ax.set_ylabel(label(trajectories[0]["eg"]))
    ax.set_title(title or "Generalisation error", fontsize=11)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def _panel_lines(ax: plt.Axes, t: np.ndarray, ds: xr.Dataset, var: str) -> None:
    vals = ds[var].values
    K, J = vals.shape[-2:]
    for a in range(K):
        for b in range(a if var == "Q" else 0, J):
            diag = a == b
            ax.plot(t, vals[:, a, b], ls="-" if diag else "--", label=f"{var}{a + 1}{b + 1}")


def learning_rate_scan(ds: xr.Dataset, *, main: float | None = None) -> plt.Figure:
    """Learning curves stacked over ``eta`` (see :func:`phasekit.study.recipes.committee.stack_trajectories`).

    Left: R and Q of the run at ``eta = main``; middle: its eps_g; right:
    eps_g for every eta, runs that diverged drawn up to where they stopped and
    marked with a red ``x``.  If ``ds.attrs["eta_c"]`` is set, runs above it
    are dashed.
    """
    etas = ds["eta"].values
    main = float(etas[0] if main is None else main)
    one = ds.sel(eta=main)
    a = ds["alpha"].values
    pos = a > 0
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), constrained_layout=True)
    _panel_lines(axes[0], a[pos], one.isel(alpha=pos), "R")
    _panel_lines(axes[0], a[pos], one.isel(alpha=pos), "Q")
    axes[0].set_ylabel("order parameters R, Q [1]")
    axes[0].set_title(f"overlaps at eta = {main:g}", fontsize=10)
    axes[1].plot(a[pos], one["eg"].values[pos], color="k", label="eps_g")
    axes[1].set_title(f"generalisation error at eta = {main:g}", fontsize=10)
    axes[1].set_ylabel(label(ds["eg"]))
    eta_c = float(ds.attrs.get("eta_c", np.inf))
    eg_all = ds["eg"].values[:, pos]
    eg0 = float(np.nanmax(eg_all[:, 0])) if eg_all.size else 1.0
    # From the initial error down to 1e-8 of it: deeper is solver round-off.
    top, bottom = 4.0 * eg0, 1e-8 * eg0
    for j, eta in enumerate(etas):
        run = ds.isel(eta=j)
        style = "--" if eta > eta_c else "-"
        axes[2].plot(a[pos], run["eg"].values[pos], style, color=f"C{j}",
                     label=f"eta = {eta:g}" + (" > eta_c" if eta > eta_c else ""))
        if str(run["status"].values) == "diverged":
            y = float(run["eg_end"].values)
            axes[2].plot(float(run["alpha_end"].values), min(y, 0.6 * top), "x", color="crimson", ms=10, mew=2.5)
    axes[2].plot([], [], "x", color="crimson", ms=10, mew=2.5, label="diverged: run stopped")
    axes[2].set_title("generalisation error for several learning rates", fontsize=10)
    axes[2].set_ylabel(label(ds["eg"]))
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel(label(ds["alpha"]))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[1:]:
        ax.set_yscale("log")
        ax.set_ylim(bottom, top)
    fig.suptitle(ds.attrs.get("title", "Learning curves"), fontsize=11)
    return fig


def stacked_order_parameters(ds: xr.Dataset, dim: str, *, time: str = "eta_alpha") -> plt.Figure:
    """One row per value of ``dim`` (e.g. activation): R, Q and eps_g against time."""
    vals = ds[dim].values
    t = ds[time].values if time in ds.coords else ds["alpha"].values
    tlabel = label(ds[time]) if time in ds.coords else label(ds["alpha"])
    fig, axes = plt.subplots(len(vals), 3, figsize=(13, 3.4 * len(vals)), squeeze=False, constrained_layout=True)
    for r, v in enumerate(vals):
        run = ds.sel({dim: v})
        _panel_lines(axes[r, 0], t, run, "R")
        _panel_lines(axes[r, 1], t, run, "Q")
        eg = run["eg"].values
        axes[r, 2].plot(t, eg, color="k", label="eps_g")
        status = str(run["status"].values)
        if status == "diverged":
            axes[r, 2].plot(float(run["alpha_end"].values) * (float(ds.attrs.get("eta", 1.0)) if time == "eta_alpha"
                                                              else 1.0),
                            np.nanmin([float(run["eg_end"].values), np.nanmax(eg)]), "x", color="crimson", ms=9,
                            label="diverged: run stopped")
        pos = eg[np.isfinite(eg) & (eg > 0)]
        if pos.size and pos.max() / max(pos.min(), 1e-300) > 30:
            axes[r, 2].set_yscale("log")
            axes[r, 2].set_ylim(bottom=max(pos.min() * 0.5, pos.max() * 1e-9))
        for c, (var, name) in enumerate((("R", "student-teacher overlaps"), ("Q", "student-student overlaps"),
                                         ("eg", "generalisation error"))):
            ax = axes[r, c]
            ax.set_xlabel(tlabel)
            ax.set_ylabel(label(ds[var]))
            ax.set_title(f"{name} ({dim} = {v})", fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, ncol=2 if len(ax.get_legend_handles_labels()[0]) > 6 else 1)
    fig.suptitle(ds.attrs.get("title", ""), fontsize=11)
    return fig
