"""The one Markdown report of a study dataset, with its figures: a view that computes nothing.

:func:`write_report` reads a dataset written by :func:`phasekit.study.runner.run_study`
(or ``phasekit run``), draws the figures its study names in
``[[report.figures]]`` (or :func:`phasekit.plotting.default_figures`) from
the values stored in it -- measures, stored trajectories and the analyses'
fits and optima -- and writes ``report.md`` next to a ``figures/`` folder.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import xarray as xr

from .core.datasets import _lazy_dask_in_xarray
from .plotting import default_figures, draw, save_figure
from .plotting.common import fmt, status_names_of
from .study.schema import Study, parse_study

__all__ = ["write_report", "study_of"]

_BOOKKEEPING = ("status", "message", "seconds", "invocation", "worker")


def study_of(ds: xr.Dataset) -> Study:
    """The study a dataset was computed from (its ``study`` attribute)."""
    if "study" not in ds.attrs:
        raise ValueError("ds: dataset has no 'study' attribute (not written by phasekit's study runner?)")
    return parse_study(json.loads(ds.attrs["study"]), source=str(ds.attrs.get("study_name", "<dataset>")))


def _cell(v: Any, limit: int = 200) -> str:
    """``v`` as one Markdown table cell: on one line, ``|`` escaped, at most ``limit`` characters."""
    text = " ".join(fmt(v).split())
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    return text.replace("|", "\\|")


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


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


def _rel(p: Path, base: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(base.resolve()))
    except ValueError:
        return str(p)


def write_report(ds: xr.Dataset | str | Path, outdir: str | Path | None = None, *, trajectories: bool = True,
                 dataset_path: str | Path | None = None) -> Path:
    """Write ``<outdir>/report.md`` with figures under ``<outdir>/figures``.

    Parameters
    ----------
    ds : xarray.Dataset or path
        A study dataset (or its netCDF file).
    outdir : path, optional
        Where to write; default: the dataset file's folder, else ``outputs/<study name>``.
    trajectories : bool
        Draw the stored trajectories.
    dataset_path : path, optional
        Path of the dataset file, quoted in the report.

    Returns
    -------
    pathlib.Path
        The report file.
    """
    _lazy_dask_in_xarray()  # a report uses no dask: loading and drawing need not import it
    if not isinstance(ds, xr.Dataset):
        dataset_path = Path(ds)
        ds = xr.load_dataset(dataset_path, engine="scipy")
    study = study_of(ds)
    if outdir is None:
        outdir = Path(dataset_path).parent if dataset_path is not None else Path("outputs") / study.name
    outdir = Path(outdir)
    _check_writable(outdir)
    figures = []  # (title, path, caption)
    drawn = []  # (Figure, path)
    specs = study.report.get("figures") or default_figures(ds)
    for spec in specs:
        if spec["kind"] == "trajectories" and not trajectories:
            continue
        for name, title, fig in draw(ds, spec):
            drawn.append((fig, outdir / "figures" / f"{name}.png"))
            figures.append((title or spec.get("title") or name.replace("_", " "), drawn[-1][1],
                            spec.get("caption", "")))
    lines = _save_figures(drawn, lambda: _markdown(ds, study, figures, outdir, dataset_path))
    path = outdir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


_TO_SAVE: list = []  # the figures a forked child saves (inherited, never pickled)
_SAVE_PROCESSES: int | None = None  # processes that save figures: None one per core, 1 this process


def _child_signals() -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the command line's handlers
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which ends the pool


def _save_one(j: int) -> None:
    save_figure(*_TO_SAVE[j])


def _save_figures(drawn: list, meanwhile: Callable[[], Any]) -> Any:
    """Write the figures as PNG and return ``meanwhile()``, called while they are written.

    Rendering costs most of a report, so two or more figures go to forked
    processes, one per core, when this process runs no other thread (a fork
    copies no thread).  All are drawn before the fork, so that this process
    does not write to memory it shares with the children while they render
    (handing each figure to a process of its own as soon as it was drawn was
    measured no faster, and costlier in CPU time).
    """
    import multiprocessing
    import threading

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    n = min(len(drawn), cores if _SAVE_PROCESSES is None else _SAVE_PROCESSES)
    if n < 2 or threading.active_count() > 1 or "fork" not in multiprocessing.get_all_start_methods():
        for fig, path in drawn:
            save_figure(fig, path)
        return meanwhile()
    for _, path in drawn:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    _TO_SAVE[:] = drawn
    pool = multiprocessing.get_context("fork").Pool(n, initializer=_child_signals)
    try:
        saved = pool.map_async(_save_one, range(len(drawn)), chunksize=1)
        result = meanwhile()
        saved.get()
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
        _TO_SAVE.clear()
    return result


def _settings(study: Study) -> list[str]:
    rows = []
    on_grid = {k for a in study.axes for x in a.assigns for k in x} | {a.name for a in study.axes}
    for axis in study.axes:
        if axis.depends is not None:
            values = "; ".join(f"{k}: {', '.join(fmt(v) for v in vals)}" for k, vals in axis.table.items())
        elif axis.is_case:
            values = "; ".join(f"{c}: " + ", ".join(f"{k} = {fmt(v)}" for k, v in a.items() if k != axis.name)
                               for c, a in zip(axis.coord, axis.assigns))
        else:
            values = ", ".join(fmt(v) for v in axis.coord)
        rows.append([f"grid `{axis.name}` ({axis.size})", _cell(values, 400)])
    for k, v in study.params.items():
        if k not in on_grid and v is not None:
            rows.append([f"`{k}`", _cell(v)])
    for opt in ("solver", "newton"):
        given = study.data.get(opt)
        if given:
            rows.append([f"[{opt}]", _cell(", ".join(f"{a} = {fmt(b)}" for a, b in given.items()))])
    for m, s in study.measures.items():
        rows.append([f"measure `{m}`", _cell(", ".join(f"{a} = {fmt(b)}" for a, b in s.items()) or "defaults")])
    for name, s in study.analyses.items():
        rows.append([f"analysis `{name}`", _cell(", ".join(f"{a} = {fmt(b)}" for a, b in s.items()))])
    return ["## Study", ""] + _table(["setting", "value"], rows) + [""]


def _status(ds: xr.Dataset, study: Study) -> list[str]:
    status = status_names_of(ds["status"]).ravel()
    counts = {s: int((status == s).sum()) for s in dict.fromkeys(status)}
    L = ["## Status", "", ", ".join(f"{c} {s}" for s, c in counts.items()) + f" (of {status.size} points)", "",
         "Statuses: `ok` computed; `converged` the run met its stopping criterion; `not_reached` what was sought "
         "does not happen within the run (its time is `inf`); `diverged` the flow left the state space or blew "
         "up; `failed` a solver failed; `missing` not computed yet.", ""]
    bad = np.flatnonzero(~np.isin(status, ("ok", "converged")))
    if bad.size:
        msgs = ds["message"].values.ravel()
        rows = [[_cell(study.label(int(j))), _cell(status[j]), _cell(msgs[j], 300)] for j in bad[:20]]
        if bad.size > 20:
            rows.append(["...", "", f"{bad.size - 20} more"])
        L += _table(["point", "status", "message"], rows) + [""]
    return L


def _highlights(ds: xr.Dataset) -> list[str]:
    """The analyses' outputs, one table per set of dims, with the measures constant along the analysed axes."""
    groups: dict[tuple, list[str]] = {}
    for v in ds.data_vars:
        if "analysis" in ds[v].attrs and "in_fit" != v:
            groups.setdefault(tuple(ds[v].dims), []).append(v)
    if not groups:
        return []
    L = ["## Analyses", ""]
    grid = tuple(ds["status"].dims)
    for dims, names in groups.items():
        extra = []
        for v in ds.data_vars:
            da = ds[v]
            if v in names or "analysis" in da.attrs or v in _BOOKKEEPING or \
                    not set(dims) <= set(da.dims) or not set(da.dims) <= set(grid):
                continue
            vals = np.moveaxis(da.values, [da.dims.index(d) for d in dims], range(len(dims)))
            if vals.dtype.kind == "f" and np.isfinite(vals).any():
                flat = vals.reshape(vals.shape[:len(dims)] + (-1,))
                first = flat[..., :1]
                if np.all((flat == first) | (np.isnan(flat) & np.isnan(first))):  # constant along the rest
                    extra.append(v)
        head = list(dims) + [n + (f" [{u}]" if (u := ds[n].attrs.get("units", "")) not in ("", "1") else "")
                             for n in extra + names]
        rows = []
        for idx in itertools.product(*(range(ds.sizes[d]) for d in dims)):
            sel = dict(zip(dims, idx))
            row = [_cell(ds[d].values[i]) if d in ds.coords else str(i) for d, i in sel.items()]
            for n in extra:
                da = ds[n].isel({k: v for k, v in sel.items()})
                row.append(_cell(float(da.isel({d: 0 for d in da.dims}).values)))
            row += [_cell(ds[n].isel(sel).values.item()) for n in names]
            rows.append(row)
        L += _table(head, rows) + [""] + _legend(rows)
    return L


_INF = "`inf`: does not happen within the range searched (e.g. eps_g never falls below the threshold)"
_NAN = ("`-`: not a result for this point (it diverged or failed first, was not computed, or its run stopped "
        "at `stop_eg`, so there is no eps_g at the end of the horizon)")


def _legend(rows: list[list[str]]) -> list[str]:
    """The line under a table explaining its ``inf`` and ``-`` cells, if it has any."""
    cells = {c for r in rows for c in r}
    parts = ([_INF] if cells & {"inf", "-inf"} else []) + ([_NAN] if "-" in cells else [])
    return ["; ".join(parts) + ".", ""] if parts else []


def _results(ds: xr.Dataset, study: Study) -> list[str]:
    grid = tuple(ds["status"].dims)
    # outputs over some of the grid dims (eta_c does not depend on eta) are repeated along the others
    outputs = [v for v in ds.data_vars if v not in _BOOKKEEPING and set(ds[v].dims) <= set(grid)
               and "analysis" not in ds[v].attrs and ds[v].dtype.kind in "fiu"]
    full = {v: ds[v].broadcast_like(ds["status"]).transpose(*grid).values for v in outputs}
    status = status_names_of(ds["status"]).ravel()
    L = ["## Results", ""]
    if status.size <= 60:
        rows = []
        for j in range(status.size):
            pos = np.unravel_index(j, ds["status"].shape) if grid else ()
            sel = dict(zip(grid, (int(p) for p in pos)))
            cells = [_cell(ds[d].values[sel[d]]) if d in ds.coords else str(sel[d]) for d in grid]
            cells += [_cell(full[v].ravel()[j]) for v in outputs] + [_cell(status[j])]
            rows.append(cells)
        L += _table(list(grid) + outputs + ["status"], rows)
        L += [""] + _legend(rows)[:1]
    else:
        rows, partial = [], False
        for v in outputs:
            x = ds[v].values.ravel().astype(float)
            f = x[np.isfinite(x)]
            stats = [fmt(float(np.min(f))), fmt(float(np.median(f))), fmt(float(np.max(f)))] if f.size else ["-"] * 3
            rows.append([ds[v].attrs.get("long_name", v), ds[v].attrs.get("units", "")] + stats
                        + [f"{f.size}" + (f" of {x.size}" if x.size < status.size else "")])
            partial |= f.size < x.size
        L += _table(["measure", "units", "min", "median", "max", "finite points"], rows)
        if partial:
            L += ["", "Statistics over the finite points; the others are `inf` (does not happen within the range "
                      "searched) or not a result (diverged, failed, not computed, or stopped at `stop_eg`)."]
    return L + [""]


def _markdown(ds: xr.Dataset, study: Study, figures: list, outdir: Path, dataset_path: Path | None) -> list[str]:
    title = study.report.get("title") or f"Study report: {study.name}"
    L = [f"# {title}", ""]
    if study.description:
        L += [study.description, ""]
    L += [f"- dataset: `{dataset_path if dataset_path is not None else '(in memory)'}`",
          f"- system: {study.system}; variant: {ds.attrs.get('variant', 'full')}",
          f"- phasekit {ds.attrs.get('phasekit_version', '?')}, study hash `{ds.attrs.get('study_hash', '?')}`",
          f"- computed {ds.attrs.get('started', '?')} to {ds.attrs.get('finished', '?')}", ""]
    L += _settings(study) + _status(ds, study) + _highlights(ds)
    if figures:
        L += ["## Figures", ""]
        for t, p, cap in figures:
            L += [f"### {t}", "", f"![{t}]({_rel(p, outdir)})", ""]
            if cap:
                L += [cap, ""]
    L += _results(ds, study)
    if study.report.get("notes"):
        L += ["## Notes", "", study.report["notes"].strip(), ""]
    return L
