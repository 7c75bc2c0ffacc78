"""The one grid runner: every grid of every system, checkpointed, resumable, in parallel when asked.

:func:`run_study` evaluates the measures of a :class:`~phasekit.study.schema.Study`
at every point of its grid and returns one ``xarray.Dataset`` in the layout of
:mod:`phasekit.study.assembly`: a failing or diverging point is recorded with
its status and message and never stops the run.  After assembly it runs the
study's analyses (:mod:`phasekit.study.analyses`) and stores their results.

Execution.  Points are grouped into batches (about eight tasks per worker, so
that scheduling overhead stays small) and run through
:mod:`phasekit.core.parallel`: in this process, in local worker processes
(``n_workers >= 2``; ``phasekit run`` uses one per core) or on a dask cluster
(a client, a scheduler address, or the active dask client).  Points whose
trajectories are batched (``batch_points > 1``) go to workers in tasks of one
model shape, the costliest shapes first, so that each worker batches its
task's points.  Without
``outdir`` everything stays in memory.  With ``outdir`` each finished batch
is written at once to ``<outdir>/checkpoints/batch-<invocation>-<n>.nc``
(written to a temporary name and renamed, so a killed run never leaves a
half-written file), and running the same study again computes only the
points that have no checkpoint yet (and the stored trajectories that are missing).

A checkpointed point is matched by its grid values (its record's ``key``),
not by its position in the grid, so a grid extended, cut or reordered reuses
every point it still holds.  The checkpoint folder also holds ``study.json``
with :meth:`~phasekit.study.schema.Study.hash`, which covers everything else
that determines a point; a different study in the same folder is refused
(``fresh=True`` discards the old checkpoints).  Every batch file carries the
hash too, so a damaged or deleted ``study.json`` is rebuilt from them.  While
a run computes, it holds ``checkpoints/run.lock``: a second run on the same
folder is refused.  A finished study is re-assembled without writing
anything that is unchanged, so a read-only folder can be re-assembled and reported.

Each point gets an explicit :class:`~phasekit.study.measures.PointContext`;
its measures share computations through it, and report their status in the
values they return.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import sys
import time
import traceback
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import xarray as xr

from ..core.datasets import _lazy_dask_in_xarray
from ..core.options import ParallelOptions, coerce_options
from ..core.parallel import ParallelError, Progress, Terminated, choose_backend, connect, imap_unordered
from .assembly import assemble, read_dataset, record_dataset, run_analyses, trajectory_outputs
from .checkpoints import (
    _atomic_write_text,
    _concat,
    _FolderLock,
    _manifest_text,
    _match_points,
    _not_writable,
    _now,
    _one_line,
    _read_batches,
    _tmp_name,
    _write_batch,
    checkpoint_dir,
)
from .measures import Outcome, PointContext, worst_status
from .registry import MEASURES, make_prefetch
from .schema import Study, StudyError, as_study

__all__ = ["StudyAborted", "StudyInterrupted", "evaluate_point", "run_study", "sweep"]


def _outcome(name: str, ctx: PointContext) -> Outcome:
    """Run measure ``name`` at ``ctx``; its failure is data, not a crash."""
    measure = MEASURES[name]
    try:
        with np.errstate(all="ignore"):
            out = measure.func(ctx, ctx.settings(name))
        if not isinstance(out, Outcome):
            out = Outcome(dict(out))
        for var, value in out.values.items():
            spec = measure.outputs.get(var)
            if spec is None:
                raise ValueError(f"returned {var!r}, which is not one of its outputs ({', '.join(measure.outputs)})")
            if np.ndim(value) != len(spec.dims):
                raise ValueError(f"returned {var!r} with {np.ndim(value)} dims, declared {spec.dims}")
        return out
    except Exception as exc:
        if os.environ.get("PHASEKIT_DEBUG"):
            traceback.print_exc()
        return Outcome({}, "failed", f"{name}: {type(exc).__name__}: {exc}")


def evaluate_point(study: Study, index: int, *, record: bool = True, trajectory: bool = False,
                   changes: Mapping[str, Any] | None = None,
                   prefetched: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The measures of ``study`` at flat grid point ``index`` (and its stored trajectory); never raises.

    Parameters
    ----------
    study : Study
    index : int
    record : bool
        Evaluate the measures.
    trajectory : bool
        Also compute the trajectory stored for ``[report] trajectories``.
    changes : mapping, optional
        Grid values to change at this point (an analysis probing between grid points).
    prefetched : mapping, optional
        Computed ahead for this point (the runner's batched trajectories,
        :class:`~phasekit.study.committee_batch.Prefetch`): ``shared`` results
        put in its context before the measures run, and the ``seconds`` they took.

    Returns
    -------
    dict
        ``index``, ``key`` (the grid values as JSON), ``status`` (one of
        :data:`phasekit.core.results.STATUS`), ``message``, ``seconds``,
        ``worker``, ``values`` (measure outputs), ``derived`` (parameters
        computed at the point), ``has_record``, ``has_trajectory``, and with
        ``trajectory`` its ``trajectory`` values, ``trajectory_status`` and ``trajectory_message``.
    """
    t0 = time.perf_counter()
    out: dict[str, Any] = {"index": int(index), "has_record": int(record), "has_trajectory": int(trajectory)}
    try:
        out["key"] = study.point_key(index)
        ctx = PointContext(study, index, changes)
        if prefetched:
            for key, value in prefetched.get("shared", {}).items():
                ctx.shared(key, lambda value=value: value)
            t0 -= float(prefetched.get("seconds", 0.0))
    except Exception as exc:
        out.update(status="failed", message=_one_line(f"{type(exc).__name__}: {exc}")[:500],
                   seconds=time.perf_counter() - t0, worker=f"{socket.gethostname()}:{os.getpid()}")
        return out
    values: dict[str, Any] = {}
    statuses, messages = [], []
    if record:
        for name in study.measures:
            res = _outcome(name, ctx)
            values.update(res.values)
            statuses.append(res.status)
            if res.message and res.status != "ok" and res.message not in messages:
                messages.append(res.message)
    out.update(status=worst_status(statuses) if record else "missing", message=_one_line("; ".join(messages))[:500],
               values=values, derived=dict(ctx.derived))
    if trajectory:
        res = _outcome("trajectory", ctx)
        out.update(trajectory=res.values, trajectory_status=res.status, trajectory_message=_one_line(res.message))
    out["seconds"] = time.perf_counter() - t0
    out["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return out


@functools.lru_cache(maxsize=8)
def _study_from_json(text: str) -> Study:
    from .schema import parse_study

    return parse_study(json.loads(text))


def _run_batch(study_json: str, tasks: list[tuple[int, bool, bool]], batch_points: int = 1,
               prefetch: Any = None) -> xr.Dataset:
    """Worker side: evaluate the tasks ``(index, record, trajectory)`` (module level, so picklable).

    Trajectories of points of one shape are integrated together, up to
    ``batch_points`` at a time (``prefetch``: the run's own batches when it
    runs in this process, else batches of these tasks).
    """
    study = _study_from_json(study_json)
    if prefetch is None and batch_points > 1:
        prefetch = make_prefetch(study, tasks, batch_points)
    return record_dataset(study, [evaluate_point(study, j, record=r, trajectory=t,
                                                 prefetched=None if prefetch is None else prefetch.take(j))
                                  for j, r, t in tasks])


class StudyAborted(RuntimeError):
    """A run stopped before its end: its workers or its scheduler were lost.

    The message is one line: what happened, how many points are checkpointed
    and that running the study again resumes.
    """


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a run; the message says how many points are checkpointed."""

    def __init__(self, message: str, terminated: bool = False) -> None:
        super().__init__(message)
        self.terminated = terminated


@dataclass
class _Plan:
    """What a run finds in its checkpoint folder (read without writing anything)."""

    write_manifest: bool  # the manifest is missing, damaged (and rebuildable) or stale
    note: str  # remark for the user (a rebuilt manifest)
    records: xr.Dataset | None
    tasks: list[tuple[int, bool, bool]]  # (index, record missing, stored trajectory missing)
    aliases: tuple[str, ...] = ()  # older hashes of this study that its checkpoint files carry


def _tasks(study: Study, done: set[int], done_traj: set[int]) -> list[tuple[int, bool, bool]]:
    wanted = set(study.trajectory_points()) if trajectory_outputs(study) else set()
    out = []
    for j in range(study.n_points):
        rec, traj = j not in done, j in wanted and j not in done_traj
        if rec or traj:
            out.append((j, rec, traj))
    return out


def _plan(study: Study, ckdir: Path, fresh: bool, repair: bool) -> _Plan:
    """Check the folder's manifest against ``study`` and find what is still to compute.

    Raises
    ------
    StudyError
        If the folder holds checkpoints of a different study, or its manifest is
        damaged and the checkpoints cannot be matched to this study.
    """
    h = study.hash()
    if fresh:
        return _Plan(True, "", None, _tasks(study, set(), set()))
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
    accepted = {h}  # the hashes this study's checkpoint files may carry
    if manifest.exists() and problem is None:
        if old["hash"] == h:
            accepted.update(a for a in old.get("aliases", ()) if isinstance(a, str))
        elif _rehash(old.get("study")) == h:
            accepted.add(old["hash"])  # the same study, hashed by an older phasekit (grid values included)
        else:
            raise StudyError(
                f"{ckdir} holds checkpoints of a different study (hash {old['hash']} != {h}): "
                f"{_what_changed(old.get('study'), study)} changed (new, removed or reordered grid values "
                f"would not be a change); rerun with --fresh to discard them or --outdir for a new place")
        write_manifest = (old.get("study") != json.loads(_manifest_text(study))["study"]
                          or set(old.get("aliases", ())) != accepted - {h})
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
        elif bh is not None and bh not in accepted:
            warnings.warn(f"skipping checkpoint {f} of another study (hash {bh})", stacklevel=3)
        else:
            parts.append(ds)
    records = _match_points(study, _concat(parts))
    done, done_traj = set(), set()
    if records is not None:
        pts = records["point"].values.astype(int)
        has_rec = records["has_record"].values if "has_record" in records else np.ones(pts.size)
        has_traj = records["has_trajectory"].values if "has_trajectory" in records else np.zeros(pts.size)
        done = {int(p) for p, r in zip(pts, has_rec) if r == 1}
        done_traj = {int(p) for p, t in zip(pts, has_traj) if t == 1}
    return _Plan(write_manifest, note, records, _tasks(study, done, done_traj), tuple(sorted(accepted - {h})))


_CHANGES = {"system": "the system", "params": "the model, initial or integration settings",
            "grid": "the grid's axes", "measures": "the measures or their settings",
            "solver": "the solver options", "newton": "the Newton options"}


def _parsed(data: Any) -> Study | None:
    from .schema import parse_study

    try:
        return parse_study(data) if isinstance(data, dict) else None
    except Exception:  # written by another phasekit version, or damaged
        return None


def _rehash(data: Any) -> str | None:
    """The hash this phasekit gives the study stored in a manifest (``None`` if it cannot read it)."""
    old = _parsed(data)
    return old.hash() if old is not None else None


def _what_changed(data: Any, study: Study) -> str:
    """What differs between the manifest's study and ``study``, for the refusal message."""
    old = _parsed(data)
    if old is None:
        return "the study"
    a, b = old.computation(), study.computation()
    return ", ".join(_CHANGES[k] for k in _CHANGES if a.get(k) != b.get(k)) or "the study"


def _batches(tasks: list, n_workers: int, batch_size: int | None) -> list[list]:
    """Group tasks: about eight per worker, each at most 64 points.

    Eight keeps the idle tail at the end of a run (one worker finishing its
    last task while the others have none) near 1/16 of the work, while the
    scheduling overhead (milliseconds per task) stays far below a point's cost.
    Batches are strided over the grid (task j goes to batch j mod n) so that
    cheap and expensive regions of the grid are mixed in every task.  With
    several workers and the default size, each worker's first task is a
    single point, so that the progress (and its time left) starts from the
    first point rather than the first full batch.
    """
    if not tasks:
        return []
    n = len(tasks)
    if batch_size is None:
        n_batches = max(-(-n // 64), min(n, 8 * max(1, n_workers)))
    else:
        if batch_size < 1:
            raise ValueError(f"batch_size: must be an integer >= 1, got {batch_size!r}")
        n_batches = -(-n // batch_size)
    batches = [tasks[j::n_batches] for j in range(n_batches)]
    if batch_size is None and n_workers > 1:
        batches = [[b.pop(0)] for b in batches[:n_workers] if len(b) > 1] + batches
    return batches


def _same_dataset(path: Path, ds: xr.Dataset) -> xr.Dataset | None:
    """The dataset stored at ``path`` if it holds the same study and values as ``ds``."""
    old = read_dataset(path)
    if old is None:
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


def _parallel(study: Study, parallel: Any) -> ParallelOptions:
    """The study's ``[run]`` settings, with the fields of ``parallel`` given by the caller on top."""
    base = coerce_options(dict(study.run), ParallelOptions, "run")
    if parallel is None:
        return base
    if isinstance(parallel, ParallelOptions):
        given = {f: getattr(parallel, f) for f in ("n_workers", "client", "scheduler", "batch_size", "worker_timeout",
                                                   "batch_points")
                 if getattr(parallel, f) != getattr(ParallelOptions(), f)}
    else:
        coerce_options(dict(parallel), ParallelOptions, "parallel")  # names unknown keys
        given = dict(parallel)
    return base.replace(**given)


def _probe(study: Study) -> Any:
    def probe(index: int, changes: dict) -> dict:
        rec = evaluate_point(study, index, changes=changes)
        return {**rec.get("values", {}), **rec.get("derived", {})}

    return probe


def run_study(
    study: Study | str | Path | Mapping[str, Any],
    *,
    outdir: str | Path | None = None,
    parallel: ParallelOptions | Mapping[str, Any] | None = None,
    fresh: bool = False,
    repair: bool = False,
    progress: bool = True,
    write: bool = True,
) -> xr.Dataset:
    """Evaluate a study over its grid, assemble one dataset and run its analyses.

    Parameters
    ----------
    study : Study, path or mapping
        A validated study (see :mod:`phasekit.study.schema`).
    outdir : path, optional
        Folder of the checkpoints (``<outdir>/checkpoints``) and of the dataset
        (``<outdir>/<name>.nc``).  ``None``: in memory, nothing written, no resume.
    parallel : ParallelOptions or mapping, optional
        Where the points run (``n_workers``, ``client``, ``scheduler``,
        ``batch_size``, ``worker_timeout``); fields given here override the
        study's ``[run]`` table.  Default: in this process, or on the active dask client.
    fresh : bool
        Discard existing checkpoints instead of resuming.
    repair : bool
        Rebuild a missing or damaged manifest ``checkpoints/study.json`` for
        this study, keeping the checkpoints (needed only when they do not
        carry this study's hash; otherwise it is rebuilt automatically).
    progress : bool
        Show a progress bar on stderr.
    write : bool
        With ``outdir``: write the dataset to ``<outdir>/<name>.nc`` (not
        rewritten when it already holds the same values).

    Returns
    -------
    xarray.Dataset
        See :mod:`phasekit.study.assembly`; attributes also ``started``, ``finished``.

    Raises
    ------
    StudyError
        If ``outdir`` holds checkpoints of a different study, or its manifest is
        damaged and cannot be rebuilt without ``repair``.
    ValueError
        For invalid parallel options.
    OutdirInUse
        If another run is computing in ``outdir``.
    OSError
        If points remain to be computed and ``outdir`` is not writable.
    StudyAborted
        If the workers or the scheduler were lost; finished points are kept.
    StudyInterrupted
        On Ctrl-C or SIGTERM; finished points are kept.
    """
    study = as_study(study)
    opts = _parallel(study, parallel)
    started = _now()
    _lazy_dask_in_xarray()  # nothing here uses dask unless a dask client is given (then it is loaded already)
    if outdir is None:
        tasks = _tasks(study, set(), set())
        parts, lost = _compute(study, None, tasks, opts, progress)
        ds = assemble(study, _concat(parts), lost=lost)
        ds = run_analyses(study, ds, probe=_probe(study))
        ds.attrs.update(started=started, finished=_now())
        return ds

    outdir = Path(outdir)
    ckdir = checkpoint_dir(outdir)
    path = outdir / f"{study.name}.nc"
    plan = _plan(study, ckdir, fresh, repair)
    if not (plan.tasks or fresh):
        # Finished: assemble; write nothing that is unchanged (the folder may be read-only).
        written = plan.write_manifest and _try_write_manifest(study, ckdir, plan.aliases)
        if plan.note:
            warnings.warn(plan.note + ("" if written else " (not saved: the folder is not writable)"),
                          stacklevel=2)
        if progress:
            print(f"{study.name}: nothing to compute: all {study.n_points} points are checkpointed under {ckdir}",
                  file=sys.stderr)
        ds = run_analyses(study, assemble(study, plan.records), probe=_probe(study), cache_dir=ckdir)
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
        raise PermissionError(f"{outdir}: not writable ({exc.strerror}); {len(plan.tasks)} of "
                              f"{study.n_points} points are still to compute; make it writable or give "
                              f"another --outdir") from None
    try:
        plan = _plan(study, ckdir, fresh, repair)  # again, now that nobody else can write
        if fresh:
            for f in list(ckdir.glob("batch-*.nc")) + list(ckdir.glob("analysis-*.nc")):
                f.unlink()
        if plan.write_manifest:
            _atomic_write_text(ckdir / "study.json", _manifest_text(study, plan.aliases))
        if plan.note:
            warnings.warn(plan.note, stacklevel=2)
        parts, lost = _compute(study, ckdir, plan.tasks, opts, progress)
        records = _concat(([plan.records] if plan.records is not None else []) + parts)
        ds = run_analyses(study, assemble(study, records, lost=lost), probe=_probe(study), cache_dir=ckdir)
        ds.attrs.update(started=started, finished=_now())
        if write:
            _write_dataset(ds, path)
    finally:
        lock.release()
    return ds


def sweep(study: Study | str | Path | Mapping[str, Any], *, outdir: str | Path | None = None,
          parallel: ParallelOptions | Mapping[str, Any] | None = None, fresh: bool = False, repair: bool = False,
          progress: bool = True, write: bool = True) -> xr.Dataset:
    """:func:`run_study` with files: checkpoints and dataset under ``outdir`` (default ``outputs/<name>``)."""
    study = as_study(study)
    outdir = Path(outdir) if outdir is not None else Path("outputs") / study.name
    return run_study(study, outdir=outdir, parallel=parallel, fresh=fresh, repair=repair, progress=progress,
                     write=write)


def _try_write_manifest(study: Study, ckdir: Path, aliases: tuple[str, ...] = ()) -> bool:
    try:
        _atomic_write_text(ckdir / "study.json", _manifest_text(study, aliases))
        return True
    except OSError as exc:
        if not _not_writable(exc):
            raise
        return False


def _compute(study: Study, ckdir: Path | None, tasks: list, opts: ParallelOptions, progress: bool
             ) -> tuple[list[xr.Dataset], dict[int, str]]:
    """Run ``tasks``, checkpointing each batch as it completes; the batches' records and the points lost."""
    n_done = study.n_points - sum(1 for t in tasks if t[1])
    lost: dict[int, str] = {}
    parts: list[xr.Dataset] = []
    if not tasks:
        return parts, lost
    # Unique per run, also for runs of one process within the same second: batch
    # files are named after it and must never replace another run's file.
    invocation = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    study_hash = study.hash()
    # from the start: the elapsed time shows while the first points run, the time left once one is done
    bar = Progress(study.n_points, done=n_done, enabled=progress, what=study.name, tick=1.0)
    where = f"checkpointed under {ckdir}; rerun to resume" if ckdir is not None else \
        "done (in memory: give outdir to keep finished points)"
    with contextlib.ExitStack() as stack:
        client = opts.client
        if opts.scheduler is not None:
            client = stack.enter_context(connect(opts.scheduler))
        backend = choose_backend(client, opts.n_workers)
        # In this process the batched trajectories span the whole run (each point still
        # checkpointed alone); workers batch the points of each task, so their tasks hold points of one shape.
        prefetch = make_prefetch(study, tasks, opts.batch_points)
        if prefetch is not None and backend.kind != "serial":
            size = opts.batch_size or min(opts.batch_points, -(-len(tasks) // (2 * max(1, backend.n_workers))))
            batches, prefetch = prefetch.worker_tasks(tasks, max(1, size)), None
        else:
            batches = _batches(tasks, backend.n_workers, opts.batch_size or (1 if backend.kind == "serial" else None))
        seq = 0
        try:
            results = imap_unordered(functools.partial(_run_batch, study.to_json(), batch_points=opts.batch_points,
                                                       prefetch=prefetch), batches, backend,
                                     worker_timeout=opts.worker_timeout, notify=bar.note)
            with contextlib.closing(results):
                for i, batch, exc in results:
                    n_rec = sum(1 for t in batches[i] if t[1])
                    if exc is not None:  # e.g. a dask worker died under it: retried on the next run
                        for j, *_ in batches[i]:
                            lost[j] = _one_line(f"batch failed: {type(exc).__name__}: {exc}")[:500]
                        bar.update(n_rec)
                        continue
                    batch["invocation"] = ("point", np.array([invocation] * batch.sizes["point"], dtype=object))
                    if ckdir is not None:
                        _write_batch(ckdir, invocation, seq, batch, study_hash)
                    parts.append(batch)
                    seq += 1
                    n_done += n_rec
                    bar.update(n_rec)
        except ParallelError as exc:
            bar.close()
            raise StudyAborted(f"{exc}: {n_done} of {study.n_points} points are {where}") from None
        except KeyboardInterrupt as exc:
            bar.close()
            what = "terminated" if isinstance(exc, Terminated) else "interrupted"
            raise StudyInterrupted(f"{what}: {n_done} of {study.n_points} points are {where}",
                                   terminated=isinstance(exc, Terminated)) from None
        finally:
            bar.close()
    return parts, lost
