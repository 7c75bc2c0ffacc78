"""Recipes of the committee machine (phasekit.study.recipes), quick runs.

Values checked against the published ReLU perceptron (eta_c = 2, eta_opt = 1),
the ReLU K = M = 2 escape eigenvalue, the Saad-Solla slope and the N^(-1/2)
law of finite-size fluctuations.
"""

import numpy as np
import pytest
import xarray as xr


def test_plateau_recipes_quick(tmp_path):
    from phasekit.study.recipes import available_recipes, run_recipe

    assert {"plateau_scaling", "convergence_time"} <= set(available_recipes())
    files = run_recipe("plateau_scaling", tmp_path / "ps", quick=True)
    ds = xr.load_dataset(files["plateau_scaling_erf_K2_plateau"], engine="scipy")
    assert float(ds.slope_ratio) == pytest.approx(1.0, abs=0.02)
    assert files["figure"].stat().st_size > 0
    files = run_recipe("convergence_time", tmp_path / "ct", quick=True)
    ds = xr.load_dataset(files["convergence_time_K1"], engine="scipy")
    assert float(ds.eta_c) == pytest.approx(2.0, rel=1e-6)  # MODEL.md: ReLU perceptron
    assert np.all(ds.status.values == 0) and np.all(ds.eta.values < 2.0)
    assert files["figure"].stat().st_size > 0


def test_stability_boundary_recipe_quick(tmp_path):
    from phasekit.study.recipes import run_recipe

    files = run_recipe("stability_boundary", tmp_path, quick=True, activations=["relu"], K_values=[1, 2])
    for key in ("stability_boundary", "plateau_escape", "stability_boundary_figure", "plateau_escape_figure"):
        assert files[key].exists()
    sb = xr.open_dataset(files["stability_boundary"], engine="scipy")
    assert abs(float(sb.eta_c.sel(activation="relu", K=1)) - 2.0) < 1e-9
    assert abs(float(sb.eta_opt.sel(activation="relu", K=1)) - 1.0) < 1e-8
    pe = xr.open_dataset(files["plateau_escape"], engine="scipy")
    assert abs(float(pe.escape_eigenvalue.sel(activation="relu", K=2)) - 0.2392) < 5e-5
    assert np.isnan(float(pe.escape_eigenvalue.sel(activation="relu", K=1)))
    sb.close()
    pe.close()


def test_simulation_recipes_quick(tmp_path):
    from phasekit.study.recipes import run_recipe

    files = run_recipe("simulation_overlay", tmp_path / "overlay", quick=True, n_points=11)
    for role in ("perceptron", "committee"):
        sim_ds = xr.open_dataset(files[f"{role}_simulation"], engine="scipy")
        assert sim_ds.sizes["run"] == 2 and files[f"{role}_figure"].stat().st_size > 1000
    files = run_recipe("finite_size", tmp_path / "fs", quick=True)
    ds = xr.open_dataset(files["finite_size"], engine="scipy")
    # Fifty runs, N = 100 ... 1000: the spread shrinks like N^(-1/2) within its scatter.
    exps = ds["exponent"].values
    assert np.all(np.abs(exps + 0.5) < 0.15), exps
