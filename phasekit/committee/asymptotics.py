"""The asymptotic error: integrate until the flow stops, then refine the end point as a fixed point."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .dynamics import MAX_NORM
from .model import Committee, State
from .plateaus import _ATOL, _METHOD, _RTOL, _check_model, _run_until

__all__ = ['AsymptoticResult', 'asymptotic_eg']


@dataclass
class AsymptoticResult:
    """Where the flow ends.

    Attributes
    ----------
    eg : float
        eps_g at the fixed point (``converged``), at the last state
        (``not_converged``) or ``nan`` (``diverged``).
    state : State
        The fixed point, or the last valid state.
    status : str
        ``"converged"``, ``"diverged"`` or ``"not_converged"``.
    fixed_point : FixedPoint or None
        Refined fixed point with its linearisation (``None`` unless converged).
        A start on the stable manifold of a saddle (e.g. an exactly symmetric
        start) converges to that saddle: check ``fixed_point.stable``.
    alpha : float
        Where the integration stopped.
    message : str
    """

    eg: float
    state: State
    status: str
    fixed_point: Any
    alpha: float
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def asymptotic_eg(
    model: Committee,
    state0: State,
    *,
    tol: float = 1e-6,
    alpha_max: float | None = None,
    rtol: float = _RTOL,
    atol: float = _ATOL,
    method: str = _METHOD,
    max_norm: float = MAX_NORM,
) -> AsymptoticResult:
    """Integrate until the flow stops, then refine the end point as a fixed point.

    Parameters
    ----------
    model : Committee
    state0 : State
    tol : float
        The flow counts as stopped when ``max |d state / d alpha| <= tol * eta``
        (a speed per unit ``eta alpha``, so the criterion does not depend on eta
        at first order).  The end point is then polished by Newton's method, so
        ``tol`` only needs to bring the flow into Newton's basin.  Much smaller
        values are expensive for ReLU: near the perfect solution its
        right-hand side has square-root (non-analytic) terms whose rounding
        noise forces tiny solver steps.
    alpha_max : float, optional
        Give up (``not_converged``) after this alpha; default ``1e4 / eta``.
    rtol, atol, method : solver settings.
    max_norm : float
        An order parameter beyond this counts as divergence.

    Returns
    -------
    AsymptoticResult

    Notes
    -----
    The stop is an event of the integration (the speed crossing ``tol * eta``).
    :func:`phasekit.committee.landmarks.find_fixed_point` then refines the end state;
    if it fails, the flow continues with a 100 times smaller ``tol`` (twice at
    most).  If the fixed point is unstable (the trajectory may only be passing
    a saddle such as a plateau), the flow continues for ``40 / Re(lambda_max)``
    -- long enough for a deviation along the unstable direction, even one of
    rounding size, to grow to order one -- and the run counts as converged to
    the saddle only if it is still within ``1e-3`` of it.
    """
    from .landmarks import find_fixed_point

    _check_model(model)
    model.validate_state(state0, "state0")
    tol = float(tol)
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol: must be finite and > 0, got {tol!r}")
    eta = model.eta
    alpha_max = 1e4 / eta if alpha_max is None else float(alpha_max)
    if not (np.isfinite(alpha_max) and alpha_max > 0):
        raise ValueError(f"alpha_max: must be finite and > 0, got {alpha_max!r}")
    kw = dict(rtol=rtol, atol=atol, method=method, max_norm=max_norm)
    K, M = model.K, model.M
    v = state0.to_vector()
    alpha = 0.0
    saddles = 0
    retries = 0
    speed_tol = tol * eta

    def result(status: str, message: str, fp: Any = None, v_end: np.ndarray | None = None) -> AsymptoticResult:
        if fp is not None:
            return AsymptoticResult(float(fp.eg), fp.state, status, fp, alpha, message, {"saddles_passed": saddles})
        eg = float("nan") if status == "diverged" else float(model.eg_vector(v_end))
        return AsymptoticResult(eg, State.from_vector(v_end, K, M), status, None, alpha, message,
                                {"saddles_passed": saddles})

    while True:
        if float(np.abs(model.rhs_vector(v)).max()) > speed_tol:
            def stopped(_a: float, y: np.ndarray, speed_tol: float = speed_tol) -> float:
                return float(np.abs(model.rhs_vector(y)).max()) - speed_tol

            stopped.direction = -1
            run = _run_until(model, v, alpha, alpha_max, stopped, **kw)
            if run.status in ("diverged", "failed"):
                alpha = run.alpha
                return result("diverged", f"the flow {run.status} at alpha = {run.alpha:.6g}", v_end=v)
            v, alpha = run.v, run.alpha
            if run.status == "end":
                speed = float(np.abs(model.rhs_vector(v)).max())
                return result("not_converged",
                              f"max |d state/d alpha| = {speed:.3g} > tol * eta at alpha_max = {alpha_max:.6g}",
                              v_end=v)
        fp = find_fixed_point(model, v)
        close = float(np.abs(fp.state.to_vector() - v).max()) <= 1e-3 * (1.0 + float(np.abs(v).max()))
        if not (fp.converged and close):
            if retries >= 2 or speed_tol < 1e-14:
                return result("not_converged", "the flow stopped but find_fixed_point did not converge "
                              f"(residual {fp.residual:.3g})", v_end=v)
            retries += 1
            speed_tol /= 100.0
            continue
        if fp.n_unstable == 0:
            return result("converged", f"{fp.kind} fixed point", fp=fp)
        # A saddle (e.g. a plateau): see the Notes.
        lam_u = float(np.max(np.real(fp.eigenvalues)))
        vf = fp.state.to_vector()
        radius = 1e-3 * (1.0 + float(np.abs(vf).max()))

        def away(_a: float, y: np.ndarray, vf: np.ndarray = vf, radius: float = radius) -> float:
            return float(np.abs(y - vf).max()) - radius

        away.direction = 1
        hold = alpha + 40.0 / lam_u
        run = _run_until(model, v, alpha, min(hold, alpha_max), away, **kw)
        if run.status in ("diverged", "failed"):
            alpha = run.alpha
            return result("diverged", f"the flow {run.status} at alpha = {run.alpha:.6g}", v_end=v)
        if run.status == "end":
            alpha = run.alpha
            if hold > alpha_max:
                return result("not_converged", "still near a saddle at alpha_max", v_end=run.v)
            return result("converged", f"converged to a {fp.kind} fixed point (on its stable manifold)", fp=fp)
        saddles += 1
        v, alpha = run.v, run.alpha
