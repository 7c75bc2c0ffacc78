"""Checkpoint files of a study, their manifest and the lock of the output folder."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import uuid
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import xarray as xr

from .schema import Study

__all__ = ['OutdirInUse', 'checkpoint_dir', 'load_checkpoints']


class OutdirInUse(RuntimeError):
    """Another run holds the output folder's lock."""


def checkpoint_dir(outdir: str | Path) -> Path:
    """Where :func:`phasekit.study.runner.run_study` keeps per-batch checkpoint files under ``outdir``."""
    return Path(outdir) / "checkpoints"


def _tmp_name(path: Path) -> Path:
    # Unique per process and call: concurrent writers never share a temporary file.
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = _tmp_name(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _write_batch(ckdir: Path, invocation: str, seq: int, ds: xr.Dataset, study_hash: str) -> Path:
    """Write the records of one batch (a dataset over ``point``) as ``batch-<invocation>-<seq>.nc``."""
    ds = ds.copy()
    ds["invocation"] = ("point", np.array([invocation] * ds.sizes["point"], dtype=object))
    # The study hash travels with every batch, so that a damaged manifest can be rebuilt.
    ds.attrs["study_hash"] = study_hash
    path = ckdir / f"batch-{invocation}-{seq:05d}.nc"
    tmp = _tmp_name(path)
    ds.to_netcdf(tmp, engine="scipy")
    os.replace(tmp, path)  # atomic: a killed run leaves whole files only
    return path


def _concat(parts: list[xr.Dataset]) -> xr.Dataset | None:
    """Batches as one dataset over ``point`` (extra dims padded with NaN to the longest)."""
    if not parts:
        return None
    return xr.concat(parts, dim="point", data_vars="all", coords="minimal", compat="override", join="outer",
                     combine_attrs="drop", fill_value=np.nan)


def _read_batches(ckdir: Path) -> list[tuple[Path, xr.Dataset | None, str | None]]:
    """``(file, dataset or None if unreadable, study hash or None)`` per checkpoint file."""
    out = []
    for f in sorted(ckdir.glob("batch-*.nc")):
        try:
            ds = xr.load_dataset(f, engine="scipy")
        except Exception:  # a damaged or foreign file
            out.append((f, None, None))
            continue
        h = ds.attrs.get("study_hash")
        out.append((f, ds, str(h) if h is not None else None))
    return out


def load_checkpoints(outdir: str | Path, study_hash: str | None = None) -> xr.Dataset | None:
    """All checkpointed points under ``outdir`` as one dataset over ``point``.

    Variables: every measure output, ``status``, ``message``, ``seconds``,
    ``worker``, ``invocation`` (which run of the study computed the point),
    ``has_record`` / ``has_trajectory`` (what the entry holds) and ``key``
    (the point's grid values as JSON).  A point may have two entries: its
    record and, computed later, its stored trajectory.  ``None`` if
    there are none.  Unreadable files are skipped with a warning, and so are
    files of another study when ``study_hash`` is given (files written before
    checkpoints carried the hash are kept).
    """
    parts = []
    for f, ds, h in _read_batches(checkpoint_dir(outdir)):
        if ds is None:
            warnings.warn(f"skipping unreadable checkpoint {f}", stacklevel=2)
        elif study_hash is not None and h is not None and h != study_hash:
            warnings.warn(f"skipping checkpoint {f} of another study (hash {h})", stacklevel=2)
        else:
            parts.append(ds)
    return _concat(parts)


def _manifest_text(study: Study, aliases: tuple[str, ...] = ()) -> str:
    """``study.json``: the study, its hash and the older hashes its checkpoint files may carry."""
    out: dict = {"hash": study.hash(), "study": study.to_dict()}
    if aliases:
        out["aliases"] = sorted(set(aliases) - {out["hash"]})
    return json.dumps(out, indent=1, sort_keys=True)


def _match_points(study: Study, records: xr.Dataset | None) -> xr.Dataset | None:
    """``records`` re-indexed on ``study``'s grid by their grid values (``key``).

    A point's flat index depends on the grid's extent and order; its ``key``
    does not.  Each entry's ``point`` becomes the index of the point with the
    same grid values in ``study``; entries of values no longer on the grid are
    dropped (they stay on disk, and come back when the values do).
    """
    if records is None or "key" not in records:
        return records
    index = {study.point_key(j): j for j in range(study.n_points)}
    rows = [(row, index.get(str(k))) for row, k in enumerate(records["key"].values)]
    keep = [row for row, j in rows if j is not None]
    if not keep:
        return None
    out = records.isel(point=keep)
    return out.assign_coords(point=("point", np.array([j for _, j in rows if j is not None], dtype=np.int32)))


class _FolderLock:
    """Exclusive lock of an output folder: the file ``<outdir>/checkpoints/run.lock``.

    Held with ``flock`` where there is one: the kernel drops it when its process
    dies, so a killed run never leaves a stale lock.  The file names its owner
    (pid, host, start time) for the message a second run gets.  Elsewhere the
    file is created exclusively and a stale one must be deleted by hand.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def _owner(self) -> str:
        try:
            info = json.loads(self.path.read_text())
            return f"pid {info['pid']} on {info['host']}, started {info['started']}"
        except Exception:
            return "owner unknown"

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}).encode()
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            fcntl = None
        if fcntl is None:  # pragma: no cover - Windows
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                raise OutdirInUse(f"{self.path.parent.parent} is in use by another phasekit run "
                                  f"({self._owner()}); wait for it, give another --outdir, or delete "
                                  f"{self.path} if no run is active") from None
        else:
            while True:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    raise OutdirInUse(f"{self.path.parent.parent} is in use by another phasekit run "
                                      f"({self._owner()}); wait for it to finish or give another --outdir") from None
                # A finishing run unlinks the file it held: make sure ours is still the one at path.
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(fd)
            os.ftruncate(fd, 0)
        os.write(fd, text)
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()  # still held: nobody can have taken it meanwhile
        os.close(self.fd)
        self.fd = None


def _not_writable(exc: OSError) -> bool:
    return exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
