"""Measures of lazy versus feature-learning training of two-layer networks."""

from __future__ import annotations

import math
from typing import Any

from ..lazy_training.training import run_two_layer
from .measures import Outcome, Output, PointContext, register_measure

__all__ = ["check_point"]

_RUN_KEYS = ("d", "m0", "m", "tau", "seed", "teacher_seed", "activation", "scale", "symmetric", "centered",
             "t_final", "T", "threshold", "trainer", "learning_rate", "batch_size", "quadrature_nodes", "rtol")


def check_point(params: dict) -> str | None:
    """Why the parameters ``params`` cannot be trained, or None."""
    if params["symmetric"] and params["m"] % 2:
        return f"key 'model.m': the symmetrised initialisation needs an even width m, got {params['m']}"
    return None


def _run(ctx: PointContext) -> dict[str, float]:
    """One training run (:func:`phasekit.lazy_training.training.run_two_layer`), shared by the measures."""
    def compute() -> dict[str, float]:
        kwargs = {k: ctx.params[k] for k in _RUN_KEYS}
        return run_two_layer(tangent="tangent" in ctx.study.measures, **kwargs)

    return ctx.shared("run", compute)


def _status(out: dict[str, float]) -> tuple[str, str]:
    if out["failed"]:
        return "failed", "the gradient flow failed or the loss became non-finite"
    return "ok", ""


_TRAINING = {
    "loss": Output("population loss at the end of training"),
    "loss_initial": Output("population loss at initialisation"),
    "relative_loss": Output("final loss / initial loss"),
    # a property of the teacher, the activation and the predictor's centring, not of the student or its training
    "loss_floor": Output("lower bound on the loss from the symmetry of the activation",
                         ignores=("m", "tau", "seed", "scale", "symmetric", "training")),
    "excess_loss": Output("final loss minus the symmetry floor"),
    "weight_displacement": Output("relative weight displacement |w - w0| / |w0|"),
    "time_to_threshold": Output("time to reach the loss threshold (NaN: never)", "mean-field time t"),
    "t_end": Output("final time of the run", "mean-field time t"),
    "n_evaluations": Output("loss-gradient evaluations or SGD steps"),
}

_TANGENT = {
    "tangent_loss": Output("population loss of the trained tangent model"),
    "tangent_loss_limit": Output("loss of the tangent model at infinite time"),
    "tangent_displacement": Output("relative weight displacement of the tangent model"),
    "tangent_distance": Output("L2 distance between network and tangent-model predictors"),
    "relative_tangent_distance": Output("tangent distance / teacher L2 norm"),
}


@register_measure("training", _TRAINING, system="lazy_training")
def measure_training(ctx: PointContext, settings: dict) -> Outcome:
    """Loss and weight displacement after training the student (gradient flow or SGD)."""
    out = _run(ctx)
    values: dict[str, Any] = {k: out[k] for k in _TRAINING if k in out}
    values["t_end"] = out["t_final"]
    return Outcome(values, *_status(out))


@register_measure("tangent", _TANGENT, system="lazy_training")
def measure_tangent(ctx: PointContext, settings: dict) -> Outcome:
    """The tangent model (linearisation at initialisation) trained alongside: its loss and distance to the network."""
    out = _run(ctx)
    values = {k: out.get(k, math.nan) for k in _TANGENT}
    return Outcome(values, *_status(out))
