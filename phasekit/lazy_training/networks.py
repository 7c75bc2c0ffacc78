"""Teacher and student two-layer networks of the lazy-training study."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ['Student', 'Teacher', 'init_student', 'make_teacher']


Array = np.ndarray


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_positive(value: Any, name: str) -> float:
    try:
        ok = math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name}: must be a finite number > 0, got {value!r}")
    return float(value)


@dataclass(frozen=True, eq=False)
class Teacher:
    """A ReLU teacher ``f*(x) = sum_j s_j relu(b_j . x)``.

    Parameters
    ----------
    weights : ndarray, shape (m0, d)
        Unit-norm first-layer rows ``b_j``.
    signs : ndarray, shape (m0,)
        Output weights ``s_j`` (+-1 in the standard set-up).
    """

    weights: Array
    signs: Array

    def __post_init__(self) -> None:
        B = np.array(self.weights, dtype=float)
        s = np.array(self.signs, dtype=float)
        if B.ndim != 2 or B.shape[0] < 1 or B.shape[1] < 1:
            raise ValueError(f"weights: need shape (m0 >= 1, d >= 1), got {B.shape}")
        if s.shape != (B.shape[0],):
            raise ValueError(f"signs: need shape ({B.shape[0]},), got {s.shape}")
        B.setflags(write=False)
        s.setflags(write=False)
        object.__setattr__(self, "weights", B)
        object.__setattr__(self, "signs", s)

    m0 = property(lambda self: self.weights.shape[0], doc="Teacher units.")
    d = property(lambda self: self.weights.shape[1], doc="Input dimension.")

    def output(self, x: Array) -> Array:
        """``f*(x)`` for inputs ``x`` of shape (n, d); returns shape (n,)."""
        return np.maximum(x @ self.weights.T, 0.0) @ self.signs


def make_teacher(d: int, m0: int, seed: int = 0, signs: Sequence[float] | None = None) -> Teacher:
    """Random teacher with ``m0`` unit-norm ReLU units in ``d`` dimensions.

    Parameters
    ----------
    d : int
        Input dimension, ``>= 1``.
    m0 : int
        Teacher units, ``>= 1``.
    seed : int
        Seed of the directions ``b_j`` (uniform on the sphere).
    signs : sequence of float, optional
        Output weights; default alternating ``+1, -1, +1, ...``.
    """
    d = _check_int(d, "d", 1)
    m0 = _check_int(m0, "m0", 1)
    rng = np.random.default_rng([int(seed), 0x7EAC])
    B = rng.standard_normal((m0, d))
    B /= np.linalg.norm(B, axis=1, keepdims=True)
    s = np.array([1.0 if j % 2 == 0 else -1.0 for j in range(m0)]) if signs is None else signs
    return Teacher(B, np.asarray(s, dtype=float))


@dataclass(frozen=True, eq=False)
class Student:
    """Student weights: first layer ``a`` of shape (m, d), output weights ``c`` of shape (m,)."""

    a: Array
    c: Array

    def __post_init__(self) -> None:
        a = np.asarray(self.a, dtype=float)
        c = np.asarray(self.c, dtype=float)
        if a.ndim != 2 or c.shape != (a.shape[0],):
            raise ValueError(f"a, c: need shapes (m, d) and (m,), got {a.shape} and {c.shape}")
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "c", c)

    m = property(lambda self: self.a.shape[0], doc="Hidden units.")
    d = property(lambda self: self.a.shape[1], doc="Input dimension.")

    def flat(self) -> Array:
        """All weights as one vector ``(a.ravel(), c)`` of length ``m (d + 1)``."""
        return np.concatenate([self.a.ravel(), self.c])

    @classmethod
    def from_flat(cls, w: Array, m: int, d: int) -> "Student":
        """Inverse of :meth:`flat`."""
        w = np.asarray(w, dtype=float)
        return cls(w[: m * d].reshape(m, d), w[m * d:])


def init_student(m: int, d: int, tau: float, seed: int = 0, symmetric: bool = True) -> Student:
    """Random student at initial scale ``tau``.

    Parameters
    ----------
    m : int
        Hidden units, ``>= 1`` (even when ``symmetric``).
    d : int
        Input dimension, ``>= 1``.
    tau : float
        Initial scale, ``> 0``: ``a_i ~ N(0, tau^2 I_d / d)``, ``c_i ~ N(0, tau^2)``.
    seed : int
        Random seed.
    symmetric : bool
        Units in pairs ``(a, c), (a, -c)`` so that the output is exactly 0 at start.

    Returns
    -------
    Student
        For symmetric inits the twins are units ``2p`` and ``2p + 1``.
    """
    m = _check_int(m, "m", 1)
    d = _check_int(d, "d", 1)
    tau = _check_positive(tau, "tau")
    if symmetric and m % 2:
        raise ValueError(f"m: the symmetrised initialisation needs an even number of units, got {m}")
    rng = np.random.default_rng([int(seed), 0x57D])
    n = m // 2 if symmetric else m
    a = rng.standard_normal((n, d)) * (tau / math.sqrt(d))
    c = rng.standard_normal(n) * tau
    if symmetric:
        a = np.repeat(a, 2, axis=0)
        c = np.stack([c, -c], axis=1).ravel()
    return Student(a, c)
