"""The one dataset layout of a study: records of points -> the grid, coordinates, status, analyses.

Layout: the grid dims in the study's order (a case axis is one dim; an axis
whose values depend on another is a ``<name>_index`` dim with a 2-D
coordinate ``<name>``); one variable per measure output over the grid dims
it depends on (:func:`output_dims`: ``eta_c`` has no ``eta`` dim) and the
output's own dims (a trajectory's ``sample``, ``i``, ``n``; shorter values
padded with NaN); ``status`` (CF flags of
:data:`phasekit.core.results.STATUS`), ``message``, ``seconds``,
``invocation`` and ``worker`` per point; parameters computed at each point
(``eta`` from ``eta_over_eta_c``) as variables; every other scalar parameter
of the system as a 0-d coordinate (``M`` tied to ``K`` as a coordinate over
K's dim), list parameters as JSON attributes; the stored trajectories of
``[report] trajectories`` along a ``trajectory`` dim (``trajectory_alpha``,
``trajectory_R``, ``trajectory_Q``, ``trajectory_eg``, ..., ``trajectory_status``); the analyses' outputs;
provenance attributes (``study`` as JSON, ``study_hash``, ``n_<status>``).
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import xarray as xr

from ..core.datasets import provenance_attrs
from ..core.results import STATUS, status_attrs, status_codes
from .analyses import ANALYSES
from .measures import Output
from .registry import MEASURES
from .schema import Study
from .systems import get_system

__all__ = ["assemble", "output_dims", "outputs_of", "record_dataset", "run_analyses", "trajectory_outputs"]

_STRINGS = ("status", "message", "worker", "key", "trajectory_status", "trajectory_message")

_DIM_ATTRS = {
    "sample": "sample along the run", "sim_sample": "sample along the simulated runs", "run": "run",
    "layer": "layer l", "mode": "mode index", "record": "record of the trained network", "component": "order parameter",
}


def outputs_of(study: Study) -> dict[str, Output]:
    """Every output variable of the study's measures."""
    out: dict[str, Output] = {}
    for m in study.measures:
        out.update(MEASURES[m].outputs_for(study))
    return out


def trajectory_outputs(study: Study) -> dict[str, Output]:
    """Outputs stored for the ``[report] trajectories`` points (none when the grid stores every trajectory)."""
    if not study.trajectory_points() or "trajectory" in study.measures:
        return {}
    return MEASURES["trajectory"].outputs_for(study)


def output_dims(study: Study, spec: Output) -> tuple[str, ...]:
    """The grid dims a measure output carries, in the grid's order.

    Every grid dim except those of the axes that set only parameters the
    output ignores (:attr:`Output.ignores`; a table name stands for all of
    its parameters): ``eta_c`` has no ``eta`` or ``eta_over_eta_c`` dim.  An
    axis whose values depend on a kept axis keeps that axis too.
    """
    if not spec.ignores:
        return study.dims
    system = get_system(study.system)
    ignored = set()
    for name in spec.ignores:
        table = system.in_table(name)
        ignored.update(table if table else (name,))
    drop = set()
    for axis in study.axes:
        names = {axis.name} if axis.depends is not None else {k for a in axis.assigns for k in a}
        if names and names <= ignored:
            drop.add(axis.dim)
    for axis in study.axes:
        if axis.depends is not None and axis.dim not in drop:
            drop.discard(study.axis(axis.depends).dim)
    return tuple(d for d in study.dims if d not in drop)


def _collapse(arr: np.ndarray, dims: tuple[str, ...], keep: tuple[str, ...], name: str) -> np.ndarray | None:
    """``arr`` (grid dims ``dims`` first) without the grid dims not in ``keep``.

    The value kept for each remaining position is the first one computed
    along the dropped dims (a point may be missing or have failed).  Values
    that differ along them mean the output does depend on a dropped axis (an
    error of the measure's ``ignores``): None, with a warning, and the
    caller keeps every grid dim.
    """
    if keep == dims:
        return arr
    g = len(dims)
    kept = [dims.index(d) for d in keep]
    dropped = [j for j in range(g) if j not in kept]
    a = np.transpose(arr, kept + dropped + list(range(g, arr.ndim)))
    head = a.shape[:len(kept)]
    a = a.reshape(head + (-1,) + a.shape[g:])
    valid = ~np.all(np.isnan(a), axis=tuple(range(len(head) + 1, a.ndim)))
    first = np.argmax(valid, axis=-1)[(...,) + (None,) * (a.ndim - len(head))]
    out = np.take_along_axis(a, first, axis=len(head))
    same = np.isclose(a, out, rtol=1e-9, atol=0.0, equal_nan=True) | np.isnan(a)
    if not np.all(same):
        warnings.warn(f"{name}: differs along {', '.join(d for d in dims if d not in keep)}, which its measure "
                      f"declares it does not depend on; kept over every grid dim", RuntimeWarning, stacklevel=3)
        return None
    return out[(slice(None),) * len(head) + (0,)]


def derived_names(study: Study) -> list[str]:
    """Parameters computed at each point of this study (``eta`` from ``eta_over_eta_c``, ...)."""
    system = get_system(study.system)
    values = {k: [v] for k, v in study.params.items()}
    for axis in study.axes:
        for a in axis.assigns:
            for k, v in a.items():
                values.setdefault(k, []).append(v)
    out = []
    for name, (trigger, literal) in system.derived.items():
        vals = values.get(trigger, [])
        if (literal is None and any(v is not None for v in vals)) or (literal is not None and literal in vals):
            out.append(name)
    return out


def _pad(values: list[Any], shape: tuple[int, ...]) -> np.ndarray:
    """Stack arrays into ``(len(values),) + shape``, padding with NaN (``None``: all NaN)."""
    out = np.full((len(values),) + shape, np.nan)
    for j, v in enumerate(values):
        if v is not None:
            a = np.asarray(v, dtype=float)
            out[(j,) + tuple(slice(0, s) for s in a.shape)] = a
    return out


def record_dataset(study: Study, records: list[dict[str, Any]]) -> xr.Dataset:
    """Records of :func:`phasekit.study.runner.evaluate_point` as one dataset over ``point`` (a checkpoint)."""
    data: dict[str, Any] = {}
    for k in _STRINGS:
        data[k] = ("point", np.array([str(r.get(k, "")) for r in records], dtype=object))
    for k in ("seconds", "has_record", "has_trajectory"):
        data[k] = ("point", np.array([float(r.get(k, math.nan)) for r in records]))
    columns: list[tuple[str, Output, list[Any]]] = []
    for var, spec in outputs_of(study).items():
        columns.append((var, spec, [r.get("values", {}).get(var) if r.get("has_record") else None for r in records]))
    for var, spec in trajectory_outputs(study).items():
        columns.append((f"traj__{var}", spec, [(r.get("trajectory") or {}).get(var) for r in records]))
    # one length per extra dim (the longest value), at least one: netCDF3 holds a single zero-length dim
    sizes: dict[str, int] = {}
    for _, spec, values in columns:
        for v in values:
            if v is not None:
                for d, n in zip(spec.dims, np.shape(v)):
                    sizes[d] = max(sizes.get(d, 1), n)
    for var, spec, values in columns:
        data[var] = (("point",) + spec.dims, _pad(values, tuple(sizes.get(d, 1) for d in spec.dims)))
    for name in derived_names(study):
        data[f"derived__{name}"] = ("point", np.array([float(r.get("derived", {}).get(name, math.nan))
                                                       for r in records]))
    ds = xr.Dataset(data, coords={"point": ("point", np.array([r["index"] for r in records], dtype=np.int32))})
    # integer positions along the extra dims, so that batches of different lengths concatenate (padded)
    dims = {d for _, spec, _ in columns for d in spec.dims}
    return ds.assign_coords({d: np.arange(sizes.get(d, 1), dtype=np.int32) for d in dims})


def _array(values: list[Any]) -> np.ndarray:
    if all(isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.int8)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.int32)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=float)
    return np.array([str(v) for v in values], dtype=object)


def _name_attrs(study: Study, name: str) -> dict[str, Any]:
    system = get_system(study.system)
    p = system.parameters.get(name)
    if p is None:
        p = next((MEASURES[m].settings[name] for m in study.measures if name in MEASURES[m].settings), None)
    if p is None:
        return {"long_name": name.replace("_", " "), "units": ""}
    attrs: dict[str, Any] = {"long_name": p.long_name or name, "units": p.units}
    if p.kind == "boolean":  # stored as 0/1 (netCDF has no booleans): CF flags say what they mean
        attrs.update(flag_values=np.array([0, 1], dtype=np.int8), flag_meanings="False True")
    return attrs


def grid_coords(study: Study, taken: set[str]) -> dict[str, Any]:
    """Coordinates of the grid dims, of the case axes' parameters, and the 0-d parameter coordinates."""
    derived = set(derived_names(study))
    coords: dict[str, Any] = {}
    on_grid: set[str] = set()
    for axis in study.axes:
        if axis.depends is not None:
            dep = study.axis(axis.depends)
            coords[axis.dim] = (axis.dim, np.arange(axis.size, dtype=np.int32),
                                {"long_name": f"position along {axis.name}", "units": ""})
            coords[axis.name] = ((dep.dim, axis.dim), np.array([axis.table[str(v)] for v in dep.coord], float),
                                 _name_attrs(study, axis.name))
            on_grid.add(axis.name)
            continue
        names = sorted({k for a in axis.assigns for k in a})
        on_grid.update(names)
        attrs = _name_attrs(study, axis.name) if axis.name in names else \
            {"long_name": axis.name.replace("_", " "), "units": ""}
        coords[axis.dim] = (axis.dim, _array(list(axis.coord)), attrs)
        for k in names:
            if k == axis.name or k in derived or k in taken:
                continue
            vals = [a.get(k, study.params.get(k)) for a in axis.assigns]
            if any(v is None or isinstance(v, list) for v in vals):
                vals = [json.dumps(v) for v in vals]
            coords[k] = (axis.dim, _array(vals), _name_attrs(study, k))
    if study.params.get("M") == "K" and "M" not in on_grid:
        kaxis = next((a for a in study.axes if any("K" in x for x in a.assigns)), None)
        if kaxis is not None:
            coords["M"] = (kaxis.dim, _array([x.get("K", study.params["K"]) for x in kaxis.assigns]),
                           {"long_name": "teacher hidden units M = K", "units": ""})
            on_grid.add("M")
    system = get_system(study.system)
    given = {k for t in system.tables for k in study.data.get(t, {})}
    for name, value in study.params.items():
        if name in on_grid or name in derived or name in taken or value is None or isinstance(value, list):
            continue
        if system.parameters[name].table != "model" and name not in given:
            continue  # a start or run setting the study leaves at its default (and may not use)
        if name == "M" and value == "K":
            value = study.params["K"]
        coords[name] = ((), _array([value])[0], _name_attrs(study, name))
    return coords


def _list_attrs(study: Study) -> dict[str, str]:
    return {k: json.dumps(v) for k, v in study.params.items() if isinstance(v, list)}


def _entries(records: xr.Dataset | None, n: int) -> tuple[dict[int, int], dict[int, int]]:
    """Row of each point's record and of its stored trajectory in ``records``."""
    rec, traj = {}, {}
    if records is None:
        return rec, traj
    idx = records["point"].values.astype(int)
    has_rec = records["has_record"].values if "has_record" in records else np.ones(idx.size)
    has_traj = records["has_trajectory"].values if "has_trajectory" in records else np.zeros(idx.size)
    for row, j in enumerate(idx):
        if 0 <= j < n:
            if has_rec[row] == 1:
                rec[int(j)] = row
            if has_traj[row] == 1:
                traj[int(j)] = row
    return rec, traj


def _extra_coords(study: Study, dims: set[str], sizes: dict[str, int]) -> dict[str, Any]:
    static: dict[str, Any] = {}
    for m in study.measures:
        if MEASURES[m].coords is not None:
            static.update(MEASURES[m].coords(study))
    if "trajectory" in MEASURES and trajectory_outputs(study):
        static.update(MEASURES["trajectory"].coords(study))
    coords = {}
    for d in dims:
        if d in static and len(static[d][0]) >= sizes.get(d, 0):
            vals, attrs = static[d]
            coords[d] = (d, vals, attrs)
            sizes[d] = len(vals)
        else:
            coords[d] = (d, np.arange(sizes.get(d, 0), dtype=np.int32),
                         {"long_name": _DIM_ATTRS.get(d, f"position along {d}"), "units": ""})
    return coords


def _fill(n: int, spec: Output, rows: dict[int, int], src: np.ndarray | None, sizes: dict[str, int]) -> np.ndarray:
    shape = tuple(sizes.get(d, 0) for d in spec.dims)
    out = np.full((n,) + shape, np.nan)
    if src is None:
        return out
    for j, row in rows.items():
        v = src[row]
        out[(j,) + tuple(slice(0, min(a, b)) for a, b in zip(v.shape, shape))] = \
            v[tuple(slice(0, min(a, b)) for a, b in zip(v.shape, shape))]
    return out


def assemble(study: Study, records: xr.Dataset | None, lost: Mapping[int, str] | None = None) -> xr.Dataset:
    """Arrange checkpoint ``records`` (over ``point``) on the study's grid (see the module docstring).

    Points without a record get status ``"missing"`` (or ``"failed"`` with the
    message in ``lost``).  Analyses are not run here (:func:`run_analyses`).
    """
    n, shape, dims = study.n_points, study.shape, study.dims
    outputs = outputs_of(study)
    touts = trajectory_outputs(study)
    rec, traj = _entries(records, n)
    sizes: dict[str, int] = {}
    for var, spec in list(outputs.items()) + [(f"traj__{k}", s) for k, s in touts.items()]:
        if records is not None and var in records:
            for d, size in zip(spec.dims, records[var].shape[1:]):
                sizes[d] = max(sizes.get(d, 0), size)
    extra = {d for spec in list(outputs.values()) + list(touts.values()) for d in spec.dims}
    coords = _extra_coords(study, extra, sizes)

    def column(name: str, default: Any, dtype: Any) -> np.ndarray:
        col = np.full(n, default, dtype=dtype)
        if records is not None and name in records:
            vals = records[name].values
            for j, row in rec.items():
                col[j] = vals[row]
        return col

    status = column("status", "missing", object)
    message = column("message", "", object)
    for j, msg in (lost or {}).items():
        if j not in rec:
            status[j], message[j] = "failed", msg
    data: dict[str, Any] = {}
    for var, spec in outputs.items():
        src = records[var].values if records is not None and var in records else None
        arr = _fill(n, spec, rec, src, sizes).reshape(shape + tuple(sizes.get(d, 0) for d in spec.dims))
        keep = output_dims(study, spec)
        less = _collapse(arr, dims, keep, var)
        data[var] = (keep + spec.dims, less, spec.attrs()) if less is not None else \
            (dims + spec.dims, arr, spec.attrs())
    for name in derived_names(study):
        vals = column(f"derived__{name}", np.nan, float).reshape(shape)
        data[name] = (dims, vals, {**_name_attrs(study, name), "note": "computed at each point"})
    data["status"] = (dims, status_codes(status).reshape(shape), status_attrs("point status"))
    data["message"] = (dims, message.reshape(shape), {"long_name": "status message", "units": ""})
    data["seconds"] = (dims, column("seconds", np.nan, float).reshape(shape), {"long_name": "compute time",
                                                                               "units": "s"})
    data["invocation"] = (dims, column("invocation", "", object).reshape(shape),
                          {"long_name": "run of the study that computed the point", "units": ""})
    data["worker"] = (dims, column("worker", "", object).reshape(shape),
                      {"long_name": "host:pid that computed the point", "units": ""})
    if touts:
        data.update(_stored_trajectories(study, records, traj, touts, sizes))
    coords.update(grid_coords(study, set(data)))
    if touts:
        pts = study.trajectory_points()
        coords["trajectory"] = ("trajectory", np.array([study.label(j) for j in pts], dtype=object),
                                {"long_name": "stored trajectory (grid values)", "units": ""})
        coords["trajectory_point"] = ("trajectory", np.array(pts, dtype=np.int32),
                                      {"long_name": "flat index of the grid point", "units": ""})
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(provenance_attrs({"study": study.to_dict()}, study=study.to_json(), study_name=study.name,
                                     study_hash=study.hash(), system=study.system, n_points=n,
                                     measures=" ".join(study.measures), analyses=" ".join(study.analyses),
                                     description=study.description, variant="quick" if study.quick else "full"))
    ds.attrs.update(_list_attrs(study))
    for s in STATUS:
        ds.attrs[f"n_{s}"] = int(np.sum(status == s))
    return ds


def _stored_trajectories(study: Study, records: xr.Dataset | None, traj: dict[int, int],
                         touts: Mapping[str, Output], sizes: dict[str, int]) -> dict[str, Any]:
    pts = study.trajectory_points()
    rows = {k: traj[j] for k, j in enumerate(pts) if j in traj}
    data: dict[str, Any] = {}
    for var, spec in touts.items():
        src = records[f"traj__{var}"].values if records is not None and f"traj__{var}" in records else None
        data[f"trajectory_{var}"] = (("trajectory",) + spec.dims, _fill(len(pts), spec, rows, src, sizes),
                                     spec.attrs())
    tstat = np.array(["missing"] * len(pts), dtype=object)
    tmsg = np.array([""] * len(pts), dtype=object)
    if records is not None:
        for k, row in rows.items():
            tstat[k] = records["trajectory_status"].values[row]
            tmsg[k] = records["trajectory_message"].values[row]
    data["trajectory_status"] = ("trajectory", status_codes(tstat), status_attrs("trajectory status"))
    data["trajectory_message"] = ("trajectory", tmsg, {"long_name": "trajectory status message", "units": ""})
    return data


# --- analyses -----------------------------------------------------------------------------------------

def _digest(ds: xr.Dataset) -> str:
    """Hash of the values the analyses read (measure outputs and status; not times or workers)."""
    h = hashlib.sha256()
    for v in sorted(ds.data_vars):
        if v in ("seconds", "invocation", "worker", "message"):
            continue
        vals = ds[v].values
        h.update(v.encode())
        h.update(vals.astype(str).tobytes() if vals.dtype.kind == "O" else np.ascontiguousarray(vals).tobytes())
    return h.hexdigest()[:16]


def run_analyses(study: Study, ds: xr.Dataset, probe: Callable[[int, dict], dict] | None = None,
                 cache_dir: Path | None = None) -> xr.Dataset:
    """``ds`` with the outputs of the study's analyses added.

    Analyses that compute new points (``optimum`` with ``refine``, the edge of
    chaos) keep their results in ``cache_dir`` (the checkpoint folder), keyed
    by the study and the assembled values, so that re-assembling a finished
    study does not repeat them.
    """
    if not study.analyses:
        return ds
    digest = _digest(ds)
    out = ds.copy()
    for name, settings in study.analyses.items():
        spec = ANALYSES[settings["kind"]]
        opts = {k: v for k, v in settings.items() if k != "kind"}
        key = json.dumps({"hash": study.hash(), "settings": settings, "inputs": digest}, sort_keys=True)
        cached = _cached(cache_dir, name, key) if spec.computes and cache_dir is not None else None
        if cached is not None:
            result = {v: cached[v] for v in cached.data_vars}
        else:
            result = spec.func(ds, opts, probe)
            if spec.computes and cache_dir is not None:
                _store(cache_dir, name, key, result)
        for var, da in result.items():
            da = da.copy()
            da.attrs["analysis"] = name
            out[var] = da
    return out


def _cache_path(cache_dir: Path, name: str) -> Path:
    return Path(cache_dir) / f"analysis-{name}.nc"


def read_dataset(path: Path) -> xr.Dataset | None:
    """The netCDF dataset at ``path``, or None when there is none or it cannot be read (then it is recomputed)."""
    if not path.exists():
        return None
    try:
        return xr.load_dataset(path, engine="scipy")
    except Exception:
        return None


def _cached(cache_dir: Path, name: str, key: str) -> xr.Dataset | None:
    ds = read_dataset(_cache_path(cache_dir, name))
    return ds if ds is not None and ds.attrs.get("key") == key else None


def _store(cache_dir: Path, name: str, key: str, result: Mapping[str, xr.DataArray]) -> None:
    from .checkpoints import _not_writable, _tmp_name

    path = _cache_path(cache_dir, name)
    ds = xr.Dataset(dict(result))
    ds.attrs["key"] = key
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_name(path)
        ds.to_netcdf(tmp, engine="scipy")
        tmp.replace(path)
    except OSError as exc:
        if not _not_writable(exc):
            raise
