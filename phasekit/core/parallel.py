"""Run a function over many independent items: in this process, in local worker processes or on dask.

The single place where phasekit starts parallel work; every grid runner
(:func:`phasekit.sweep`, :func:`phasekit.plateau_scaling`,
:func:`phasekit.simulate`, :func:`phasekit.propagation.phases.phase_diagram`, ...)
goes through :func:`choose_backend` and :func:`imap_unordered` (or
:func:`parallel_map`, built on them).

Backends, chosen by :func:`choose_backend`:

``"dask"``
    A ``client=`` given by the caller, or else (when ``n_workers`` is not
    given) the active dask client, as dask users expect
    (``distributed.Client.current()``, e.g. after ``Client(...)`` in a notebook).
``"processes"``
    ``n_workers >= 2`` without a client: a local pool of worker processes
    (:class:`concurrent.futures.ProcessPoolExecutor`).  On Linux the workers
    are forked, so they never re-import the main module: a plain script
    without ``if __name__ == "__main__":``, a script piped to ``python -`` and
    a notebook all work.  Elsewhere (or with ``PHASEKIT_START_METHOD=spawn``)
    they are spawned, which re-runs the main script in every worker; where
    that cannot work one line says what to do.
``"serial"``
    Everything else (``n_workers`` ``None``, 0 or 1): in this process.
    Nothing starts processes unless asked to.

Functions and items travel to local workers by cloudpickle (as with dask),
so lambdas inside models and functions of the main script work too.  The
worker processes ignore Ctrl-C (the terminal sends it to all of them) and
exit when the main process dies; the main process stops them on Ctrl-C or
SIGTERM, so that one message is printed.  A worker process that dies is
replaced (twice at most); a lost dask scheduler, or a cluster without workers
for ``worker_timeout`` seconds, stops the run with a :class:`ParallelError`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import multiprocessing
import numbers
import os
import pickle
import signal
import sys
import threading
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

__all__ = ['Backend', 'PROGRESS_DELAY', 'ParallelError', 'Progress', 'Terminated', 'active_client', 'check_batch_size', 'check_workers', 'choose_backend', 'connect', 'default_workers', 'imap_unordered', 'max_workers', 'parallel_map']


# Environment variables: the sanity limit on worker processes, and the start method
# of local worker processes ("fork", "spawn" or "forkserver").
MAX_WORKERS_ENV = "PHASEKIT_MAX_WORKERS"


START_METHOD_ENV = "PHASEKIT_START_METHOD"


# Seconds a dask cluster may have no worker before a run gives up.
WORKER_TIMEOUT = 60.0


# A dead local worker process is replaced this many times per call before giving up.
_MAX_RESTARTS = 2


class ParallelError(RuntimeError):
    """Parallel execution cannot go on: workers died or cannot start, or the scheduler was lost.

    The message is one line saying what happened and what to do.
    """


def default_workers() -> int:
    """Worker processes used when the command line is not told otherwise: the usable cores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def max_workers() -> int:
    """Sanity limit on worker processes: ``4 x`` the usable cores, or ``$PHASEKIT_MAX_WORKERS``."""
    text = os.environ.get(MAX_WORKERS_ENV, "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{MAX_WORKERS_ENV}: must be an integer >= 1, got {text!r}") from None
        if value < 1:
            raise ValueError(f"{MAX_WORKERS_ENV}: must be an integer >= 1, got {value}")
        return value
    return 4 * default_workers()


def check_workers(n_workers: Any, name: str = "n_workers") -> int | None:
    """Validate a number of worker processes (``None``: not given).

    Raises
    ------
    ValueError
        Unless ``n_workers`` is ``None`` or an integer in ``[0, max_workers()]``;
        the message names ``name``, the allowed range and how to raise the limit.
    """
    if n_workers is None:
        return None
    limit = max_workers()
    if os.environ.get(MAX_WORKERS_ENV, "").strip():
        why = f"{limit} = ${MAX_WORKERS_ENV}"
    else:
        why = f"{limit} = 4 x {default_workers()} cores; set {MAX_WORKERS_ENV} to allow more"
    allowed = f"an integer in [0, {limit}] (0 or 1: in this process; at most {why})"
    if isinstance(n_workers, bool) or not isinstance(n_workers, numbers.Integral):
        raise ValueError(f"{name}: must be {allowed}, got {n_workers!r}")
    n = int(n_workers)
    if not 0 <= n <= limit:
        raise ValueError(f"{name}: must be {allowed}, got {n}")
    return n


def check_batch_size(batch_size: Any, name: str = "batch_size") -> int | None:
    """Validate items per task (``None``: automatic); an integer ``>= 1``."""
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"{name}: must be an integer >= 1 (points per task), got {batch_size!r}")
    return int(batch_size)


@dataclass(frozen=True)
class Backend:
    """Where :func:`imap_unordered` runs the items.

    Attributes
    ----------
    kind : {"serial", "processes", "dask"}
    n_workers : int
        Processes (``"processes"``), workers of the cluster (``"dask"``) or 1.
    client : dask.distributed.Client or None
    start_method : str or None
        Start method of local worker processes.
    """

    kind: str
    n_workers: int = 1
    client: Any = None
    start_method: str | None = None

    def describe(self) -> str:
        if self.kind == "dask":
            return f"dask cluster at {_address(self.client)} ({self.n_workers} workers)"
        if self.kind == "processes":
            return f"{self.n_workers} local worker processes ({self.start_method})"
        return "this process"


def active_client() -> Any:
    """The active dask client (``distributed.Client.current()``), or ``None``.

    ``None`` inside a dask task (nested submission would compete with the
    task for its worker) and when dask.distributed was never imported (then
    no client can exist).
    """
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import Client, get_worker
    except ImportError:  # pragma: no cover - a broken installation
        return None
    try:
        get_worker()
        return None
    except ValueError:
        pass
    try:
        client = Client.current(allow_global=True)
    except ValueError:
        return None
    return client if getattr(client, "status", None) == "running" else None


def _dask_workers(client: Any) -> int:
    try:
        return max(1, len(client.nthreads()))
    except Exception:  # a cluster still starting: the count only sizes the batches
        return 1


def _address(client: Any) -> str:
    try:
        return str(client.scheduler.address)
    except Exception:
        return "?"


def _start_method() -> str:
    method = os.environ.get(START_METHOD_ENV, "").strip()
    allowed = multiprocessing.get_all_start_methods()
    if method:
        if method not in allowed:
            raise ValueError(f"{START_METHOD_ENV}: must be one of {', '.join(allowed)}, got {method!r}")
        return method
    # fork: workers inherit the loaded modules and never re-run the main script.  Not on
    # macOS, whose system libraries are not fork-safe (Python's default there is spawn).
    return "fork" if sys.platform.startswith("linux") and "fork" in allowed else "spawn"


def _starting_worker() -> bool:
    """Whether this process is a spawned worker still re-running the main script."""
    return bool(getattr(multiprocessing.current_process(), "_inheriting", False))


def choose_backend(client: Any = None, n_workers: int | None = None) -> Backend:
    """The backend for ``client`` / ``n_workers`` (see the module docstring).

    Parameters
    ----------
    client : dask.distributed.Client, optional
        Run on this cluster.
    n_workers : int, optional
        ``None``: the active dask client if there is one, else this process;
        0 or 1: this process; ``>= 2``: that many local worker processes.

    Raises
    ------
    ValueError
        If ``n_workers`` is not an integer in ``[0, max_workers()]``.
    """
    if _starting_worker():
        # A spawned worker re-running an unguarded main script has reached the script's
        # parallel call: leave quietly; the main process reports what to do.
        raise SystemExit(1)
    n = check_workers(n_workers)
    if client is not None:
        return Backend("dask", _dask_workers(client), client)
    if n is None:
        found = active_client()
        if found is not None:
            return Backend("dask", _dask_workers(found), found)
        return Backend("serial")
    if n <= 1:
        return Backend("serial")
    return Backend("processes", n, start_method=_start_method())


@contextlib.contextmanager
def connect(address: str, timeout: float = 30.0) -> Iterator[Any]:
    """A dask client of the scheduler at ``address``, closed (quietly) on exit.

    Raises
    ------
    ParallelError
        If the scheduler cannot be reached within ``timeout`` seconds.
    """
    from distributed import Client

    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ParallelError(f"scheduler: cannot connect to the dask scheduler at {address}: {first}") from None
    try:
        with _quiet_dask():
            yield client
    finally:
        with _quiet_dask():
            try:
                client.close(timeout=5)
            except Exception:  # the scheduler may be gone already
                pass


@contextlib.contextmanager
def _quiet_dask() -> Iterator[None]:
    """Silence dask's client-side logging: losing the scheduler is reported in one line instead."""
    names = ("distributed.client", "distributed.comm", "distributed.core", "distributed.batched")
    loggers = [logging.getLogger(n) for n in names]
    old = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, lev in zip(loggers, old):
            lg.setLevel(lev)


def imap_unordered(
    func: Callable[[Any], Any],
    items: Sequence[Any],
    backend: Backend,
    *,
    worker_timeout: float = WORKER_TIMEOUT,
    notify: Callable[[str], None] | None = None,
) -> Iterator[tuple[int, Any, BaseException | None]]:
    """``(index, func(items[index]), None)`` as each item finishes, in completion order.

    An item whose ``func`` raises gives ``(index, None, exception)``; the
    others go on.  Closing the iterator early (or Ctrl-C) stops the workers.

    Parameters
    ----------
    func : callable
        A picklable (module-level) function of one item.
    items : sequence
    backend : Backend
        From :func:`choose_backend`.
    worker_timeout : float
        Dask only: seconds without any worker before giving up.
    notify : callable, optional
        Receives one-line remarks while waiting (e.g. for dask workers).

    Raises
    ------
    ParallelError
        The worker processes kept dying or could not start, the dask scheduler
        was lost, or the cluster had no worker for ``worker_timeout`` seconds.
    """
    items = list(items)
    if not items:
        return iter(())
    if backend.kind == "serial":
        return _iter_serial(func, items)
    if backend.kind == "processes":
        return _iter_processes(func, items, backend.n_workers, backend.start_method or _start_method())
    if backend.kind == "dask":
        if not (worker_timeout > 0):
            raise ValueError(f"worker_timeout: must be > 0 seconds, got {worker_timeout!r}")
        return _iter_dask(func, items, backend.client, float(worker_timeout), notify)
    raise ValueError(f"backend: unknown kind {backend.kind!r}")


def _iter_serial(func: Callable[[Any], Any], items: list) -> Iterator[tuple[int, Any, BaseException | None]]:
    for i, item in enumerate(items):
        try:
            result = func(item)
        except Exception as exc:
            yield i, None, exc
        else:
            yield i, result, None


def _worker_init(parent: int) -> None:
    # Ctrl-C in a terminal reaches every process of the group: the main process handles it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A forked worker inherits the main process's SIGTERM handler (which raises
    # Terminated to stop the pool); the pool stops a worker with SIGTERM, so it must just die.
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    def watch() -> None:  # a worker whose main process died (SIGKILL) must not live on
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="phasekit-parent-watch", daemon=True).start()


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived while worker processes ran (raised so that they are stopped first)."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the pool lives, unless the program handles it."""
    if not hasattr(signal, "SIGTERM") or threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated("terminated")

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):  # not in the main thread (a generator finalised elsewhere)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Block SIGINT while worker processes start, so that none dies of it before
    :func:`_worker_init`; a Ctrl-C meanwhile is delivered here afterwards."""
    if hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread():
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
    else:
        yield


def _check_spawnable(method: str, n: int) -> None:
    if method == "fork":
        return
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if getattr(main, "__spec__", None) is None and path is not None and not os.path.isfile(path):
        raise ParallelError(
            f"n_workers = {n}: worker processes started by {method!r} re-run the main script, which is not "
            f"a file here ({path}); save the script to a file with its work under "
            "`if __name__ == \"__main__\":`, or use n_workers=1")


def _call_pickled(payload: bytes) -> bytes:
    """Worker side of the local pool: ``func(item)`` with both sent by cloudpickle.

    cloudpickle (as dask uses) also carries what the standard pickle refuses:
    lambdas inside models, functions defined in the main script.
    """
    import cloudpickle

    func, item = cloudpickle.loads(payload)
    return cloudpickle.dumps(func(item))


def _new_executor(n: int, method: str) -> ProcessPoolExecutor:
    ctx = multiprocessing.get_context(method)
    return ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),))


def _stop_executor(ex: ProcessPoolExecutor, terminate: bool) -> None:
    if terminate:
        stop = getattr(ex, "terminate_workers", None)  # Python >= 3.14
        if stop is not None:
            stop()
        else:
            procs = list((getattr(ex, "_processes", None) or {}).values())
            ex.shutdown(wait=False, cancel_futures=True)
            for p in procs:
                with contextlib.suppress(Exception):
                    p.terminate()
            for p in procs:
                with contextlib.suppress(Exception):
                    p.join(timeout=5)
    ex.shutdown(wait=True, cancel_futures=True)


def _iter_processes(func: Callable[[Any], Any], items: list, n_workers: int,
                    method: str) -> Iterator[tuple[int, Any, BaseException | None]]:
    _check_spawnable(method, n_workers)
    todo = dict(enumerate(items))
    with _sigterm_raises():
        yield from _pool_rounds(func, todo, n_workers, method)


def _pool_rounds(func: Callable[[Any], Any], todo: dict[int, Any], n_workers: int,
                 method: str) -> Iterator[tuple[int, Any, BaseException | None]]:
    import cloudpickle

    restarts = 0
    while todo:
        ex = _new_executor(min(n_workers, len(todo)), method)
        finished_here = 0
        broken = False
        clean = False
        try:
            with _sigint_blocked(), warnings.catch_warnings():
                # Python >= 3.12 warns about fork in a multi-threaded process; the workers
                # only compute and never touch the locks of the main process's threads.
                warnings.filterwarnings("ignore", message=r".*fork\(\) may lead to deadlocks",
                                        category=DeprecationWarning)
                futures = {ex.submit(_call_pickled, cloudpickle.dumps((func, item))): i
                           for i, item in todo.items()}
            pending = set(futures)
            while pending and not broken:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = futures[fut]
                    try:
                        result = pickle.loads(fut.result())
                    except BrokenProcessPool:
                        broken = True
                        continue
                    except Exception as exc:
                        del todo[i]
                        finished_here += 1
                        yield i, None, exc
                        continue
                    del todo[i]
                    finished_here += 1
                    yield i, result, None
            clean = not broken
        finally:
            _stop_executor(ex, terminate=not clean)
        if broken and todo:
            if method != "fork" and finished_here == 0:
                raise ParallelError(
                    f"n_workers = {n_workers}: the worker processes exited at start-up; with the {method!r} "
                    "start method each worker re-runs the main script, so keep the script's work under "
                    "`if __name__ == \"__main__\":` (or use n_workers=1)")
            if restarts >= _MAX_RESTARTS:
                raise ParallelError(
                    f"worker processes died {restarts + 1} times (killed, or out of memory?)")
            restarts += 1


def _iter_dask(func: Callable[[Any], Any], items: list, client: Any, worker_timeout: float,
               notify: Callable[[str], None] | None) -> Iterator[tuple[int, Any, BaseException | None]]:
    from distributed import as_completed

    address = _address(client)
    futures = client.map(func, items, pure=False)
    index = {f.key: i for i, f in enumerate(futures)}
    remaining = set(index)
    seq = as_completed(futures)
    since_no_worker: float | None = None
    since_disconnected: float | None = None
    told = False
    next_check = 0.0
    try:
        while remaining:
            if seq.has_ready():
                for fut in seq.next_batch(block=False):
                    i = index[fut.key]
                    remaining.discard(fut.key)
                    if fut.status == "finished":
                        result = fut.result()
                        fut.release()
                        yield i, result, None
                    elif fut.status == "cancelled":
                        reason = getattr(_exception_of(fut), "reason", "")
                        if "scheduler" in str(reason) or client.status != "running":
                            raise ParallelError(f"lost the connection to the dask scheduler at {address}")
                        raise ParallelError(f"the dask tasks were cancelled ({reason or 'by another client'})")
                    else:
                        yield i, None, _exception_of(fut)
                continue
            now = time.monotonic()
            if now >= next_check:
                next_check = now + 1.0
                n: int | None = None
                if client.status != "running":
                    since_disconnected = since_disconnected or now
                    if now - since_disconnected > min(10.0, worker_timeout):
                        raise ParallelError(f"lost the connection to the dask scheduler at {address}")
                else:
                    since_disconnected = None
                    try:
                        n = len(client.nthreads(callback_timeout=10))
                    except Exception:
                        n = None  # unanswered: the connection check decides
                if n == 0:
                    since_no_worker = since_no_worker or now
                    waited = now - since_no_worker
                    if waited > worker_timeout:
                        raise ParallelError(
                            f"no dask worker for {worker_timeout:g} s at {address} (all workers gone?)")
                    if notify is not None and not told and waited >= min(5.0, worker_timeout / 2):
                        notify(f"waiting for dask workers at {address}: none for {waited:.0f} s, "
                               f"giving up after {worker_timeout:g} s")
                        told = True
                elif n is not None:
                    since_no_worker, told = None, False
            time.sleep(0.05)
    finally:
        left = [f for f in futures if f.key in remaining]
        if left and client.status == "running":
            with contextlib.suppress(Exception):
                client.cancel(left)


def _exception_of(fut: Any) -> BaseException:
    try:
        exc = fut.exception(timeout=5)
    except BaseException as err:  # a cancelled future raises instead of returning
        return err
    return exc if exc is not None else RuntimeError(f"task {fut.key} {fut.status}")


# --- progress ---------------------------------------------------------------------------------------

# Seconds a computation runs before its progress line appears: quick calls say nothing.
PROGRESS_DELAY = 3.0


def _clock_text(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


def _count_text(x: float) -> str:
    """A count of units: whole (up to rounding of the fractions added) or with one decimal."""
    return str(int(round(x))) if abs(x - round(x)) <= 1e-9 * max(1.0, abs(x)) else f"{x:.1f}"


class Progress:
    """A one-line progress report on stderr: work done, rate and estimated time left.

    Nothing is written during the first ``delay`` seconds (a computation that
    finishes quickly says nothing) or when ``enabled`` is false.  On a
    terminal the line is rewritten in place; elsewhere (a log file) a line is
    written every ``every`` seconds and at the end.  With ``tick`` (seconds)
    a background thread refreshes the line while a single long unit of work
    runs, so that the elapsed time shows before the first unit is done.

    Parameters
    ----------
    total : int or float
        Units of work (may be raised later with :meth:`add`; fractions of a
        unit are allowed, e.g. a run half done).
    done : int or float
        Units already done (e.g. checkpointed points): they count towards
        the fraction, not the rate.
    enabled : bool
    what : str
        What is computed (the line's first word, e.g. ``"simulate"``).
    unit : str
        Name of a unit of work (``"points"``, ``"starts"``, ...).
    stream : file, optional
        Default ``sys.stderr``.
    delay, every : float
        Seconds of silence at the start (default :data:`PROGRESS_DELAY`), and
        between lines off a terminal.
    clock : callable
        Seconds (default :func:`time.monotonic`; tests pass a fake clock).
    tick : float, optional
        Refresh period of the background thread (none by default).
    """

    def __init__(self, total: float, *, done: float = 0, enabled: bool = True, what: str = "", unit: str = "points",
                 stream: Any = None, delay: float | None = None, every: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, tick: float | None = None) -> None:
        self.total, self.done0, self.done = total, done, done
        self.enabled = bool(enabled) and self.total > self.done
        self.what, self.unit = what, unit
        self.stream = stream if stream is not None else sys.stderr
        self.delay = float(PROGRESS_DELAY if delay is None else delay)
        self.every, self.clock = float(every), clock
        self.t0 = clock()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = -math.inf  # when the last line was written (off a terminal)
        self._open = False  # a \r-line is on the terminal
        self._shown = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        if self.enabled and tick:
            self._thread = threading.Thread(target=self._tick, args=(float(tick),), daemon=True)
            self._thread.start()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _tick(self, period: float) -> None:
        while not self._stop.wait(period):
            self._show(final=False)

    def add(self, n: float) -> None:
        """``n`` more units of work than first announced."""
        self.total += n

    def update(self, n: float = 1) -> None:
        """``n`` more units are done."""
        self.done += n
        if self.enabled:
            self._show(final=self.done >= self.total - 1e-9 * abs(self.total))

    def line(self) -> str:
        """The current report: ``what [####....] done/total unit  rate  time left``."""
        elapsed = self.clock() - self.t0
        new = self.done - self.done0
        rate = new / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else math.inf
        frac = min(1.0, self.done / self.total) if self.total else 1.0
        bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
        head = f"{self.what} " if self.what else ""
        speed = f"{rate:.3g} {self.unit}/s" if new else "first result pending"
        return (f"{head}[{bar}] {_count_text(self.done)}/{_count_text(self.total)} {self.unit}  {speed}  "
                f"{_clock_text(elapsed)} elapsed, {_clock_text(max(left, 0.0))} left")

    def _show(self, final: bool) -> None:
        with self._lock:
            elapsed = self.clock() - self.t0
            if not self.enabled or (elapsed < self.delay and not (final and self._shown)):
                return
            text = self.line()
            if self.tty:
                self.stream.write("\r" + text)
                self._open = True
            elif final or elapsed - self._last >= self.every:
                self.stream.write(text + "\n")
                self._last = elapsed
            else:
                return
            self._shown = True
            self.stream.flush()

    def note(self, message: str) -> None:
        """A remark on its own line (e.g. waiting for workers); shown whenever progress is enabled."""
        if not self.enabled:
            return
        with self._lock:
            self.stream.write(("\n" if self._open else "") + message + "\n")
            self._open = False
            self.stream.flush()

    def close(self) -> None:
        """Stop the refresh thread and end the terminal line."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            if self.enabled and self._open:
                self.stream.write("\n")
                self.stream.flush()
                self._open = False


def _run_batch(func: Callable[[Any], Any], batch: Sequence[Any]) -> list[Any]:
    return [func(item) for item in batch]


def parallel_map(
    func: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    client: Any = None,
    n_workers: int | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
    weights: Sequence[float] | None = None,
) -> list[Any]:
    """``[func(item) for item in items]``, in parallel when asked to, order preserved.

    Parameters
    ----------
    func : callable
        A picklable (module-level) function of one item.
    items : sequence
        The points.
    client : dask.distributed.Client, optional
        Run on this dask cluster.
    n_workers : int, optional
        ``None`` (default): on the active dask client if there is one, else in
        this process; 0 or 1: in this process; ``>= 2``: that many local worker
        processes (at most :func:`max_workers`).
    batch_size : int, optional
        Items per task; default about four tasks per worker.
    progress : Progress, optional
        Advanced by each item's weight (default 1) as its task finishes.
    weights : sequence of float, optional
        The work of each item, in the units of ``progress``.

    Raises
    ------
    ValueError
        For an invalid ``n_workers`` or ``batch_size``.
    ParallelError
        If the workers are lost (see :func:`imap_unordered`).
    Exception
        The first exception raised by ``func``.
    """
    items = list(items)
    batch_size = check_batch_size(batch_size)
    backend = choose_backend(client, n_workers)
    if not items:
        return []
    weight = list(weights) if weights is not None else [1.0] * len(items)
    if backend.kind == "serial":
        out = []
        for item, w in zip(items, weight):
            out.append(func(item))
            if progress is not None:
                progress.update(w)
        return out
    if batch_size is None:
        batch_size = max(1, -(-len(items) // (4 * backend.n_workers)))
    batches = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
    results: list[Any] = [None] * len(batches)
    notify = progress.note if progress is not None else None
    with contextlib.closing(imap_unordered(functools.partial(_run_batch, func), batches, backend,
                                           notify=notify)) as it:
        for i, result, exc in it:
            if exc is not None:
                raise exc
            results[i] = result
            if progress is not None:
                progress.update(sum(weight[i * batch_size:(i + 1) * batch_size]))
    return [r for batch in results for r in batch]
