"""Gaussian expectations by tensor-product Gauss-Hermite quadrature.

The route for activations without closed forms (tanh, sigmoid, user-supplied
functions) and for mixed teacher/student activations.  A covariance ``C`` of
shape ``(..., d, d)`` is factored as ``C = L L^T`` through its eigen-
decomposition, so singular (positive-semidefinite) covariances, such as two
coinciding hidden units, need no special case.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

__all__ = ["gaussian_expectation", "psd_factor"]

# Elements of the (batch x nodes x d) work array processed at once; bounds memory.
_CHUNK_ELEMENTS = 1 << 22


@lru_cache(maxsize=None)
def _tensor_nodes(n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss-Hermite tensor grid: nodes ``(n**d, d)``, weights ``(n**d,)``."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / np.sqrt(2.0 * np.pi)
    grids = np.meshgrid(*([x] * d), indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], axis=-1)
    wgrids = np.meshgrid(*([w] * d), indexing="ij")
    weights = np.prod(np.stack([g.ravel() for g in wgrids], axis=-1), axis=-1)
    nodes.setflags(write=False)
    weights.setflags(write=False)
    return nodes, weights


def psd_factor(C: np.ndarray) -> np.ndarray:
    """Return ``L`` with ``L @ L^T == C`` for symmetric PSD ``C`` of shape ``(..., d, d)``.

    Uses the eigen-decomposition so that singular matrices are allowed; tiny
    negative eigenvalues from round-off are clipped to zero.
    """
    lam, V = np.linalg.eigh(C)
    return V * np.sqrt(np.clip(lam, 0.0, None))[..., None, :]


def gaussian_expectation(
    C: np.ndarray,
    funcs: Sequence[Callable[[np.ndarray], np.ndarray]],
    n_nodes: int,
) -> np.ndarray:
    """``E[prod_j f_j(x_j)]`` for ``x ~ N(0, C)``.

    Parameters
    ----------
    C : ndarray, shape (..., d, d)
        Covariance matrices (symmetric positive semidefinite).
    funcs : sequence of d callables
        Vectorised functions applied to each coordinate.
    n_nodes : int
        Gauss-Hermite nodes per dimension (``n_nodes**d`` in total).

    Returns
    -------
    ndarray, shape (...)
    """
    C = np.asarray(C, dtype=float)
    d = C.shape[-1]
    if len(funcs) != d:
        raise ValueError(f"funcs: need {d} functions for a {d}x{d} covariance, got {len(funcs)}")
    batch_shape = C.shape[:-2]
    Cf = C.reshape(-1, d, d)
    nodes, weights = _tensor_nodes(n_nodes, d)
    out = np.empty(Cf.shape[0])
    step = max(1, _CHUNK_ELEMENTS // (nodes.shape[0] * d))
    for start in range(0, Cf.shape[0], step):
        L = psd_factor(Cf[start:start + step])
        # x[b, p, j] = sum_m L[b, j, m] z[p, m]
        x = np.einsum("pm,bjm->bpj", nodes, L, optimize=True)
        prod = funcs[0](x[..., 0])
        for j in range(1, d):
            prod = prod * funcs[j](x[..., j])
        out[start:start + step] = prod @ weights
    return out.reshape(batch_shape)
