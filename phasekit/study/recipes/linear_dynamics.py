"""Recipe for deep linear networks: mode trajectories, weight decay, a trained network."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from ... import deep_linear as ld
from ...plotting.common import save_figure
from ...plotting.linear_dynamics import plot_mode_trajectories
from . import recipe

__all__ = ["deep_linear_recipe"]


@recipe("deep_linear", checks={"singular_values": "> 0", "u0": "> 0", "depths": ">= 1", "weight_decays": ">= 0",
                              "t_max": "> 0", "n_times": ">= 2", "learning_rate": "> 0", "hidden": ">= 1",
                              "n_in": ">= 1", "n_out": ">= 1", "n_samples": ">= 1", "seed": ">= 0"})
def deep_linear_recipe(
    outdir: Path,
    quick: bool = False,
    *,
    singular_values: Sequence[float] = (3.0, 2.0, 1.0, 0.5),
    u0: float = 1e-3,
    depths: Sequence[int] = (2, 3),
    weight_decays: Sequence[float] = (0.0, 0.2),
    t_max: float = 12.0,
    n_times: int = 241,
    learning_rate: float = 1e-3,
    hidden: int = 8,
    n_in: int = 8,
    n_out: int = 6,
    n_samples: int = 64,
    seed: int = 0,
) -> dict[str, Path]:
    """Closed-form mode strengths with and without weight decay, and a trained network.

    For every ``(depth, weight_decay)``: ``theory_k<k>_wd<j>.nc`` (closed form,
    with the largest deviation from the ODE integration in the attribute
    ``max_ode_deviation``) and ``simulation_k<k>_wd<j>.nc`` (full-batch gradient
    descent on whitened data from a small balanced aligned initialisation);
    figure ``mode_trajectories.png`` with one panel per pair.
    """
    outdir = Path(outdir)
    if quick:
        t_max, n_times, learning_rate = 6.0, 61, 0.01
    sv = np.asarray(singular_values, dtype=float)
    times = np.linspace(0.0, t_max, n_times)
    files: dict[str, Path] = {}
    panels = []
    for k in depths:
        for j, lam in enumerate(weight_decays):
            th = ld.mode_trajectories(sv, times, u0, depth=int(k), weight_decay=float(lam))
            dev = max(float(np.max(np.abs(
                ld.mode_strength_ode(times, s, u0, depth=int(k), weight_decay=float(lam))
                - th["u"].sel(mode=m).values))) for m, s in enumerate(sv))
            th.attrs["max_ode_deviation"] = dev
            sim = ld.simulate_deep_linear(
                sv, depth=int(k), hidden=hidden, n_in=n_in, n_out=n_out, n_samples=n_samples,
                u0=u0, weight_decay=float(lam), learning_rate=learning_rate, t_max=t_max,
                n_records=n_times, seed=seed)
            p_th = outdir / f"theory_k{k}_wd{j}.nc"
            p_sim = outdir / f"simulation_k{k}_wd{j}.nc"
            th.to_netcdf(p_th, engine="scipy")
            sim.to_netcdf(p_sim, engine="scipy")
            files[f"theory_k{k}_wd{j}"] = p_th
            files[f"simulation_k{k}_wd{j}"] = p_sim
            panels.append((th, sim, int(k), float(lam)))
    ncol = len(weight_decays)
    nrow = len(depths)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.6 * ncol, 4.0 * nrow), squeeze=False)
    for ax, (th, sim, k, lam) in zip(axes.ravel(), panels):
        plot_mode_trajectories(th, sim, ax,
                               title=f"depth k = {k}, weight decay lambda = {lam:g}, u0 = {u0:g}")
    fig.suptitle("Deep linear network: mode strengths (lines: closed form; circles: "
                 f"gradient descent, step {learning_rate:g})")
    fig.tight_layout()
    files["figure"] = save_figure(fig, outdir / "mode_trajectories.png")
    return files
