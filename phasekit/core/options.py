"""Typed options with one set of defaults: ODE solver, Newton iterations, parallel execution.

Functions take these objects (or a mapping of their fields, or ``None`` for
the defaults) instead of loose keywords, and study files give them as tables
(``[solver]``, ``[newton]``, ``[run]``), parsed once by
:func:`options_from_table` with one-line errors naming the key.  Each field
name means one thing everywhere:

``method``      the ODE solver (a ``scipy.integrate.solve_ivp`` method)
``rtol, atol``  the solver's relative and absolute error tolerances
``max_norm``    a run whose largest absolute state entry exceeds it has diverged
``tol``         Newton's tolerance on ``max |d state / d alpha|`` (1/alpha)
``max_iter``    Newton iterations at most
``n_workers``   worker processes (``None``, 0 or 1: in this process)
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, fields
from typing import Any, Mapping, TypeVar

__all__ = ["SOLVER_METHODS", "SolverOptions", "NewtonOptions", "ParallelOptions", "coerce_options",
           "options_from_table"]

SOLVER_METHODS = ("DOP853", "RK45", "RK23", "Radau", "BDF", "LSODA")

T = TypeVar("T")


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: must be a finite number > 0, got {value!r}")
    return float(value)


def _count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


class _Options:
    """Shared behaviour: ``replace`` and a mapping view of the fields."""

    def replace(self: T, **changes: Any) -> T:
        """A copy with some fields changed (validated again)."""
        names = {f.name for f in fields(self)}  # type: ignore[arg-type]
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not an option of {type(self).__name__} "
                             f"(options: {', '.join(sorted(names))})")
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready mapping (objects such as a dask client are left out)."""
        out = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None or isinstance(value, (bool, int, float, str)):
                out[f.name] = value
        return out


@dataclass(frozen=True, kw_only=True)
class SolverOptions(_Options):
    """Settings of the adaptive ODE solver.

    Attributes
    ----------
    method : str
        ``scipy.integrate.solve_ivp`` method: one of :data:`SOLVER_METHODS`.
    rtol, atol : float
        Relative and absolute error tolerances, ``> 0``.  ``atol`` is far
        below the usual ``1e-12`` because symmetry-breaking components start
        tiny (down to ``1e-12``) and decide when a plateau ends.
    max_norm : float
        A run whose largest absolute state entry exceeds this counts as diverged.
    """

    method: str = "DOP853"
    rtol: float = 1e-9
    atol: float = 1e-14
    max_norm: float = 1e6

    def __post_init__(self) -> None:
        if not (isinstance(self.method, str) and self.method in SOLVER_METHODS):
            raise ValueError(f"method: must be one of {', '.join(SOLVER_METHODS)}, got {self.method!r}")
        for name in ("rtol", "atol", "max_norm"):
            object.__setattr__(self, name, _positive(getattr(self, name), name))


@dataclass(frozen=True, kw_only=True)
class NewtonOptions(_Options):
    """Settings of Newton's method for fixed points.

    Attributes
    ----------
    tol : float
        Convergence threshold on ``max |d state / d alpha|`` (units 1/alpha), ``> 0``.
    max_iter : int
        Iterations at most, ``>= 1``.
    """

    tol: float = 1e-12
    max_iter: int = 100

    def __post_init__(self) -> None:
        object.__setattr__(self, "tol", _positive(self.tol, "tol"))
        object.__setattr__(self, "max_iter", _count(self.max_iter, "max_iter", 1))


@dataclass(frozen=True, kw_only=True)
class ParallelOptions(_Options):
    """Where independent pieces of work run (see :mod:`phasekit.core.parallel`).

    Attributes
    ----------
    n_workers : int or None
        Local worker processes; ``None``, 0 or 1 run in this process (or on
        the active dask client when ``n_workers`` is ``None``).
    client : dask.distributed.Client, optional
        Run on this cluster.
    scheduler : str, optional
        Address of a running dask scheduler to connect to.
    batch_size : int, optional
        Items per task (default: chosen from the number of workers).
    worker_timeout : float
        Seconds a cluster may have no worker before the run stops.
    batch_points : int
        Grid points of one shape whose trajectories are integrated together,
        as one vectorised system (committee studies; 64 is a good choice);
        ``1`` (the default): each point alone.
    """

    n_workers: int | None = None
    client: Any = None
    scheduler: str | None = None
    batch_size: int | None = None
    worker_timeout: float = 60.0
    batch_points: int = 1

    def __post_init__(self) -> None:
        from .parallel import check_batch_size, check_workers

        object.__setattr__(self, "n_workers", check_workers(self.n_workers))
        object.__setattr__(self, "batch_size", check_batch_size(self.batch_size))
        if self.scheduler is not None and not isinstance(self.scheduler, str):
            raise ValueError(f"scheduler: must be an address string such as 'tcp://host:8786', got {self.scheduler!r}")
        if self.client is not None and self.scheduler is not None:
            raise ValueError("client, scheduler: give one of them, not both")
        object.__setattr__(self, "worker_timeout", _positive(self.worker_timeout, "worker_timeout"))
        bp = self.batch_points
        if isinstance(bp, bool) or not isinstance(bp, numbers.Integral) or bp < 1:
            raise ValueError(f"batch_points: must be an integer >= 1, got {bp!r}")
        object.__setattr__(self, "batch_points", int(bp))


def coerce_options(value: Any, cls: type[T], name: str) -> T:
    """``value`` as an instance of ``cls``: itself, ``cls(**value)`` for a mapping, ``cls()`` for ``None``."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        allowed = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ValueError(f"{name}: unknown option(s) {', '.join(map(repr, unknown))} "
                             f"(allowed: {', '.join(sorted(allowed))})")
        return cls(**value)
    raise ValueError(f"{name}: expected {cls.__name__}, a mapping of its fields or None, got {type(value).__name__}")


def options_from_table(cls: type[T], table: Any, where: str) -> T:
    """Build ``cls`` from a study-file table, with one-line errors ``"<where>.<key>: ..."``."""
    if table is None:
        return cls()
    if not isinstance(table, Mapping):
        raise ValueError(f"{where}: must be a table, got {type(table).__name__}")
    allowed = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    for key in table:
        if key not in allowed:
            raise ValueError(f"unknown key '{where}.{key}' (allowed: {', '.join(sorted(allowed))})")
    try:
        return cls(**table)
    except ValueError as exc:
        text = str(exc)
        field, _, rest = text.partition(": ")
        if field in allowed:
            raise ValueError(f"key '{where}.{field}': {rest}") from None
        raise ValueError(f"{where}: {text}") from None
