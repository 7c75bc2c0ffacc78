"""Grid axes of a study: lists, ranges (also with values per value of an earlier axis) and cases.

Also the one-line checker every part of a study file goes through (``StudyError``
naming the file and the key) and the sanity limit on the number of grid points.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .systems import Parameter, System, _fmt

__all__ = ["Axis", "StudyError", "check_grid", "max_points"]

# Sanity limit on the number of grid points (a typo such as num = 1e8 would fill the
# memory before the first point is computed); raised by this environment variable.
MAX_POINTS = 1_000_000
MAX_POINTS_ENV = "PHASEKIT_MAX_POINTS"


class StudyError(ValueError):
    """A study file is malformed; the message is one line naming the key."""


# Sanity limit on the number of grid points (a typo such as num = 1e8 would fill the
# memory before the first point is computed); raised by this environment variable.
MAX_POINTS = 1_000_000
MAX_POINTS_ENV = "PHASEKIT_MAX_POINTS"

def max_points() -> int:
    """Largest grid a study may have: :data:`MAX_POINTS`, or ``$PHASEKIT_MAX_POINTS``."""
    text = os.environ.get(MAX_POINTS_ENV, "").strip()
    if not text:
        return MAX_POINTS
    try:
        value = int(float(text))
    except ValueError:
        raise StudyError(f"{MAX_POINTS_ENV}: must be a number of grid points >= 1, got {text!r}") from None
    if value < 1:
        raise StudyError(f"{MAX_POINTS_ENV}: must be a number of grid points >= 1, got {text!r}")
    return value


def _too_many(n: int) -> str:
    how = f"${MAX_POINTS_ENV}" if os.environ.get(MAX_POINTS_ENV, "").strip() else \
        f"set {MAX_POINTS_ENV} to allow more"
    return f"{n:,} grid points exceed the limit of {max_points():,} ({how})"


class _Checker:
    """One-line errors ``"<source>: key '<key>': <problem>"``."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, what: str) -> StudyError:
        return StudyError(f"{self.source}: key '{key}': {what}")

    def table(self, key: str, value: Any) -> dict:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a table, got {type(value).__name__} {_fmt(value)}")
        return dict(value)

    def known(self, key: str, table: Mapping, allowed: Any, hint: Mapping[str, str] | None = None) -> None:
        for k in table:
            if k not in allowed:
                where = f"{key}.{k}" if key else k
                extra = f"; {hint[k]}" if hint and k in hint else ""
                raise StudyError(f"{self.source}: unknown key '{where}' (allowed: {', '.join(allowed)}){extra}")

    def string(self, key: str, value: Any, pattern: str | None = None) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {type(value).__name__} {_fmt(value)}")
        if pattern and not re.fullmatch(pattern, value):
            raise self.fail(key, f"must match {pattern}, got {_fmt(value)}")
        return value

    def value(self, param: Parameter, key: str, value: Any) -> Any:
        try:
            return param.check(value)
        except ValueError as exc:
            text = str(exc)
            if text.startswith("["):  # an element of a list: name it in the key
                sub, _, text = text.partition("] ")
                key = f"{key}{sub}]"
            raise self.fail(key, text) from None

    def integer(self, key: str, value: Any, minimum: int) -> int:
        return self.value(Parameter(key, "integer", low=minimum), key, value)


@dataclass(frozen=True)
class Axis:
    """One grid axis.

    Attributes
    ----------
    name : str
        The axis (a parameter, a measure setting, or the name of a case axis).
    dim : str
        Its dim in the dataset (``<name>_index`` for an axis whose values depend on another axis).
    size : int
    assigns : tuple of dict
        What the axis sets at each of its positions (``{name: value}``; a case
        axis sets several parameters).  For a dependent axis: empty, see ``table``.
    coord : tuple
        Coordinate values (case axes: the case names, or the values of the parameter the axis is named after).
    depends : str or None
        The earlier axis whose value selects the values of this one.
    table : dict
        Dependent axis: value of ``depends`` (as a string) -> list of values.
    spec : object
        The axis as written in the study (for :meth:`Study.to_dict`).
    """

    name: str
    dim: str
    size: int
    assigns: tuple = ()
    coord: tuple = ()
    depends: str | None = None
    table: dict = field(default_factory=dict)
    spec: Any = None

    @property
    def is_case(self) -> bool:
        return bool(self.assigns) and any(len(a) > 1 or self.name not in a for a in self.assigns)

    def values_at(self, j: int, point: Mapping[str, Any]) -> dict[str, Any]:
        """What position ``j`` sets, given the values of the earlier axes in ``point``."""
        if self.depends is not None:
            return {self.name: self.table[str(point[self.depends])][j]}
        return dict(self.assigns[j])


def _resolve(system: System, measures: Mapping[str, Mapping], name: str) -> list[tuple[str, Parameter]]:
    """Where a grid name lands: the system parameter, or the measures' setting of that name."""
    if name in system.parameters:
        return [("param", system.parameters[name])]
    from .registry import MEASURES

    return [(m, MEASURES[m].settings[name]) for m in measures if name in MEASURES[m].settings]


def _range(chk: _Checker, key: str, param: Parameter, spec: Mapping, axes: list[Axis]) -> Axis:
    chk.known(key, spec, ("start", "stop", "num", "spacing"))
    for need in ("start", "stop", "num"):
        if need not in spec:
            raise chk.fail(f"{key}.{need}", "is required in a range")
    num = chk.integer(f"{key}.num", spec["num"], 1)
    if num > max_points():
        raise chk.fail(f"{key}.num", _too_many(num))
    spacing = chk.string(f"{key}.spacing", spec.get("spacing", "linear"))
    if spacing not in ("linear", "log"):
        raise chk.fail(f"{key}.spacing", f"must be 'linear' or 'log', got {spacing!r}")
    ends = {}
    depends = None
    for end in ("start", "stop"):
        v = spec[end]
        if isinstance(v, Mapping):  # one value per value of an earlier axis
            owner = next((a for a in axes if a.depends is None and not a.is_case
                          and {str(c) for c in a.coord} == set(v)), None)
            if owner is None:
                raise chk.fail(f"{key}.{end}", "a table must give one value for each value of an earlier grid "
                                               f"axis, got keys {', '.join(map(str, v))}")
            if depends not in (None, owner.name):
                raise chk.fail(f"{key}.{end}", f"start and stop must depend on the same axis")
            depends = owner.name
            ends[end] = {k: chk.value(param, f"{key}.{end}.{k}", x) for k, x in v.items()}
        else:
            ends[end] = chk.value(param, f"{key}.{end}", v)
    keys = sorted(next(e for e in ends.values() if isinstance(e, dict))) if depends else [None]
    table = {}
    for k in keys:
        start = ends["start"][k] if isinstance(ends["start"], dict) else ends["start"]
        stop = ends["stop"][k] if isinstance(ends["stop"], dict) else ends["stop"]
        if spacing == "log" and start <= 0:
            raise chk.fail(f"{key}.start", f"must be > 0 for log spacing, got {start:g}")
        vals = np.geomspace(start, stop, num) if spacing == "log" else np.linspace(start, stop, num)
        values = [float(x) for x in vals]
        if len(set(values)) != len(values):
            raise chk.fail(key, f"values must be distinct, got {_fmt(values)}")
        table[k] = values
    name = key.split(".", 1)[1]
    if depends is None:
        values = table[None]
        return Axis(name, name, num, tuple({name: v} for v in values), tuple(values), spec=dict(spec))
    return Axis(name, f"{name}_index", num, depends=depends, table=table, spec=dict(spec))


def _axis(chk: _Checker, system: System, measures: Mapping, axes: list[Axis], name: str, spec: Any) -> Axis:
    key = f"grid.{name}"
    targets = _resolve(system, measures, name)
    if isinstance(spec, Mapping):
        if not targets:
            raise StudyError(f"{chk.source}: unknown key '{key}' (not a parameter of the {system.name} system "
                             f"or a setting of a listed measure; parameters: {', '.join(system.parameters)})")
        param = targets[0][1]
        if not param.is_numeric:
            raise chk.fail(key, "a {start, stop, num} range is only allowed for numbers")
        return _range(chk, key, param, spec, axes)
    if not isinstance(spec, list):
        raise chk.fail(key, f"must be a list of values or a range table, got {type(spec).__name__} {_fmt(spec)}")
    if not spec:
        raise chk.fail(key, "must not be empty")
    if len(spec) > max_points():
        raise chk.fail(key, _too_many(len(spec)))
    if all(isinstance(v, Mapping) for v in spec):  # a case axis
        assigns, coord = [], []
        for j, case in enumerate(spec):
            ckey = f"{key}[{j}]"
            case = dict(case)
            label = case.pop("name", None)
            if not targets and label is None:
                raise chk.fail(f"{ckey}.name", "is required: each case of this axis needs a name")
            one = {}
            for k, v in case.items():
                found = _resolve(system, measures, k)
                if not found:
                    raise StudyError(f"{chk.source}: unknown key '{ckey}.{k}' (not a parameter of the {system.name} "
                                     f"system or a setting of a listed measure)")
                one[k] = chk.value(found[0][1], f"{ckey}.{k}", v)
            if label is None:
                if name not in one:
                    raise chk.fail(f"{ckey}.{name}", "is required: the axis is named after it")
                label = one[name]
            else:
                label = chk.string(f"{ckey}.name", label)
            assigns.append(one)
            coord.append(label)
        if len(set(map(str, coord))) != len(coord):
            raise chk.fail(key, f"case names must be distinct, got {_fmt(coord)}")
        return Axis(name, name, len(spec), tuple(assigns), tuple(coord), spec=copy.deepcopy(spec))
    if not targets:
        raise StudyError(f"{chk.source}: unknown key '{key}' (not a parameter of the {system.name} system "
                         f"or a setting of a listed measure; parameters: {', '.join(system.parameters)})")
    param = targets[0][1]
    values = [chk.value(param, f"{key}[{j}]", v) for j, v in enumerate(spec)]
    if len({json.dumps(v) for v in values}) != len(values):
        raise chk.fail(key, f"values must be distinct, got {_fmt(values)}")
    return Axis(name, name, len(values), tuple({name: v} for v in values),
                tuple(json.dumps(v) if isinstance(v, list) else v for v in values), spec=list(spec))


def check_grid(chk: _Checker, system: System, data: Mapping, measures: Mapping) -> list[Axis]:
    grid_in = chk.table("grid", data.get("grid", {}))
    axes: list[Axis] = []
    n = 1
    for name, spec in grid_in.items():
        axis = _axis(chk, system, measures, axes, name, spec)
        axes.append(axis)
        n *= axis.size
        if n > max_points():  # before the next axis multiplies it further
            raise chk.fail("grid", _too_many(n))
    set_by = {}
    for axis in axes:
        names = [axis.name] if axis.depends is not None else sorted({k for a in axis.assigns for k in a})
        for k in names:
            if k in set_by:
                raise chk.fail(f"grid.{axis.name}", f"sets {k!r}, which grid axis {set_by[k]!r} sets already")
            set_by[k] = axis.name
    return axes
