"""Studies: grids of computations of any system, run by one runner into one dataset layout.

``schema`` reads and validates a study (TOML) without computing anything;
``systems`` lists each system's parameters; ``measures`` is the one registry
of what can be computed at a grid point (filled by ``committee_measures``,
``asymptotic_measures``, ``propagation_measures``, ``deep_linear_measures`` and ``lazy_measures``,
loaded by ``registry``); ``runner`` evaluates a study over its grid
(checkpointed, resumable, in parallel); ``assembly`` arranges the points in
the dataset; ``analyses`` computes what the grid as a whole gives (fits,
optima) and stores it; ``checkpoints`` keeps finished points on disk;
``scans`` offers the common grids as Python calls.
"""

from .analyses import ANALYSES, register_analysis
from .checkpoints import checkpoint_dir, load_checkpoints
from .measures import MEASURES, Measure, Outcome, Output, PointContext, register_measure
from .registry import MEASURES as _LOADED  # noqa: F401  (registers every system's measures)
from .runner import StudyAborted, StudyInterrupted, evaluate_point, run_study, sweep
from .scans import convergence_time_vs_eta, lazy_sweep, phase_diagram, plateau_scaling, stability_boundary
from .schema import Study, StudyError, as_study, load_study, parse_study, study_files
from .systems import SYSTEMS

__all__ = ["ANALYSES", "register_analysis", "checkpoint_dir", "load_checkpoints", "MEASURES", "Measure", "Outcome",
           "Output", "PointContext", "register_measure", "StudyAborted", "StudyInterrupted", "evaluate_point",
           "run_study", "sweep", "convergence_time_vs_eta", "lazy_sweep", "phase_diagram", "plateau_scaling",
           "stability_boundary", "Study", "StudyError", "as_study", "load_study", "parse_study", "study_files",
           "SYSTEMS"]
