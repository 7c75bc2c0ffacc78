"""Signal propagation through deep random networks: order, chaos and their edge.

``maps`` holds the variance and correlation maps and their fixed points and
depth scales, ``phases`` the edge of chaos and the phase at a point (grids of points:
:func:`phasekit.study.scans.phase_diagram`), ``depth``
the approach of correlations to their fixed point with depth.  The Gaussian
averages they use are kernels of the activation (:class:`phasekit.Activation`).
"""

from .depth import correlation_depth_profile
from .maps import (
           PHASE_CHAOTIC,
           PHASE_ORDERED,
           PHASE_UNBOUNDED,
           c_map,
           c_star,
           chi_1,
           chi_q,
           delta_map,
           q_map,
           q_star,
           xi_c,
           xi_q,
)
from .phases import critical_line, edge_of_chaos, edge_of_chaos_line, eoc_asymptote, phase_point

__all__ = ["correlation_depth_profile", "PHASE_CHAOTIC", "PHASE_ORDERED", "PHASE_UNBOUNDED", "c_map", "c_star",
           "chi_1", "chi_q", "delta_map", "q_map", "q_star", "xi_c", "xi_q", "critical_line", "edge_of_chaos",
           "edge_of_chaos_line", "eoc_asymptote", "phase_point"]
