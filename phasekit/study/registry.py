"""The measures of every system, loaded into the one registry :data:`MEASURES`."""

from __future__ import annotations

from typing import Any

from . import (asymptotic_measures, committee_batch, committee_measures, deep_linear_measures, lazy_measures,  # noqa: F401
               propagation_measures)
from .measures import MEASURES

# every committee measure is registered by now: each one's check learns whether it serves a subspace
committee_measures.wrap_subspace_checks()

__all__ = ["MEASURES", "check_parameters", "make_prefetch"]

_CHECKS = {"committee": committee_measures.check_point, "propagation": propagation_measures.check_point,
           "deep_linear": deep_linear_measures.check_point, "lazy_training": lazy_measures.check_point}


def check_parameters(system: str, params: dict) -> str | None:
    """Why a point with these parameters of ``system`` cannot be computed (one line), or None."""
    return _CHECKS[system](params)


_PREFETCH = {"committee": committee_batch.Prefetch}


def make_prefetch(study: Any, tasks: list, batch_points: int) -> Any:
    """What computes the points of ``tasks`` ahead, in batches of ``batch_points`` (None: nothing for this system)."""
    cls = _PREFETCH.get(study.system)
    if cls is None or batch_points <= 1:
        return None
    pf = cls(study, tasks, batch_points)
    return pf if pf.enabled else None
