"""Figures of committee-machine trajectories (datasets of :func:`phasekit.integrate`)."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from .common import label

__all__ = ["order_parameters", "eg_curves"]


def _time(ds: xr.Dataset, time: str | None) -> tuple[np.ndarray, str]:
    if time is None:
        time = "eta_alpha" if int(ds.attrs.get("second_order", 1)) == 0 else "alpha"
    return ds[time].values, label(ds[time], time)


def _model_text(ds: xr.Dataset) -> str:
    order = "first order" if int(ds.attrs.get("second_order", 1)) == 0 else "with eta^2 term"
    return (f"{ds.attrs.get('activation', '')}, K = {ds.attrs.get('K')}, M = {ds.attrs.get('M')}, "
            f"eta = {float(ds.attrs.get('eta', np.nan)):.3g}, {order}")


def order_parameters(ds: xr.Dataset, *, time: str | None = None, title: str | None = None,
                     log_eg: bool = True) -> plt.Figure:
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
    """
    t, tlabel = _time(ds, time)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    K, M = ds.sizes["i"], ds.sizes["n"]
    for i in range(K):
        for n in range(M):
            axes[0].plot(t, ds["R"].values[:, i, n], label=f"R{i + 1}{n + 1}", ls="-" if i == n else "--")
    for i in range(K):
        for k in range(i, K):
            axes[1].plot(t, ds["Q"].values[:, i, k], label=f"Q{i + 1}{k + 1}", ls="-" if i == k else "--")
    axes[2].plot(t, ds["eg"].values, color="k", label="eps_g")
    status = ds.attrs.get("status", "ok")
    if status == "diverged":
        for ax, y in zip(axes, (ds["R"].values[-1].ravel(), np.diag(ds["Q"].values[-1]), [ds["eg"].values[-1]])):
            ax.plot(np.full(len(y), t[-1]), y, "x", color="crimson", ms=8)
        axes[2].plot([], [], "x", color="crimson", label="diverged here")
    axes[0].set_ylabel(label(ds["R"]))
    axes[1].set_ylabel(label(ds["Q"]))
    axes[2].set_ylabel(label(ds["eg"]))
    if log_eg and np.all(ds["eg"].values > 0):
        axes[2].set_yscale("log")
    for ax, name in zip(axes, ("student-teacher overlaps", "student-student overlaps", "generalisation error")):
        ax.set_xlabel(tlabel)
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2 if ax.get_legend_handles_labels()[0].__len__() > 6 else 1)
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
    for j, (ds, name) in enumerate(zip(trajectories, labels)):
        t, tlabel = _time(ds, time)
        eg = ds["eg"].values
        status = ds.attrs.get("status", "ok")
        ax.plot(t, eg, color=f"C{j}", label=name + (" (diverged)" if status == "diverged" else ""))
        if status == "diverged":
            ax.plot(t[-1], eg[-1], "x", color="crimson", ms=9, mew=2)
            marked = True
    if marked:
        ax.plot([], [], "x", color="crimson", ms=9, mew=2, label="run stopped: diverged")
    if log_eg:
        ax.set_yscale("log")
    ax.set_xlabel(tlabel)
    ax.set_ylabel(label(trajectories[0]["eg"]))
    ax.set_title(title or "Generalisation error", fontsize=11)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig
