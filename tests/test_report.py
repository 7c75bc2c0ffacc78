"""Reports: figures chosen by the grid, tables that carry the dataset's numbers, status listing."""

import json
import re

import numpy as np
import pytest
import xarray as xr

import phasekit as pk
from phasekit.committee.starts import initial_state
from phasekit.plotting import sweeps as ps
from phasekit.report import trajectory_points, write_report
from phasekit.study.runner import assemble
from phasekit.study.schema import parse_study


def synthetic(study_dict, values):
    """A sweep dataset with made-up measure values (no computation), via the real assembler."""
    st = parse_study(study_dict)
    n = st.n_points
    recs = {"point": ("point", np.arange(n))}
    for var, v in values.items():
        recs[var] = ("point", np.asarray(v, float))
    status = np.array(["ok"] * n, dtype=object)
    status[1] = "diverged"
    recs["status"] = ("point", status)
    recs["message"] = ("point", np.array(["" if s == "ok" else "left the cone at alpha = 3" for s in status],
                                         dtype=object))
    recs["invocation"] = ("point", np.array(["x"] * n, dtype=object))
    recs["seconds"] = ("point", np.ones(n))
    return st, assemble(st, xr.Dataset(recs))


GRID_STUDY = {
    "name": "rep",
    "model": {"M": "K", "activation": "erf"},
    "grid": {"activation": ["erf", "relu"], "K": [1, 2], "eta": [0.5, 1.0, 2.0]},
    "integration": {"eta_alpha_max": 20.0, "n_points": 51},
    "measures": {"convergence_time": {}, "final_eg": {}, "eta_c": {}},
}


def test_report_has_figures_tables_and_status(tmp_path):
    n = 12
    ct = np.linspace(10, 120, n)
    ct[5] = np.inf
    _, ds = synthetic(GRID_STUDY, {"convergence_time": ct, "final_eg": np.full(n, 1e-3),
                                    "alpha_end": np.full(n, 40.0), "eta_c": np.repeat([4.0, 2.3, 2.0, 1.3], 3)})
    path = write_report(ds, tmp_path, trajectories=False)
    text = path.read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    names = {p.split("/")[-1] for p in images}
    assert {"stability_boundary.png", "convergence_time_eta_K.png", "convergence_time_vs_eta.png"} <= names
    for p in images:
        assert (tmp_path / p).stat().st_size > 5000
    # The results table carries the dataset's numbers, in grid order.
    results = text.split("## Results")[1]
    rows = [line for line in results.splitlines() if line.startswith("| erf") or line.startswith("| relu")]
    assert len(rows) == 12
    cells = [r.strip("|").split("|") for r in rows]
    assert [c[0].strip() for c in cells] == ["erf"] * 6 + ["relu"] * 6
    got = [float(c[3]) if c[3].strip() != "inf" else np.inf for c in cells]
    np.testing.assert_allclose(got, ct, rtol=1e-3)
    # The diverged point is listed with its message.
    assert "| activation = erf, K = 1, eta = 1 | diverged | left the cone at alpha = 3 |" in text
    assert "11 ok, 1 diverged" in text or "1 diverged, 11 ok" in text


def test_heatmap_marks_diverged_and_unreached_cells():
    n = 12
    ct = np.linspace(10, 120, n)
    ct[5] = np.inf
    _, ds = synthetic(GRID_STUDY, {"convergence_time": ct, "final_eg": np.ones(n), "alpha_end": np.ones(n),
                                   "eta_c": np.ones(n)})
    fig = ps.heatmap(ds, "convergence_time", "eta", "K")
    erf_ax = fig.axes[0]
    markers = {ln.get_marker(): (ln.get_xdata()[0], ln.get_ydata()[0]) for ln in erf_ax.lines}
    # point 1 = (erf, K = 1, eta = 1.0): column 1, row 0; point 5 = (erf, K = 2, eta = 2.0): column 2, row 1
    assert markers["x"] == (1, 0)
    assert markers["o"] == (2, 1)
    texts = {t.get_text() for t in erf_ax.texts}
    assert "10" in texts and "inf" not in texts
    assert erf_ax.get_xlabel().endswith("[1]") and fig.axes[-1].get_ylabel().startswith("convergence time")


def test_plateau_scaling_fit_recovers_slope():
    X = np.array([1e-2, 1e-3, 1e-4, 1e-5])
    st = parse_study({"name": "p", "grid": {"K": [2, 3], "X": X.tolist()}, "measures": {"final_eg": {}}})
    slope = {2: 40.0, 3: 90.0}
    vals = np.array([slope[K] * np.log(1 / x) + 7 for K in (2, 3) for x in X])
    ds = xr.Dataset({"plateau_length": (("K", "X"), vals.reshape(2, 4), {"long_name": "plateau length alpha",
                                                                          "units": "1"}),
                     "status": (("K", "X"), np.full((2, 4), "ok", dtype=object))},
                    coords={"K": [2, 3], "X": X})
    fig = ps.plateau_scaling(ds)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any("slope 40" in lab for lab in labels) and any("slope 90" in lab for lab in labels)
    assert st.n_points == 8


def test_trajectory_points_and_integration(tmp_path):
    d = dict(GRID_STUDY, report={"trajectories": [{"activation": "erf", "K": 2, "eta": 1.0}]})
    st, ds = synthetic(d, {"convergence_time": np.ones(12), "final_eg": np.ones(12), "alpha_end": np.ones(12),
                           "eta_c": np.ones(12)})
    (j,) = trajectory_points(st, ds)
    assert st.point(j) == {"activation": "erf", "K": 2, "eta": 1.0}
    path = write_report(ds, tmp_path, trajectories=True)
    traj = xr.load_dataset(tmp_path / "trajectories" / f"point-{j}.nc", engine="scipy")
    model = pk.Committee(2, 2, "erf", eta=1.0)
    ref = pk.integrate(model, initial_state(model, 1e-3), 20.0, n_points=51, solver={"rtol": 1e-8, "atol": 1e-11})
    np.testing.assert_allclose(traj["eg"].values, ref["eg"].values, rtol=1e-6)
    assert f"figures/trajectory_point{j}.png" in path.read_text()
    assert json.loads(traj.attrs["grid_values"]) == {"activation": "erf", "K": "2", "eta": "1"}


def test_report_from_file_defaults_next_to_dataset(tmp_path):
    _, ds = synthetic(GRID_STUDY, {"convergence_time": np.ones(12), "final_eg": np.ones(12),
                                    "alpha_end": np.ones(12), "eta_c": np.ones(12)})
    f = tmp_path / "d" / "rep.nc"
    f.parent.mkdir()
    ds.to_netcdf(f, engine="scipy")
    path = write_report(f, trajectories=False)
    assert path == f.parent / "report.md" and f"`{f}`" in path.read_text()
    with pytest.raises(ValueError, match="study"):
        write_report(xr.Dataset(), tmp_path)


def test_highlights_give_eta_c_and_fastest_eta(tmp_path):
    ct = np.array([30.0, 50.0, 20.0, 90.0, 60.0, 40.0, 10.0, 5.0, 7.0, 80.0, 70.0, 75.0])
    _, ds = synthetic(GRID_STUDY, {"convergence_time": ct, "final_eg": np.ones(12), "alpha_end": np.ones(12),
                                    "eta_c": np.repeat([4.0, 2.3, 2.0, 1.3], 3)})
    text = write_report(ds, tmp_path, trajectories=False).read_text()
    rows = text.split("## Highlights")[1].split("##")[0].strip().splitlines()[2:]
    # (erf, K = 1): point 1 (eta = 1) diverged, so the fastest ok run is eta = 2 with 20
    assert rows[0] == "| erf | 1 | 4 | 2 | 20 |"
    assert rows[1] == "| erf | 2 | 2.3 | 2 | 40 |"
    assert rows[2] == "| relu | 1 | 2 | 1 | 5 |"
    assert rows[3] == "| relu | 2 | 1.3 | 1 | 70 |"


def test_table_cells_stay_on_one_line(tmp_path):
    _, ds = synthetic(GRID_STUDY, {"convergence_time": np.ones(12), "final_eg": np.ones(12),
                                    "alpha_end": np.ones(12), "eta_c": np.ones(12)})
    msg = ds["message"].values.copy()
    msg.ravel()[1] = "solver stopped:\n  Required step size | is less than spacing\r\nbetween numbers." + "x" * 400
    ds["message"] = (ds["message"].dims, msg, ds["message"].attrs)
    text = write_report(ds, tmp_path, trajectories=False).read_text()
    rows = [line for line in text.splitlines() if "| diverged |" in line and "solver" in line]
    assert len(rows) == 1
    row = rows[0]
    assert row.startswith("| activation = erf, K = 1, eta = 1 | diverged | solver stopped: Required step size "
                          "\\| is less than spacing between numbers.xxx")
    assert row.endswith("... |") and len(row) < 400
    # every table row has as many cells as its header
    for block in text.split("\n\n"):
        lines = [ln for ln in block.splitlines() if ln.startswith("|")]
        if lines:
            n = lines[0].replace("\\|", "").count("|")
            assert all(ln.replace("\\|", "").count("|") == n for ln in lines), block


def test_report_to_an_unwritable_folder_is_one_line(tmp_path):
    _, ds = synthetic(GRID_STUDY, {"convergence_time": np.ones(12), "final_eg": np.ones(12),
                                    "alpha_end": np.ones(12), "eta_c": np.ones(12)})
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError) as info:
        write_report(ds, blocker / "sub", trajectories=False)
    msg = str(info.value)
    assert msg.startswith(f"outdir: cannot write the report to {blocker / 'sub'}") and "--outdir" in msg
    assert "\n" not in msg
