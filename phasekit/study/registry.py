"""The measures of every system, loaded into the one registry :data:`MEASURES`."""

from __future__ import annotations

from . import committee_measures, deep_linear_measures, lazy_measures, propagation_measures
from .measures import MEASURES

__all__ = ["MEASURES", "check_parameters"]

_CHECKS = {"committee": committee_measures.check_point, "propagation": propagation_measures.check_point,
           "deep_linear": deep_linear_measures.check_point, "lazy_training": lazy_measures.check_point}


def check_parameters(system: str, params: dict) -> str | None:
    """Why a point with these parameters of ``system`` cannot be computed (one line), or None."""
    return _CHECKS[system](params)
