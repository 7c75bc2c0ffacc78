"""The numerical core: activations with their kernels, quadrature, orthant
probabilities, the ODE driver, spectra, results and options, parallel
execution and dataset metadata.

``activations`` (the :class:`Activation` and its registry; closed forms in
``closed_forms``, quadrature routes of the kernels in ``kernels``), ``rules``
(every quadrature rule) and ``quadrature`` (Gaussian expectations over
covariances), ``orthant``, ``ode`` (:func:`solve_flow`, :func:`rk4_batch`),
``spectrum``, ``results``, ``options``, ``parallel``, ``datasets``.  Nothing
here knows a physical system; the systems (:mod:`phasekit.committee`,
:mod:`phasekit.propagation`, :mod:`phasekit.deep_linear`,
:mod:`phasekit.lazy_training`) build on it.
"""

from .activations import (
    Activation,
    activation,
    available_activations,
    register_activation,
)
from .closed_forms import ProbitMixture
from .datasets import VARIABLES, model_attrs, provenance_attrs, to_jsonable
from .ode import Event, FlowRun, blow_up, cone_exit, crossing, rk4_batch, solve_flow
from .parallel import ParallelError, parallel_map
from .spectrum import Spectrum, eigen_decomposition

__all__ = [
    "Activation", "activation", "available_activations", "register_activation", "ProbitMixture",
    "VARIABLES", "model_attrs", "provenance_attrs", "to_jsonable",
    "Event", "FlowRun", "blow_up", "cone_exit", "crossing", "rk4_batch", "solve_flow",
    "ParallelError", "parallel_map", "Spectrum", "eigen_decomposition",
]
