"""Steady states of learning that never reaches zero error: a drifting teacher, weight decay, output noise.

With drift (``dR/dalpha -= delta R``), weight decay or noise with the ``eta^2``
term the perfect solution is no longer a fixed point; the student settles in
a steady state next to it whose ``eps_g`` balances learning against the
perturbation.  :func:`steady_state` finds it (Newton from ``R = Q = T``,
``v = w``; where that fails, by following the branch from the unperturbed
model in the perturbation's strength; where that fails too, or ends on an
unstable point, Newton from where the flow from that start stops);
:func:`optimal_steady_eta`
finds the learning rate that minimises its ``eps_g``: too small an eta cannot
follow the drift, too large a one adds the fluctuations of the ``eta^2`` term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

import numpy as np
from scipy import optimize

from ..core.options import NewtonOptions, coerce_options
from ..core.results import ScalarResult
from .cone import _pull_inside
from .landmarks import _perfect_vector, find_fixed_point
from .linearisation import CommitteeFixedPoint
from .model import Committee, State, full_model_only, is_reduced

__all__ = ["SteadyEta", "optimal_steady_eta", "steady_state"]


# Steps of the homotopy from the unperturbed model when Newton from R = Q = T fails.
_HOMOTOPY_STEPS = 24

# Norm of the student units that have no teacher unit to match (K > M) in the default start:
# small (they should carry no output), but away from the singular Q_jj = 0.
_SPARE_NORM = 1e-2


def _check(model: Any) -> None:
    if not is_reduced(model):  # a reduced model: its own flow's steady state, inside the subspace
        full_model_only(model, "the steady state")
    model.require_autonomous("the steady state")


def _eg(model: Any, fp: Any) -> float:
    """eps_g of a fixed point (a reduced model's ``FixedPoint`` is its reduced vector)."""
    return float(model.eg_vector(fp.vector)) if is_reduced(model) else float(fp.eg)


def _matched_vector(model: Committee) -> np.ndarray:
    """The start of the steady-state search: each student unit on one teacher unit.

    ``R = Q = T`` (``v = w``) for K = M.  For K > M the spare students have
    ``R = 0``, ``Q_jj = 0.01`` (``v_j = 0`` when trained); for K < M the
    students take the first K teacher units.  A reduced model: its perfect
    solution in its coordinates.
    """
    if is_reduced(model):
        return model.perfect_vector()
    if model.K == model.M:
        return _perfect_vector(model)
    K, M = model.K, model.M
    k = min(K, M)
    R = np.zeros((K, M))
    R[:k] = model.T[:k]
    Q = _SPARE_NORM * np.eye(K)
    Q[:k, :k] = model.T[:k, :k]
    v = None
    if model.train_second_layer:
        v = np.zeros(K)
        v[:k] = np.asarray(model.teacher_weights, dtype=float)[:k]
    return State(R, Q, v).to_vector()


def _from_flow(model: Committee, start: np.ndarray, opts: NewtonOptions,
               alpha_max: float | None) -> CommitteeFixedPoint | None:
    """Newton from where the flow from ``start`` stops (``None`` if it does not stop at a fixed point)."""
    from .asymptotics import asymptotic_eg

    reduced = is_reduced(model)
    v0 = start if reduced else _pull_inside(model, start)
    res = asymptotic_eg(model, v0 if reduced else State.from_vector(v0, model.K, model.M), newton=opts,
                        alpha_max=alpha_max)
    if res.status != "converged" or res.fixed_point is None:
        return None
    fp = res.fixed_point
    return replace(fp, **({} if reduced else {"label": "perfect"}),
                   message=f"{fp.message}; Newton from where the flow from the matched start stops "
                           f"(alpha = {res.alpha:.6g})")


def steady_state(model: Committee, *, newton: NewtonOptions | Mapping[str, Any] | None = None,
                 guess: np.ndarray | None = None, flow_alpha_max: float | None = None) -> CommitteeFixedPoint:
    """The steady state next to the perfect solution (each student unit matched to a teacher unit), linearised.

    Newton from ``guess`` (default: ``R = Q = T``, ``v = w`` when trained, for
    K = M; for K > M the spare students start at ``R = 0``, ``Q_jj = 0.01``,
    for K < M the students take the first K teacher units); if it fails,
    the perturbations (drift, weight decay, noise) are switched on gradually
    from zero, each step polished by Newton from the previous one.  If that
    fails too, or ends on an unstable point (next to the specialisation
    transition under drift the specialised branch and the unspecialised one
    meet and Newton's Jacobian is nearly singular), the flow is integrated
    from the start until it stops and Newton polishes its end; a stable end
    point found that way is returned.

    Parameters
    ----------
    model : Committee or a reduced model
        Autonomous (no schedule); any K, M.  A reduced model
        (:meth:`Committee.restrict`): the steady state of its reduced flow
        (a :class:`~phasekit.core.results.FixedPoint` in its coordinates,
        linearised inside the subspace; ``guess`` a reduced vector).
    newton : NewtonOptions, mapping or None
    guess : ndarray, shape (n_state,), optional
    flow_alpha_max : float, optional
        Horizon of the flow fallback (default that of
        :func:`phasekit.committee.asymptotics.asymptotic_eg`, ``1e4 / eta``).

    Returns
    -------
    CommitteeFixedPoint
        ``label == "perfect"`` (the perfect solution's branch); its ``eg`` is the
        steady-state error.  ``status == "failed"`` when no route converged.
    """
    _check(model)
    opts = coerce_options(newton, NewtonOptions, "newton")
    start = _matched_vector(model) if guess is None else np.asarray(guess, dtype=float)
    fp = find_fixed_point(model, start, newton=opts, label="perfect")
    if not fp.success:
        v = _matched_vector(model)
        for s in np.linspace(0.0, 1.0, _HOMOTOPY_STEPS + 1)[1:]:
            m = model.replace(drift=s * model.drift, weight_decay=s * model.weight_decay, noise=s * model.noise)
            step = find_fixed_point(m, v, newton=opts, label="perfect")
            if not step.success:
                break
            v = step.vector
        fp = find_fixed_point(model, v, newton=opts, label="perfect")
    if fp.success and fp.n_unstable == 0:
        return fp
    flow = _from_flow(model, start, opts, flow_alpha_max)
    if flow is not None and (flow.n_unstable == 0 or not fp.success):
        return flow
    return fp


@dataclass(frozen=True, kw_only=True, eq=False)
class SteadyEta(ScalarResult):
    """The learning rate of smallest steady-state error; ``float(result)`` is ``value``.

    Attributes
    ----------
    value : float
        The minimising eta (``nan`` unless the status is a success).
    eg : float
        The steady-state ``eps_g`` there.
    fixed_point : CommitteeFixedPoint or None
        The steady state at ``value`` (stable for a success).
    bracket : (float, float)
        The eta interval searched.
    precision : float
        Absolute tolerance on ``value``.
    n_evaluations : int
        Steady states solved.
    status : str
        ``"ok"``; ``"not_reached"`` when the minimum lies at an end of the
        bracket (``value`` is that end); ``"failed"`` when no steady state was found.
    """

    value: float
    eg: float = math.nan
    fixed_point: CommitteeFixedPoint | None = None
    bracket: tuple[float, float] = (math.nan, math.nan)
    precision: float = math.nan
    n_evaluations: int = 0


def optimal_steady_eta(model: Committee, eta_range: tuple[float, float] = (1e-3, 2.0), *,
                       xtol: float = 1e-6, newton: NewtonOptions | Mapping[str, Any] | None = None) -> SteadyEta:
    """The learning rate that minimises the steady-state ``eps_g`` (drift, weight decay or noise).

    Parameters
    ----------
    model : Committee
        Everything but eta is taken from here; with a trained second layer
        tied to eta (``eta_second_layer=None``) both rates move together.
    eta_range : (float, float)
        ``0 < low < high``: the interval searched (bounded scalar minimisation
        in ``log eta`` after a coarse scan; each steady state is sought from
        ``R = Q = T`` first, so the search stays on the perfect solution's
        branch where it exists).
    xtol : float
        Relative tolerance on eta, in ``(0, 1)``.
    newton : NewtonOptions, mapping or None
        Options of each steady-state solve.

    Returns
    -------
    SteadyEta
    """
    _check(model)
    lo, hi = (float(x) for x in eta_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi):
        raise ValueError(f"eta_range: need 0 < low < high, got {eta_range!r}")
    if isinstance(xtol, bool) or not (isinstance(xtol, (int, float, np.floating)) and 0 < xtol < 1):
        raise ValueError(f"xtol: relative tolerance must be in (0, 1), got {xtol!r}")
    opts = coerce_options(newton, NewtonOptions, "newton")
    seen: dict[float, CommitteeFixedPoint] = {}
    last = [None]

    def solve(log_eta: float) -> CommitteeFixedPoint:
        eta = float(np.exp(log_eta))
        if eta not in seen:
            m = model.replace(eta=eta)
            # from R = Q = T first: a warm start could stay on another branch (e.g. the
            # unspecialised steady state that small learning rates under drift settle in)
            fp = steady_state(m, newton=opts)
            if not fp.success and last[0] is not None:
                fp = steady_state(m, newton=opts, guess=last[0])
            seen[eta] = fp
            if fp.success:
                last[0] = fp.vector
        return seen[eta]

    def objective(log_eta: float) -> float:
        fp = solve(log_eta)
        return _eg(model, fp) if fp.success and fp.stable else np.inf

    # a coarse scan picks the basin (the objective is infinite where no stable steady state exists)
    grid = np.linspace(np.log(lo), np.log(hi), 17)
    vals = np.array([objective(g) for g in grid])
    if not np.any(np.isfinite(vals)):
        return SteadyEta(value=math.nan, bracket=(lo, hi), n_evaluations=len(seen), status="failed",
                         message=f"no stable steady state for eta in [{lo:g}, {hi:g}]")
    j = int(np.nanargmin(np.where(np.isfinite(vals), vals, np.nan)))
    if j in (0, len(grid) - 1):
        fp = solve(grid[j])
        return SteadyEta(value=float(np.exp(grid[j])), eg=_eg(model, fp), fixed_point=fp, bracket=(lo, hi),
                         precision=0.0, n_evaluations=len(seen), status="not_reached",
                         message=f"the steady-state error is smallest at the end eta = {np.exp(grid[j]):g} "
                                 "of eta_range")
    a, b = grid[j - 1], grid[j + 1]
    res = optimize.minimize_scalar(objective, bounds=(a, b), method="bounded",
                                   options={"xatol": 0.5 * xtol, "maxiter": 200})
    eta = float(np.exp(res.x))
    fp = solve(res.x)
    eg = _eg(model, fp)
    ok = bool(res.success) and fp.success and np.isfinite(eg)
    return SteadyEta(value=eta if ok else math.nan, eg=eg, fixed_point=fp, bracket=(lo, hi),
                     precision=xtol * eta, n_evaluations=len(seen), status="ok" if ok else "failed",
                     message=(f"smallest steady-state eps_g {eg:.6g} at eta = {eta:.6g}" if ok
                              else f"the minimisation failed: {res.message}"))
