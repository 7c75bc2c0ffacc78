"""Studies: TOML files that describe a grid, the measures at each point and the report.

``schema`` reads and validates a study file, ``measures`` holds the registry
of what can be computed at a grid point, ``runner`` evaluates a study over its
grid (checkpointed, resumable, in parallel), ``checkpoints`` keeps the
finished points on disk, ``scans`` offers the common grids as Python calls.
"""

from .checkpoints import checkpoint_dir, load_checkpoints
from .measures import MEASURES, SWEEP_STATUS, Measure, register_measure
from .runner import assemble, evaluate_point, sweep
from .scans import convergence_time_vs_eta, plateau_scaling, two_layer_sweep
from .schema import GRID_AXES, Study, StudyError, as_study, load_study, parse_study

__all__ = ["checkpoint_dir", "load_checkpoints", "MEASURES", "Measure", "register_measure", "SWEEP_STATUS",
           "assemble", "evaluate_point", "sweep", "convergence_time_vs_eta", "plateau_scaling", "two_layer_sweep",
           "GRID_AXES", "Study", "StudyError", "as_study", "load_study", "parse_study"]
