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

:class:`FixedPoint` is the result of every fixed-point search: a state
vector, its linearisation and its stability class (:data:`KINDS`), which is
kept apart from the status (a root finder ``converged`` or ``failed``).  The
physical systems extend it (the committee machine adds its model, order
parameters and escape mode).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np
import xarray as xr

from .datasets import provenance_attrs

__all__ = ["STATUS", "SUCCESS", "KINDS", "Result", "ScalarResult", "FixedPoint", "check_status", "classify",
           "status_attrs", "status_codes", "status_names"]

#: The status vocabulary of every result and dataset, in the order of its on-disk codes.
STATUS: tuple[str, ...] = ("ok", "converged", "not_reached", "marginal", "diverged", "failed", "missing")
#: The statuses that count as success (the first four of :data:`STATUS`).
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


@dataclass(frozen=True, kw_only=True)
class ScalarResult(Result):
    """A result that stands for one number: ``float(result)`` is its field named by ``value_field``."""

    value_field: ClassVar[str] = "value"

    def __float__(self) -> float:
        return float(getattr(self, self.value_field))


# Stability classes of a fixed point (see :func:`classify`).
KINDS: tuple[str, ...] = ("stable", "saddle", "unstable", "marginal", "unclassified")


def classify(eigenvalues: np.ndarray, tol: float) -> tuple[int, str]:
    """Number of unstable directions and the stability class of a spectrum.

    Eigenvalues with real part above ``tol`` are unstable.  ``"stable"``: every
    real part below ``-tol``; ``"marginal"``: none above ``tol`` but some
    within ``tol`` of zero; ``"unstable"``: every one above ``tol``;
    ``"saddle"``: some above, some not; ``"unclassified"``: a non-finite or
    empty spectrum.
    """
    re = np.real(np.asarray(eigenvalues))
    n_unstable = int(np.sum(re > tol))
    if re.size == 0 or not np.all(np.isfinite(re)):
        return n_unstable, "unclassified"
    if n_unstable == 0:
        return 0, "stable" if np.all(re < -tol) else "marginal"
    return n_unstable, "unstable" if n_unstable == re.size else "saddle"


def _nan_array(shape: Sequence[int]) -> np.ndarray:
    return np.full(tuple(shape), np.nan)


@dataclass(frozen=True, kw_only=True, eq=False)
class FixedPoint(Result):
    """A fixed point of a flow ``d x / d t = f(x)`` and its linearisation.

    ``status`` says whether the point was found (``"ok"`` for an exact root,
    ``"converged"`` when a root finder met its tolerance, ``"failed"``
    otherwise); ``kind`` is its stability class, ``"unclassified"`` unless
    the status is a success.

    Attributes
    ----------
    vector : ndarray, shape (n,)
        The state (in the system's component order, see ``labels``).
    eigenvalues : ndarray, shape (n,)
        Spectrum of the Jacobian of ``f``, sorted by decreasing real part
        (ties: decreasing imaginary part); real dtype when the spectrum is real.
        NaN when no linearisation could be formed.
    eigenvectors : ndarray, shape (n, n)
        Matching unit eigenvectors as columns (largest-magnitude component real
        and positive; a real orthonormal basis within a repeated real
        eigenvalue, :func:`phasekit.core.spectrum.eigen_decomposition`).
    jacobian : ndarray, shape (n, n)
        ``J[a, b] = d f_a / d x_b``.
    jacobian_error : float
        Estimated max error of a Jacobian entry (``nan`` if not estimated).
    jacobian_scheme : str
        How the Jacobian was obtained (e.g. ``"analytic"``, ``"central"``, ``"cone"``).
    residual : float
        ``max |f(x)|`` at ``vector``.
    kind : str
        One of :data:`KINDS` (:func:`classify` with tolerance ``eig_tol``).
    n_unstable : int
        Eigenvalues with real part above ``eig_tol``.
    eig_tol : float
        Threshold separating stable, marginal and unstable eigenvalues.
    labels : tuple of str
        Names of the state components (default ``x0, x1, ...``).
    iterations : int
        Root-finder iterations (0 for a closed form).
    extra : dict
        System-specific diagnostics.
    """

    vector: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    jacobian: np.ndarray
    jacobian_error: float = math.nan
    jacobian_scheme: str = ""
    residual: float = math.nan
    kind: str = "unclassified"
    n_unstable: int = 0
    eig_tol: float = 0.0
    labels: tuple[str, ...] = ()
    iterations: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    # units of the eigenvalues and the Jacobian in datasets (1 / the flow's time unit)
    rate_units: ClassVar[str] = "1/t"

    def __post_init__(self) -> None:
        super().__post_init__()
        vector = np.asarray(self.vector, dtype=float)
        object.__setattr__(self, "vector", vector)
        if self.kind not in KINDS:
            raise ValueError(f"kind: must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not self.success and self.kind != "unclassified":
            object.__setattr__(self, "kind", "unclassified")
        if not self.labels:
            object.__setattr__(self, "labels", tuple(f"x{j}" for j in range(vector.size)))
        elif len(self.labels) != vector.size:
            raise ValueError(f"labels: need {vector.size} component names, got {len(self.labels)}")

    @classmethod
    def unlinearised(cls, vector: np.ndarray, residual: float, **fields: Any) -> "FixedPoint":
        """A result without a linearisation (NaN spectrum and Jacobian), e.g. a failed search."""
        n = np.asarray(vector).size
        return cls(vector=vector, eigenvalues=_nan_array((n,)), eigenvectors=_nan_array((n, n)),
                   jacobian=_nan_array((n, n)), residual=residual, **fields)

    @property
    def state(self) -> Any:
        """The state (the vector here; systems return their own state type)."""
        return self.vector

    @property
    def stable(self) -> bool:
        """Found, and every eigenvalue has real part below ``-eig_tol``."""
        return self.success and self.kind == "stable"

    def __repr__(self) -> str:
        lead = self.eigenvalues[0] if len(self.eigenvalues) else float("nan")
        return (f"{type(self).__name__}({self.status}, {self.kind}, n_unstable={self.n_unstable}, "
                f"leading eigenvalue={lead:.6g}, residual={self.residual:.2g})")

    def to_dataset(self) -> xr.Dataset:
        """The fixed point as an ``xarray.Dataset``.

        Coordinates ``component`` (the labels), ``component_in`` (the same, for
        the Jacobian's columns) and ``mode`` (eigenvalue index, 0 = largest real
        part).  Variables ``state`` ``(component)``, ``eigenvalue_real``,
        ``eigenvalue_imag`` ``(mode)``, ``eigenvector_real``,
        ``eigenvector_imag`` ``(component, mode)``, ``jacobian``
        ``(component, component_in)``, scalars ``residual``, ``n_unstable``,
        ``stable`` (0/1) and ``status`` (code of :data:`STATUS`, CF flags);
        attributes ``kind``, ``message``, ``jacobian_scheme``,
        ``jacobian_error``, ``eig_tol``, ``iterations`` and provenance.
        """
        n = self.vector.size
        labels = list(self.labels)
        ev = np.asarray(self.eigenvalues, dtype=complex)
        vec = np.asarray(self.eigenvectors, dtype=complex)
        one = {"units": "1"}
        rate = {"units": self.rate_units}
        ds = xr.Dataset(
            {
                "state": ("component", self.vector, {"long_name": "state at the fixed point", **one}),
                "eigenvalue_real": ("mode", ev.real, {"long_name": "real part of Jacobian eigenvalue", **rate}),
                "eigenvalue_imag": ("mode", ev.imag, {"long_name": "imaginary part of Jacobian eigenvalue", **rate}),
                "eigenvector_real": (("component", "mode"), vec.real,
                                     {"long_name": "real part of Jacobian eigenvector", **one}),
                "eigenvector_imag": (("component", "mode"), vec.imag,
                                     {"long_name": "imaginary part of Jacobian eigenvector", **one}),
                "jacobian": (("component", "component_in"), np.asarray(self.jacobian, dtype=float),
                             {"long_name": "Jacobian of the flow", **rate}),
                "residual": ((), self.residual, {"long_name": "max |flow| at the fixed point", **rate}),
                "n_unstable": ((), self.n_unstable, {"long_name": "number of unstable directions", **one}),
                "stable": ((), int(self.stable), {"long_name": "linearly stable (1) or not (0)", **one}),
                "status": ((), status_codes([self.status])[0], status_attrs("fixed-point status")),
            },
            coords={
                "component": ("component", labels, {"long_name": "state component", **one}),
                "component_in": ("component_in", labels, {"long_name": "state component (derivative)", **one}),
                "mode": ("mode", np.arange(n), {"long_name": "eigenmode (0 = largest real part)", **one}),
            },
        )
        ds.attrs.update(provenance_attrs({"kind": self.kind, "status": self.status}))
        ds.attrs.update(kind=self.kind, message=self.message, jacobian_scheme=self.jacobian_scheme,
                        jacobian_error=float(self.jacobian_error), eig_tol=float(self.eig_tol),
                        iterations=int(self.iterations))
        return ds
