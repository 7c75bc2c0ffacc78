"""Figures drawn from phasekit datasets (never from live computations).

:data:`FIGURES` maps a figure kind to a function ``func(ds, **args)`` of a
study dataset; study files name them in ``[[report.figures]]`` tables
(``kind = "heatmap"``, ``var = "convergence_time"``, ...), and
:func:`default_figures` chooses some for a study that names none.  Figures
are ``matplotlib.figure.Figure`` objects made without pyplot: importing or
using this package never changes matplotlib's backend or global state.
Labels carry units from the datasets' ``long_name``/``units`` attributes.
"""

from __future__ import annotations

from . import committee, linear_dynamics, propagation, simulation, sweeps, two_layer  # noqa: F401  (register)
from . import sgd_phases  # noqa: F401  (register)
from .common import (FIGURES, draw, figure_problem, fmt, label, layout_problems, register_figure, save_figure,
                     trajectories)
from .defaults import default_figures

__all__ = ["FIGURES", "default_figures", "draw", "figure_problem", "fmt", "label", "layout_problems",
           "register_figure", "save_figure", "trajectories"]
