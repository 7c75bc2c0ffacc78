"""Deep linear networks: the mode dynamics of whitened-input regression.

Each input-output mode with singular value ``s`` follows ``tau du/dt = 2 u (s - u)``
at depth 2 (``tau du/dt = k u^(2 - 2/k) (s - u)`` for ``k`` layers), with weight
decay shifting ``s`` to ``s - lambda``.  ``modes`` holds the closed forms and
the ODE, ``equilibria`` the fixed points and their stability, ``network`` a
trained network to check the theory against.
"""

from .equilibria import fixed_points
from .modes import (
           layer_rhs,
           learning_time,
           mode_rhs,
           mode_strength,
           mode_strength_ode,
           mode_trajectories,
)
from .network import simulate_deep_linear

__all__ = ["fixed_points", "layer_rhs", "learning_time", "mode_rhs", "mode_strength", "mode_strength_ode",
           "mode_trajectories", "simulate_deep_linear"]
