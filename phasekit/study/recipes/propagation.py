"""Recipes for signal propagation: edge-of-chaos phase diagrams and depth profiles."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ... import propagation as prop
from ...plotting.common import save_figure
from ...plotting.propagation import plot_depth_profiles, plot_phase_diagrams
from . import recipe

__all__ = ["edge_of_chaos_recipe", "correlation_depth_recipe"]

# sigma_w2 ranges that show each activation's ordered and chaotic phases.
_DEFAULT_SW_MAX = {"relu": 3.0, "elu": 3.0, "swish": 3.5, "softplus": 3.5, "tanh": 4.0, "erf": 5.0}


@recipe("edge_of_chaos", checks={"activations": "activation", "n_sigma_w2": ">= 1", "n_sigma_b2": ">= 1",
                                "sigma_w2_min": "> 0", "sigma_w2_max": "> 0", "sigma_b2_max": ">= 0",
                                "n_workers": "workers"})
def edge_of_chaos_recipe(
    outdir: Path,
    quick: bool = False,
    *,
    activations: Sequence[str] = ("relu", "tanh", "erf", "elu", "swish"),
    n_sigma_w2: int = 41,
    n_sigma_b2: int = 26,
    sigma_w2_min: float = 0.5,
    sigma_w2_max: Mapping[str, float] | float | None = None,
    sigma_b2_max: Mapping[str, float] | float = 0.5,
    n_workers: int | None = None,
) -> dict[str, Path]:
    """Order/chaos phase diagrams with the edge of chaos for several activations.

    ``sigma_w2_max`` and ``sigma_b2_max`` are numbers or per-activation mappings.
    Writes ``phase_<activation>.nc`` and ``phase_diagrams.png`` (colour: depth
    scale ``xi_c``; red: critical line from :func:`phasekit.propagation.phases.edge_of_chaos`,
    dotted where its ``q*`` repels the variance map).
    """
    outdir = Path(outdir)
    if quick:
        n_sigma_w2, n_sigma_b2, n_workers = 6, 4, 1
    files: dict[str, Path] = {}
    datasets = []
    for name in activations:
        if isinstance(sigma_w2_max, Mapping):
            top = float(sigma_w2_max.get(name, _DEFAULT_SW_MAX.get(name, 4.0)))
        elif sigma_w2_max is None:
            top = _DEFAULT_SW_MAX.get(name, 4.0)
        else:
            top = float(sigma_w2_max)
        if isinstance(sigma_b2_max, Mapping):
            right = float(sigma_b2_max.get(name, 0.5))
        else:
            right = float(sigma_b2_max)
        sw = np.linspace(sigma_w2_min, top, n_sigma_w2)
        sb = np.linspace(0.0, right, n_sigma_b2)
        ds = prop.phase_diagram(name, sw, sb, n_workers=n_workers)
        path = outdir / f"phase_{name}.nc"
        ds.to_netcdf(path, engine="scipy")
        files[f"phase_{name}"] = path
        datasets.append(ds)
    files["figure"] = save_figure(plot_phase_diagrams(datasets), outdir / "phase_diagrams.png")
    return files


@recipe("correlation_depth", checks={"depth": ">= 1", "tanh_sigma_b2": ">= 0", "c0": ">= -1, < 1"})
def correlation_depth_recipe(
    outdir: Path,
    quick: bool = False,
    *,
    depth: int = 10_000,
    tanh_sigma_b2: Sequence[float] = (0.05, 0.2),
    c0: float = 0.0,
    extra: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Path]:
    """``1 - c_l`` along depth on the edge of chaos: relu (``l^2``) and tanh (``l``).

    relu sits at its EOC point ``(sigma_w2, sigma_b2) = (2, 0)``; tanh at the EOC
    for each ``tanh_sigma_b2``.  ``extra`` adds profiles given as mappings with
    ``activation`` and ``sigma_b2`` (on that activation's EOC).  Writes
    ``depth_<activation>_<k>.nc`` and ``depth_profiles.png``.
    """
    outdir = Path(outdir)
    if quick:
        depth = 200
        tanh_sigma_b2 = tuple(tanh_sigma_b2)[:1]
    runs: list[tuple[str, float, float]] = [("relu", 2.0, 0.0)]
    for sb in tanh_sigma_b2:
        sw, _ = prop.edge_of_chaos("tanh", float(sb))
        runs.append(("tanh", float(sw), float(sb)))
    for spec in extra:
        sw, _ = prop.edge_of_chaos(spec["activation"], float(spec["sigma_b2"]))
        runs.append((str(spec["activation"]), float(sw), float(spec["sigma_b2"])))
    files: dict[str, Path] = {}
    datasets = []
    for j, (name, sw, sb) in enumerate(runs):
        # relu at (2, 0): every q is a fixed point; the profile does not depend on it.
        q = 1.0 if name == "relu" else None
        ds = prop.correlation_depth_profile(name, sw, sb, int(depth), c0=c0, q=q)
        path = outdir / f"depth_{name}_{j}.nc"
        ds.to_netcdf(path, engine="scipy")
        files[f"depth_{name}_{j}"] = path
        datasets.append(ds)
    files["figure"] = save_figure(plot_depth_profiles(datasets), outdir / "depth_profiles.png")
    return files
