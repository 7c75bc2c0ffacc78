"""The error of ``1/alpha`` learning-rate annealing with output noise, near the perfect solution.

With ``eta(alpha) = eta0 (1 + alpha/alpha0)^(-1) = c / (alpha + alpha0)``,
``c = eta0 alpha0``, and output noise of variance ``sigma^2``, linearise the
flow at the perfect solution ``R = Q = T`` (K = M): with ``u`` the deviation,

    du/dalpha = eta(alpha) A u + eta(alpha)^2 (B u + sigma^2 b) + O(eta u^2),

``A`` the first-order Jacobian per unit eta, ``sigma^2 b`` the noise part of
the ``eta^2`` term at the perfect solution (the other terms of the flow vanish
there), and ``eps_g = g . u + O(u^2)``.  In ``t = alpha + alpha0``,
``du/dt = (c/t) A u + (c^2/t^2) sigma^2 b + O(t^-3)``, whose particular
solution is ``u = D/t`` with ``(-c A - I) D = c^2 sigma^2 b``.  Hence

    eps_g(alpha) ~ C / (alpha + alpha0),   C = c^2 sigma^2 g . (-c A - I)^(-1) b,

provided the homogeneous solutions, ``t^(-c lambda_k)`` for the eigenvalues
``-lambda_k`` of ``A``, fall faster than ``1/t`` in eps_g: ``c lambda_k > 1``
for every mode with ``g . r_k != 0``.  A mode eps_g sees only at second order
(``g . r_k = 0``: for K = M = 2 erf the slowest mode, ``lambda = 0.04418``,
by the permutation symmetry) enters as ``t^(-2 c lambda_k)`` and needs only
``2 c lambda_k > 1``; so the condition is ``c > c_critical``, which can be
half of ``1/lambda_min``.  Below it the error decays as ``alpha^(-exponent)``
with the smallest of those rates, with a coefficient set by the start.  The
constant-eta floor is the steady state's error instead
(:func:`phasekit.committee.steady.steady_state`), of order ``eta sigma^2``.

For the linear perceptron (``g(x) = x``, K = M = 1) ``A = [[-1, 0], [2, -2]]``,
``b = (0, 1)``, ``g = (-1, 1/2)``, hence ``C = c^2 sigma^2 / (2 (2c - 1))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..core.results import ScalarResult
from .jacobians import jacobian
from .landmarks import _perfect_vector
from .model import Committee, full_model_only, is_reduced

__all__ = ["AnnealingAsymptote", "annealing_asymptote"]

# |g . r_k| below this fraction of |g| |r_k|: eps_g does not see mode k at first order.
_SEEN_TOL = 1e-6


@dataclass(frozen=True, kw_only=True, eq=False)
class AnnealingAsymptote(ScalarResult):
    """``eps_g(alpha) ~ coefficient / (alpha + alpha0)`` under ``1/alpha`` annealing; ``float()`` is ``coefficient``.

    Attributes
    ----------
    coefficient : float
        ``C`` (units of alpha); ``nan`` unless ``c > c_critical``.
    c : float
        ``eta0 alpha0``: the schedule is ``c / (alpha + alpha0)`` (units of alpha).
    c_critical : float
        The smallest ``c`` of the ``1/alpha`` law: ``max_k 1/lambda_k`` over the modes eps_g sees at
        first order, and ``1/(2 lambda_k)`` over those it sees only at second order.
    lambda_min : float
        Smallest decay rate of the first-order flow at the perfect solution, per unit ``eta alpha``.
    exponent : float
        The error decays as ``alpha^(-exponent)``: ``min(1, c lambda_k)`` over the modes eps_g sees at
        first order and ``min(1, 2 c lambda_k)`` over the others.
    A : ndarray, shape (n, n)
        First-order Jacobian per unit eta at the perfect solution.
    b : ndarray, shape (n,)
        Noise part of the ``eta^2`` term there, per unit ``sigma^2``.
    g : ndarray, shape (n,)
        Gradient of ``eps_g`` there.
    status : str
        ``"ok"``; ``"not_reached"`` when ``c <= c_critical`` (no ``1/alpha`` law).
    """

    coefficient: float
    c: float = math.nan
    c_critical: float = math.nan
    lambda_min: float = math.nan
    exponent: float = math.nan
    A: np.ndarray | None = None
    b: np.ndarray | None = None
    g: np.ndarray | None = None

    value_field: ClassVar[str] = "coefficient"


def _eg_gradient(model: Committee, v: np.ndarray) -> np.ndarray:
    """Gradient of eps_g at the perfect solution, from inside the cone.

    The perfect solution lies on the cone's boundary (``x_i = y_i``), where a
    central difference would step outside; the differences are taken at
    ``v + s d`` (``d`` adds ``s`` to every ``Q_ii``, which moves inside) and
    extrapolated to ``s = 0`` (Richardson, from ``s`` and ``2 s``; eps_g is
    smooth inside the cone for smooth activations).
    """
    n = v.size
    d = np.zeros(n)
    if is_reduced(model):  # its student norm Q
        d[list(model.labels).index("Q")] = 1.0
    else:
        d[model.K * model.M + np.array([model.K * i - i * (i - 1) // 2 for i in range(model.K)])] = 1.0
    h, s = 1e-7, 1e-4

    def grad(shift: float) -> np.ndarray:
        c = v + shift * d
        e = np.eye(n) * h
        return np.array([(model.eg_vector(c + e[a]) - model.eg_vector(c - e[a])) / (2 * h) for a in range(n)])

    return 2.0 * grad(s) - grad(2 * s)


def annealing_asymptote(model: Committee) -> AnnealingAsymptote:
    """The coefficient of the ``1/alpha`` decay of eps_g under ``eta0 (1 + alpha/alpha0)^(-1)`` with output noise.

    Parameters
    ----------
    model : Committee
        K = M, a power-law schedule with ``p = 1`` (``eta_schedule={"kind":
        "power_law", "alpha0": ..., "p": 1}``; ``eta`` is ``eta0``), output
        noise ``sigma > 0``, no drift or weight decay, second layer fixed, a
        smooth activation (the gradient of eps_g is taken by central
        differences; the Jacobian by :func:`phasekit.committee.jacobians.jacobian`).

    Returns
    -------
    AnnealingAsymptote
        See the module docstring for the law and its derivation.  For a
        reduced model (:meth:`Committee.restrict`) the law inside its subspace
        (``A``, ``b``, ``g`` in its coordinates): the coefficient is the full
        model's (the noise drives the perfect solution along the subspace), but
        ``c_critical`` and ``lambda_min`` count only the modes inside it.
    """
    reduced = is_reduced(model)
    if not reduced:
        full_model_only(model, "annealing_asymptote")
    sched = model.eta_schedule
    if sched is None or getattr(sched, "kind", None) != "power_law" or float(sched.p) != 1.0:
        raise ValueError(f"model: needs eta_schedule power_law with p = 1 (eta0 (1 + alpha/alpha0)^-1), got "
                         f"{getattr(sched, 'kind', None)!r}")
    if model.K != model.M:
        raise ValueError(f"model: the perfect solution needs K == M, got K={model.K}, M={model.M}")
    if not model.noise > 0:
        raise ValueError(f"model: needs output noise > 0 (the source of the 1/alpha law), got noise={model.noise!r}")
    if model.drift or model.weight_decay or model.train_second_layer:
        raise ValueError("model: drift, weight decay and a trained second layer are not part of this law; "
                         f"got drift={model.drift!r}, weight_decay={model.weight_decay!r}, "
                         f"train_second_layer={model.train_second_layer!r}")
    c = float(model.eta) * float(sched.alpha0)
    frozen = model.replace(eta_schedule=None, eta=1.0)
    v = frozen.perfect_vector() if reduced else _perfect_vector(frozen)
    first = frozen.replace(second_order=False, noise=0.0)
    A = np.asarray(jacobian(first, v).matrix, dtype=float)
    # the first-order flow and the noiseless eta^2 term vanish at the perfect solution: what is left is sigma^2 b
    b = np.asarray(frozen.replace(second_order=True).rhs_vector(v), dtype=float) / model.noise**2
    g = _eg_gradient(frozen, v)
    lam, vecs = np.linalg.eig(A)
    lam = -lam.real
    # a mode eps_g sees at first order must decay faster than 1/t (c lambda > 1); a mode it sees only at
    # second order (g . r = 0, e.g. by the permutation symmetry) enters as t^(-2 c lambda)
    seen = np.abs(g @ vecs) > _SEEN_TOL * np.linalg.norm(g) * np.linalg.norm(vecs, axis=0)
    rates = np.where(seen, c * lam, 2.0 * c * lam)
    lam_min = float(lam.min())
    c_crit = float(np.max(np.where(seen, 1.0 / lam, 0.5 / lam)))
    exponent = float(min(1.0, rates.min()))
    if rates.min() <= 1.0:
        return AnnealingAsymptote(coefficient=math.nan, c=c, c_critical=c_crit, lambda_min=lam_min,
                                  exponent=exponent, A=A, b=b, g=g, status="not_reached",
                                  message=f"c = {c:.6g} <= c_critical = {c_crit:.6g}: eps_g decays as "
                                          f"alpha^-{exponent:.6g}, not as 1/alpha")
    D = np.linalg.solve(-c * A - np.eye(A.shape[0]), c * c * model.noise**2 * b)
    C = float(g @ D)
    return AnnealingAsymptote(coefficient=C, c=c, c_critical=c_crit, lambda_min=lam_min, exponent=1.0, A=A, b=b,
                              g=g, status="ok",
                              message=f"eps_g ~ {C:.6g} / (alpha + alpha0) (c = {c:.6g} > c_critical = {c_crit:.6g})")
