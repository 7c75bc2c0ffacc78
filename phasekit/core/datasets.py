"""Dataset metadata: the catalog of standard variables, the model-attribute block, provenance.

:data:`VARIABLES` names every standard variable and coordinate (``R``, ``Q``,
``eg``, ``alpha``, ``eta_alpha``, ``i``, ``k``, ``n``, ``eta``, ``K``, ``M``,
``activation``, ``X``, ``noise``, the propagation, deep-linear and lazy-training
quantities) with its ``long_name`` and ``units``; :func:`variable` and
:func:`coordinate` build dataset entries with them.  :func:`model_attrs` is
the attribute block of a committee machine, :func:`provenance_attrs` the
provenance of every dataset, :func:`format_value` the one formatting of
values in tables and reports.
"""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from .._version import __version__

__all__ = ['VARIABLES', 'attrs_for', 'coordinate', 'format_repr', 'format_value', 'model_attrs', 'provenance_attrs',
           'to_jsonable', 'variable']


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and nested mappings into JSON-ready objects."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:  # the common leaves, without ABC checks
        return value
    if kind is float:
        return value if np.isfinite(value) else str(value)
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


#: The catalog of standard names: what every dataset calls R, Q, eps_g, alpha, ... with their
#: ``(long_name, units)``.  Systems and studies take both from here (variable(), coordinate(), attrs_for()).
VARIABLES: Mapping[str, tuple[str, str]] = MappingProxyType({
    # the committee machine
    "R": ("student-teacher overlap R_in", "1"),
    "Q": ("student-student overlap Q_ik", "1"),
    "T": ("teacher-teacher overlap T_nm", "1"),
    "eg": ("generalisation error eps_g", "1"),
    "alpha": ("examples per input dimension alpha", "1"),
    "eta_alpha": ("scaled time eta alpha", "1"),
    "i": ("student unit", "1"),
    "k": ("student unit", "1"),
    "n": ("teacher unit", "1"),
    "eta": ("learning rate eta", "1"),
    "K": ("student hidden units K", "1"),
    "M": ("teacher hidden units M", "1"),
    "activation": ("activation", ""),
    "teacher_activation": ("teacher activation", ""),
    "second_order": ("eta^2 term kept (1) or not (0)", "1"),
    "X": ("initial overlap scale X", "1"),
    "noise": ("output noise standard deviation", "1"),
    "v": ("student second-layer weight v_i", "1"),
    "teacher_weights": ("teacher second-layer weights w_n", "1"),
    "student_weights": ("student second-layer weights v_i (fixed, or initial when trained)", "1"),
    "normalisation": ("default second-layer weights: none, 1/K or 1/sqrt(K)", ""),
    "train_second_layer": ("second layer trained (1) or fixed (0)", "1"),
    "eta_second_layer": ("second-layer learning rate eta_v", "1"),
    "weight_decay": ("weight decay lambda", "1"),
    "drift": ("teacher drift strength delta", "1"),
    "eta_schedule": ("learning-rate schedule (JSON)", ""),
    "learning_rate": ("learning rate eta(alpha)", "1"),
    "run": ("run", "1"),
    "component": ("order parameter", ""),
    # signal propagation
    "sigma_w2": ("weight variance sigma_w^2", "1"),
    "sigma_b2": ("bias variance sigma_b^2", "1"),
    "q_star": ("fixed point of the variance map q*", "1"),
    "c_star": ("attracting fixed point of the correlation map c*", "1"),
    "chi_1": ("slope of the correlation map at c = 1, chi_1", "1"),
    "chi_q": ("slope of the variance map at q*", "1"),
    "xi_q": ("depth scale of the variance map xi_q", "layers"),
    "xi_c": ("depth scale of the correlation map xi_c", "layers"),
    "phase": ("phase (0 ordered, 1 chaotic, 2 unbounded variance)", "1"),
    "eoc_sigma_w2": ("weight variance on the edge of chaos", "1"),
    "eoc_q_star": ("q* on the edge of chaos", "1"),
    "eoc_q_attracting": ("q* on the edge of chaos attracts the variance map (1) or not (0)", "1"),
    "layer": ("layer l", "1"),
    "c": ("correlation c_l", "1"),
    "one_minus_c": ("1 - c_l", "1"),
    # deep linear networks
    "u": ("mode strength u", "1"),
    "u_sim": ("mode strength of the trained network", "1"),
    "u_theory": ("mode strength, gradient-flow theory", "1"),
    "offdiag": ("off-diagonal norm of U^T W V", "1"),
    "singular_value": ("singular value s", "1"),
    "u0": ("initial mode strength", "1"),
    "fixed_point": ("fixed point approached", "1"),
    "mode": ("mode index", "1"),
    "time": ("time t / tau", "1"),
    # lazy versus feature-learning training
    "tau": ("initial scale tau", "1"),
    "m": ("student width m", "1"),
    "scale": ("output scale", "1"),
    "seed": ("student seed", "1"),
    "loss": ("population loss at the end of training", "1"),
    "loss_initial": ("population loss at initialisation", "1"),
    "relative_loss": ("final loss / initial loss", "1"),
    "loss_floor": ("lower bound on the loss from the symmetry of the activation", "1"),
    "excess_loss": ("final loss minus the symmetry floor", "1"),
    "weight_displacement": ("relative weight displacement |w - w0| / |w0|", "1"),
    "tangent_loss": ("population loss of the trained tangent model", "1"),
    "tangent_loss_limit": ("loss of the tangent model at infinite time", "1"),
    "tangent_displacement": ("relative weight displacement of the tangent model", "1"),
    "tangent_distance": ("L2 distance between network and tangent-model predictors", "1"),
    "relative_tangent_distance": ("tangent distance / teacher L2 norm", "1"),
    "time_to_threshold": ("time to reach the loss threshold (NaN: never)", "mean-field time t"),
    "t_final": ("final time of the run", "mean-field time t"),
    "n_evaluations": ("loss-gradient evaluations or SGD steps", "1"),
    "failed": ("run failed (1) or not (0)", "1"),
})


def attrs_for(name: str, **override: Any) -> dict[str, Any]:
    """``long_name`` and ``units`` of a catalogued name (:data:`VARIABLES`), with ``override`` on top.

    Raises
    ------
    ValueError
        For a name not in the catalog unless both ``long_name`` and ``units`` are given.
    """
    if name in VARIABLES:
        long_name, units = VARIABLES[name]
    elif "long_name" in override and "units" in override:
        long_name, units = override["long_name"], override["units"]
    else:
        raise ValueError(f"name: {name!r} is not in the catalog of variables; pass long_name and units")
    return {"long_name": long_name, "units": units, **override}


def variable(name: str, dims: str | Sequence[str], data: Any, **attrs: Any) -> tuple[tuple[str, ...], Any, dict]:
    """``(dims, data, attrs)`` of a data variable with its catalogued attributes (``attrs`` override)."""
    dims = (dims,) if isinstance(dims, str) else tuple(dims)
    return dims, data, attrs_for(name, **attrs)


def coordinate(name: str, values: Any, **attrs: Any) -> tuple[tuple[str, ...], Any, dict]:
    """``((name,), values, attrs)`` of a dimension coordinate with its catalogued attributes."""
    return variable(name, name, values, **attrs)


def model_attrs(parameters: Mapping[str, Any], *, exclude: Sequence[str] = ()) -> dict[str, Any]:
    """The model block of a dataset's attributes from a committee machine's parameters.

    ``K``, ``M``, ``activation``, ``teacher_activation``, ``eta``,
    ``second_order`` (0 or 1), ``noise``, and those of the general committee
    machine present in ``parameters`` (``teacher_weights``,
    ``student_weights``, ``normalisation``, ``train_second_layer`` (0 or 1),
    ``eta_second_layer`` (``"none"`` when tied to ``eta``), ``weight_decay``,
    ``drift``, ``eta_schedule`` (JSON, ``"none"`` without)), and every parameter
    as JSON under ``"model"`` (from which the model is rebuilt); ``exclude``
    leaves scalar keys out (``("eta",)`` for datasets along eta).
    """
    out = {"model": json.dumps(dict(parameters)), "K": int(parameters["K"]), "M": int(parameters["M"]),
           "activation": parameters["activation"], "teacher_activation": parameters["teacher_activation"],
           "eta": parameters["eta"], "second_order": int(parameters["second_order"]), "noise": parameters["noise"]}
    for key in ("teacher_weights", "student_weights", "normalisation", "weight_decay", "drift"):
        if key in parameters:
            out[key] = parameters[key]
    if "train_second_layer" in parameters:
        out["train_second_layer"] = int(parameters["train_second_layer"])
    if "eta_second_layer" in parameters:
        out["eta_second_layer"] = "none" if parameters["eta_second_layer"] is None else parameters["eta_second_layer"]
    if "eta_schedule" in parameters:
        sched = parameters["eta_schedule"]
        out["eta_schedule"] = "none" if sched is None else json.dumps(sched)
    for key in exclude:
        out.pop(key, None)
    return out


def format_value(value: Any, digits: int = 4, *, nan: str = "nan") -> str:
    """A value for tables and reports: floats to ``digits`` significant digits, ``nan`` for NaN, ``inf``."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if np.isnan(value):
            return nan
        if np.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}g}"
    return str(value)


def format_repr(value: Any, width: int = 60) -> str:
    """``repr(value)`` cut to ``width`` characters (``...`` at the end), for one-line error messages."""
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


class _LazyDaskModule:
    """xarray's record of the dask module, looked up only once ``dask.array`` is imported.

    xarray asks for dask's array type whenever it builds a variable, and thereby
    imports dask (0.5-1 s).  No object is a dask array before ``dask.array`` is
    imported, so until then the type tuple is empty; afterwards (and for
    anything else asked) the real record is built and takes this one's place.
    """

    def __init__(self, cache: dict, make: Any) -> None:
        self._cache, self._make = cache, make

    def _real(self) -> Any:
        real = self._make("dask")
        self._cache["dask"] = real
        return real

    @property
    def type(self) -> tuple:
        import sys

        return self._real().type if "dask.array" in sys.modules else ()

    def __getattr__(self, name: str) -> Any:  # module, version, available
        return getattr(self._real(), name)


def _if_dask_loaded(original: Any, default: Any) -> Any:
    """``original`` (an xarray query about dask), answering ``default`` while dask is not imported."""
    import sys

    def query(*args: Any, **kwargs: Any) -> Any:
        return original(*args, **kwargs) if "dask" in sys.modules else default

    query._phasekit_lazy = True  # type: ignore[attr-defined]
    return query


def _lazy_dask_in_xarray() -> None:
    """Let xarray import dask only when dask is in use (idempotent; a no-op on other xarray layouts).

    Writing a netCDF file asks which dask scheduler is active, and building or
    reading a variable asks whether it is a dask collection and for dask's
    array type; each imports dask (and ``distributed``) even when nothing uses
    it.  Before dask is imported no dask scheduler is active and no object is
    a dask collection, so the answers stay the same.
    """
    import sys

    if "dask" in sys.modules:
        return
    try:
        from xarray.backends import locks
        from xarray.namedarray import pycompat, utils
    except ImportError:
        return
    cache = getattr(pycompat, "_cached_duck_array_modules", None)
    make = getattr(pycompat, "DuckArrayModule", None)
    if isinstance(cache, dict) and make is not None and "dask" not in cache:
        cache["dask"] = _LazyDaskModule(cache, make)
    for home, name, default in ((locks, "get_dask_scheduler", None), (utils, "is_dask_collection", False)):
        original = getattr(home, name, None)
        if original is None or getattr(original, "_phasekit_lazy", False):
            continue
        lazy = _if_dask_loaded(original, default)
        for module in [m for k, m in sys.modules.items() if k.startswith("xarray.")]:
            if getattr(module, name, None) is original:
                setattr(module, name, lazy)
