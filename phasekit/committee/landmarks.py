"""The landmark fixed points: the perfect solution and the symmetric plateau.

``find_fixed_point`` polishes any guess by Newton's method in the cone and
linearises the result; ``perfect_solution`` is ``R = Q = T`` (K = M);
``symmetric_plateau`` solves the reduced site-symmetric equations for
``R_in = R``, ``Q_ii = Q``, ``Q_ik = C`` and linearises in the full space.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..core.ode import Event, solve_flow
from ..core.options import NewtonOptions, SolverOptions, coerce_options
from ..core.results import FixedPoint
from .cone import _margin, _pull_inside
from .jacobians import _as_vector
from .linearisation import CommitteeFixedPoint, _failed_point, _linearise_result, linearise
from .model import Committee, State
from .newton import _newton
from .symmetry import _symmetric_basis

__all__ = ['find_fixed_point', 'perfect_solution', 'symmetric_plateau']


def _reduced(model: Any) -> bool:
    """Whether ``model`` is a reduced model (:meth:`Committee.restrict`), which has its own fixed-point methods."""
    return not isinstance(model, Committee) and getattr(model, "subspace", None) is not None


def find_fixed_point(model: Committee, guess: State | np.ndarray, *,
                     newton: NewtonOptions | Mapping[str, Any] | None = None, label: str = "",
                     scheme: str = "auto") -> CommitteeFixedPoint:
    """Newton-type root finding of ``model.rhs`` that stays inside the PSD cone.

    Parameters
    ----------
    model : Committee
    guess : State or ndarray, shape (n_state,)
        Starting point.  A guess outside the cone is first moved inside along
        the segment to an interior point.
    newton : NewtonOptions, mapping or None
        Newton's tolerance ``tol`` on ``max |d state / d alpha|`` (units
        1/alpha) and ``max_iter`` (default :class:`~phasekit.core.options.NewtonOptions`).
    label : str
        Stored in the result; ``"symmetric_plateau"`` adds the escape mode.
    scheme : {"auto", "central", "cone"}
        Jacobian scheme of the final linearisation (see
        :func:`phasekit.committee.jacobians.jacobian`).

    Returns
    -------
    CommitteeFixedPoint
        Always inside the cone (boundary included).  ``status`` is
        ``"converged"``, or ``"failed"`` (``kind == "unclassified"``) when the
        residual stayed above ``tol``.
    """
    opts = coerce_options(newton, NewtonOptions, "newton")
    if _reduced(model):
        return model.find_fixed_point(guess, tol=opts.tol, max_iter=opts.max_iter, label=label)
    v0 = _as_vector(model, guess, "guess")
    try:
        res = _newton(model, v0, tol=opts.tol, max_iter=opts.max_iter)
    except np.linalg.LinAlgError as exc:
        return _failed_point(model, v0, label, f"the Newton iteration failed: {exc}")
    return _linearise_result(model, res, v0, label, scheme)


def _perfect_vector(model: Committee) -> np.ndarray:
    """``R = Q = T`` (and ``v = w`` when the second layer is trained) as a state vector (K = M)."""
    return State(model.T, model.T, model.teacher_weights if model.train_second_layer else None).to_vector()


def perfect_solution(model: Committee, *, newton: NewtonOptions | Mapping[str, Any] | None = None,
                     scheme: str = "auto") -> CommitteeFixedPoint:
    """The perfect solution ``R = Q = T`` (K = M; ``v = w`` when trained), linearised from inside the cone.

    With output noise and the ``eta^2`` term, weight decay, a drifting
    teacher, or fixed student weights other than the teacher's, the perfect
    solution is no longer a fixed point; the fixed point of that branch (the
    steady state) is then found by Newton from ``R = Q = T`` (``newton`` as
    for :func:`find_fixed_point`; its ``tol`` also decides whether
    ``R = Q = T`` is already a fixed point).

    Returns
    -------
    CommitteeFixedPoint
        ``label == "perfect"``; status ``"ok"`` for the exact fixed point
        ``R = Q = T``, else that of the Newton search.  For a reduced model
        (:meth:`Committee.restrict`) a :class:`~phasekit.core.results.FixedPoint`
        in reduced coordinates, linearised inside the subspace.
    """
    if _reduced(model):
        return model.perfect_solution()
    if not isinstance(model, Committee):
        raise ValueError(f"model: expected a phasekit.Committee, got {type(model).__name__}")
    if model.K != model.M:
        raise ValueError(f"model: the perfect solution needs K == M, got K={model.K}, M={model.M}")
    model.require_autonomous("the perfect solution's fixed-point analysis")
    opts = coerce_options(newton, NewtonOptions, "newton")
    v = _perfect_vector(model)
    f = model.rhs_vector(v)
    res = float(np.abs(f).max())
    if res <= opts.tol:
        try:
            return linearise(model, v, status="ok", label="perfect", scheme=scheme,
                             message="exact fixed point R = Q = T")
        except np.linalg.LinAlgError as exc:
            return _failed_point(model, v, "perfect", f"the linearisation failed: {exc}")
    return find_fixed_point(model, v, newton=opts, label="perfect", scheme=scheme)


def _check_symmetric_teacher(model: Committee) -> None:
    T = model.T
    M = model.M
    if M > 1:
        off = T[~np.eye(M, dtype=bool)]
        if not (np.allclose(np.diag(T), T[0, 0], rtol=0, atol=1e-12) and np.allclose(off, off[0], rtol=0, atol=1e-12)):
            raise ValueError("model: the site-symmetric ansatz needs T = a I + b (all ones), e.g. the identity")
    if np.any(model.teacher_weights != model.teacher_weights[0]):
        raise ValueError("model: the site-symmetric ansatz needs equal teacher weights, got "
                         f"teacher_weights = {model.teacher_weights.tolist()}")
    if not model.train_second_layer and np.any(model.student_weights != model.student_weights[0]):
        raise ValueError("model: the site-symmetric ansatz needs equal fixed student weights, got "
                         f"student_weights = {model.student_weights.tolist()}")


def symmetric_plateau(model: Committee, guess: State | Sequence[float] | None = None, *,
                      newton: NewtonOptions | Mapping[str, Any] | None = None, scheme: str = "auto",
                      alpha_flow: float = 400.0) -> CommitteeFixedPoint:
    """The symmetric (unspecialised) plateau and its escape mode.

    Solves the reduced site-symmetric equations for ``R_in = R``, ``Q_ii = Q``,
    ``Q_ik = C`` (unknowns (R, Q, C)) -- the subspace is invariant for any K,
    M when T is invariant under teacher permutations -- then embeds the
    solution and linearises in the full space.

    A reduced model (:meth:`Committee.restrict`) returns its own plateau
    (:meth:`~phasekit.committee.subspaces.SiteSymmetricCommittee.symmetric_plateau`,
    reduced coordinates, ``extra["escape_eigenvalue"]``); ``guess`` is then ``(R, Q, C[, v])``.

    Parameters
    ----------
    model : Committee
        ``K >= 2`` (one student has no symmetry to break); T must be
        ``a I + b (ones)`` (default identity).
    guess : State or (R, Q, C) (``(R, Q, C, v)`` with a trained second layer), optional
        Starting point; default: the end of the reduced flow from a small
        symmetric state (``R = 0.01``, ``Q = 0.5``, ``C = 0``, ``v`` the mean
        of the initial student weights), integrated up to
        ``eta alpha = alpha_flow`` (first-order units).
    newton : NewtonOptions, mapping or None
        Newton's residual tolerance ``tol`` (units 1/alpha) and ``max_iter``.
    scheme : {"auto", "central", "cone"}
        Jacobian scheme of the linearisation.

    Returns
    -------
    CommitteeFixedPoint
        ``label == "symmetric_plateau"``; ``escape_eigenvalue`` and
        ``escape_vector`` set.  When the search fails (e.g. the reduced flow
        diverges above the critical learning rate) ``status == "failed"``,
        ``kind == "unclassified"`` and ``message`` says why.

    Raises
    ------
    ValueError
        For ``K < 2`` or a teacher without permutation symmetry.
    """
    if _reduced(model):
        return model.symmetric_plateau(guess, alpha_flow=alpha_flow)
    if not isinstance(model, Committee):
        raise ValueError(f"model: expected a phasekit.Committee, got {type(model).__name__}")
    if model.K < 2:
        raise ValueError(
            f"model: the symmetric plateau needs K >= 2 student units, got K = {model.K}: a single student has "
            "no permutation symmetry to break (for M = 1 the site-symmetric subspace is the whole state space "
            "and its fixed point is the perfect solution); use find_fixed_point for K = 1")
    _check_symmetric_teacher(model)
    model.require_autonomous("the symmetric plateau's fixed-point analysis")
    opts = coerce_options(newton, NewtonOptions, "newton")
    K, M = model.K, model.M
    P = _symmetric_basis(K, M, model.train_second_layer)
    Pn = P / np.linalg.norm(P, axis=0)
    if guess is None:
        z0 = np.array([0.01, 0.5, 0.0] + ([float(np.mean(model.student_weights))] if model.train_second_layer else []))
        v0 = P @ z0
        v0 = _reduced_flow(model, Pn, v0, alpha_flow / model.eta)
    elif isinstance(guess, (State, FixedPoint)):
        v0 = _as_vector(model, guess, "guess")
        v0 = Pn @ (Pn.T @ v0)
    else:
        z0 = np.asarray(guess, dtype=float)
        if z0.shape != (P.shape[1],):
            raise ValueError(f"guess: expected {P.shape[1]} numbers "
                             f"({'R, Q, C, v' if model.train_second_layer else 'R, Q, C'}), got {z0.shape}")
        v0 = P @ z0
    if not np.all(np.isfinite(v0)):
        raise ValueError("guess: must be finite")
    try:
        res = _newton(model, v0, basis=Pn, tol=opts.tol, max_iter=opts.max_iter)
        if not res.converged and guess is None:
            # a slow direction inside the symmetric subspace: flow longer, then polish
            v1 = _reduced_flow(model, Pn, res.v if np.all(np.isfinite(res.v)) else v0, 10 * alpha_flow / model.eta)
            res = _newton(model, v1, basis=Pn, tol=opts.tol, max_iter=opts.max_iter)
    except np.linalg.LinAlgError as exc:
        return _failed_point(model, v0, "symmetric_plateau", f"the Newton iteration failed: {exc}")
    return _linearise_result(model, res, v0, "symmetric_plateau", scheme)


def _reduced_flow(model: Committee, Pn: np.ndarray, v0: np.ndarray, alpha: float) -> np.ndarray:
    """Integrate the flow restricted to span(Pn) from v0 (stays inside the cone).

    Stops where the state would leave the cone or the order parameters exceed
    ``1e3`` (a flow that diverges, e.g. above the critical learning rate);
    returns the last state inside the cone (the start if the integration fails).
    """
    v_start = _pull_inside(model, v0)
    z0 = Pn.T @ v_start

    def rhs(_t: float, z: np.ndarray) -> np.ndarray:
        f = Pn.T @ model.rhs_vector(Pn @ z)
        return f if np.all(np.isfinite(f)) else np.zeros_like(f)

    # event functions stay finite (brentq locates them on the dense output)
    def leave(_t: float, z: np.ndarray) -> float:
        return max(float(_margin(model, Pn @ z)), -1.0) + 1e-12

    def diverge(_t: float, z: np.ndarray) -> float:
        big = float(np.abs(Pn @ z).max()) if np.all(np.isfinite(z)) else np.inf
        return 1.0 - min(big, 1e6) / 1e3

    events = [Event("cone_exit", leave, status="diverged"), Event("blow_up", diverge, status="diverged")]
    try:
        with np.errstate(all="ignore"):
            run = solve_flow(rhs, z0, (0.0, alpha), events=events,
                             options=SolverOptions(method="LSODA", rtol=1e-10, atol=1e-12))
    except (ValueError, RuntimeError, np.linalg.LinAlgError):
        return v_start
    for z in run.y[::-1]:
        if np.all(np.isfinite(z)) and _margin(model, Pn @ z) >= 0:
            return _pull_inside(model, Pn @ z)
    return v_start
