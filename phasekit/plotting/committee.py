"""Figures of committee-machine trajectories: order parameters and learning curves.

The single-trajectory functions take a dataset in the layout of
:func:`phasekit.integrate`; the registered figures take a study dataset and
find its trajectories (:func:`phasekit.plotting.common.trajectories`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.transforms import ScaledTranslation

from .common import label, new_figure, _order_block, register_figure, trajectories

__all__ = ["order_parameters", "eg_curves", "learning_curves", "stacked_order_parameters", "stored_trajectories"]


def _time(ds: xr.Dataset, time: str | None) -> tuple[np.ndarray, str]:
    if time is None:
        time = "eta_alpha" if not int(ds.attrs.get("second_order", 1)) else "alpha"
    return ds[time].values, label(ds[time], time)


def _model_text(ds: xr.Dataset) -> str:
    order = "first order" if not int(ds.attrs.get("second_order", 1)) else "with eta^2 term"
    where = f", {str(ds.attrs['subspace']).replace('_', '-')} subspace" if "subspace" in ds.attrs else ""
    return (f"{ds.attrs.get('activation', '')}, K = {ds.attrs.get('K')}, M = {ds.attrs.get('M')}, "
            f"eta = {float(ds.attrs.get('eta', np.nan)):.3g}, {order}{where}")


def _reduced_block(ds: xr.Dataset, block: str) -> list[str]:
    """The reduced order parameters of a reduced trajectory (attribute ``subspace``) in ``block`` ("R", "Q", "v")."""
    return [str(v) for v in ds.data_vars if ds[v].dims == ("alpha",) and v not in ("eg", "learning_rate")
            and ds[v].attrs.get("block", _order_block(str(v))) == block]


def _panel_lines(ax: Axes, t: np.ndarray, ds: xr.Dataset, var: str) -> None:
    """The overlaps ``var`` ("R" or "Q"): every entry of a full trajectory, every reduced order parameter of
    that block (R, S or Q, C, ...: solid the first, dashed the others) of a reduced one."""
    if "subspace" in ds.attrs:
        for j, name in enumerate(_reduced_block(ds, var)):
            defined = ds[name].attrs.get("definition", "")
            ax.plot(t, ds[name].values, ls="-" if j == 0 else "--", label=f"{name} = {defined}" if defined else name)
        return
    vals = ds[var].values
    K, J = vals.shape[-2:]
    for a in range(K):
        for b in range(a if var == "Q" else 0, J):
            ax.plot(t, vals[:, a, b], ls="-" if a == b else "--", label=f"{var}{a + 1}{b + 1}")


def _overlap_label(ds: xr.Dataset, var: str) -> str:
    """The axis label of the overlaps ``var`` ("R", "Q"; of a reduced trajectory: its order parameters of that block)."""
    if "subspace" not in ds.attrs:
        return label(ds[var])
    names = _reduced_block(ds, var)
    what = {"R": "student-teacher overlaps", "Q": "student-student overlaps"}[var]
    units = ds[names[0]].attrs.get("units", "1") if names else "1"
    return label(xr.DataArray(0.0, attrs={"long_name": f"{what} {', '.join(names)}", "units": units}))


def _mark_stop(ax: Axes, t: np.ndarray, eg: np.ndarray, top: float | None = None, *, ms: float = 9,
               mew: float = 2, time: str = "alpha") -> tuple[float, float, bool]:
    """Mark where a diverged run stopped: its last stored point ``(t, eps_g)``.

    If that eps_g lies above the axis top ``top``, the marker sits just under
    the top edge at the stopping time and its legend entry gives the value,
    so that it is never drawn at a height the curve does not have.  Returns
    the marker's ``(t, y)`` in data units and whether it was put on the top edge.
    """
    ok = np.nonzero(np.isfinite(t) & np.isfinite(eg))[0]
    j = ok[-1] if ok.size else len(t) - 1
    x, y = float(t[j]), float(eg[j])
    if top is None or y <= top:
        ax.plot(x, y, "x", color="crimson", ms=ms, mew=mew, zorder=5)
        return x, y, False
    # x in data units, y in axes fraction, lowered by half a marker so that it stays inside the axes
    edge = ax.get_xaxis_transform() + ScaledTranslation(0, -(ms + mew) / 2 / 72, ax.figure.dpi_scale_trans)
    ax.plot(x, 1.0, "x", color="crimson", ms=ms, mew=mew, zorder=5, transform=edge, clip_on=False,
            label=f"diverged: stopped at {time} = {x:.3g},\neps_g = {y:.2g} (above the axis, marked on its top)")
    return x, top, True


def order_parameters(ds: xr.Dataset, *, time: str | None = None, title: str | None = None,
                     log_eg: bool = True, reference_eg: float | None = None) -> Figure:
    """Three panels: ``R_in``, ``Q_ik`` (i <= k) and ``eps_g`` against time.

    Parameters
    ----------
    ds : xarray.Dataset
        A trajectory (``R(alpha, i, n)``, ``Q(alpha, i, k)``, ``eg(alpha)``), or
        a reduced one (attribute ``subspace``: ``R``, ``S``, ``Q``, ``C``
        along alpha, from ``integrate`` of a reduced model), whose panels
        draw its order parameters with what each is (``S = R_in, i != n``).
    time : {"alpha", "eta_alpha"}, optional
        Horizontal axis; default ``eta_alpha`` for first-order runs, else ``alpha``.
    title : str, optional
    log_eg : bool
        Logarithmic eps_g axis.
    reference_eg : float, optional
        Draw this eps_g (e.g. the symmetric plateau's) as a dashed line.
    """
    t, tlabel = _time(ds, time)
    fig, axes = new_figure(1, 3, figsize=(13, 3.8))
    axes = axes[0]
    _panel_lines(axes[0], t, ds, "R")
    _panel_lines(axes[1], t, ds, "Q")
    eg = ds["eg"].values
    axes[2].plot(t, eg, color="k", label="eps_g")
    if reference_eg is not None and np.isfinite(reference_eg):
        axes[2].axhline(reference_eg, color="C3", ls="--", lw=1, label=f"symmetric plateau, eps_g = {reference_eg:.4g}")
    if ds.attrs.get("status") == "diverged":
        _mark_stop(axes[2], t, eg, ms=8)
        axes[2].plot([], [], "x", color="crimson", ms=8, mew=2, label="diverged: run stopped here")
    for ax, var in zip(axes, ("R", "Q")):
        ax.set_ylabel(_overlap_label(ds, var))
    axes[2].set_ylabel(label(ds["eg"]))
    if log_eg and np.any(eg > 0):
        floor = max(np.nanmax(eg) * 1e-8, 1e-12)
        axes[2].set_yscale("log")
        axes[2].set_ylim(bottom=max(floor, np.nanmin(np.where(eg > 0, eg, np.nan)) * 0.5))
    for ax, name in zip(axes, ("student-teacher overlaps", "student-student overlaps", "generalisation error")):
        ax.set_xlabel(tlabel)
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2 if len(ax.get_legend_handles_labels()[0]) > 6 else 1, loc="best")
    fig.suptitle(title or _model_text(ds), fontsize=11)
    return fig


def eg_curves(trajs: Sequence[xr.Dataset], *, labels: Sequence[str] | None = None, time: str | None = None,
              title: str | None = None, log_eg: bool = True, logx: bool = False, ax: Axes | None = None) -> Figure:
    """eps_g against time for several trajectories; a diverged run is marked where it stopped.

    ``logx``: a logarithmic time axis (for power laws in alpha; the start, alpha = 0, is left out).
    """
    if ax is None:
        fig, axes = new_figure(figsize=(9.0, 4.2))  # room for the legend beside the axes
        ax = axes[0, 0]
    else:
        fig = ax.figure
    labels = list(labels) if labels is not None else [f"eta = {float(t.attrs['eta']):.3g}" for t in trajs]
    top = 10.0 * max(float(np.nanmax(t_["eg"].values[:1])) for t_ in trajs)
    inside = False
    tlabel = ""
    for j, (ds, name) in enumerate(zip(trajs, labels)):
        t, tlabel = _time(ds, time)
        eg = ds["eg"].values
        if logx:
            t, eg = t[t > 0], eg[t > 0]
        diverged = ds.attrs.get("status") == "diverged"
        ax.plot(t, eg, color=f"C{j}", label=name + (" (diverged)" if diverged else ""))
        if diverged:
            name_t = time or ("eta_alpha" if not int(ds.attrs.get("second_order", 1)) else "alpha")
            inside = not _mark_stop(ax, t, eg, top, time=name_t)[2] or inside
    if inside:
        ax.plot([], [], "x", color="crimson", ms=9, mew=2, label="diverged: run stopped here")
    if log_eg:
        ax.set_yscale("log")
        # down to 1e-8 of the initial error, as in the learning curves: deeper is solver round-off
        low = min((float(np.nanmin(np.where(t_["eg"].values > 0, t_["eg"].values, np.nan))) for t_ in trajs
                   if np.any(t_["eg"].values > 0)), default=top * 1e-9)
        ax.set_ylim(bottom=max(low * 0.5, top * 1e-9))
    ax.set_ylim(top=top)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(tlabel)
    ax.set_ylabel(label(trajs[0]["eg"]))
    ax.set_title(title or "Generalisation error", fontsize=11)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: never over a curve
    ax.grid(alpha=0.3)
    return fig


@register_figure("trajectories")
def stored_trajectories(ds: xr.Dataset, time: str | None = None,
                        logx: bool = False) -> list[tuple[str, str, Figure]]:
    """Order parameters of every stored trajectory, and their eps_g together (``logx``: on a log time axis)."""
    found = trajectories(ds)
    out = []
    for j, (lab, traj) in enumerate(found):
        where = f", {str(traj.attrs['subspace']).replace('_', '-')} subspace" if "subspace" in traj.attrs else ""
        out.append((f"point{j}", f"Trajectory at {lab}",
                    order_parameters(traj, time=time, title=f"Order parameters at {lab} ({traj.attrs.get('activation')}, "
                                                            f"{traj.attrs.get('status')}{where})")))
    if len(found) > 1:
        out.append(("eg", "eps_g of the stored trajectories",
                    eg_curves([t for _, t in found], labels=[lab for lab, _ in found], time=time, logx=logx,
                              title="Generalisation error of the stored trajectories")))
    return out


@register_figure("order_parameters")
def order_parameters_figure(ds: xr.Dataset, time: str | None = None, reference: str | None = None,
                            title: str | None = None) -> Figure:
    """Order parameters of the dataset's (first) trajectory; ``reference``: a variable drawn as a dashed eps_g."""
    found = trajectories(ds)
    if not found:
        raise ValueError("ds: no committee trajectory in the dataset (an integrate() result, or a study's "
                         "trajectory measure or [report] trajectories)")
    lab, traj = found[0]
    ref = float(np.ravel(ds[reference].values)[0]) if reference else None
    return order_parameters(traj, time=time, reference_eg=ref, title=title)


@register_figure("learning_curves")
def learning_curves(ds: xr.Dataset, main: float | None = None, title: str | None = None) -> Figure:
    """Learning curves over ``eta``: R and Q and eps_g at ``eta = main``; eps_g at every eta.

    Runs above ``eta_c`` (if the dataset has it) are dashed; a run that
    diverged is drawn up to where it stopped and marked there (on the top edge if its error is above the axis).
    """
    found = trajectories(ds)
    etas = np.array([float(t.attrs["eta"]) for _, t in found])
    main = float(etas[0] if main is None else main)
    one = found[int(np.argmin(np.abs(etas - main)))][1]
    eta_c = float(np.nanmax(ds["eta_c"].values)) if "eta_c" in ds else np.inf
    fig, axes = new_figure(1, 3, figsize=(16, 4.2))
    axes = axes[0]
    a = one["alpha"].values
    pos = a > 0
    _panel_lines(axes[0], a[pos], one.isel(alpha=pos), "R")
    _panel_lines(axes[0], a[pos], one.isel(alpha=pos), "Q")
    axes[0].set_ylabel("order parameters R, Q")
    axes[0].set_title(f"overlaps at eta = {main:g}", fontsize=10)
    axes[1].plot(a[pos], one["eg"].values[pos], color="k", label="eps_g")
    axes[1].set_title(f"generalisation error at eta = {main:g}", fontsize=10)
    eg0 = max(float(t["eg"].values[0]) for _, t in found)
    # From the initial error down to 1e-8 of it: deeper is solver round-off.
    top, bottom = 4.0 * eg0, 1e-8 * eg0
    edges: list[bool] = []
    for j, (_, traj) in enumerate(found):
        eta = float(traj.attrs["eta"])
        t, eg = traj["alpha"].values, traj["eg"].values
        keep = t > 0
        above = eta > eta_c
        axes[2].plot(t[keep], eg[keep], "--" if above else "-", color=f"C{j}",
                     label=f"eta = {eta:g}" + (" > eta_c" if above else ""))
        if traj.attrs.get("status") == "diverged":
            edges.append(_mark_stop(axes[2], t[keep], eg[keep], top, ms=10, mew=2.5)[2])
    if not all(edges):
        axes[2].plot([], [], "x", color="crimson", ms=10, mew=2.5, label="diverged: run stopped here")
    axes[2].set_title("generalisation error for several learning rates", fontsize=10)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel(label(one["alpha"]))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[2].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # the curves fill this panel
    for ax in axes[1:]:
        ax.set_ylabel(label(one["eg"]))
        ax.set_yscale("log")
        ax.set_ylim(bottom, top)
    fig.suptitle(title or "Learning curves", fontsize=11)
    return fig


@register_figure("stacked_order_parameters")
def stacked_order_parameters(ds: xr.Dataset, time: str = "eta_alpha", title: str | None = None) -> Figure:
    """One row per trajectory of the dataset (e.g. per activation): R, Q and eps_g against time.

    The eps_g axes of all rows share one scale: logarithmic if any row's error spans more than a factor 30.
    """
    found = trajectories(ds)
    fig, axes = new_figure(len(found), 3, figsize=(13, 3.4 * len(found)))
    # one error scale for every row, so that rows compare at a glance: log if any row spans a wide range
    pos = [e[np.isfinite(e) & (e > 0)] for e in (run["eg"].values for _, run in found)]
    log = any(p.size and p.max() / max(p.min(), 1e-300) > 30 for p in pos)
    for r, (lab, run) in enumerate(found):
        t = run[time].values
        _panel_lines(axes[r, 0], t, run, "R")
        _panel_lines(axes[r, 1], t, run, "Q")
        eg = run["eg"].values
        axes[r, 2].plot(t, eg, color="k", label="eps_g")
        if run.attrs.get("status") == "diverged":
            _mark_stop(axes[r, 2], t, eg)
            axes[r, 2].plot([], [], "x", color="crimson", ms=9, mew=2, label="diverged: run stopped here")
        for c, (var, name) in enumerate((("R", "student-teacher overlaps"), ("Q", "student-student overlaps"),
                                         ("eg", "generalisation error"))):
            ax = axes[r, c]
            ax.set_xlabel(label(run[time]))
            ax.set_ylabel(_overlap_label(run, var) if var != "eg" else label(run[var]))
            ax.set_title(f"{name} ({lab})", fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, ncol=2 if len(ax.get_legend_handles_labels()[0]) > 6 else 1,
                      loc="center left", bbox_to_anchor=(1.01, 0.5))
        if log:
            axes[r, 2].set_yscale("log")
    fig.suptitle(title or "", fontsize=11)
    return fig

