"""Measures of the committee machine, and the computations its measures share at a point.

The point's model, start and trajectory are built once per point
(:meth:`~phasekit.study.measures.PointContext.shared`); fixed points that do
not depend on the start (the symmetric plateau, the critical learning rate)
are kept for the process, keyed by the model's parameters, so that a grid
over eta or X computes them once per worker.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from typing import Any, Callable

import numpy as np
import xarray as xr

from ..committee import (
    State,
    align_teachers,
    asymptotic_eg,
    convergence_time,
    critical_eta,
    eta_structure,
    initial_state,
    integrate,
    optimal_eta,
    simulate,
    steady_state,
    symmetric_plateau,
)
from ..committee.model import Committee, vector_labels
from ..committee.plateaus import _band_times
from ..committee.subspaces import ReducedCommittee
from .measures import Outcome, Output, PointContext, register_measure
from .systems import Parameter

__all__ = ["point_model", "point_start", "point_trajectory", "check_point", "plateau_of", "TRAJECTORY_OUTPUTS"]

# --- what the measures share ----------------------------------------------------------------------

_MEMO: OrderedDict = OrderedDict()
_MEMO_SIZE = 256


def _memo(key: tuple, compute: Callable[[], Any]) -> Any:
    """A deterministic fixed-point computation, kept for the process (least recently used dropped)."""
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key]
    value = compute()
    _MEMO[key] = value
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    return value


# The general committee machine's parameters, passed to Committee as they are.
_GENERAL = ("normalisation", "teacher_weights", "student_weights", "train_second_layer", "eta_second_layer",
            "weight_decay", "drift", "eta_schedule")


def _general(params: dict) -> dict[str, Any]:
    return {k: params[k] for k in _GENERAL if k in params}


def _model_key(model: Committee, newton: Any = None) -> tuple:
    """What identifies a memoised result of ``model``: every model parameter (and the Newton settings)."""
    return (json.dumps(model.parameters(), sort_keys=True),
            None if newton is None else tuple(sorted(newton.to_dict().items())))


def _build(params: dict, eta: float, second_order: bool | None = None) -> Committee | ReducedCommittee:
    """The point's model; restricted to ``model.subspace`` when that is set (a reduced model)."""
    model = Committee(K=params["K"], M=params["M"], activation=params["activation"], eta=eta,
                      second_order=params["second_order"] if second_order is None else second_order,
                      noise=params["noise"], teacher_activation=params["teacher_activation"], **_general(params))
    subspace = params.get("subspace")
    return model if subspace is None else model.restrict(subspace)


def _stability(params: dict, eta_max: float) -> tuple[Any, Any]:
    """``(structure, CriticalEta)`` of the perfect solution, with the eta^2 term (independent of eta)."""
    model = _build(params, 1.0, True)

    def compute() -> tuple[Any, Any]:
        # a reduced model: the structure and eta_c inside its subspace (critical_eta restricts)
        st = model.eta_structure() if isinstance(model, ReducedCommittee) else eta_structure(model)
        return st, critical_eta(model, eta_max=eta_max, structure=st)

    return _memo(("eta_c", eta_max) + _model_key(model), compute)


def point_model(ctx: PointContext) -> Committee | ReducedCommittee:
    """The point's :class:`Committee` (``eta`` from ``eta_over_eta_c`` when that is set).

    With ``model.subspace`` set, the reduced model ``Committee.restrict(subspace)``
    (and ``eta_c`` the restricted one).
    """
    def build() -> Committee:
        p = ctx.params
        eta = p["eta"]
        if p.get("eta_over_eta_c") is not None:
            _, ec = _stability(p, 1e3)
            if not (math.isfinite(ec.value) and ec.value > 0):
                raise ValueError(f"eta_over_eta_c: eta_c of the perfect solution is {ec.value:g} ({ec.message}), "
                                 f"so eta = eta_over_eta_c * eta_c is undefined")
            eta = p["eta_over_eta_c"] * ec.value
        ctx.derived["eta"] = eta  # stored when the study derives eta
        return _build(p, eta)

    return ctx.shared("model", build)


def plateau_of(model: Committee, newton: Any = None) -> Any:
    """The symmetric plateau of ``model`` (kept for the process).

    For erf with K = M, an identity teacher and first-order dynamics the
    Saad-Solla closed form seeds Newton's method: that plateau lies on the
    boundary of the positive-semidefinite cone and is approached
    algebraically, so the default guess (the end of a finite symmetric flow)
    can be too far from it.
    """
    def compute() -> Any:
        guess = None
        reduced = isinstance(model, ReducedCommittee)
        identity = (model.Td, model.To) == (1.0, 0.0) if reduced else np.array_equal(model.T, np.eye(model.M))
        if model.activation.name == "erf" and not model.second_order and model.K == model.M \
                and model.noise == 0 and identity:
            K = model.K
            guess = (1.0 / math.sqrt(K * (2 * K - 1)), 1.0 / (2 * K - 1), 1.0 / (2 * K - 1))
            if model.train_second_layer:  # with teacher weights 1 the plateau keeps v = 1 (dv/dalpha = 0 there)
                guess = guess + (1.0,) if np.allclose(model.teacher_weights, 1.0) else None
        return symmetric_plateau(model, guess, newton=newton)

    return _memo(("plateau",) + _model_key(model, newton), compute)


def point_start(ctx: PointContext) -> State:
    """The point's initial order parameters (``[initial]``: ``R0``, or ``X`` with ``kind``, ``Q0``, ``seed``)."""
    def build() -> State | np.ndarray:
        p = ctx.params
        model = point_model(ctx)
        if isinstance(model, ReducedCommittee):
            return _reduced_start(model, p)
        if p["R0"] is not None:
            R0 = np.asarray(p["R0"], dtype=float)
            if R0.shape != (model.K, model.M):
                raise ValueError(f"R0: expected a {model.K} x {model.M} matrix (K x M), got shape {R0.shape}")
            q0 = p["Q0"]
            if isinstance(q0, list) and q0 and isinstance(q0[0], list):
                return State(R0, np.asarray(q0, dtype=float))
            return State(R0, initial_state(model, 0.0, Q0=q0).Q)
        if p["kind"] == "plateau":
            fp = plateau_of(model, ctx.newton)
            if not fp.success:
                raise ValueError(f"kind: the start displaces the symmetric plateau, which was not found "
                                 f"({fp.message})")
            return initial_state(model, p["X"], kind="plateau", seed=p["seed"], plateau=fp)
        return initial_state(model, p["X"], Q0=p["Q0"], kind=p["kind"], seed=p["seed"])

    return ctx.shared("start", build)


def _reduced_start(model: ReducedCommittee, p: dict) -> np.ndarray:
    """The reduced start: ``R0`` (and a whole ``Q0``) in the subspace, else ``R = X``, ``Q = Q0`` and the other
    overlaps 0 (the diagonal start with equal norms; checked by :func:`_start_check`)."""
    if p["R0"] is not None:
        R0 = np.asarray(p["R0"], dtype=float)
        q0 = p["Q0"]
        Q = np.asarray(q0, dtype=float) if isinstance(q0, list) and isinstance(q0[0], list) else \
            np.diag(np.broadcast_to(np.asarray(q0, dtype=float), (model.K,)))
        return model.state_vector(State(R0, Q), "initial.R0")
    return model.start_vector(p["X"], float(p["Q0"]))


def horizon(ctx: PointContext) -> float:
    """Integration horizon in alpha: ``alpha_max``, else ``eta_alpha_max / eta`` (default 500 / eta)."""
    p = ctx.params
    if p["alpha_max"] is not None:
        return float(p["alpha_max"])
    eta_alpha = p["eta_alpha_max"] if p["eta_alpha_max"] is not None else 500.0
    return float(eta_alpha) / point_model(ctx).eta


def point_trajectory(ctx: PointContext) -> xr.Dataset:
    """The point's trajectory: ``[integration]`` sampling and stop, ``[solver]`` settings (once per point)."""
    def compute() -> xr.Dataset:
        p = ctx.params
        amax = horizon(ctx)
        # n_points samples up to where the run ends (log: 0, then log-spaced from 1e-4 of that end)
        return integrate(point_model(ctx), point_start(ctx), amax, solver=ctx.solver, stop_eg=p["stop_eg"],
                         n_points=p["n_points"], spacing=p["spacing"])

    return ctx.shared("trajectory", compute)


def check_point(params: dict) -> str | None:
    """Why the committee parameters ``params`` cannot be computed, or None."""
    p = dict(params)
    if p.get("eta_over_eta_c") is not None:
        p["eta"] = 1.0
    q0, K = p.get("Q0"), p["K"]
    if isinstance(q0, list) and q0 and isinstance(q0[0], list):
        if p.get("R0") is None:
            return "key 'initial.Q0': a whole matrix Q0 needs R0 too (give both, or Q0 as the diagonal)"
        if (len(q0), len(q0[0])) != (K, K):
            return f"key 'initial.Q0': is {len(q0)} x {len(q0[0])} but K = {K} at some grid point"
    elif isinstance(q0, list) and len(q0) != K:
        return f"key 'initial.Q0': has {len(q0)} entries but K = {K} at some grid point"
    r0 = p.get("R0")
    if r0 is not None and (len(r0), len(r0[0])) != (K, p["M"]):
        return f"key 'initial.R0': is {len(r0)} x {len(r0[0])} but K x M = {K} x {p['M']} at some grid point"
    try:
        model = _build(dict(p, subspace=None), p["eta"])
    except ValueError as exc:
        return str(exc)
    if p.get("subspace") is not None:
        try:
            model = model.restrict(p["subspace"])
        except ValueError as exc:
            return f"key 'model.subspace': {str(exc).removeprefix('model: ')} at some grid point"
    if not model.autonomous:
        if p.get("eta_over_eta_c") is not None:
            return ("key 'model.eta_over_eta_c': eta_c needs an autonomous flow, but model.eta_schedule sets a "
                    "learning-rate schedule; give eta instead")
        if p.get("kind") == "plateau" and p.get("R0") is None:
            return ("key 'initial.kind': the plateau start needs the symmetric plateau, a fixed point of an "
                    "autonomous flow, but model.eta_schedule sets a learning-rate schedule")
    return None


def _schedules(study: Any) -> list[Any]:
    """Every value of ``eta_schedule`` the study's points take."""
    return [study.params.get("eta_schedule")] + [a["eta_schedule"] for ax in study.axes for a in ax.assigns
                                                  if "eta_schedule" in a]


def _needs_autonomous(what: str) -> Callable[[Any], str | None]:
    """A parse-time check: ``what`` is a fixed point (or the flow's end), so no point may have a schedule."""
    def check(study: Any) -> str | None:
        if any(s is not None for s in _schedules(study)):
            return (f"{what} needs an autonomous flow, but eta_schedule sets a learning-rate schedule at some "
                    f"grid point (a flow whose eta changes with alpha has no fixed points of its own); leave eta_schedule unset")
        return None

    return check


def _needs_exact_autonomous(what: str) -> Callable[[Any], str | None]:
    autonomous = _needs_autonomous(what)
    return lambda study: _needs_second_order(study) or autonomous(study)


# --- trajectories -----------------------------------------------------------------------------------

ALPHA_END = Output("end of the run alpha")
TRAJECTORY_OUTPUTS = {
    "alpha": Output("examples per input dimension alpha", "1", ("sample",)),
    "R": Output("student-teacher overlap R_in", "1", ("sample", "i", "n")),
    "Q": Output("student-student overlap Q_ik", "1", ("sample", "i", "k")),
    "eg": Output("generalisation error eps_g", "1", ("sample",)),
    "v": Output("student second-layer weight v_i (trained)", "1", ("sample", "i")),
    "alpha_end": ALPHA_END,
    "eg_end": Output("eps_g where the run stopped"),
    # a reduced model's (model.subspace = "site_symmetric"): the common values instead of R, Q, v
    "R_ii": Output("student-teacher overlap R = R_ii (site-symmetric)", "1", ("sample",)),
    "R_in": Output("student-teacher overlap S = R_in, i != n (site-symmetric)", "1", ("sample",)),
    "Q_ii": Output("student norm Q = Q_ii (site-symmetric)", "1", ("sample",)),
    "Q_ik": Output("student-student overlap C = Q_ik, i != k (site-symmetric)", "1", ("sample",)),
    "v_common": Output("common student second-layer weight v (site-symmetric, trained)", "1", ("sample",)),
    # grouped students (model.subspace = "grouped"): R_ii, R_in are R_in for i in / not in group n
    "Q_ik_in_group": Output("student-student overlap C1 = Q_ik, i != k in one group (grouped)", "1", ("sample",)),
    "Q_ik_across_groups": Output("student-student overlap C2 = Q_ik, i, k in different groups (grouped)", "1",
                                 ("sample",)),
}
_FULL_TRAJECTORY = ("R", "Q", "v")
# The reduced order parameters a study stores, by output name: their symbols in a reduced trajectory
# (the layout of integrate for a reduced model; the figures read it too).
REDUCED_TRAJECTORY = {"R_ii": "R", "R_in": "S", "Q_ii": "Q", "Q_ik": "C", "v_common": "v", "Q_ik_in_group": "C1",
                       "Q_ik_across_groups": "C2"}
_GROUPED_ONLY = ("Q_ik_in_group", "Q_ik_across_groups")


def _subspaces(study: Any) -> list[Any]:
    """Every value of ``subspace`` the study's points take (None: the full space)."""
    return [study.params.get("subspace")] + [a["subspace"] for ax in study.axes for a in ax.assigns
                                             if "subspace" in a]


def _restricted(study: Any) -> str | None:
    """The subspace some point of ``study`` is restricted to, or None."""
    return next((s for s in _subspaces(study) if s is not None), None)


def _max_units(study: Any) -> tuple[int, int]:
    K, M = [study.params["K"]], [study.params["M"]]
    for axis in study.axes:
        for a in axis.assigns:
            K.append(a.get("K", K[0]))
            M.append(a.get("M", M[0]))
    K = [k for k in K if isinstance(k, int)]
    M = [m for m in M if isinstance(m, int)]
    return max(K), max(M + K if study.params["M"] == "K" else M)


def unit_coords(study: Any) -> dict[str, tuple[np.ndarray, dict]]:
    """Coordinates ``i``, ``k`` (student units) and ``n`` (teacher units), 1-based, up to the largest K and M.

    None in a subspace (its trajectories carry no unit dims)."""
    if _restricted(study) is not None:
        return {}
    K, M = _max_units(study)
    student = {"long_name": "student unit", "units": ""}
    return {"i": (np.arange(1, K + 1), student), "k": (np.arange(1, K + 1), student),
            "n": (np.arange(1, M + 1), {"long_name": "teacher unit", "units": ""})}


def trajectory_values(traj: xr.Dataset) -> Outcome:
    """A trajectory dataset as the outputs of :data:`TRAJECTORY_OUTPUTS`, with its status."""
    values = {"alpha": traj["alpha"].values, "eg": traj["eg"].values,
              "alpha_end": float(traj.attrs["alpha_end"]), "eg_end": float(traj["eg"].values[-1])}
    names = {k: k for k in _FULL_TRAJECTORY} if "subspace" not in traj.attrs else REDUCED_TRAJECTORY
    values.update({out: traj[var].values for out, var in names.items() if var in traj})  # v: a trained second layer
    return Outcome(values, traj.attrs["status"], str(traj.attrs["message"]))


def _trajectory_outputs(study: Any) -> list[str]:
    """Every trajectory output; ``v`` only when some point trains the second layer."""
    trained = [study.params.get("train_second_layer")] + [a["train_second_layer"] for ax in study.axes
                                                          for a in ax.assigns if "train_second_layer" in a]
    sub = _restricted(study)
    drop = set(REDUCED_TRAJECTORY) if sub is None else set(_FULL_TRAJECTORY)
    drop |= {"Q_ik"} if sub == "grouped" else set(_GROUPED_ONLY)
    drop |= set() if any(trained) else {"v", "v_common"}
    return [k for k in TRAJECTORY_OUTPUTS if k not in drop]


@register_measure("trajectory", TRAJECTORY_OUTPUTS, coords=unit_coords, select=_trajectory_outputs)
def measure_trajectory(ctx: PointContext, settings: dict) -> Outcome:
    """The order parameters and eps_g along the run, sampled as ``[integration]`` asks, up to where it stopped."""
    return trajectory_values(point_trajectory(ctx))


@register_measure("final_eg", {"final_eg": Output("eps_g at the end of the horizon"), "alpha_end": ALPHA_END})
def measure_final_eg(ctx: PointContext, settings: dict) -> Outcome:
    """Generalisation error at the end of the horizon; NaN where the run did not get there.

    A run stopped by ``stop_eg`` (status ``converged``) ends at the threshold
    itself, and a diverged one at the blow-up cut-off: neither is an error at
    the horizon, so both give NaN (``alpha_end`` says where the run stopped;
    ``convergence_time`` measures when the threshold was reached).
    """
    traj = point_trajectory(ctx)
    status = traj.attrs["status"]
    eg = float(traj["eg"].values[-1]) if status == "ok" else math.nan
    return Outcome({"final_eg": eg, "alpha_end": float(traj.attrs["alpha_end"])}, status, str(traj.attrs["message"]))


_POSITIVE = dict(kind="number", table="measures", low=0.0, low_open=True)


@register_measure("convergence_time", {"convergence_time": Output("convergence time alpha (eps_g < threshold)")},
                  settings={"threshold": Parameter("threshold", long_name="eps_g threshold", **_POSITIVE)})
def measure_convergence_time(ctx: PointContext, settings: dict) -> Outcome:
    """First alpha with eps_g below ``threshold`` (default: ``stop_eg``, else 1e-3); inf if never.

    Exact to solver tolerance: either the trajectory itself stopped there
    (``stop_eg == threshold``) or :func:`phasekit.committee.plateaus.convergence_time`
    locates the crossing by event detection.  NaN where the run diverged or failed first.
    """
    stop = ctx.params["stop_eg"]
    threshold = settings["threshold"] or stop or 1e-3
    traj = point_trajectory(ctx)
    status, message = traj.attrs["status"], str(traj.attrs["message"])
    if status == "converged" and stop == threshold:
        return Outcome({"convergence_time": float(traj.attrs["alpha_end"])}, "converged", message)
    if status in ("diverged", "failed"):
        return Outcome({"convergence_time": math.nan}, status, message)
    if np.nanmin(traj["eg"].values) > 2 * threshold:  # nowhere near: no need to locate a crossing
        return Outcome({"convergence_time": math.inf}, "not_reached",
                       f"eps_g stayed above {threshold:g} up to alpha = {float(traj.attrs['alpha_end']):.6g}")
    res = ctx.shared(("convergence_time", threshold), lambda: convergence_time(traj, threshold))
    return Outcome({"convergence_time": float(res)}, res.status, res.message)


@register_measure("plateau_length",
                  {"plateau_entry": Output("entry into the plateau band alpha_in"),
                   "plateau_exit": Output("exit from the plateau band alpha_out"),
                   "plateau_length": Output("plateau length alpha_P")},
                  settings={"band": Parameter("band", "number", 0.05, "relative half-width of the plateau band", "1",
                                              table="measures", low=0.0, low_open=True, high=1.0, high_open=True),
                            "alpha_max": Parameter("alpha_max", long_name="horizon of the plateau search alpha",
                                                   **_POSITIVE)},
                  check=_needs_autonomous("plateau_length (the band around the symmetric plateau)"))
def measure_plateau_length(ctx: PointContext, settings: dict) -> Outcome:
    """Time spent within ``band`` (relative) of the symmetric plateau's eps_g, from the start.

    Entry and exit are located by event detection from the point's start with
    the ``[solver]`` settings, up to ``alpha_max`` (default
    ``2 ln(1/X) / lambda_esc + 1000 / eta``: twice the escape time past the
    plateau).  NaN if the flow never comes near the plateau, inf if it ends there.
    """
    model = point_model(ctx)
    fp = plateau_of(model, ctx.newton)
    if not fp.success:
        return _no_plateau(("plateau_entry", "plateau_exit", "plateau_length"), "failed",
                           f"symmetric_plateau: {fp.message}")
    numbers = _plateau_numbers(model, fp)
    lam = numbers["escape_eigenvalue"]
    amax = settings["alpha_max"]
    if amax is None:
        X = ctx.params["X"]
        if not (X > 0 and lam > 0):
            return _no_plateau(("plateau_entry", "plateau_exit", "plateau_length"), "failed",
                               f"plateau_length: the default horizon needs X > 0 and an escape eigenvalue > 0 "
                               f"(X = {X:g}, lambda_esc = {lam:g}); give alpha_max")
        amax = 2.0 * math.log(1.0 / X) / lam + 1e3 / model.eta
    start = point_start(ctx)
    res = _band_times(model, start if isinstance(start, np.ndarray) else start.to_vector(), 0.0, float(amax),
                      numbers["plateau_eg"], settings["band"], ctx.solver)
    return Outcome({"plateau_entry": res.entry, "plateau_exit": res.exit, "plateau_length": res.length},
                   res.status, res.message)


def _plateau_numbers(model: Any, fp: Any) -> dict[str, float]:
    """eps_g, escape eigenvalue and its multiplicity, R, Q, C of a symmetric plateau (full or reduced)."""
    if isinstance(model, ReducedCommittee):  # FixedPoint in (R, S, Q, C[, v]), escape inside the subspace
        lam = fp.extra.get("escape_eigenvalue")
        ev = np.asarray(fp.eigenvalues)
        mult = int(np.sum(np.abs(ev - lam) <= max(fp.eig_tol, 1e-9 * abs(lam)))) if lam is not None else 0
        z = fp.vector
        return {"plateau_eg": float(model.eg_vector(z)), "escape_eigenvalue": math.nan if lam is None else float(lam),
                "escape_multiplicity": mult, "plateau_R": float(z[0]), "plateau_Q": float(z[2]),
                "plateau_C": float(z[3])}
    lam = fp.escape_eigenvalue
    Q = fp.state.Q
    return {"plateau_eg": float(fp.eg), "escape_eigenvalue": math.nan if lam is None else complex(lam).real,
            "escape_multiplicity": int(fp.escape_multiplicity), "plateau_R": float(fp.state.R[0, 0]),
            "plateau_Q": float(Q[0, 0]), "plateau_C": float(Q[0, 1])}


def _no_plateau(names: tuple[str, ...], status: str, message: str) -> Outcome:
    return Outcome({k: math.nan for k in names}, status, message)


_PLATEAU_OUTPUTS = {
    "plateau_eg": Output("eps_g at the symmetric plateau"),
    "escape_eigenvalue": Output("escape eigenvalue of the symmetric plateau", "1/alpha"),
    "escape_multiplicity": Output("dimension of the escape eigenspace"),
    "escape_closed_form": Output("Saad-Solla closed form of the erf escape eigenvalue", "1/alpha"),
    "plateau_R": Output("plateau student-teacher overlap R"),
    "plateau_Q": Output("plateau student norm Q"),
    "plateau_C": Output("plateau student-student overlap C"),
    "plateau_residual": Output("max |d state / d alpha| at the plateau", "1/alpha"),
    "plateau_n_unstable": Output("unstable directions of the plateau"),
}


def _saad_solla_escape(model: Committee) -> float:
    """``2K / (pi sqrt(2K - 1) (2K + 1)^(3/2))`` per unit eta alpha: erf, K = M, T = I, first order."""
    K = model.K
    identity = (model.Td, model.To) == (1.0, 0.0) if isinstance(model, ReducedCommittee) else \
        np.array_equal(model.T, np.eye(model.M))
    if model.activation.name != "erf" or model.second_order or model.K != model.M or model.noise != 0 \
            or not identity or K < 2:
        return math.nan
    return model.eta * 2 * K / (math.pi * math.sqrt(2 * K - 1) * (2 * K + 1) ** 1.5)


@register_measure("plateau", _PLATEAU_OUTPUTS, check=_needs_autonomous("the symmetric plateau"),
                  ignores=("initial", "integration"))
def measure_plateau(ctx: PointContext, settings: dict) -> Outcome:
    """The symmetric plateau (:func:`phasekit.committee.landmarks.symmetric_plateau`): eps_g, escape rate, overlaps.

    In a subspace (``model.subspace``) the reduced model's plateau: its escape
    eigenvalue, multiplicity and unstable directions are those inside the subspace.
    """
    model = point_model(ctx)
    if model.K < 2:
        return _no_plateau(tuple(_PLATEAU_OUTPUTS), "not_reached",
                           "K = 1: a single student has no permutation symmetry to break, so no symmetric plateau")
    fp = plateau_of(model, ctx.newton)
    values = {k: math.nan for k in _PLATEAU_OUTPUTS}
    values["escape_closed_form"] = _saad_solla_escape(model)
    if np.all(np.isfinite(fp.vector)):
        values.update(_plateau_numbers(model, fp), plateau_residual=float(fp.residual),
                      plateau_n_unstable=int(fp.n_unstable))
    return Outcome(values, fp.status, fp.message)


@register_measure("asymptotic_eg", {"asymptotic_eg": Output("asymptotic eps_g")},
                  settings={"speed_tol": Parameter("speed_tol", long_name="speed below which the flow has stopped",
                                                   **_POSITIVE)},
                  check=_needs_autonomous("asymptotic_eg (the fixed point the flow ends at)"))
def measure_asymptotic_eg(ctx: PointContext, settings: dict) -> Outcome:
    """eps_g of the fixed point the flow ends at (:func:`phasekit.committee.asymptotics.asymptotic_eg`).

    A run that has not stopped by its horizon keeps its last eps_g (status
    ``not_reached``); a diverged run gives NaN.  In a subspace (``model.subspace``)
    the reduced flow's end point.
    """
    kw = {"speed_tol": settings["speed_tol"]} if settings["speed_tol"] is not None else {}
    res = asymptotic_eg(point_model(ctx), point_start(ctx), solver=ctx.solver, newton=ctx.newton, **kw)
    return Outcome({"asymptotic_eg": float(res)}, res.status, res.message)


def _needs_second_order(study: Any) -> str | None:
    values = [study.params["second_order"]] + [a["second_order"] for ax in study.axes for a in ax.assigns
                                               if "second_order" in a]
    if False in values:
        where = "the grid" if study.params["second_order"] else "model.second_order"
        return (f"eta_c is the learning rate at which the eta^2 term of SGD destabilises the perfect solution, "
                f"so it needs second_order = true ({where} sets it false: the first-order flow is stable at "
                f"every eta)")
    return None


_ETA_MAX = Parameter("eta_max", "number", 1e3, "upper end of the eta_c search", "1", table="measures", low=1e-3,
                     low_open=True)
# What eta_c and eta_opt do not depend on: they are properties of the model's exact (second-order) flow
# over all eta, whatever the point's eta and start.
_ETA_FREE = ("eta", "eta_over_eta_c", "second_order", "initial", "integration")


@register_measure("eta_c",
                  {"eta_c": Output("critical learning rate eta_c"),
                   "eta_c_error": Output("eta_c error propagated from the Jacobian error"),
                   "eta_c_precision": Output("half width of the final eta_c bracket"),
                   "jacobian_error": Output("estimated max error of a Jacobian entry (A, B)"),
                   "crossing_real": Output("eigenvalue crossing zero at eta_c is real (1) or complex (0)")},
                  settings={"eta_max": _ETA_MAX}, check=_needs_exact_autonomous("eta_c"), ignores=_ETA_FREE)
def measure_eta_c(ctx: PointContext, settings: dict) -> Outcome:
    """Critical learning rate of the perfect solution (:func:`phasekit.committee.stability.critical_eta`).

    Always for the exact (second-order) flow; independent of the point's eta.
    In a subspace (``model.subspace``): the value inside it (``critical_eta(model, subspace=...)``).
    """
    st, res = _stability(ctx.params, settings["eta_max"])
    values = {"eta_c": float(res), "eta_c_error": float(res.error), "eta_c_precision": float(res.precision),
              "jacobian_error": float(st.error), "crossing_real": float(res.crossing == "real")}
    return Outcome(values, res.status, res.message)


@register_measure("eta_opt",
                  {"eta_opt": Output("learning rate of fastest asymptotic convergence eta_opt"),
                   "rate_opt": Output("slowest asymptotic decay rate at eta_opt", "1/alpha"),
                   "kink": Output("eta_opt where two eigenvalues exchange the lead (1) or smooth maximum (0)")},
                  settings={"eta_max": _ETA_MAX}, check=_needs_exact_autonomous("eta_opt"), ignores=_ETA_FREE)
def measure_eta_opt(ctx: PointContext, settings: dict) -> Outcome:
    """Learning rate of fastest asymptotic convergence (:func:`phasekit.committee.stability.optimal_eta`)."""
    st, ec = _stability(ctx.params, settings["eta_max"])
    if not (math.isfinite(ec.value) and ec.value > 0):
        return Outcome({"eta_opt": math.nan, "rate_opt": math.nan, "kink": 0.0}, "not_reached",
                       f"no finite eta_c ({ec.message}): no optimum below it")
    exact = _build(ctx.params, 1.0, True)
    res = _memo(("eta_opt",) + _model_key(exact), lambda: optimal_eta(exact, structure=st))
    return Outcome({"eta_opt": float(res), "rate_opt": float(res.rate), "kink": float(res.kink)},
                   res.status, res.message)


def _steady_check(study: Any) -> str | None:
    return _needs_autonomous("the steady state")(study)


@register_measure("steady_eg",
                  {"steady_eg": Output("steady-state eps_g on the perfect solution's branch"),
                   "steady_R": Output("steady-state overlap R_ii (mean over i)"),
                   "steady_Q": Output("steady-state norm Q_ii (mean over i)"),
                   "steady_n_unstable": Output("unstable directions of the steady state")},
                  check=_steady_check, ignores=("initial", "integration"))
def measure_steady_eg(ctx: PointContext, settings: dict) -> Outcome:
    """The fixed point the perfect solution becomes under drift, weight decay and noise (any K, M).

    :func:`phasekit.committee.steady.steady_state` with the ``[newton]``
    settings, independent of the start; status ``failed`` where it was not found.
    In a subspace (``model.subspace``) the reduced flow's steady state (``R``, ``Q``
    of its order parameters).
    """
    model = point_model(ctx)
    fp = _memo(("steady",) + _model_key(model, ctx.newton), lambda: steady_state(model, newton=ctx.newton))
    values = {"steady_eg": math.nan, "steady_R": math.nan, "steady_Q": math.nan, "steady_n_unstable": math.nan}
    if fp.success and getattr(model, "subspace", None) is not None:
        z = dict(zip(model.labels, fp.vector))
        values.update(steady_eg=float(model.eg_vector(fp.vector)), steady_R=float(z["R"]), steady_Q=float(z["Q"]),
                      steady_n_unstable=int(fp.n_unstable))
    elif fp.success:
        values.update(steady_eg=float(fp.eg), steady_R=float(np.mean(np.diag(fp.state.R))),
                      steady_Q=float(np.mean(np.diag(fp.state.Q))), steady_n_unstable=int(fp.n_unstable))
    return Outcome(values, fp.status, fp.message)


# --- finite-N SGD -----------------------------------------------------------------------------------

_LEVEL = Parameter("level", "choice", "microscopic", "simulation level", table="measures",
                   choices=("microscopic", "reduced"))
_N = Parameter("N", "integer", 1000, "input dimension N", table="measures", low=2)
_RUNS = Parameter("n_runs", "integer", 1, "independent runs", table="measures", low=1)

_SIM_OUTPUTS = {
    "sim_alpha": Output("examples per input dimension alpha (simulation)", "1", ("sim_sample",)),
    "sim_R": Output("student-teacher overlap R_in (simulation)", "1", ("run", "sim_sample", "i", "n")),
    "sim_Q": Output("student-student overlap Q_ik (simulation)", "1", ("run", "sim_sample", "i", "k")),
    "sim_eg": Output("generalisation error eps_g (simulation)", "1", ("run", "sim_sample")),
    "teacher_perm": Output("teacher relabelled as n", "", ("run", "n")),
    "n_diverged": Output("runs that diverged"),
}


@register_measure("simulation", _SIM_OUTPUTS, coords=unit_coords,
                  settings={"N": _N, "n_runs": _RUNS, "level": _LEVEL,
                            "n_points": Parameter("n_points", "integer", 101, "samples of each run", table="measures",
                                                  low=2),
                            "n_test": Parameter("n_test", "integer", 0, "test-set size", table="measures", low=0),
                            "align": Parameter("align", "boolean", True, "relabel the teachers of each run (K = M)",
                                               table="measures")})
def measure_simulation(ctx: PointContext, settings: dict) -> Outcome:
    """On-line SGD at finite N (:func:`phasekit.committee.simulation.simulate`) from the point's start.

    Runs of a K = M > 1 committee are relabelled to the teacher labelling of
    the largest overlaps (:func:`phasekit.committee.simulation.align_teachers`).
    """
    model = point_model(ctx)
    sim = simulate(model, point_start(ctx), settings["N"], horizon(ctx), n_runs=settings["n_runs"],
                   seed=ctx.params["seed"], level=settings["level"], n_points=settings["n_points"],
                   n_test=settings["n_test"], n_workers=1, progress=False)
    if settings["align"] and model.K == model.M > 1:
        sim = align_teachers(sim)
    values = {"sim_alpha": sim["alpha"].values, "sim_R": sim["R"].values, "sim_Q": sim["Q"].values,
              "sim_eg": sim["eg"].values, "n_diverged": float(sim.attrs["n_diverged"])}
    if "teacher_perm" in sim:
        values["teacher_perm"] = sim["teacher_perm"].values.astype(float)
    return Outcome(values, sim.attrs["status"], str(sim.attrs["message"]))


def _component_coords(study: Any) -> dict:
    K, M = study.params["K"], study.params["M"]
    M = K if M == "K" else M
    if any("K" in a or "M" in a for ax in study.axes for a in ax.assigns):
        return {}
    return {"component": (np.array(vector_labels(K, M), dtype=object), {"long_name": "order parameter",
                                                                          "units": ""})}


@register_measure("spread",
                  {"mean": Output("mean over runs", "1", ("component",)),
                   "std": Output("standard deviation over runs", "1", ("component",))},
                  coords=_component_coords,
                  settings={"N": _N, "n_runs": Parameter("n_runs", "integer", 100, "independent runs",
                                                         table="measures", low=2),
                            "level": Parameter("level", "choice", "reduced", "simulation level", table="measures",
                                               choices=("microscopic", "reduced")),
                            "alpha": Parameter("alpha", "number", 5.0, "time of the snapshot alpha", "1",
                                               table="measures", low=0.0, low_open=True)})
def measure_spread(ctx: PointContext, settings: dict) -> Outcome:
    """Mean and run-to-run standard deviation of every order parameter at ``alpha``, at finite N."""
    model = point_model(ctx)
    n_runs = settings["n_runs"]
    ds = simulate(model, point_start(ctx), settings["N"], settings["alpha"], n_runs=n_runs, seed=ctx.params["seed"],
                  level=settings["level"], n_points=2, n_workers=1, progress=False)
    R, Q = ds["R"].values[:, -1], ds["Q"].values[:, -1]
    iu = np.triu_indices(model.K)
    v = np.concatenate([R.reshape(n_runs, -1), Q[:, iu[0], iu[1]]], axis=-1)
    return Outcome({"mean": v.mean(axis=0), "std": v.std(axis=0, ddof=1)}, ds.attrs["status"],
                   str(ds.attrs["message"]))


@register_measure("plateau_second_layer",
                  {"plateau_v": Output("student second-layer weight v at the symmetric plateau"),
                   "plateau_v_escape": Output("v component of the unit escape eigenvector")},
                  check=_needs_autonomous("the symmetric plateau"))
def measure_plateau_second_layer(ctx: PointContext, settings: dict) -> Outcome:
    """The second layer at the symmetric plateau (the fixed v where it is not trained)."""
    model = point_model(ctx)
    if model.K < 2:
        return Outcome({"plateau_v": math.nan, "plateau_v_escape": math.nan}, "not_reached",
                       "K = 1: a single student has no permutation symmetry to break, so no symmetric plateau")
    fp = plateau_of(model, ctx.newton)
    v = fp.state.v if fp.state.v is not None else model.student_weights
    esc = math.nan
    if model.train_second_layer and fp.escape_vector is not None:
        u = np.real(np.asarray(fp.escape_vector, dtype=complex))
        esc = float(np.max(np.abs(u[-model.K:])))
    return Outcome({"plateau_v": float(np.mean(v)), "plateau_v_escape": esc}, fp.status, fp.message)


# --- a reduced model (model.subspace): which measures serve it ---------------------------------------

# Measures of the whole state (K x K overlaps, microscopic runs) or of fixed points the reduced model
# does not have (noise floors from a guess of the full state): refused in a subspace.
_FULL_SPACE_ONLY = ("simulation", "spread", "noise_floor", "plateau_second_layer")
# Measures that integrate from the point's start: in a subspace it must lie in it.
_FROM_START = ("trajectory", "final_eg", "convergence_time", "plateau_length", "asymptotic_eg")


def _subspace_start_problem(study: Any) -> str | None:
    """Why the study's starts do not lie in the subspace its models are restricted to, or None."""
    values = lambda k: [study.params.get(k)] + [a[k] for ax in study.axes for a in ax.assigns if k in a]  # noqa: E731
    if any(kind != "diagonal" for kind in values("kind")) and not any(r is not None for r in values("R0")):
        return (f"a start in the {_restricted(study).replace('_', '-')} subspace is R = X, Q = Q0, the other overlaps 0 "
                "(initial.kind = \"diagonal\") or an R0, Q0 in it; initial.kind is not \"diagonal\" at some grid point")
    if any(q is None or (isinstance(q, list) and not isinstance(q[0], list)) for q in values("Q0")):
        return (f"a start in the {_restricted(study).replace('_', '-')} subspace needs equal student norms: give "
                "initial.Q0 as one number "
                "(or a whole matrix with R0)")
    return None


def _in_subspace(name: str, check: Callable[[Any], str | None] | None) -> Callable[[Any], str | None]:
    """``check`` of measure ``name``, preceded by whether it can serve a study restricted to a subspace."""
    def composed(study: Any) -> str | None:
        sub = _restricted(study)
        if sub is not None and name in _FULL_SPACE_ONLY:
            return (f"needs the full model, but model.subspace = {sub!r} restricts the flow to a subspace "
                    f"(measures that work there: {', '.join(m for m in _SUBSPACE_MEASURES)}); leave model.subspace unset")
        if sub is not None and name in _FROM_START:
            problem = _subspace_start_problem(study)
            if problem:
                return problem
        return check(study) if check is not None else None

    return composed


def wrap_subspace_checks() -> None:
    """Precede every committee measure's check by whether it serves a study restricted to a subspace.

    Called by :mod:`~phasekit.study.registry` once every committee measure is registered.
    """
    from dataclasses import replace

    from .measures import MEASURES

    for name, spec in list(MEASURES.items()):
        if spec.system == "committee":
            MEASURES[name] = replace(spec, check=_in_subspace(name, spec.check))


_SUBSPACE_MEASURES = ("trajectory", "final_eg", "convergence_time", "plateau_length", "plateau", "asymptotic_eg",
                      "eta_c", "eta_opt", "steady_eg", "steady_eta", "annealing_asymptote")
