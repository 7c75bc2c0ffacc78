"""Initial states: small symmetry-breaking overlaps, or a plateau nudged along its escape direction."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .model import PSD_TOL, Committee, State, full_model_only, is_reduced
from .plateaus import _escape, _plateau_object

__all__ = ['initial_state']


#: The kinds of :func:`initial_state`.
INITIAL_KINDS = ("diagonal", "uniform", "plateau")


def _default_Q0(K: int) -> np.ndarray:
    # Evenly spaced student norms break the student permutation symmetry
    # without favouring any teacher; K = 1 takes the midpoint 0.25.
    return np.array([0.25]) if K == 1 else np.linspace(0.2, 0.3, K)


def _resolve_Q0(K: int, Q0: Any) -> np.ndarray:
    if Q0 is None:
        return _default_Q0(K)
    q = np.asarray(Q0, dtype=float)
    if q.ndim == 0:
        q = np.full(K, float(q))
    if q.shape != (K,):
        raise ValueError(f"Q0: expected a scalar or {K} diagonal entries, got shape {q.shape}")
    if not np.all(np.isfinite(q)) or np.any(q <= 0):
        raise ValueError(f"Q0: student norms must be finite and > 0, got {q.tolist()}")
    return q


def _into_cone(model: Committee, v: np.ndarray) -> State:
    """Nearest state (changing Q only) whose covariance is positive semidefinite.

    With ``R`` fixed the condition is ``S = Q - R T^-1 R^T >= 0``; negative
    eigenvalues of S are clipped.  At a plateau on the cone boundary (erf:
    coinciding students) an R displacement of size X needs a Q correction of
    order X^2, which this supplies.
    """
    s = State.from_vector(v, model.K, model.M)
    base = s.R @ np.linalg.solve(model.T, s.R.T)
    base = 0.5 * (base + base.T)
    w, V = np.linalg.eigh(s.Q - base)
    if w[0] >= 0:
        return s
    Q = base + (V * np.clip(w, 0.0, None)) @ V.T
    return State(s.R, 0.5 * (Q + Q.T), s.v)


def _reduced_start(model: Any, X: float, Q0: Any, kind: str) -> np.ndarray:
    """The diagonal start of a reduced model in its coordinates (see :func:`initial_state`)."""
    if kind != "diagonal":
        raise ValueError(f"kind: a reduced model ({model.subspace} subspace) starts from the diagonal start only "
                         f"(R = X, Q = Q0, the others 0), got {kind!r}; use model.parent for the others")
    q0 = np.unique(np.atleast_1d(np.asarray(0.25 if Q0 is None else Q0, dtype=float)))
    if q0.size != 1 or not (np.isfinite(q0[0]) and q0[0] > 0):
        raise ValueError(f"Q0: a start in the {model.subspace} subspace needs one student norm > 0, got {Q0!r}")
    common = {"R": X, "Q": float(q0[0]), "v": float(model.parent.student_weights[0])}
    return model.validate_state(np.array([common.get(name, 0.0) for name in model.labels]), "initial state")


def initial_state(
    model: Committee,
    X: float,
    *,
    Q0: float | Sequence[float] | None = None,
    kind: str = "diagonal",
    seed: int | None = None,
    plateau: Any = None,
) -> State:
    """A start at distance of order ``X`` from the symmetric subspace.

    Parameters
    ----------
    model : Committee
    X : float
        Symmetry-breaking amplitude, ``>= 0``; ``X = 0`` gives an exactly
        teacher-symmetric start (every ``R_in`` equal).
    Q0 : float or array_like, shape (K,), optional
        Student norms ``Q_ii`` (``> 0``); a scalar sets all of them.  Default:
        evenly spaced from 0.2 to 0.3 (0.25 for K = 1).  Not used by
        ``kind="plateau"``.
    kind : {"diagonal", "uniform", "plateau"}
        ``"diagonal"``: ``R_in = X delta_in``, ``Q = diag(Q0)``.
        ``"uniform"``: ``R_in`` and ``Q_ik`` (``i < k``) i.i.d. uniform on
        ``[0, X]``, ``Q_ii = Q0`` (the random draw is scaled by X, so one seed
        gives the same direction for every X).
        ``"plateau"``: the symmetric plateau displaced by ``X`` along its unit
        escape eigenvector (then Q adjusted at order ``X^2`` where the plateau
        lies on the boundary of the positive-semidefinite cone).
    seed : int, optional
        Seed of ``numpy.random.default_rng`` for ``kind="uniform"``.
    plateau : CommitteeFixedPoint, optional
        The plateau for ``kind="plateau"``; default
        :func:`phasekit.committee.landmarks.symmetric_plateau`.

    Returns
    -------
    State
        For a reduced model (:meth:`Committee.restrict`) its reduced vector:
        the diagonal start only (``R = X``, ``Q = Q0`` one norm, default 0.25,
        the common ``v`` the model's student weight, the other order
        parameters 0; e.g. ``(R, S, Q, C) = (X, 0, Q0, 0)``).

    Raises
    ------
    ValueError
        ``X`` negative or not finite, ``Q0`` not positive, unknown ``kind``,
        or the resulting covariance not positive semidefinite.
    """
    if not is_reduced(model):
        full_model_only(model, "initial_state")
    try:
        X = float(X)
    except (TypeError, ValueError):
        raise ValueError(f"X: must be a number >= 0, got {X!r}") from None
    if not (np.isfinite(X) and X >= 0):
        raise ValueError(f"X: symmetry-breaking amplitude must be finite and >= 0, got {X!r}")
    if kind not in INITIAL_KINDS:
        raise ValueError(f"kind: must be one of {INITIAL_KINDS}, got {kind!r}")
    if is_reduced(model):
        return _reduced_start(model, X, Q0, kind)
    K, M = model.K, model.M
    if kind == "plateau":
        if Q0 is not None:
            raise ValueError("Q0: not used by kind='plateau' (the plateau fixes Q)")
        fp = _plateau_object(model, plateau)
        _, u = _escape(fp)
        state = _into_cone(model, fp.state.to_vector() + X * u)
        what = "X"
    else:
        q0 = _resolve_Q0(K, Q0)
        if kind == "diagonal":
            R = X * np.eye(K, M)
            Q = np.diag(q0)
        else:
            rng = np.random.default_rng(seed)
            R = X * rng.uniform(size=(K, M))
            off = np.triu(X * rng.uniform(size=(K, K)), 1)
            Q = np.diag(q0) + off + off.T
        # a trained second layer starts from the model's student weights
        state = State(R, Q, model.student_weights if model.train_second_layer else None)
        what = "X, Q0"
    lam = model.min_eigenvalue(state)
    if lam < -PSD_TOL:
        raise ValueError(
            f"{what}: the initial covariance [[Q, R], [R^T, T]] is not positive semidefinite "
            f"(smallest eigenvalue / scale = {lam:.3g}); decrease X or increase Q0"
        )
    return state
