"""Recipes comparing finite-N SGD with the ODEs: overlays and the size of fluctuations."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr

from ...committee.dynamics import integrate
from ...committee.model import Committee, State, vector_labels
from ...committee.simulation import align_teachers, simulate
from ...core.datasets import provenance_attrs
from ...plotting import save_figure
from ...plotting.simulation import plot_finite_size, plot_overlay
from . import choices, recipe

__all__ = ["simulation_overlay", "finite_size", "ode_reference"]

# The source's two figures: ReLU perceptron and ReLU K = M = 2 (MODEL.md starts).
_CASES = {
    "perceptron": (Committee(1, 1, "relu", eta=0.1), State([[0.0]], [[0.25]])),
    "committee": (Committee(2, 2, "relu", eta=0.1), State(1e-3 * np.eye(2), np.diag([0.2, 0.3]))),
}


def ode_reference(model: Committee, state0: State, alpha_max: float, n_points: int = 501) -> xr.Dataset:
    """The ODE for ``model``; the first-order flow if the second-order one is not available.

    Second-order ReLU needs the 4-variate orthant probabilities
    (:mod:`phasekit.core.orthant`); until they are installed the first-order flow
    stands in (``attrs["second_order"]`` says which one was used).
    """
    try:
        return integrate(model, state0, alpha_max, n_points=n_points)
    except ModuleNotFoundError:
        if not model.second_order:
            raise
        return integrate(model.replace(second_order=False), state0, alpha_max, n_points=n_points)


@recipe("simulation_overlay", checks={"cases": choices(*_CASES), "perceptron_N": ">= 3", "perceptron_alpha_max": "> 0",
                                     "perceptron_runs": ">= 1", "committee_N": ">= 5", "committee_eta_alpha_max": "> 0",
                                     "committee_runs": ">= 1", "method": choices("microscopic", "reduced"),
                                     "n_points": ">= 2", "n_test": ">= 0", "seed": ">= 0", "n_workers": "workers"})
def simulation_overlay(
    outdir: Path,
    quick: bool = False,
    *,
    cases: Sequence[str] = ("perceptron", "committee"),
    perceptron_N: int = 1000,
    perceptron_alpha_max: float = 300.0,
    perceptron_runs: int = 4,
    committee_N: int = 10_000,
    committee_eta_alpha_max: float = 80.0,
    committee_runs: int = 2,
    method: str = "microscopic",
    n_points: int = 161,
    n_test: int = 0,
    seed: int = 0,
    n_workers: int = 1,
) -> dict[str, Path]:
    """ODE against finite-N SGD for the ReLU perceptron and the ReLU K = M = 2 committee.

    Writes ``<case>_simulation.nc``, ``<case>_ode.nc`` and ``<case>.png`` for
    each case.  Runs of the committee that specialise to the other labelling
    of the teachers are relabelled (:func:`phasekit.committee.simulation.align_teachers`).
    ``quick`` shrinks N, times and runs.
    """
    sizes = {"perceptron": (perceptron_N, perceptron_alpha_max, perceptron_runs),
             "committee": (committee_N, committee_eta_alpha_max / _CASES["committee"][0].eta, committee_runs)}
    unknown = set(cases) - set(_CASES)
    if unknown:
        raise ValueError(f"cases: unknown case(s) {sorted(unknown)}; allowed {sorted(_CASES)}")
    files: dict[str, Path] = {}
    for case in cases:
        model, state0 = _CASES[case]
        N, alpha_max, runs = sizes[case]
        if quick:
            N, alpha_max, runs = 200, min(alpha_max, 20.0), 2
        sim = simulate(model, state0, int(N), float(alpha_max), n_runs=int(runs), seed=seed, level=method,
                       n_points=n_points, n_test=n_test, n_workers=n_workers)
        if model.K == model.M > 1:
            sim = align_teachers(sim)
        ode = ode_reference(model, state0, float(alpha_max))
        files[f"{case}_simulation"] = outdir / f"{case}_simulation.nc"
        files[f"{case}_ode"] = outdir / f"{case}_ode.nc"
        sim.to_netcdf(files[f"{case}_simulation"], engine="scipy")
        ode.to_netcdf(files[f"{case}_ode"], engine="scipy")
        files[f"{case}_figure"] = save_figure(plot_overlay(sim, ode, title=case), outdir / f"{case}.png")
    return files


def spread(model: Committee, state0: State, Ns: Sequence[int], alpha: float, n_runs: int,
           seed: int = 0, method: str = "reduced", n_workers: int = 1) -> xr.Dataset:
    """Mean and run-to-run standard deviation of every order parameter at ``alpha`` against N.

    Returns a dataset with ``mean(N, component)``, ``std(N, component)`` and a
    least-squares fit ``std = prefactor * N^exponent`` per component
    (``exponent``, ``exponent_stderr``, ``prefactor``).
    """
    Ns = np.asarray(Ns, dtype=int)
    if Ns.ndim != 1 or len(Ns) < 2:
        raise ValueError(f"Ns: need at least two input dimensions, got {Ns.tolist()}")
    labels = vector_labels(model.K, model.M)
    iu = np.triu_indices(model.K)
    mean, std = [], []
    for j, N in enumerate(Ns):
        ds = simulate(model, state0, int(N), alpha, n_runs=n_runs, seed=seed + j, level=method, n_points=2,
                      n_workers=n_workers)
        R, Q = ds["R"].values[:, -1], ds["Q"].values[:, -1]
        v = np.concatenate([R.reshape(n_runs, -1), Q[:, iu[0], iu[1]]], axis=-1)
        mean.append(v.mean(axis=0))
        std.append(v.std(axis=0, ddof=1))
    std = np.array(std)
    (slope, icpt), cov = np.polyfit(np.log(Ns), np.log(std), 1, cov=True)
    unit = {"units": "1"}
    out = xr.Dataset(
        {
            "mean": (("N", "component"), np.array(mean), {"long_name": "mean over runs", **unit}),
            "std": (("N", "component"), std, {"long_name": "standard deviation over runs", **unit}),
            "exponent": ("component", slope, {"long_name": "fitted exponent of std against N", **unit}),
            "exponent_stderr": ("component", np.sqrt(cov[0, 0]),
                                {"long_name": "standard error of the exponent", **unit}),
            "prefactor": ("component", np.exp(icpt), {"long_name": "fitted prefactor of std", **unit}),
        },
        coords={
            "N": ("N", Ns, {"long_name": "input dimension N", **unit}),
            "component": ("component", labels, {"long_name": "order parameter", **unit}),
        },
    )
    params = {"model": model.parameters(), "state0": state0.to_vector(), "Ns": Ns, "alpha": alpha,
              "n_runs": n_runs, "seed": seed, "method": method}
    out.attrs.update(provenance_attrs(params, alpha=float(alpha), n_runs=int(n_runs), method=method,
                                      eta=model.eta, K=model.K, M=model.M, activation=model.activation.name))
    return out


@recipe("finite_size", checks={"Ns": ">= 5", "alpha": "> 0", "n_runs": ">= 2",
                              "method": choices("microscopic", "reduced"), "seed": ">= 0", "n_workers": "workers"})
def finite_size(
    outdir: Path,
    quick: bool = False,
    *,
    Ns: Sequence[int] = (100, 316, 1000, 3162, 10_000, 31_623, 100_000),
    alpha: float = 5.0,
    n_runs: int = 100,
    method: str = "reduced",
    seed: int = 0,
    n_workers: int = 1,
) -> dict[str, Path]:
    """Spread of R and Q over runs at fixed alpha against N, ReLU K = M = 2, MODEL.md start.

    Writes ``finite_size.nc`` and ``finite_size.png``; the fitted exponents
    should be close to -1/2.  ``quick`` uses N up to 1000 and alpha = 1.
    """
    model, state0 = _CASES["committee"]
    if quick:
        Ns, alpha, n_runs = (100, 300, 1000), 1.0, 50
    ds = spread(model, state0, Ns, float(alpha), int(n_runs), seed=seed, method=method, n_workers=n_workers)
    files = {"finite_size": outdir / "finite_size.nc"}
    ds.to_netcdf(files["finite_size"], engine="scipy")
    files["finite_size_figure"] = save_figure(plot_finite_size(ds), outdir / "finite_size.png")
    return files
