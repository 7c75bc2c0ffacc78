"""Grid sweeps over a study, computed in parallel when asked to, checkpointed point by point.

:func:`sweep` evaluates the measures of a :class:`phasekit.study.schema.Study` at
every point of its grid and returns an ``xarray.Dataset`` with one variable
per measure output over the grid dims, plus a ``status`` and ``message`` per
point: a failing or diverging point is recorded and never stops the sweep.

Execution.  Points are grouped into batches (about eight tasks per worker, so
that scheduling overhead stays small) and run through
:mod:`phasekit.core.parallel`: in this process, in local worker processes
(``n_workers >= 2``; ``phasekit run`` uses one per core) or on a dask cluster
(``client=``, a scheduler address, or the active dask client).  The batches
are collected as they complete; each finished batch is written at once to
``<outdir>/checkpoints/batch-<invocation>-<n>.nc`` (written to a temporary
name and renamed, so a killed run never leaves a half-written file).  Running
the same study again computes only the points that have no checkpoint yet.

The checkpoint directory also holds ``study.json`` with a hash of the study's
computational content; a different study in the same directory is refused
(``fresh=True`` discards the old checkpoints).  Every batch file carries the
hash too, so a damaged or deleted ``study.json`` is rebuilt from them.  While
a run computes, it holds ``checkpoints/run.lock``: a second run on the same
folder is refused instead of computing every point twice.  A finished study
is re-assembled without writing anything that is unchanged, so a read-only
folder can be re-assembled and reported.

Measures.  :data:`MEASURES` maps a name to a :class:`Measure`: a function
``f(model, state0, settings) -> dict`` of scalars with the attributes of its
outputs.  The measures that read the trajectory share one integration per
point (:func:`point_trajectory` caches it).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import socket
import sys
import time
import traceback
import uuid
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import xarray as xr

from ..committee.model import Committee
from ..committee.starts import initial_state
from ..core.datasets import provenance_attrs
from ..core.parallel import (
    WORKER_TIMEOUT,
    ParallelError,
    Terminated,
    check_batch_size,
    check_workers,
    choose_backend,
    connect,
    imap_unordered,
)
from .checkpoints import (
    _atomic_write_text,
    _FolderLock,
    _manifest_text,
    _not_writable,
    _now,
    _one_line,
    _read_batches,
    _tmp_name,
    _write_batch,
    checkpoint_dir,
    load_checkpoints,
)
from .measures import (
    _TRAJ_KEYS,
    MEASURES,
    SWEEP_STATUS,
    _last_trajectory,
    _local,
    _MeasureStatus,
)
from .schema import Study, StudyError, as_study

__all__ = ['SweepAborted', 'SweepInterrupted', 'assemble', 'evaluate_point', 'sweep']


def evaluate_point(study: Study, index: int) -> dict[str, Any]:
    """All measures of ``study`` at flat grid point ``index``; never raises.

    Returns
    -------
    dict
        ``index``, ``status`` (see :data:`SWEEP_STATUS`), ``message``,
        ``seconds`` (compute time) and every measure output (NaN when not computed).
    """
    t0 = time.perf_counter()
    record: dict[str, Any] = {"index": int(index)}
    for mname in study.measures:
        for var in MEASURES[mname].outputs:
            record[var] = math.nan
    status, messages = "ok", []
    _local.trajectories = OrderedDict()  # a fresh cache per point
    _local.notes = messages
    try:
        p = study.point_parameters(index)
        model = Committee(K=p["K"], M=p["M"], activation=p["activation"], eta=p["eta"],
                          second_order=p["second_order"], noise=p["noise"],
                          teacher_activation=p["teacher_activation"])
        init = study.initial
        state0 = initial_state(model, p["X"], Q0=init.get("Q0"), kind=init.get("kind", "diagonal"),
                               seed=init.get("seed"))
        base = {k: study.integration.get(k) for k in _TRAJ_KEYS}
        base["alpha_max"] = study.alpha_max(p["eta"])
        for mname, msettings in study.measures.items():
            settings = {**base, **msettings}
            try:
                with np.errstate(all="ignore"):
                    out = MEASURES[mname].func(model, state0, settings)
                record.update({k: float(v) for k, v in out.items()})
            except _MeasureStatus as exc:
                status = "diverged" if exc.status == "diverged" else "failed"
                messages.append(str(exc))
            except Exception as exc:  # a measure's failure is data, not a crash
                status = "failed"
                messages.append(f"{mname}: {type(exc).__name__}: {exc}")
        traj = _last_trajectory()
        if traj is not None:
            tstat = traj.attrs["status"]
            # Divergence explains everything downstream of it, so it takes precedence.
            if tstat == "diverged" or (tstat == "failed" and status == "ok"):
                status = tstat
            if tstat in ("diverged", "failed"):
                messages.insert(0, str(traj.attrs["message"]))
    except Exception as exc:
        status = "failed"
        messages.append(f"{type(exc).__name__}: {exc}")
        if os.environ.get("PHASEKIT_DEBUG"):
            traceback.print_exc()
    finally:
        _local.trajectories = OrderedDict()
        _local.notes = None
    record["status"] = status
    record["message"] = "; ".join(messages)[:500]
    record["seconds"] = time.perf_counter() - t0
    record["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return record


@functools.lru_cache(maxsize=8)
def _study_from_json(text: str) -> Study:
    from .schema import parse_study

    return parse_study(json.loads(text))


def _run_batch(study_json: str, indices: list[int]) -> list[dict[str, Any]]:
    """Worker side: evaluate the points ``indices`` (module-level, so picklable)."""
    study = _study_from_json(study_json)
    return [evaluate_point(study, j) for j in indices]


class SweepAborted(RuntimeError):
    """A sweep stopped before its end: its workers or its scheduler were lost.

    The message is one line: what happened, how many points are checkpointed
    and that running the sweep again resumes.
    """


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a sweep; the message says how many points are checkpointed."""

    def __init__(self, message: str, terminated: bool = False) -> None:
        super().__init__(message)
        self.terminated = terminated


@dataclass
class _Plan:
    """What a sweep finds in its checkpoint folder (read without writing anything)."""

    write_manifest: bool  # the manifest is missing, damaged (and rebuildable) or stale
    note: str  # remark for the user (a rebuilt manifest)
    records: xr.Dataset | None
    missing: list[int]
    n_files: int


def _plan(study: Study, ckdir: Path, fresh: bool, repair: bool) -> _Plan:
    """Check the folder's manifest against ``study`` and find the points still to compute.

    Raises
    ------
    StudyError
        If the folder holds checkpoints of a different study, or its manifest is
        damaged and the checkpoints cannot be matched to this study.
    """
    h = study.hash()
    everything = list(range(study.n_points))
    if fresh:
        return _Plan(True, "", None, everything, 0)
    manifest = ckdir / "study.json"
    batches = _read_batches(ckdir) if ckdir.is_dir() else []
    problem = None
    old: Any = None
    if manifest.exists():
        try:
            old = json.loads(manifest.read_text())
            if not isinstance(old, dict) or not isinstance(old.get("hash"), str):
                problem = "no study hash in it"
        except (OSError, UnicodeDecodeError) as exc:
            problem = getattr(exc, "strerror", None) or type(exc).__name__
        except json.JSONDecodeError as exc:
            problem = f"not valid JSON: {exc.msg} at line {exc.lineno}"
    elif batches:
        problem = "missing"
    write_manifest, note = False, ""
    if manifest.exists() and problem is None:
        if old["hash"] != h:
            raise StudyError(
                f"{ckdir} holds checkpoints of a different study (hash {old['hash']} != {h}): "
                f"the grid or settings changed; rerun with --fresh to discard them or --outdir for a new place")
        write_manifest = old.get("study") != json.loads(_manifest_text(study))["study"]
    elif problem is not None:
        foreign = [f for f, _, bh in batches if bh != h]
        if foreign and not repair:
            raise StudyError(
                f"{manifest}: {'missing' if problem == 'missing' else 'unreadable (' + problem + ')'}; "
                f"{len(foreign)} of {len(batches)} checkpoint files carry no hash of this study (written by an "
                f"older phasekit, damaged, or of another study), so it cannot be rebuilt from them; if they "
                f"belong to this study, rerun with --repair to rebuild it (keeps every checkpoint), else use "
                f"another --outdir")
        write_manifest = True
        what = "missing" if problem == "missing" else "damaged"
        note = (f"{manifest} was {what}: rebuilt for this study from {len(batches) - len(foreign)} checkpoint "
                f"files carrying its hash" + (f" and {len(foreign)} adopted by --repair" if foreign else ""))
    else:
        write_manifest = True  # a new folder
    parts = []
    for f, ds, bh in batches:
        if ds is None:
            warnings.warn(f"skipping unreadable checkpoint {f}", stacklevel=3)
        elif bh is not None and bh != h:
            warnings.warn(f"skipping checkpoint {f} of another study (hash {bh})", stacklevel=3)
        else:
            parts.append(ds)
    records = None
    if parts:
        records = xr.concat(parts, dim="point", data_vars="all", coords="minimal", compat="override",
                            join="outer", combine_attrs="drop")
    done = set() if records is None else {int(j) for j in records["point"].values}
    return _Plan(write_manifest, note, records, [j for j in everything if j not in done], len(batches))


class _Progress:
    """A one-line progress bar on stderr: points done, rate and time left."""

    def __init__(self, total: int, done: int, enabled: bool, stream: Any = None) -> None:
        self.total, self.done0, self.done = total, done, done
        self.enabled = enabled and total > done
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = -1.0
        self._open = False  # a \r-line is on the terminal

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.t0
        new = self.done - self.done0
        rate = new / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else math.inf
        frac = self.done / self.total
        bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
        eta = "--:--" if not math.isfinite(left) else f"{int(left // 60):02d}:{int(left % 60):02d}"
        line = f"[{bar}] {self.done}/{self.total} points  {rate:.2f} points/s  {eta} left"
        if self.tty:
            self.stream.write("\r" + line)
            self._open = True
        elif self.done == self.total or elapsed - self._last >= 5.0:
            self.stream.write(line + "\n")
            self._last = elapsed
        self.stream.flush()

    def note(self, message: str) -> None:
        """A remark on its own line (e.g. waiting for workers)."""
        if not self.enabled:
            return
        self.stream.write(("\n" if self._open else "") + message + "\n")
        self._open = False
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


def _batches(indices: list[int], n_workers: int, batch_size: int | None) -> list[list[int]]:
    """Group points into tasks: about eight per worker, each at most 64 points.

    Eight keeps the idle tail at the end of a sweep (one worker finishing its
    last task while the others have none) near 1/16 of the work, while the
    scheduling overhead (milliseconds per task) stays far below a point's cost.

    Batches are strided over the grid (point j goes to batch j mod n) so that
    cheap and expensive regions of the grid are mixed in every task.
    """
    if not indices:
        return []
    n = len(indices)
    if batch_size is None:
        n_batches = max(-(-n // 64), min(n, 8 * max(1, n_workers)))
    else:
        if batch_size < 1:
            raise ValueError(f"batch_size: must be an integer >= 1, got {batch_size!r}")
        n_batches = -(-n // batch_size)
    return [indices[j::n_batches] for j in range(n_batches)]


def _same_dataset(path: Path, ds: xr.Dataset) -> xr.Dataset | None:
    """The dataset stored at ``path`` if it holds the same study and values as ``ds``."""
    if not path.exists():
        return None
    try:
        old = xr.load_dataset(path, engine="scipy")
    except Exception:
        return None
    if old.attrs.get("study") != ds.attrs.get("study") or not old.equals(ds):
        return None
    return old


def _write_dataset(ds: xr.Dataset, path: Path) -> None:
    tmp = _tmp_name(path)
    try:
        ds.to_netcdf(tmp, engine="scipy")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def sweep(
    study: Study | str | Path | Mapping[str, Any],
    client: Any = None,
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    outdir: str | Path | None = None,
    batch_size: int | None = None,
    fresh: bool = False,
    repair: bool = False,
    progress: bool = True,
    write: bool = True,
    worker_timeout: float = WORKER_TIMEOUT,
) -> xr.Dataset:
    """Evaluate the study's measures over its grid.

    Parameters
    ----------
    study : Study, path or mapping
        A validated study (see :mod:`phasekit.study.schema`); recipe studies are refused.
    client : dask.distributed.Client, optional
        Run on this existing cluster, unchanged.
    scheduler : str, optional
        Address of a running dask scheduler (``"tcp://host:8786"``) to connect to.
    n_workers : int, optional
        Without ``client``/``scheduler``: ``None`` (default) runs on the active
        dask client if there is one, else in this process; 0 or 1 in this
        process; ``>= 2`` starts that many local worker processes (at most
        :func:`phasekit.core.parallel.max_workers`).  ``phasekit run`` asks for one
        per core.
    outdir : path, optional
        Output folder, default ``outputs/<study name>``; checkpoints go to
        ``<outdir>/checkpoints``, the dataset to ``<outdir>/<name>.nc``.
    batch_size : int, optional
        Points per task, ``>= 1`` (default: about eight tasks per worker, at most 64 points).
    fresh : bool
        Discard existing checkpoints instead of resuming.
    repair : bool
        Rebuild a missing or damaged manifest ``checkpoints/study.json`` for
        this study, keeping the checkpoints (needed only when they do not
        carry this study's hash; otherwise it is rebuilt automatically).
    progress : bool
        Show a progress bar on stderr.
    write : bool
        Write the assembled dataset to ``<outdir>/<name>.nc`` (not rewritten
        when it already holds the same values).
    worker_timeout : float
        Dask only: give up when the cluster has had no worker for this many seconds.

    Returns
    -------
    xarray.Dataset
        Dims: the study's grid axes, in order.  One float variable per measure
        output, ``status`` / ``message`` (str) per point, ``seconds`` (compute
        time), ``invocation`` (which run computed the point) and ``worker``
        (``host:pid`` of the process that computed it).  Attributes:
        provenance, ``study`` (JSON), ``study_hash``, ``started``, ``finished``.

    Raises
    ------
    StudyError
        If the study is a recipe, or ``outdir`` holds checkpoints of a different
        study, or its manifest is damaged and cannot be rebuilt without ``repair``.
    ValueError
        For an invalid ``n_workers``, ``batch_size`` or ``worker_timeout``.
    OutdirInUse
        If another run is computing in ``outdir``.
    OSError
        If points remain to be computed and ``outdir`` is not writable.
    SweepAborted
        If the workers or the scheduler were lost; finished points are kept.
    SweepInterrupted
        On Ctrl-C; finished points are kept.
    """
    study = as_study(study)
    if study.recipe is not None:
        raise StudyError(f"{study.source}: study '{study.name}' is a recipe; use phasekit.study.recipes.run_recipe")
    if isinstance(client, str):  # a scheduler address
        client, scheduler = None, client
    if client is not None and scheduler is not None:
        raise ValueError("client, scheduler: give one of them, not both")
    n_workers = check_workers(n_workers)
    batch_size = check_batch_size(batch_size)
    if batch_size is None:
        batch_size = study.run.get("batch_size")
    if not (isinstance(worker_timeout, (int, float)) and worker_timeout > 0):
        raise ValueError(f"worker_timeout: must be > 0 seconds, got {worker_timeout!r}")
    started = _now()
    outdir = Path(outdir) if outdir is not None else Path("outputs") / study.name
    ckdir = checkpoint_dir(outdir)
    path = outdir / f"{study.name}.nc"

    plan = _plan(study, ckdir, fresh, repair)
    if not (plan.missing or fresh):
        # Finished: assemble; write nothing that is unchanged (the folder may be read-only).
        written = plan.write_manifest and _try_write_manifest(study, ckdir)
        if plan.note:
            warnings.warn(plan.note + ("" if written else " (not saved: the folder is not writable)"),
                          stacklevel=2)
        ds = assemble(study, plan.records)
        ds.attrs.update(started=started, finished=_now())
        if not write:
            return ds
        same = _same_dataset(path, ds)
        if same is not None:
            return same
        try:
            _write_dataset(ds, path)
        except OSError as exc:
            if not _not_writable(exc):
                raise
            warnings.warn(f"{path}: not written ({exc.strerror}); the assembled dataset is returned only",
                          stacklevel=2)
        return ds

    lock = _FolderLock(ckdir / "run.lock")
    try:
        lock.acquire()
    except OSError as exc:  # (OutdirInUse is not one: it goes through)
        if not _not_writable(exc):
            raise
        raise PermissionError(f"{outdir}: not writable ({exc.strerror}); {len(plan.missing)} of "
                              f"{study.n_points} points are still to compute; make it writable or give "
                              f"another --outdir") from None
    try:
        plan = _plan(study, ckdir, fresh, repair)  # again, now that nobody else can write
        if fresh:
            for f in ckdir.glob("batch-*.nc"):
                f.unlink()
        if plan.write_manifest:
            _atomic_write_text(ckdir / "study.json", _manifest_text(study))
        if plan.note:
            warnings.warn(plan.note, stacklevel=2)
        lost = _compute(study, ckdir, plan, client, scheduler, n_workers, batch_size, progress, worker_timeout)
        ds = assemble(study, load_checkpoints(outdir, study_hash=study.hash()), lost=lost)
        ds.attrs.update(started=started, finished=_now())
        if write:
            _write_dataset(ds, path)
    finally:
        lock.release()
    return ds


def _try_write_manifest(study: Study, ckdir: Path) -> bool:
    try:
        _atomic_write_text(ckdir / "study.json", _manifest_text(study))
        return True
    except OSError as exc:
        if not _not_writable(exc):
            raise
        return False


def _compute(study: Study, ckdir: Path, plan: _Plan, client: Any, scheduler: str | None, n_workers: int | None,
             batch_size: int | None, progress: bool, worker_timeout: float) -> dict[int, str]:
    """Evaluate ``plan.missing``, checkpointing each batch as it completes; the points lost with their batch."""
    n_done = study.n_points - len(plan.missing)
    lost: dict[int, str] = {}
    if not plan.missing:
        return lost
    # Unique per run, also for runs of one process within the same second: batch
    # files are named after it and must never replace another run's file.
    invocation = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    study_hash = study.hash()
    bar = _Progress(study.n_points, n_done, progress)
    with contextlib.ExitStack() as stack:
        if scheduler is not None:
            client = stack.enter_context(connect(scheduler))
        backend = choose_backend(client, n_workers)
        batches = _batches(plan.missing, backend.n_workers,
                           batch_size or (1 if backend.kind == "serial" else None))
        seq = 0
        try:
            results = imap_unordered(functools.partial(_run_batch, study.to_json()), batches, backend,
                                     worker_timeout=worker_timeout, notify=bar.note)
            with contextlib.closing(results):
                for i, records, exc in results:
                    if exc is not None:  # e.g. a dask worker died under it: retried on the next run
                        for j in batches[i]:
                            lost[j] = _one_line(f"batch failed: {type(exc).__name__}: {exc}")[:500]
                        bar.update(len(batches[i]))
                        continue
                    _write_batch(ckdir, invocation, seq, records, study_hash)
                    seq += 1
                    n_done += len(records)
                    bar.update(len(records))
        except ParallelError as exc:
            bar.close()
            raise SweepAborted(f"{exc}: {n_done} of {study.n_points} points are checkpointed under {ckdir}; "
                               f"rerun to resume") from None
        except KeyboardInterrupt as exc:
            bar.close()
            what = "terminated" if isinstance(exc, Terminated) else "interrupted"
            raise SweepInterrupted(f"{what}: {n_done} of {study.n_points} points are checkpointed under "
                                   f"{ckdir}; rerun to resume", terminated=isinstance(exc, Terminated)) from None
        finally:
            bar.close()
    return lost


_AXIS_ATTRS = {
    "eta": ("learning rate eta", "1"),
    "K": ("student hidden units K", "1"),
    "M": ("teacher hidden units M", "1"),
    "activation": ("activation", "1"),
    "X": ("initial overlap X", "1"),
    "noise": ("output noise sigma", "1"),
    "second_order": ("eta^2 term kept (0/1)", "1"),
}


def assemble(study: Study, records: xr.Dataset | None, lost: Mapping[int, str] | None = None) -> xr.Dataset:
    """Arrange checkpoint ``records`` (over ``point``) on the study's grid.

    Points without a record get status ``"missing"`` (or ``"failed"`` with the
    message in ``lost``).
    """
    shape = study.shape
    n = study.n_points
    outputs: dict[str, Mapping[str, str]] = {}
    for mname in study.measures:
        outputs.update(MEASURES[mname].outputs)
    flat: dict[str, np.ndarray] = {v: np.full(n, np.nan) for v in outputs}
    flat["seconds"] = np.full(n, np.nan)
    status = np.array(["missing"] * n, dtype=object)
    message = np.array([""] * n, dtype=object)
    invocation = np.array([""] * n, dtype=object)
    worker = np.array([""] * n, dtype=object)
    for j, msg in (lost or {}).items():
        status[j], message[j] = "failed", msg
    if records is not None:
        idx = records["point"].values.astype(int)
        keep = (idx >= 0) & (idx < n)
        idx = idx[keep]
        for v in list(outputs) + ["seconds"]:
            if v in records:
                flat[v][idx] = records[v].values[keep]
        status[idx] = records["status"].values[keep]
        message[idx] = records["message"].values[keep]
        invocation[idx] = records["invocation"].values[keep]
        if "worker" in records:
            worker[idx] = records["worker"].values[keep]
    dims = study.dims
    coords = {}
    for ax in dims:
        vals = study.grid[ax]
        if ax == "second_order":
            arr = np.array([int(v) for v in vals], dtype=np.int32)
        elif ax in ("K", "M"):
            arr = np.array(vals, dtype=np.int32)
        elif ax == "activation":
            arr = np.array(vals, dtype=object)
        else:
            arr = np.array(vals, dtype=float)
        ln, u = _AXIS_ATTRS[ax]
        coords[ax] = (ax, arr, {"long_name": ln, "units": u})
    data = {v: (dims, flat[v].reshape(shape), dict(attrs)) for v, attrs in outputs.items()}
    data["status"] = (dims, status.reshape(shape), {"long_name": "point status", "units": "1",
                                                    "flag_values": " ".join(SWEEP_STATUS)})
    data["message"] = (dims, message.reshape(shape), {"long_name": "status message", "units": "1"})
    data["seconds"] = (dims, flat["seconds"].reshape(shape), {"long_name": "compute time", "units": "s"})
    data["invocation"] = (dims, invocation.reshape(shape), {"long_name": "sweep run that computed the point",
                                                            "units": "1"})
    data["worker"] = (dims, worker.reshape(shape), {"long_name": "host:pid that computed the point", "units": "1"})
    ds = xr.Dataset(data, coords=coords)
    counts = {s: int(np.sum(status == s)) for s in SWEEP_STATUS}
    defaults = {k: v for k, v in study.model.items() if k not in dims}
    attrs = provenance_attrs({"study": study.to_dict()}, study=study.to_json(), study_name=study.name,
                             study_hash=study.hash(), n_points=n, measures=" ".join(study.measures),
                             description=study.description)
    for s, c in counts.items():
        attrs[f"n_{s}"] = c
    for k, v in defaults.items():
        if v is None:
            continue
        attrs[f"model_{k}"] = int(v) if isinstance(v, bool) else v
    ds.attrs.update(attrs)
    return ds
