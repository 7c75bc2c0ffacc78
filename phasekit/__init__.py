"""phasekit: the statistical physics of on-line learning in two-layer networks.

Exact order-parameter dynamics of on-line SGD in soft committee machines
(teacher and student), their fixed points, stability and phase diagrams,
microscopic simulations that check the theory, and parallel sweeps that turn
all of it into xarray datasets, figures and reports.  Also the sources' other
systems: signal propagation in deep random networks, deep linear networks and
lazy versus feature-learning training.

The public API is re-exported here from small modules, one per concept:

======================  ======================================================
module                  concept
======================  ======================================================
``activations``         activations, Gaussian expectations, the registry
``orthant``             Gaussian orthant probabilities (ReLU's I4)
``committee``           the soft committee machine: ``Committee``, ``State``
``dynamics``            ``integrate`` the ODEs into trajectory datasets
``fixed_points``        fixed points, Jacobians, ``critical_eta``, continuation
                        (``phasekit.fixed_points`` is the search function; the
                        module is ``importlib.import_module("phasekit.fixed_points")``)
``plateaus``            symmetry-breaking starts, plateau lengths, convergence
``simulation``          microscopic SGD and the exact finite-N chain
``study``, ``sweeps``   study files and dask-parallel, resumable sweeps
``report``, ``plotting`` figures and Markdown reports from datasets
``propagation``         signal propagation, edge of chaos
``linear_dynamics``     deep linear networks
``two_layer``           lazy versus feature-learning two-layer networks
======================  ======================================================
"""

from ._version import __version__
from .activations import Activation, activation, available_activations, register_activation
from .committee import Committee, State
from .dynamics import integrate, model_from_dataset, state_at
from .fixed_points import (
    FixedPoint,
    EtaStructure,
    continuation,
    critical_eta,
    eta_structure,
    find_fixed_point,
    fixed_points,
    jacobian,
    linearise,
    optimal_eta,
    perfect_solution,
    symmetric_plateau,
)
from .plateaus import (
    asymptotic_eg,
    convergence_time,
    initial_state,
    plateau_length,
    plateau_scaling,
    plateau_times,
)
from .simulation import simulate
from .report import write_report
from .study import Study, StudyError, load_study, parse_study
from .sweeps import MEASURES, register_measure, sweep
from . import linear_dynamics, propagation, two_layer

__all__ = [
    "__version__",
    "Activation",
    "activation",
    "available_activations",
    "register_activation",
    "Committee",
    "State",
    "integrate",
    "model_from_dataset",
    "state_at",
    "FixedPoint",
    "EtaStructure",
    "continuation",
    "critical_eta",
    "eta_structure",
    "find_fixed_point",
    "fixed_points",
    "jacobian",
    "linearise",
    "optimal_eta",
    "perfect_solution",
    "symmetric_plateau",
    "asymptotic_eg",
    "convergence_time",
    "initial_state",
    "plateau_length",
    "plateau_scaling",
    "plateau_times",
    "simulate",
    "Study",
    "StudyError",
    "load_study",
    "parse_study",
    "MEASURES",
    "register_measure",
    "sweep",
    "write_report",
    "linear_dynamics",
    "propagation",
    "two_layer",
]
