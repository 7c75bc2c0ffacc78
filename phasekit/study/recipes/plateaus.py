"""Recipes for plateaus: plateau length against ln(1/X), convergence time against eta."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...committee.model import Committee, State
from ...committee.starts import initial_state
from ...plotting.common import save_figure
from ...plotting.plateaus import plot_convergence_times, plot_plateau_scaling
from .. import scans as pl
from . import choices, recipe

__all__ = ["plateau_scaling_recipe", "convergence_time_recipe"]


def _plateau(model: Committee) -> Any:
    """The symmetric plateau; for erf, first order, K = M the Saad-Solla closed form seeds Newton.

    The erf plateau lies on the boundary of the positive-semidefinite cone and
    is approached algebraically, so the default guess of
    :func:`phasekit.committee.landmarks.symmetric_plateau` (the end of a finite
    symmetric flow) can be too far for Newton.
    """
    from ...committee.landmarks import symmetric_plateau

    guess = None
    if model.activation.name == "erf" and not model.second_order and model.K == model.M \
            and np.array_equal(model.T, np.eye(model.M)):
        K = model.K
        guess = (1.0 / math.sqrt(K * (2 * K - 1)), 1.0 / (2 * K - 1), 1.0 / (2 * K - 1))
    fp = symmetric_plateau(model, guess)
    if not fp.success:
        raise RuntimeError(f"plateau_scaling: symmetric_plateau did not converge for {model!r}")
    return fp


@recipe("plateau_scaling", checks={"cases": "activation", "eta": "> 0", "X": "> 0, <= 0.1", "fit_range": "> 0",
                                  "band": "> 0", "kinds": choices(*pl.INITIAL_KINDS), "n_workers": "workers"})
def plateau_scaling_recipe(
    outdir: Path,
    quick: bool = False,
    *,
    cases: Sequence[Sequence[Any]] = (("relu", 2), ("relu", 3), ("erf", 2), ("erf", 3)),
    eta: float = 1.0,
    second_order: bool = False,
    X: Sequence[float] | None = None,
    fit_range: Sequence[float] = (1e-10, 1e-4),
    kinds: Sequence[str] = ("plateau", "diagonal"),
    band: float = 0.05,
    n_workers: int | None = None,
) -> dict[str, Path]:
    """Plateau length against ln(1/X) with fitted and predicted (1/lambda_esc) slopes.

    ``cases`` lists ``(activation, K)`` with M = K.  For each start kind in
    ``kinds`` (see :func:`phasekit.committee.starts.initial_state`) writes
    ``plateau_scaling_<activation>_K<K>_<kind>.nc``; the figure
    ``plateau_scaling.png`` shows all of them.
    """
    outdir = Path(outdir)
    X = np.logspace(-2, -12, 11) if X is None else np.asarray(X, dtype=float)
    if quick:
        cases, X, kinds, n_workers = (("erf", 2),), np.array([1e-4, 1e-6, 1e-8]), ("plateau",), 1
    files: dict[str, Path] = {}
    datasets = []
    for act, K in cases:
        model = Committee(int(K), int(K), str(act), eta=eta, second_order=second_order)
        fp = _plateau(model)
        for kind in kinds:
            ds = pl.plateau_scaling(model, X, kind=kind, plateau=fp, band=band, fit_range=tuple(fit_range),
                                    n_workers=n_workers)
            name = f"plateau_scaling_{act}_K{K}_{kind}"
            path = outdir / f"{name}.nc"
            ds.to_netcdf(path, engine="scipy")
            files[name] = path
            datasets.append(ds)
    files["figure"] = save_figure(plot_plateau_scaling(datasets), outdir / "plateau_scaling.png")
    return files


@recipe("convergence_time", checks={"threshold": "> 0", "n_eta": ">= 1", "perceptron_Q0": "> 0", "committee_X": "> 0",
                                   "activation": "activation", "eta_alpha_max": "> 0", "n_workers": "workers"})
def convergence_time_recipe(
    outdir: Path,
    quick: bool = False,
    *,
    threshold: float = 1e-3,
    n_eta: int = 40,
    perceptron_Q0: float = 0.25,
    committee_X: float = 1e-3,
    activation: str = "relu",
    eta_alpha_max: float = 2e3,
    refine: bool = True,
    n_workers: int | None = None,
) -> dict[str, Path]:
    """Convergence time (first eps_g < threshold) against eta, second order, with eta_c.

    Two cases: the perceptron (K = M = 1) from ``R = 0, Q = perceptron_Q0``,
    and K = M = 2 from ``R = X delta, Q = diag(0.2, 0.3)`` with ``X = committee_X``.
    eta runs on an even grid of ``n_eta`` points over ``(0, eta_c)`` (eta_c from
    :func:`phasekit.committee.stability.critical_eta`); ``refine`` polishes the
    minimiser by Brent's method.  Writes
    ``convergence_time_K<K>.nc`` and ``convergence_time.png``.
    """
    from ...committee.stability import critical_eta

    outdir = Path(outdir)
    if quick:
        n_eta, refine, n_workers = 3, False, 1
    files: dict[str, Path] = {}
    datasets = []
    for K in (1, 2):
        model = Committee(K, K, activation, eta=0.1, second_order=True)
        eta_c = float(critical_eta(model))
        top = eta_c if np.isfinite(eta_c) else 2.0
        eta = np.linspace(top / (n_eta + 1), top * n_eta / (n_eta + 1), n_eta)
        if K == 1:
            state0 = State([[0.0]], [[perceptron_Q0]])
        else:
            state0 = initial_state(model, committee_X, Q0=[0.2, 0.3])
        ds = pl.convergence_time_vs_eta(model, state0, eta, threshold=threshold, eta_c=eta_c,
                                        eta_alpha_max=eta_alpha_max, refine=refine, n_workers=n_workers)
        path = outdir / f"convergence_time_K{K}.nc"
        ds.to_netcdf(path, engine="scipy")
        files[f"convergence_time_K{K}"] = path
        datasets.append(ds)
    files["figure"] = save_figure(plot_convergence_times(datasets), outdir / "convergence_time.png")
    return files
