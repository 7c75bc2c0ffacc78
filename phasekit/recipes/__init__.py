"""Recipes: named studies that reproduce a figure of the literature.

A recipe is a function ``recipe(outdir: pathlib.Path, quick: bool = False,
**params) -> dict[str, pathlib.Path]`` that computes one or more xarray
datasets, writes them as netCDF under ``outdir``, draws PNG figures from those
datasets through :mod:`phasekit.plotting`, and returns the written files by
role.  ``quick=True`` runs a cheap variant (used by the tests).  A study file
``studies/NAME.toml`` with ``recipe = "NAME"`` runs one through
``phasekit run``; ``phasekit recipes`` lists them.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

__all__ = ["recipe", "get_recipe", "available_recipes", "run_recipe"]

_RECIPES: dict[str, Callable[..., dict[str, Path]]] = {}

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


def recipe(name: str) -> Callable[[Callable[..., dict[str, Path]]], Callable[..., dict[str, Path]]]:
    """Decorator registering a recipe under ``name``."""

    def register(func: Callable[..., dict[str, Path]]) -> Callable[..., dict[str, Path]]:
        if name in _RECIPES and _RECIPES[name] is not func:
            raise ValueError(f"recipe: {name!r} is already registered")
        _RECIPES[name] = func
        return func

    return register


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
    """Run recipe ``name`` writing into ``outdir`` (created if needed)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    return get_recipe(name)(outdir, quick=quick, **params)
