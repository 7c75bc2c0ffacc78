"""Figures of committee grids: heatmaps, lines, the stability boundary, plateau escape and the plateau law.

Grid dims that a figure does not show are fixed at their first value, and the
title says which.  Points whose status is not a success are marked, never
silently dropped.  Fits are read from the dataset (the ``plateau_fit``
analysis), never computed here.
"""

from __future__ import annotations

import textwrap
from typing import Any

import matplotlib
import numpy as np
import xarray as xr
from matplotlib.colors import LogNorm, Normalize, to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from .common import coord_value, fixed_elsewhere, fmt, label, new_figure, register_figure, status_names_of

__all__ = ["heatmap", "lines", "plot_stability_boundary", "plot_plateau_escape", "plot_plateau_scaling",
           "plot_k_scaling"]

_MARKERS = {"erf": "o", "relu": "s"}


# Vertical spacing (axes fraction) of the diverged / not-reached marker rows of successive lines: more than
# a marker's height, so that the lines' markers at the same x never cover each other.
_STEP = 0.055


def _log_ticks(ax: Any, xs: np.ndarray) -> None:
    """On a log axis spanning less than two decades, tick the grid values instead of crowded minor labels."""
    from matplotlib.ticker import NullFormatter

    xs = np.unique(xs[np.isfinite(xs) & (xs > 0)])
    if xs.size and xs.max() / xs.min() < 100:
        ax.xaxis.set_minor_formatter(NullFormatter())
        if xs.size <= 8:
            ax.set_xticks(xs, [fmt(float(v), 3) for v in xs])


def _title(main: str, note: str, fig: Figure | None = None) -> str:
    """A figure title with the fixed grid values below it, wrapped to the figure's width (11 pt text)."""
    if fig is not None:  # about ten characters of 11 pt text per inch
        chars = max(20, int(fig.get_figwidth() * 10))
        main, note = "\n".join(textwrap.wrap(main, chars)), "\n".join(textwrap.wrap(note, chars - 2))
    return f"{main}\n({note})" if note else main


def _statuses(ds: xr.Dataset, keep: list[str]) -> xr.DataArray:
    st, _ = fixed_elsewhere(ds["status"], keep)
    return st.copy(data=status_names_of(st))


def _facet(ds: xr.Dataset, var: str, used: tuple) -> str | None:
    return "activation" if "activation" in ds[var].dims and "activation" not in used else None


@register_figure("heatmap")
def heatmap(ds: xr.Dataset, var: str, x: str, y: str, log: bool | None = None, title: str | None = None) -> Figure:
    """``ds[var]`` over the grid dims ``x`` (columns) and ``y`` (rows).

    One panel per activation when ``activation`` is another grid dim.  Cells
    whose point diverged are hatched and marked ``x``; points that never got
    below the threshold (``inf``) are grey with a circle; failed points are
    marked ``!``.  Cell values are written into small grids.
    """
    if var not in ds:
        raise ValueError(f"var: {var!r} is not a variable of the dataset")
    for d in (x, y):
        if d not in ds[var].dims:
            raise ValueError(f"{d!r} is not a grid dim of {var!r} (dims {ds[var].dims})")
    facet = _facet(ds, var, (x, y))
    keep = [x, y] + ([facet] if facet else [])
    da, note = fixed_elsewhere(ds[var], keep)
    st = _statuses(ds, keep)
    panels = list(da[facet].values) if facet else [None]
    vals = da.values[np.isfinite(da.values)]
    if log is None:
        log = vals.size > 0 and vals.min() > 0 and vals.max() / vals.min() > 20
    norm = (LogNorm(vals.min(), vals.max()) if log and vals.size else
            Normalize(vals.min(), vals.max()) if vals.size else Normalize(0, 1))
    fig, axes = new_figure(1, len(panels), figsize=(1.6 + 4.3 * len(panels), 4.4))
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")  # grey: no value
    mesh = None
    seen: set[str] = set()
    for ax, p in zip(axes[0], panels):
        d = (da.sel({facet: p}) if facet else da).transpose(y, x)
        s = (st.sel({facet: p}) if facet else st).transpose(y, x)
        mesh = ax.pcolormesh(np.arange(d.sizes[x] + 1) - 0.5, np.arange(d.sizes[y] + 1) - 0.5,
                             np.ma.masked_invalid(d.values), cmap=cmap, norm=norm, shading="flat")
        small = d.size <= 64
        for (r, c), v in np.ndenumerate(d.values):
            if s.values[r, c] == "diverged":
                ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, hatch="///", lw=0, edgecolor="0.4"))
                ax.plot(c, r, "x", color="k", ms=7)
                seen.add("diverged")
            elif np.isinf(v):
                ax.plot(c, r, "o", mfc="none", mec="0.3", ms=6)
                seen.add("inf")
            elif np.isnan(v):
                ax.plot(c, r, marker="$!$", color="crimson", ms=9)
                seen.add("failed")
            elif small:
                tiny = abs(v) < 1e-8 * max(1e-300, float(np.abs(vals).max()))  # round-off around zero
                text = "0" if tiny else f"{v:.0f}" if 100 <= abs(v) < 1e5 else f"{v:.3g}"
                ax.text(c, r, text, ha="center", va="center", fontsize=8, color="w" if norm(v) < 0.55 else "k")
        ax.set_xticks(range(d.sizes[x]), [fmt(v, 3) for v in d[x].values], rotation=45 if d.sizes[x] > 6 else 0)
        ax.set_yticks(range(d.sizes[y]), [fmt(v, 3) for v in d[y].values])
        ax.set_xlabel(label(ds[x], x))
        ax.set_ylabel(label(ds[y], y))
        ax.set_title(f"activation = {p}" if facet else "", fontsize=10)
    cb = fig.colorbar(mesh, ax=axes[0].tolist(), shrink=0.9)
    cb.set_label(label(ds[var]))
    handles = {"diverged": Line2D([], [], ls="", marker="x", color="k", label="diverged (hatched)"),
               "inf": Line2D([], [], ls="", marker="o", mfc="none", mec="0.3", label="threshold not reached"),
               "failed": Line2D([], [], ls="", marker="$!$", color="crimson", label="no value (see report)")}
    shown = [h for k, h in handles.items() if k in seen]
    if shown:
        fig.legend(handles=shown, loc="outside lower center", ncol=len(shown), fontsize=8, frameon=False)
    fig.suptitle(_title(title or ds[var].attrs.get("long_name", var), note, fig), fontsize=11)
    return fig


@register_figure("lines")
def lines(ds: xr.Dataset, var: str, x: str, hue: str | None = None, panels: str | None = None,
          along: str | None = None, logy: bool | None = None, logx: bool | None = None, vline: str | None = None,
          optimum: bool = False, title: str | None = None) -> Figure:
    """``ds[var]`` against ``x``, one line per value of ``hue`` (at most eight), one panel per value of ``panels``.

    ``x`` is a grid dim, or a variable over the grid (then ``along`` names
    the dim it runs along, e.g. ``eta`` computed from ``eta_over_eta_c``).
    Diverged points are marked ``x`` at the bottom of the axes, points that
    never got below the threshold (``inf``) with a triangle at the top (each
    line's markers at its own height).  ``vline``: a variable drawn as a
    vertical line (e.g. ``eta_c``); ``optimum``: mark the minimum stored by the
    ``optimum`` analysis (``<var>_min`` at ``<x>_opt``).
    """
    along = along or x
    if panels is None:
        panels = _facet(ds, var, (along, hue))
    keep = [along] + [d for d in (hue, panels) if d]
    da, note = fixed_elsewhere(ds[var], keep)
    st = _statuses(ds, keep)
    xda = fixed_elsewhere(ds[x], keep)[0] if x != along else None
    pvals = list(da[panels].values) if panels else [None]
    fig, axes = new_figure(1, len(pvals), figsize=(1.5 + 5 * len(pvals), 4.4), sharey=True)
    hues = list(da[hue].values)[:8] if hue else [None]
    finite = da.values[np.isfinite(da.values) & (st.values != "diverged")]
    if logy is None:
        logy = finite.size > 0 and finite.min() > 0 and finite.max() / finite.min() > 20
    seen = set()
    for ax, p in zip(axes[0], pvals):
        for j, h in enumerate(hues):
            sel = {k: v for k, v in ((panels, p), (hue, h)) if k}
            d, s = da.sel(sel), st.sel(sel)
            xv = (xda.sel(sel).values if xda is not None else d[along].values).astype(float)
            yv = d.values
            name = f"{hue} = {coord_value(ds[hue], h)}" if hue else var
            div = s.values == "diverged"
            # a diverged run's value is where it happened to stop: not drawn, only marked
            ax.plot(xv, np.where(np.isfinite(yv) & ~div, yv, np.nan), "o-", ms=4, color=f"C{j}", label=name)
            if div.any():
                ax.plot(xv[div], np.full(div.sum(), 0.04 + _STEP * j), "x", color=f"C{j}", ms=8, mew=2,
                        transform=ax.get_xaxis_transform())
                seen.add("diverged")
            inf = np.isinf(yv) & ~div
            if inf.any():
                ax.plot(xv[inf], np.full(inf.sum(), 0.96 - _STEP * j), "^", color=f"C{j}", ms=7,
                        transform=ax.get_xaxis_transform())
                seen.add("inf")
            if optimum and f"{var}_min" in ds and f"{x}_opt" in ds:
                best = ds[f"{var}_min"].sel({k: v for k, v in sel.items() if k in ds[f"{var}_min"].dims})
                at = ds[f"{x}_opt"].sel({k: v for k, v in sel.items() if k in ds[f"{x}_opt"].dims})
                if np.isfinite(float(best)):
                    ax.plot([float(at)], [float(best)], "*", color=f"C{j}", mec="k", ms=13, zorder=5,
                            label=f"minimum: {fmt(float(best))} at {x} = {fmt(float(at))}")
            if vline and vline in ds:
                v = ds[vline].sel({k: val for k, val in sel.items() if k in ds[vline].dims})
                v = float(np.nanmax(v.values)) if np.isfinite(v.values).any() else np.nan
                if np.isfinite(v):
                    ax.axvline(v, ls="--", color=f"C{j}", lw=1, label=f"{vline} = {fmt(v)}")
        if logy:
            ax.set_yscale("log")
        xs = (xda.values if xda is not None else ds[along].values).astype(float)
        if logx or (logx is None and xs.size > 2 and np.nanmin(xs) > 0 and np.nanmax(xs) / np.nanmin(xs) > 10):
            ax.set_xscale("log")
            _log_ticks(ax, xs)
        handles, labels = ax.get_legend_handles_labels()
        if "diverged" in seen:
            handles.append(Line2D([], [], ls="", marker="x", mew=2, color="0.3"))
            labels.append("diverged (bottom, line's colour)")
        if "inf" in seen:
            handles.append(Line2D([], [], ls="", marker="^", color="0.3"))
            labels.append("never below threshold (top, line's colour)")
        ax.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        ax.set_xlabel(label(ds[x], x))
        if np.dtype(ds[x].dtype).kind in "iu" and not ax.get_xscale() == "log":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # K = 2.5 is no network
        ax.set_title(f"{panels} = {coord_value(ds[panels], p)}" if panels else "", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel(label(ds[var]))
    fig.suptitle(_title(title or ds[var].attrs.get("long_name", var), note, fig), fontsize=11)
    return fig


def _by_activation(ds: xr.Dataset, var: str) -> list[tuple[Any, xr.DataArray]]:
    da = ds[var]
    extra = [d for d in da.dims if d not in ("K", "activation")]
    if extra:  # e.g. eta_c of a sweep over eta: it does not depend on eta
        da = da.isel({d: 0 for d in extra})
    if "activation" in da.dims:
        return [(a, da.sel(activation=a)) for a in da["activation"].values]
    return [(ds["activation"].values.item() if "activation" in ds.coords else "", da)]


@register_figure("stability_boundary")
def plot_stability_boundary(ds: xr.Dataset, title: str | None = None) -> Figure:
    """Critical learning rate eta_c (and eta_opt if measured) against K, per activation.

    Above eta_c the perfect solution is unstable: SGD with that eta cannot
    converge to zero error (each activation's region is hatched in its colour, its own direction).
    With ``rate_opt`` a second panel shows the slowest asymptotic decay rate
    at eta_opt.  A sweep over eta marks its runs that diverged.
    """
    if "eta_c" not in ds:
        raise ValueError("ds: needs an 'eta_c' variable (measure eta_c)")
    two = "rate_opt" in ds
    fig, axes = new_figure(1, 2 if two else 1, figsize=(11.5 if two else 6.8, 4.4))
    ax = axes[0, 0]
    K = ds["K"].values if "K" in ds.dims else np.array([int(ds["K"])])
    curves = _by_activation(ds, "eta_c")
    top = max(float(np.nanmax(c.values)) if np.isfinite(c.values).any() else 1.0 for _, c in curves) * 1.3
    if "eta" in ds.dims:
        top = max(top, float(ds["eta"].max()) * 1.1)
    status = ds["status"].copy(data=status_names_of(ds["status"]))
    for j, (act, c) in enumerate(curves):
        colour = f"C{j}"
        mk = _MARKERS.get(str(act), "^")
        y = np.atleast_1d(c.values)
        err = np.nan_to_num(np.atleast_1d(dict(_by_activation(ds, "eta_c_error"))[act].values)) \
            if "eta_c_error" in ds else None
        ax.errorbar(K, y, yerr=err, fmt=mk + "-", color=colour, ms=5, lw=2, label=f"{act}: eta_c (critical)")
        # each activation's own hatch, so that where the regions overlap both remain readable
        ax.fill_between(K, y, top, facecolor=to_rgba(colour, 0.06), edgecolor=to_rgba(colour, 0.45), lw=0,
                        hatch=("//", "\\\\", "||", "--")[j % 4], label=f"{act}: perfect solution unstable (hatched)")
        if "eta_opt" in ds:
            opt = dict(_by_activation(ds, "eta_opt"))[act]
            ax.plot(K, np.atleast_1d(opt.values), mk + "--", color=colour, mfc="none", ms=5,
                    label=f"{act}: eta_opt (fastest convergence)")
        if "eta" in ds.dims and "K" in ds.dims:
            r = status.sel(activation=act) if "activation" in status.dims else status
            r = r.isel({d: 0 for d in r.dims if d not in ("K", "eta")}).transpose("K", "eta")
            kk, ee = np.meshgrid(r["K"].values, r["eta"].values, indexing="ij")
            div = r.values == "diverged"
            off = 0.08 * (j - (len(curves) - 1) / 2)  # side by side, not on top of each other
            if div.any():
                ax.plot(kk[div] + off, ee[div], "x", color=colour, ms=7, mew=1.5, label=f"{act}: runs that diverged")
        if two:
            axes[0, 1].plot(K, np.atleast_1d(dict(_by_activation(ds, "rate_opt"))[act].values), mk + "-",
                            color=colour, ms=5, label=str(act))
    ax.set_xlabel(label(ds["K"], "K"))
    ax.set_ylabel("learning rate eta")
    ax.set_xticks(K)
    ax.set_ylim(0, top)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(title or "Stability boundary of the perfect solution (eta^2 terms kept)", fontsize=10)
    ax.grid(alpha=0.3)
    if two:
        a2 = axes[0, 1]
        a2.set_xlabel(label(ds["K"], "K"))
        a2.set_ylabel(label(ds["rate_opt"]))
        a2.set_yscale("log")
        a2.set_xticks(K)
        a2.set_title("Slowest asymptotic decay rate at eta_opt", fontsize=10)
        a2.legend(fontsize=8)
        a2.grid(alpha=0.3, which="both")
    return fig


@register_figure("plateau_escape")
def plot_plateau_escape(ds: xr.Dataset, title: str | None = None) -> Figure:
    """Escape eigenvalue of the symmetric plateau against K = M (markers), the erf closed form (line), and eps_g there."""
    fig, axes = new_figure(1, 2, figsize=(11, 4.3))
    ax, ax2 = axes[0]
    K = ds["K"].values
    for j, (act, lam) in enumerate(_by_activation(ds, "escape_eigenvalue")):
        colour, mk = f"C{j}", _MARKERS.get(str(act), "^")
        ax.plot(K, lam.values, mk, color=colour, ms=6, label=f"{act}: computed")
        closed = dict(_by_activation(ds, "escape_closed_form"))[act].values
        if np.isfinite(closed).any():
            ax.plot(K, closed, "-", color=colour, lw=1, label=f"{act}: Saad-Solla closed form")
        ax2.plot(K, dict(_by_activation(ds, "plateau_eg"))[act].values, mk + "-", color=colour, ms=5, label=str(act))
    ax.set_ylabel(label(ds["escape_eigenvalue"]))
    ax.set_yscale("log")
    ax.set_title(title or "Escape eigenvalue of the symmetric plateau", fontsize=10)
    ax2.set_ylabel(label(ds["plateau_eg"]))
    ax2.set_title("Generalisation error on the plateau", fontsize=10)
    for a in (ax, ax2):
        a.set_xlabel(label(ds["K"], "K"))
        a.set_xticks(K)
        a.legend(fontsize=8)
        a.grid(alpha=0.3, which="both")
    return fig


@register_figure("k_scaling")
def plot_k_scaling(ds: xr.Dataset, title: str | None = None) -> Figure:
    """Large-K laws against K = M, per activation: ``K eta_c`` and ``K eta_opt`` with their fitted limits,
    the plateau's ``eps_g / K``, its escape eigenvalue and the convergence time (log-log).

    Reads the ``inverse_fit`` analyses ``K_eta_c_``, ``K_eta_opt_`` and
    ``plateau_eg_per_K_`` (their ``scaled`` values and fitted ``limit``, dotted
    and labelled; an ``expected_limit`` is a star) and the ``escape_eigenvalue``
    and ``convergence_time`` measures; a missing one leaves its panel out.  Negative escape
    eigenvalues (a plateau that no longer escapes) show as their absolute value, open markers.
    """
    names = {"K_eta_c_scaled": "K eta_c", "K_eta_opt_scaled": "K eta_opt", "plateau_eg_per_K_scaled": "eps_g / K",
             "escape_eigenvalue": "escape eigenvalue", "convergence_time": "convergence time"}
    titles = {"K_eta_c_scaled": "critical (solid) and optimal (dashed) eta, times K",
              "plateau_eg_per_K_scaled": "eps_g / K on the symmetric plateau",
              "escape_eigenvalue": "escape eigenvalue of the plateau [1/alpha]",
              "convergence_time": "convergence time alpha"}
    panels = [p for p in (("K_eta_c_scaled", "K_eta_opt_scaled"), ("plateau_eg_per_K_scaled",),
                          ("escape_eigenvalue",), ("convergence_time",)) if p[0] in ds]
    if not panels:
        raise ValueError("ds: needs K_eta_c_scaled (an inverse_fit analysis with prefix 'K_eta_c_'), "
                         "plateau_eg_per_K_scaled, escape_eigenvalue or convergence_time")
    rows = 1 if len(panels) <= 2 else 2
    cols = -(-len(panels) // rows)
    fig, axes = new_figure(rows, cols, figsize=(1.0 + 5.0 * cols, 0.6 + 3.9 * rows))
    K = ds["K"].values.astype(float)
    for ax, panel in zip(axes.ravel(), panels):
        for v, style in zip(panel, ("-", "--")):
            if v not in ds:
                continue
            prefix = v.removesuffix("scaled")
            for j, (act, y) in enumerate(_by_activation(ds, v)):
                colour, mk = f"C{j}", _MARKERS.get(str(act), "^")
                yv = np.atleast_1d(y.values).astype(float)
                if v == "escape_eigenvalue" and np.any(yv < 0):
                    # a plateau stable inside the subspace: |lambda| as open markers (log axis)
                    ax.plot(K, np.where(yv < 0, -yv, np.nan), mk, color=colour, ms=6, mfc="none",
                            label=f"{act}: -lambda (< 0: plateau stable)")
                    yv = np.where(yv > 0, yv, np.nan)
                ax.plot(K, yv, mk + style, color=colour, ms=5,
                        mfc="none" if style == "--" else colour, label=str(act) if style == "-" else None)
                for suffix in ("limit", "expected_limit"):
                    lim = dict(_by_activation(ds, prefix + suffix)).get(act) if prefix + suffix in ds else None
                    value = float(np.ravel(lim.values)[0]) if lim is not None else np.nan
                    if np.isfinite(value) and suffix == "limit":  # the fitted large-K limit, labelled on its line
                        ax.axhline(value, ls=":", lw=1, color=colour)
                        ax.text(K[0], value, f"{act} {names[v]} -> {fmt(value, 6)}", color=colour, fontsize=7,
                                va="bottom")
                    elif np.isfinite(value):
                        ax.plot(K[-1], value, "*", color=colour, ms=10, label=f"{act}: expected {fmt(value, 6)}")
        ax.set_xscale("log")
        if panel[0] != "K_eta_c_scaled":
            ax.set_yscale("log")
        ax.set_xlabel(label(ds["K"], "K"))
        ax.set_ylabel(", ".join(names[v] for v in panel if v in ds))
        ax.set_title(titles[panel[0]], fontsize=9)
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3, which="both")
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title or "Large-K laws of the site-symmetric committee (dotted: fitted limits)", fontsize=11)
    return fig


@register_figure("plateau_scaling")
def plot_plateau_scaling(ds: xr.Dataset, var: str = "plateau_length", time: str = "eta_alpha",
                         title: str | None = None) -> Figure:
    """Plateau length against ln(1/X), one panel per activation, with the stored fits.

    Markers: the measured lengths (filled for the start displaced along the
    escape direction, open for other starts); lines: the least-squares fit of
    the ``plateau_fit`` analysis (solid, dotted for other starts) and the
    predicted slope ``1 / lambda_esc`` through the centroid of the fitted points (dashed).
    ``time = "eta_alpha"`` shows lengths in units of eta alpha.
    """
    if var not in ds or "X" not in ds[var].dims:
        raise ValueError(f"ds: needs {var!r} over an 'X' grid dim")
    facet = "activation" if "activation" in ds[var].dims else None
    acts = list(ds["activation"].values) if facet else [None]
    others = [d for d in ds[var].dims if d not in ("X", facet)]
    fig, axes = new_figure(1, len(acts), figsize=(1.5 + 5.6 * len(acts), 4.6))
    lnx = np.log(1.0 / ds["X"].values.astype(float))
    xs = np.linspace(lnx.min(), lnx.max(), 2)
    for ax, act in zip(axes[0], acts):
        sub = ds.sel(activation=act) if facet else ds
        stacked = sub[var].stack(_line=others) if others else sub[var].expand_dims(_line=[0])
        for j in range(stacked.sizes["_line"]):
            sel = {d: stacked[d].values[j] for d in others}
            point = sub.sel(sel) if sel else sub
            eta = float(np.ravel(point["eta"].values)[0]) if time == "eta_alpha" and "eta" in point else 1.0
            y = eta * point[var].transpose("X").values
            kind = sel.get("kind", point["kind"].values.item() if "kind" in point.coords else "plateau")
            start_plateau = kind == "plateau"
            colour = f"C{j % 10}"
            name = ", ".join(f"{d} = {fmt(v, 3)}" for d, v in sel.items()) or "plateau length"
            ax.plot(lnx, y, "o", color=colour, mfc=colour if start_plateau else "none", ms=5, label=name)
            if "fitted_slope" in point and np.isfinite(float(point["fitted_slope"])):
                a, b = eta * float(point["fitted_slope"]), eta * float(point["fitted_intercept"])
                err = eta * float(point["fitted_slope_stderr"])  # NaN for three points or fewer: not shown
                ax.plot(xs, a * xs + b, "-" if start_plateau else ":", color=colour, lw=1.2,
                        label=f"  fit: slope {a:.4g}" + (f" +- {err:.2g}" if np.isfinite(err) else "")
                              + f" (ratio {float(point['slope_ratio']):.4f})")
                fit = point["in_fit"].transpose("X").values.astype(bool)
                if start_plateau and fit.any() and np.isfinite(float(point["predicted_slope"])):
                    p = eta * float(point["predicted_slope"])
                    xc, yc = lnx[fit].mean(), y[fit].mean()
                    ax.plot(xs, yc + p * (xs - xc), "--", color="k", lw=0.8, label=f"  1/lambda_esc = {p:.4g}")
        ax.set_xlabel("ln(1/X), X = initial distance from the symmetric subspace")
        ax.set_ylabel(f"plateau length {'eta alpha_P' if time == 'eta_alpha' else 'alpha_P'}")
        ax.set_title(title or (f"Plateau length vs ln(1/X): {act}" if act is not None else "Plateau length vs ln(1/X)"),
                     fontsize=10)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.grid(alpha=0.3)
    return fig
