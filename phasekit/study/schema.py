"""Study files: TOML descriptions of a parameter sweep (or a named recipe).

A study names a model, the grid axes to sweep, the measures to compute at each
grid point and how to integrate.  Everything is validated when the file is
read, before any work starts: an unknown key, a value of the wrong type or out
of range is rejected with a one-line :class:`StudyError` naming the key.

Example (``studies/quickstart.toml`` is a complete one)::

    name = "eta_scan"
    description = "Convergence time against learning rate"

    [model]                 # defaults for every grid point
    K = 2
    M = "K"                 # M follows K (realisable teacher)
    activation = "erf"
    second_order = true

    [grid]                  # axes of the sweep, in this order
    eta = {start = 0.1, stop = 3.0, num = 8, spacing = "log"}
    K = [2, 3]

    [initial]
    X = 1e-3                # distance from the symmetric subspace

    [integration]
    eta_alpha_max = 400.0   # or alpha_max; time in units of eta * alpha
    stop_eg = 1e-4

    [measures.convergence_time]
    threshold = 1e-3
    [measures.final_eg]

A recipe study instead reads ``name``, ``recipe = "..."`` and an optional
``[parameters]`` table, handed to :func:`phasekit.study.recipes.run_recipe`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = ['Study', 'StudyError', 'as_study', 'load_study', 'max_points', 'parse_study']


class StudyError(ValueError):
    """A study file is malformed; the message is one line naming the key."""


# Grid axes: name -> description (the allowed keys of [grid]).
GRID_AXES: dict[str, str] = {
    "eta": "learning rate eta (> 0)",
    "K": "student hidden units (integer >= 1)",
    "M": "teacher hidden units (integer >= 1)",
    "activation": "activation name",
    "X": "initial distance from the symmetric subspace (> 0)",
    "noise": "output-noise standard deviation (>= 0)",
    "second_order": "keep the eta^2 term (true/false)",
}


_MODEL_KEYS = ("K", "M", "activation", "teacher_activation", "eta", "second_order", "noise")


_MODEL_DEFAULTS: dict[str, Any] = {
    "K": 2, "M": 2, "activation": "erf", "teacher_activation": None,
    "eta": 0.1, "second_order": True, "noise": 0.0,
}


_INITIAL_DEFAULTS: dict[str, Any] = {"X": 1e-3, "Q0": None, "kind": "diagonal", "seed": 0}


_INITIAL_KINDS = ("diagonal", "uniform", "plateau")


_INTEGRATION_DEFAULTS: dict[str, Any] = {
    "alpha_max": None, "eta_alpha_max": None, "n_points": 401, "rtol": 1e-8, "atol": 1e-11,
    "method": "DOP853", "stop_eg": None, "max_norm": 1e6,
}


_METHODS = ("DOP853", "RK45", "RK23", "Radau", "BDF", "LSODA")


_RUN_DEFAULTS: dict[str, Any] = {"batch_size": None}


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


_REPORT_KEYS = ("trajectories", "title")


def _fmt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Checker:
    """Type and range checks producing one-line errors that name the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, what: str) -> StudyError:
        return StudyError(f"{self.source}: key '{key}': {what}")

    def table(self, key: str, value: Any) -> dict:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a table, got {type(value).__name__} {_fmt(value)}")
        return dict(value)

    def known(self, key: str, table: Mapping, allowed: tuple | list | Mapping) -> None:
        for k in table:
            if k not in allowed:
                where = f"{key}.{k}" if key else k
                raise StudyError(f"{self.source}: unknown key '{where}' (allowed: {', '.join(allowed)})")

    def string(self, key: str, value: Any, pattern: str | None = None) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {type(value).__name__} {_fmt(value)}")
        if pattern and not re.fullmatch(pattern, value):
            raise self.fail(key, f"must match {pattern}, got {_fmt(value)}")
        return value

    def boolean(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {type(value).__name__} {_fmt(value)}")
        return value

    def integer(self, key: str, value: Any, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be an integer, got {type(value).__name__} {_fmt(value)}")
        if minimum is not None and value < minimum:
            raise self.fail(key, f"must be >= {minimum}, got {value}")
        return value

    def number(self, key: str, value: Any, *, positive: bool = False, nonneg: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"must be a number, got {type(value).__name__} {_fmt(value)}")
        value = float(value)
        if not math.isfinite(value):
            raise self.fail(key, f"must be finite, got {value}")
        if positive and value <= 0:
            raise self.fail(key, f"must be > 0, got {value:g}")
        if nonneg and value < 0:
            raise self.fail(key, f"must be >= 0, got {value:g}")
        return value

    def activation(self, key: str, value: Any) -> str:
        from ..core.activations import available_activations

        name = self.string(key, value)
        names = available_activations()
        if name not in names:
            raise self.fail(key, f"unknown activation {name!r} (available: {', '.join(names)})")
        return name

    def scalar(self, axis: str, key: str, value: Any) -> Any:
        """One value of a model parameter or grid axis."""
        if axis == "eta":
            return self.number(key, value, positive=True)
        if axis in ("K", "M"):
            return self.integer(key, value, minimum=1)
        if axis in ("activation", "teacher_activation"):
            return self.activation(key, value)
        if axis == "X":
            return self.number(key, value, positive=True)
        if axis == "noise":
            return self.number(key, value, nonneg=True)
        if axis == "second_order":
            return self.boolean(key, value)
        raise AssertionError(axis)  # pragma: no cover - callers pass known axes


def _axis_values(chk: _Checker, axis: str, value: Any) -> list:
    key = f"grid.{axis}"
    if isinstance(value, Mapping):
        # A numeric range: {start, stop, num, spacing = "linear" | "log"}.
        if axis not in ("eta", "X", "noise"):
            raise chk.fail(key, "a {start, stop, num} range is only allowed for eta, X and noise")
        chk.known(key, value, ("start", "stop", "num", "spacing"))
        for need in ("start", "stop", "num"):
            if need not in value:
                raise chk.fail(f"{key}.{need}", "is required in a range")
        start = chk.scalar(axis, f"{key}.start", value["start"])
        stop = chk.scalar(axis, f"{key}.stop", value["stop"])
        num = chk.integer(f"{key}.num", value["num"], minimum=1)
        if num > max_points():
            raise chk.fail(f"{key}.num", _too_many(num))
        spacing = chk.string(f"{key}.spacing", value.get("spacing", "linear"))
        if spacing not in ("linear", "log"):
            raise chk.fail(f"{key}.spacing", f"must be 'linear' or 'log', got {spacing!r}")
        if spacing == "log":
            if start <= 0:
                raise chk.fail(f"{key}.start", f"must be > 0 for log spacing, got {start:g}")
            vals = np.geomspace(start, stop, num)
        else:
            vals = np.linspace(start, stop, num)
        # Round so that the values print (and hash) reproducibly.
        values = [float(f"{v:.12g}") for v in vals]
    else:
        if not isinstance(value, list):
            raise chk.fail(key, f"must be a list of values or a range table, got {type(value).__name__} "
                                f"{_fmt(value)}")
        if not value:
            raise chk.fail(key, "must not be empty")
        if len(value) > max_points():
            raise chk.fail(key, _too_many(len(value)))
        values = [chk.scalar(axis, f"{key}[{j}]", v) for j, v in enumerate(value)]
    if len(set(values)) != len(values):
        raise chk.fail(key, f"values must be distinct, got {_fmt(values)}")
    return values


@dataclass(frozen=True)
class Study:
    """A validated study.

    Attributes
    ----------
    name : str
        Identifier; outputs go to ``outputs/<name>/``.
    description : str
    model : dict
        Defaults of ``K, M, activation, teacher_activation, eta, second_order,
        noise`` (``M`` may be the string ``"K"``: equal to K at each point).
    grid : dict
        Axis name -> list of values, in sweep order (the dataset's dims).
    initial : dict
        ``X`` (default distance from the symmetric subspace), ``Q0``, ``kind``, ``seed``.
    measures : dict
        Measure name -> settings.
    integration : dict
        Solver settings; ``alpha_max`` or ``eta_alpha_max``.
    report : dict
        Report options (``trajectories``: list of tables selecting grid points).
    run : dict
        Execution options that do not change results (``batch_size``).
    recipe : str or None
        Name of a recipe; then only ``parameters`` matters.
    parameters : dict
        Keyword arguments of the recipe.
    source : str
        Where the study came from (file name), used in messages.
    """

    name: str
    description: str = ""
    model: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    initial: dict = field(default_factory=dict)
    measures: dict = field(default_factory=dict)
    integration: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    run: dict = field(default_factory=dict)
    recipe: str | None = None
    parameters: dict = field(default_factory=dict)
    source: str = "<study>"

    # --- the grid ------------------------------------------------------------

    @property
    def dims(self) -> tuple[str, ...]:
        """Grid axes in sweep order."""
        return tuple(self.grid)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.grid.values())

    @property
    def n_points(self) -> int:
        return int(np.prod(self.shape, dtype=int)) if self.grid else 1

    def point(self, index: int) -> dict[str, Any]:
        """Grid values of flat point ``index`` (C order over :attr:`dims`)."""
        if not 0 <= index < self.n_points:
            raise ValueError(f"index: must be in [0, {self.n_points}), got {index}")
        if not self.grid:
            return {}
        idx = np.unravel_index(index, self.shape)
        return {ax: self.grid[ax][int(j)] for ax, j in zip(self.dims, idx)}

    def point_parameters(self, index: int) -> dict[str, Any]:
        """Model parameters and ``X`` at point ``index`` (defaults overridden by the grid)."""
        params = {k: self.model[k] for k in _MODEL_KEYS}
        params["X"] = self.initial["X"]
        params.update(self.point(index))
        if params["M"] == "K":
            params["M"] = params["K"]
        return params

    def points(self) -> list[dict[str, Any]]:
        return [self.point(j) for j in range(self.n_points)]

    def alpha_max(self, eta: float) -> float:
        """Integration horizon in alpha at learning rate ``eta``."""
        if self.integration.get("alpha_max") is not None:
            return float(self.integration["alpha_max"])
        return float(self.integration["eta_alpha_max"]) / float(eta)

    # --- serialisation -------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (inverse: :func:`parse_study`)."""
        if self.recipe is not None:
            d: dict[str, Any] = {"name": self.name, "recipe": self.recipe, "parameters": self.parameters}
            if self.description:
                d["description"] = self.description
            return d
        return {
            "name": self.name, "description": self.description,
            "model": {k: v for k, v in self.model.items() if v is not None},
            "grid": self.grid,
            "initial": {k: v for k, v in self.initial.items() if v is not None},
            "measures": self.measures,
            "integration": {k: v for k, v in self.integration.items() if v is not None},
            "report": self.report, "run": {k: v for k, v in self.run.items() if v is not None},
        }

    def to_json(self) -> str:
        """JSON of :meth:`to_dict`; key order kept (the grid's order defines the dims)."""
        return json.dumps(self.to_dict())

    def computation(self) -> dict[str, Any]:
        """The part of the study that determines the results (what checkpoints depend on)."""
        d = self.to_dict()
        for k in ("description", "report", "run", "name"):
            d.pop(k, None)
        d["dims"] = list(self.dims)  # flat point indices depend on the axis order
        return d

    def hash(self) -> str:
        """Short SHA-256 of :meth:`computation` (grid order included)."""
        text = json.dumps(self.computation(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_study(data: Mapping[str, Any], source: str = "<study>") -> Study:
    """Validate a study given as a mapping (e.g. the result of ``tomllib.load``).

    Raises
    ------
    StudyError
        On the first unknown key, wrong type or out-of-range value, with a
        one-line message ``"<source>: key '<key>': <problem>"``.
    """
    chk = _Checker(source)
    data = chk.table("", data) if not isinstance(data, Mapping) else dict(data)
    if "name" not in data:
        raise chk.fail("name", "is required")
    name = chk.string("name", data["name"], r"[A-Za-z0-9][A-Za-z0-9_.-]*")
    description = chk.string("description", data.get("description", ""))

    if "recipe" in data:
        chk.known("", data, ("name", "description", "recipe", "parameters"))
        recipe = chk.string("recipe", data["recipe"], r"[A-Za-z0-9_]+")
        parameters = chk.table("parameters", data.get("parameters", {}))
        from .recipes import check_parameters

        check_parameters(recipe, parameters, source)  # names, types and ranges, before any work
        return Study(name=name, description=description, recipe=recipe, parameters=parameters, source=source)
    if "parameters" in data:
        raise chk.fail("parameters", "is only allowed together with 'recipe'")

    chk.known("", data, ("name", "description", "model", "grid", "initial", "measures", "integration",
                         "report", "run", "recipe"))

    # [model]
    model_in = chk.table("model", data.get("model", {}))
    chk.known("model", model_in, _MODEL_KEYS)
    model = dict(_MODEL_DEFAULTS)
    for k, v in model_in.items():
        if k == "M" and v == "K":
            model[k] = "K"
        else:
            model[k] = chk.scalar(k, f"model.{k}", v)

    # [grid]
    grid_in = chk.table("grid", data.get("grid", {}))
    chk.known("grid", grid_in, GRID_AXES)
    grid = {}
    for axis, v in grid_in.items():
        grid[axis] = _axis_values(chk, axis, v)
        n = math.prod(len(vals) for vals in grid.values())
        if n > max_points():  # before the next axis multiplies it further
            raise chk.fail("grid", _too_many(n))
    if model["M"] == "K" and "M" in grid:
        raise chk.fail("model.M", "is \"K\" (tied to K) but M is also a grid axis")

    # [initial]
    init_in = chk.table("initial", data.get("initial", {}))
    chk.known("initial", init_in, _INITIAL_DEFAULTS)
    initial = dict(_INITIAL_DEFAULTS)
    if "X" in init_in:
        initial["X"] = chk.number("initial.X", init_in["X"], positive=True)
    if "Q0" in init_in:
        q0 = init_in["Q0"]
        if isinstance(q0, list):
            if not q0:
                raise chk.fail("initial.Q0", "must not be empty")
            initial["Q0"] = [chk.number(f"initial.Q0[{j}]", v, positive=True) for j, v in enumerate(q0)]
        else:
            initial["Q0"] = chk.number("initial.Q0", q0, positive=True)
    if "kind" in init_in:
        kind = chk.string("initial.kind", init_in["kind"])
        if kind not in _INITIAL_KINDS:
            raise chk.fail("initial.kind", f"must be one of {', '.join(_INITIAL_KINDS)}, got {kind!r}")
        initial["kind"] = kind
    if "seed" in init_in:
        initial["seed"] = chk.integer("initial.seed", init_in["seed"], minimum=0)

    # [measures.<name>]  (the registry lives with the computations)
    from .measures import MEASURES

    meas_in = chk.table("measures", data.get("measures", {}))
    if not meas_in:
        raise chk.fail("measures", f"at least one measure is required (available: {', '.join(MEASURES)})")
    measures: dict[str, dict] = {}
    for mname, settings in meas_in.items():
        if mname not in MEASURES:
            raise StudyError(f"{source}: unknown key 'measures.{mname}' (allowed: {', '.join(MEASURES)})")
        key = f"measures.{mname}"
        if settings is True:  # allow `convergence_time = true`
            settings = {}
        settings = chk.table(key, settings)
        schema = MEASURES[mname].settings
        chk.known(key, settings, schema)
        measures[mname] = {sk: chk.number(f"{key}.{sk}", sv, positive=True) for sk, sv in settings.items()}
    if "eta_c" in measures:
        first_order = (False in grid["second_order"]) if "second_order" in grid else not model["second_order"]
        if first_order:
            where = "grid.second_order" if "second_order" in grid else "model.second_order"
            raise chk.fail("measures.eta_c",
                           f"eta_c is the learning rate at which the eta^2 term of SGD destabilises the perfect "
                           f"solution, so it needs second_order = true ({where} is false: the first-order flow "
                           f"is stable at every eta)")

    # [integration]
    integ_in = chk.table("integration", data.get("integration", {}))
    chk.known("integration", integ_in, _INTEGRATION_DEFAULTS)
    integration = dict(_INTEGRATION_DEFAULTS)
    for k, v in integ_in.items():
        ik = f"integration.{k}"
        if k == "n_points":
            integration[k] = chk.integer(ik, v, minimum=2)
        elif k == "method":
            m = chk.string(ik, v)
            if m not in _METHODS:
                raise chk.fail(ik, f"must be one of {', '.join(_METHODS)}, got {m!r}")
            integration[k] = m
        else:
            integration[k] = chk.number(ik, v, positive=True)
    if integration["alpha_max"] is not None and integration["eta_alpha_max"] is not None:
        raise chk.fail("integration.alpha_max", "give either alpha_max or eta_alpha_max, not both")
    if integration["alpha_max"] is None and integration["eta_alpha_max"] is None:
        integration["eta_alpha_max"] = 500.0

    # [report]
    report_in = chk.table("report", data.get("report", {}))
    chk.known("report", report_in, _REPORT_KEYS)
    report: dict[str, Any] = {}
    if "title" in report_in:
        report["title"] = chk.string("report.title", report_in["title"])
    if "trajectories" in report_in:
        trajs = report_in["trajectories"]
        if not isinstance(trajs, list):
            raise chk.fail("report.trajectories", f"must be a list of tables, got {type(trajs).__name__}")
        sel_list = []
        for j, sel in enumerate(trajs):
            key = f"report.trajectories[{j}]"
            sel = chk.table(key, sel)
            chk.known(key, sel, tuple(grid))
            clean = {}
            for ax, v in sel.items():
                val = chk.scalar(ax, f"{key}.{ax}", v)
                if val not in grid[ax]:
                    raise chk.fail(f"{key}.{ax}", f"{val!r} is not a value of grid axis {ax}")
                clean[ax] = val
            sel_list.append(clean)
        report["trajectories"] = sel_list

    # [run]
    run_in = chk.table("run", data.get("run", {}))
    chk.known("run", run_in, _RUN_DEFAULTS)
    run = dict(_RUN_DEFAULTS)
    if "batch_size" in run_in:
        run["batch_size"] = chk.integer("run.batch_size", run_in["batch_size"], minimum=1)

    study = Study(name=name, description=description, model=model, grid=grid, initial=initial,
                  measures=measures, integration=integration, report=report, run=run, source=source)
    _check_models(chk, study)
    return study


def _check_models(chk: _Checker, study: Study) -> None:
    """Build the model of every distinct parameter combination once, so that
    combinations the model rejects fail here and not in the middle of a sweep."""
    from ..committee.model import Committee

    axes = [ax for ax in ("K", "M", "activation", "noise") if ax in study.grid]
    combos = itertools.product(*(study.grid[ax] for ax in axes)) if axes else [()]
    for combo in combos:
        params = {k: study.model[k] for k in _MODEL_KEYS}
        params.update(dict(zip(axes, combo)))
        if params["M"] == "K":
            params["M"] = params["K"]
        q0 = study.initial["Q0"]
        if isinstance(q0, list) and len(q0) != params["K"]:
            raise chk.fail("initial.Q0", f"has {len(q0)} entries but K = {params['K']} at some grid point")
        try:
            Committee(**params)
        except ValueError as exc:
            raise StudyError(f"{chk.source}: {exc}") from None


def load_study(path: str | Path) -> Study:
    """Read and validate a TOML study file.

    Raises
    ------
    StudyError
        If the file is not valid TOML or fails validation (one line naming the key).
    """
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise StudyError(f"{path}: cannot read study file ({exc.strerror})") from None
    try:
        data = tomllib.loads(text.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise StudyError(f"{path}: not valid TOML: {str(exc).splitlines()[0]}") from None
    return parse_study(data, source=str(path))


def as_study(study: "Study | str | Path | Mapping[str, Any]") -> Study:
    """Accept a :class:`Study`, a path to a TOML file or a mapping."""
    if isinstance(study, Study):
        return study
    if isinstance(study, (str, Path)):
        return load_study(study)
    if isinstance(study, Mapping):
        return parse_study(study)
    raise TypeError(f"study: expected a Study, a path or a mapping, got {type(study).__name__}")
