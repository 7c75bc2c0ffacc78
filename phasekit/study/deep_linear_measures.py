"""Measures of deep linear networks: closed-form mode strengths and a trained network."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..deep_linear import mode_strength_ode, mode_trajectories, simulate_deep_linear
from .measures import Outcome, Output, PointContext, register_measure
from .systems import Parameter

__all__ = ["check_point"]


def check_point(params: dict) -> str | None:
    """Why the deep-linear parameters ``params`` cannot be computed, or None."""
    return None


def _times(p: dict) -> np.ndarray:
    return np.linspace(0.0, p["t_max"], p["n_times"])


@register_measure("modes", {
    "time": Output("time t / tau", "1", ("sample",), ignores=("model",)),
    "u": Output("mode strength u", "1", ("mode", "sample")),
    "singular_value": Output("singular value s", "1", ("mode",),
                             ignores=("u0", "depth", "weight_decay", "tau", "integration")),
    "u_initial": Output("initial mode strength", "1", ("mode",),
                        ignores=("depth", "weight_decay", "tau", "integration")),
    "fixed_point": Output("fixed point approached", "1", ("mode",)),
    "max_ode_deviation": Output("largest deviation of the closed form from the integrated ODE"),
}, system="deep_linear")
def measure_modes(ctx: PointContext, settings: dict) -> Outcome:
    """Closed-form mode strengths (:func:`phasekit.deep_linear.modes.mode_trajectories`), checked on the ODE."""
    p = ctx.params
    times = _times(p)
    sv = np.asarray(p["singular_values"], dtype=float)
    kw = {"depth": p["depth"], "weight_decay": p["weight_decay"], "tau": p["tau"]}
    th = mode_trajectories(sv, times, p["u0"], **kw)
    dev = max(float(np.max(np.abs(mode_strength_ode(times, s, p["u0"], **kw) - th["u"].sel(mode=m).values)))
              for m, s in enumerate(sv))
    return Outcome({"time": times, "u": th["u"].values, "singular_value": th["singular_value"].values,
                    "u_initial": th["u0"].values, "fixed_point": th["fixed_point"].values,
                    "max_ode_deviation": dev})


def _unit_tau(study: Any) -> str | None:
    taus = [study.params["tau"]] + [a["tau"] for ax in study.axes for a in ax.assigns if "tau" in a]
    if any(t != 1.0 for t in taus):
        return "the trained network runs in units of its learning time (tau = 1); set tau = 1"
    return None


def _count(name: str, default: int, long_name: str, low: int = 1) -> Parameter:
    return Parameter(name, "integer", default, long_name, table="measures", low=low)


@register_measure("trained_network", {
    "record_time": Output("time t / tau of the trained network's records", "1", ("record",)),
    "u_sim": Output("mode strength of the trained network", "1", ("mode", "record")),
    "u_sim_theory": Output("mode strength, gradient-flow theory at the records", "1", ("mode", "record")),
    "offdiag": Output("off-diagonal norm of U^T W V", "1", ("record",)),
    "train_loss": Output("training loss", "1", ("record",)),
}, system="deep_linear", check=_unit_tau, settings={
    "hidden": _count("hidden", 8, "hidden units"),
    "n_in": _count("n_in", 8, "input units"),
    "n_out": _count("n_out", 6, "output units"),
    "n_samples": _count("n_samples", 64, "training samples"),
    "learning_rate": Parameter("learning_rate", "number", 1e-3, "gradient-descent step", "1", table="measures",
                               low=0.0, low_open=True),
    "seed": _count("seed", 0, "seed of the data and the initialisation", 0),
})
def measure_trained_network(ctx: PointContext, settings: dict) -> Outcome:
    """A network trained by full-batch gradient descent (:func:`phasekit.deep_linear.network.simulate_deep_linear`)."""
    p = ctx.params
    sim = simulate_deep_linear(p["singular_values"], depth=p["depth"], hidden=settings["hidden"],
                               n_in=settings["n_in"], n_out=settings["n_out"], n_samples=settings["n_samples"],
                               u0=p["u0"], weight_decay=p["weight_decay"], learning_rate=settings["learning_rate"],
                               t_max=p["t_max"], n_records=p["n_times"], seed=settings["seed"])
    return Outcome({"record_time": sim["time"].values, "u_sim": sim["u_sim"].values,
                    "u_sim_theory": sim["u_theory"].values, "offdiag": sim["offdiag"].values,
                    "train_loss": sim["loss"].values})
