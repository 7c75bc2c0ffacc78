"""phasekit: exact order-parameter dynamics of on-line learning in two-layer networks.

The public API is re-exported here from small modules, one per concept:

- :mod:`phasekit.activations` -- activations and their Gaussian expectations (registry)
- :mod:`phasekit.committee` -- the soft committee machine: :class:`Committee`, :class:`State`
- :mod:`phasekit.dynamics` -- :func:`integrate` the ODEs into xarray datasets
"""

from ._version import __version__
from .activations import (
    Activation,
    activation,
    available_activations,
    register_activation,
)
from .committee import Committee, State
from .dynamics import integrate, model_from_dataset, state_at

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
]
