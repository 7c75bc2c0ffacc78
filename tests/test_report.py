"""Reports: a view that computes nothing; figures from the study's specs, tables that carry the dataset's
numbers, the stored analyses and trajectories, the status listing."""

import re

import numpy as np
import pytest
import xarray as xr

from helpers_study import GRID_STUDY, _values, synthetic
from phasekit.report import study_of, write_report
from phasekit.study.runner import run_study
from phasekit.study.schema import parse_study


def test_report_has_figures_tables_and_status(tmp_path):
    ct = np.linspace(10, 120, 12)
    ct[5] = np.inf
    fe = np.full(12, 1e-3)
    fe[2] = np.nan  # the diverged point has no error at the horizon
    _, ds = synthetic(GRID_STUDY, _values(convergence_time=ct, final_eg=fe,
                                          eta_c=np.repeat([4.0, 2.3, 2.0, 1.3], 3)))
    path = write_report(ds, tmp_path, trajectories=False)
    text = path.read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    names = {p.split("/")[-1] for p in images}
    assert {"stability_boundary.png", "convergence_time_eta_K.png", "convergence_time_vs_eta.png"} <= names
    for p in images:
        assert (tmp_path / p).stat().st_size > 5000
    results = text.split("## Results")[1]
    rows = [line for line in results.splitlines() if line.startswith("| erf") or line.startswith("| relu")]
    assert len(rows) == 12
    cells = [r.strip("|").split("|") for r in rows]
    assert [c[0].strip() for c in cells] == ["erf"] * 6 + ["relu"] * 6
    got = [float(c[3]) if c[3].strip() != "inf" else np.inf for c in cells]
    np.testing.assert_allclose(got, ct, rtol=1e-3)
    assert "| activation = erf, K = 1, eta = 1 | diverged | left the cone at alpha = 3 |" in text
    assert "11 converged, 1 diverged" in text
    # The table's symbols are explained on the line under it.
    after = results.split(rows[-1])[1].splitlines()
    assert after[:2] == ["", ""] and after[2].startswith("`inf`: does not happen within the range searched") and \
        "`-`: not a result for this point (it diverged or failed first" in after[2], after[:3]
    assert text.count("`-`: not a result") == 1


def test_tables_without_inf_or_nan_have_no_legend(tmp_path):
    eta_c = {k: np.full(12, 0.01) for k in ("eta_c_error", "eta_c_precision", "jacobian_error", "crossing_real")}
    _, ds = synthetic(GRID_STUDY, _values(convergence_time=np.linspace(10, 120, 12), final_eg=np.full(12, 1e-3),
                                          eta_c=np.repeat([4.0, 2.3, 2.0, 1.3], 3), **eta_c))
    text = write_report(ds, tmp_path, trajectories=False).read_text()
    assert "`inf`:" not in text and "not a result" not in text
    only_nan = ds.copy()
    only_nan["final_eg"] = ds["final_eg"].where(ds["convergence_time"] > 50)
    text = write_report(only_nan, tmp_path / "n", trajectories=False).read_text()
    assert "`inf`:" not in text and text.count("`-`: not a result for this point") == 1


def test_study_figures_are_drawn_as_the_study_names_them(tmp_path):
    d = dict(GRID_STUDY, report={"figures": [{"kind": "heatmap", "name": "my_map", "var": "final_eg", "x": "eta",
                                              "y": "K", "title": "Final error", "caption": "what it shows"}]})
    _, ds = synthetic(d, _values())
    text = write_report(ds, tmp_path, trajectories=False).read_text()
    assert "### Final error" in text and "![Final error](figures/my_map.png)" in text and "what it shows" in text
    assert text.count("![") == 1  # only what the study asks for
    bad = dict(GRID_STUDY, report={"figures": [{"kind": "heatmap", "var": "final_eg", "x": "eta", "colour": 1}]})
    _, ds = synthetic(bad, _values())
    with pytest.raises(ValueError, match="colour: not an argument of figure 'heatmap'"):
        write_report(ds, tmp_path / "b", trajectories=False)


def test_analyses_table_with_the_measures_constant_along_the_analysed_axis(tmp_path):
    ct = np.array([30.0, 50.0, 20.0, 90.0, 60.0, 40.0, 10.0, 5.0, 7.0, 80.0, 70.0, 75.0])
    d = dict(GRID_STUDY, analyses={"optimum": {"var": "convergence_time", "over": "eta"}})
    st, ds = synthetic(d, _values(convergence_time=ct, eta_c=np.repeat([4.0, 2.3, 2.0, 1.3], 3),
                                  final_eg=np.arange(12.0), alpha_end=np.arange(12.0)))
    from phasekit.study.assembly import run_analyses

    ds = run_analyses(st, ds)
    text = write_report(ds, tmp_path, trajectories=False).read_text()
    table = text.split("## Analyses")[1].split("##")[0].strip().splitlines()
    assert table[0] == "| activation | K | eta_c | convergence_time_min | eta_opt |"
    rows = [r.split("|") for r in table[2:]]
    assert [r[1].strip() for r in rows] == ["erf", "erf", "relu", "relu"]
    assert [float(r[3]) for r in rows] == [4.0, 2.3, 2.0, 1.3]
    assert [float(r[-3]) for r in rows] == [20.0, 40.0, 5.0, 70.0]
    assert [float(r[-2]) for r in rows] == [2.0, 2.0, 1.0, 1.0]


def test_report_from_file_defaults_next_to_dataset(tmp_path):
    _, ds = synthetic(GRID_STUDY, _values())
    f = tmp_path / "d" / "rep.nc"
    f.parent.mkdir()
    ds.to_netcdf(f, engine="scipy")
    path = write_report(f, trajectories=False)
    assert path == f.parent / "report.md" and f"`{f}`" in path.read_text()
    assert study_of(xr.load_dataset(f, engine="scipy")).name == "rep"
    with pytest.raises(ValueError, match="study"):
        write_report(xr.Dataset(), tmp_path)


def test_table_cells_stay_on_one_line(tmp_path):
    _, ds = synthetic(GRID_STUDY, _values())
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
    for block in text.split("\n\n"):
        lines = [ln for ln in block.splitlines() if ln.startswith("|")]
        if lines:
            n = lines[0].replace("\\|", "").count("|")
            assert all(ln.replace("\\|", "").count("|") == n for ln in lines), block


def test_report_to_an_unwritable_folder_is_one_line(tmp_path):
    _, ds = synthetic(GRID_STUDY, _values())
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError) as info:
        write_report(ds, blocker / "sub", trajectories=False)
    msg = str(info.value)
    assert msg.startswith(f"outdir: cannot write the report to {blocker / 'sub'}") and "--outdir" in msg
    assert "\n" not in msg


def test_report_computes_nothing(tmp_path, monkeypatch):
    """With every ODE solver, integrator and fixed-point search patched to raise, the report is written."""
    st = parse_study({
        "name": "view", "model": {"M": "K", "activation": "relu"},
        "grid": {"K": [1, 2], "eta": [0.3, 0.8, 1.5]},
        "integration": {"eta_alpha_max": 60.0, "n_points": 41, "stop_eg": 1e-3},
        "measures": {"convergence_time": {}, "final_eg": {}, "eta_c": {}},
        "analyses": {"optimum": {"var": "convergence_time", "over": "eta", "refine": True}},
        "report": {"trajectories": [{"K": 2, "eta": 0.3}, {"K": 1, "eta": 1.5}]},
    })
    ds = run_study(st, outdir=tmp_path / "run", progress=False)

    def forbidden(*args, **kwargs):
        raise AssertionError("the report computed something")

    import scipy.integrate
    import scipy.optimize

    import phasekit.committee as committee
    import phasekit.committee.dynamics as dynamics
    import phasekit.committee.plateaus as plateaus
    import phasekit.core.ode as ode
    import phasekit.study.committee_measures as cm
    import phasekit.study.runner as runner

    monkeypatch.setattr(scipy.integrate, "solve_ivp", forbidden)
    monkeypatch.setattr(scipy.optimize, "minimize_scalar", forbidden)
    monkeypatch.setattr(ode, "solve_ivp", forbidden)
    for mod in (ode, dynamics, plateaus, committee, cm):
        for name in ("solve_flow", "integrate", "convergence_time", "critical_eta", "symmetric_plateau",
                     "_band_times", "simulate", "solve_ivp"):
            if hasattr(mod, name):
                monkeypatch.setattr(mod, name, forbidden)
    monkeypatch.setattr(runner, "evaluate_point", forbidden)
    path = write_report(tmp_path / "run" / "view.nc", tmp_path / "rep")
    text = path.read_text()
    assert "figures/trajectory_point0.png" in text and "figures/trajectory_eg.png" in text
    assert (tmp_path / "rep" / "figures" / "trajectory_point1.png").stat().st_size > 5000
    assert "eta_opt" in text and f"{float(ds['eta_opt'].values[1]):.4g}" in text


def test_figures_saved_in_forked_processes_equal_those_saved_here(tmp_path, monkeypatch):
    """Two or more figures are written by forked processes: byte for byte the files this process writes.

    The forked half runs in a fresh interpreter: a process that runs other threads (earlier tests' clusters)
    rightly saves in itself, and forking it would test nothing."""
    import subprocess
    import sys
    import threading

    import phasekit.report as report

    _, ds = synthetic(GRID_STUDY, _values(convergence_time=np.linspace(10, 120, 12), final_eg=np.full(12, 1e-3),
                                          eta_c=np.repeat([4.0, 2.3, 2.0, 1.3], 3)))
    path = tmp_path / "study.nc"
    ds.to_netcdf(path)
    code = ("import multiprocessing\n"
            "from phasekit.report import write_report\n"
            "pools, real = [], multiprocessing.context.ForkContext.Pool\n"
            "def spy(self, *args, **kwargs):\n"
            "    pools.append(args)\n"
            "    return real(self, *args, **kwargs)\n"
            "multiprocessing.context.ForkContext.Pool = spy\n"
            f"write_report({str(path)!r}, {str(tmp_path / 'fork_out')!r}, trajectories=False)\n"
            "import sys\n"
            "print(len(pools), int('dask' in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # one pool where there are two cores; and a report imports no dask (nothing in it uses dask)
    assert [int(n) for n in proc.stdout.split()[-2:]] == [1 if len(report.os.sched_getaffinity(0)) > 1 else 0, 0]
    forked = tmp_path / "fork_out" / "report.md"
    monkeypatch.setattr(threading, "active_count", lambda: 2)  # another thread: saved here
    here = write_report(path, tmp_path / "here_out", trajectories=False)
    files = sorted(p.name for p in (tmp_path / "here_out" / "figures").glob("*.png"))
    assert len(files) >= 3 and files == sorted(p.name for p in (tmp_path / "fork_out" / "figures").glob("*.png"))
    for name in files:
        assert (tmp_path / "fork_out" / "figures" / name).read_bytes() == (tmp_path / "here_out" / "figures" / name).read_bytes()
    assert forked.read_text().replace("fork_out", "here_out") == here.read_text()
