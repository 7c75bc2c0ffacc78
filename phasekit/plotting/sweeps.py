"""Figures of sweep datasets (:func:`phasekit.sweep`).

Every function takes the sweep's ``xarray.Dataset``; grid dims that a figure
does not show are fixed at their first value, and the title says which.
Points whose status is not ``"ok"`` are marked, never silently dropped.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.colors import LogNorm, Normalize
from matplotlib.lines import Line2D

from .common import label

__all__ = [
    "fixed_elsewhere",
    "stability_boundary",
    "heatmap",
    "plateau_scaling",
    "measure_lines",
]

_SYMBOL = {"eta": "eta", "K": "K", "M": "M", "activation": "activation", "X": "X", "noise": "sigma",
           "second_order": "2nd order"}


def _fmt(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.3g}"
    return str(value.item() if hasattr(value, "item") else value)


def fixed_elsewhere(da: xr.DataArray, keep: Sequence[str]) -> tuple[xr.DataArray, str]:
    """Select the first value of every dim not in ``keep``; also return ``"eta = 0.1, ..."``."""
    others = [d for d in da.dims if d not in keep]
    sel = {d: 0 for d in others}
    note = ", ".join(f"{_SYMBOL.get(d, d)} = {_fmt(da[d].values[0])}" for d in others)
    return da.isel(sel), note


def _title(main: str, note: str) -> str:
    return f"{main}\n({note})" if note else main


def _coord_label(ds: xr.Dataset, dim: str) -> str:
    return label(ds[dim], dim)


def stability_boundary(ds: xr.Dataset) -> plt.Figure:
    """Critical learning rate ``eta_c`` against K, one line per activation.

    Above the line the perfect solution is unstable: SGD with that eta cannot
    converge to zero error.
    """
    if "eta_c" not in ds:
        raise ValueError("ds: needs an 'eta_c' variable (measure eta_c)")
    keep = [d for d in ("K", "activation") if d in ds["eta_c"].dims]
    # eta_c does not depend on eta: the learning rate is not a fixed parameter here.
    da, note = fixed_elsewhere(ds["eta_c"].isel(eta=0) if "eta" in ds["eta_c"].dims else ds["eta_c"], keep)
    fig, ax = plt.subplots(figsize=(6, 4.3))
    acts = list(da["activation"].values) if "activation" in da.dims else [None]
    top = float(np.nanmax(da.values)) * 1.3 if np.isfinite(da.values).any() else 1.0
    if "eta" in ds.dims:
        top = max(top, float(ds["eta"].max()) * 1.1)
    runs = None
    if "eta" in ds["status"].dims and "K" in ds["status"].dims:
        runs, _ = fixed_elsewhere(ds["status"], ["eta", "K"] + (["activation"] if acts[0] is not None else []))
    for j, act in enumerate(acts):
        line = da.sel(activation=act) if act is not None else da
        x = line["K"].values if "K" in line.dims else np.array([ds.attrs.get("model_K", 0)])
        y = np.atleast_1d(line.values)
        name = act if act is not None else ds.attrs.get("model_activation", "")
        ax.plot(x, y, "o-", color=f"C{j}", lw=2, label=f"{name}: eta_c")
        ax.fill_between(x, y, top, color=f"C{j}", alpha=0.08)
        if runs is not None:
            r = runs.sel(activation=act) if act is not None else runs
            r = r.transpose("K", "eta")
            kk, ee = np.meshgrid(r["K"].values, r["eta"].values, indexing="ij")
            div = r.values == "diverged"
            off = 0.06 * (j - (len(acts) - 1) / 2)  # side by side, not on top of each other
            if div.any():
                ax.plot(kk[div] + off, ee[div], "x", color=f"C{j}", ms=7, mew=1.5,
                        label=f"{name}: sweep runs that diverged")
        ax.set_xlabel(_coord_label(ds, "K") if "K" in ds.dims else "student hidden units K [1]")
    ax.set_ylabel(label(ds["eta_c"]))
    if "K" in ds.dims:
        ax.set_xticks(ds["K"].values)
    ax.set_ylim(0, top)
    ax.legend(title="shaded: perfect solution unstable", fontsize=8, title_fontsize=8, loc="upper left",
              bbox_to_anchor=(1.02, 1.0))
    ax.set_title(_title("Stability boundary of the perfect solution", note))
    ax.grid(alpha=0.3)
    return fig


def heatmap(ds: xr.Dataset, var: str, x: str, y: str, *, log: bool | None = None,
            title: str | None = None) -> plt.Figure:
    """``ds[var]`` over the grid dims ``x`` (columns) and ``y`` (rows).

    One panel per activation when ``activation`` is another grid dim.  Cells
    whose point diverged are hatched and marked ``x``; points that never got
    below the threshold (``inf``) are grey; failed points are marked ``!``.
    Cell values are written into small grids.
    """
    if var not in ds:
        raise ValueError(f"var: {var!r} is not a variable of the dataset")
    for d in (x, y):
        if d not in ds[var].dims:
            raise ValueError(f"{d!r} is not a grid dim of {var!r} (dims {ds[var].dims})")
    facet = "activation" if "activation" in ds[var].dims and "activation" not in (x, y) else None
    keep = [x, y] + ([facet] if facet else [])
    da, note = fixed_elsewhere(ds[var], keep)
    st, _ = fixed_elsewhere(ds["status"], keep)
    panels = list(da[facet].values) if facet else [None]
    vals = da.values[np.isfinite(da.values)]
    if log is None:
        log = vals.size > 0 and vals.min() > 0 and vals.max() / vals.min() > 20
    norm = (LogNorm(vals.min(), vals.max()) if log and vals.size else
            Normalize(vals.min(), vals.max()) if vals.size else Normalize(0, 1))
    fig, axes = plt.subplots(1, len(panels), figsize=(1.2 + 4.3 * len(panels), 4.2), squeeze=False,
                             constrained_layout=True)
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")  # grey: no value
    mesh = None
    seen: set[str] = set()
    for ax, p in zip(axes[0], panels):
        d = da.sel({facet: p}) if facet else da
        s = st.sel({facet: p}) if facet else st
        d = d.transpose(y, x)
        s = s.transpose(y, x)
        z = np.ma.masked_invalid(d.values)
        mesh = ax.pcolormesh(np.arange(d.sizes[x] + 1) - 0.5, np.arange(d.sizes[y] + 1) - 0.5, z,
                             cmap=cmap, norm=norm, shading="flat")
        small = d.size <= 64
        for (r, c), v in np.ndenumerate(d.values):
            stat = s.values[r, c]
            if stat == "diverged":
                ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, hatch="///", lw=0,
                                           edgecolor="0.4"))
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
                ax.text(c, r, text, ha="center", va="center", fontsize=8,
                        color="w" if norm(v) < 0.55 else "k")
        ax.set_xticks(range(d.sizes[x]), [_fmt(v) for v in d[x].values], rotation=45 if d.sizes[x] > 6 else 0)
        ax.set_yticks(range(d.sizes[y]), [_fmt(v) for v in d[y].values])
        ax.set_xlabel(_coord_label(ds, x))
        ax.set_ylabel(_coord_label(ds, y))
        ax.set_title(f"activation = {p}" if facet else "", fontsize=10)
    cb = fig.colorbar(mesh, ax=axes[0].tolist(), shrink=0.9)
    cb.set_label(label(ds[var]))
    handles = {"diverged": Line2D([], [], ls="", marker="x", color="k", label="diverged (hatched)"),
               "inf": Line2D([], [], ls="", marker="o", mfc="none", mec="0.3", label="threshold not reached"),
               "failed": Line2D([], [], ls="", marker="$!$", color="crimson", label="not computed (see report)")}
    shown = [h for k, h in handles.items() if k in seen]
    if shown:
        fig.legend(handles=shown, loc="outside lower center", ncol=len(shown), fontsize=8, frameon=False)
    fig.suptitle(_title(title or ds[var].attrs.get("long_name", var), note), fontsize=11)
    return fig


def plateau_scaling(ds: xr.Dataset, var: str = "plateau_length") -> plt.Figure:
    """Plateau length against ``ln(1/X)`` with straight-line fits.

    One line per value of the other grid dims (first three dims' combinations,
    at most eight lines).  The legend gives each fit's slope, which theory
    predicts to be ``1 / lambda_esc``; with an ``escape_eigenvalue`` variable
    the prediction is drawn dashed for comparison.
    """
    if var not in ds or "X" not in ds[var].dims:
        raise ValueError(f"ds: needs {var!r} over an 'X' grid dim")
    others = [d for d in ds[var].dims if d != "X"]
    stacked = ds[var].stack(_line=others) if others else ds[var].expand_dims(_line=[0])
    fig, ax = plt.subplots(figsize=(6, 4.3))
    lnx = np.log(1.0 / ds["X"].values)
    for j in range(min(8, stacked.sizes["_line"])):
        y = stacked.isel(_line=j).values
        ok = np.isfinite(y)
        name = ", ".join(f"{_SYMBOL.get(d, d)} = {_fmt(stacked[d].values[j])}" for d in others) or "sweep"
        color = f"C{j}"
        ax.plot(lnx[ok], y[ok], "o", color=color)
        if ok.sum() >= 2:
            slope, icpt = np.polyfit(lnx[ok], y[ok], 1)
            xx = np.linspace(lnx.min(), lnx.max(), 50)
            ax.plot(xx, slope * xx + icpt, "-", color=color, label=f"{name}: fit slope {slope:.3g}")
        else:
            ax.plot([], [], "o", color=color, label=name)
        if "escape_eigenvalue" in ds:
            sel = {d: stacked[d].values[j] for d in others}
            lam = ds["escape_eigenvalue"].sel(sel).values if others else ds["escape_eigenvalue"].values
            lam = np.atleast_1d(lam)
            lam = lam[np.isfinite(lam) & (lam > 0)]
            if lam.size and ok.sum() >= 1:
                pred = 1.0 / lam[0]
                x0, y0 = lnx[ok].mean(), y[ok].mean()
                xx = np.linspace(lnx.min(), lnx.max(), 50)
                ax.plot(xx, y0 + pred * (xx - x0), "--", color=color, lw=1,
                        label=f"{name}: 1/lambda_esc = {pred:.3g}")
    ax.set_xlabel("ln(1/X), X = initial overlap [1]")
    ax.set_ylabel(label(ds[var]))
    ax.set_title("Plateau length grows like (1/lambda_esc) ln(1/X)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def measure_lines(ds: xr.Dataset, var: str, x: str, *, hue: str | None = None,
                  logy: bool | None = None) -> plt.Figure:
    """``ds[var]`` against grid dim ``x``, one line per value of ``hue`` (at most eight).

    One panel per activation when ``activation`` is another grid dim.
    Diverged points are marked ``x`` at the bottom of the axes, points that
    never got below the threshold (``inf``) with a triangle at the top.
    """
    facet = "activation" if "activation" in ds[var].dims and "activation" not in (x, hue) else None
    keep = [x] + ([hue] if hue else []) + ([facet] if facet else [])
    da, note = fixed_elsewhere(ds[var], keep)
    st, _ = fixed_elsewhere(ds["status"], keep)
    panels = list(da[facet].values) if facet else [None]
    fig, axes = plt.subplots(1, len(panels), figsize=(1 + 5 * len(panels), 4.2), squeeze=False,
                             sharey=True, constrained_layout=True)
    hues = list(da[hue].values)[:8] if hue else [None]
    finite = da.values[np.isfinite(da.values) & (st.values != "diverged")]
    if logy is None:
        logy = finite.size > 0 and finite.min() > 0 and finite.max() / finite.min() > 20
    seen = set()
    for ax, p in zip(axes[0], panels):
        dp = da.sel({facet: p}) if facet else da
        sp = st.sel({facet: p}) if facet else st
        for j, h in enumerate(hues):
            d = dp.sel({hue: h}) if hue else dp
            s = sp.sel({hue: h}) if hue else sp
            xv = d[x].values
            yv = d.values
            name = f"{_SYMBOL.get(hue, hue)} = {_fmt(h)}" if hue else var
            div = s.values == "diverged"
            # a diverged run's value is where it happened to stop: not drawn, only marked
            ax.plot(xv, np.where(np.isfinite(yv) & ~div, yv, np.nan), "o-", color=f"C{j}", label=name)
            if div.any():
                ax.plot(xv[div], np.full(div.sum(), 0.03), "x", color=f"C{j}", ms=8, mew=2,
                        transform=ax.get_xaxis_transform())
                seen.add("diverged")
            inf = np.isinf(yv) & ~div
            if inf.any():
                ax.plot(xv[inf], np.full(inf.sum(), 0.97), "^", color=f"C{j}", ms=7,
                        transform=ax.get_xaxis_transform())
                seen.add("inf")
        if logy:
            ax.set_yscale("log")
        if x == "eta" and ds.sizes[x] > 2 and ds[x].values[-1] / ds[x].values[0] > 10:
            ax.set_xscale("log")
        handles, labels = ax.get_legend_handles_labels()
        if "diverged" in seen:
            handles.append(Line2D([], [], ls="", marker="x", mew=2, color="0.3"))
            labels.append("diverged")
        if "inf" in seen:
            handles.append(Line2D([], [], ls="", marker="^", color="0.3"))
            labels.append("never below threshold")
        ax.legend(handles, labels, fontsize=8)
        ax.set_xlabel(_coord_label(ds, x))
        ax.set_title(f"activation = {p}" if facet else "", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(label(ds[var]))
    fig.suptitle(_title(ds[var].attrs.get("long_name", var), note), fontsize=11)
    return fig
