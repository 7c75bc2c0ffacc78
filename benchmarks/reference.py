"""A straightforward right-hand side, written as a reader of the papers would.

Explicit Python loops over student units, teacher units and fields; one
closed-form I3/I4 call per index tuple (I3 in its published three-argument
form, not through Stein's lemma).  It is the yardstick of ``rhs.py`` and an
independent check of the vectorised flow in the tests.
"""

from __future__ import annotations

import math

import numpy as np

from phasekit.committee.model import Committee, State


def erf_I3(C):
    l3 = (1 + C[0][0]) * (1 + C[2][2]) - C[0][2] ** 2
    return 2 / math.pi / math.sqrt(l3) * (C[1][2] * (1 + C[0][0]) - C[0][1] * C[0][2]) / (1 + C[0][0])


def erf_I4(C):
    l4 = (1 + C[0][0]) * (1 + C[1][1]) - C[0][1] ** 2
    l0 = (l4 * C[2][3] - C[1][2] * C[1][3] * (1 + C[0][0]) - C[0][2] * C[0][3] * (1 + C[1][1])
          + C[0][1] * C[0][2] * C[1][3] + C[0][1] * C[0][3] * C[1][2])
    l1 = (l4 * (1 + C[2][2]) - C[1][2] ** 2 * (1 + C[0][0]) - C[0][2] ** 2 * (1 + C[1][1])
          + 2 * C[0][1] * C[0][2] * C[1][2])
    l2 = (l4 * (1 + C[3][3]) - C[1][3] ** 2 * (1 + C[0][0]) - C[0][3] ** 2 * (1 + C[1][1])
          + 2 * C[0][1] * C[0][3] * C[1][3])
    return 4 / math.pi**2 / math.sqrt(l4) * math.asin(max(-1.0, min(1.0, l0 / math.sqrt(l1 * l2))))


def erf_J2(C):
    return 2 / math.pi / math.sqrt((1 + C[0][0]) * (1 + C[1][1]) - C[0][1] ** 2)


def _asin_rho(C, a, b):
    return math.asin(max(-1.0, min(1.0, C[a][b] / math.sqrt(C[a][a] * C[b][b]))))


def relu_I3(C):
    det = max(0.0, C[0][0] * C[2][2] - C[0][2] ** 2)
    return (C[0][1] * math.sqrt(det) / (2 * math.pi * C[0][0])
            + C[1][2] * (0.25 + _asin_rho(C, 0, 2) / (2 * math.pi)))


def relu_J2(C):
    return 0.25 + _asin_rho(C, 0, 1) / (2 * math.pi)


def relu_I4(C):
    from phasekit.core.orthant import relu_I4 as vectorised

    return float(vectorised(np.array(C)))


FORMS = {"erf": (erf_I3, erf_I4, erf_J2), "relu": (relu_I3, relu_I4, relu_J2)}


def reference_rhs(model: Committee, state: State) -> np.ndarray:
    """d state / d alpha by loops over units and fields (the equations of docs/science.md verbatim)."""
    I3, I4, J2 = FORMS[model.activation.name]
    K, M, eta = model.K, model.M, model.eta
    S = model.covariance(state).tolist()
    sign = [-1.0] * K + [1.0] * M

    def sub(idx):
        return [[S[a][b] for b in idx] for a in idx]

    dR = np.zeros((K, M))
    for i in range(K):
        for n in range(M):
            dR[i, n] = eta * sum(sign[u] * I3(sub([i, K + n, u])) for u in range(K + M))
    dQ = np.zeros((K, K))
    for i in range(K):
        for k in range(K):
            first = sum(sign[u] * (I3(sub([i, k, u])) + I3(sub([k, i, u]))) for u in range(K + M))
            dQ[i, k] = eta * first
            if model.second_order:
                second = 0.0
                for u in range(K + M):
                    for w in range(K + M):
                        second += sign[u] * sign[w] * I4(sub([i, k, u, w]))
                second += model.noise**2 * J2(sub([i, k]))
                dQ[i, k] += eta**2 * second
    return State(dR, dQ).to_vector()
