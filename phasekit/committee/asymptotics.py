"""The asymptotic error: integrate until the flow stops, then refine the end point as a fixed point."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np

from ..core.options import NewtonOptions, SolverOptions, coerce_options
from ..core.results import ScalarResult
from .model import Committee, State, full_model_only
from .plateaus import _run_until

__all__ = ['AsymptoticError', 'asymptotic_eg']


@dataclass(frozen=True, kw_only=True)
class AsymptoticError(ScalarResult):
    """Where the flow ends; ``float(result)`` is ``eg``.

    Attributes
    ----------
    eg : float
        eps_g at the fixed point (``converged``), at the last state
        (``not_reached``, or ``failed`` when the end point could not be refined)
        or ``nan`` (``diverged``, or ``failed`` when the solver failed).
    state : State or ndarray
        The fixed point, or the last valid state (for a reduced model its
        reduced vector, e.g. ``(R, S, Q, C[, v])``).
    fixed_point : CommitteeFixedPoint, FixedPoint or None
        Refined fixed point with its linearisation (``None`` unless converged;
        for a reduced model a :class:`~phasekit.core.results.FixedPoint` in
        reduced coordinates, linearised inside the subspace).
        A start on the stable manifold of a saddle (e.g. an exactly symmetric
        start) converges to that saddle: check ``fixed_point.stable``.
    alpha : float
        Where the integration stopped.
    saddles_passed : int
        Saddles (e.g. plateaus) the flow was seen to pass on its way.
    status : str
        ``"converged"``, ``"not_reached"`` (the flow has not stopped by
        ``alpha_max``, or is still near a saddle there), ``"diverged"`` or
        ``"failed"`` (solver failure, or the end point is no fixed point).
    message : str
    """

    value_field: ClassVar[str] = "eg"

    eg: float
    state: State
    fixed_point: Any
    alpha: float
    saddles_passed: int = 0


def asymptotic_eg(
    model: Committee,
    state0: State,
    *,
    speed_tol: float = 1e-6,
    alpha_max: float | None = None,
    solver: SolverOptions | Mapping[str, Any] | None = None,
    newton: NewtonOptions | Mapping[str, Any] | None = None,
) -> AsymptoticError:
    """Integrate until the flow stops, then refine the end point as a fixed point.

    Parameters
    ----------
    model : Committee or a reduced model
        A full model, or one restricted to an invariant subspace
        (:meth:`Committee.restrict`): then the flow, the stop and the fixed
        point are the reduced ones (and ``state0`` a reduced state, e.g.
        ``(R, S, Q, C[, v])``), at a cost independent of K.
    state0 : State
    speed_tol : float
        The flow counts as stopped when ``max |d state / d alpha| <= speed_tol * eta``
        (a speed per unit ``eta alpha``, so the criterion does not depend on eta
        at first order).  The end point is then polished by Newton's method, so
        ``speed_tol`` only needs to bring the flow into Newton's basin.  Much
        smaller values are expensive for ReLU: near the perfect solution its
        right-hand side has square-root (non-analytic) terms whose rounding
        noise forces tiny solver steps.
    alpha_max : float, optional
        Give up (``not_reached``) after this alpha; default ``1e4 / eta``.
    solver : SolverOptions, mapping or None
        ODE solver settings (default :class:`~phasekit.core.options.SolverOptions`);
        ``max_norm`` bounds the order parameters (beyond it: divergence).
    newton : NewtonOptions, mapping or None
        Settings of the refinement (:func:`phasekit.committee.landmarks.find_fixed_point`).

    Returns
    -------
    AsymptoticError

    Notes
    -----
    The stop is an event of the integration (the speed crossing ``speed_tol * eta``).
    :func:`phasekit.committee.landmarks.find_fixed_point` then refines the end state;
    if it fails, the flow continues with a 100 times smaller ``speed_tol``
    (twice at most).  If the fixed point is unstable (the trajectory may only
    be passing a saddle such as a plateau), the flow continues for
    ``40 / Re(lambda_max)`` -- long enough for a deviation along the unstable
    direction, even one of rounding size, to grow to order one -- and the run
    counts as converged to the saddle only if it is still within ``1e-3`` of it.
    """
    from .landmarks import _reduced, find_fixed_point

    reduced = _reduced(model)
    if not reduced:
        full_model_only(model, "asymptotic_eg")
    model.validate_state(state0, "state0")
    speed_tol = float(speed_tol)
    if not (np.isfinite(speed_tol) and speed_tol > 0):
        raise ValueError(f"speed_tol: must be finite and > 0, got {speed_tol!r}")
    eta = model.eta
    alpha_max = 1e4 / eta if alpha_max is None else float(alpha_max)
    if not (np.isfinite(alpha_max) and alpha_max > 0):
        raise ValueError(f"alpha_max: must be finite and > 0, got {alpha_max!r}")
    opts = coerce_options(solver, SolverOptions, "solver")
    newton = coerce_options(newton, NewtonOptions, "newton")
    K, M = model.K, model.M
    v = model.state_vector(state0, "state0")
    alpha = 0.0
    saddles = 0
    retries = 0
    threshold = speed_tol * eta

    def result(status: str, message: str, fp: Any = None, v_end: np.ndarray | None = None) -> AsymptoticError:
        if fp is not None:
            # a reduced model's fixed point is its vector (the full one's eps_g is the same function of it)
            eg, state = (float(model.eg_vector(fp.vector)), fp.vector) if reduced else (float(fp.eg), fp.state)
            return AsymptoticError(eg=eg, state=state, fixed_point=fp, alpha=alpha,
                                   saddles_passed=saddles, status=status, message=message)
        eg = math.nan if v_end is None else float(model.eg_vector(v_end))
        last = v if v_end is None else v_end
        state = np.array(last, dtype=float) if reduced else State.from_vector(last, K, M)
        return AsymptoticError(eg=eg, state=state, fixed_point=None, alpha=alpha, saddles_passed=saddles,
                               status=status, message=message)

    def stopped_early(run: Any) -> AsymptoticError:
        if run.status == "diverged":
            return result("diverged", f"the flow diverged at alpha = {run.alpha:.6g}")
        return result("failed", f"the solver failed at alpha = {run.alpha:.6g}")

    while True:
        if float(np.abs(model.rhs_vector(v)).max()) > threshold:
            def stopped(_a: float, y: np.ndarray, threshold: float = threshold) -> float:
                return float(np.abs(model.rhs_vector(y)).max()) - threshold

            stopped.direction = -1
            run = _run_until(model, v, alpha, alpha_max, stopped, solver=opts)
            if run.status in ("diverged", "failed"):
                alpha = run.alpha
                return stopped_early(run)
            v, alpha = run.v, run.alpha
            if run.status == "end":
                speed = float(np.abs(model.rhs_vector(v)).max())
                return result("not_reached",
                              f"max |d state/d alpha| = {speed:.3g} > {threshold:.3g} (speed_tol * eta"
                              + ("" if retries == 0 else f" / 100^{retries}, after Newton failed")
                              + f") at alpha_max = {alpha_max:.6g}",
                              v_end=v)
        fp = find_fixed_point(model, v, newton=newton)
        close = float(np.abs(fp.vector - v).max()) <= 1e-3 * (1.0 + float(np.abs(v).max()))
        if not (fp.success and close):
            if retries >= 2 or threshold < 1e-14:
                return result("failed", "the flow stopped but find_fixed_point did not converge "
                              f"(residual {fp.residual:.3g})", v_end=v)
            retries += 1
            threshold /= 100.0
            continue
        if fp.n_unstable == 0:
            return result("converged", f"{fp.kind} fixed point", fp=fp)
        # A saddle (e.g. a plateau): see the Notes.
        lam_u = float(np.max(np.real(fp.eigenvalues)))
        vf = fp.vector
        radius = 1e-3 * (1.0 + float(np.abs(vf).max()))

        def away(_a: float, y: np.ndarray, vf: np.ndarray = vf, radius: float = radius) -> float:
            return float(np.abs(y - vf).max()) - radius

        away.direction = 1
        hold = alpha + 40.0 / lam_u
        run = _run_until(model, v, alpha, min(hold, alpha_max), away, solver=opts)
        if run.status in ("diverged", "failed"):
            alpha = run.alpha
            return stopped_early(run)
        if run.status == "end":
            alpha = run.alpha
            if hold > alpha_max:
                return result("not_reached", "still near a saddle at alpha_max", v_end=run.v)
            return result("converged", f"converged to a {fp.kind} fixed point (on its stable manifold)", fp=fp)
        saddles += 1
        v, alpha = run.v, run.alpha
