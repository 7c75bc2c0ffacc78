"""The teacher-student soft committee machine trained by on-line SGD.

======================  ======================================================
module                  concept
======================  ======================================================
``model``               ``Committee``, ``State``: parameters and the flow
``eg``                  the generalisation error near zero error
``dynamics``            ``integrate`` the ODEs into trajectory datasets
``cone``                geometry of the positive-semidefinite cone
``symmetry``            permutation symmetry of states
``jacobians``           Jacobians inside the cone and on its boundary
``newton``              Newton's method that stays in the cone
``linearisation``       ``FixedPoint``, ``linearise``
``landmarks``           perfect solution, symmetric plateau, ``find_fixed_point``
``search``              every fixed point: ``fixed_points``
``stability``           ``eta_structure``, ``critical_eta``, ``optimal_eta``
``branches``            ``continuation`` in the learning rate
``starts``              initial states
``plateaus``            plateau lengths and convergence times
``asymptotics``         the asymptotic error
``simulation``          microscopic SGD and the exact finite-N chain
======================  ======================================================
"""

from .asymptotics import AsymptoticResult, asymptotic_eg
from .branches import continuation
from .dynamics import (
    MAX_NORM,
    STATUS,
    integrate,
    model_from_dataset,
    state_at,
    trajectory_dataset,
)
from .jacobians import jacobian
from .landmarks import find_fixed_point, perfect_solution, symmetric_plateau
from .linearisation import FixedPoint, linearise
from .model import Committee, State, committee_from_parameters, vector_labels
from .plateaus import (
    Crossing,
    PlateauTimes,
    convergence_time,
    plateau_length,
    plateau_times,
)
from .search import fixed_points
from .simulation import align_teachers, simulate
from .stability import EtaStructure, critical_eta, eta_structure, optimal_eta
from .starts import INITIAL_KINDS, initial_state

__all__ = [
    "AsymptoticResult", "asymptotic_eg", "continuation", "MAX_NORM", "STATUS", "integrate",
    "model_from_dataset", "state_at", "trajectory_dataset", "jacobian", "find_fixed_point",
    "perfect_solution", "symmetric_plateau", "FixedPoint", "linearise", "Committee", "State",
    "committee_from_parameters", "vector_labels", "Crossing", "PlateauTimes", "convergence_time",
    "plateau_length", "plateau_times", "fixed_points", "align_teachers", "simulate", "EtaStructure",
    "critical_eta", "eta_structure", "optimal_eta", "INITIAL_KINDS", "initial_state",
]
