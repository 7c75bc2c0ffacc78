"""Markdown reports of sweep datasets, with their figures.

:func:`write_report` reads a dataset written by :func:`phasekit.sweep`, draws
the figures that its grid and measures allow (stability boundary, heatmaps,
plateau scaling, order-parameter trajectories of chosen points) and writes
``report.md`` next to a ``figures/`` folder.  Trajectories are integrated
here, from the study stored in the dataset, and saved as netCDF.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import xarray as xr

from .study.schema import Study, parse_study

__all__ = ["write_report", "trajectory_points", "point_trajectories"]


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if np.isnan(v):
            return "-"
        if np.isinf(v):
            return "inf"
        return f"{v:.4g}"
    if isinstance(v, np.generic):
        v = v.item()
    return str(v)


def _cell(v: Any, limit: int = 200) -> str:
    """``v`` as one Markdown table cell: on one line, ``|`` escaped, at most ``limit`` characters."""
    text = " ".join(_fmt(v).split())
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    return text.replace("|", "\\|")


def _study_of(ds: xr.Dataset) -> Study:
    if "study" not in ds.attrs:
        raise ValueError("ds: dataset has no 'study' attribute (not written by phasekit.sweep?)")
    return parse_study(json.loads(ds.attrs["study"]), source=str(ds.attrs.get("study_name", "<dataset>")))


def trajectory_points(study: Study, ds: xr.Dataset, max_points: int = 3) -> list[int]:
    """Flat indices of the grid points whose trajectories the report shows.

    The study's ``[report] trajectories`` selections if given (unspecified
    axes at their first value); otherwise up to ``max_points`` points spread
    along the first grid axis (the others at their first value), leaving out
    points that were never computed (status ``"missing"``).
    """
    dims = study.dims
    if not dims:
        return [0]
    sels = study.report.get("trajectories")
    if sels:
        out = []
        for sel in sels:
            idx = tuple(study.grid[d].index(sel[d]) if d in sel else 0 for d in dims)
            out.append(int(np.ravel_multi_index(idx, study.shape)))
        return out
    n0 = study.shape[0]
    picks = sorted({0, n0 // 2, n0 - 1})[:max_points]
    status = ds["status"].values
    out = []
    for p in picks:
        idx = (p,) + (0,) * (len(dims) - 1)
        j = int(np.ravel_multi_index(idx, study.shape))
        if status.ravel()[j] != "missing":
            out.append(j)
    return out or [0]


def point_trajectories(study: Study, indices: Sequence[int]) -> list[xr.Dataset]:
    """Integrate the trajectories of grid points ``indices`` with the study's settings."""
    from .committee.dynamics import integrate
    from .committee.model import Committee
    from .committee.starts import initial_state

    out = []
    for j in indices:
        p = study.point_parameters(j)
        model = Committee(K=p["K"], M=p["M"], activation=p["activation"], eta=p["eta"],
                          second_order=p["second_order"], noise=p["noise"],
                          teacher_activation=p["teacher_activation"])
        init = study.initial
        s0 = initial_state(model, p["X"], Q0=init.get("Q0"), kind=init.get("kind", "diagonal"),
                           seed=init.get("seed"))
        kw = {k: study.integration[k] for k in ("n_points", "stop_eg") if study.integration.get(k) is not None}
        solver = {k: study.integration[k] for k in ("rtol", "atol", "method", "max_norm")
                  if study.integration.get(k) is not None}
        traj = integrate(model, s0, study.alpha_max(p["eta"]), solver=solver, **kw)
        traj.attrs["grid_point"] = int(j)
        traj.attrs["grid_values"] = json.dumps({k: _fmt(v) for k, v in study.point(j).items()})
        out.append(traj)
    return out


def _point_label(study: Study, j: int) -> str:
    return ", ".join(f"{k} = {_fmt(v)}" for k, v in study.point(j).items()) or study.name


def write_report(
    ds: xr.Dataset | str | Path,
    outdir: str | Path | None = None,
    *,
    trajectories: bool = True,
    dataset_path: str | Path | None = None,
) -> Path:
    """Write ``<outdir>/report.md`` with figures under ``<outdir>/figures``.

    Parameters
    ----------
    ds : xarray.Dataset or path
        A sweep dataset (or its netCDF file).
    outdir : path, optional
        Where to write; default: the dataset file's folder, else ``outputs/<study name>``.
    trajectories : bool
        Integrate and plot the trajectories of a few grid points.
    dataset_path : path, optional
        Path of the dataset file, quoted in the report.

    Returns
    -------
    pathlib.Path
        The report file.
    """
    from .plotting import committee as pc
    from .plotting import save_figure
    from .plotting import sweeps as ps

    if not isinstance(ds, xr.Dataset):
        dataset_path = Path(ds)
        ds = xr.load_dataset(dataset_path, engine="scipy")
    study = _study_of(ds)
    if outdir is None:
        outdir = Path(dataset_path).parent if dataset_path is not None else Path("outputs") / study.name
    outdir = Path(outdir)
    _check_writable(outdir)
    figdir = outdir / "figures"
    figures: list[tuple[str, Path, str]] = []  # (title, path, caption)

    def add(fig: Any, name: str, title: str, caption: str) -> None:
        figures.append((title, save_figure(fig, figdir / f"{name}.png"), caption))

    dims = set(study.dims)
    vars_ = set(ds.data_vars)
    if "eta_c" in vars_ and ({"K", "activation"} & dims):
        add(ps.stability_boundary(ds), "stability_boundary", "Stability boundary",
            "Critical learning rate eta_c of the perfect solution against the number of hidden units. "
            "For eta above eta_c the eta^2 term of on-line SGD destabilises the perfect solution.")
    if "convergence_time" in vars_:
        thr = (study.measures["convergence_time"].get("threshold") or study.integration.get("stop_eg") or 1e-3)
        if {"eta", "K"} <= dims:
            add(ps.heatmap(ds, "convergence_time", "eta", "K",
                           title=f"Convergence time: first alpha with eps_g < {thr:g}"), "convergence_time_eta_K",
                "Convergence time over eta x K",
                "Time alpha (examples per input dimension) until eps_g first drops below the threshold. "
                "Hatched cells with x: the run diverged; grey circles: the threshold was not reached in time.")
        if "eta" in dims:
            hue = next((d for d in ("K", "activation", "M", "X") if d in dims), None)
            add(ps.measure_lines(ds, "convergence_time", "eta", hue=hue), "convergence_time_vs_eta",
                "Convergence time against eta",
                "Too small eta learns slowly, too large eta diverges: the fastest learning rate lies in between.")
    for var in ("asymptotic_eg", "final_eg"):
        if var in vars_ and {"K", "M"} <= dims:
            add(ps.heatmap(ds, var, "M", "K"), f"{var}_K_M", f"{ds[var].attrs['long_name']} over K x M",
                "Over-realisable students (K > M) can reach zero error; unrealisable ones (K < M) cannot.")
            break
    if "plateau_length" in vars_ and "X" in dims:
        add(ps.plateau_scaling(ds), "plateau_scaling", "Plateau length against ln(1/X)",
            "The time spent on the symmetric plateau grows like (1/lambda_esc) ln(1/X); "
            "solid lines are straight-line fits, dashed lines the slope predicted by the escape eigenvalue.")
    if "eta" in dims:
        hue = next((d for d in ("K", "activation", "M", "X") if d in dims), None)
        for var in ("plateau_length", "final_eg", "escape_eigenvalue", "asymptotic_eg"):
            if var in vars_ and not (var == "plateau_length" and "X" in dims):
                add(ps.measure_lines(ds, var, "eta", hue=hue), f"{var}_vs_eta",
                    f"{ds[var].attrs['long_name']} against eta", "")

    traj_files: list[Path] = []
    if trajectories:
        idx = trajectory_points(study, ds)
        trajs = point_trajectories(study, idx)
        tdir = outdir / "trajectories"
        tdir.mkdir(parents=True, exist_ok=True)
        for j, traj in zip(idx, trajs):
            f = tdir / f"point-{j}.nc"
            traj.to_netcdf(f, engine="scipy")
            traj_files.append(f)
            add(pc.order_parameters(traj, title=f"Order parameters at {_point_label(study, j)}"
                                    f" ({traj.attrs['activation']}, {traj.attrs['status']})"),
                f"trajectory_point{j}", f"Trajectory at {_point_label(study, j)}",
                f"Overlaps and eps_g along the run ({traj.attrs['message']}).")
        if len(trajs) > 1:
            add(pc.eg_curves(trajs, labels=[_point_label(study, j) for j in idx],
                             title="Generalisation error of the chosen points"),
                "trajectories_eg", "eps_g of the chosen points", "")

    lines = _markdown(ds, study, figures, traj_files, outdir, dataset_path)
    path = outdir / "report.md"
    outdir.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _check_writable(outdir: Path) -> None:
    """Fail before drawing anything when the report cannot be written to ``outdir``."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        ok = os.access(outdir, os.W_OK)
        reason = "not writable"
    except OSError as exc:
        ok, reason = False, exc.strerror or type(exc).__name__
    if not ok:
        raise PermissionError(f"outdir: cannot write the report to {outdir} ({reason}); "
                              f"give another output folder (--outdir)")


def _highlights(ds: xr.Dataset, study: Study) -> list[str]:
    """Key numbers: eta_c and the fastest learning rate per combination of the other axes."""
    L: list[str] = []
    others = [d for d in study.dims if d not in ("eta", "X")]
    fastest = "convergence_time" in ds and "eta" in study.dims
    if not others or not ("eta_c" in ds or fastest):
        return L
    head = others + (["eta_c"] if "eta_c" in ds else [])
    if fastest:
        head += ["fastest eta on the grid", "its convergence time"]
    L += ["## Highlights", "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    sub = ds.stack(_combo=others)
    for j in range(sub.sizes["_combo"]):
        one = sub.isel(_combo=j)
        row = [_cell(one[d].values) for d in others]
        if "eta_c" in ds:
            row.append(_fmt(np.nanmax(one["eta_c"].values) if np.isfinite(one["eta_c"].values).any() else np.nan))
        if fastest:
            ct = one["convergence_time"]
            extra = [d for d in ct.dims if d != "eta"]
            if extra:
                ct = ct.isel({d: 0 for d in extra})
            vals = np.where(one["status"].isel({d: 0 for d in extra}).values == "ok", ct.values, np.nan)
            if np.isfinite(vals).any():
                k = int(np.nanargmin(vals))
                row += [_fmt(ct["eta"].values[k]), _fmt(vals[k])]
            else:
                row += ["-", "-"]
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    return L


def _rel(p: Path, base: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(base.resolve()))
    except ValueError:
        return str(p)


def _markdown(ds: xr.Dataset, study: Study, figures: list, traj_files: list[Path], outdir: Path,
              dataset_path: Path | None) -> list[str]:
    title = study.report.get("title") or f"Sweep report: {study.name}"
    L = [f"# {title}", ""]
    if study.description:
        L += [study.description, ""]
    L += [f"- dataset: `{dataset_path if dataset_path is not None else '(in memory)'}`",
          f"- phasekit {ds.attrs.get('phasekit_version', '?')}, study hash `{ds.attrs.get('study_hash', '?')}`",
          f"- computed {ds.attrs.get('started', '?')} to {ds.attrs.get('finished', '?')}", ""]
    L += ["## Study", "", "| setting | value |", "| --- | --- |"]
    for ax in study.dims:
        values = _cell(", ".join(_fmt(v) for v in study.grid[ax]), 400)
        L.append(f"| grid `{ax}` ({len(study.grid[ax])}) | {values} |")
    for k, v in study.model.items():
        if k not in study.dims and v is not None:
            L.append(f"| model `{k}` | {_cell(v)} |")
    for k, v in study.initial.items():
        if v is not None:
            L.append(f"| initial `{k}` | {_cell(v)} |")
    for k, v in study.integration.items():
        if v is not None:
            L.append(f"| integration `{k}` | {_cell(v)} |")
    for m, s in study.measures.items():
        settings = ", ".join(f"{a} = {_fmt(b)}" for a, b in s.items()) or "defaults"
        L.append(f"| measure `{m}` | {_cell(settings)} |")
    L.append("")

    status = ds["status"].values.ravel()
    L += ["## Status", ""]
    counts = {s: int((status == s).sum()) for s in np.unique(status)}
    L.append(", ".join(f"{c} {s}" for s, c in counts.items()) + f" (of {status.size} points)")
    L.append("")
    bad = np.flatnonzero(status != "ok")
    if bad.size:
        L += ["| point | status | message |", "| --- | --- | --- |"]
        for j in bad[:20]:
            msg = ds["message"].values.ravel()[j]
            L.append(f"| {_cell(_point_label(study, int(j)))} | {_cell(status[j])} | {_cell(msg, 300)} |")
        if bad.size > 20:
            L.append(f"| ... | | {bad.size - 20} more |")
        L.append("")

    L += _highlights(ds, study)
    L += ["## Figures", ""]
    for t, p, cap in figures:
        L += [f"### {t}", "", f"![{t}]({_rel(p, outdir)})", ""]
        if cap:
            L += [cap, ""]

    outputs = [v for v in ds.data_vars if v not in ("status", "message", "seconds", "invocation", "worker")]
    L += ["## Results", ""]
    if status.size <= 60:
        head = list(study.dims) + outputs + ["status"]
        L += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for j in range(status.size):
            pt = study.point(j)
            row = [_cell(pt[d]) for d in study.dims]
            row += [_cell(ds[v].values.ravel()[j]) for v in outputs] + [_cell(status[j])]
            L.append("| " + " | ".join(row) + " |")
    else:
        L += ["| measure | units | min | median | max | finite points |", "| --- | --- | --- | --- | --- | --- |"]
        for v in outputs:
            x = ds[v].values.ravel()
            f = x[np.isfinite(x)]
            stats = [_fmt(np.min(f)), _fmt(np.median(f)), _fmt(np.max(f))] if f.size else ["-"] * 3
            L.append(f"| {ds[v].attrs.get('long_name', v)} | {ds[v].attrs.get('units', '')} | "
                     + " | ".join(stats) + f" | {f.size} |")
    L.append("")
    if traj_files:
        L += ["Trajectory datasets: " + ", ".join(f"`{_rel(f, outdir)}`" for f in traj_files), ""]
    return L

