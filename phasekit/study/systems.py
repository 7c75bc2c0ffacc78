"""The parameters of each physical system that a study can set or sweep.

A study names its ``system``; every parameter of that system has a
:class:`Parameter` here: the study table it belongs to (``[model]``,
``[initial]``, ...), its type and range, its default, and the ``long_name``
and ``units`` its coordinate gets in the dataset.  Any parameter can also be a
grid axis.  The specifications are data only: building models and computing
belongs to the measures (:mod:`phasekit.study.measures`).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["Parameter", "System", "SYSTEMS", "get_system"]


def _fmt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


@dataclass(frozen=True)
class Parameter:
    """One settable quantity: a model parameter, a start, a run setting or a measure setting.

    Attributes
    ----------
    name : str
    kind : str
        ``"number"``, ``"integer"``, ``"boolean"``, ``"string"``, ``"choice"``,
        ``"activation"`` (a registered activation name), ``"numbers"`` (a
        non-empty list of numbers; ``scalar_ok`` also takes one number) or
        ``"matrix"`` (a list of equally long lists of numbers), ``"strings"`` (a
        list of strings; ``scalar_ok`` also takes one string), ``"number_map"``
        (a number, or a table of numbers) or ``"schedule"`` (a learning-rate
        schedule: a kind name, or a table ``{kind = ..., ...}`` checked by
        :func:`phasekit.committee.schedules.schedule_from_spec`).
    default : object
        ``None`` means "not set" (the computation then chooses).
    long_name, units : str
        Attributes of the dataset coordinate (units ``""``: a count or a label).
    table : str
        Study table the parameter lives in (``model``, ``initial``, ``integration``, ...).
    low, high : float, optional
        Bounds on numbers (each element of a list); ``low_open``/``high_open`` exclude them.
    choices : tuple of str
        Allowed values of a ``"choice"``.
    literals : tuple of str
        Strings allowed besides the kind (e.g. ``"K"`` for ``M``: tied to K).
    scalar_ok : bool
        A ``"numbers"`` parameter also accepts a single number.
    matrix_ok : bool
        A ``"numbers"`` parameter also accepts a matrix (a list of lists).
    """

    name: str
    kind: str
    default: Any = None
    long_name: str = ""
    units: str = ""
    table: str = "model"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    literals: tuple[str, ...] = ()
    scalar_ok: bool = False
    matrix_ok: bool = False

    def describe(self) -> str:
        """The allowed values in words (for messages)."""
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        rng = (" " + ", ".join(bounds)) if bounds else ""
        text = {"number": f"a number{rng}", "integer": f"an integer{rng}", "boolean": "true or false",
                "string": "a string", "activation": "an activation name",
                "choice": "one of " + ", ".join(self.choices),
                "numbers": f"a list of numbers{rng}" + (" (or one number)" if self.scalar_ok else ""),
                "matrix": f"a list of lists of numbers{rng}", "strings": "a list of strings",
                "number_map": f"a number{rng} or a table of them",
                "schedule": "a schedule kind name or a table {kind = ..., ...}"}[self.kind]
        if self.literals:
            text += " or " + " or ".join(repr(v) for v in self.literals)
        return text

    def check(self, value: Any) -> Any:
        """``value`` checked and normalised (ints of a number become floats).

        Raises
        ------
        ValueError
            ``"must be <what>, got <value>"`` (no key: the caller names it).
        """
        if isinstance(value, str) and value in self.literals:
            return value
        kind = self.kind
        if kind == "number":
            return self._bounded(value)
        if kind == "integer":
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"must be {self.describe()}, got {type(value).__name__} {_fmt(value)}")
            self._bounded(value)
            return int(value)
        if kind == "boolean":
            if not isinstance(value, bool):
                raise ValueError(f"must be true or false, got {type(value).__name__} {_fmt(value)}")
            return value
        if kind in ("string", "choice", "activation"):
            if not isinstance(value, str):
                raise ValueError(f"must be {self.describe()}, got {type(value).__name__} {_fmt(value)}")
            if kind == "choice" and value not in self.choices:
                raise ValueError(f"must be one of {', '.join(self.choices)}, got {value!r}")
            if kind == "activation":
                from ..core.activations import available_activations

                names = available_activations()
                if value not in names:
                    raise ValueError(f"unknown activation {value!r} (available: {', '.join(names)})")
            return value
        if kind == "numbers":
            if self.scalar_ok and _is_number(value):
                return self._bounded(value)
            if self.matrix_ok and isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple)):
                return Parameter(self.name, "matrix").check(value)
            if not isinstance(value, (list, tuple)) or not value:
                raise ValueError(f"must be {self.describe()}, got {type(value).__name__} {_fmt(value)}")
            return [self._element(v, j) for j, v in enumerate(value)]
        if kind == "matrix":
            if not isinstance(value, (list, tuple)) or not value or \
                    not all(isinstance(r, (list, tuple)) and r for r in value):
                raise ValueError(f"must be {self.describe()}, got {type(value).__name__} {_fmt(value)}")
            if len({len(r) for r in value}) != 1:
                raise ValueError(f"rows must have equal lengths, got {_fmt(value)}")
            return [[self._element(v, f"{i}][{j}") for j, v in enumerate(r)] for i, r in enumerate(value)]
        if kind == "strings":
            if self.scalar_ok and isinstance(value, str):
                return [value]
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"must be a list of strings, got {type(value).__name__} {_fmt(value)}")
            return list(value)
        if kind == "number_map":
            if isinstance(value, Mapping):
                return {str(k): self._element(v, k) for k, v in value.items()}
            return self._bounded(value)
        if kind == "schedule":
            return _schedule(value)
        raise AssertionError(kind)  # pragma: no cover - the specifications below use known kinds

    def _element(self, v: Any, j: Any) -> float:
        try:
            return self._bounded(v)
        except ValueError as exc:
            raise ValueError(f"[{j}] {exc}") from None

    def _bounded(self, value: Any) -> float:
        if not _is_number(value):
            raise ValueError(f"must be {self.describe()}, got {type(value).__name__} {_fmt(value)}")
        v = float(value)
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            raise ValueError(f"must be {'>' if self.low_open else '>='} {self.low:g}, got {v:g}")
        if self.high is not None and (v > self.high or (self.high_open and v == self.high)):
            raise ValueError(f"must be {'<' if self.high_open else '<='} {self.high:g}, got {v:g}")
        return v

    @property
    def is_numeric(self) -> bool:
        """Whether a ``{start, stop, num}`` range may give its grid values."""
        return self.kind == "number"


def _schedule(value: Any) -> Any:
    """A schedule spec checked as the model will read it: a kind name as given, a table with floats."""
    from ..committee.schedules import schedule_from_spec

    if not isinstance(value, (str, Mapping)):
        raise ValueError(f"must be a schedule kind name or a table {{kind = ..., ...}}, got "
                         f"{type(value).__name__} {_fmt(value)}")
    try:
        schedule = schedule_from_spec(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc).removeprefix("eta_schedule: ")) from None
    return value if isinstance(value, str) else schedule.to_dict()


def _p(name: str, kind: str, default: Any, long_name: str, units: str = "", **kw: Any) -> Parameter:
    return Parameter(name, kind, default, long_name, units, **kw)


@dataclass(frozen=True)
class System:
    """A physical system as studies see it: its parameters, grouped into study tables.

    Attributes
    ----------
    name : str
    description : str
    parameters : dict
        Parameter name -> :class:`Parameter`.
    options : tuple of str
        Option tables the system's computations take (``"solver"``, ``"newton"``).
    derived : dict
        Parameter name -> ``(trigger, literal)``: the parameter is computed at
        each point when the parameter ``trigger`` is set (``eta`` from
        ``eta_over_eta_c``) or, with ``literal``, takes that value
        (``sigma_w2 = "edge_of_chaos"``); its values are then stored as a variable.
    """

    name: str
    description: str
    parameters: dict[str, Parameter] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    derived: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.table for p in self.parameters.values()))

    def defaults(self) -> dict[str, Any]:
        return {name: p.default for name, p in self.parameters.items()}

    def in_table(self, table: str) -> dict[str, Parameter]:
        return {n: p for n, p in self.parameters.items() if p.table == table}


def _system(name: str, description: str, params: list[Parameter], options: tuple[str, ...] = (),
            derived: Mapping[str, tuple[str, str | None]] | None = None) -> System:
    return System(name, description, {p.name: p for p in params}, options, dict(derived or {}))


_COMMITTEE = _system(
    "committee",
    "soft committee machine trained by on-line SGD: exact order-parameter ODEs",
    [
        _p("K", "integer", 2, "student hidden units K", low=1),
        _p("M", "integer", 2, "teacher hidden units M", low=1, literals=("K",)),
        _p("activation", "activation", "erf", "activation"),
        _p("teacher_activation", "activation", None, "teacher activation"),
        _p("eta", "number", 0.1, "learning rate eta", "1", low=0.0, low_open=True),
        _p("eta_over_eta_c", "number", None, "learning rate over the critical learning rate, eta / eta_c", "1",
           low=0.0, low_open=True),
        _p("second_order", "boolean", True, "eta^2 term kept (1) or not (0)"),
        _p("noise", "number", 0.0, "output noise sigma", "1", low=0.0),
        _p("normalisation", "choice", "none", "default second-layer weights K^-p, M^-p",
           choices=("none", "1/K", "1/sqrt(K)")),
        _p("teacher_weights", "numbers", None, "teacher second-layer weights w_n", "1"),
        _p("student_weights", "numbers", None, "student second-layer weights v_i (initial ones when trained)", "1"),
        _p("train_second_layer", "boolean", False, "student second layer trained (1) or fixed (0)"),
        _p("eta_second_layer", "number", None, "second-layer learning rate eta_v", "1", low=0.0, low_open=True),
        _p("weight_decay", "number", 0.0, "weight decay lambda", "1", low=0.0),
        _p("drift", "number", 0.0, "teacher drift strength delta", "1", low=0.0),
        _p("eta_schedule", "schedule", None, "learning-rate schedule eta(alpha) / eta"),
        _p("subspace", "choice", None, "invariant subspace the flow is restricted to (unset: the full space)",
           choices=("site_symmetric", "grouped")),
        _p("X", "number", 1e-3, "initial overlap X", "1", table="initial", low=0.0),
        _p("Q0", "numbers", None, "initial student norms Q_ii (or the whole Q)", "1", table="initial", low=0.0,
           low_open=True, scalar_ok=True, matrix_ok=True),
        _p("R0", "matrix", None, "initial student-teacher overlaps R_in", "1", table="initial"),
        _p("kind", "choice", "diagonal", "kind of initial state", table="initial",
           choices=("diagonal", "uniform", "plateau")),
        _p("seed", "integer", 0, "random seed", table="initial", low=0),
        _p("alpha_max", "number", None, "integration horizon alpha", "1", table="integration", low=0.0,
           low_open=True),
        _p("eta_alpha_max", "number", None, "integration horizon eta alpha", "1", table="integration", low=0.0,
           low_open=True),
        _p("n_points", "integer", 401, "samples of a trajectory", table="integration", low=2),
        _p("spacing", "choice", "linear", "spacing of the trajectory samples", table="integration",
           choices=("linear", "log")),
        _p("stop_eg", "number", None, "eps_g at which a trajectory stops", "1", table="integration", low=0.0,
           low_open=True),
    ],
    options=("solver", "newton"),
    derived={"eta": ("eta_over_eta_c", None)},
)

_PROPAGATION = _system(
    "propagation",
    "signal propagation through deep random networks: order, chaos and their edge",
    [
        _p("activation", "activation", "tanh", "activation"),
        _p("sigma_w2", "number", 1.0, "weight variance sigma_w^2", "1", low=0.0, low_open=True,
           literals=("edge_of_chaos",)),
        _p("sigma_b2", "number", 0.0, "bias variance sigma_b^2", "1", low=0.0),
        _p("n_angle", "integer", 24, "Gauss-Legendre nodes per angular wedge", low=1),
        _p("q0", "number", 1.0, "input variance q_0", "1", low=0.0, low_open=True),
    ],
    derived={"sigma_w2": ("sigma_w2", "edge_of_chaos")},
)

_DEEP_LINEAR = _system(
    "deep_linear",
    "deep linear networks: mode strengths of gradient flow on whitened data",
    [
        _p("singular_values", "numbers", [3.0, 2.0, 1.0, 0.5], "singular values of the target map", "1", low=0.0),
        _p("u0", "number", 1e-3, "initial mode strength u0", "1", low=0.0, low_open=True),
        _p("depth", "integer", 2, "number of weight matrices k", low=1),
        _p("weight_decay", "number", 0.0, "weight decay lambda", "1", low=0.0),
        _p("tau", "number", 1.0, "learning time constant tau", "1", low=0.0, low_open=True),
        _p("t_max", "number", 12.0, "final time t / tau", "1", table="integration", low=0.0, low_open=True),
        _p("n_times", "integer", 241, "samples of the mode trajectories", table="integration", low=2),
    ],
)

_LAZY = _system(
    "lazy_training",
    "two-layer student-teacher networks: lazy (tangent-kernel) versus feature learning",
    [
        _p("d", "integer", 20, "input dimension d", low=1),
        _p("m0", "integer", 3, "teacher units m0", low=1),
        _p("m", "integer", 50, "student width m", low=1),
        _p("tau", "number", 1.0, "initial scale tau", "1", low=0.0, low_open=True),
        _p("seed", "integer", 0, "student seed", low=0),
        _p("teacher_seed", "integer", 0, "teacher seed", low=0),
        _p("activation", "activation", "relu", "student activation"),
        _p("scale", "number", 1.0, "output scale", "1", low=0.0, low_open=True),
        _p("symmetric", "boolean", True, "symmetrised initialisation (1) or not (0)"),
        _p("centered", "boolean", False, "centred predictor f(w) - f(w0) (1) or not (0)"),
        _p("T", "number", 200.0, "horizon parameter T (kernel time)", "1", table="training", low=0.0,
           low_open=True),
        _p("t_final", "number", None, "final time of every run", "mean-field time t", table="training", low=0.0,
           low_open=True),
        _p("threshold", "number", 0.25, "loss threshold as a fraction of the initial loss", "1", table="training",
           low=0.0, low_open=True),
        _p("trainer", "choice", "flow", "trainer", table="training", choices=("flow", "sgd")),
        _p("learning_rate", "number", 0.01, "SGD learning rate", "1", table="training", low=0.0, low_open=True),
        _p("batch_size", "integer", 64, "SGD batch size", table="training", low=1),
        _p("quadrature_nodes", "integer", 32, "Gauss-Hermite nodes", table="training", low=1),
        _p("rtol", "number", 1e-6, "relative tolerance of the gradient flow (atol = 1e-3 rtol tau)", "1",
           table="training", low=0.0, low_open=True),
    ],
)

#: The systems a study can name (``system = ...``), by name.
SYSTEMS: dict[str, System] = {s.name: s for s in (_COMMITTEE, _PROPAGATION, _DEEP_LINEAR, _LAZY)}


def get_system(name: str) -> System:
    """The :class:`System` called ``name``; ``ValueError`` listing the systems otherwise."""
    try:
        return SYSTEMS[name]
    except (KeyError, TypeError):
        raise ValueError(f"must be one of {', '.join(SYSTEMS)}, got {_fmt(name)}") from None
