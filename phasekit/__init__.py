"""phasekit: the statistical physics of on-line learning in two-layer networks.

Exact order-parameter dynamics of on-line SGD in soft committee machines
(teacher and student), their fixed points, stability and phase diagrams,
microscopic simulations that check the theory, and parallel, resumable
sweeps that turn all of it into xarray datasets, figures and reports.  Also
the sources' other systems: signal propagation in deep random networks, deep
linear networks and lazy versus feature-learning training.

The package is layered; each layer imports only the ones below it:

==========================  ===================================================
layer                       modules
==========================  ===================================================
command line                ``cli``
views                       ``plotting``, ``report``
studies                     ``study`` (schema, measures, runner, scans)
systems                     ``committee``, ``propagation``, ``deep_linear``,
                            ``lazy_training``
numerical core              ``core`` (activations, closed_forms, kernels,
                            rules, quadrature, orthant, ode, spectrum,
                            parallel, datasets, results, options)
==========================  ===================================================

The public API is re-exported here.
"""

from ._version import __version__
from .committee import (
    INITIAL_KINDS,
    AnnealingAsymptote,
    AsymptoticError,
    CommitteeFixedPoint,
    CriticalEta,
    Crossing,
    EtaStructure,
    Jacobian,
    MarginalMode,
    OptimalEta,
    PlateauTimes,
    SectorStability,
    SiteSymmetricCommittee,
    GroupedCommittee,
    PairCommittee,
    ReducedCommittee,
    SteadyEta,
    align_teachers,
    annealing_asymptote,
    asymptotic_eg,
    continuation,
    convergence_time,
    critical_eta,
    eta_structure,
    find_fixed_point,
    fixed_points,
    initial_state,
    integrate,
    jacobian,
    linearise,
    model_from_dataset,
    optimal_eta,
    optimal_steady_eta,
    perfect_solution,
    plateau_length,
    plateau_times,
    sector_stability,
    simulate,
    state_at,
    steady_state,
    symmetric_plateau,
)
from .committee.model import Committee, State
from .core import Activation, activation, available_activations, register_activation
from .core.options import NewtonOptions, ParallelOptions, SolverOptions
from .core.results import STATUS, FixedPoint, Result

# Loaded on first use (the module's __getattr__), so that ``import phasekit`` costs what the
# committee's numerics need: the study layer, the three smaller systems and the views
# (report, plotting: matplotlib).  ``phasekit.X`` and ``from phasekit import X`` work as before.
_LAZY = {
    **dict.fromkeys(("MEASURES", "Study", "StudyError", "convergence_time_vs_eta", "lazy_sweep", "load_study",
                     "parse_study", "phase_diagram", "plateau_scaling", "register_measure", "run_study",
                     "stability_boundary", "sweep"), "study"),
    "write_report": "report",
}
_SUBPACKAGES = ("cli", "deep_linear", "lazy_training", "plotting", "propagation", "report", "study")

__all__ = [
    "__version__",
    "Activation", "activation", "available_activations", "register_activation",
    "Result", "STATUS", "FixedPoint", "SolverOptions", "NewtonOptions", "ParallelOptions",
    "Committee", "State", "integrate", "model_from_dataset", "state_at",
    "CommitteeFixedPoint", "Jacobian", "EtaStructure", "MarginalMode", "CriticalEta", "OptimalEta",
    "continuation", "critical_eta", "eta_structure", "find_fixed_point", "fixed_points", "jacobian", "linearise",
    "optimal_eta", "perfect_solution", "symmetric_plateau", "steady_state", "optimal_steady_eta", "SteadyEta",
    "SiteSymmetricCommittee", "GroupedCommittee", "PairCommittee", "ReducedCommittee", "SectorStability", "sector_stability",
    "INITIAL_KINDS", "AsymptoticError", "Crossing", "PlateauTimes", "asymptotic_eg", "convergence_time",
    "initial_state", "plateau_length", "plateau_times", "simulate", "align_teachers",
    "AnnealingAsymptote", "annealing_asymptote",
    "plateau_scaling", "convergence_time_vs_eta", "stability_boundary", "phase_diagram", "lazy_sweep",
    "Study", "StudyError", "load_study", "parse_study", "MEASURES", "register_measure", "run_study", "sweep",
    "write_report",
    "deep_linear", "lazy_training", "propagation",
]


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBPACKAGES))
