"""The numerical core: activations and their Gaussian averages, quadrature,
orthant probabilities, spectra, parallel execution and dataset metadata.

Nothing here knows a physical system; the systems (:mod:`phasekit.committee`,
:mod:`phasekit.propagation`, :mod:`phasekit.deep_linear`,
:mod:`phasekit.lazy_training`) build on it.
"""

from .activations import (
    Activation,
    activation,
    available_activations,
    register_activation,
)
from .datasets import provenance_attrs, to_jsonable
from .parallel import ParallelError, parallel_map
from .spectrum import Spectrum, eigen_decomposition

__all__ = [
    "Activation", "activation", "available_activations", "register_activation",
    "provenance_attrs", "to_jsonable", "ParallelError", "parallel_map", "Spectrum", "eigen_decomposition",
]
