"""Plotting: a registry of pure views of datasets; no pyplot, no global backend switch; fits read, not computed."""

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure

from helpers_study import GRID_STUDY, _values, env, synthetic
from phasekit.plotting import FIGURES, default_figures, draw, figure_problem
from phasekit.plotting import sweeps as ps


def test_importing_and_drawing_leave_matplotlib_global_state_alone():
    code = ("import sys, matplotlib\nmatplotlib.use('svg')\nimport phasekit.plotting as p\n"
            "from phasekit.plotting.common import new_figure\nfig, ax = new_figure()\nax[0, 0].plot([0, 1])\n"
            "fig.savefig(sys.argv[1])\n"
            "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
            "assert 'matplotlib.pyplot' not in sys.modules\nprint('ok')\n")
    res = subprocess.run([sys.executable, "-c", code, "/tmp/phasekit-plotting-test.png"], env=env(),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_registry_and_spec_checks():
    assert {"heatmap", "lines", "stability_boundary", "plateau_scaling", "trajectories", "learning_curves",
            "phase_diagrams", "depth_profiles", "mode_trajectories", "simulation_overlay", "finite_size",
            "against_tau", "loss_vs_width", "distance_vs_scale"} <= set(FIGURES)
    assert figure_problem({"kind": "heatmap", "var": "v", "x": "eta", "y": "K", "title": "t"}) is None
    assert "unknown figure" in figure_problem({"kind": "pie"})
    assert figure_problem({"kind": "lines", "var": "v", "colour": "red"}).startswith("colour: not an argument")


def test_heatmap_marks_diverged_and_unreached_cells():
    ct = np.linspace(10, 120, 12)
    ct[5] = np.inf
    _, ds = synthetic(GRID_STUDY, _values(convergence_time=ct))
    fig = ps.heatmap(ds, "convergence_time", "eta", "K")
    assert isinstance(fig, Figure)
    erf_ax = fig.axes[0]
    markers = {ln.get_marker(): (ln.get_xdata()[0], ln.get_ydata()[0]) for ln in erf_ax.lines}
    # point 1 = (erf, K = 1, eta = 1.0): column 1, row 0; point 5 = (erf, K = 2, eta = 2.0): column 2, row 1
    assert markers["x"] == (1, 0)
    assert markers["o"] == (2, 1)
    texts = {t.get_text() for t in erf_ax.texts}
    assert "10" in texts and "inf" not in texts
    assert erf_ax.get_xlabel() == "learning rate eta [1]" and fig.axes[-1].get_ylabel().startswith("convergence time")
    assert erf_ax.get_ylabel() == "student hidden units K"  # a count: no units in brackets


def test_lines_put_each_lines_markers_at_its_own_height():
    ct = np.full(12, np.inf)
    _, ds = synthetic(GRID_STUDY, _values(convergence_time=ct))
    fig = ps.lines(ds, "convergence_time", "eta", hue="K")
    heights = {ln.get_ydata()[0] for ln in fig.axes[0].lines if ln.get_marker() == "^"}
    assert len(heights) == 2  # K = 1 and K = 2 do not hide each other


def test_plateau_scaling_draws_the_stored_fit():
    X = np.logspace(-2, -6, 5)
    ds = xr.Dataset({"plateau_length": (("K", "X"), np.stack([10 * np.log(1 / X), 20 * np.log(1 / X)]),
                                        {"long_name": "plateau length alpha_P", "units": "1"}),
                     "status": (("K", "X"), np.zeros((2, 5), dtype=np.int8)),
                     "fitted_slope": ("K", [123.0, 456.0]), "fitted_intercept": ("K", [0.0, 0.0]),
                     "fitted_slope_stderr": ("K", [0.5, 0.5]), "slope_ratio": ("K", [1.0, 1.0]),
                     "predicted_slope": ("K", [10.0, 20.0]), "in_fit": (("K", "X"), np.ones((2, 5), int))},
                    coords={"K": [2, 3], "X": X, "eta": 1.0})
    labels = ps.plot_plateau_scaling(ds).axes[0].get_legend_handles_labels()[1]
    assert any("slope 123" in lab for lab in labels) and any("slope 456" in lab for lab in labels)


def test_default_figures_follow_the_grid():
    _, ds = synthetic(GRID_STUDY, _values())
    kinds = [s["kind"] for s in default_figures(ds)]
    assert kinds == ["stability_boundary", "heatmap", "lines"]
    for spec in default_figures(ds):
        for name, title, fig in draw(ds, spec):
            assert isinstance(fig, Figure) and name


def test_draw_refuses_an_unknown_argument():
    _, ds = synthetic(GRID_STUDY, _values())
    with pytest.raises(ValueError, match="figure 'h': y2: not an argument"):
        draw(ds, {"kind": "heatmap", "name": "h", "var": "final_eg", "x": "eta", "y2": "K"})
