"""Which terms of the flow survive when the learning rate and the width scale with the input dimension.

On-line SGD of the committee with the ``1/K`` normalisation (``v_i = 1/K``,
``w_n = 1/M``), learning rate ``eta = eta0 d^-delta`` and width
``K = p0 d^kappa`` in input dimension ``N = d``.  Per example the first-order
part of ``dQ`` is ``eta first / d`` and the second-order part
``eta^2 (i4 + noise^2 j2) / d`` (:meth:`~phasekit.committee.flow.CommitteeFlow.flow_parts`);
with the ``1/K`` weights ``first ~ 1/K`` and ``i4, j2 ~ 1/K^2`` at a fixed
state, so the ratio of the two is ``~ eta / K = d^-(delta + kappa)``.  This
module measures those sizes from the flow at two or three values of ``d``
(the model rebuilt at each, with ``K = round(p0 d^kappa)``) and classifies
the point by the fitted exponents:

``gradient flow``
    the second-order and noise terms vanish against the first-order ones
    (exponent of their ratio ``< -tol``): the limit is the gradient flow,
    on the time scale ``d^(1 + kappa + delta)`` examples;
``both``
    the ratio stays of order one (``|exponent| <= tol``): both survive;
``noise dominated``
    the second-order and noise terms dominate and the change of ``Q`` per
    example still vanishes: the limit is driven by them alone, on the time
    scale ``d^(1 + 2 (kappa + delta))`` examples;
``no ODE limit``
    the change per example does not vanish (exponent ``>= -tol``).

:func:`analytic_sgd_regime` gives the lines of Veiga et al. 2022's phase
diagram (figure 1; their ``gamma = eta``, ``p = K``, ``Delta = noise^2``):
``delta = -kappa`` (green region ``kappa + delta > 0``, blue line
``kappa + delta = 0``) and ``delta = -kappa - 1/2`` (orange region
``kappa < -delta < kappa + 1/2``, "no ODEs" beyond), where the change of
``Q`` per example, ``eta^2 / (K^2 d) ~ d^-(1 + 2 (kappa + delta))`` (their
time scale ``d^(1 + 2 (kappa + delta))`` examples), stops vanishing
(:func:`ode_limit_delta`).  The region test in the authors' public code
reads ``-delta < (1 + kappa) / 2`` instead, a line that meets the figure's
at ``kappa = 0`` only.

For a teacher that grows with the student (``teacher="grows"``, ``M = K``,
``T = I``) the state is site-symmetric and the flow is the reduced one
(:class:`~phasekit.committee.subspaces.SiteSymmetricCommittee`), whose cost
does not depend on K; a fixed teacher of ``M`` units (``teacher="fixed"``,
Veiga et al.'s setting) needs the full flow, whose cost grows like
``K^2 (K + M)^2`` (second order), so ``K`` is limited to a few tens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .model import Committee
from .state import State

__all__ = ["SGD_REGIMES", "SgdRegime", "analytic_sgd_regime", "ode_limit_delta", "sgd_scaling_model",
           "sgd_term_sizes", "classify_sgd_regime"]

#: The regimes in the order of their integer codes (datasets store the code).
SGD_REGIMES = ("gradient flow", "both", "noise dominated", "no ODE limit")

#: Generic states (R_ii, R_in, Q_ii, Q_ik) away from every fixed point, positive definite for every K:
#: site-symmetric for a teacher that grows with K; for a fixed teacher every student equally correlated with
#: every teacher unit (a larger R_ii than R_in would need Q_ik ~ R_ii^2 within each group of students).
_STATE = (0.5, 0.0, 1.0, 0.2)
_STATE_FIXED = (0.2, 0.2, 1.0, 0.2)


def ode_limit_delta(kappa: Any) -> Any:
    """``-kappa - 1/2``: where the change of ``Q`` per example stops vanishing (the flow's scaling)."""
    return -np.asarray(kappa, dtype=float) - 0.5


def analytic_sgd_regime(delta: float, kappa: float, tol: float = 0.0) -> str:
    """The regime of ``(delta, kappa)`` from the lines of Veiga et al.'s figure 1 (``tol``: half-width of a line).

    ``kappa + delta > tol``: ``"gradient flow"``; ``|kappa + delta| <= tol``:
    ``"both"``; else ``"noise dominated"`` while ``1 + 2 (kappa + delta) > tol``
    (``-delta < kappa + 1/2``), ``"no ODE limit"`` beyond.  ``tol`` is in
    units of the exponents :func:`classify_sgd_regime` fits.
    """
    s = float(kappa) + float(delta)
    if s > tol:
        return "gradient flow"
    if s >= -tol:
        return "both"
    return "noise dominated" if 1.0 + 2.0 * s > tol else "no ODE limit"


def _check(delta: float, kappa: float, eta0: float, p0: float, teacher: str, M: int) -> None:
    for name, x in (("delta", delta), ("kappa", kappa)):
        if not np.isfinite(x):
            raise ValueError(f"{name}: must be a finite number, got {x!r}")
    if kappa < 0:
        raise ValueError(f"kappa: the width exponent must be >= 0, got {kappa!r}")
    for name, x in (("eta0", eta0), ("p0", p0)):
        if not (np.isfinite(x) and x > 0):
            raise ValueError(f"{name}: must be finite and > 0, got {x!r}")
    if teacher not in ("grows", "fixed"):
        raise ValueError(f"teacher: must be 'grows' (M = K, site-symmetric) or 'fixed' (M units), got {teacher!r}")
    if teacher == "fixed" and (int(M) != M or M < 1):
        raise ValueError(f"M: teacher units must be an integer >= 1, got {M!r}")


def sgd_scaling_model(delta: float, kappa: float, d: float, *, eta0: float = 1.0, p0: float = 1.0,
                      activation: str = "erf", noise: float = 0.0, teacher: str = "grows", M: int = 2) -> Any:
    """The ``1/K`` committee at input dimension ``d``: ``eta = eta0 d^-delta``, ``K = max(1, round(p0 d^kappa))``.

    ``teacher="grows"``: ``M = K``, returned restricted to the site-symmetric
    subspace (cost independent of K); ``"fixed"``: ``M`` teacher units, the
    full :class:`~phasekit.committee.model.Committee`.
    """
    _check(delta, kappa, eta0, p0, teacher, M)
    if not (np.isfinite(d) and d > 1):
        raise ValueError(f"d: the input dimension must be > 1, got {d!r}")
    K = max(1, int(round(p0 * float(d) ** kappa)))
    eta = eta0 * float(d) ** (-delta)
    if teacher == "grows":
        return Committee(K, K, activation, eta=eta, noise=noise, normalisation="1/K").restrict("site_symmetric")
    return Committee(K, int(M), activation, eta=eta, noise=noise, normalisation="1/K")


def _state_vector(model: Any, state: Sequence[float]) -> np.ndarray:
    """``(R_ii, R_in, Q_ii, Q_ik)`` as the model's state vector (full model: ``R_in = R_ii`` for ``n = i mod M``)."""
    r, s, q, c = (float(x) for x in state)
    if getattr(model, "subspace", None) == "site_symmetric":
        return model.state_vector((r, s, q, c))
    K, M = model.K, model.M
    R = np.where(np.arange(K)[:, None] % M == np.arange(M)[None, :], r, s)
    Q = c + (q - c) * np.eye(K)
    return model.state_vector(State(R, Q))


def sgd_term_sizes(model: Any, state: Sequence[float] | None = None) -> tuple[float, float]:
    """Sizes (max norms) of ``eta first`` (R and Q components) and ``eta^2 (i4 + noise^2 j2)`` (Q) in ``d/dalpha``.

    ``state`` is ``(R_ii, R_in, Q_ii, Q_ik)`` (for a fixed teacher ``R_in =
    R_ii`` where ``n = i mod M``); default: a generic positive-definite
    state for every K.  Returns ``(first, second)``.
    """
    if not model.second_order:
        raise ValueError("model: needs second_order=True (the eta^2 term is what is compared)")
    site = getattr(model, "subspace", None) == "site_symmetric"
    if state is None:
        state = _STATE if site else _STATE_FIXED
    z = _state_vector(model, state)
    if model.min_eigenvalue(z) <= 0:
        raise ValueError(f"state: {tuple(state)} is not a positive-definite overlap matrix at K = {model.K}")
    parts = model.flow_parts(z)
    lo, hi = (2, 4) if site else (model.K * model.M, model.n_order)
    first = model.eta * parts.first[:hi]
    second = model.eta ** 2 * (parts.i4[lo:hi] + model.noise ** 2 * parts.j2[lo:hi])
    return float(np.abs(first).max()), float(np.abs(second).max())


@dataclass(frozen=True)
class SgdRegime:
    """The classified regime of one ``(delta, kappa)`` (:func:`classify_sgd_regime`).

    Attributes
    ----------
    regime : str
        One of :data:`SGD_REGIMES`.
    analytic : str
        The regime from the lines of the published figure, each widened by the same
        ``tol`` (:func:`analytic_sgd_regime`).
    ratio_exponent : float
        Fitted exponent of ``second / first`` in ``d`` (prediction ``-(kappa + delta)``).
    step_exponent : float
        Fitted exponent in ``d`` of the larger per-example change of ``Q``
        (prediction ``-1 - s + max(0, -s)``, ``s = kappa + delta``).
    dims, K, first, second : ndarray
        The dimensions used, the widths built and the two sizes in ``dQ/dalpha`` there.
    """

    regime: str
    analytic: str
    ratio_exponent: float
    step_exponent: float
    dims: np.ndarray = field(repr=False)
    K: np.ndarray = field(repr=False)
    first: np.ndarray = field(repr=False)
    second: np.ndarray = field(repr=False)

    @property
    def code(self) -> int:
        return SGD_REGIMES.index(self.regime)


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def classify_sgd_regime(delta: float, kappa: float, *, dims: Sequence[float] = (1e2, 1e3, 1e4), eta0: float = 1.0,
                        p0: float = 100.0, activation: str = "erf", noise: float = 0.0, teacher: str = "grows",
                        M: int = 2, state: Sequence[float] | None = None, tol: float = 0.1) -> SgdRegime:
    """Classify ``(delta, kappa)`` from the flow at the input dimensions ``dims``.

    At each ``d`` the model of :func:`sgd_scaling_model` is built and the two
    sizes of :func:`sgd_term_sizes` taken at ``state``; least-squares slopes
    in ``ln d`` give the exponent of their ratio and of the larger change of
    ``Q`` per example (``size / d``).  ``tol`` is the width of the lines in
    exponent units (the finite-K corrections and the rounding of ``K`` move
    the exponents by ``O(kappa / K)``; ``p0 = 100`` keeps that below 0.01).

    Raises ``ValueError`` for fewer than two distinct dimensions, ``kappa < 0``
    or a zero first-order term at ``state`` (a fixed point of the gradient flow).
    """
    ds = np.asarray(dims, dtype=float)
    if ds.ndim != 1 or len(np.unique(ds)) < 2 or not np.all(np.isfinite(ds) & (ds > 1)):
        raise ValueError(f"dims: needs at least two distinct input dimensions > 1, got {dims!r}")
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol: must be finite and > 0, got {tol!r}")
    _check(delta, kappa, eta0, p0, teacher, M)
    Ks, first, second = [], [], []
    for d in ds:
        model = sgd_scaling_model(delta, kappa, d, eta0=eta0, p0=p0, activation=activation, noise=noise,
                                  teacher=teacher, M=M)
        f, s = sgd_term_sizes(model, state)
        Ks.append(model.K)
        first.append(f)
        second.append(s)
    first_a, second_a = np.array(first), np.array(second)
    if np.any(first_a <= 0) or np.any(second_a <= 0):
        raise ValueError("state: a term of dQ vanishes there (a fixed point); choose a generic state")
    ratio = _slope(ds, second_a / first_a)
    step = max(_slope(ds, first_a / ds), _slope(ds, second_a / ds))
    if ratio < -tol:
        regime = "gradient flow"
    elif ratio <= tol:
        regime = "both"
    else:
        regime = "noise dominated" if step < -tol else "no ODE limit"
    return SgdRegime(regime, analytic_sgd_regime(delta, kappa, tol), ratio, step, ds, np.array(Ks), first_a, second_a)
