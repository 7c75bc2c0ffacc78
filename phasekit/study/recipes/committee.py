"""Recipes: the committee-machine learning curves of the literature.

- ``relu_perceptron``: K = M = 1 ReLU with the eta^2 term, from R = 0, Q = 0.25;
  R, Q, eps_g at eta = 0.1 and eps_g for several eta around eta_c = 2.
- ``relu_committee``: K = M = 2 ReLU from R_in = 1e-3 delta_in, Q = diag(0.2, 0.3),
  eta = 0.1, first order: the symmetric plateau and the escape from it.
- ``overrealisable`` (K = 3, M = 2) and ``unrealisable`` (K = 2, M = 3): ReLU
  and erf, first order, from R11 = 1e-3, other R = 0, Q diagonal.

Each writes one netCDF dataset (trajectories stacked over the varied
parameter on a common time grid, NaN after a run stopped, with ``alpha_end``,
``status`` and ``message`` per run) and one PNG under ``outdir``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import xarray as xr

from ...committee.dynamics import integrate
from ...committee.model import Committee, State
from ...core.datasets import provenance_attrs
from . import recipe

__all__ = ["stack_trajectories", "relu_perceptron", "relu_committee", "overrealisable", "unrealisable"]


def stack_trajectories(trajs: Sequence[xr.Dataset], dim: str, values: Sequence[Any], alpha: np.ndarray,
                       dim_attrs: dict[str, str]) -> xr.Dataset:
    """Put trajectories of equal K, M on one ``alpha`` grid, stacked along ``dim``.

    Samples after a run stopped are NaN; ``alpha_end``, ``eg_end`` (eps_g
    where it stopped), ``status`` and ``message`` are kept per run.
    """
    alpha = np.asarray(alpha, dtype=float)
    K, M = trajs[0].sizes["i"], trajs[0].sizes["n"]
    n = len(trajs)
    R = np.full((n, alpha.size, K, M), np.nan)
    Q = np.full((n, alpha.size, K, K), np.nan)
    eg = np.full((n, alpha.size), np.nan)
    for j, t in enumerate(trajs):
        a = t["alpha"].values
        # integrate() samples exactly the requested grid up to where the run stopped
        m = np.isin(alpha, a)
        sel = np.isin(a, alpha)
        R[j, m] = t["R"].values[sel]
        Q[j, m] = t["Q"].values[sel]
        eg[j, m] = t["eg"].values[sel]
    etas = np.array([float(t.attrs["eta"]) for t in trajs])
    coord = np.array(values, dtype=object if isinstance(values[0], str) else float)
    ds = xr.Dataset(
        {
            "R": ((dim, "alpha", "i", "n"), R, {"long_name": "student-teacher overlap R_in", "units": "1"}),
            "Q": ((dim, "alpha", "i", "k"), Q, {"long_name": "student-student overlap Q_ik", "units": "1"}),
            "eg": ((dim, "alpha"), eg, {"long_name": "generalisation error eps_g", "units": "1"}),
            "alpha_end": (dim, np.array([float(t.attrs["alpha_end"]) for t in trajs]),
                          {"long_name": "end of the run alpha", "units": "1"}),
            "eg_end": (dim, np.array([float(t["eg"].values[-1]) for t in trajs]),
                       {"long_name": "eps_g where the run stopped", "units": "1"}),
            "status": (dim, np.array([t.attrs["status"] for t in trajs], dtype=object),
                       {"long_name": "run status", "units": "1"}),
            "message": (dim, np.array([t.attrs["message"] for t in trajs], dtype=object),
                        {"long_name": "status message", "units": "1"}),
            "eta_run": (dim, etas, {"long_name": "learning rate eta", "units": "1"}),
        },
        coords={
            dim: (dim, coord, dim_attrs),
            "alpha": ("alpha", alpha, {"long_name": "examples per input dimension alpha", "units": "1"}),
            "i": ("i", np.arange(1, K + 1), {"long_name": "student unit", "units": "1"}),
            "k": ("k", np.arange(1, K + 1), {"long_name": "student unit", "units": "1"}),
            "n": ("n", np.arange(1, M + 1), {"long_name": "teacher unit", "units": "1"}),
        },
    )
    return ds


def _time_grid(alpha_max: float, n: int, log: bool) -> np.ndarray:
    if log:
        return np.concatenate([[0.0], np.geomspace(alpha_max * 1e-4, alpha_max, n - 1)])
    return np.linspace(0.0, alpha_max, n)


def _write(ds: xr.Dataset, fig: Any, outdir: Path, name: str) -> dict[str, Path]:
    from ...plotting import save_figure

    data = outdir / f"{name}.nc"
    ds.to_netcdf(data, engine="scipy")
    return {"dataset": data, "figure": save_figure(fig, outdir / f"{name}.png")}


def _plateau_eg(model: Committee) -> float:
    """eps_g of the symmetric plateau, NaN where it cannot be computed."""
    try:
        from ...committee.landmarks import symmetric_plateau

        return float(symmetric_plateau(model).eg)
    except Exception:  # a reference line only; the figure is complete without it
        return float("nan")


@recipe("relu_perceptron", checks={"eta": "> 0", "eta_values": "> 0", "alpha_max": "> 0", "Q0": "> 0"})
def relu_perceptron(outdir: Path, quick: bool = False, eta: float = 0.1,
                    eta_values: Sequence[float] = (0.1, 0.5, 1.0, 1.9, 2.2, 3.0),
                    alpha_max: float = 400.0, R0: float = 0.0, Q0: float = 0.25) -> dict[str, Path]:
    """ReLU perceptron with the eta^2 term: learning curves below and above eta_c = 2."""
    from ...plotting.committee import learning_rate_scan

    eta_values = sorted(set([float(eta)] + [float(e) for e in eta_values]))
    if quick:
        alpha_max = min(alpha_max, 60.0)
    grid = _time_grid(alpha_max, 120 if quick else 400, log=True)
    s0 = State([[R0]], [[Q0]])
    trajs = [integrate(Committee(1, 1, "relu", eta=e), s0, alpha_max, alpha_eval=grid) for e in eta_values]
    ds = stack_trajectories(trajs, "eta", eta_values, grid, {"long_name": "learning rate eta", "units": "1"})
    ds.attrs.update(provenance_attrs({"recipe": "relu_perceptron", "eta": eta, "eta_values": eta_values,
                                      "alpha_max": alpha_max, "R0": R0, "Q0": Q0, "quick": int(quick)}),
                    K=1, M=1, activation="relu", second_order=1, eta_main=float(eta), eta_c=2.0,
                    title="ReLU perceptron (K = M = 1), on-line SGD with the eta^2 term")
    return _write(ds, learning_rate_scan(ds, main=float(eta)), Path(outdir), "relu_perceptron")


@recipe("relu_committee", checks={"eta": "> 0", "X": "> 0", "Q0": "> 0", "eta_alpha_max": "> 0"})
def relu_committee(outdir: Path, quick: bool = False, eta: float = 0.1, X: float = 1e-3,
                   Q0: Sequence[float] = (0.2, 0.3), eta_alpha_max: float = 80.0,
                   second_order: bool = False) -> dict[str, Path]:
    """ReLU K = M = 2: the symmetric plateau (eps_g = 0.0736) and the escape to the perfect solution."""
    from ...plotting.committee import order_parameters

    model = Committee(2, 2, "relu", eta=eta, second_order=second_order)
    s0 = State(X * np.eye(2), np.diag(np.asarray(Q0, dtype=float)))
    traj = integrate(model, s0, (30.0 if quick else eta_alpha_max) / eta, n_points=201 if quick else 801)
    plateau = _plateau_eg(model)
    traj.attrs.update(provenance_attrs({"recipe": "relu_committee", "eta": eta, "X": X, "Q0": list(Q0),
                                        "eta_alpha_max": eta_alpha_max, "second_order": int(second_order),
                                        "quick": int(quick)}),
                      plateau_eg=plateau)
    fig = order_parameters(traj, time="eta_alpha", reference_eg=plateau,
                           title=f"ReLU soft committee machine K = M = 2, eta = {eta:g}, "
                                 f"{'with' if second_order else 'without'} the eta^2 term")
    return _write(traj, fig, Path(outdir), "relu_committee")


_MISMATCH_CHECKS = {"eta": "> 0", "X": "> 0", "Q0": "> 0", "eta_alpha_max": "> 0",
                    "activations": "activation"}


def _mismatch(outdir: Path, quick: bool, name: str, K: int, M: int, Q0: Sequence[float], eta: float,
              eta_alpha_max: float, X: float, activations: Sequence[str]) -> dict[str, Path]:
    from ...plotting.committee import stacked_order_parameters

    horizon = min(eta_alpha_max, 100.0) if quick else eta_alpha_max
    grid = _time_grid(horizon / eta, 151 if quick else 601, log=False)
    R0 = np.zeros((K, M))
    R0[0, 0] = X
    s0 = State(R0, np.diag(np.asarray(Q0, dtype=float)))
    trajs = [integrate(Committee(K, M, act, eta=eta, second_order=False), s0, grid[-1], alpha_eval=grid)
             for act in activations]
    ds = stack_trajectories(trajs, "activation", list(activations), grid,
                            {"long_name": "activation", "units": "1"})
    ds = ds.assign_coords(eta_alpha=("alpha", eta * grid, {"long_name": "scaled time eta alpha", "units": "1"}))
    kind = "over-realisable" if K > M else "unrealisable"
    ds.attrs.update(provenance_attrs({"recipe": name, "K": K, "M": M, "Q0": list(Q0), "eta": eta, "X": X,
                                      "eta_alpha_max": eta_alpha_max, "activations": list(activations),
                                      "quick": int(quick)}),
                    K=K, M=M, eta=eta, second_order=0,
                    title=f"{kind} student K = {K}, teacher M = {M}, first order, eta = {eta:g}")
    return _write(ds, stacked_order_parameters(ds, "activation"), Path(outdir), name)


@recipe("overrealisable", checks=_MISMATCH_CHECKS)
def overrealisable(outdir: Path, quick: bool = False, eta: float = 0.1, X: float = 1e-3,
                   Q0: Sequence[float] = (0.2, 0.3, 0.25), eta_alpha_max: float = 400.0,
                   activations: Sequence[str] = ("relu", "erf")) -> dict[str, Path]:
    """Over-realisable K = 3 student, M = 2 teacher, ReLU and erf, first order."""
    return _mismatch(outdir, quick, "overrealisable", 3, 2, Q0, eta, eta_alpha_max, X, activations)


@recipe("unrealisable", checks=_MISMATCH_CHECKS)
def unrealisable(outdir: Path, quick: bool = False, eta: float = 0.1, X: float = 1e-3,
                 Q0: Sequence[float] = (0.2, 0.2), eta_alpha_max: float = 400.0,
                 activations: Sequence[str] = ("relu", "erf")) -> dict[str, Path]:
    """Unrealisable K = 2 student, M = 3 teacher, ReLU and erf, first order."""
    return _mismatch(outdir, quick, "unrealisable", 2, 3, Q0, eta, eta_alpha_max, X, activations)
