"""Long subprocess checks started when collection ends, so that they run on another core.

A test file lists its jobs in a module attribute ``BACKGROUND_JOBS``; ``conftest.py``
starts the jobs of every file that has a selected test, and a test then waits for its
job's result.  The suite itself runs in one process, so on a machine with two cores the
Sphinx build or the README tour costs the suite almost no wall time.  Run alone (or
started by nobody), a job starts when its result is first asked for.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

_STARTED: list[Job] = []


class Job:
    """One subprocess: ``prepare(workdir)`` writes what it needs and returns the ``Popen`` keyword arguments."""

    def __init__(self, name: str, prepare: Callable[[Path], dict[str, Any]], timeout: float):
        self.name, self.prepare, self.timeout = name, prepare, timeout
        self.workdir: Path | None = None
        self._proc: subprocess.Popen | None = None
        self._result: subprocess.CompletedProcess | None = None

    def start(self) -> None:
        if self._proc is not None:
            return
        self.workdir = Path(tempfile.mkdtemp(prefix=f"phasekit-{self.name}-"))
        kwargs = self.prepare(self.workdir)
        # Files, not pipes: nobody reads the output until the job ends, and a full pipe would stop it.
        self._out = tempfile.TemporaryFile(mode="w+", dir=self.workdir.parent)
        self._err = tempfile.TemporaryFile(mode="w+", dir=self.workdir.parent)
        # Its own session: signals that tests send to their own process group do not reach it.
        self._proc = subprocess.Popen(stdout=self._out, stderr=self._err, text=True, start_new_session=True,
                                      **kwargs)
        _STARTED.append(self)

    def result(self) -> subprocess.CompletedProcess:
        """Wait for the job (starting it if nobody has) and return its exit code and output."""
        if self._result is None:
            self.start()
            rc = self._proc.wait(timeout=self.timeout)
            self._out.seek(0)
            self._err.seek(0)
            self._result = subprocess.CompletedProcess(self._proc.args, rc, self._out.read(), self._err.read())
        return self._result

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        for f in (getattr(self, "_out", None), getattr(self, "_err", None)):
            if f is not None:
                f.close()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_jobs_of(modules) -> None:
    for module in modules:
        for job in getattr(module, "BACKGROUND_JOBS", ()):
            job.start()


def stop_all() -> None:
    while _STARTED:
        _STARTED.pop().stop()
