"""Recipes: named studies that reproduce a figure of the literature.

A recipe is a function ``recipe(outdir: pathlib.Path, quick: bool = False,
**params) -> dict[str, pathlib.Path]`` that computes one or more xarray
datasets, writes them as netCDF under ``outdir``, draws PNG figures from those
datasets through :mod:`phasekit.plotting`, and returns the written files by
role.  ``quick=True`` runs a cheap variant (used by the tests).  A study file
``studies/NAME.toml`` with ``recipe = "NAME"`` runs one through
``phasekit run``; ``phasekit recipes`` lists them.

The parameters of a study file are checked against the recipe's signature
before any work (:func:`check_parameters`): unknown names, values of the
wrong type (from the annotations) and values outside the ranges the recipe
declares with ``@recipe(name, checks={...})`` are one-line errors naming the key.
"""

from __future__ import annotations

import collections.abc
import importlib
import inspect
import math
import numbers
import re
import types
import typing
from pathlib import Path
from typing import Any, Callable, Mapping

from ..schema import StudyError

__all__ = ["recipe", "get_recipe", "available_recipes", "run_recipe", "check_parameters", "choices"]

_RECIPES: dict[str, Callable[..., dict[str, Path]]] = {}
_CHECKS: dict[str, dict[str, Any]] = {}

# Modules whose import registers recipes; imported lazily on first lookup.
_RECIPE_MODULES = (
    "committee",
    "fixed_points",
    "plateaus",
    "simulation",
    "propagation",
    "linear_dynamics",
    "two_layer",
)


class choices:
    """A ``checks`` entry: the value (each element of a list) must be one of ``values``."""

    def __init__(self, *values: Any) -> None:
        self.values = values


def recipe(name: str, *, checks: Mapping[str, Any] | None = None
           ) -> Callable[[Callable[..., dict[str, Path]]], Callable[..., dict[str, Path]]]:
    """Decorator registering a recipe under ``name``.

    ``checks`` maps parameter names to the values they allow, checked on
    numbers and on every number inside a list or table: a range such as
    ``"> 0"``, ``">= 1"`` or ``">= 0, <= 1"``; ``"activation"`` (a registered
    activation name); ``"workers"`` (see :func:`phasekit.core.parallel.check_workers`);
    or :class:`choices`.
    """

    def register(func: Callable[..., dict[str, Path]]) -> Callable[..., dict[str, Path]]:
        if name in _RECIPES and _RECIPES[name] is not func:
            raise ValueError(f"recipe: {name!r} is already registered")
        params = inspect.signature(func).parameters
        unknown = set(checks or {}) - set(params)
        if unknown:
            raise ValueError(f"recipe {name!r}: checks name no parameter: {sorted(unknown)}")
        _RECIPES[name] = func
        _CHECKS[name] = dict(checks or {})
        return func

    return register


# --- parameter checks --------------------------------------------------------------


def _fmt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Kind:
    """What an annotation allows: a test and its description (singular, plural)."""

    def __init__(self, test: Callable[[Any], bool], one: str, many: str) -> None:
        self.test, self.one, self.many = test, one, many


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _kind(hint: Any) -> _Kind:
    """The check of a (resolved) type annotation; unknown annotations allow anything."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is inspect.Parameter.empty:
        return _Kind(lambda v: True, "anything", "anything")
    if hint is type(None):
        return _Kind(lambda v: v is None, "none", "none")
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        parts = [_kind(a) for a in args if a is not type(None)]
        return _Kind(lambda v: any(p.test(v) for p in parts), " or ".join(p.one for p in parts),
                     " or ".join(p.many for p in parts))
    if hint is bool:
        return _Kind(lambda v: isinstance(v, bool), "true or false", "booleans")
    if hint is int:
        return _Kind(lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool), "an integer",
                     "integers")
    if hint is float:
        return _Kind(_is_number, "a number", "numbers")
    if hint is str:
        return _Kind(lambda v: isinstance(v, str), "a string", "strings")
    if hint is Path:
        return _Kind(lambda v: isinstance(v, (str, Path)), "a path", "paths")
    if origin in (collections.abc.Sequence, collections.abc.Iterable, list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            items = [_kind(a) for a in args]
            return _Kind(lambda v: isinstance(v, (list, tuple)) and len(v) == len(items)
                         and all(k.test(x) for k, x in zip(items, v)),
                         f"a list of {len(items)} values", f"lists of {len(items)} values")
        item = _kind(args[0]) if args else _kind(Any)
        return _Kind(lambda v: isinstance(v, (list, tuple)) and all(item.test(x) for x in v),
                     f"a list of {item.many}", f"lists of {item.many}")
    if origin in (collections.abc.Mapping, dict):
        value = _kind(args[1]) if len(args) == 2 else _kind(Any)
        return _Kind(lambda v: isinstance(v, Mapping) and all(isinstance(k, str) and value.test(x)
                                                              for k, x in v.items()),
                     f"a table of {value.many}", f"tables of {value.many}")
    return _Kind(lambda v: True, "anything", "anything")


_RANGE = re.compile(r"\s*(>=|<=|>|<)\s*([-+]?[0-9.]+(?:e[-+]?[0-9]+)?)\s*")
_OPS = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b}


def _check_value(key: str, value: Any, check: Any) -> str | None:
    """Problem with ``value`` (recursing into lists and tables) under ``check``, or None."""
    if isinstance(value, (list, tuple)):
        for j, v in enumerate(value):
            problem = _check_value(f"{key}[{j}]", v, check)
            if problem:
                return problem
        return None
    if isinstance(value, Mapping):
        for k, v in value.items():
            problem = _check_value(f"{key}.{k}", v, check)
            if problem:
                return problem
        return None
    if isinstance(check, choices):
        if value not in check.values:
            return f"key '{key}': must be one of {', '.join(map(str, check.values))}, got {_fmt(value)}"
        return None
    if check == "activation":
        from ...core.activations import available_activations

        names = available_activations()
        if isinstance(value, str) and value not in names:
            return f"key '{key}': unknown activation {value!r} (available: {', '.join(names)})"
        return None
    if check == "workers":
        from ...core.parallel import check_workers

        try:
            check_workers(value, name="n_workers")
        except ValueError as exc:
            return f"key '{key}': {str(exc).split(': ', 1)[1]}"
        return None
    if not _is_number(value):
        return None  # the type check speaks about non-numbers
    for part in str(check).split(","):
        m = _RANGE.fullmatch(part)
        if m is None:
            raise ValueError(f"recipe checks: cannot read {check!r}")
        op, bound = m.group(1), float(m.group(2))
        if not _OPS[op](float(value), bound):
            return f"key '{key}': must be {str(check).strip()}, got {value:g}"
    return None


def check_parameters(name: str, params: Mapping[str, Any], source: str = "<study>",
                     prefix: str = "parameters.") -> None:
    """Check a recipe's parameters against its signature, annotations and declared ranges.

    Raises
    ------
    StudyError
        One line ``"<source>: key '<prefix><name>': <problem>"`` for the first
        unknown name, wrong type or value out of range.
    """
    _load_all()
    if name not in _RECIPES:
        raise StudyError(f"{source}: key 'recipe': unknown recipe {name!r} (available: {', '.join(sorted(_RECIPES))})")
    func = _RECIPES[name]
    sig = inspect.signature(func).parameters
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # an annotation that cannot be resolved: check names and ranges only
        hints = {}
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.values())
    allowed = [k for k, p in sig.items() if k not in ("outdir", "quick")
               and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    for key, value in params.items():
        where = f"{prefix}{key}"
        if key == "quick":
            raise StudyError(f"{source}: key '{where}': not a parameter; ask for the cheap variant with "
                             f"phasekit run --quick")
        if key == "outdir":
            raise StudyError(f"{source}: key '{where}': not a parameter; give the output folder with "
                             f"phasekit run --outdir")
        if key not in allowed:
            if open_ended:
                continue
            raise StudyError(f"{source}: unknown key '{where}' for recipe {name!r} (allowed: {', '.join(allowed)})")
        kind = _kind(hints.get(key, Any))
        if not kind.test(value):
            raise StudyError(f"{source}: key '{where}': must be {kind.one}, got {type(value).__name__} "
                             f"{_fmt(value)}")
        check = _CHECKS.get(name, {}).get(key)
        if check is not None:
            problem = _check_value(where, value, check)
            if problem:
                raise StudyError(f"{source}: {problem}")


def _load_all() -> None:
    for mod in _RECIPE_MODULES:
        try:
            importlib.import_module(f"{__name__}.{mod}")
        except ModuleNotFoundError as exc:
            # Only tolerate the recipe module itself being absent.
            if exc.name != f"{__name__}.{mod}":
                raise


def available_recipes() -> list[str]:
    """Names of all recipes."""
    _load_all()
    return sorted(_RECIPES)


def get_recipe(name: str) -> Callable[..., dict[str, Path]]:
    """The recipe function registered under ``name``."""
    _load_all()
    try:
        return _RECIPES[name]
    except KeyError:
        raise ValueError(f"recipe: unknown recipe {name!r}; available: {sorted(_RECIPES)}") from None


def run_recipe(name: str, outdir: str | Path, quick: bool = False, **params: Any) -> dict[str, Path]:
    """Run recipe ``name`` writing into ``outdir`` (created if needed).

    Raises
    ------
    ValueError
        For an unknown recipe or parameter, or a parameter of the wrong type
        or out of range (:func:`check_parameters`), before any work.
    """
    check_parameters(name, params, source="run_recipe", prefix="")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    return get_recipe(name)(outdir, quick=quick, **params)
