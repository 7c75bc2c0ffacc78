"""The teacher-student soft committee machine trained by on-line SGD.

======================  ======================================================
module                  concept
======================  ======================================================
``state``               ``State`` and the layout of the state vector
``model``               ``Committee``: parameters, construction, validation
``flow``                the order-parameter flow (``rhs_vector``, ``FlowParts``)
``schedules``           learning-rate schedules ``eta(alpha)``
``eg``                  the generalisation error near zero error
``dynamics``            ``integrate`` the ODEs into trajectory datasets
``cone``                geometry of the positive-semidefinite cone
``symmetry``            permutation symmetry of states
``jacobians``           ``Jacobian``: inside the cone and on its boundary
``newton``              Newton's method that stays in the cone
``linearisation``       ``CommitteeFixedPoint``, ``linearise``
``landmarks``           perfect solution, symmetric plateau, ``find_fixed_point``
``search``              every fixed point: ``fixed_points``
``pencil``              ``EtaStructure``: the Jacobian as ``eta A + eta^2 B``
``stability``           ``critical_eta``, ``optimal_eta`` (full space or a subspace), ``sector_stability``
``subspaces``           invariant subspaces: site-symmetric and grouped reduced flows (``Committee.restrict``)
``branches``            ``continuation`` in the learning rate
``starts``              initial states
``plateaus``            plateau lengths and convergence times (``PlateauTimes``, ``Crossing``)
``asymptotics``         the asymptotic error (``AsymptoticError``)
``steady``              steady states under drift, weight decay, noise; ``optimal_steady_eta``
``annealing``           the ``C / alpha`` error of ``1/alpha`` annealing with noise (``annealing_asymptote``)
``simulation``          microscopic SGD and the exact finite-N chain
``sgd_phases``          which terms survive as eta and K scale with d: ``classify_sgd_regime``
======================  ======================================================
"""

from .annealing import AnnealingAsymptote, annealing_asymptote
from .asymptotics import AsymptoticError, asymptotic_eg
from .branches import continuation
from .dynamics import integrate, model_from_dataset, state_at, trajectory_dataset
from .jacobians import Jacobian, jacobian
from .landmarks import find_fixed_point, perfect_solution, symmetric_plateau
from .linearisation import CommitteeFixedPoint, linearise
from .flow import FlowParts
from .model import NORMALISATIONS, Committee, State, committee_from_parameters, vector_labels
from .pencil import EtaStructure, MarginalMode, eta_structure
from .plateaus import Crossing, PlateauTimes, convergence_time, plateau_length, plateau_times
from .schedules import SCHEDULE_KINDS, Schedule, schedule_from_spec
from .search import fixed_points
from .simulation import align_teachers, simulate
from .stability import CriticalEta, OptimalEta, SectorStability, critical_eta, optimal_eta, sector_stability
from .subspaces import SUBSPACES, GroupedCommittee, PairCommittee, ReducedCommittee, SiteSymmetricCommittee
from .steady import SteadyEta, optimal_steady_eta, steady_state
from .starts import INITIAL_KINDS, initial_state
from .sgd_phases import SGD_REGIMES, SgdRegime, analytic_sgd_regime, classify_sgd_regime

__all__ = [
    "AsymptoticError", "asymptotic_eg", "continuation", "integrate", "model_from_dataset", "state_at",
    "trajectory_dataset", "Jacobian", "jacobian", "find_fixed_point", "perfect_solution", "symmetric_plateau",
    "CommitteeFixedPoint", "linearise", "Committee", "State", "committee_from_parameters", "vector_labels",
    "FlowParts", "NORMALISATIONS", "SCHEDULE_KINDS", "Schedule", "schedule_from_spec",
    "EtaStructure", "MarginalMode", "eta_structure", "Crossing", "PlateauTimes", "convergence_time",
    "plateau_length", "plateau_times", "fixed_points", "align_teachers", "simulate", "CriticalEta", "OptimalEta",
    "critical_eta", "optimal_eta", "INITIAL_KINDS", "initial_state", "SteadyEta", "optimal_steady_eta",
    "steady_state", "AnnealingAsymptote", "annealing_asymptote", "SectorStability", "sector_stability",
    "SUBSPACES", "SiteSymmetricCommittee", "GroupedCommittee", "PairCommittee", "ReducedCommittee",
    "SGD_REGIMES", "SgdRegime", "analytic_sgd_regime", "classify_sgd_regime",
]
