"""Committee measures of where learning ends up: noise floors, steady states under drift, annealing, SGD regimes.

The noise floor of over-parameterised students with output noise, the
learning rate that minimises the steady-state error under drift, the
``C / alpha`` law of ``1/alpha`` annealing, and the regime of the flow's terms
at width and learning-rate exponents ``(delta, kappa)``.  They share the
point's model and the process-wide memo of :mod:`.committee_measures`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..committee import State, find_fixed_point, optimal_steady_eta
from ..committee.model import Committee
from .committee_measures import _memo, _model_key, _needs_autonomous, point_model, unit_coords
from .measures import Outcome, Output, PointContext, register_measure
from .systems import Parameter

__all__ = ["noise_floor_closed_form"]


# --- the noise floor of over-parameterised students ---------------------------------------------


def _noise_floor_guess(model: Committee) -> tuple[State, np.ndarray]:
    """The noiseless solution an over-parameterised erf student settles next to, and the copies per teacher.

    First layer only (``v`` fixed): each of the first M students copies one
    teacher (``R = Q = I`` there) and the other ``K - M`` have zero norm, so
    that they add nothing to the output.  Both layers trained: student ``i``
    copies teacher ``i mod M`` and the ``c_n`` copies of teacher ``n`` share its
    output weight, ``v_i = w_n / c_n`` (the solution SGD is seen to approach).
    """
    K, M = model.K, model.M
    R = np.zeros((K, M))
    if model.train_second_layer:
        R[np.arange(K), np.arange(K) % M] = 1.0
        copies = np.bincount(np.arange(K) % M, minlength=M).astype(float)
        v = model.teacher_weights[np.arange(K) % M] / copies[np.arange(K) % M]
    else:
        R[:M] = np.eye(M)
        copies, v = np.ones(M), None
    Q = R @ R.T + 1e-6 * np.eye(K)  # just inside the cone: the copies coincide
    return State(R, Q, v), copies


def noise_floor_closed_form(model: Committee) -> float:
    """Small-eta closed form of the noise floor of an erf student (teacher ``w = 1``, ``T = I``, ``K >= M``).

    To first order in ``eta sigma^2``, a student unit that copies a teacher
    adds ``eta sigma^2 / (2 sqrt(3) pi)``, divided by the number ``c_n`` of
    students sharing that teacher (both layers trained); a unit of zero norm
    (first layer only, ``v = 1``) settles at ``Q = eta sigma^2 / 2`` and adds
    ``eta sigma^2 / (2 pi)``::

        eps_g* = eta sigma^2 / (2 pi) [ sum_n 1 / (sqrt(3) c_n) + (K - M) ]   (first layer: c_n = 1)
        eps_g* = eta sigma^2 / (2 pi) sum_n 1 / (sqrt(3) c_n)                (both layers)

    NaN outside that setting.
    """
    K, M = model.K, model.M
    if model.activation.name != "erf" or K < M or not np.array_equal(model.T, np.eye(M)) \
            or not np.allclose(model.teacher_weights, 1.0) or model.weight_decay or model.drift \
            or (not model.train_second_layer and not np.allclose(model.student_weights, 1.0)):
        return math.nan
    _, copies = _noise_floor_guess(model)
    unused = 0 if model.train_second_layer else K - M
    return model.eta * model.noise ** 2 / (2 * math.pi) * (float(np.sum(1.0 / (math.sqrt(3.0) * copies))) + unused)


def _noise_floor_check(study: Any) -> str | None:
    p = study.params
    gridded = any("K" in a or "M" in a for ax in study.axes for a in ax.assigns)
    if not gridded and p["M"] != "K" and p["K"] < p["M"]:
        return f"the noise floor of an over-parameterised student needs K >= M, got K = {p['K']}, M = {p['M']}"
    return _needs_autonomous("the noise floor (a fixed point)")(study)


@register_measure("noise_floor",
                  {"floor_eg": Output("eps_g at the fixed point an over-parameterised student settles at"),
                   "floor_closed_form": Output("small-eta closed form of that eps_g (erf, w = 1)"),
                   "floor_v": Output("student second-layer weights at that fixed point", "1", ("i",)),
                   "floor_n_unstable": Output("unstable directions of that fixed point")},
                  coords=unit_coords, check=_noise_floor_check)
def measure_noise_floor(ctx: PointContext, settings: dict) -> Outcome:
    """The fixed point next to the noiseless solution of a student with K >= M, by Newton's method.

    The guess is :func:`_noise_floor_guess` (first layer only: M copies and
    K - M units of zero norm; both layers: every unit copies a teacher and the
    copies share its output weight).  With output noise the fixed point moves
    off it by O(eta sigma^2); ``floor_closed_form`` is
    :func:`noise_floor_closed_form`.  Status ``failed`` where Newton did not converge.
    """
    model = point_model(ctx)
    values: dict[str, Any] = {"floor_eg": math.nan, "floor_closed_form": noise_floor_closed_form(model),
                              "floor_v": np.full(model.K, math.nan), "floor_n_unstable": math.nan}
    if model.K < model.M:
        return Outcome(values, "failed", f"noise_floor: needs K >= M, got K = {model.K}, M = {model.M}")
    guess, _ = _noise_floor_guess(model)
    fp = _memo(("noise_floor",) + _model_key(model, ctx.newton),
               lambda: find_fixed_point(model, guess, newton=ctx.newton))
    if fp.success:
        v = fp.state.v if fp.state.v is not None else model.student_weights
        values.update(floor_eg=float(fp.eg), floor_v=np.asarray(v, dtype=float), floor_n_unstable=int(fp.n_unstable))
    return Outcome(values, fp.status, fp.message)


# --- the best learning rate under drift ----------------------------------------------------------------

_ETA_LOW = Parameter("eta_low", "number", 0.01, "lower end of the learning rates searched", "1", table="measures",
                     low=0.0, low_open=True)
_ETA_HIGH = Parameter("eta_high", "number", 3.0, "upper end of the learning rates searched", "1",
                      table="measures", low=0.0, low_open=True)


def _steady_eta_check(study: Any) -> str | None:
    given = study.measures.get("steady_eta", {})
    lo, hi = given.get("eta_low", _ETA_LOW.default), given.get("eta_high", _ETA_HIGH.default)
    if not lo < hi:
        return f"eta_low must be < eta_high, got eta_low = {lo:g}, eta_high = {hi:g}"
    return _needs_autonomous("the steady state")(study)


@register_measure("steady_eta",
                  {"steady_eta": Output("learning rate of the smallest steady-state eps_g"),
                   "steady_eta_eg": Output("smallest steady-state eps_g over the learning rate")},
                  settings={"eta_low": _ETA_LOW, "eta_high": _ETA_HIGH}, check=_steady_eta_check)
def measure_steady_eta(ctx: PointContext, settings: dict) -> Outcome:
    """The eta that minimises the steady-state eps_g (:func:`phasekit.committee.steady.optimal_steady_eta`).

    Searched in ``[eta_low, eta_high]`` with everything else of the point's
    model (its own eta is not used; ``weight_decay`` is phasekit's lambda,
    held fixed, so a decay ``gamma = eta lambda`` written without eta, as in
    Straat et al. 2018, changes with eta); ``not_reached`` when the minimum
    is at an end of that range.
    """
    model = point_model(ctx)
    lo, hi = float(settings["eta_low"]), float(settings["eta_high"])
    res = _memo(("steady_eta", lo, hi) + _model_key(model.replace(eta=1.0), ctx.newton),
                lambda: optimal_steady_eta(model, (lo, hi), newton=ctx.newton))
    return Outcome({"steady_eta": float(res.value), "steady_eta_eg": float(res.eg)}, res.status, res.message)


# --- 1/alpha annealing with output noise ---------------------------------------------------------------

@register_measure("annealing_asymptote",
                  {"annealing_C": Output("coefficient C of eps_g ~ C / (alpha + alpha0) under 1/alpha annealing"),
                   "annealing_exponent": Output("decay exponent of eps_g under 1/alpha annealing"),
                   "annealing_rate": Output("slowest decay rate at the perfect solution per unit eta alpha")})
def measure_annealing_asymptote(ctx: PointContext, settings: dict) -> Outcome:
    """The law of the error's decay under ``eta0 (1 + alpha/alpha0)^(-1)`` with output noise.

    :func:`phasekit.committee.annealing.annealing_asymptote` at points whose
    schedule is a power law with ``p = 1``; NaN (``not_reached``) at the
    others (e.g. the constant-eta case of a comparison).
    """
    from ..committee.annealing import annealing_asymptote

    model = point_model(ctx)
    nan = {"annealing_C": math.nan, "annealing_exponent": math.nan, "annealing_rate": math.nan}
    sched = model.eta_schedule
    if sched is None or sched.kind != "power_law" or float(sched.p) != 1.0:
        return Outcome(nan, "not_reached", "no 1/alpha schedule at this point")
    res = annealing_asymptote(model)
    return Outcome({"annealing_C": float(res.coefficient), "annealing_exponent": float(res.exponent),
                    "annealing_rate": float(res.lambda_min)}, res.status, res.message)


# --- the phase diagram of SGD in width and learning-rate scaling ----------------------------------

def _sgd_setting(name: str, kind: str, default: Any, long_name: str, **kw: Any) -> Parameter:
    return Parameter(name, kind, default, long_name, "1" if kind in ("number", "numbers") else "",
                     table="measures", **kw)


@register_measure("sgd_regime", {
    "sgd_regime": Output("regime of the flow's terms (from the flow)", "",
                         flags=("gradient flow", "both", "noise dominated", "no ODE limit")),
    "sgd_regime_analytic": Output("regime from the published lines delta = -kappa, delta = -kappa - 1/2", "",
                                  flags=("gradient flow", "both", "noise dominated", "no ODE limit")),
    "ratio_exponent": Output("exponent in d of (eta^2 and noise terms) / (first-order terms)"),
    "step_exponent": Output("exponent in d of the change of Q per example"),
}, settings={
    "delta": _sgd_setting("delta", "number", 0.0, "learning-rate exponent delta"),
    "kappa": _sgd_setting("kappa", "number", 0.0, "width exponent kappa", low=0.0),
    "eta0": _sgd_setting("eta0", "number", 1.0, "learning-rate prefactor eta0", low=0.0, low_open=True),
    "p0": _sgd_setting("p0", "number", 100.0, "width prefactor p0", low=0.0, low_open=True),
    "dims": _sgd_setting("dims", "numbers", [1e2, 1e3, 1e4], "input dimensions d of the fit", low=1.0,
                         low_open=True),
    "teacher": _sgd_setting("teacher", "choice", "grows", "teacher: M = K (site-symmetric) or M fixed",
                            choices=("grows", "fixed")),
    "tol": _sgd_setting("tol", "number", 0.1, "half-width of a line in exponent units", low=0.0, low_open=True),
}, ignores=("K", "eta", "eta_over_eta_c", "second_order", "normalisation", "initial", "integration"))
def measure_sgd_regime(ctx: PointContext, settings: dict) -> Outcome:
    """Which terms of the 1/K committee's flow survive at ``(delta, kappa)``.

    :func:`~phasekit.committee.sgd_phases.classify_sgd_regime`; the model's ``activation``, ``noise`` and (with ``teacher = "fixed"``)
    ``M`` are the point's; K, eta and the normalisation follow from the exponents.
    """
    from ..committee.sgd_phases import SGD_REGIMES, classify_sgd_regime

    p, s = ctx.params, settings
    M = p["K"] if p["M"] == "K" else p["M"]
    res = classify_sgd_regime(float(s["delta"]), float(s["kappa"]), dims=s["dims"], eta0=s["eta0"], p0=s["p0"],
                              activation=p["activation"], noise=p["noise"], teacher=s["teacher"], M=int(M),
                              tol=s["tol"])
    return Outcome({"sgd_regime": float(res.code), "sgd_regime_analytic": float(SGD_REGIMES.index(res.analytic)),
                    "ratio_exponent": res.ratio_exponent, "step_exponent": res.step_exponent})
