"""Ready-made grids as Python calls, each a small study run by :func:`phasekit.study.runner.run_study`.

Every call builds an in-memory study and runs it, so it is the same
computation as the study file of the same science, with its checkpoints
(``outdir=``: resumable; default in memory), its parallel execution
(``n_workers``, ``client``) and its dataset layout (:mod:`phasekit.study.assembly`):

- :func:`plateau_scaling`: plateau length against X, with the fitted and predicted slopes;
- :func:`convergence_time_vs_eta`: convergence time against eta, with its minimum;
- :func:`stability_boundary`: eta_c and eta_opt of the perfect solution against K = M;
- :func:`phase_diagram`: the order/chaos phase diagram of deep random networks;
- :func:`lazy_sweep`: lazy versus feature-learning training over scales, widths and seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from ..committee.model import Committee, State
from ..core.options import SolverOptions, coerce_options
from .runner import run_study
from .schema import parse_study

__all__ = ["convergence_time_vs_eta", "lazy_sweep", "phase_diagram", "plateau_scaling", "stability_boundary"]


def _run(study: dict, outdir: str | Path | None, client: Any, n_workers: int | None, progress: bool) -> xr.Dataset:
    parallel = {k: v for k, v in (("client", client), ("n_workers", n_workers)) if v is not None}
    return run_study(parse_study(study, source=f"{study['name']}()"), outdir=outdir, parallel=parallel,
                     progress=progress)


def _model_table(model: Committee) -> dict[str, Any]:
    """The [model] table of a committee study for ``model`` (identity teacher only)."""
    if not isinstance(model, Committee):
        raise ValueError(f"model: expected a phasekit.Committee, got {type(model).__name__}")
    if not np.array_equal(model.T, np.eye(model.M)):
        raise ValueError("model: studies take the identity teacher T = I; this model has another T")
    p = model.parameters()
    table = {k: p[k] for k in ("K", "M", "activation", "eta", "second_order", "noise")}
    if model.mixed:
        table["teacher_activation"] = p["teacher_activation"]
    return table


def _solver(solver: Any) -> dict[str, Any]:
    return coerce_options(solver, SolverOptions, "solver").to_dict()


def _floats(values: Any, name: str) -> list[float]:
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: must be a non-empty 1-D sequence, got {values!r}")
    return [float(v) for v in arr]


def plateau_scaling(
    model: Committee,
    X: Sequence[float] = tuple(np.logspace(-2, -12, 11)),
    *,
    kind: str = "plateau",
    band: float = 0.05,
    Q0: float | Sequence[float] | None = None,
    seed: int = 0,
    fit_range: tuple[float, float] | None = None,
    alpha_max: float | None = None,
    solver: SolverOptions | Mapping[str, Any] | None = None,
    client: Any = None,
    n_workers: int | None = None,
    outdir: str | Path | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """Plateau length against the initial distance X from the symmetric subspace.

    One run per X from :func:`phasekit.committee.starts.initial_state`
    (``kind``), the plateau entry, exit and length (measure
    ``plateau_length``), the symmetric plateau (measure ``plateau``) and the
    analysis ``plateau_fit``: ``alpha_P = a ln(1/X) + b`` against the
    predicted slope ``1 / lambda_esc``.

    Parameters
    ----------
    model : Committee
    X : sequence of float
        Amplitudes, each in ``(0, 0.1]``.
    kind : {"plateau", "diagonal", "uniform"}
        Start.  ``"plateau"`` (default) displaces the plateau along the
        escape eigenvector, so X is the distance from the symmetric subspace
        measured along the escape direction and the slope is set by
        ``lambda_esc`` alone; the others start far from the plateau, whose
        approach (algebraic for erf) biases the slope.
    band : float
        Relative half-width of the eps_g band defining the plateau.
    Q0, seed : see :func:`~phasekit.committee.starts.initial_state` (``kind`` ``"diagonal"``/``"uniform"``).
    fit_range : (float, float), optional
        Fit only X within ``[min, max]``; default all X with a finite length.
    alpha_max : float, optional
        Horizon per X; default ``2 ln(1/X) / lambda_esc + 1000 / eta``.
    solver : SolverOptions, mapping or None
        ODE solver settings (default :class:`~phasekit.core.options.SolverOptions`).
    client, n_workers : where the points run (default: in this process, or on the active dask client).
    outdir : path, optional
        Keep checkpoints there (resumable); default in memory.
    progress : bool
        Progress bar on stderr.

    Returns
    -------
    xarray.Dataset
        Dim ``X``; ``plateau_entry``, ``plateau_exit``, ``plateau_length``
        (alpha), ``status``, ``in_fit``; 0-d: the plateau's ``plateau_eg`` and
        ``escape_eigenvalue`` (1/alpha), ``fitted_slope``,
        ``fitted_slope_stderr``, ``fitted_intercept``, ``predicted_slope``,
        ``slope_ratio``, ``n_fit``.
    """
    xs = _floats(X, "X")
    if any(not (0 < x <= 0.1) for x in xs):
        raise ValueError(f"X: amplitudes must be in (0, 0.1], got {xs!r}")
    initial: dict[str, Any] = {"kind": kind, "seed": int(seed)}
    if Q0 is not None:
        initial["Q0"] = np.asarray(Q0, dtype=float).tolist()
    measure: dict[str, Any] = {"band": float(band)}
    if alpha_max is not None:
        measure["alpha_max"] = float(alpha_max)
    fit: dict[str, Any] = {"var": "plateau_length"}
    if fit_range is not None:
        fit["fit_range"] = [float(x) for x in fit_range]
    study = {"name": "plateau_scaling", "model": _model_table(model), "initial": initial, "grid": {"X": xs},
             "measures": {"plateau_length": measure, "plateau": {}}, "solver": _solver(solver),
             "analyses": {"plateau_fit": fit}}
    return _run(study, outdir, client, n_workers, progress)


def convergence_time_vs_eta(
    model: Committee,
    state0: State,
    eta: Sequence[float],
    *,
    threshold: float = 1e-3,
    eta_alpha_max: float = 2e3,
    refine: bool = True,
    eta_c: float | None = None,
    solver: SolverOptions | Mapping[str, Any] | None = None,
    client: Any = None,
    n_workers: int | None = None,
    outdir: str | Path | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """Convergence time (first alpha with eps_g < threshold) as a function of eta.

    Each run stops at the threshold (``stop_eg``), which locates the crossing
    by event detection.  The analysis ``optimum`` gives the fastest eta and
    its time, refined by bounded Brent minimisation between the grid
    neighbours of the grid minimum when ``refine``.  With the eta^2 term,
    K = M and no noise, ``eta_c`` of the perfect solution is measured too.

    Parameters
    ----------
    model : Committee
        Everything but eta is taken from it.
    state0 : State
        Common start.
    eta : sequence of float
        Learning rates, ``> 0`` (sorted).
    threshold : float
        eps_g threshold, ``> 0``.
    eta_alpha_max : float
        Horizon in units of ``eta alpha``.
    refine : bool
        Refine the minimum between grid points.
    eta_c : float, optional
        Critical learning rate to record (e.g. for plots); default measured
        (measure ``eta_c``) when the model keeps the eta^2 term, has K = M and no noise.
    solver, client, n_workers, outdir, progress : as :func:`plateau_scaling`.

    Returns
    -------
    xarray.Dataset
        Dim ``eta``; ``convergence_time`` (alpha; inf when not reached, NaN
        when the run diverged), ``status``; 0-d ``eta_c`` (if measured),
        ``eta_opt`` and ``convergence_time_min``.
    """
    model.validate_state(state0, "state0")
    etas = sorted(_floats(eta, "eta"))
    table = _model_table(model)
    table.pop("eta")
    measures: dict[str, Any] = {"convergence_time": {"threshold": float(threshold)}}
    if eta_c is None and model.second_order and model.noise == 0 and model.K == model.M:
        measures["eta_c"] = {}
    study = {"name": "convergence_time", "model": table,
             "initial": {"R0": np.asarray(state0.R).tolist(), "Q0": np.asarray(state0.Q).tolist()},
             "integration": {"eta_alpha_max": float(eta_alpha_max), "stop_eg": float(threshold), "n_points": 2},
             "grid": {"eta": etas}, "measures": measures, "solver": _solver(solver),
             "analyses": {"optimum": {"var": "convergence_time", "over": "eta", "refine": bool(refine)}}}
    ds = _run(study, outdir, client, n_workers, progress)
    if eta_c is not None:
        ds["eta_c"] = ((), float(eta_c), {"long_name": "critical learning rate eta_c (given)", "units": "1"})
    return ds


def stability_boundary(
    activations: Sequence[str] = ("erf", "relu"),
    K_values: Sequence[int] = tuple(range(1, 11)),
    *,
    client: Any = None,
    n_workers: int | None = None,
    outdir: str | Path | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """Critical and optimal learning rates of the perfect solution against K = M (eta^2 term kept).

    Measures ``eta_c`` (:func:`phasekit.committee.stability.critical_eta`)
    and ``eta_opt`` (:func:`~phasekit.committee.stability.optimal_eta`) over
    the grid ``activation x K``.

    Returns
    -------
    xarray.Dataset
        Dims ``(activation, K)``; ``eta_c``, ``eta_c_error``, ``eta_c_precision``,
        ``jacobian_error``, ``crossing_real``, ``eta_opt``, ``rate_opt``, ``kink``, ``status``.
    """
    study = {"name": "stability_boundary", "model": {"M": "K", "eta": 1.0, "second_order": True},
             "grid": {"activation": [str(a) for a in activations], "K": [int(k) for k in K_values]},
             "measures": {"eta_c": {}, "eta_opt": {}}, "run": {"batch_size": 1}}
    return _run(study, outdir, client, n_workers, progress)


def phase_diagram(
    activation: Any,
    sigma_w2: Any = None,
    sigma_b2: Any = None,
    *,
    n_angle: int = 24,
    q0: float = 1.0,
    client: Any = None,
    n_workers: int | None = None,
    outdir: str | Path | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """Order/chaos phase diagram of deep random networks over a grid of ``(sigma_b2, sigma_w2)``.

    Parameters
    ----------
    activation : str or Activation
        A registered activation (by name or object).
    sigma_w2 : array_like, optional
        1-D grid of weight variances (default ``linspace(0.5, 5, 46)``).
    sigma_b2 : array_like, optional
        1-D grid of bias variances (default ``linspace(0, 0.5, 26)``).
    n_angle : int
        Gauss-Legendre nodes per angular wedge of the 2-D correlation integrals.
    q0 : float
        Input variance from which the variance map is iterated.
    client, n_workers, outdir, progress : as :func:`plateau_scaling`.

    Returns
    -------
    xarray.Dataset
        Dims ``(sigma_b2, sigma_w2)``; measure ``phase``: ``q_star``,
        ``c_star``, ``chi_1``, ``chi_q``, ``xi_q``, ``xi_c``, ``phase`` (CF flags
        ordered, chaotic, unbounded); analysis ``edge_of_chaos``:
        ``eoc_sigma_w2``, ``eoc_q_star``, ``eoc_q_attracting`` along ``sigma_b2``.
    """
    name = getattr(activation, "name", activation)
    sw = np.linspace(0.5, 5.0, 46) if sigma_w2 is None else sigma_w2
    sb = np.linspace(0.0, 0.5, 26) if sigma_b2 is None else sigma_b2
    study = {"name": "phase_diagram", "system": "propagation",
             "model": {"activation": name, "n_angle": int(n_angle), "q0": float(q0)},
             "grid": {"sigma_b2": _floats(sb, "sigma_b2"), "sigma_w2": _floats(sw, "sigma_w2")},
             "measures": {"phase": {}}, "analyses": {"edge_of_chaos": {}}}
    return _run(study, outdir, client, n_workers, progress)


_LAZY_RUN_KEYS = ("T", "t_final", "threshold", "trainer", "learning_rate", "batch_size", "quadrature_nodes", "rtol",
                  "teacher_seed", "symmetric", "centered", "tangent")


def lazy_sweep(
    taus: Sequence[float],
    widths: Sequence[int],
    seeds: Sequence[int] = (0, 1, 2),
    *,
    activations: Sequence[str] = ("relu",),
    scales: Sequence[float] = (1.0,),
    d: int = 20,
    m0: int = 3,
    client: Any = None,
    n_workers: int | None = None,
    outdir: str | Path | None = None,
    progress: bool = False,
    **run_kwargs: Any,
) -> xr.Dataset:
    """Train a grid of two-layer students (lazy versus feature learning).

    Parameters
    ----------
    taus : sequence of float
        Initial scales (``> 0``), typically log-spaced from 1e-2 to 1e1.
    widths : sequence of int
        Student widths ``m`` (``>= 1``; even for the symmetrised initialisation).
    seeds : sequence of int
        Student seeds; the teacher is the same for all points (``teacher_seed``).
    activations, scales : sequences
        Student activations and output scales.
    d, m0 : int
        Input dimension and teacher units.
    client, n_workers, outdir, progress : as :func:`plateau_scaling`.
    **run_kwargs
        Training settings (``T``, ``t_final``, ``threshold``, ``trainer``,
        ``learning_rate``, ``batch_size``, ``quadrature_nodes``, ``rtol``,
        ``teacher_seed``, ``symmetric``, ``centered``) and ``tangent`` (also
        train the tangent model; default True).

    Returns
    -------
    xarray.Dataset
        Dims ``(activation, scale, m, tau, seed)``; the outputs of the
        measures ``training`` and ``tangent`` (:mod:`phasekit.study.lazy_measures`).
    """
    unknown = sorted(set(run_kwargs) - set(_LAZY_RUN_KEYS))
    if unknown:
        raise ValueError(f"run_kwargs: unknown argument(s) {unknown} (allowed: {', '.join(_LAZY_RUN_KEYS)})")
    tangent = run_kwargs.pop("tangent", True)
    model = {"d": int(d), "m0": int(m0)}
    training = {}
    for k, v in run_kwargs.items():
        (model if k in ("teacher_seed", "symmetric", "centered") else training)[k] = v
    grid = {"activation": [getattr(a, "name", a) for a in activations], "scale": _floats(scales, "scales"),
            "m": [int(w) for w in widths], "tau": _floats(taus, "taus"), "seed": [int(s) for s in seeds]}
    measures: dict[str, Any] = {"training": {}}
    if tangent:
        measures["tangent"] = {}
    study = {"name": "lazy_sweep", "system": "lazy_training", "model": model, "training": training, "grid": grid,
             "measures": measures}
    return _run(study, outdir, client, n_workers, progress)
