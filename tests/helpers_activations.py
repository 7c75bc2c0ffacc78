"""Activations shared by several test files."""

import numpy as np

import phasekit as pk

# Unregistered copies without closed forms: every kernel runs through its quadrature route,
# an independent check on the closed forms of the registered relu and erf.
RELU_QUAD = pk.Activation("relu-quadrature", lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(float))
ERF_QUAD = pk.Activation("erf-quadrature", pk.activation("erf").g, pk.activation("erf").dg,
                         pk.activation("erf").d2g)
