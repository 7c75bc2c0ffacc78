"""Measures of signal propagation through deep random networks."""

from __future__ import annotations

from typing import Any

from ..propagation import PHASE_CHAOTIC, PHASE_ORDERED, PHASE_UNBOUNDED
from ..propagation import correlation_depth_profile, edge_of_chaos, phase_point
from .measures import Outcome, Output, PointContext, register_measure
from .systems import Parameter

__all__ = ["point_sigma_w2", "check_point"]

_PHASES = tuple(name for _, name in sorted({PHASE_ORDERED: "ordered", PHASE_CHAOTIC: "chaotic",
                                            PHASE_UNBOUNDED: "unbounded"}.items()))


def point_sigma_w2(ctx: PointContext) -> float:
    """The point's weight variance; on the edge of chaos at its ``sigma_b2`` for ``"edge_of_chaos"``."""
    def compute() -> float:
        p = ctx.params
        if p["sigma_w2"] != "edge_of_chaos":
            sw = float(p["sigma_w2"])
        else:
            sw = float(edge_of_chaos(p["activation"], float(p["sigma_b2"]))[0])
        ctx.derived["sigma_w2"] = sw  # stored when the study derives sigma_w2
        return sw

    return ctx.shared("sigma_w2", compute)


def check_point(params: dict) -> str | None:
    """Why the propagation parameters ``params`` cannot be computed, or None (the names are checked already)."""
    return None


Q_STAR = Output("fixed point of the variance map q*")
CHI_1 = Output("slope of the correlation map at c = 1, chi_1")


@register_measure("phase", {
    "q_star": Q_STAR,
    "c_star": Output("attracting fixed point of the correlation map c*"),
    "chi_1": CHI_1,
    "chi_q": Output("slope of the variance map at q*"),
    "xi_q": Output("depth scale of the variance map xi_q", "layers"),
    "xi_c": Output("depth scale of the correlation map xi_c", "layers"),
    "phase": Output("phase", "", flags=_PHASES),
}, system="propagation")
def measure_phase(ctx: PointContext, settings: dict) -> Outcome:
    """Fixed points, slopes and depth scales of the variance and correlation maps, and the phase."""
    p = ctx.params
    values: dict[str, Any] = phase_point(p["activation"], point_sigma_w2(ctx), float(p["sigma_b2"]),
                                         n_angle=p["n_angle"], q0=p["q0"])
    values["phase"] = float(values["phase"])
    return Outcome(values)


@register_measure("depth_profile", {
    "c": Output("correlation c_l", "1", ("layer",)),
    "one_minus_c": Output("1 - c_l", "1", ("layer",)),
    "q_star": Q_STAR,
    "chi_1": CHI_1,
    "asymptote": Output("predicted large-depth constant of l^p (1 - c_l)"),
}, system="propagation", settings={
    "depth": Parameter("depth", "integer", 10_000, "number of layers", table="measures", low=1),
    "c0": Parameter("c0", "number", 0.0, "input correlation c_0", "1", table="measures", low=-1.0, high=1.0,
                    high_open=True),
    "q": Parameter("q", "number", None, "variance at which both inputs sit (default q*)", "1", table="measures",
                   low=0.0, low_open=True),
})
def measure_depth_profile(ctx: PointContext, settings: dict) -> Outcome:
    """``c_l`` of two inputs through the layers (:func:`phasekit.propagation.depth.correlation_depth_profile`)."""
    p = ctx.params
    ds = correlation_depth_profile(p["activation"], point_sigma_w2(ctx), float(p["sigma_b2"]), settings["depth"],
                                   c0=settings["c0"], q=settings["q"], n_angle=p["n_angle"])
    return Outcome({"c": ds["c"].values, "one_minus_c": ds["one_minus_c"].values,
                    "q_star": float(ds.attrs["q_star"]), "chi_1": float(ds.attrs["chi_1"]),
                    "asymptote": float(ds.attrs["asymptote"])})

