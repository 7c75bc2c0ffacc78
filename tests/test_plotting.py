"""Plotting: a registry of pure views of datasets; no pyplot, no global backend switch; fits read, not computed."""

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure

from helpers_study import GRID_STUDY, _values, env, synthetic
from phasekit.plotting import FIGURES, default_figures, draw, figure_problem, layout_problems
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


# --- layout: what a reader sees (matplotlib's own extents after drawing) ---

def _run_points(n, eta, diverge_at=None):
    """A study-like dataset of first-order K = M = 1 runs over eta; one run diverges at ``diverge_at``."""
    S = 40
    alpha = np.tile(np.linspace(0, 20, S), (len(eta), 1))
    eg = np.tile(0.3 * np.exp(-np.linspace(0, 20, S) / 4), (len(eta), 1))
    status = np.array(["ok"] * len(eta), dtype=object)
    alpha_end = np.full(len(eta), 20.0)
    if diverge_at is not None:
        j, stop = diverge_at
        alpha[j, stop + 1:] = np.nan
        eg[j, :stop + 1] = 0.3 * np.exp(np.linspace(0, 12, stop + 1))  # far above the axis at the stop
        eg[j, stop + 1:] = np.nan
        status[j], alpha_end[j] = "diverged", alpha[j, stop]
    R = np.where(np.isfinite(eg), 0.5, np.nan)[..., None, None]
    return xr.Dataset({"alpha": (("eta", "sample"), alpha), "eg": (("eta", "sample"), eg),
                       "R": (("eta", "sample", "i", "n"), R), "Q": (("eta", "sample", "i", "k"), R),
                       "alpha_end": ("eta", alpha_end), "status": ("eta", status)},
                      coords={"eta": eta, "i": [1], "n": [1], "k": [1], "activation": "relu"})


def test_diverged_marker_is_at_the_runs_last_point_or_on_the_top_edge():
    from phasekit.plotting import committee as pc

    ds = _run_points(3, [0.5, 1.0, 3.0], diverge_at=(2, 9))
    stop_alpha = float(ds["alpha_end"].values[2])
    fig = pc.learning_curves(ds)
    ax = fig.axes[2]
    (mark,) = [ln for ln in ax.lines if ln.get_marker() == "x" and len(ln.get_xdata())]
    # the stop's eps_g (0.3 e^12) is far above the axis top: the marker sits on the top edge, at the stop
    assert not layout_problems(fig)
    x, y = mark.get_transform().transform([(mark.get_xdata()[0], mark.get_ydata()[0])])[0]
    assert float(mark.get_xdata()[0]) == stop_alpha
    size = (mark.get_markersize() + mark.get_markeredgewidth()) * fig.dpi / 72
    assert ax.bbox.y1 - size <= y <= ax.bbox.y1  # just inside the top edge
    assert x == pytest.approx(ax.transData.transform([(stop_alpha, 1.0)])[0, 0])
    assert "stopped at alpha = 4.62,\neps_g = 4.9e+04 (above the axis" in mark.get_label()
    # a stop inside the axes is marked on the curve, at its last stored point
    traj = [t for _, t in pc.trajectories(ds)]
    fig = pc.eg_curves(traj, time="alpha")
    assert any("stopped at alpha = 4.62" in lab for lab in fig.axes[0].get_legend_handles_labels()[1])
    assert not layout_problems(fig)
    fig2 = pc.order_parameters(traj[2], time="alpha")
    (mark,) = [ln for ln in fig2.axes[2].lines if ln.get_marker() == "x" and len(ln.get_xdata())]
    assert (float(mark.get_xdata()[0]), float(mark.get_ydata()[0])) == (stop_alpha, float(traj[2]["eg"].values[-1]))


def test_lines_diverged_markers_of_each_hue_are_visible_apart():
    ct = np.full(12, 30.0)
    _, ds = synthetic(GRID_STUDY, _values(convergence_time=ct))
    ds["status"].values[...] = 0  # every point converged, ...
    names = str(ds["status"].attrs["flag_meanings"]).split()
    ds["status"].values[:, :, 2] = names.index("diverged")  # ... but eta = 2 diverged for both K
    fig = ps.lines(ds, "convergence_time", "eta", hue="K")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.canvas.draw()
    ax = fig.axes[0]
    marks = [ln for ln in ax.lines if ln.get_marker() == "x" and len(ln.get_xdata())]
    assert len(marks) == 2 and marks[0].get_color() != marks[1].get_color()
    (p0,), (p1,) = (m.get_transform().transform(np.column_stack([m.get_xdata(), m.get_ydata()])) for m in marks)
    size = marks[0].get_markersize() * fig.dpi / 72  # marker size in pixels
    assert abs(p0[1] - p1[1]) > size, (p0, p1, size)  # one above the other, not covering it


def test_counts_and_categories_have_no_unit_brackets():
    from phasekit.plotting import label

    assert label(xr.DataArray([1, 2], attrs={"long_name": "student hidden units K", "units": "1"})) == \
        "student hidden units K"
    assert label(xr.DataArray(np.array(["erf", "relu"], dtype=object), attrs={"long_name": "activation",
                                                                               "units": "1"})) == "activation"
    assert label(xr.DataArray([0.1, 0.2], attrs={"long_name": "learning rate eta", "units": "1"})) == \
        "learning rate eta [1]"
    assert label(xr.DataArray([3, 4], attrs={"long_name": "wall time", "units": "s"})) == "wall time [s]"


def test_default_figures_have_nothing_clipped_and_no_legend_over_data():
    ct = np.linspace(10, 120, 12)
    ct[5] = np.inf
    _, ds = synthetic(GRID_STUDY, _values(convergence_time=ct))
    for spec in default_figures(ds):
        for name, _, fig in draw(ds, spec):
            assert not layout_problems(fig), (name, layout_problems(fig))


def test_layout_problems_sees_a_clipped_label_and_a_legend_over_a_point():
    fig = Figure(figsize=(3, 2))  # no layout engine: a long label is cut off
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], "o", label="points")
    ax.set_ylabel("a label far too long for a figure this small")
    ax.legend(loc="upper right")  # over the point (1, 1)
    found = layout_problems(fig)
    assert any("y-axis" in p for p in found) and any("covers 1 point(s) of 'points'" in p for p in found)
    ax.set_ylabel("short")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.set_layout_engine("constrained")
    assert layout_problems(fig) == []


def test_layout_problems_sees_a_figure_legend_over_the_title():
    fig = Figure(figsize=(6, 3), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], label="a curve")
    fig.legend(loc="outside right upper")
    fig.suptitle("a title long enough to run under the legend beside the axes, as it did")
    assert any("figure legend covers the title" in p for p in layout_problems(fig))
    fig.legends.clear()
    fig.legend(loc="outside right center")
    assert layout_problems(fig) == []


def test_stacked_rows_share_one_error_scale():
    from phasekit.plotting import committee as pc

    ds = _run_points(2, [0.5, 1.0])
    ds["eg"][1] = 0.3  # one flat row, one decaying over many decades
    ds = ds.assign_coords(eta_alpha=ds["alpha"] * ds["eta"])
    fig = pc.stacked_order_parameters(ds, time="alpha")
    assert [fig.axes[3 * r + 2].get_yscale() for r in range(2)] == ["log", "log"]


def test_a_long_title_is_wrapped_to_the_figure():
    _, ds = synthetic(GRID_STUDY, _values())
    title = "eps_g where the flow from a nearly unspecialised start ends, against the learning rate " * 2
    fig = ps.lines(ds.sel(activation=["erf"]), "final_eg", "eta", hue="K", panels="activation", title=title)
    assert layout_problems(fig) == []


def test_layout_problems_sees_a_legend_over_a_curve():
    fig = Figure(figsize=(4, 3), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [1, 0], label="a curve without markers")  # crosses the upper left corner
    ax.legend(loc="upper left")
    assert any("covers part of the curve" in p for p in layout_problems(fig))
    ax.legend(loc="upper right")
    assert layout_problems(fig) == []


def test_stability_boundary_regions_have_their_own_hatch():
    _, ds = synthetic(GRID_STUDY, _values(eta_c=np.repeat([2.0, 1.5], 6)))
    fig = ps.plot_stability_boundary(ds)
    regions = [c for c in fig.axes[0].collections if c.get_label().endswith("unstable (hatched)")]
    assert len(regions) == 2 and len({c.get_hatch() for c in regions}) == 2
    assert layout_problems(fig) == []


def test_eg_curves_on_a_log_time_axis_leave_out_the_start():
    import phasekit as pk
    from phasekit.plotting import committee as pc

    model = pk.Committee(1, 1, "linear", eta=0.5, noise=0.3, eta_schedule={"kind": "power_law", "alpha0": 4.0})
    traj = pk.integrate(model, pk.State([[0.2]], [[0.5]]), 100.0, n_points=11)
    fig = pc.eg_curves([traj], labels=["annealed"], logx=True)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    (line,) = [ln for ln in ax.lines if len(ln.get_xdata())]
    assert np.all(line.get_xdata() > 0) and len(line.get_xdata()) == 10
    assert pc.eg_curves([traj], labels=["annealed"]).axes[0].get_xscale() == "linear"


def test_order_parameters_of_a_reduced_trajectory_draw_R_S_Q_C_with_their_definitions():
    """integrate of a reduced model (K = M = 1000, site-symmetric): the panels draw R, S and Q, C (the stored
    values), labelled with what each is, and nothing is clipped."""
    import phasekit as pk
    from phasekit.plotting.committee import order_parameters

    red = pk.Committee(1000, 1000, "erf", eta=1e-3, second_order=True).restrict("site_symmetric")
    traj = pk.integrate(red, [1e-3, 0.0, 0.5, 0.0], 100.0, n_points=21)
    fig = order_parameters(traj)
    lines = {ln.get_label(): ln for ax in fig.axes for ln in ax.lines}
    assert {"R = R_ii", "S = R_in (i != n)", "Q = Q_ii", "C = Q_ik (i != k)"} <= set(lines)
    np.testing.assert_array_equal(lines["C = Q_ik (i != k)"].get_ydata(), traj["C"].values)
    assert "student-teacher overlaps R, S" in fig.axes[0].get_ylabel() and "subspace" in fig._suptitle.get_text()
    assert layout_problems(fig) == []


def test_figures_of_one_integrate_run_draw_its_trajectory():
    """draw() on an integrate() dataset: its one trajectory (full or reduced), the stored values;
    a dataset without one is refused by name."""
    import phasekit as pk

    model = pk.Committee(2, 2, "erf", eta=0.5)
    full = pk.integrate(model, pk.initial_state(model, 1e-3), 20.0, n_points=21)
    red = pk.integrate(model.restrict("site_symmetric"), [1e-3, 0.0, 0.5, 0.0], 20.0, n_points=21)
    for ds in (full, red):
        (name, _, fig), = draw(ds, {"kind": "order_parameters"})
        eg = [ln for ax in fig.axes for ln in ax.lines if ln.get_label() == "eps_g"]
        assert name == "order_parameters" and len(eg) == 1
        np.testing.assert_array_equal(eg[0].get_ydata(), ds["eg"].values)
        assert "activation = erf" in draw(ds, {"kind": "trajectories"})[0][1]
    with pytest.raises(ValueError, match="ds: no committee trajectory"):
        draw(xr.Dataset({"x": ("eta", [1.0])}), {"kind": "order_parameters"})


def test_save_figure_writes_the_default_pixels(tmp_path):
    """The cheaper PNG compression of save_figure changes the file, not one pixel of the image."""
    from PIL import Image

    from phasekit.plotting import save_figure

    fig = Figure(figsize=(3.0, 2.0), layout="constrained")
    ax = fig.subplots()
    ax.semilogy(np.arange(1, 50), np.exp(-np.arange(1, 50) / 7.0), "o-", label="eps_g")
    ax.legend()
    ax.set_title("a title")
    fig.canvas.draw()  # the layout settled, so both saves lay out the same state
    ours = save_figure(fig, tmp_path / "ours.png")
    fig.savefig(tmp_path / "default.png", dpi=120)
    a, b = np.asarray(Image.open(ours)), np.asarray(Image.open(tmp_path / "default.png"))
    assert a.shape == b.shape == (240, 360, 4)
    np.testing.assert_array_equal(a, b)
    assert ours.read_bytes() != (tmp_path / "default.png").read_bytes()  # compressed otherwise


def test_save_figure_draws_in_one_pass_what_savefig_draws(tmp_path):
    """Layout and render in one pass, titles fixed where nothing is above them: savefig's pixels on a figure
    never drawn, also where the y offset text (1e8) moves a left title up (the fixed title would overlap it)."""
    from PIL import Image

    from phasekit.plotting import save_figure

    def figure(loc):
        fig = Figure(figsize=(3.0, 2.0), layout="constrained")
        ax = fig.subplots()
        ax.plot(np.arange(5), 3e7 * np.arange(5), "o-")
        ax.set_title("a title over the offset text", loc=loc, fontsize=9)
        return fig

    for loc in ("left", "center"):
        fig = figure(loc)
        ours = save_figure(fig, tmp_path / f"ours_{loc}.png")
        figure(loc).savefig(tmp_path / f"default_{loc}.png", dpi=120)
        np.testing.assert_array_equal(np.asarray(Image.open(ours)), np.asarray(Image.open(tmp_path / f"default_{loc}.png")))
        assert fig.dpi == Figure().dpi and fig.axes[0]._autotitlepos is True  # the figure left as it was
