"""The one registry of what a study can compute at a grid point, and the point's context.

A :class:`Measure` is a function ``func(ctx, settings) -> Outcome`` of an
explicit :class:`PointContext` -- the point's parameters, the study's
options and a cache of the computations its measures share (a trajectory, a
fixed point) -- and the measure's settings.  It reports its status in the
:class:`Outcome` it returns (one vocabulary, :data:`phasekit.core.results.STATUS`);
an exception is a failure of the point, recorded with its message, never a
way to signal a result.  Every system registers its measures here
(``committee_measures``, ``propagation_measures``, ``deep_linear_measures``,
``lazy_measures``; :mod:`phasekit.study.registry` loads them all).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from ..core.results import check_status
from .systems import Parameter

# A study (phasekit.study.schema.Study); the schema reads this registry, so it is not imported here.
Study = Any

__all__ = ["MEASURES", "Measure", "Outcome", "Output", "PointContext", "register_measure", "worst_status"]


@dataclass(frozen=True)
class Output:
    """One variable a measure writes at each point.

    Attributes
    ----------
    long_name, units : str
    dims : tuple of str
        Extra dims of the value at one point (e.g. ``("sample", "i", "n")``
        for a trajectory's ``R``); the dataset variable has the grid dims first.
        Lengths may differ between points: shorter values are padded with NaN.
    flags : tuple of str
        For a categorical integer output: the meanings of the codes 0, 1, ...
        (written as CF ``flag_values`` and ``flag_meanings``).
    ignores : tuple of str
        Parameters the value does not depend on (names, or the name of a
        study table such as ``"initial"`` for all of its parameters): a grid
        axis that sets only such parameters is not a dim of the variable
        (``eta_c`` carries no ``eta`` dim), see
        :func:`phasekit.study.assembly.output_dims`.
    """

    long_name: str
    units: str = "1"
    dims: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    ignores: tuple[str, ...] = ()

    def attrs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"long_name": self.long_name, "units": self.units}
        if self.flags:
            out["flag_values"] = list(range(len(self.flags)))
            out["flag_meanings"] = " ".join(f.replace(" ", "_") for f in self.flags)
        return out


@dataclass
class Outcome:
    """What a measure returns: its values, a status and a one-line message.

    ``values`` maps output names to numbers or arrays (shaped by the output's
    ``dims``); outputs left out are NaN.  ``status`` is one of
    :data:`phasekit.core.results.STATUS` (``ok`` when the values are valid).
    """

    values: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    message: str = ""

    def __post_init__(self) -> None:
        check_status(self.status)


@dataclass(frozen=True)
class Measure:
    """A quantity computed at each grid point.

    Attributes
    ----------
    name : str
    system : str
        The system whose points it measures.
    func : callable
        ``func(ctx: PointContext, settings: dict) -> Outcome`` (a plain
        mapping of values is taken as an ``ok`` outcome).
    outputs : dict
        Output name -> :class:`Output`.
    settings : dict
        Setting name -> :class:`~phasekit.study.systems.Parameter` (type,
        range, default); a study gives them in ``[measures.<name>]`` or as grid axes.
    description : str
    coords : callable, optional
        ``coords(study) -> {dim: (values, attrs)}``: coordinates of extra dims
        known before any point is computed (e.g. the order-parameter labels).
    check : callable, optional
        ``check(study) -> problem or None``: a study this measure cannot serve
        (refused when the file is read).
    select : callable, optional
        ``select(study) -> names``: the outputs a study gets when some apply
        only to some studies (a trajectory's ``v`` only where the second layer
        is trained); default: every output.
    """

    name: str
    system: str
    func: Callable[["PointContext", dict], "Outcome | Mapping[str, Any]"]
    outputs: Mapping[str, Output]
    settings: Mapping[str, Parameter] = field(default_factory=dict)
    description: str = ""
    coords: Callable[[Study], dict] | None = None
    check: Callable[[Study], "str | None"] | None = None
    select: Callable[[Study], Any] | None = None

    def outputs_for(self, study: Study) -> dict[str, Output]:
        """The outputs ``study`` gets (see ``select``), in the order of :attr:`outputs`."""
        if self.select is None:
            return dict(self.outputs)
        keep = set(self.select(study))
        return {k: v for k, v in self.outputs.items() if k in keep}


#: Every registered measure by name (:func:`register_measure` adds one).
MEASURES: dict[str, Measure] = {}


def _as_output(spec: Any) -> Output:
    if isinstance(spec, Output):
        return spec
    long_name, units = spec
    return Output(long_name, units)


def _as_setting(name: str, spec: Any) -> Parameter:
    if isinstance(spec, Parameter):
        return spec
    return Parameter(name, "number", None, name, "1", table="measures", low=0.0, low_open=True)


def register_measure(name: str, outputs: Mapping[str, Any], settings: Any = (), description: str = "", *,
                     system: str = "committee", coords: Callable | None = None,
                     check: Callable | None = None, select: Callable | None = None,
                     ignores: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
    """Decorator adding ``func(ctx, settings) -> Outcome`` to :data:`MEASURES`.

    ``outputs`` maps each output to an :class:`Output` or ``(long_name,
    units)``; ``settings`` maps names to :class:`~phasekit.study.systems.Parameter`
    (a sequence of names: positive numbers without default); ``ignores``:
    the parameters no output depends on (``Output.ignores`` of every output
    that gives none of its own).
    """
    if not isinstance(settings, Mapping):
        settings = {s: None for s in settings}

    def output(spec: Any) -> Output:
        out = _as_output(spec)
        return replace(out, ignores=tuple(ignores)) if ignores and not out.ignores else out

    def register(func: Callable) -> Callable:
        doc = (func.__doc__ or "").strip().splitlines()
        MEASURES[name] = Measure(name, system, func, {k: output(v) for k, v in outputs.items()},
                                 {k: _as_setting(k, v) for k, v in settings.items()},
                                 description or (doc[0] if doc else ""), coords, check, select)
        return func

    return register


# Which status of a point wins when its measures disagree: divergence explains
# everything downstream of it, a failure makes the point unusable, the rest
# qualifies valid values.
_PRECEDENCE = ("diverged", "failed", "marginal", "not_reached", "converged", "ok")


def worst_status(statuses: Any) -> str:
    """The status of a point from the statuses of its parts (see ``_PRECEDENCE``)."""
    present = set(statuses)
    for s in _PRECEDENCE:
        if s in present:
            return s
    return "ok"


class PointContext:
    """Everything a measure may use at one grid point.

    Attributes
    ----------
    study : Study
    index : int
        Flat index of the point (C order over the study's dims).
    params : dict
        Every parameter of the study's system at this point: the system's
        defaults, overridden by the study's tables, overridden by the grid.
    solver, newton : SolverOptions, NewtonOptions
        The study's option tables.
    derived : dict
        Parameters computed at this point (e.g. ``eta`` from
        ``eta_over_eta_c``); stored with the point.
    """

    def __init__(self, study: Study, index: int, changes: Mapping[str, Any] | None = None) -> None:
        self.study = study
        self.index = int(index)
        self.params, self._grid_settings = study.point_parameters(index)
        for k, v in (changes or {}).items():  # a point between grid values (an analysis refining a minimum)
            (self.params if k in self.params else self._grid_settings)[k] = v
        self.solver = study.solver
        self.newton = study.newton
        self.derived: dict[str, Any] = {}
        self._cache: dict[Any, Any] = {}

    def settings(self, measure: str) -> dict[str, Any]:
        """Settings of ``measure`` here: its defaults, the study's table, then the grid."""
        spec = MEASURES[measure].settings
        out = {k: p.default for k, p in spec.items()}
        out.update(self.study.measures.get(measure, {}))
        out.update({k: v for k, v in self._grid_settings.items() if k in spec})
        return out

    def shared(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per point for ``key``: what several measures use (a trajectory, a fit)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]
