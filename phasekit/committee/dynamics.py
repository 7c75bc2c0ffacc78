"""Integration of the order-parameter ODEs into trajectory datasets."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from ..core.datasets import coordinate, model_attrs, provenance_attrs, variable
from ..core.ode import Event, FlowRun, blow_up, cone_exit, crossing, solve_flow
from ..core.options import SolverOptions, coerce_options
from .model import PSD_TOL, Committee, State, committee_from_parameters

__all__ = ['integrate', 'model_from_dataset', 'run_flow', 'state_at', 'trajectory_dataset']


def run_flow(model: Committee, v0: np.ndarray, span: tuple[float, float], *, solver: SolverOptions,
             events: Sequence[Event] = (), dense: bool = False) -> FlowRun:
    """The order-parameter flow from ``v0`` over ``span`` (:func:`phasekit.core.ode.solve_flow`).

    Two terminal events come first: leaving the positive-semidefinite cone
    (smallest eigenvalue of the field covariance, relative to its scale, below
    ``-1e3 * PSD_TOL``) and an order parameter beyond ``solver.max_norm``; both
    end the run as ``diverged``, as does a solver that stops at a state with a
    non-finite right-hand side or outside the cone.  With a learning-rate
    schedule the flow is evaluated at the solver's time alpha.
    """
    def outside(v: np.ndarray) -> bool:
        return not np.all(np.isfinite(model.rhs_vector(v, span[0]))) or model.min_eigenvalue(v) < 0

    cone = [cone_exit(model.min_eigenvalue, offset=1e3 * PSD_TOL),
            blow_up(solver.max_norm, message=f"an order parameter exceeded {solver.max_norm:g}")]
    if model.autonomous:
        def flow(_a: float, v: np.ndarray) -> np.ndarray:
            return model.rhs_vector(v)
    else:
        def flow(a: float, v: np.ndarray) -> np.ndarray:
            return model.rhs_vector(v, a)
    return solve_flow(flow, v0, span, events=cone + list(events), options=solver,
                      dense=dense, diverged=outside, time_name="alpha")


def integrate(
    model: Committee,
    state0: State,
    alpha_max: float,
    *,
    n_points: int = 501,
    alpha_eval: np.ndarray | None = None,
    solver: SolverOptions | Mapping[str, Any] | None = None,
    stop_eg: float | None = None,
) -> xr.Dataset:
    """Integrate the order-parameter ODEs from ``state0`` to ``alpha_max``.

    Parameters
    ----------
    model : Committee
    state0 : State
        Initial order parameters; ``[[Q, R], [R^T, T]]`` must be positive
        semidefinite.  With a trained second layer ``state0.v`` holds the
        initial second-layer weights (required).
    alpha_max : float
        Final time ``alpha = mu / N`` (examples per input dimension), ``> 0``.
    n_points : int
        Samples on an even grid ``[0, alpha_max]`` (ignored if ``alpha_eval`` is given).
    alpha_eval : array_like, optional
        Explicit increasing sample times in ``[0, alpha_max]``.
    solver : SolverOptions, mapping or None
        ODE solver settings (:class:`phasekit.core.options.SolverOptions`, a
        mapping of its fields, or ``None`` for the defaults: DOP853,
        ``rtol = 1e-9``, ``atol = 1e-14``, ``max_norm = 1e6``).  ``atol`` is far
        below the usual 1e-12 because symmetry-breaking components start tiny
        (``R ~ X`` down to 1e-12) and decide when the plateau ends; a looser
        ``atol`` lets the solver blur exactly the signal that matters.  ReLU
        runs that converge onto the perfect solution become stiff there (the
        flow has square-root terms in the distance to the cone boundary): an
        explicit method then takes very many tiny steps; pass ``stop_eg`` or
        ``solver={"method": "LSODA"}`` (about ten times fewer evaluations) for
        such runs.  A run whose largest |order parameter| exceeds
        ``max_norm`` is reported diverged.
    stop_eg : float, optional
        Stop at the first alpha where ``eps_g`` falls below this value.

    Returns
    -------
    xarray.Dataset
        Coordinates ``alpha`` (and ``eta_alpha``: ``eta * alpha``, with a
        schedule ``int_0^alpha eta(a) da``), ``i``, ``k`` (student units),
        ``n`` (teacher units); variables ``R(alpha, i, n)``, ``Q(alpha, i, k)``,
        ``eg(alpha)``, with a trained second layer ``v(alpha, i)``, with a
        schedule ``learning_rate(alpha)``.  The attributes describe the model
        (every parameter, also as JSON under ``model``).  ``attrs["status"]`` is ``"ok"``,
        ``"converged"`` (``stop_eg`` reached), ``"diverged"`` (left the
        positive-semidefinite cone, blew up or produced non-finite values) or
        ``"failed"`` (solver failure); ``attrs["alpha_end"]`` is where the run
        stopped and the samples end there (a diverged run carries no samples
        beyond the divergence); ``attrs["message"]`` says why in one line and
        ``attrs["n_rhs"]`` counts right-hand-side evaluations.  The solver
        settings are stored (``rtol``, ``atol``, ``method``, ``max_norm``
        attributes) so that re-integrations (:mod:`phasekit.committee.plateaus`)
        use the same ones.
    """
    if not isinstance(model, Committee):
        raise ValueError(f"model: expected a phasekit.Committee, got {type(model).__name__}")
    model.validate_state(state0, "state0")
    alpha_max = float(alpha_max)
    if not np.isfinite(alpha_max) or alpha_max <= 0:
        raise ValueError(f"alpha_max: must be finite and > 0, got {alpha_max!r}")
    if alpha_eval is None:
        if int(n_points) < 2:
            raise ValueError(f"n_points: need at least 2 samples, got {n_points!r}")
        alpha_eval = np.linspace(0.0, alpha_max, int(n_points))
    else:
        alpha_eval = np.asarray(alpha_eval, dtype=float)
        if alpha_eval.ndim != 1 or np.any(np.diff(alpha_eval) <= 0) or alpha_eval[0] < 0 \
                or alpha_eval[-1] > alpha_max:
            raise ValueError("alpha_eval: must be strictly increasing within [0, alpha_max]")
    opts = coerce_options(solver, SolverOptions, "solver")
    if stop_eg is not None and not stop_eg > 0:
        raise ValueError(f"stop_eg: threshold must be > 0, got {stop_eg!r}")
    max_norm = opts.max_norm

    stop = [] if stop_eg is None else [crossing(model.eg_vector, float(stop_eg), name="stop_eg",
                                                 message=f"eps_g fell below {stop_eg:g}")]
    v0 = model.state_vector(state0, "state0")
    # A schedule that jumps (piecewise constant) is integrated piece by piece: an
    # adaptive step across a jump of the flow loses the solver's accuracy.
    jumps = getattr(model.eta_schedule, "boundaries", ())
    edges = [0.0, *(b for b in jumps if 0.0 < b < alpha_max), alpha_max]
    a_parts, y_parts, n_rhs, v = [], [], 0, v0
    for lo, hi in zip(edges[:-1], edges[1:]):
        run = run_flow(model, v, (lo, hi), solver=opts, events=stop, dense=True)
        n_rhs += run.nfev
        alpha_end, status = run.t_end, run.status
        last = status != "ok" or hi == alpha_max
        a = alpha_eval[(alpha_eval >= lo) & ((alpha_eval < alpha_end) if last else (alpha_eval < hi))]
        if last and (a.size == 0 or a[-1] < alpha_end):
            a = np.append(a, alpha_end)
        if run.n_steps == 0:  # failed on the first step: only the start of the piece is known
            a_parts.append(np.array([lo]))
            y_parts.append(v[None, :])
        elif a.size:
            a_parts.append(a)
            y_parts.append(run.sample(a))
        if last:
            break
        v = run.y_end
    message = "reached alpha_max" if status == "ok" else run.message
    a, Y = np.concatenate(a_parts), np.concatenate(y_parts)
    settings = {"rtol": opts.rtol, "atol": opts.atol, "method": opts.method, "stop_eg": stop_eg,
                "max_norm": max_norm, "alpha_max": alpha_max}
    ds = trajectory_dataset(model, a, Y, settings=settings)
    ds.attrs.update(status=status, message=message, alpha_end=alpha_end, n_rhs=n_rhs)
    return ds


def trajectory_dataset(
    model: Committee,
    alpha: np.ndarray,
    Y: np.ndarray,
    *,
    settings: dict[str, Any] | None = None,
    extra_dims: tuple[str, ...] = (),
    eg: np.ndarray | None = None,
) -> xr.Dataset:
    """Wrap state vectors ``Y`` of shape ``(*extra, len(alpha), n_state)`` in a dataset.

    Shared by :func:`integrate` and the simulations (``extra_dims=("run",)``).
    ``n_state`` is the model's (second-layer weights last when trained).
    ``eg``: eps_g of ``Y`` (shape ``Y.shape[:-1]``) when the caller has it, else computed here.
    """
    K, M = model.K, model.M
    Y = np.asarray(Y, dtype=float)
    lead = Y.shape[:-1]
    R = Y[..., : K * M].reshape(lead + (K, M))
    Q = np.empty(lead + (K, K))
    iu = np.triu_indices(K)
    Q[..., iu[0], iu[1]] = Y[..., K * M:model.n_order]
    Q[..., iu[1], iu[0]] = Y[..., K * M:model.n_order]
    eg = model.eg_vector(Y) if eg is None else np.asarray(eg, dtype=float)
    dims = extra_dims + ("alpha",)
    alpha = np.asarray(alpha, float)
    data = {
        "R": variable("R", dims + ("i", "n"), R),
        "Q": variable("Q", dims + ("i", "k"), Q),
        "eg": variable("eg", dims, eg),
    }
    if model.train_second_layer:
        data["v"] = variable("v", dims + ("i",), Y[..., model.n_order:])
    if model.autonomous:
        eta_alpha = variable("eta_alpha", "alpha", model.eta * alpha)
    else:
        eta_alpha = variable("eta_alpha", "alpha", np.asarray(model.scaled_time(alpha)),
                             long_name="scaled time int_0^alpha eta(a) da")
        data["learning_rate"] = variable("learning_rate", "alpha", np.asarray(model.eta_at(alpha)))
    ds = xr.Dataset(
        data,
        coords={
            "alpha": coordinate("alpha", alpha),
            "eta_alpha": eta_alpha,
            "i": coordinate("i", np.arange(1, K + 1)),
            "k": coordinate("k", np.arange(1, K + 1)),
            "n": coordinate("n", np.arange(1, M + 1)),
        },
    )
    params = model.parameters()
    attrs = provenance_attrs({"model": params, "solver": settings or {}})
    attrs.update(model_attrs(params))
    for key, val in (settings or {}).items():
        attrs[key] = "none" if val is None else val
    ds.attrs.update(attrs)
    return ds


def _trajectory_solver(ds: xr.Dataset) -> SolverOptions:
    """The solver settings a trajectory dataset stores (defaults for those it lacks)."""
    stored = {}
    for key in ("method", "rtol", "atol", "max_norm"):
        val = ds.attrs.get(key)
        if val is not None and not (isinstance(val, str) and val == "none"):
            stored[key] = str(val) if key == "method" else float(val)
    try:
        return SolverOptions(**stored)
    except ValueError as exc:
        raise ValueError(f"traj: stored solver settings are invalid ({exc})") from None


def model_from_dataset(ds: xr.Dataset) -> Committee:
    """The :class:`Committee` a trajectory dataset was computed with."""
    if "model" not in ds.attrs:
        raise ValueError("ds: dataset has no 'model' attribute (not written by phasekit.integrate?)")
    return committee_from_parameters(ds.attrs["model"])


def state_at(ds: xr.Dataset, index: int = -1) -> State:
    """The :class:`State` at sample ``index`` of a trajectory dataset (with ``v`` when the dataset has it)."""
    v = ds["v"].isel(alpha=index).values if "v" in ds else None
    return State(ds["R"].isel(alpha=index).values, ds["Q"].isel(alpha=index).values, v)
