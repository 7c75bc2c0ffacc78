"""One status vocabulary, its encoding on disk, and the base of every result object.

Every computation in phasekit -- a trajectory, a grid point, a critical
learning rate, a crossing time, a fixed-point search -- ends in one of these
states:

===============  ==============================================================
status           meaning
===============  ==============================================================
``ok``           completed; its figures are valid
``converged``    completed by meeting its stopping criterion (a trajectory
                 reached ``stop_eg``, an iteration met its tolerance)
``not_reached``  completed, but what was sought does not happen in the range
                 searched (a crossing after the horizon, a stability boundary
                 beyond ``eta_max``); the figure is ``inf`` or a bound
``marginal``     completed, but degenerate: some directions are marginal and
                 the figure holds for the others (they are named)
``diverged``     the flow left the state space or blew up
``failed``       a solver or root finder failed; no figure
``missing``      not computed (yet)
===============  ==============================================================

The first four count as success.  On disk (netCDF) a status variable is an
``int8`` code with the CF attributes ``flag_values`` and ``flag_meanings``;
:func:`status_codes` and :func:`status_names` convert both ways and
:func:`status_attrs` gives the attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

__all__ = ["STATUS", "SUCCESS", "Result", "check_status", "status_attrs", "status_codes", "status_names"]

STATUS: tuple[str, ...] = ("ok", "converged", "not_reached", "marginal", "diverged", "failed", "missing")
SUCCESS: frozenset[str] = frozenset(STATUS[:4])

_CODE = {name: code for code, name in enumerate(STATUS)}


def check_status(status: Any, name: str = "status") -> str:
    """``status`` if it belongs to :data:`STATUS`, else a ``ValueError`` naming the allowed values."""
    if not isinstance(status, str) or status not in _CODE:
        raise ValueError(f"{name}: must be one of {', '.join(STATUS)}, got {status!r}")
    return status


def status_codes(statuses: Iterable[str] | np.ndarray) -> np.ndarray:
    """Integer codes (``int8``) of an array of status names; same shape."""
    arr = np.asarray(statuses, dtype=object)
    flat = [_CODE[check_status(s)] for s in arr.ravel()]
    return np.array(flat, dtype=np.int8).reshape(arr.shape)


def status_names(codes: Iterable[int] | np.ndarray) -> np.ndarray:
    """Status names (object array) of integer codes; same shape."""
    arr = np.asarray(codes)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"codes: must be integers, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= len(STATUS)):
        raise ValueError(f"codes: must be in [0, {len(STATUS) - 1}], got values from {arr.min()} to {arr.max()}")
    return np.array(STATUS, dtype=object)[arr]


def status_attrs(long_name: str = "status") -> dict[str, Any]:
    """CF attributes of a status variable: ``long_name``, ``units``, ``flag_values``, ``flag_meanings``."""
    return {"long_name": long_name, "units": "1", "flag_values": np.arange(len(STATUS), dtype=np.int8),
            "flag_meanings": " ".join(STATUS)}


@dataclass(frozen=True, kw_only=True)
class Result:
    """Base of phasekit's result objects: a status from :data:`STATUS` and a one-line message.

    Attributes
    ----------
    status : str
        One of :data:`STATUS`.
    message : str
        What happened, in one line.
    """

    status: str = "ok"
    message: str = ""

    def __post_init__(self) -> None:
        check_status(self.status)
        if "\n" in self.message:
            object.__setattr__(self, "message", " ".join(self.message.split()))

    @property
    def success(self) -> bool:
        """Whether the computation completed (``ok``, ``converged``, ``not_reached`` or ``marginal``)."""
        return self.status in SUCCESS
