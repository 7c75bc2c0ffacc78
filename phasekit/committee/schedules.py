"""Learning-rate schedules: ``eta(alpha) = eta * f(alpha)`` with a dimensionless factor ``f``, ``f(0) = 1``.

A schedule multiplies the model's learning rate ``eta`` (the rate at
``alpha = 0``) and, when the second layer is trained, its learning rate too,
so the ratio of the two stays fixed.  Named schedules:

=======================  ===============================================  ==========================
kind                     ``f(alpha)``                                     parameters
=======================  ===============================================  ==========================
``constant``             ``1``                                            --
``power_law``            ``(1 + alpha / alpha0)^(-p)``                    ``alpha0 > 0``, ``p >= 0``
``piecewise_constant``   ``1`` before ``boundaries[0]``, then             increasing ``boundaries > 0``,
                         ``factors[j]`` from ``boundaries[j]`` on         ``factors > 0`` (same length)
=======================  ===============================================  ==========================

``power_law`` with ``p = 1`` is the ``1/alpha`` annealing of on-line
learning with noise: ``eta(alpha) = eta alpha0 / (alpha0 + alpha)``.  Any
callable ``f(alpha) -> factor`` (vectorised or not) is a schedule too
(:class:`FunctionSchedule`); it cannot be rebuilt from a dataset.

Each schedule gives the factor, its integral ``F(alpha) = int_0^alpha f``
(the natural time ``eta F(alpha)`` of the first-order flow, closed form for
the named ones) and a JSON-ready description (:meth:`Schedule.to_dict`, the
inverse :func:`schedule_from_spec` also takes a study file's table or a name).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

__all__ = ["Schedule", "ConstantSchedule", "PowerLawSchedule", "PiecewiseConstantSchedule", "FunctionSchedule",
           "SCHEDULE_KINDS", "schedule_from_spec"]


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"eta_schedule: {name} must be a finite number, got {value!r}")
    return float(value)


class Schedule:
    """Base of the learning-rate schedules: ``factor(alpha)``, ``integral(alpha)``, ``to_dict()``."""

    kind: ClassVar[str] = ""

    def factor(self, alpha: Any) -> np.ndarray:
        """``f(alpha)``, same shape as ``alpha`` (a float for a scalar)."""
        raise NotImplementedError

    def integral(self, alpha: Any) -> np.ndarray:
        """``F(alpha) = int_0^alpha f(a) da`` for ``alpha >= 0``, same shape as ``alpha``."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (``kind`` and the parameters)."""
        raise NotImplementedError

    def __call__(self, alpha: Any) -> np.ndarray:
        return self.factor(alpha)


@dataclass(frozen=True)
class ConstantSchedule(Schedule):
    """``f(alpha) = 1``: the constant learning rate (the same flow as no schedule)."""

    kind: ClassVar[str] = "constant"

    def factor(self, alpha: Any) -> np.ndarray:
        a = np.asarray(alpha, dtype=float)
        return np.ones_like(a) if a.ndim else 1.0

    def integral(self, alpha: Any) -> np.ndarray:
        a = np.asarray(alpha, dtype=float)
        return a.copy() if a.ndim else float(a)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}


@dataclass(frozen=True)
class PowerLawSchedule(Schedule):
    """``f(alpha) = (1 + alpha / alpha0)^(-p)``, i.e. ``eta(alpha) = eta (1 + alpha / alpha0)^(-p)``.

    Parameters
    ----------
    alpha0 : float
        Time scale of the decay, ``> 0`` (units of alpha).
    p : float
        Exponent, ``>= 0`` (``p = 1``: the ``1/alpha`` annealing).
    """

    alpha0: float
    p: float = 1.0

    kind: ClassVar[str] = "power_law"

    def __post_init__(self) -> None:
        a0, p = _number(self.alpha0, "alpha0"), _number(self.p, "p")
        if a0 <= 0:
            raise ValueError(f"eta_schedule: alpha0 must be > 0, got {self.alpha0!r}")
        if p < 0:
            raise ValueError(f"eta_schedule: p must be >= 0, got {self.p!r}")
        object.__setattr__(self, "alpha0", a0)
        object.__setattr__(self, "p", p)

    def factor(self, alpha: Any) -> np.ndarray:
        return (1.0 + np.asarray(alpha, dtype=float) / self.alpha0) ** (-self.p)

    def integral(self, alpha: Any) -> np.ndarray:
        u = np.log1p(np.asarray(alpha, dtype=float) / self.alpha0)
        if self.p == 1.0:
            return self.alpha0 * u
        # alpha0 ((1 + a/alpha0)^(1-p) - 1) / (1 - p), written without cancellation near p = 1
        return self.alpha0 * u * _exprel((1.0 - self.p) * u)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "alpha0": self.alpha0, "p": self.p}


def _exprel(x: np.ndarray) -> np.ndarray:
    """``(exp(x) - 1) / x`` (1 at 0)."""
    x = np.asarray(x, dtype=float)
    small = np.abs(x) < 1e-8
    safe = np.where(small, 1.0, x)
    return np.where(small, 1.0 + 0.5 * x, np.expm1(safe) / safe)


@dataclass(frozen=True)
class PiecewiseConstantSchedule(Schedule):
    """``f = 1`` before ``boundaries[0]``, ``factors[j]`` on ``[boundaries[j], boundaries[j+1])``.

    Parameters
    ----------
    boundaries : sequence of float
        Strictly increasing switching times, ``> 0`` (units of alpha).
    factors : sequence of float
        Factors from each boundary on, ``> 0``, as many as boundaries.
    """

    boundaries: tuple[float, ...]
    factors: tuple[float, ...]

    kind: ClassVar[str] = "piecewise_constant"

    def __post_init__(self) -> None:
        b = tuple(_number(x, "boundaries entries") for x in _sequence(self.boundaries, "boundaries"))
        f = tuple(_number(x, "factors entries") for x in _sequence(self.factors, "factors"))
        if len(b) == 0 or len(b) != len(f):
            raise ValueError(f"eta_schedule: need as many factors as boundaries (at least one), got "
                             f"{len(b)} boundaries and {len(f)} factors")
        if b[0] <= 0 or any(y <= x for x, y in zip(b, b[1:])):
            raise ValueError(f"eta_schedule: boundaries must be > 0 and strictly increasing, got {list(b)}")
        if any(x <= 0 for x in f):
            raise ValueError(f"eta_schedule: factors must be > 0, got {list(f)}")
        object.__setattr__(self, "boundaries", b)
        object.__setattr__(self, "factors", f)

    def factor(self, alpha: Any) -> np.ndarray:
        a = np.asarray(alpha, dtype=float)
        values = np.r_[1.0, self.factors]
        out = values[np.searchsorted(np.asarray(self.boundaries), a, side="right")]
        return out if a.ndim else float(out)

    def integral(self, alpha: Any) -> np.ndarray:
        a = np.asarray(alpha, dtype=float)
        edges = np.r_[0.0, self.boundaries]
        values = np.r_[1.0, self.factors]
        # sum over segments of f_j * (length of [edge_j, edge_j+1) below alpha)
        upper = np.r_[self.boundaries, np.inf]
        covered = np.clip(a[..., None] - edges, 0.0, upper - edges)
        out = covered @ values
        return out if a.ndim else float(out)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "boundaries": list(self.boundaries), "factors": list(self.factors)}


def _sequence(value: Any, name: str) -> Sequence[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise ValueError(f"eta_schedule: {name} must be a list of numbers, got {value!r}")
    return list(value)


class FunctionSchedule(Schedule):
    """A callable factor ``f(alpha)``: positive, finite and ``f(0) = 1`` (checked at a few probe times).

    The integral is adaptive quadrature; the description records the
    function's name only, so a model with it cannot be rebuilt from a dataset.
    """

    kind: ClassVar[str] = "callable"

    def __init__(self, function: Callable[[Any], Any], name: str | None = None) -> None:
        if not callable(function):
            raise ValueError(f"eta_schedule: expected a callable, got {type(function).__name__}")
        self.function = function
        self.name = name or getattr(function, "__qualname__", None) or repr(function)
        for a in (0.0, 1.0, 10.0, 1e3):
            f = self._one(a)
            if not (math.isfinite(f) and f > 0):
                raise ValueError(f"eta_schedule: the factor must be finite and > 0, got f({a:g}) = {f!r}")
        f0 = self._one(0.0)
        if abs(f0 - 1.0) > 1e-12:
            raise ValueError(f"eta_schedule: a schedule multiplies eta, so it must be 1 at alpha = 0, got "
                             f"f(0) = {f0!r}; put the initial learning rate into eta")

    def _one(self, a: float) -> float:
        try:
            return float(np.asarray(self.function(a), dtype=float))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"eta_schedule: the callable must map alpha to a number ({exc})") from None

    def factor(self, alpha: Any) -> np.ndarray:
        a = np.asarray(alpha, dtype=float)
        if a.ndim == 0:
            return self._one(float(a))
        try:
            out = np.asarray(self.function(a), dtype=float)
            if out.shape == a.shape:
                return out
        except (TypeError, ValueError):
            pass
        return np.vectorize(self._one, otypes=[float])(a)

    def integral(self, alpha: Any) -> np.ndarray:
        from scipy.integrate import quad

        a = np.asarray(alpha, dtype=float)
        flat = a.ravel()
        order = np.argsort(flat)
        out = np.empty_like(flat)
        total, prev = 0.0, 0.0
        for j in order:  # cumulative over sorted times: each piece integrated once
            total += quad(self._one, prev, flat[j], limit=200)[0] if flat[j] > prev else 0.0
            prev = max(prev, flat[j])
            out[j] = total
        return out.reshape(a.shape) if a.ndim else float(out[0])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": str(self.name)}

    def __repr__(self) -> str:
        return f"FunctionSchedule({self.name})"


#: The schedule classes by their ``kind`` (the keys of a schedule specification).
SCHEDULE_KINDS: dict[str, type[Schedule]] = {
    ConstantSchedule.kind: ConstantSchedule,
    PowerLawSchedule.kind: PowerLawSchedule,
    PiecewiseConstantSchedule.kind: PiecewiseConstantSchedule,
}


def schedule_from_spec(spec: Any) -> Schedule | None:
    """A :class:`Schedule` from ``None``, a schedule, a callable, a kind name or a mapping ``{"kind": ..., ...}``.

    Raises ``ValueError`` (prefixed ``eta_schedule:``) naming the allowed kinds
    or the bad parameter.
    """
    if spec is None or isinstance(spec, Schedule):
        return spec
    if isinstance(spec, str):
        spec = {"kind": spec}
    if isinstance(spec, Mapping):
        params = dict(spec)
        kind = params.pop("kind", None)
        if kind == FunctionSchedule.kind:
            raise ValueError(f"eta_schedule: the callable {params.get('name', '')!r} cannot be rebuilt from its "
                             "description; pass the function itself")
        if kind not in SCHEDULE_KINDS:
            raise ValueError(f"eta_schedule: kind must be one of {', '.join(SCHEDULE_KINDS)}, got {kind!r}")
        cls = SCHEDULE_KINDS[kind]
        allowed = {"power_law": ("alpha0", "p"), "piecewise_constant": ("boundaries", "factors")}.get(kind, ())
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ValueError(f"eta_schedule: unknown parameter(s) {unknown} for kind {kind!r} "
                             f"(allowed: {', '.join(allowed) or 'none'})")
        missing = [k for k in allowed if k not in params and not (kind == "power_law" and k == "p")]
        if missing:
            raise ValueError(f"eta_schedule: kind {kind!r} needs {', '.join(missing)}")
        return cls(**params)
    if callable(spec):
        return FunctionSchedule(spec)
    raise ValueError(f"eta_schedule: expected None, a kind name, a table with 'kind', a Schedule or a callable, "
                     f"got {type(spec).__name__} {spec!r}")
