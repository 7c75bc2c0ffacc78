"""Study files: TOML descriptions of a grid of computations, read and checked before any work.

A study names its ``system``, the system's parameters (defaults in their
tables, any of them swept in ``[grid]``), the measures computed at each grid
point, the analyses run on the assembled grid, the solver options and the
report.  Everything is validated when the file is read: an unknown key, a
value of the wrong type or out of range is a one-line :class:`StudyError`
naming the file and the key.  Reading a study never computes anything.

Example (``studies/quickstart.toml`` is a complete one)::

    name = "eta_scan"
    description = "Convergence time against learning rate"
    system = "committee"        # the default; also propagation, deep_linear, lazy_training

    [model]                     # defaults for every grid point
    M = "K"                     # M follows K (realisable teacher)
    activation = "erf"

    [grid]                      # the axes, in this order (the dataset's dims)
    eta = {start = 0.1, stop = 3.0, num = 8, spacing = "log"}
    K = [2, 3]

    [initial]
    X = 1e-3                    # distance from the symmetric subspace

    [integration]
    eta_alpha_max = 400.0       # or alpha_max
    stop_eg = 1e-4

    [solver]                    # phasekit.core.options.SolverOptions
    rtol = 1e-8

    [measures.convergence_time]
    threshold = 1e-3

    [analyses.optimum]          # stored in the dataset
    var = "convergence_time"
    over = "eta"

    [[report.figures]]          # figures of phasekit.plotting, by kind
    kind = "heatmap"
    var = "convergence_time"
    x = "eta"
    y = "K"

    [quick]                     # the cheap variant (phasekit run --quick): merged key by key
    grid.K = [2]

Grid axes: a list of values; a range ``{start, stop, num, spacing}`` for a
number (``spacing`` ``"linear"`` or ``"log"``; ``start``/``stop`` may be a
table keyed by the values of an earlier axis, e.g. ``stop = {relu = 3.0,
tanh = 4.0}``: the axis then has its own values for each of them); or a list of
tables, each setting several parameters at once (a *case* axis: each table
has a ``name``, or the axis is named after a parameter that every table sets).
A grid axis may also name a setting of a measure.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..core.options import NewtonOptions, ParallelOptions, SolverOptions, options_from_table
from .axes import Axis, StudyError, _Checker, check_grid, max_points
from .systems import SYSTEMS, System, get_system

__all__ = ["Axis", "Study", "StudyError", "as_study", "load_study", "max_points", "parse_study", "study_files"]


_TOP_KEYS = ("name", "description", "system", "cost", "grid", "measures", "analyses", "solver", "newton", "run",
             "report", "quick")
_OPTION_CLASSES = {"solver": SolverOptions, "newton": NewtonOptions}
_RUN_KEYS = ("n_workers", "batch_size", "worker_timeout", "batch_points")
_REPORT_KEYS = ("title", "notes", "trajectories", "figures")
_MOVED = {"rtol": "solver", "atol": "solver", "method": "solver", "max_norm": "solver"}


@dataclass(frozen=True)
class Study:
    """A validated study (see the module docstring).

    Attributes
    ----------
    name, description, cost : str
    system : str
        ``committee``, ``propagation``, ``deep_linear`` or ``lazy_training``.
    params : dict
        The system's parameters outside the grid (defaults overridden by the study's tables).
    axes : tuple of Axis
        The grid, in order.
    measures : dict
        Measure name -> the settings given in the study.
    analyses : dict
        Analysis name -> ``{"kind": ..., settings}``.
    solver, newton : SolverOptions, NewtonOptions
    run : dict
        Execution settings that do not change results (``n_workers``, ``batch_size``, ``worker_timeout``;
        ``batch_points``, committee trajectories integrated as one batch: to the solver tolerance).
    report : dict
        ``title``, ``notes``, ``trajectories`` (grid points whose trajectories
        are stored, as tables of axis values) and ``figures`` (tables with a ``kind``).
    quick : bool
        This is the study's cheap variant.
    has_quick : bool
        The study declares a cheap variant.
    source : str
        Where the study came from, used in messages.
    """

    name: str
    system: str = "committee"
    description: str = ""
    cost: str = ""
    params: dict = field(default_factory=dict)
    axes: tuple = ()
    measures: dict = field(default_factory=dict)
    analyses: dict = field(default_factory=dict)
    solver: SolverOptions = field(default_factory=SolverOptions)
    newton: NewtonOptions = field(default_factory=NewtonOptions)
    run: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    quick: bool = False
    has_quick: bool = False
    source: str = "<study>"
    data: dict = field(default_factory=dict, repr=False, compare=False)

    # --- the grid ------------------------------------------------------------

    @property
    def dims(self) -> tuple[str, ...]:
        """Dataset dims of the grid, in order."""
        return tuple(a.dim for a in self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(a.size for a in self.axes)

    @property
    def n_points(self) -> int:
        return int(np.prod(self.shape, dtype=int)) if self.axes else 1

    @property
    def grid(self) -> dict[str, list]:
        """Axis name -> coordinate values (dependent axes: positions)."""
        return {a.name: list(a.coord) if a.depends is None else list(range(a.size)) for a in self.axes}

    def axis(self, name: str) -> Axis:
        for a in self.axes:
            if name in (a.name, a.dim):
                return a
        raise KeyError(name)

    def point(self, index: int) -> dict[str, Any]:
        """What the grid sets at flat point ``index`` (C order over :attr:`dims`)."""
        if not 0 <= index < self.n_points:
            raise ValueError(f"index: must be in [0, {self.n_points}), got {index}")
        out: dict[str, Any] = {}
        if not self.axes:
            return out
        for axis, j in zip(self.axes, np.unravel_index(index, self.shape)):
            out.update(axis.values_at(int(j), out))
        return out

    def point_parameters(self, index: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """System parameters at point ``index`` (``M = "K"`` resolved), and the measure settings the grid sets."""
        system = get_system(self.system)
        params = dict(self.params)
        settings = {}
        for k, v in self.point(index).items():
            (params if k in system.parameters else settings)[k] = v
        if params.get("M") == "K":
            params["M"] = params["K"]
        return params, settings

    def label(self, index: int) -> str:
        """``"activation = relu, K = 2"``: the grid values of point ``index``."""
        parts = []
        if not self.axes:
            return self.name
        for axis, j in zip(self.axes, np.unravel_index(index, self.shape)):
            j = int(j)
            if axis.depends is not None:
                value = axis.table[str(self.point(index)[axis.depends])][j]
            else:
                value = axis.coord[j]
            parts.append(f"{axis.name} = {value:g}" if isinstance(value, float) else f"{axis.name} = {value}")
        return ", ".join(parts)

    def index_of(self, selection: Mapping[str, Any]) -> int:
        """Flat index of the point with the given axis values (axes not named: their first value)."""
        idx = []
        for axis in self.axes:
            if axis.name not in selection:
                idx.append(0)
                continue
            value = selection[axis.name]
            if axis.depends is not None:
                idx.append(int(value))
            else:
                idx.append(list(axis.coord).index(value))
        return int(np.ravel_multi_index(idx, self.shape)) if idx else 0

    def trajectory_points(self) -> list[int]:
        """Flat indices of the points whose trajectories the runner stores (``[report] trajectories``)."""
        return [self.index_of(sel) for sel in self.report.get("trajectories", [])]

    # --- serialisation -------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (inverse: :func:`parse_study`); the cheap variant already merged."""
        return copy.deepcopy(self.data)

    def to_json(self) -> str:
        """JSON of :meth:`to_dict`; key order kept (the grid's order defines the dims)."""
        return json.dumps(self.to_dict())

    def computation(self) -> dict[str, Any]:
        """What determines the computed points, apart from each point's grid values.

        A checkpointed point is identified by its grid values (the ``key`` of
        its record) together with this: the system, the parameters the grid
        does not set, the measures and their settings, the solver and Newton
        options, and which parameters the grid axes set -- but not the axes'
        values, their order or the order of the axes, so that a grid extended,
        cut or reordered reuses every point it still holds.  Descriptions,
        figures, analyses, the stored trajectories (computed for the points
        that lack one) and execution settings are left out too: changing them
        never invalidates a finished point.
        """
        set_by_grid = {a.name: [a.name] if a.depends is not None else sorted({k for x in a.assigns for k in x})
                       for a in self.axes}
        gridded = {k for names in set_by_grid.values() for k in names}
        return {
            "system": self.system, "params": {k: v for k, v in self.params.items() if k not in gridded
                                              and not (k in _UNSET_UNHASHED and v is None)},
            "grid": sorted([a.name, set_by_grid[a.name], a.depends] for a in self.axes),
            "measures": self.measures, "solver": self.solver.to_dict(), "newton": self.newton.to_dict(),
        }

    def point_key(self, index: int) -> str:
        """The grid values of point ``index`` as JSON (sorted keys): the point's identity in checkpoints."""
        return json.dumps(self.point(index), sort_keys=True, default=str)

    def hash(self) -> str:
        """Short SHA-256 of :meth:`computation` (the grid's axes, not their values)."""
        text = json.dumps(self.computation(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- parsing -----------------------------------------------------------------


# Parameters added after studies were checkpointed: left out of the hash while unset, so that
# those checkpoints stay valid.
_UNSET_UNHASHED = ("subspace",)


def _merge(base: dict, over: Mapping) -> dict:
    """``base`` with ``over`` merged in: tables key by key, everything else replaced."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(dict(out[k]), v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _check_measures(chk: _Checker, system: System, data: Mapping) -> dict[str, dict]:
    from .registry import MEASURES

    ours = [m for m, spec in MEASURES.items() if spec.system == system.name]
    meas_in = chk.table("measures", data.get("measures", {}))
    if not meas_in:
        raise chk.fail("measures", f"at least one measure is required (available: {', '.join(ours)})")
    out: dict[str, dict] = {}
    for mname, settings in meas_in.items():
        if mname not in MEASURES:
            raise StudyError(f"{chk.source}: unknown key 'measures.{mname}' (allowed: {', '.join(ours)})")
        if MEASURES[mname].system != system.name:
            raise StudyError(f"{chk.source}: key 'measures.{mname}': a measure of the {MEASURES[mname].system} "
                             f"system, not of {system.name} (measures of {system.name}: {', '.join(ours)})")
        key = f"measures.{mname}"
        if settings is True:  # allow `convergence_time = true`
            settings = {}
        settings = chk.table(key, settings)
        spec = MEASURES[mname].settings
        chk.known(key, settings, tuple(spec))
        out[mname] = {k: chk.value(spec[k], f"{key}.{k}", v) for k, v in settings.items()}
    # every output name once (a shared output, such as alpha_end, may come from several measures)
    seen: dict[str, Any] = {}
    for mname in out:
        for var, spec in MEASURES[mname].outputs.items():
            if var in seen and seen[var][1] is not spec:
                raise chk.fail(f"measures.{mname}", f"its output {var!r} is also an output of measure "
                                                    f"{seen[var][0]!r}")
            seen.setdefault(var, (mname, spec))
    return out


def _check_params(chk: _Checker, system: System, data: Mapping) -> dict[str, Any]:
    params = system.defaults()
    for table in system.tables:
        given = chk.table(table, data.get(table, {}))
        allowed = system.in_table(table)
        hint = {k: f"{k} is set in [{t}] now" for k, t in _MOVED.items()} if table == "integration" else None
        chk.known(table, given, tuple(allowed), hint)
        for k, v in given.items():
            params[k] = chk.value(allowed[k], f"{table}.{k}", v)
    return params


def _check_report(chk: _Checker, data: Mapping, axes: list[Axis], system: System) -> dict[str, Any]:
    rep_in = chk.table("report", data.get("report", {}))
    chk.known("report", rep_in, _REPORT_KEYS)
    report: dict[str, Any] = {}
    for k in ("title", "notes"):
        if k in rep_in:
            report[k] = chk.string(f"report.{k}", rep_in[k])
    if "trajectories" in rep_in:
        if system.name != "committee":
            raise chk.fail("report.trajectories", "stored trajectories are a committee study's; use a measure")
        trajs = rep_in["trajectories"]
        if not isinstance(trajs, list):
            raise chk.fail("report.trajectories", f"must be a list of tables, got {type(trajs).__name__}")
        by_name = {a.name: a for a in axes}
        sels = []
        for j, sel in enumerate(trajs):
            key = f"report.trajectories[{j}]"
            sel = chk.table(key, sel)
            chk.known(key, sel, tuple(by_name))
            clean = {}
            for ax, v in sel.items():
                axis = by_name[ax]
                ok = (isinstance(v, int) and 0 <= v < axis.size) if axis.depends is not None else v in axis.coord
                if not ok:
                    raise chk.fail(f"{key}.{ax}", f"{v!r} is not a value of grid axis {ax}")
                clean[ax] = v
            sels.append(clean)
        report["trajectories"] = sels
    if "figures" in rep_in:
        figs = rep_in["figures"]
        if not isinstance(figs, list):
            raise chk.fail("report.figures", f"must be a list of tables ([[report.figures]]), got "
                                             f"{type(figs).__name__}")
        clean_figs = []
        for j, fig in enumerate(figs):
            key = f"report.figures[{j}]"
            fig = chk.table(key, fig)
            if "kind" not in fig:
                raise chk.fail(f"{key}.kind", "is required (a figure of phasekit.plotting.FIGURES)")
            chk.string(f"{key}.kind", fig["kind"], r"[a-z_]+")
            clean_figs.append(fig)
        report["figures"] = clean_figs
    return report


def _check_analyses(chk: _Checker, data: Mapping, measures: Mapping, axes: list[Axis],
                    system: System) -> dict[str, dict]:
    from .analyses import ANALYSES
    from .registry import MEASURES

    an_in = chk.table("analyses", data.get("analyses", {}))
    variables = {v for m in measures for v in MEASURES[m].outputs} | set(system.derived)
    dims = {a.dim for a in axes} | {a.name for a in axes} | {k for a in axes for x in a.assigns for k in x}
    out: dict[str, dict] = {}
    produced: dict[str, str] = {}
    for name, table in an_in.items():
        key = f"analyses.{name}"
        table = chk.table(key, table)
        kind = chk.string(f"{key}.kind", table.pop("kind", name))
        if kind not in ANALYSES:
            raise chk.fail(f"{key}.kind" if kind != name else key,
                           f"unknown analysis {kind!r} (available: {', '.join(ANALYSES)})")
        spec = ANALYSES[kind]
        chk.known(key, table, tuple(spec.settings))
        settings = {k: chk.value(spec.settings[k], f"{key}.{k}", v) for k, v in table.items()}
        for k, p in spec.settings.items():
            if k not in settings and p.default is None and k in spec.required:
                raise chk.fail(f"{key}.{k}", "is required")
        problem = spec.check(settings, variables, dims)
        if problem:
            k, _, what = problem.partition(": ")
            raise chk.fail(f"{key}.{k}", what)
        for var in spec.output_names(settings):
            if var in variables or var in produced:
                raise chk.fail(key, f"its output {var!r} is already a variable of the study")
            produced[var] = name
        out[name] = {"kind": kind, **settings}
    return out


def parse_study(data: Mapping[str, Any], source: str = "<study>", *, quick: bool = False) -> Study:
    """Validate a study given as a mapping (e.g. the result of ``tomllib.load``).

    Parameters
    ----------
    data : mapping
    source : str
        Named in the messages (the file).
    quick : bool
        The cheap variant: the study's ``[quick]`` table merged in (refused
        when the study has none).

    Raises
    ------
    StudyError
        On the first unknown key, wrong type or out-of-range value, with a
        one-line message ``"<source>: key '<key>': <problem>"``.
    """
    chk = _Checker(source)
    data = chk.table("", data)
    if "recipe" in data:
        raise chk.fail("recipe", "recipes are studies now: give the grid, measures and figures of the study "
                                 "(see the study files under studies/)")
    quick_in = data.pop("quick", None)
    if quick_in is not None:
        quick_in = chk.table("quick", quick_in)
        if "quick" in quick_in or "name" in quick_in:
            raise chk.fail("quick.name" if "name" in quick_in else "quick.quick", "cannot be changed by [quick]")
    if quick:
        if quick_in is None:
            raise StudyError(f"{source}: study '{data.get('name', '?')}' has no cheap variant (no [quick] table); "
                             f"run it without --quick")
        data = _merge(data, quick_in)
    if "name" not in data:
        raise chk.fail("name", "is required")
    name = chk.string("name", data["name"], r"[A-Za-z0-9][A-Za-z0-9_.-]*")
    description = chk.string("description", data.get("description", ""))
    cost = chk.string("cost", data.get("cost", ""))
    try:
        system = get_system(data.get("system", "committee"))
    except ValueError as exc:
        raise chk.fail("system", str(exc)) from None
    chk.known("", data, _TOP_KEYS + system.tables)
    for opt in _OPTION_CLASSES:
        if opt in data and opt not in system.options:
            raise chk.fail(opt, f"the {system.name} system takes no [{opt}] options")

    params = _check_params(chk, system, data)
    measures = _check_measures(chk, system, data)
    axes = check_grid(chk, system, data, measures)
    if params.get("M") == "K" and any("M" in a for ax in axes for a in ax.assigns):
        raise chk.fail("model.M", "is \"K\" (tied to K) but M is also set by the grid")
    options = {}
    for opt, cls in _OPTION_CLASSES.items():
        try:
            options[opt] = options_from_table(cls, data.get(opt), opt)
        except ValueError as exc:
            raise StudyError(f"{source}: {exc}") from None
    run_in = chk.table("run", data.get("run", {}))
    chk.known("run", run_in, _RUN_KEYS)
    try:
        options_from_table(ParallelOptions, run_in, "run")  # the same checks as on the command line
    except ValueError as exc:
        raise StudyError(f"{source}: {exc}") from None
    report = _check_report(chk, data, axes, system)
    analyses = _check_analyses(chk, data, measures, axes, system)

    clean = {"name": name, "system": system.name}
    for k in ("description", "cost"):
        if data.get(k):
            clean[k] = data[k]
    for table in system.tables:
        if data.get(table):
            clean[table] = dict(data[table])
    for k in ("grid", "measures", "analyses", "solver", "newton", "run", "report"):
        if data.get(k):
            clean[k] = copy.deepcopy(data[k])
    study = Study(name=name, system=system.name, description=description, cost=cost, params=params,
                  axes=tuple(axes), measures=measures, analyses=analyses, solver=options["solver"],
                  newton=options["newton"], run=run_in, report=report, quick=quick,
                  has_quick=quick_in is not None, source=source, data=clean)
    _check_points(chk, study, system)
    for mname in measures:
        from .registry import MEASURES

        check = MEASURES[mname].check
        problem = check(study) if check is not None else None
        if problem:
            raise chk.fail(f"measures.{mname}", problem)
    return study


def _check_points(chk: _Checker, study: Study, system: System) -> None:
    """Every distinct combination of the parameters that define a model, checked before any work."""
    from .registry import check_parameters

    varying = [a for a in study.axes if a.depends is None]
    combos = itertools.product(*(range(a.size) for a in varying))
    seen = set()
    for combo in combos:
        params = dict(study.params)
        for axis, j in zip(varying, combo):
            params.update({k: v for k, v in axis.assigns[j].items() if k in system.parameters})
        if params.get("M") == "K":
            params["M"] = params["K"]
        key = json.dumps(params, sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        problem = check_parameters(system.name, params)
        if problem:
            raise StudyError(f"{chk.source}: {problem}")
        if len(seen) > 10_000:  # enough to catch what a grid of models can get wrong
            break


def load_study(path: str | Path, *, quick: bool = False) -> Study:
    """Read and validate a TOML study file (``quick``: its cheap variant).

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
    return parse_study(data, source=str(path), quick=quick)


def as_study(study: "Study | str | Path | Mapping[str, Any]") -> Study:
    """Accept a :class:`Study`, a path to a TOML file or a mapping."""
    if isinstance(study, Study):
        return study
    if isinstance(study, (str, Path)):
        return load_study(study)
    if isinstance(study, Mapping):
        return parse_study(study)
    raise TypeError(f"study: expected a Study, a path or a mapping, got {type(study).__name__}")


def study_files(folder: str | Path, *, quick: bool = False) -> list[dict[str, Any]]:
    """The study files in ``folder``: ``path``, ``name``, ``system``, ``description``, ``cost``, ``quick``, ``points``.

    ``quick``: ``points`` counts the cheap variant's grid (the full one's for
    a study without ``[quick]``).  Files that do not read as studies are
    listed with their ``error``.
    """
    out = []
    for path in sorted(Path(folder).glob("*.toml")):
        try:
            st = load_study(path)
            points = load_study(path, quick=True).n_points if quick and st.has_quick else st.n_points
            out.append({"path": path, "name": st.name, "system": st.system, "description": st.description,
                        "cost": st.cost, "quick": st.has_quick, "points": points})
        except StudyError as exc:
            out.append({"path": path, "name": path.stem, "error": str(exc)})
    return out


# The systems a study may name (for messages and documentation).
SYSTEM_NAMES = tuple(SYSTEMS)
