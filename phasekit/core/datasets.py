"""Provenance attributes attached to every dataset phasekit writes."""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from typing import Any, Mapping

import numpy as np

from .._version import __version__

__all__ = ['provenance_attrs', 'to_jsonable']


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and nested mappings into JSON-ready objects."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def provenance_attrs(parameters: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """Attributes recording what produced a dataset.

    Parameters
    ----------
    parameters : mapping
        Every input that determines the result; stored as a JSON string under
        ``"parameters"`` (netCDF attributes cannot hold nested objects).
    **extra
        Further scalar or string attributes, stored as given.

    Returns
    -------
    dict
        ``phasekit_version``, ``parameters`` (JSON), ``created`` (UTC ISO time),
        ``python_version`` and the extras.
    """
    attrs: dict[str, Any] = {
        "phasekit_version": __version__,
        "parameters": json.dumps(to_jsonable(parameters), sort_keys=True),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python_version": platform.python_version(),
    }
    attrs.update(extra)
    return attrs
