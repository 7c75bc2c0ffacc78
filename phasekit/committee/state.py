"""Order parameters of a committee machine: ``State`` and the layout of its state vector.

State vector order everywhere (eigenvectors included): R row-major, then the
upper triangle of Q row-major, then -- when the model trains its second
layer -- the student's second-layer weights ``v``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PSD_TOL", "State", "vector_labels"]


# Relative tolerance for "inside the positive-semidefinite cone".
PSD_TOL = 1e-9


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _real(x: Any, name: str, what: str) -> float:
    """``x`` as a float if it is a real number (not a bool or a string), else ``ValueError``."""
    if isinstance(x, np.ndarray) and x.ndim == 0:
        x = x[()]
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (numbers.Real, np.integer, np.floating)):
        raise ValueError(f"{name}: {what} must be a real number, got {type(x).__name__} {x!r}")
    return float(x)


def _numeric_matrix(x: Any, name: str) -> np.ndarray:
    """``x`` as a float array, refusing strings, booleans, complex numbers and objects."""
    a = np.asarray(x)
    if a.dtype.kind not in "iuf":
        raise ValueError(f"{name}: must hold real numbers, got an array of dtype {a.dtype}")
    return np.array(a, dtype=float)


@dataclass(frozen=True, eq=False)
class State:
    """Order parameters of a committee machine.

    Parameters
    ----------
    R : array_like, shape (K, M)
        Student-teacher overlaps ``R_in = J_i . B_n``.
    Q : array_like, shape (K, K)
        Student-student overlaps ``Q_ik = J_i . J_k`` (symmetric).
    v : array_like, shape (K,), optional
        The student's second-layer weights.  Part of the state (and required)
        when the model trains its second layer; otherwise the model's fixed
        weights are used and ``v``, if given, must equal them.
    """

    R: np.ndarray
    Q: np.ndarray
    v: np.ndarray | None = None

    def __post_init__(self) -> None:
        R = np.array(_numeric_matrix(self.R, "R"), ndmin=2)
        Q = np.array(_numeric_matrix(self.Q, "Q"), ndmin=2)
        if R.ndim != 2:
            raise ValueError(f"R: must be a (K, M) matrix, got shape {R.shape}")
        if Q.shape != (R.shape[0], R.shape[0]):
            raise ValueError(f"Q: must be a ({R.shape[0]}, {R.shape[0]}) matrix to match R, got {Q.shape}")
        for name, a in (("R", R), ("Q", Q)):
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{name}: entries must be finite")
        if not np.allclose(Q, Q.T, rtol=0, atol=1e-12 * max(1.0, float(np.abs(Q).max(initial=0)))):
            raise ValueError("Q: must be symmetric")
        R.setflags(write=False)
        Q = 0.5 * (Q + Q.T)
        Q.setflags(write=False)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "Q", Q)
        if self.v is not None:
            v = np.array(_numeric_matrix(self.v, "v"), ndmin=1)
            if v.shape != (R.shape[0],):
                raise ValueError(f"v: second-layer weights must be a vector of length K = {R.shape[0]}, "
                                 f"got shape {v.shape}")
            if not np.all(np.isfinite(v)):
                raise ValueError("v: entries must be finite")
            v.setflags(write=False)
            object.__setattr__(self, "v", v)

    @property
    def K(self) -> int:
        return self.R.shape[0]

    @property
    def M(self) -> int:
        return self.R.shape[1]

    def to_vector(self) -> np.ndarray:
        """State vector ``(R row-major, upper triangle of Q row-major[, v])``.

        Length ``KM + K(K+1)/2``, plus ``K`` when ``v`` is set.
        """
        iu = np.triu_indices(self.K)
        parts = [self.R.ravel(), self.Q[iu]]
        if self.v is not None:
            parts.append(self.v)
        return np.concatenate(parts)

    @classmethod
    def from_vector(cls, v: np.ndarray, K: int, M: int) -> "State":
        """Inverse of :meth:`to_vector`; a vector ``K`` entries longer carries the second-layer weights."""
        v = np.asarray(v, dtype=float)
        n = K * M + K * (K + 1) // 2
        if v.shape not in ((n,), (n + K,)):
            raise ValueError(f"v: expected a vector of length {n} (or {n + K} with second-layer weights) for "
                             f"K={K}, M={M}, got shape {v.shape}")
        R = v[: K * M].reshape(K, M)
        Q = np.zeros((K, K))
        iu = np.triu_indices(K)
        Q[iu] = v[K * M:n]
        Q = Q + np.triu(Q, 1).T
        return cls(R, Q, v[n:] if v.size > n else None)

    def __repr__(self) -> str:
        extra = "" if self.v is None else f", v={self.v.tolist()}"
        return f"State(R={self.R.tolist()}, Q={self.Q.tolist()}{extra})"


def vector_labels(K: int, M: int, second_layer: bool = False) -> list[str]:
    """Names of the state-vector components, e.g. ``R12``, ``Q11`` or ``v1`` (1-based).

    ``second_layer``: append the second-layer weights ``v1 .. vK`` (a model that trains them).
    """
    labels = [f"R{i + 1},{n + 1}" if max(K, M) > 9 else f"R{i + 1}{n + 1}" for i in range(K) for n in range(M)]
    for i, k in zip(*np.triu_indices(K)):
        labels.append(f"Q{i + 1},{k + 1}" if K > 9 else f"Q{i + 1}{k + 1}")
    if second_layer:
        labels += [f"v{i + 1}" for i in range(K)]
    return labels
