"""Integration of the order-parameter ODEs into trajectory datasets."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from ..core.datasets import coordinate, model_attrs, provenance_attrs, variable
from ..core.ode import Event, FlowRun, blow_up, cone_exit, crossing, solve_flow
from ..core.options import SolverOptions, coerce_options
from .model import PSD_TOL, Committee, State, committee_from_parameters
from .subspaces import ReducedCommittee, reduced_from_parameters

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
    spacing: str = "linear",
) -> xr.Dataset:
    """Integrate the order-parameter ODEs from ``state0`` to ``alpha_max``.

    Parameters
    ----------
    model : Committee or ReducedCommittee
        A full model, or a reduced one (:meth:`Committee.restrict`): then the
        state is ``(R, S, Q, C[, v])`` and the dataset has variables ``R``,
        ``S``, ``Q``, ``C`` (and ``v``), ``eg`` along alpha and the attribute
        ``subspace``.
    state0 : State
        Initial order parameters; ``[[Q, R], [R^T, T]]`` must be positive
        semidefinite.  With a trained second layer ``state0.v`` holds the
        initial second-layer weights (required).  For a reduced model: a
        sequence ``(R, S, Q, C[, v])``, a mapping of those names or a full
        State in the subspace.
    alpha_max : float
        Final time ``alpha = mu / N`` (examples per input dimension), ``> 0``.
    n_points : int
        Samples from 0 to where the run ends: ``alpha_max``, or the alpha at
        which it stopped early (``stop_eg`` reached, diverged, failed), so that
        a run that stops early is sampled as densely as one that does not
        (ignored if ``alpha_eval`` is given).
    alpha_eval : array_like, optional
        Explicit increasing sample times in ``[0, alpha_max]``; those before
        the end of the run are kept, and the end itself is appended.
    spacing : {"linear", "log"}
        Spacing of the ``n_points`` samples: even, or 0 then log-spaced from
        ``1e-4`` of the end to the end.
    solver : SolverOptions, mapping or None
        ODE solver settings (:class:`phasekit.core.options.SolverOptions`, a
        mapping of its fields, or ``None`` for the defaults: DOP853,
        ``rtol = 1e-9``, ``atol = 1e-14``, ``max_norm = 1e6``).  ``atol`` is far
        below the usual 1e-12 because symmetry-breaking components start tiny
        (``R ~ X`` down to 1e-12) and decide when the plateau ends; a looser
        ``atol`` lets the solver blur exactly the signal that matters.  ReLU
        runs that converge onto the perfect solution take about as many
        evaluations as erf runs: the flow has square-root terms in the distance
        to the cone boundary, but the ReLU kernels are evaluated without
        cancellation there, so it stays smooth to rounding.  Near the perfect
        solution that distance (``~sqrt(eps_g)``) is a difference of order
        parameters of order 1, so a crossing of ``eps_g = 1e-10`` is located
        to ``~1e-3`` relative at the default ``rtol`` (``1e-7`` at ``1e-8``).
        A run whose largest absolute order parameter exceeds ``max_norm`` is
        reported diverged.
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
        stopped and the last sample is there (a diverged run carries no samples
        beyond the divergence; the samples come from the solver's dense output); ``attrs["message"]`` says why in one line and
        ``attrs["n_rhs"]`` counts right-hand-side evaluations.  The solver
        settings are stored (``rtol``, ``atol``, ``method``, ``max_norm``
        attributes) so that re-integrations (:mod:`phasekit.committee.plateaus`)
        use the same ones.
    """
    reduced = isinstance(model, ReducedCommittee)
    if not isinstance(model, Committee) and not reduced:
        raise ValueError(f"model: expected a phasekit.Committee or a reduced model (Committee.restrict), "
                         f"got {type(model).__name__}")
    model.validate_state(state0, "state0")
    alpha_max = float(alpha_max)
    if not np.isfinite(alpha_max) or alpha_max <= 0:
        raise ValueError(f"alpha_max: must be finite and > 0, got {alpha_max!r}")
    if spacing not in ("linear", "log"):
        raise ValueError(f"spacing: must be 'linear' or 'log', got {spacing!r}")
    if alpha_eval is None:
        if int(n_points) < 2:
            raise ValueError(f"n_points: need at least 2 samples, got {n_points!r}")
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
    pieces, n_rhs, v = [], 0, v0
    for lo, hi in zip(edges[:-1], edges[1:]):
        run = run_flow(model, v, (lo, hi), solver=opts, events=stop, dense=True)
        n_rhs += run.nfev
        pieces.append((lo, v, run))
        alpha_end, status = run.t_end, run.status
        if status != "ok" or hi == alpha_max:
            break
        v = run.y_end
    # the samples are placed once the end of the run is known, and read from the pieces' dense outputs
    if alpha_eval is None:
        alpha_eval = _samples(int(n_points), spacing, alpha_end)
    a_all = alpha_eval[alpha_eval < alpha_end]
    a_all = np.append(a_all, alpha_end)
    a_parts, y_parts = [], []
    for k, (lo, v, run) in enumerate(pieces):
        last = k == len(pieces) - 1
        if run.n_steps == 0:  # failed on the first step: only the start of the piece is known
            a_parts.append(np.array([lo]))
            y_parts.append(v[None, :])
            continue
        a = a_all[(a_all >= lo) & ((a_all <= alpha_end) if last else (a_all < pieces[k + 1][0]))]
        if a.size:
            a_parts.append(a)
            y_parts.append(run.sample(a))
    message = "reached alpha_max" if status == "ok" else run.message
    a, Y = np.concatenate(a_parts), np.concatenate(y_parts)
    settings = {"rtol": opts.rtol, "atol": opts.atol, "method": opts.method, "stop_eg": stop_eg,
                "max_norm": max_norm, "alpha_max": alpha_max}
    ds = trajectory_dataset(model, a, Y, settings=settings)
    ds.attrs.update(status=status, message=message, alpha_end=alpha_end, n_rhs=n_rhs)
    return ds


def _samples(n: int, spacing: str, end: float) -> np.ndarray:
    """``n`` sample times from 0 to ``end`` (just 0 when the run ends where it starts)."""
    if not end > 0:
        return np.array([0.0])
    if spacing == "log" and n > 2:
        return np.concatenate([[0.0], np.geomspace(end * 1e-4, end, n - 1)])
    return np.linspace(0.0, end, n)


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
    ``n_state`` is the model's (second-layer weights last when trained).  For a
    reduced model: its coordinates (``R``, ``S``, ``Q``, ``C``, ...; and ``v``) along alpha
    and the attribute ``subspace``.
    ``eg``: eps_g of ``Y`` (shape ``Y.shape[:-1]``) when the caller has it, else computed here.
    """
    Y = np.asarray(Y, dtype=float)
    eg = model.eg_vector(Y) if eg is None else np.asarray(eg, dtype=float)
    dims = extra_dims + ("alpha",)
    alpha = np.asarray(alpha, float)
    reduced = isinstance(model, ReducedCommittee)
    if reduced:
        data, coords = _reduced_variables(model, Y, dims), {}
    else:
        K, M = model.K, model.M
        lead = Y.shape[:-1]
        R = Y[..., : K * M].reshape(lead + (K, M))
        Q = np.empty(lead + (K, K))
        iu = np.triu_indices(K)
        Q[..., iu[0], iu[1]] = Y[..., K * M:model.n_order]
        Q[..., iu[1], iu[0]] = Y[..., K * M:model.n_order]
        data = {"R": variable("R", dims + ("i", "n"), R), "Q": variable("Q", dims + ("i", "k"), Q),
                "eg": variable("eg", dims, eg)}
        if model.train_second_layer:
            data["v"] = variable("v", dims + ("i",), Y[..., model.n_order:])
        coords = {"i": coordinate("i", np.arange(1, K + 1)), "k": coordinate("k", np.arange(1, K + 1)),
                  "n": coordinate("n", np.arange(1, M + 1))}
    if reduced:
        data["eg"] = variable("eg", dims, eg)
    if model.autonomous:
        eta_alpha = variable("eta_alpha", "alpha", model.eta * alpha)
    else:
        eta_alpha = variable("eta_alpha", "alpha", np.asarray(model.scaled_time(alpha)),
                             long_name="scaled time int_0^alpha eta(a) da")
        data["learning_rate"] = variable("learning_rate", "alpha", np.asarray(model.eta_at(alpha)))
    ds = xr.Dataset(data, coords=_indexed({"alpha": coordinate("alpha", alpha), "eta_alpha": eta_alpha, **coords}))
    params = model.parameters()
    attrs = provenance_attrs({"model": params, "solver": settings or {}})
    attrs.update(model_attrs(params))
    if reduced:
        attrs["subspace"] = model.subspace
    for key, val in (settings or {}).items():
        attrs[key] = "none" if val is None else val
    ds.attrs.update(attrs)
    return ds


def _indexed(coords: dict[str, Any]) -> xr.Coordinates:
    """``coords`` with their indexes built directly: each dimension coordinate a ``PandasIndex``.

    The indexes xarray would build by default (the same dataset), without its
    generic inference, which costs more than the rest of a short trajectory's dataset.
    """
    coords = {k: xr.Variable(*v) for k, v in coords.items()}
    labels = {k for k, v in coords.items() if k in ("i", "k", "n") and np.array_equal(v.values, np.arange(1, v.size + 1))}
    indexes = {k: _label_index(k, v.size) if k in labels else xr.indexes.PandasIndex(v.values, k)
               for k, v in coords.items() if v.dims == (k,)}
    return xr.Coordinates(coords, indexes=indexes)


@lru_cache(maxsize=64)
def _label_index(name: str, n: int) -> xr.indexes.PandasIndex:
    """The index of the unit labels ``1 ... n`` (immutable: shared by every dataset)."""
    return xr.indexes.PandasIndex(np.arange(1, n + 1), name)


def _reduced_variables(model: ReducedCommittee, Y: np.ndarray, dims: tuple[str, ...]) -> dict[str, Any]:
    """The reduced coordinates (``R``, ``S``, ``Q``, ``C`` or ``C1``, ``C2``; and ``v``) of reduced trajectories
    ``Y`` (catalogued as R, Q, v)."""
    names = {"R": "R_ii", "S": "R_in (i != n)", "Q": "Q_ii", "C": "Q_ik (i != k)", "v": "v_i"}
    if model.subspace == "grouped":
        names.update(R="R_in (i in group n)", S="R_in (i not in group n)", C1="Q_ik (i != k in one group)",
                     C2="Q_ik (i, k in different groups)")
    catalog = {"R": "R", "S": "R", "Q": "Q", "C": "Q", "C1": "Q", "C2": "Q", "v": "v"}
    what = model.subspace.replace("_", "-")
    return {key: variable(catalog.get(key, key[0]), dims, Y[..., j], long_name=f"{what} {names.get(key, key)}",
                          definition=names.get(key, key), block=catalog.get(key, key[0]))
            for j, key in enumerate(model.labels)}


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


def model_from_dataset(ds: xr.Dataset) -> Committee | ReducedCommittee:
    """The :class:`Committee` (or reduced model, for a dataset with a ``subspace``) a trajectory dataset was computed with."""
    if "model" not in ds.attrs:
        raise ValueError("ds: dataset has no 'model' attribute (not written by phasekit.integrate?)")
    if "subspace" in ds.attrs:
        return reduced_from_parameters(ds.attrs["model"])
    return committee_from_parameters(ds.attrs["model"])


def state_at(ds: xr.Dataset, index: int = -1) -> State | np.ndarray:
    """The :class:`State` at sample ``index`` of a trajectory dataset (with ``v`` when the dataset has it).

    For a reduced dataset (attribute ``subspace``): the reduced state vector (``(R, S, Q, C[, v])``;
    grouped: ``(R, S, Q, C1, C2[, v])``).
    """
    if "subspace" in ds.attrs:
        names = model_from_dataset(ds).labels
        return np.array([float(ds[k].isel(alpha=index)) for k in names])
    v = ds["v"].isel(alpha=index).values if "v" in ds else None
    return State(ds["R"].isel(alpha=index).values, ds["Q"].isel(alpha=index).values, v)
